"""Helpers shared by the membership services: readable money and dates, month arithmetic, events."""

import calendar
import datetime as dt

from django.utils import timezone

from smileloop.clinics.models import Staff
from smileloop.membership import reasons
from smileloop.membership.models import Membership, MembershipEvent


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
