"""Timeline sentences the system writes, shown in the reader's language.

A system entry ("stage lead → treated: paid order #14288 at 静安门诊 on 2026-12-03") is stored as an English
sentence: the API, exports and the audit trail read it as it is, and SQL writes many at once (the lifecycle
jobs). Each writer formats its sentence from a template registered here (`timeline_templates_register`, at
start-up, with gettext_noop so the app's catalogue carries the translation). The 360 page renders every entry
through `timeline_text` (`core.messages.Sentences`): codes in it (stages, statuses, contact kinds, outcomes, field
names) become their labels, and the cause of a stage change is translated the same way. What people wrote (notes,
chats, a patient's answer) matches no template and is shown as written, as are entries written before their
template existed."""

from django.core.exceptions import FieldDoesNotExist
from django.utils.translation import gettext_lazy, gettext_noop, pgettext

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
CREATED = gettext_noop("created (%(source)s)")
CREATED_VIA = gettext_noop("created (%(source)s) via %(channel)s")
CREATED_VIA_CAMPAIGN = gettext_noop("created (%(source)s) via %(channel)s · %(campaign)s")
UPDATED = gettext_noop("updated: %(fields)s")
MERGED = gettext_noop("merged #%(merged)s %(name)s into this record")
MERGED_BECAUSE = gettext_noop("merged #%(merged)s %(name)s into this record: %(reason)s")
FAMILY_ADDED = gettext_noop("family member added: %(name)s (%(relation)s)")
FAMILY_REMOVED = gettext_noop("family member removed: %(name)s (%(relation)s)")
# customers.services.household_head_set: on the old head's timeline (the relation: what they are now to the new
# head) and on the new head's (the same relation, of the old head named).
FAMILY_HEAD_HANDED = gettext_noop("family head handed to %(name)s; this patient is now their %(relation)s")
FAMILY_HEAD_TAKEN = gettext_noop("family head taken over from %(name)s (%(relation)s)")
ERASED = gettext_noop("personal information erased by %(name)s")

# Where a person was created (the `source` of customers.services.customer_upsert).
CREATED_SOURCES = {"api": gettext_lazy("through the API"), "form": gettext_lazy("in the workspace"),
                   "import": gettext_lazy("by an import"), "demo": gettext_lazy("demo data")}
FIELD_SEPARATOR = ", "


def created_text(*, source: str, channel: str = "", campaign: str = "") -> str:
    """The English sentence of a new person's first timeline entry."""
    if channel and campaign:
        return timeline_format(CREATED_VIA_CAMPAIGN, source=source, channel=channel, campaign=campaign)
    if channel:
        return timeline_format(CREATED_VIA, source=source, channel=channel)
    return timeline_format(CREATED, source=source)


def fields_text(fields) -> str:
    """Field names as stored in "updated: …" sentences (read back by `fields_label`)."""
    return FIELD_SEPARATOR.join(sorted(set(fields) - {"mobile_tail"}))


def fields_label(stored: str) -> str:
    """"birthday, home_clinic" → "生日、所属门诊": each customer field by its label, one the model no longer has as
    stored. A list naming no field at all is not this sentence (KeyError: a note that only looks like it)."""
    from smileloop.customers.models import Customer

    labels, known = [], False
    for name in stored.split(FIELD_SEPARATOR):
        try:
            labels.append(str(Customer._meta.get_field(name).verbose_name))
            known = True
        except FieldDoesNotExist:
            labels.append(name)
    if not known:
        raise KeyError(stored)
    return list_join(labels)


def list_join(items) -> str:
    """Items joined the way the reader's language lists them (、 in Chinese)."""
    return pgettext("list separator", ", ").join(str(i) for i in items)


def timeline_templates_install() -> None:
    from smileloop.customers.enums import Channel, InteractionKind, Relation, Stage

    timeline_templates_register(STAGE_EVENT, MARKED_LOST, CONTACTED_BY, labels={
        "stage_from": lambda code: Stage(code).label, "stage_to": lambda code: Stage(code).label,
        "kind": lambda code: InteractionKind(code).label, "cause": timeline_text})
    timeline_templates_register(CREATED_VIA_CAMPAIGN, CREATED_VIA, CREATED, labels={
        "source": lambda code: CREATED_SOURCES.get(code, code), "channel": lambda code: Channel(code).label})
    timeline_templates_register(UPDATED, labels={"fields": fields_label})
    timeline_templates_register(ERASED)
    timeline_templates_register(MERGED_BECAUSE, MERGED, FAMILY_ADDED, FAMILY_REMOVED, FAMILY_HEAD_HANDED,
                                FAMILY_HEAD_TAKEN,
                                labels={"relation": lambda code: Relation(code).label})

