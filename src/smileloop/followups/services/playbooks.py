"""Playbooks as business configuration: the built-in set per chain, and the editor's validated writes."""

import re
import string
import uuid

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils.translation import gettext_noop

from smileloop.clinics.models import Chain
from smileloop.core.bounds import CONTROL_CHARACTERS, has_control
from smileloop.core.errors import FieldError, NotFound, ValidationFailed
from smileloop.followups.defaults import COMPLAINT_CODE, DEFAULT_PLAYBOOKS
from smileloop.followups.enums import (
    MAX_AFTERCARE_DAYS,
    SCRIPT_VARIABLES,
    AssigneeRule,
    ContactChannel,
    Goal,
    Trigger,
)
from smileloop.followups.models import STEP_REMOVED, Playbook, PlaybookStep
from smileloop.visits.enums import Category

_VARIABLE = re.compile(r"\{([^{}]*)\}")
MAX_DELAY_DAYS = 730
MAX_SLA_HOURS = 24 * 30
MAX_LAPSE_DAYS = 365
# A script is read out on a call; a description is a line on the list. Neither had a bound: a pasted document was saved
# and then rendered into every task of the step.
MAX_SCRIPT_CHARS = 2000
MAX_DESCRIPTION_CHARS = 2000


@transaction.atomic
def playbooks_install_defaults(*, chain: Chain) -> dict:
    """Create the built-in playbooks the chain does not have yet (by code); never touches edited ones."""
    have = set(Playbook.objects.filter(chain=chain).values_list("code", flat=True))
    created = 0
    for spec in DEFAULT_PLAYBOOKS:
        if spec["code"] in have:
            continue
        playbook = Playbook.objects.create(
            chain=chain, code=spec["code"], name=spec["name"], trigger=spec["trigger"],
            trigger_params=dict(spec["trigger_params"]), goal=spec["goal"], is_active=True, is_builtin=True,
            description=spec["description"])
        PlaybookStep.objects.bulk_create([PlaybookStep(playbook=playbook, **step) for step in spec["steps"]])
        created += 1
    return {"created": created, "existing": len(have)}


def complaint_playbook(*, chain_id: int) -> Playbook:
    """The chain's complaint playbook, installed on first use (complaints must never be lost)."""
    playbook = Playbook.objects.filter(chain_id=chain_id, code=COMPLAINT_CODE).first()
    if playbook is None:
        spec = next(s for s in DEFAULT_PLAYBOOKS if s["code"] == COMPLAINT_CODE)
        try:
            with transaction.atomic():
                playbook = Playbook.objects.create(
                    chain_id=chain_id, code=spec["code"], name=spec["name"], trigger=spec["trigger"],
                    trigger_params={}, goal=spec["goal"], is_builtin=True, description=spec["description"])
                PlaybookStep.objects.bulk_create([PlaybookStep(playbook=playbook, **s) for s in spec["steps"]])
        except IntegrityError:
            playbook = Playbook.objects.get(chain_id=chain_id, code=COMPLAINT_CODE)
    return playbook


# --- editor -----------------------------------------------------------------------------------------------


SCRIPT_BRACES = gettext_noop("has a brace without its pair: write a variable as {name}")


def script_braces_paired(script: str) -> bool:
    """True when the template can be filled in: every "{" closes with a "}" around a variable name."""
    try:
        list(string.Formatter().parse(script or ""))
    except ValueError:
        return False
    return True


def script_unknown_variables(script: str) -> list[str]:
    return sorted({name for name in _VARIABLE.findall(script or "") if name not in SCRIPT_VARIABLES})


def _int(value, field: str, errors: list, *, low: int, high: int):
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        errors.append(FieldError(field, f"must be a whole number between {low} and {high}", str(value)))
        return None
    if not low <= number <= high:
        errors.append(FieldError(field, f"must be between {low} and {high}", str(value)))
        return None
    return number


# The consulted-not-treated trigger's aftercare window (days after surgery; 0 = none) and open-plan skip, refused in
# words a clinic manager reads (followups.forms lists them for the catalogue).
AFTERCARE_NOT_A_NUMBER = gettext_noop("must be a whole number of days from 0 to 365 (0: a recent surgery does not "
                                      "stop the call)")
AFTERCARE_NEGATIVE = gettext_noop("cannot be negative: enter 0 to 365 days (0: a recent surgery does not stop the "
                                  "call)")
