"""Service messages in the reader's language.

Services raise English messages: they are also what the API and the JSON reports say, which stay English. A page
translates a message when it shows it (`message_display`): a fixed message through the catalogue (the apps list
theirs with `gettext_noop` so that makemessages finds them), a message that carries a number or a list through
the patterns below. A message no catalogue knows is shown as it is rather than hidden."""

import re
from collections.abc import Sequence

from django.utils.translation import gettext, gettext_noop

PATTERNS: list[tuple[re.Pattern, str]] = [
    (re.compile(r"^must be a whole number between (?P<low>-?\d+) and (?P<high>-?\d+)$"),
     gettext_noop("must be a whole number between %(low)s and %(high)s")),
    (re.compile(r"^must be between (?P<low>-?\d+) and (?P<high>-?\d+)$"),
     gettext_noop("must be between %(low)s and %(high)s")),
    (re.compile(r"^must be at most (?P<n>\d+) characters$"), gettext_noop("must be at most %(n)s characters")),
    (re.compile(r"^must be one of (?P<choices>.+)$"), gettext_noop("must be one of %(choices)s")),
]


def message_display(message, *, patterns: Sequence[tuple[re.Pattern, str]] = ()) -> str:
    """`message` in the active language when a catalogue or a pattern (an app's own `patterns`, then these) has
    it, else as it is."""
    message = str(message)
    translated = gettext(message)
    if translated != message:
        return translated
    for pattern, template in [*patterns, *PATTERNS]:
        found = pattern.match(message)
        if found:
            return gettext(template) % found.groupdict()
    return message
