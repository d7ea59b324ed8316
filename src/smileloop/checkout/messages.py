"""Checkout refusals in the reader's language.

Pricing, paying and the gift-card services raise English messages that name codes, amounts and people: the API
returns them as they are. The bill page shows them through `message_display` with these patterns (a message no
pattern knows is shown as it is)."""

import re

from django.utils.translation import gettext_noop

from smileloop.core.messages import message_display

_CODE = r"(?P<code>[A-Za-z0-9-]+)"
PATTERNS = [(re.compile(pattern), template) for pattern, template in [
    (r"^No voucher with the code '(?P<code>.*)'$", gettext_noop("No voucher with the code %(code)s")),
    (r"^No gift card with the code '(?P<code>.*)'$", gettext_noop("No gift card with the code %(code)s")),
    (r"^(?P<asked>\d+) points asked, at most (?P<most>\d+) usable on this bill$",
     gettext_noop("%(asked)s points asked, at most %(most)s usable on this bill")),
    (r"^(?P<asked>\d+) points asked, none usable on this bill$",
     gettext_noop("%(asked)s points asked, none usable on this bill")),
    (r"^wallet: (?P<available>[\d.]+) available, (?P<asked>[\d.]+) asked$",
     gettext_noop("wallet: %(available)s available, %(asked)s asked")),
    (r"^family wallet of (?P<holder>.+?): (?P<available>[\d.]+) available, (?P<asked>[\d.]+) asked$",
     gettext_noop("family wallet of %(holder)s: %(available)s available, %(asked)s asked")),
    (rf"^voucher {_CODE} belongs to another customer$", gettext_noop("voucher %(code)s belongs to another customer")),
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
    (rf"^voucher {_CODE} expired on (?P<day>[\d-]+)$", gettext_noop("voucher %(code)s expired on %(day)s")),
    (rf"^voucher {_CODE} was already redeemed on (?P<day>[\d-]+)$",
     gettext_noop("voucher %(code)s was already redeemed on %(day)s")),
    (r"^(?P<holder>.+?) has not consented to (?P<customer>.+?) paying from the family wallet: record the holder's "
     r"consent \(standing, or for this use\)$",
     gettext_noop("%(holder)s has not consented to %(customer)s paying from the family wallet: record the holder's "
                  "consent (standing, or for this use)")),
    (r"^must be a whole number from (?P<low>\d+) to (?P<high>\d+)$",
     gettext_noop("must be a whole number from %(low)s to %(high)s")),
]]

FIXED = [
    gettext_noop("Balances changed since the bill was priced: price it again"),
]


def checkout_message_display(message: str) -> str:
    return message_display(message, patterns=PATTERNS)
