"""Benchmark hook (issue 4 §8): the daily follow-up run — goal closer, then generation — timed over a chain,
then run again to show it is idempotent (the second run creates nothing). Target: ≤ 60 s at 1M customers /
10M orders on PostgreSQL. Tasks the benchmark made are deleted afterwards (`keep=False`), so it can be
repeated on the same database and leaves a demo's tasks as they were."""

import datetime as dt
import time

from django.db import connection

from smileloop.clinics.models import Chain
from smileloop.followups.models import FollowupTask
from smileloop.followups.services import playbooks_install_defaults
from smileloop.followups.services.generate import CATCHUP_DAYS, followups_close_by_goal, followups_generate


def _run(chain: Chain, today: dt.date, timings: dict | None = None) -> tuple[float, float, dict, dict]:
    t0 = time.perf_counter()
    closed = followups_close_by_goal(chain=chain, today=today)
    t1 = time.perf_counter()
    created = followups_generate(chain=chain, today=today, timings=timings)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, closed, created


def bench_followups(*, chain: Chain, today: dt.date, keep: bool = False) -> dict:
    """Seconds for the first and the second daily run, tasks created and closed, per-playbook seconds."""
    playbooks_install_defaults(chain=chain)
    before = FollowupTask.objects.order_by("-id").values_list("id", flat=True).first() or 0
    timings: dict = {}
    close_1, generate_1, closed_1, created_1 = _run(chain, today, timings)
    close_2, generate_2, closed_2, created_2 = _run(chain, today)
    result = {
        "vendor": connection.vendor,
        "today": today.isoformat(),
        "catchup_days": CATCHUP_DAYS,
        "first_run_s": round(close_1 + generate_1, 3),
        "first_close_s": round(close_1, 3),
        "first_generate_s": round(generate_1, 3),
        "tasks_created": created_1["created"],
        "tasks_closed": closed_1["closed"],
        "created_by_playbook": created_1["by_playbook"],
        "seconds_by_playbook": timings,
        "second_run_s": round(close_2 + generate_2, 3),
        "second_run_created": created_2["created"],
        "second_run_closed": closed_2["closed"],
        "open_tasks": FollowupTask.objects.filter(chain_id=chain.id, status="open").count(),
    }
    if not keep:
        FollowupTask.objects.filter(chain_id=chain.id, pk__gt=before).delete()
    return result
