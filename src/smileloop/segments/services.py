"""Writes for saved segments. A rule is validated (structure and the chain's clinics, tags and tiers)
before anything is written, so a rejected write changes nothing."""

from collections.abc import Callable

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from smileloop.clinics.models import Chain, Staff
from smileloop.core.errors import Conflict, FieldError, ValidationFailed
from smileloop.segments.models import Segment
from smileloop.segments.rules.validation import validate

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
    elif Segment.objects.filter(chain_id=chain_id, name=name, is_active=True).exclude(
            pk=segment.pk if segment else None).exists():
        errors.append(FieldError("name", _("is already used by another segment"), name))
    if not isinstance(description, str) or len(description) > DESCRIPTION_MAX:
        errors.append(FieldError("description", _("must be a text of at most %(n)d characters") % {"n": DESCRIPTION_MAX},
                                 str(description)[:40]))
    errors += rule_errors(rule, chain_id=chain_id)
    if errors:
        raise ValidationFailed(errors)
    return {"name": name, "description": description, "rule": rule}


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
                   actor: Staff | None) -> Segment:
    chain_id = chain if isinstance(chain, int) else chain.pk
    clean = _clean(chain_id=chain_id, name=name, description=description, rule=rule, segment=None)
    return _save(Segment(chain_id=chain_id, created_by=actor, updated_by=actor, **clean), [])


@transaction.atomic
def segment_update(*, segment: Segment, actor: Staff | None, name: str | None = None, rule: dict | None = None,
                   description: str | None = None) -> Segment:
    """Change what is given (None = keep)."""
    clean = _clean(chain_id=segment.chain_id, segment=segment,
                   name=segment.name if name is None else name,
                   description=segment.description if description is None else description,
                   rule=segment.rule if rule is None else rule)
    for key, value in clean.items():
        setattr(segment, key, value)
    segment.updated_by = actor
    return _save(segment, [*clean, "updated_by", "updated_at"])


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
def segment_delete(*, segment: Segment, actor: Staff | None) -> Segment:
    """Soft delete: the row stays (campaigns may point at it) and its name is free again. Refused (SegmentInUse)
    while something registered with segment_user_register uses it."""
    users = [user for check in _SEGMENT_USERS for user in check(segment)]
    if users:
        named = ", ".join(f"{kind} “{name}”" for kind, name in users)
        raise SegmentInUse(f"segment “{segment.name}” is used by {named}: change or deactivate that first",
                           users=users)
    segment.is_active = False
    segment.updated_by = actor
    segment.save(update_fields=["is_active", "updated_by", "updated_at"])
    return segment
