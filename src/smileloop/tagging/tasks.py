"""Periodic job (scheduled in config/schedules.py by the jobs owner): keyword tags from the timeline."""

import datetime as dt

from smileloop.clinics.models import Chain
from smileloop.tagging.keywords import keyword_tags_scan, scan_until


def keyword_tags_job(*, today: dt.date | None = None) -> dict:
    """Scan every chain's new chat and call messages. `today` (replays, tests) scans messages dated up to the
    end of that day in the chain's time zone; the default is now. Idempotent: the watermark means a second run
    reads no message twice."""
    counts = {"chains": 0, "messages": 0, "matched": 0, "hits": 0, "tagged": 0}
    for chain in Chain.objects.order_by("id"):
        result = keyword_tags_scan(chain=chain, until=scan_until(chain, today))
        counts["chains"] += 1
        for name in ("messages", "matched", "hits", "tagged"):
            counts[name] += result[name]
    return counts
