"""Display filters for ledger rows on staff pages."""

from django import template

from smileloop.ledger.memos import memo_text as _memo_text

register = template.Library()


@register.filter
def memo_text(memo: str) -> str:
    """A transaction's memo in the reader's language (amounts in yuan); names and free text as stored."""
    return _memo_text(memo)
