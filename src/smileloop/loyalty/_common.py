"""Helpers shared by the loyalty services: month arithmetic, ages, ledger key prefixes."""

import calendar
import datetime as dt

from django.utils import timezone


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
    from smileloop.core.errors import FieldError, ValidationFailed

    key = (key or "").strip()
    if not key or len(key) > 150:
        raise ValidationFailed([FieldError(field, "an idempotency key of 1–150 characters is required", key)])
    return key
