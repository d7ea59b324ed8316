"""How a task's trigger reads on its page."""

from django import template
from django.urls import reverse
from django.utils.translation import gettext as _

from smileloop.followups.selectors import playbook_visit_offset

register = template.Library()


@register.simple_tag
def task_anchor(task) -> dict:
    """What triggered the task, in words (the page shows its time beside it), and where to read it: the anchor key
    is an internal name ("procedure:123", "recall:2026-11-20", "task:7~m12" after a merge); a key this does not
    know is shown as stored."""
    kind, _sep, rest = task.anchor_key.split("~", 1)[0].partition(":")
    procedure = str((task.context or {}).get("procedure") or "")
    tooth = str((task.context or {}).get("tooth") or "")
    if kind == "task" and rest.isdigit():
        return {"text": _("escalated from task #%(id)s") % {"id": rest},
                "url": reverse("followups:task", args=[int(rest)])}
    if kind == "procedure" and procedure and tooth:
        return {"text": _("%(procedure)s, tooth %(tooth)s") % {"procedure": procedure, "tooth": tooth}}
    card = str((task.context or {}).get("card_code") or "")
    texts = {
        "survey": _("a satisfaction survey answer"),
        "procedure": procedure or _("a procedure record"),
        "appt": _("a missed appointment") + (f" · {procedure}" if procedure else ""),
        "visit": _("a completed visit"),
        "plan": _("unfinished treatment plan “%(title)s”") % {"title": procedure} if procedure
        else _("an unfinished treatment plan"),
        "recall": _("%(procedure)s due") % {"procedure": procedure} if procedure else _("a check-up due"),
        "dormant": _("the last visit"),
        # the consulted-not-treated playbook's key ("consult:2026-12-04", the visit's day) was shown as stored
        "consult": _("%(procedure)s on %(date)s") % {"procedure": procedure, "date": rest} if procedure
        else _("a consultation on %(date)s") % {"date": rest},
        "lead": _("became a lead"),
        # the birthday, gift-card and segment playbooks' keys ("birthday:2026", "giftcard-reminder:12", "segment:3")
        # were shown as stored on the Chinese page
        "birthday": _("the birthday"),
        "giftcard-reminder": _("a reminder about friends-and-family card %(code)s") % {"code": card} if card
        else _("a friends-and-family card reminder"),
        "segment": _("joining the segment"),
    }
    return {"text": texts.get(kind, task.anchor_key)}


@register.simple_tag
def playbook_step_days(playbook) -> dict:
    """The active steps' days as the playbook list shows them: "+N d" after the trigger day, or, for a playbook that
    counts from a visit (`selectors.playbook_visit_offset`), the day after the visit each call is made ("after the
    visit: day 3, day 7, day 14"), which is what its description says."""
    delays = [s.delay_days for s in playbook.steps.all() if s.is_active]
    offset = playbook_visit_offset(playbook)
    if offset is None:
        return {"after_visit": False, "days": [f"+{d}{_('d')}" for d in delays]}
    return {"after_visit": True, "days": [_("day %(n)s") % {"n": offset + d} for d in delays]}
