"""Periodic job (scheduled in config/schedules.py by the jobs owner): create the day's survey links."""

import datetime as dt

from django.utils import timezone

from smileloop.clinics.models import Chain
from smileloop.surveys import selectors, services


def surveys_job(*, today: dt.date | None = None) -> dict:
    """For every chain, one survey per completed visit of yesterday (plus the catch-up window). Idempotent:
    a second run the same day creates nothing. Expiry needs no bookkeeping: it is read from `expires_at`."""
    counts = {"chains": 0, "visits": 0, "created": 0}
    for chain in Chain.objects.order_by("id"):
        day = today or timezone.localdate(timezone=selectors.chain_tz(chain))
        result = services.surveys_create_for_visits(chain=chain, today=day)
        counts["chains"] += 1
        counts["visits"] += result["visits"]
        counts["created"] += result["created"]
    return counts
