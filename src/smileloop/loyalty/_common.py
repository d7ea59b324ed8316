"""Helpers shared by the loyalty services: month arithmetic, ages, ledger key prefixes, configuration bounds."""

import calendar
import datetime as dt
from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from smileloop.core.errors import FieldError


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """Same local day `months` later, clamped to the month's end (Jan 31 + 1 month = Feb 28/29)."""
    local = timezone.localtime(moment)
    month0 = local.month - 1 + months
    year, month = local.year + month0 // 12, month0 % 12 + 1
    return local.replace(year=year, month=month, day=min(local.day, calendar.monthrange(year, month)[1]))


def now_or(at: dt.datetime | None) -> dt.datetime:
    return at or timezone.now()


def age_on(birthday: dt.date | None, on: dt.date) -> int | None:
    if birthday is None:
        return None
    return on.year - birthday.year - ((on.month, on.day) < (birthday.month, birthday.day))


def key_check(key: str, *, field: str = "key") -> str:
    from smileloop.core.errors import ValidationFailed

    key = (key or "").strip()
    if not key or len(key) > 150:
        raise ValidationFailed([FieldError(field, "an idempotency key of 1–150 characters is required", key)])
    return key


def field_bounds(field: models.Field) -> tuple | None:
    """(lowest, highest) value a model field's validators accept (its own and the database's range), or None when
    it has no such bound."""
    lows = [v.limit_value for v in field.validators if isinstance(v, MinValueValidator)]
    highs = [v.limit_value for v in field.validators if isinstance(v, MaxValueValidator)]
    return (max(lows), min(highs)) if lows and highs else None


def range_errors(model: type[models.Model], data: dict, names: list[str]) -> list[FieldError]:
    """A field error (stable English, naming the field) for each number in `data` outside its field's bounds.
    Values of another type are left to the model's own validation."""
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


def stored_periods_check(row: models.Model, names: list[str], *, label: str, kind: str = "",
                         field: str | None = None) -> None:
    """Refuse to use `row` when one of its periods is longer than the bounds allow (saved before they existed):
    PeriodOutOfRange naming it, changing nothing, instead of a date computation failing (a 500) on each use.
    Only the upper bound: a 0 stored earlier still means "no expiry" where it did."""
    from smileloop.loyalty.errors import PeriodOutOfRange

    for name in names:
        value, bounds = getattr(row, name), field_bounds(row._meta.get_field(name))
        if value is not None and bounds is not None and value > bounds[1]:
            raise PeriodOutOfRange(f"{kind}{label} has {name} = {value}, longer than the {bounds[1]} allowed; correct it in "
                                   "the loyalty settings first", name=label, field=field)
