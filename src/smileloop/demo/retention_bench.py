"""`smileloop bench retention` (issue 4 §8): segment counts against hand-written SQL, the daily follow-up run,
keyword tagging throughput, and the lifecycle back-fill, on the current database's largest chain.

Runs on whatever DATABASE_URL names (a seeded benchmark database: `smileloop seed --customers 1000000 …`).
The follow-up and lifecycle parts roll their writes back, the keyword part works on a chain of its own that it
rolls back; the segment part leaves two bench tags on the chain (created once, reused on later runs).
"""

import datetime as dt

from django.db import connection
from django.utils import timezone

from smileloop.clinics.models import Chain
from smileloop.customers.models import Customer
from smileloop.demo.bench import BenchResult, machine_info
from smileloop.followups.bench import bench_followups
from smileloop.lifecycle.bench import lifecycle_bench
from smileloop.segments.bench import bench_segments
from smileloop.tagging.bench import bench_keyword
from smileloop.visits.models import Appointment, Order

TARGETS = {"segment_ratio": 1.5, "segment_ms": 1000, "followups_s": 60, "keyword_msgs_per_s": 20_000}


def run(*, today: dt.date | None = None, repeat: int = 5, keyword_messages: int = 200_000, log=print,
        parts: tuple[str, ...] = ("segments", "followups", "keywords", "lifecycle")) -> BenchResult:
    chain = (Chain.objects.filter(customers__isnull=False).order_by("-id").first())
    if chain is None:
        raise RuntimeError("no seeded chain: run `smileloop seed --customers N` first")
    today = today or timezone.localdate()
    result = BenchResult(machine=machine_info())
    customers = Customer.objects.filter(chain=chain, merged_into__isnull=True).count()
    result.scale = {"customers": customers, "orders": Order.objects.filter(chain=chain).count(),
                    "appointments": Appointment.objects.filter(chain=chain).count(), "clinics": chain.clinics.count()}
    result.add("database", connection.vendor + f", chain #{chain.id} {chain.name}, as of {today.isoformat()}")

    if "segments" in parts:
        log("segments: five rule trees, compile() against hand-written SQL …")
        seg = bench_segments(chain=chain, repeat=repeat, today=today)
        for case in seg["cases"]:
            ok = (case["ratio"] is not None and case["ratio"] <= TARGETS["segment_ratio"]
                  and case["orm_median_ms"] <= TARGETS["segment_ms"])
            result.add(f"segment: {case['name']} ({case['count']:,} patients)",
                       f"ORM p50 {case['orm_median_ms']:,.1f} · p95 {case['orm_p95_ms']:,.1f} ms; hand-written SQL "
                       f"p50 {case['sql_median_ms']:,.1f} · p95 {case['sql_p95_ms']:,.1f} ms; ratio {case['ratio']}"
                       + ("" if ok else " — **missed**"),
                       "≤ 1.5× hand-written and ≤ 1 s")

    if "followups" in parts:
        log("follow-ups: the daily run (close by goal, then generate), then again …")
        fu = bench_followups(chain=chain, today=today)
        ok = fu["first_run_s"] <= TARGETS["followups_s"]
        slowest = sorted(fu["seconds_by_playbook"].items(), key=lambda kv: -kv[1])[:3]
        result.add("follow-up daily run (close by goal + generate), first",
                   f"{fu['first_run_s']:,.1f} s (close {fu['first_close_s']:,.1f} s, generate "
                   f"{fu['first_generate_s']:,.1f} s); {fu['tasks_created']:,} tasks created, "
                   f"{fu['tasks_closed']:,} closed; slowest: "
                   + ", ".join(f"{k} {v:,.1f} s" for k, v in slowest) + ("" if ok else " — **missed**"), "≤ 60 s")
        result.add("follow-up daily run, second (idempotent)",
                   f"{fu['second_run_s']:,.1f} s; {fu['second_run_created']:,} tasks created", "creates 0")

    if "keywords" in parts:
        log(f"keyword tagging: {keyword_messages:,} messages …")
        kw = bench_keyword(messages=keyword_messages, log=log)
        result.add("keyword matching (Aho-Corasick, one pass per message)",
                   f"{kw['match_msgs_per_s']:,} msgs/s", "≥ 20,000 msgs/s")
        ok = kw["scan_msgs_per_s"] >= TARGETS["keyword_msgs_per_s"]
        result.add("keyword tagging end to end (read, match, per-day hits, tag)",
                   f"{kw['scan_msgs_per_s']:,} msgs/s wall ({kw['scan_s']:.2f} s for {kw['messages']:,}; "
                   f"{kw['scan_msgs_per_cpu_s']:,} per CPU second of this process; {kw['tagged']:,} patients "
                   f"tagged)" + ("" if ok else " — **missed**"), "≥ 20,000 msgs/s")

    if "lifecycle" in parts:
        log("lifecycle: stages_derive over the chain (back-fill), again, then the daily stages job …")
        lc = lifecycle_bench(chain=chain, today=today)
        result.add("lifecycle back-fill (stages_derive, every customer reset to lead first)",
                   f"{lc['derive_s']:,.1f} s ({lc.get('derive_customers_per_s', 0):,} customers/s)")
        result.add("lifecycle back-fill again (nothing to change)", f"{lc['derive_again_s']:,.1f} s")
        result.add("lifecycle daily job (dormant / lost) a month later", f"{lc['stages_job_s']:,.1f} s")
    return result
