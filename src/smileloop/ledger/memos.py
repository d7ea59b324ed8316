"""Ledger memos in the reader's language.

A transaction's memo ("principal 139444 + bonus 11156") is an English sentence fixed when it is posted: `ledger
check`, the API and exports read it as it is. The apps that post register the templates they format memos from
(`memo_templates_register`, at start-up, marked with gettext_noop); pages show a memo through `memo_text`
(`core.messages.Sentences`), with amounts in fen shown as yuan. A memo no template matches (a rule's or a gift's
name) is shown as stored."""

from django.utils.translation import gettext_noop

from smileloop.core.messages import Sentences
from smileloop.core.money import yuan_grouped

MEMOS = Sentences()
memo_templates_register = MEMOS.register
memo_text = MEMOS.display

REVERSES = gettext_noop("reverses #%(transaction)s")


def fen_label(value: str) -> str:
    """An amount stored in fen (digits, maybe signed) as yuan; anything else is not an amount (ValueError)."""
    return yuan_grouped(int(value))


def memo_templates_install() -> None:
    memo_templates_register(REVERSES)
