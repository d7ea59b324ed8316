"""Lifecycle's jobs (listed in config/schedules.py): the daily dormant/lost move and the by-hand re-derive."""

import datetime as dt
import logging

from django.utils import timezone

from smileloop.clinics.models import Chain
from smileloop.core.jobs import chain_today
from smileloop.lifecycle.services import stages_derive, stages_side_update

logger = logging.getLogger(__name__)


def _each_chain(run, today: dt.date | None) -> dict:
    now = timezone.now()
    totals: dict = {"chains": 0}
    for chain in Chain.objects.order_by("id"):
        counts = run(chain=chain, today=chain_today(chain, today), now=now)
        totals["chains"] += 1
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
    return totals


def stages_job(*, today: dt.date | None = None) -> dict:
    """Daily: customers without a visit for N months become dormant, M months later lost; leads who never
    came are lost after L days (each chain's settings, its own local date). One timeline event per move,
    e.g. "no visit since 2025-11-02 (12 months)". Idempotent."""
    return _each_chain(stages_side_update, today)


def stages_derive_job(*, today: dt.date | None = None) -> dict:
    """By hand (`smileloop run lifecycle.derive`): re-derive every stage from the facts after a bulk load."""
    return _each_chain(stages_derive, today)
