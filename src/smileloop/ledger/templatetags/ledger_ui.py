"""Display filters for ledger rows on staff pages."""

from django import template

from smileloop.ledger.memos import memo_text as _memo_text

register = template.Library()


@register.filter
def memo_text(memo: str, reader=None) -> str:
    """A transaction's memo in the reader's language (amounts in yuan), `{{ memo|memo_text:scope }}`: a patient it
    names by id is shown as the scope may see them (#12, or 张* outside it or with no scope); free text as
    stored."""
    return _memo_text(memo, reader)
