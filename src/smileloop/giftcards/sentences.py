"""What a gift card's events say (GiftCardEvent.detail): English sentences from these templates, as the API and
the audit trail read them; the code look-up page shows them in the reader's language (`card_detail_display`,
which also reads the ledger memos the card's movements carry)."""

from django.utils.translation import gettext, gettext_noop

from smileloop.core.messages import Sentences
from smileloop.ledger.memos import memo_text

CARD_ISSUED = gettext_noop("%(programme)s given by %(member)s: %(trigger)s")
CARD_REGISTERED = gettext_noop("%(name)s registered on %(day)s: the card stays valid")
CARD_FIRST_USED = gettext_noop("first used by %(name)s")
CARD_USED = gettext_noop("%(yuan)s used (%(source)s)")
CARD_REFUNDED = gettext_noop("value returned by a refund (%(source)s)")
CARD_EXPIRED = gettext_noop("expired on %(day)s")

# "%(yuan)s used" is stored without the currency sign; the page shows the amount as money.
CARD_USED_SHOWN = gettext_noop("¥%(yuan)s used (%(source)s)")
ORDER_REF = gettext_noop("order #%(id)s")
# A movement's source that names the card or voucher itself (its issue, its expiry): the row's "what" says it all.
_SELF_SOURCES = {"giftcard", "voucher", "expire"}


def source_label(source: str) -> str:
    """A ledger source in words: "order:14585" → 订单 #14585; anything else as stored."""
    kind, colon, ref = source.partition(":")
    return gettext(ORDER_REF) % {"id": ref} if kind == "order" and colon and ref.isdigit() else source


_EVENTS = Sentences()
_EVENTS.register(CARD_REGISTERED, CARD_FIRST_USED, CARD_REFUNDED, CARD_EXPIRED, CARD_USED, CARD_ISSUED,
                 labels={"source": source_label}, shown={CARD_USED: CARD_USED_SHOWN})


def card_detail_display(detail: str) -> str:
    """An event's sentence, or a movement's source or memo, in the reader's language: never a bare reference such
    as "order:14585" or "giftcard:8"."""
    shown = _EVENTS.display(detail)
    if shown != detail:
        return shown
    kind, colon, ref = detail.partition(":")
    if colon and ref.isdigit():
        return "" if kind in _SELF_SOURCES else source_label(detail)
    return memo_text(detail)
