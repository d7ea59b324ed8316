"""Service messages in the reader's language.

Services raise English messages: they are also what the API and the JSON reports say, which stay English. A page
translates a message when it shows it (`message_display`): a fixed message through the catalogue (the apps list
theirs with `gettext_noop` so that makemessages finds them), a message that carries a number or a list through
the patterns below. A message no catalogue knows is shown as it is rather than hidden."""

import re
from collections.abc import Callable, Sequence

from django.utils.translation import gettext, gettext_noop

PATTERNS: list[tuple[re.Pattern, str]] = [
    (re.compile(r"^must be a whole number between (?P<low>-?\d+) and (?P<high>-?\d+)$"),
     gettext_noop("must be a whole number between %(low)s and %(high)s")),
    (re.compile(r"^must be between (?P<low>-?\d+) and (?P<high>-?\d+)$"),
     gettext_noop("must be between %(low)s and %(high)s")),
    (re.compile(r"^must be at most (?P<n>\d+) characters$"), gettext_noop("must be at most %(n)s characters")),
    (re.compile(r"^must be one of (?P<choices>.+)$"), gettext_noop("must be one of %(choices)s")),
]


def message_display(message, *, patterns: Sequence[tuple] = ()) -> str:
    """`message` in the active language when a catalogue or a pattern (an app's own `patterns`, then these) has
    it, else as it is. A pattern is (regex, template) or (regex, template, labels): `labels` turn a group's value
    into what the reader sees (fen into yuan)."""
    message = str(message)
    translated = gettext(message)
    if translated != message:
        return translated
    for pattern, template, *rest in [*patterns, *PATTERNS]:
        found = pattern.match(message)
        if found:
            labels = rest[0] if rest else {}
            args = {name: labels[name](value) if name in labels else value
                    for name, value in found.groupdict().items()}
            return gettext(template) % args
    return message


_ARG = re.compile(r"%\\\((\w+)\\\)s")


class Sentences:
    """Sentences the system stores in English (timeline entries, ledger memos, event details: the API, exports and
    the audit trail read them as they are) and pages show in the reader's language. A writer formats a template
    registered here (marked with gettext_noop, so its app's catalogue translates it); `display` matches the stored
    text against the templates and renders the matching one through the catalogue. `labels` turn an argument's
    stored value into words (a stage code into its label, fen into yuan); a label that does not know the value
    (KeyError, ValueError) means the text is not that template's sentence. Text no template matches is shown as
    stored.

    `shown` gives a stored template the template a page shows instead (its own msgid), when the stored wording
    cannot be shown as it is: "paid by #%(payer)s" is shown as "paid by %(payer)s", the payer's label giving "#12"
    or, to a reader who may not see that patient, "张*". `display(text, labels=...)` overrides labels for one
    reading (what depends on the reader)."""

    def __init__(self):
        self._templates: dict[str, re.Pattern] = {}
        self._shown: dict[str, str] = {}
        self._labels: dict[str, Callable[[str], str]] = {}

    def register(self, *templates: str, labels: dict[str, Callable[[str], str]] | None = None,
                 shown: dict[str, str] | None = None) -> None:
        for template in templates:
            pattern = _ARG.sub(lambda m: f"(?P<{m.group(1)}>.+?)", re.escape(template))
            self._templates[template] = re.compile(f"^{pattern}$", re.DOTALL)
        self._labels.update(labels or {})
        self._shown.update(shown or {})

    def display(self, text: str, *, labels: dict[str, Callable[[str], str]] | None = None) -> str:
        for template, pattern in self._templates.items():
            found = pattern.match(text or "")
            if found:
                try:
                    args = {name: self._label(name, value, labels) for name, value in found.groupdict().items()}
                except (KeyError, ValueError):
                    continue
                return gettext(self._shown.get(template, template)) % args
        return text

    def _label(self, name: str, value: str, labels: dict[str, Callable[[str], str]] | None) -> str:
        label = (labels or {}).get(name) or self._labels.get(name)
        return value if label is None else str(label(value))
