"""Checkout refusals in the reader's language.

Pricing, paying and the gift-card services raise English messages that name codes, amounts and people: the API
returns them as they are. The bill page shows them through `message_display` with these patterns (a message no
pattern knows is shown as it is)."""

import re

from django.utils.translation import gettext, gettext_noop, pgettext

from smileloop.core.messages import message_display
from smileloop.core.money import fen_to_yuan

_CODE = r"(?P<code>[A-Za-z0-9-]+)"
PATTERNS = [(re.compile(pattern), template) for pattern, template in [
    (r"^No voucher with the code '(?P<code>.*)'$", gettext_noop("No voucher with the code %(code)s")),
    (r"^No gift card with the code '(?P<code>.*)'$", gettext_noop("No gift card with the code %(code)s")),
    (r"^(?P<asked>\d+) points asked, at most (?P<most>\d+) usable on this bill$",
     gettext_noop("%(asked)s points asked, at most %(most)s usable on this bill")),
    (r"^(?P<asked>\d+) points asked, none usable on this bill$",
     gettext_noop("%(asked)s points asked, none usable on this bill")),
    (r"^wallet: (?P<available>[\d.,]+) available, (?P<asked>[\d.,]+) asked$",
     gettext_noop("wallet: %(available)s available, %(asked)s asked")),
    (r"^family wallet of (?P<holder>.+?): (?P<available>[\d.,]+) available, (?P<asked>[\d.,]+) asked$",
     gettext_noop("family wallet of %(holder)s: %(available)s available, %(asked)s asked")),
    (rf"^voucher {_CODE} belongs to another customer$", gettext_noop("voucher %(code)s belongs to another customer")),
    (r"^is how the package (?P<name>.+) is billed: sell the package on the patient's loyalty card$",
     gettext_noop("is how the package %(name)s is billed: sell the package on the patient's loyalty card")),
    (rf"^voucher {_CODE} is entered twice$", gettext_noop("voucher %(code)s is entered twice")),
    (rf"^gift card {_CODE} is entered twice$", gettext_noop("gift card %(code)s is entered twice")),
    (rf"^gift card {_CODE} has no balance left$", gettext_noop("gift card %(code)s has no balance left")),
    (rf"^voucher {_CODE} \((?P<name>.+)\) applies to no line of this bill$",
     gettext_noop("voucher %(code)s (%(name)s) applies to no line of this bill")),
    (rf"^gift card {_CODE} \((?P<name>.+)\) cannot pay for any line of this bill \(special-price items and excluded "
     r"categories\)$",
     gettext_noop("gift card %(code)s (%(name)s) cannot pay for any line of this bill (special-price items and "
                  "excluded categories)")),
    (rf"^(?:gift )?card {_CODE} expired on (?P<day>[\d-]+)$", gettext_noop("gift card %(code)s expired on %(day)s")),
    (rf"^card {_CODE} expired$", gettext_noop("gift card %(code)s has expired")),
    # the code look-up's holder registration (giftcards.services.giftcard_holder_register)
    (rf"^card {_CODE} is already registered to another holder$",
     gettext_noop("gift card %(code)s is already registered to another holder")),
    (rf"^voucher {_CODE} expired on (?P<day>[\d-]+)$", gettext_noop("voucher %(code)s expired on %(day)s")),
    (rf"^voucher {_CODE} was already redeemed on (?P<day>[\d-]+)$",
     gettext_noop("voucher %(code)s was already redeemed on %(day)s")),
    (r"^(?P<holder>.+?) has not consented to (?P<customer>.+?) paying from the family wallet: record the holder's "
     r"consent \(standing, or for this use\)$",
     gettext_noop("%(holder)s has not consented to %(customer)s paying from the family wallet: record the holder's "
                  "consent (standing, or for this use)")),
    (r"^(?P<customer>.+?) is not a family member bound to (?P<holder>.+?)'s card, so the wallet cannot be shared$",
     gettext_noop("%(customer)s is not a family member bound to %(holder)s's card, so the wallet cannot be shared")),
    (r"^must be a whole number from (?P<low>\d+) to (?P<high>\d+)$",
     gettext_noop("must be a whole number from %(low)s to %(high)s")),
]] + [
    (re.compile(r"^payments add up to (?P<paid>-?\d+) fen but (?P<due>-?\d+) fen are due$"),
     gettext_noop("payments add up to %(paid)s yuan but %(due)s yuan are due"),
     {"paid": lambda fen: fen_to_yuan(int(fen)), "due": lambda fen: fen_to_yuan(int(fen))}),
    (re.compile(r"^must be a whole number of fen ≥ 0$"), gettext_noop("must be an amount of 0 or more"), {}),
    (re.compile(r"^must be between 1 and (?P<high>\d+) fen$"),
     gettext_noop("must be between 0.01 and %(high)s yuan"), {"high": lambda fen: fen_to_yuan(int(fen))}),
    (re.compile(r"^(?P<points>\d+) of the points this bill earned were already used; they are worth "
                r"(?P<worth>[\d.]+) yuan, more than the (?P<cash>[\d.]+) yuan this refund gives back in cash$"),
     gettext_noop("%(points)s of the points this bill earned were already used; they are worth %(worth)s yuan, "
                  "more than the %(cash)s yuan this refund gives back in cash")),
]

