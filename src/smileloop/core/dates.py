"""Calendar arithmetic shared by the apps that date things by months (memberships, points, packages, gift cards)."""

import calendar
import datetime as dt

from django.utils import timezone


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """Same local day `months` later, clamped to the month's end (Jan 31 + 1 month = Feb 28/29)."""
    local = timezone.localtime(moment)
    month0 = local.month - 1 + months
    year, month = local.year + month0 // 12, month0 % 12 + 1
    return local.replace(year=year, month=month, day=min(local.day, calendar.monthrange(year, month)[1]))


def day_end(moment: dt.datetime) -> dt.datetime:
    """The last instant of `moment`'s local day. Value "valid until D" is valid all of D: an expiry counted from the
    moment of issue (15:00 + 30 days) ended partway through D while every page and message says "until D"."""
    return timezone.localtime(moment).replace(hour=23, minute=59, second=59, microsecond=999999)


def age_on(birthday: dt.date | None, on: dt.date) -> int | None:
    """Whole years of age on `on` (None without a birthday)."""
    if birthday is None:
        return None
    return on.year - birthday.year - ((on.month, on.day) < (birthday.month, birthday.day))
