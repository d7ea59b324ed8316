"""Periodic follow-up work (scheduled in config/schedules.py by the jobs capability)."""

import datetime as dt
import logging
from zoneinfo import ZoneInfo

from django.utils import timezone

from smileloop.clinics.models import Chain
from smileloop.followups.services import followups_reassign_inactive, playbooks_install_defaults
from smileloop.followups.services.generate import followups_close_by_goal, followups_generate, followups_lapse

log = logging.getLogger(__name__)


def followups_job(*, today: dt.date | None = None) -> dict:
    """For every chain: install any missing built-in playbook, move open tasks off deactivated staff, close
    tasks whose goal happened, cancel those that lapsed, then create the tasks due. Idempotent: a second run the same day creates and
    closes nothing. Cheap enough to run hourly in working hours, which makes same-day triggers (no-shows)
    show up the same day."""
    totals = {"chains": 0, "created": 0, "closed": 0, "lapsed": 0, "installed": 0, "reassigned": 0}
    for chain in Chain.objects.order_by("id"):
        tz = ZoneInfo(chain.time_zone or "Asia/Shanghai")
        day = today or timezone.localtime(timezone.now(), tz).date()
        # a run for a given day (catching up, tests) lapses tasks as that morning's run would have
        now = timezone.now() if today is None else dt.datetime.combine(today, dt.time(8), tzinfo=tz)
        totals["installed"] += playbooks_install_defaults(chain=chain)["created"]
        totals["reassigned"] += followups_reassign_inactive(chain_id=chain.id)
        totals["closed"] += followups_close_by_goal(chain=chain, today=day)["closed"]
        totals["lapsed"] += followups_lapse(chain=chain, now=now)
        totals["created"] += followups_generate(chain=chain, today=day)["created"]
        totals["chains"] += 1
    log.info("followups_job %s", totals)
    return totals
