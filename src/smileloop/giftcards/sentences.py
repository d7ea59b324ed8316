"""What a gift card's events say (GiftCardEvent.detail): English sentences from these templates, as the API and
the audit trail read them; the code look-up page shows them in the reader's language (`card_detail_display`,
which also reads the ledger memos the card's movements carry)."""

from django.utils.translation import gettext_noop

from smileloop.core.messages import Sentences
from smileloop.ledger.memos import memo_text

CARD_ISSUED = gettext_noop("%(programme)s given by %(member)s: %(trigger)s")
CARD_REGISTERED = gettext_noop("%(name)s registered on %(day)s: the card stays valid")
CARD_FIRST_USED = gettext_noop("first used by %(name)s")
CARD_USED = gettext_noop("%(yuan)s used (%(source)s)")
CARD_REFUNDED = gettext_noop("value returned by a refund (%(source)s)")
CARD_EXPIRED = gettext_noop("expired on %(day)s")

_EVENTS = Sentences()
_EVENTS.register(CARD_REGISTERED, CARD_FIRST_USED, CARD_REFUNDED, CARD_EXPIRED, CARD_USED, CARD_ISSUED)


def card_detail_display(detail: str) -> str:
    shown = _EVENTS.display(detail)
    return memo_text(detail) if shown == detail else shown