FIXED = [
    gettext_noop("Balances changed since the bill was priced: price it again"),
    gettext_noop("a bill needs at least one line"),
    gettext_noop("is not in the service catalogue"),
    gettext_noop("is not a line of this bill"),
    gettext_noop("nothing left to refund"),
    gettext_noop('must be a whole number of points or "max"'),
    gettext_noop("the wallet amount must be ≥ 0"),
    gettext_noop("give quantity or amount_fen, not both"),
]

# The services name a field by its path in the API's body ("lines[0].quantity"); a page names it in words.
_LISTS = {
    "lines": gettext_noop("line %(n)s"),
    "payments": gettext_noop("payment %(n)s"),
    "vouchers": gettext_noop("voucher %(n)s"),
    "gift_cards": gettext_noop("gift card %(n)s"),
}
_NAMES = {
    "lines": gettext_noop("lines"),
    "payments": gettext_noop("payments"),
    "item_code": gettext_noop("item"),
    "line_id": gettext_noop("line"),
    "quantity": gettext_noop("quantity"),
    "tooth": gettext_noop("tooth"),
    "amount_fen": gettext_noop("amount"),
    "method": gettext_noop("payment method"),
    "points": gettext_noop("points"),
    "wallet": gettext_noop("wallet"),
    "holder_id": gettext_noop("wallet holder"),
    "per_use_consent": gettext_noop("consent for this use"),
    "clinic": gettext_noop("clinic"),
    "vouchers": gettext_noop("vouchers"),
    "gift_cards": gettext_noop("gift cards"),
}
_SEGMENT = re.compile(r"^(?P<name>[a-z_]+)(?:\[(?P<index>\d+)\])?$")


def field_display(path: str) -> str:
    """"lines[0].quantity" → "line 1, quantity" in the reader's language; a path with a part this does not know is
    shown as it is (better an internal name than a wrong one)."""
    words = []
    for part in path.split("."):
        found = _SEGMENT.match(part)
        if not found:
            return path
        name, index = found["name"], found["index"]
        if index is not None and name in _LISTS:
            words.append(gettext(_LISTS[name]) % {"n": int(index) + 1})
        elif index is None and name in _NAMES:
            words.append(gettext(_NAMES[name]))
        else:
            return path
    return pgettext("field path separator", ", ").join(words) if words else path


def checkout_message_display(message: str) -> str:
    return message_display(message, patterns=PATTERNS)


def field_message_display(path: str, message: str) -> str:
    """One field's refusal: "line 1, quantity: must be …" in the reader's language; a refusal of the whole bill
    (no field, or the priced breakdown) is its message alone."""
    text = checkout_message_display(message)
    if not path or path == "priced":
        return text
    return gettext("%(field)s: %(message)s") % {"field": field_display(path), "message": text}
