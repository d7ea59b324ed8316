"""Lifecycle timings for `smileloop bench retention` (issue 4 §8): stages_derive over a whole chain (a back-fill
from the facts: a dozen set-based statements), the same again (the idempotent re-run, nothing to change) and
the daily stages_job (dormant / lost). Works on SQLite and PostgreSQL.

Runs inside one transaction that is rolled back at the end unless `keep=True`, so the benchmark database keeps
the stages it was seeded with and every timing starts from the same state."""

import datetime as dt
import time

from django.db import transaction
from django.utils import timezone

from smileloop.clinics.models import Chain
from smileloop.customers.models import Customer
from smileloop.lifecycle.services import stages_derive, stages_side_update


class _Rollback(Exception):
    pass


def _timed(func, **kwargs) -> tuple[float, dict]:
    started = time.perf_counter()
    counts = func(**kwargs)
    return round(time.perf_counter() - started, 3), counts


def lifecycle_bench(*, chain: Chain | None = None, today: dt.date | None = None, keep: bool = False) -> dict:
    """Seconds for stages_derive (first and second run) and the daily side-state update on the largest chain
    (or `chain`), with the counts each run returned."""
    chain = chain or Chain.objects.order_by("-id").first()
    if chain is None:
        return {"error": "no chain to measure; seed first"}
    today = today or timezone.localdate()
    out: dict = {"customers": Customer.objects.filter(chain=chain, merged_into__isnull=True).count()}
    try:
        with transaction.atomic():
            # the reset makes the derive do the full back-fill work (every customer moves)
            Customer.objects.filter(chain=chain).update(stage="lead", stage_reached="lead")
            out["derive_s"], out["derive_counts"] = _timed(stages_derive, chain=chain, today=today)
            out["derive_again_s"], out["derive_again_counts"] = _timed(stages_derive, chain=chain, today=today)
            later = today + dt.timedelta(days=30)  # a month on: some patients turn dormant / lost
            out["stages_job_s"], out["stages_job_counts"] = _timed(stages_side_update, chain=chain, today=later)
            if not keep:
                raise _Rollback
    except _Rollback:
        pass
    if out["customers"]:
        out["derive_customers_per_s"] = round(out["customers"] / max(out["derive_s"], 1e-6))
    return out
