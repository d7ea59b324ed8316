"""Ledger memos in the reader's language.

A transaction's memo ("principal 139444 + bonus 11156") is an English sentence fixed when it is posted: `ledger
check`, the API and exports read it as it is. The apps that post register the templates they format memos from
(`memo_templates_register`, at start-up, marked with gettext_noop); pages show a memo through `memo_text` /
`memos_text` (`core.messages.Sentences`), with amounts in fen shown as yuan. A memo no template matches (a rule's
or a gift's name) is shown as stored.

A memo may name another patient by customer id ("paid by #12", a family member paying from the holder's
wallet): such arguments are registered as `people`, and a page shows them as its reader may see that patient
(PIPL): "#12" in the reader's scope, masked (张*) and without the id outside it or when no reader is given. The
stored memo keeps the id."""

from collections.abc import Callable, Iterable

from django.utils.translation import gettext_noop

from smileloop.core.messages import Sentences
from smileloop.core.money import yuan_grouped
from smileloop.core.scoping import Scope

MEMOS = Sentences()
_PEOPLE: set[str] = set()  # the template arguments that are customer ids

REVERSES = gettext_noop("reverses #%(transaction)s")


def memo_templates_register(*templates: str, labels: dict[str, Callable[[str], str]] | None = None,
                            shown: dict[str, str] | None = None, people: Iterable[str] = ()) -> None:
    """Register memo templates. `people`: the arguments that hold a customer id; the template a page shows
    (`shown`, else the stored one) has them without a "#", which their label gives ("#12" or "张*")."""
    _PEOPLE.update(people)
    MEMOS.register(*templates, labels=labels, shown=shown)


def fen_label(value: str) -> str:
    """An amount stored in fen (digits, maybe signed) as yuan; anything else is not an amount (ValueError)."""
    return yuan_grouped(int(value))


def memos_text(memos: Iterable[str], reader: Scope | None = None) -> list[str]:
    """The memos in the reader's language, the patients they name as `reader` may see them (one query for all)."""
    memos = list(memos)
    named: set[int] = set()

    def note(value: str) -> str:
        named.add(int(value))
        return value

    if _PEOPLE:
        for memo in memos:
            MEMOS.display(memo, labels=dict.fromkeys(_PEOPLE, note))
    shown = _people_shown(reader, named)
    labels = dict.fromkeys(_PEOPLE, lambda value: shown.get(int(value), "*"))
    return [MEMOS.display(memo, labels=labels) for memo in memos]


def memo_text(memo: str, reader: Scope | None = None) -> str:
    """One memo in the reader's language (`memos_text`)."""
    return memos_text([memo], reader)[0]


def _people_shown(reader: Scope | None, ids: set[int]) -> dict[int, str]:
    """{customer id: "#id" when the reader's scope holds that patient, else their name masked (张*)}."""
    if not ids:
        return {}
    from smileloop.customers.models import Customer
    from smileloop.customers.normalize import name_masked
    from smileloop.customers.selectors import customer_visible

    customers = Customer.objects.filter(pk__in=ids).only("id", "name", "chain_id", "home_clinic_id",
                                                          "consultant_id", "merged_into_id")
    return {c.pk: f"#{c.pk}" if reader is not None and customer_visible(reader, c) else name_masked(c.name)
            for c in customers}


def memo_templates_install() -> None:
    memo_templates_register(REVERSES)
