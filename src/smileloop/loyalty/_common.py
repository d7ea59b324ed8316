"""Helpers shared by the loyalty services: month arithmetic, ages, ledger key prefixes, configuration bounds."""

import datetime as dt

from django.db import models
from django.utils import timezone

from smileloop.core.bounds import field_bounds
from smileloop.core.dates import add_months, age_on, day_end  # noqa: F401
from smileloop.core.idempotency import service_key_check as key_check  # noqa: F401 (the services' name)


def now_or(at: dt.datetime | None) -> dt.datetime:
    return at or timezone.now()


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
