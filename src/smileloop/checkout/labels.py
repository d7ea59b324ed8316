"""What a bill's steps and tenders say: English sentences from these templates, stored with the settlement (the API
and the receipt's JSON read them as they are); the bill and receipt pages show them in the reader's language
(`bill_label_display`). Labels stored before these templates (Chinese) match none and are shown as stored."""

import re

from django.utils.translation import gettext_lazy, gettext_noop

from smileloop.core.messages import Sentences
from smileloop.core.money import discount_words

ENTITLEMENT = gettext_noop("package entitlement %(units)s×%(item)s")
DISCOUNT = gettext_noop("%(tier)s, %(off)s")
DISCOUNT_FAMILY = gettext_noop("family card of %(holder)s, %(tier)s, %(off)s")
DISCOUNT_FRIEND = gettext_noop("friend of %(holder)s, %(tier)s, %(off)s")
VOUCHER = gettext_noop("%(name)s %(code)s: %(used)s used")
GIFT_CARD = gettext_noop("%(name)s %(code)s %(before)s → %(used)s used, %(left)s left")
POINTS = gettext_noop("%(points)s points = %(yuan)s (at most %(cap)s of the bill's %(bill)s)")
WALLET = gettext_noop("wallet %(yuan)s")
FAMILY_WALLET = gettext_noop("family wallet of %(holder)s %(yuan)s")
CASH = gettext_noop("cash/other %(yuan)s")
CLAWBACK = gettext_noop("points already spent, withheld from the refund: %(yuan)s")

# The discount's holder-named forms first: the plain one would also match them.
_LABELS = Sentences()

_OFF = re.compile(r"^(\d+(?:\.\d+)?)% off$")


def off_text(bp: int) -> str:
    """What a stored label says of a discount: '12% off' (shown as 88折 on Chinese pages)."""
    return f"{bp / 100:g}% off"


def _off_display(text: str) -> str:
    found = _OFF.match(text)
    if not found:
        raise ValueError(text)
    return discount_words(round(float(found.group(1)) * 100))


_LABELS.register(DISCOUNT_FAMILY, DISCOUNT_FRIEND, DISCOUNT, ENTITLEMENT, VOUCHER, GIFT_CARD, POINTS, FAMILY_WALLET,
                 WALLET, CASH, CLAWBACK, labels={"off": _off_display})

TENDER_KINDS = {"voucher": gettext_lazy("Voucher"), "giftcard": gettext_lazy("Gift card"),
                "points": gettext_lazy("Points"), "wallet": gettext_lazy("Stored value"),
                "cash": gettext_lazy("Cash/other")}


def bill_label_display(label: str) -> str:
    """A stored step or tender label in the active language."""
    return _LABELS.display(label)


def tender_display(tender_id: str) -> str:
    """A tender id ('giftcard:ABCD-…', 'cash') as the page names it: 'Gift card ABCD-…', 'Cash/other'."""
    kind, _sep, ref = tender_id.partition(":")
    label = TENDER_KINDS.get(kind, kind)
    return f"{label} {ref}" if ref else str(label)
