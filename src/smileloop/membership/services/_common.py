"""Helpers shared by the membership services: readable money and dates, month arithmetic, events."""

import calendar
import datetime as dt
from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from smileloop.clinics.models import Staff
from smileloop.core.errors import FieldError
from smileloop.membership import reasons
from smileloop.membership.errors import PeriodOutOfRange
from smileloop.membership.models import Membership, MembershipEvent, MembershipPlan


def yuan(fen: int) -> str:
    """3012000 → '30,120.00' (the form staff read in event reasons)."""
    sign = "-" if fen < 0 else ""
    fen = abs(int(fen))
    return f"{sign}{fen // 100:,}.{fen % 100:02d}"


def day(moment: dt.datetime) -> str:
    """A moment as the local calendar day, e.g. '2026-03-02' (the chain's time zone is the site's)."""
    return timezone.localdate(moment).isoformat()


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """Same local day `months` later, clamped to the month's end (Jan 31 + 1 month = Feb 28/29)."""
    local = timezone.localtime(moment)
    month0 = local.month - 1 + months
    year, month = local.year + month0 // 12, month0 % 12 + 1
    last = calendar.monthrange(year, month)[1]
    return local.replace(year=year, month=month, day=min(local.day, last))


def field_bounds(field: models.Field) -> tuple | None:
    """(lowest, highest) value a model field's validators accept (its own and the database's range), or None when
    it has no such bound."""
    lows = [v.limit_value for v in field.validators if isinstance(v, MinValueValidator)]
    highs = [v.limit_value for v in field.validators if isinstance(v, MaxValueValidator)]
    return (max(lows), min(highs)) if lows and highs else None


def range_errors(model: type[models.Model], data: dict, names: list[str]) -> list[FieldError]:
    """A field error (stable English, naming the field) for each number in `data` outside its field's bounds (the
    models' `within` validators). Values of another type are left to the other checks."""
    errors = []
    for name in names:
        value = data.get(name)
        bounds = field_bounds(model._meta.get_field(name))
        if bounds is None or isinstance(value, bool) or not isinstance(value, int | Decimal):
            continue
        low, high = bounds
        if not low <= value <= high:
            whole = isinstance(low, int) and isinstance(high, int)
            message = f"must be a whole number between {low} and {high}" if whole else f"must be between {low} and {high}"
            errors.append(FieldError(name, message, str(value)))
    return errors


def plan_duration_ok(plan: MembershipPlan) -> bool:
    """False for a plan whose duration is longer than the bounds allow (saved before they existed; 100000 months
    is past the year 9999, where the date computation fails)."""
    high = field_bounds(MembershipPlan._meta.get_field("duration_months"))[1]
    return plan.duration_months is None or plan.duration_months <= high


def plan_duration_check(plan: MembershipPlan) -> None:
    """Refuse to date a membership by a plan `plan_duration_ok` refuses: PeriodOutOfRange naming the plan,
    changing nothing, instead of a 500 on each enrolment or renewal."""
    if not plan_duration_ok(plan):
        high = field_bounds(MembershipPlan._meta.get_field("duration_months"))[1]
        raise PeriodOutOfRange(f"plan {plan.name} has duration_months = {plan.duration_months}, longer than the "
                               f"{high} allowed; correct it in the membership settings first", name=plan.name,
                               field="plan_id")


def now_or(as_of: dt.datetime | None) -> dt.datetime:
    return as_of or timezone.now()


def event_add(*, membership: Membership, kind: str, at: dt.datetime, msg: dict, data: dict | None = None,
              actor: Staff | None = None) -> MembershipEvent:
    """Record an event; `msg` (membership.reasons.message) is its reason, stored as English text and as data
    the pages render in the reader's language."""
    return MembershipEvent.objects.create(membership=membership, kind=kind, occurred_at=at,
                                          reason=reasons.english(msg)[:500], data={**(data or {}), "msg": msg},
                                          actor=actor)


def age_on(birthday: dt.date | None, on: dt.date) -> int | None:
    if birthday is None:
        return None
    return on.year - birthday.year - ((on.month, on.day) < (birthday.month, birthday.day))