AFTERCARE_TOO_LARGE = gettext_noop("must be at most 365 days")
FLAG_INVALID = gettext_noop("must be yes or no")
_FLAG_VALUES = {"true": True, "1": True, "on": True, "yes": True, "false": False, "0": False, "off": False, "no": False}


def _aftercare_days(value, field: str, errors: list) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        errors.append(FieldError(field, AFTERCARE_NOT_A_NUMBER, str(value)[:50]))
        return None
    if number < 0:
        errors.append(FieldError(field, AFTERCARE_NEGATIVE, str(value)))
        return None
    if number > MAX_AFTERCARE_DAYS:
        errors.append(FieldError(field, AFTERCARE_TOO_LARGE, str(value)))
        return None
    return number


def _flag(value, field: str, errors: list) -> bool | None:
    """A strict yes/no: a default-on switch must not turn off because of a typo."""
    if isinstance(value, bool):
        return value
    flag = _FLAG_VALUES.get(str(value).strip().lower())
    if flag is None:
        errors.append(FieldError(field, FLAG_INVALID, str(value)[:50]))
    return flag


def trigger_params_clean(trigger: str, params, *, chain_id: int) -> tuple[dict, list[FieldError]]:
    """Validate the parameters a trigger reads; unknown keys are errors (a typo must not be ignored)."""
    errors: list[FieldError] = []
    if params is None:
        params = {}
    if not isinstance(params, dict):
        return {}, [FieldError("trigger_params", "must be an object", str(params))]
    allowed: dict[str, str] = {
        Trigger.PROCEDURE: {"category": "category", "latest_only": "bool"},
        Trigger.PLAN_UNFINISHED: {"days_without_appointment": "days"},
        Trigger.CONSULTED_NOT_TREATED: {"days_after_visit": "days", "aftercare_days": "aftercare",
                                        "skip_open_plan": "flag"},
        Trigger.RECALL: {"months": "months", "categories": "categories"},
        Trigger.DORMANT: {"months_without_visit": "months"},
        Trigger.BIRTHDAY_NEXT_MONTH: {"day_of_month": "dom", "days_before": "ahead"},
        Trigger.SEGMENT: {"segment_id": "segment"},
    }.get(trigger, {})
    clean: dict = {}
    for key, value in params.items():
        kind = allowed.get(key)
        f = f"trigger_params.{key}"
        if kind is None:
            errors.append(FieldError(f, f"is not a parameter of the trigger {trigger}", str(value)))
        elif kind == "category":
            if value not in Category.values:
                errors.append(FieldError(f, f"must be one of {', '.join(Category.values)}", str(value)))
            else:
                clean[key] = value
        elif kind == "categories":
            values = value if isinstance(value, list) else [v.strip() for v in str(value).split(",") if v.strip()]
            bad = [v for v in values if v not in Category.values]
            if bad or not values:
                errors.append(FieldError(f, f"unknown categories: {', '.join(map(str, bad)) or '(none given)'}",
                                         str(value)))
            else:
                clean[key] = values
        elif kind == "bool":
            clean[key] = value in (True, "true", "True", "1", 1, "on")
        elif kind == "aftercare":
            number = _aftercare_days(value, f, errors)
            if number is not None:
                clean[key] = number
        elif kind == "flag":
            flag = _flag(value, f, errors)
            if flag is not None:
                clean[key] = flag
        else:
            low, high = {"days": (1, 365), "months": (1, 60), "dom": (1, 28), "ahead": (1, 90),
                         "segment": (1, 2**62)}[kind]
            number = _int(value, f, errors, low=low, high=high)
            if number is not None:
                clean[key] = number
    if trigger == Trigger.BIRTHDAY_NEXT_MONTH and {"day_of_month", "days_before"} <= set(clean):
        errors.append(FieldError("trigger_params.days_before", "use either days_before or day_of_month, not both",
                                 str(clean["days_before"])))
    if trigger == Trigger.PROCEDURE and "category" not in clean and not any(e.field.endswith("category")
                                                                              for e in errors):
        errors.append(FieldError("trigger_params.category", "is required for a procedure trigger", ""))
    if trigger == Trigger.SEGMENT and "segment_id" in clean:
        segment_error = _segment_check(clean["segment_id"], chain_id=chain_id)
        if segment_error:
            errors.append(FieldError("trigger_params.segment_id", segment_error, str(clean["segment_id"])))
    elif trigger == Trigger.SEGMENT and not errors:
        errors.append(FieldError("trigger_params.segment_id", "is required for a segment trigger", ""))
    return clean, errors


def _segment_check(segment_id: int, *, chain_id: int) -> str | None:
    from smileloop.followups.services import sources

    return sources.segment_check(segment_id, chain_id=chain_id)


