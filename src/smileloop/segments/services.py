"""Writes for saved segments. A rule is validated (structure and the chain's clinics, tags and tiers)
before anything is written, so a rejected write changes nothing."""

from collections.abc import Callable

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from smileloop.clinics.enums import Perm
from smileloop.clinics.models import Chain, Clinic, Staff
from smileloop.core.bounds import CONTROL_CHARACTERS, has_control
from smileloop.core.errors import Conflict, FieldError, PermissionDenied, ValidationFailed
from smileloop.core.scoping import Scope
from smileloop.segments.models import Segment
from smileloop.segments.rules.validation import clinic_codes_to_ids, validate

NAME_MAX = 100
DESCRIPTION_MAX = 500


def under(errors: list[FieldError], prefix: str = "rule") -> list[FieldError]:
    """Validator paths put under `prefix` ("all[2]" → "rule.all[2]"), as a request body names them."""
    return [FieldError(f"{prefix}.{e.field}" if e.field != "rule" else prefix, e.message, e.value) for e in errors]


def rule_errors(rule, *, chain_id: int) -> list[FieldError]:
    return under(validate(rule, chain_id=chain_id))


def _clean(*, chain_id: int, name, description, rule, segment: Segment | None) -> dict:
    errors: list[FieldError] = []
    name = (name or "").strip() if isinstance(name, str) else name
    description = (description or "").strip() if isinstance(description, str) else description
    if not isinstance(name, str) or not name or len(name) > NAME_MAX:
        errors.append(FieldError("name", _("is required (at most %(n)d characters)") % {"n": NAME_MAX},
                                 str(name or "")[:40]))
    elif has_control(name):  # a bell or an escape showed as nothing in the segment list and the builder
        errors.append(FieldError("name", _(CONTROL_CHARACTERS), name[:40]))
    elif Segment.objects.filter(chain_id=chain_id, name=name, is_active=True).exclude(
            pk=segment.pk if segment else None).exists():
        errors.append(FieldError("name", _("is already used by another segment"), name))
    if not isinstance(description, str) or len(description) > DESCRIPTION_MAX:
        errors.append(FieldError("description", _("must be a text of at most %(n)d characters") % {"n": DESCRIPTION_MAX},
                                 str(description)[:40]))
    elif has_control(description, allowed="\t\r\n"):
        errors.append(FieldError("description", _(CONTROL_CHARACTERS), description[:40]))
    errors += rule_errors(rule, chain_id=chain_id)
    if errors:
        raise ValidationFailed(errors)
    # stored with clinic ids only, whichever way the rule named them (see rules.validation)
    return {"name": name, "description": description, "rule": clinic_codes_to_ids(rule, chain_id=chain_id)}


# --- whose segment it is ------------------------------------------------------------------------------
# A chain's segment (clinic null) is what marketing counts on and what the chain's playbooks may be triggered by:
# only chain roles change it. A clinic's segment is its clinic staff's too. `scope=None` is the system (seed,
# admin, tests): no check.
KEEP = object()


def segment_can_change(scope: Scope, segment: Segment) -> bool:
    if not scope.can(Perm.SEGMENT_MANAGE) or segment.chain_id != scope.chain_id:
        return False
    return scope.is_chain_wide or (segment.clinic_id is not None and scope.allows_clinic(segment.clinic_id))


def _require_can_change(scope: Scope | None, segment: Segment) -> None:
    if scope is None or segment_can_change(scope, segment):
        return
    if segment.clinic_id is None:
        raise PermissionDenied(_("“%(name)s” is the whole chain's segment: only chain roles may change it. Save it "
                                 "under another name to keep a copy for your clinic.") % {"name": segment.name})
    raise PermissionDenied(_("“%(name)s” is another clinic's segment: you may not change it.")
                           % {"name": segment.name})


def _owner(*, chain_id: int, scope: Scope | None, clinic, creating: bool = True) -> int | None:
    """The owning clinic's id (None = the chain) for what was asked, else a field error. Clinic staff's segments
    are their clinic's: with one clinic that is the default, with several they must say which."""
    clinic_id = clinic.pk if isinstance(clinic, Clinic) else clinic
    if clinic_id is None:
        if scope is None or scope.is_chain_wide:
            return None
        if not creating:
            raise ValidationFailed([FieldError("clinic", _("only chain roles make a segment the whole chain's"),
                                               "")])
        if len(scope.clinic_ids) == 1:
            return next(iter(scope.clinic_ids))
        raise ValidationFailed([FieldError("clinic", _("choose which of your clinics the segment is for"), "")])
    try:
        clinic_id = int(clinic_id)
    except (TypeError, ValueError):
        raise ValidationFailed([FieldError("clinic", _("is not a clinic id"), str(clinic_id)[:40])])
    if not Clinic.objects.filter(pk=clinic_id, chain_id=chain_id).exists():
        raise ValidationFailed([FieldError("clinic", _("is not a clinic of this chain"), str(clinic_id))])
    if scope is not None and not scope.allows_clinic(clinic_id):
        raise ValidationFailed([FieldError("clinic", _("is not one of your clinics"), str(clinic_id))])
    return clinic_id


