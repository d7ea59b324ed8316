"""Timeline sentences the system writes, shown in the reader's language.

A system entry ("stage lead → treated: paid order #14288 at 静安门诊 on 2026-12-03") is stored as an English
sentence: the API, exports and the audit trail read it as it is, and SQL writes many at once (the lifecycle
jobs). Each writer formats its sentence from a template registered here (`timeline_templates_register`, at
start-up, with gettext_noop so the app's catalogue carries the translation). The 360 page renders it through
`timeline_text` (`core.messages.Sentences`): codes in it (stages, statuses, contact kinds, outcomes) become their
labels, and the cause of a stage change is translated the same way. Notes, chats and entries written before a
template existed are shown as stored."""

from django.utils.translation import gettext_noop

from smileloop.core.messages import Sentences

TIMELINE = Sentences()
timeline_templates_register = TIMELINE.register
timeline_text = TIMELINE.display


def timeline_format(template: str, **args) -> str:
    """The English sentence to store (the template must be registered for pages to translate it)."""
    return template % args


STAGE_EVENT = gettext_noop("stage %(stage_from)s → %(stage_to)s: %(cause)s")
CONTACTED_BY = gettext_noop("%(kind)s by %(name)s")
MARKED_LOST = gettext_noop("marked lost by %(name)s: %(reason)s")


def timeline_templates_install() -> None:
    from smileloop.customers.enums import InteractionKind, Stage

    timeline_templates_register(STAGE_EVENT, MARKED_LOST, CONTACTED_BY, labels={
        "stage_from": lambda code: Stage(code).label, "stage_to": lambda code: Stage(code).label,
        "kind": lambda code: InteractionKind(code).label, "cause": timeline_text})