def step_clean(data: dict, *, prefix: str = "") -> tuple[dict, list[FieldError]]:
    errors: list[FieldError] = []
    clean: dict = {}
    delay = _int(data.get("delay_days", 0), f"{prefix}delay_days", errors, low=0, high=MAX_DELAY_DAYS)
    sla = _int(data.get("sla_hours", 24), f"{prefix}sla_hours", errors, low=1, high=MAX_SLA_HOURS)
    lapse = data.get("lapse_days")
    if lapse is not None and str(lapse).strip() != "":
        lapse = _int(lapse, f"{prefix}lapse_days", errors, low=1, high=MAX_LAPSE_DAYS)
    else:
        lapse = None
    rule = data.get("assignee_rule") or ""
    if rule not in AssigneeRule.values:
        errors.append(FieldError(f"{prefix}assignee_rule", f"must be one of {', '.join(AssigneeRule.values)}", rule))
    channel = data.get("channel") or ""
    if channel not in ContactChannel.values:
        errors.append(FieldError(f"{prefix}channel", f"must be one of {', '.join(ContactChannel.values)}", channel))
    script = (data.get("script") or "").strip()
    unknown = script_unknown_variables(script)
    if unknown:
        errors.append(FieldError(
            f"{prefix}script",
            f"unknown variables: {', '.join('{' + u + '}' for u in unknown)} "
            f"(allowed: {', '.join('{' + v + '}' for v in SCRIPT_VARIABLES)})", script))
    elif not script_braces_paired(script):
        # A stray brace was saved, then every task of the step showed the template as written ("{name}您好{"),
        # its variables unfilled (script.script_render cannot read it): refused here instead.
        errors.append(FieldError(f"{prefix}script", SCRIPT_BRACES, script[:50]))
    if not script:
        errors.append(FieldError(f"{prefix}script", "is required", ""))
    elif len(script) > MAX_SCRIPT_CHARS:
        errors.append(FieldError(f"{prefix}script", f"must be at most {MAX_SCRIPT_CHARS} characters", script[:50]))
    elif has_control(script, allowed="\t\r\n"):
        errors.append(FieldError(f"{prefix}script", CONTROL_CHARACTERS, script[:50]))
    clean.update(delay_days=delay, sla_hours=sla, lapse_days=lapse, assignee_rule=rule, channel=channel,
                 script=script)
    return clean, errors


# Triggers a chain may start playbooks of its own with. A complaint has one playbook per chain (surveys and the inbox
# open its tasks) and gift-card reminders come from the cards' own schedule: a second of either would double them.
CREATABLE_TRIGGERS = tuple(t for t in Trigger.values if t not in (Trigger.COMPLAINT, Trigger.GIFTCARD_REMINDER))


PLAYBOOK_KEY = re.compile(r"[0-9a-f]{12,32}")
# Refusals of the form's key, in the staff page's words (followups.forms.errors_apply translates them).
KEY_INVALID = gettext_noop("This form's key is not valid (12 to 32 lowercase hex digits): reload the page and try "
                           "again. Nothing was created.")
KEY_USED = gettext_noop("This form was already used for a playbook with another trigger: reload the page and try "
                        "again. Nothing was created.")


@transaction.atomic
def playbook_create(*, chain_id: int, trigger: str, data: dict, key: str | None = None) -> Playbook:
    """A playbook of the chain's own (name, description, goal, trigger and its parameters), inactive: it creates
    tasks once it has steps and staff activate it. A refusal writes nothing.

    Its code is `custom-<key>`: the new-playbook form carries a key (12–32 hex digits), so the same form submitted
    twice (a double click, a reload) returns the first playbook instead of making a second one; without a key the
    code is random."""
    if trigger not in CREATABLE_TRIGGERS:
        raise ValidationFailed([FieldError("trigger", f"must be one of {', '.join(CREATABLE_TRIGGERS)}",
                                           str(trigger))])
    if key is not None and not PLAYBOOK_KEY.fullmatch(key):
        raise ValidationFailed([FieldError("key", KEY_INVALID, str(key)[:64])])
    code = f"custom-{key or uuid.uuid4().hex[:12]}"
    playbook = Playbook(chain_id=chain_id, trigger=trigger, code=code, name="", goal=Goal.NONE, is_active=False)
    _playbook_apply(playbook, {**data, "is_active": False})
    if not key:
        playbook.save()
        return playbook
    existing = Playbook.objects.filter(chain_id=chain_id, code=code).first()
    if existing is None:
        try:
            with transaction.atomic():
                playbook.save()
            return playbook
        except IntegrityError:  # the same form's other submit won the race
            existing = Playbook.objects.get(chain_id=chain_id, code=code)
    if existing.trigger != trigger:
        raise ValidationFailed([FieldError("key", KEY_USED, key)])
    return existing