def _save(segment: Segment, fields: list[str]) -> Segment:
    try:
        with transaction.atomic():
            if segment.pk is None:
                segment.save()
            else:
                segment.save(update_fields=fields)
    except IntegrityError:  # a concurrent save took the name between the check and the write
        raise ValidationFailed([FieldError("name", _("is already used by another segment"), segment.name)])
    return segment


@transaction.atomic
def segment_create(*, chain: Chain | int, name: str, rule: dict, description: str = "",
                   actor: Staff | None, scope: Scope | None = None, clinic: Clinic | int | None = None) -> Segment:
    """`clinic`: the owning clinic (None: the chain's for chain roles, the only clinic of clinic staff)."""
    chain_id = chain if isinstance(chain, int) else chain.pk
    if scope is not None and not scope.can(Perm.SEGMENT_MANAGE):
        raise PermissionDenied(_("Your role may not save segments"))
    errors: list[FieldError] = []
    try:
        clinic_id = _owner(chain_id=chain_id, scope=scope, clinic=clinic)
    except ValidationFailed as exc:
        errors, clinic_id = exc.errors, None
    try:
        clean = _clean(chain_id=chain_id, name=name, description=description, rule=rule, segment=None)
    except ValidationFailed as exc:
        raise ValidationFailed(errors + exc.errors)
    if errors:
        raise ValidationFailed(errors)
    return _save(Segment(chain_id=chain_id, clinic_id=clinic_id, created_by=actor, updated_by=actor, **clean), [])


@transaction.atomic
def segment_update(*, segment: Segment, actor: Staff | None, name: str | None = None, rule: dict | None = None,
                   description: str | None = None, scope: Scope | None = None, clinic=KEEP) -> Segment:
    """Change what is given (None = keep; `clinic`: KEEP, None for the chain's, or a clinic). Clinic staff change
    only their clinics' segments and cannot make one the chain's."""
    _require_can_change(scope, segment)
    errors: list[FieldError] = []
    clinic_id = segment.clinic_id
    if clinic is not KEEP:
        try:
            clinic_id = _owner(chain_id=segment.chain_id, scope=scope, clinic=clinic, creating=False)
        except ValidationFailed as exc:
            errors = exc.errors
    try:
        clean = _clean(chain_id=segment.chain_id, segment=segment,
                       name=segment.name if name is None else name,
                       description=segment.description if description is None else description,
                       rule=segment.rule if rule is None else rule)
    except ValidationFailed as exc:
        raise ValidationFailed(errors + exc.errors)
    if errors:
        raise ValidationFailed(errors)
    for key, value in clean.items():
        setattr(segment, key, value)
    segment.clinic_id = clinic_id
    segment.updated_by = actor
    return _save(segment, [*clean, "clinic", "updated_by", "updated_at"])


# Apps above this one whose live configuration names a saved segment (followups: a playbook triggered by it) say
# so here; deleting a segment in use would silently stop what depends on it (no more tasks, no error anywhere).
_SEGMENT_USERS: list[Callable[[Segment], list[tuple[str, str]]]] = []


class SegmentInUse(Conflict):
    code = "segment_in_use"

    def __init__(self, message: str, *, users: list[tuple[str, str]]):
        super().__init__(message)
        self.users = users  # [(kind, name)]: what a page lists in its reader's words


def segment_user_register(users: Callable[[Segment], list[tuple[str, str]]]) -> None:
    """`users(segment)`: what uses the segment now as (kind, name) pairs ("playbook", "…"), else []."""
    _SEGMENT_USERS.append(users)


@transaction.atomic
def segment_delete(*, segment: Segment, actor: Staff | None, scope: Scope | None = None) -> Segment:
    """Soft delete: the row stays (campaigns may point at it) and its name is free again. Refused (SegmentInUse)
    while something registered with segment_user_register uses it, and for clinic staff unless it is their
    clinic's."""
    _require_can_change(scope, segment)
    users = [user for check in _SEGMENT_USERS for user in check(segment)]
    if users:
        named = ", ".join(f"{kind} “{name}”" for kind, name in users)
        raise SegmentInUse(f"segment “{segment.name}” is used by {named}: change or deactivate that first",
                           users=users)
    segment.is_active = False
    segment.updated_by = actor
    segment.save(update_fields=["is_active", "updated_by", "updated_at"])
    return segment
