"""Timeline sentences the system writes, shown in the reader's language.

A system entry ("stage lead → treated: paid order #14288 at 静安门诊 on 2026-12-03") is stored as an English
sentence: the API, exports and the audit trail read it as it is, and SQL writes many at once (the lifecycle
jobs). Each writer formats its sentence from a template registered here (`timeline_templates_register`, at
start-up, with gettext_noop so the app's catalogue carries the translation). The 360 page matches the stored
text against the templates and renders the matching one through the catalogue (`timeline_text`): codes in it
(stages, statuses, contact kinds, outcomes) become their labels, and a nested sentence (the cause of a stage
change) is translated the same way. Text no template matches (notes, chats, entries written before a template
existed) is shown as stored."""

import re
from collections.abc import Callable

from django.utils.translation import gettext, gettext_noop

_ARG = re.compile(r"%\\\((\w+)\\\)s")
_templates: dict[str, re.Pattern] = {}
_labels: dict[str, Callable[[str], str]] = {}


def timeline_templates_register(*templates: str, labels: dict[str, Callable[[str], str]] | None = None) -> None:
    """Templates like "arrived at %(clinic)s on %(day)s"; `labels` turns an argument's stored value into the
    reader's words ({"status": lambda code: AppointmentStatus(code).label}), for every template using that name."""
    for template in templates:
        pattern = _ARG.sub(lambda m: f"(?P<{m.group(1)}>.+?)", re.escape(template))
        _templates[template] = re.compile(f"^{pattern}$", re.DOTALL)
    _labels.update(labels or {})


def timeline_format(template: str, **args) -> str:
    """The English sentence to store (the template must be registered for pages to translate it)."""
    return template % args


def timeline_text(text: str) -> str:
    """`text` in the active language when a registered template matches it, else as stored."""
    for template, pattern in _templates.items():
        found = pattern.match(text or "")
        if found:
            try:
                args = {name: _label(name, value) for name, value in found.groupdict().items()}
            except (KeyError, ValueError):  # a code no label knows: not this template's sentence
                continue
            return gettext(template) % args
    return text


def _label(name: str, value: str) -> str:
    if name == "cause":
        return timeline_text(value)
    label = _labels.get(name)
    return value if label is None else str(label(value))


STAGE_EVENT = gettext_noop("stage %(stage_from)s → %(stage_to)s: %(cause)s")
CONTACTED_BY = gettext_noop("%(kind)s by %(name)s")
MARKED_LOST = gettext_noop("marked lost by %(name)s: %(reason)s")


def _register_own() -> None:
    from smileloop.customers.enums import InteractionKind, Stage

    timeline_templates_register(STAGE_EVENT, MARKED_LOST, CONTACTED_BY, labels={
        "stage_from": lambda code: Stage(code).label, "stage_to": lambda code: Stage(code).label,
        "kind": lambda code: InteractionKind(code).label})