@transaction.atomic
def playbook_update(*, playbook: Playbook, data: dict) -> Playbook:
    """Edit name, description, goal, activity and trigger parameters (the trigger itself is fixed)."""
    _playbook_apply(playbook, data)
    playbook.save(update_fields=["name", "description", "goal", "trigger_params", "is_active", "updated_at"])
    return playbook


def _playbook_apply(playbook: Playbook, data: dict) -> None:
    """Validate `data` against the playbook's trigger and set it on the instance (not saved); ValidationFailed
    lists every bad field."""
    errors: list[FieldError] = []
    name = (data.get("name", playbook.name) or "").strip()
    if not name:
        errors.append(FieldError("name", "is required", ""))
    elif len(name) > 100:
        errors.append(FieldError("name", "must be at most 100 characters", name))
    elif has_control(name):  # one line: no line breaks either
        errors.append(FieldError("name", CONTROL_CHARACTERS, name))
    description = (data.get("description", playbook.description) or "").strip()
    if len(description) > MAX_DESCRIPTION_CHARS:
        errors.append(FieldError("description", f"must be at most {MAX_DESCRIPTION_CHARS} characters",
                                 description[:50]))
    elif has_control(description, allowed="\t\r\n"):
        errors.append(FieldError("description", CONTROL_CHARACTERS, description[:50]))
    goal = data.get("goal", playbook.goal)
    if goal not in Goal.values:
        errors.append(FieldError("goal", f"must be one of {', '.join(Goal.values)}", str(goal)))
    params, param_errors = trigger_params_clean(playbook.trigger, data.get("trigger_params", playbook.trigger_params),
                                                chain_id=playbook.chain_id)
    errors += param_errors
    if errors:
        raise ValidationFailed(errors)
    playbook.name = name
    playbook.description = description
    playbook.goal = goal
    playbook.trigger_params = params
    if "is_active" in data:
        playbook.is_active = bool(data["is_active"])


@transaction.atomic
def playbook_activate(*, playbook: Playbook, active: bool) -> Playbook:
    playbook.is_active = active
    playbook.save(update_fields=["is_active", "updated_at"])
    return playbook


@transaction.atomic
def playbook_step_save(*, playbook: Playbook, data: dict, step: PlaybookStep | None = None) -> PlaybookStep:
    """Add a step (at the end) or edit one. Open tasks keep the step; their script follows the edit."""
    clean, errors = step_clean(data)
    if errors:
        raise ValidationFailed(errors)
    if step is None:
        # One adder at a time per playbook: two at once read the same last seq and the second broke the unique order.
        Playbook.objects.select_for_update().filter(pk=playbook.pk).values_list("pk", flat=True).first()
        seq = (playbook.steps.filter(is_active=True).aggregate(m=Max("seq"))["m"] or 0) + 1
        return PlaybookStep.objects.create(playbook=playbook, seq=seq, **clean)
    if step.playbook_id != playbook.id or not step.is_active:
        raise NotFound("Step not found")
    for key, value in clean.items():
        setattr(step, key, value)
    step.save(update_fields=list(clean))
    return step


@transaction.atomic
def playbook_step_remove(*, step: PlaybookStep) -> None:
    """Delete a step without tasks; retire one with tasks (their history stays readable, its open tasks are
    cancelled: nobody should work a step the chain removed)."""
    from django.utils import timezone

    from smileloop.followups.enums import TaskStatus

    if step.tasks.exists():
        step.is_active = False
        step.save(update_fields=["is_active"])
        step.tasks.filter(status=TaskStatus.OPEN).update(status=TaskStatus.CANCELLED, closed_reason=STEP_REMOVED,
                                                         updated_at=timezone.now())
    else:
        step.delete()


def segment_users(segment) -> list[tuple[str, str]]:
    """The active playbooks a saved segment triggers (segments.segment_user_register): deleting it would stop them
    creating tasks without a word."""
    names = (Playbook.objects.filter(chain_id=segment.chain_id, is_active=True, trigger=Trigger.SEGMENT,
                                     trigger_params__segment_id=segment.pk).order_by("id").values_list("name", flat=True))
    return [("playbook", name) for name in names]
