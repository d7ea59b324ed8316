"""Loyalty refusals in the reader's language.

The services raise English messages (the API's, which stay English). The card's forms and the admin show them through
`loyalty_message_display`: fixed messages through the catalogue (the services mark them with `gettext_noop`), those
carrying a name, a number or an amount through the patterns below (amounts in fen are shown in yuan)."""

import re

from django.utils.translation import gettext_noop

from smileloop.core.messages import message_display
from smileloop.core.money import yuan_grouped


def _yuan(fen: str) -> str:
    return yuan_grouped(int(fen))


_FEN = {"available": _yuan, "needed": _yuan, "price": _yuan}

PATTERNS = [
    # services/packages.py (package_sell)
    (re.compile(r"^(?P<name>.+) was merged into another record: cover the record kept$"),
     gettext_noop("%(name)s was merged into another record: cover the record kept")),
    (re.compile(r"^(?P<name>.+) is not the holder or a member of the holder's household$"),
     gettext_noop("%(name)s is not the holder or a member of the holder's household")),
    (re.compile(r"^this package covers at most (?P<count>\d+) people$"),
     gettext_noop("this package covers at most %(count)s people")),
    (re.compile(r"^add up to 0 fen but the package costs (?P<price>\d+) fen$"),
     gettext_noop("add up to ¥0.00 but the package costs ¥%(price)s"), _FEN),
    (re.compile(r"^idempotency key (?P<key>.+) was already used for another sale$"),
     gettext_noop("this form was already used for another sale: open the form again to sell anew")),
    # services/wallet.py (a sale paid from stored value)
    (re.compile(r"^Not enough stored value: (?P<available>\d+) fen available, (?P<needed>\d+) fen needed$"),
     gettext_noop("Not enough stored value: ¥%(available)s available, ¥%(needed)s needed"), _FEN),
]


def loyalty_message_display(message) -> str:
    return message_display(message, patterns=PATTERNS)
