"""Core's periodic jobs (listed in config/schedules.py): forget old Idempotency-Key records; refresh SQLite's
planner statistics."""

import datetime as dt

from django.conf import settings

from smileloop.core.jobs import day_start, local_today
from smileloop.core.models import IdempotencyRecord
from smileloop.core.sql import statistics_refresh

# Clients retry a failed write within minutes or, for a POS that was offline over a weekend, days: a key
# is answered from its record for a week, then forgotten (a retry after that would run as a new write).
IDEMPOTENCY_KEEP_DAYS_DEFAULT = 7


def idempotency_purge_job(*, today: dt.date | None = None, keep_days: int | None = None) -> dict:
    """Delete idempotency records created before the start of (today − keep_days), in one DELETE.
    Idempotent: a second run finds nothing older to delete."""
    keep = keep_days if keep_days is not None else getattr(settings, "IDEMPOTENCY_KEEP_DAYS",
                                                           IDEMPOTENCY_KEEP_DAYS_DEFAULT)
    cutoff = day_start((today or local_today()) - dt.timedelta(days=keep))
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return {"deleted": deleted, "kept_days": keep}


def statistics_job() -> dict:
    """SQLite: a complete ANALYZE, so the planner keeps choosing index lookups as the pool grows (~25 s at 1M
    customers); PostgreSQL: nothing (autovacuum analyzes). Idempotent."""
    return {"analyzed": int(statistics_refresh())}
