"""Segment benchmark (issue 4 §8): five representative rule trees counted through `compile(...).count()` and
through hand-written SQL answering the same question, in the same run.

Reports the median and p95 of both, their ratio, and fails loudly if the two counts differ (the hand-written
SQL is an independent statement of what each rule means). Targets: ORM ≤ 1.5× the hand-written time and
≤ 1 s at 1M customers / 10M orders on PostgreSQL.

The trees need two tags with patients and a clinic with coordinates. A seeded chain (`smileloop seed`) has
no tags: the bench then creates two manual tags, `bench-interest` (every 5th customer) and `bench-value`
(every 13th), in one INSERT … SELECT each, and reuses them on later runs.
"""

import datetime as dt
import math
import statistics
import time
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import Count
from django.db.models.functions import Mod
from django.utils import timezone

from smileloop.clinics.models import Chain, Clinic
from smileloop.customers.models import Consent, Customer, Interaction
from smileloop.segments.rules.compiler import chain_time_zone
from smileloop.segments.rules.context import CONTACT_KINDS, KM_PER_DEGREE, VISIT_STATUSES
from smileloop.segments.selectors import chain_scope, compile
from smileloop.tagging.models import CustomerTag, Tag, TagGroup
from smileloop.visits.models import Appointment, Order, Procedure, ServiceItem, TreatmentPlan

TARGETS = {"ratio": 1.5, "orm_median_ms": 1000}


class BenchCountMismatch(AssertionError):
    """The ORM and the hand-written SQL disagree: the compiler (or the SQL) is wrong."""


@dataclass(frozen=True)
class Case:
    name: str
    rule: dict
    sql: str  # SELECT COUNT(*) …, with %s parameters
    params: list


def _tables() -> dict[str, str]:
    models = {"c": Customer, "ct": CustomerTag, "tg": Tag, "o": Order, "a": Appointment, "tp": TreatmentPlan, "p": Procedure,
              "si": ServiceItem, "i": Interaction, "cs": Consent}
    return {k: connection.ops.quote_name(m._meta.db_table) for k, m in models.items()}


def bench_tags(chain: Chain) -> tuple[Tag, Tag]:
    """The two tags with the most patients in the chain, or the bench's own two (created once)."""
    top = list(CustomerTag.objects.filter(chain_id=chain.pk).values("tag_id").annotate(n=Count("customer_id"))
               .order_by("-n")[:2])
    if len(top) == 2:
        tags = {t.pk: t for t in Tag.objects.filter(pk__in=[r["tag_id"] for r in top])}
        return tags[top[0]["tag_id"]], tags[top[1]["tag_id"]]
    from smileloop.tagging.services import rule_tag_sync

    group, _ = TagGroup.objects.get_or_create(chain=chain, code="bench", defaults={"name": "Bench", "kind": "interest"})
    made = []
    for code, every in (("bench-interest", 5), ("bench-value", 13)):
        tag, _ = Tag.objects.get_or_create(chain=chain, code=code, defaults={"group": group, "name": code})
        ids = (Customer.objects.filter(chain=chain, merged_into__isnull=True).annotate(m=Mod("id", every))
               .filter(m=0).values("id"))
        rule_tag_sync(tag=tag, customer_ids=ids)
        made.append(tag)
    return made[0], made[1]


def bench_cases(chain: Chain, *, today: dt.date) -> list[Case]:
    """The five trees and their hand-written SQL (the same text on PostgreSQL and SQLite)."""
    t = _tables()
    tz = chain_time_zone()

    def day_start(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time.min, tzinfo=tz)

    def window(days: int) -> tuple[dt.datetime, dt.datetime]:
        return day_start(today - dt.timedelta(days=days - 1)), day_start(today + dt.timedelta(days=1))

    interest, value = bench_tags(chain)
    clinic = Clinic.objects.filter(chain=chain, latitude__isnull=False, longitude__isnull=False).order_by("id").first()
    if clinic is None:
        raise RuntimeError("the bench needs a clinic with coordinates")
    lat0, lng0 = float(clinic.latitude), float(clinic.longitude)
    cos0 = math.cos(math.radians(lat0))

    def near(km: float) -> tuple[str, list]:
        r = km / KM_PER_DEGREE
        sql = ("c.latitude IS NOT NULL AND c.longitude IS NOT NULL "
               "AND c.latitude >= %s AND c.latitude <= %s AND c.longitude >= %s AND c.longitude <= %s "
               "AND ((c.latitude - %s) * (c.latitude - %s) "
               "+ (c.longitude - %s) * %s * (c.longitude - %s) * %s) <= %s")
        # The box bounds as Decimal, like the numeric columns: a float parameter (float8, bound on the server)
        # would make PostgreSQL cast the column and skip the coordinate index (4× slower, as the ORM's
        # Decimal bounds are not).
        box = [Decimal(repr(v)) for v in (lat0 - r, lat0 + r, lng0 - r / cos0, lng0 + r / cos0)]
        return sql, [*box, lat0, lat0, lng0, cos0, lng0, cos0, r * r]

    def spend_at_least(days: int, fen: int) -> tuple[str, list]:
        # Lifetime spend bounds any window's spend (the denormalised invariant), so it rules customers out
        # before the per-customer sum; the sum reads the (customer, ordered_at) index.
        start, end = window(days)
        return (f"c.lifetime_spend_fen >= %s AND COALESCE((SELECT SUM(o.amount_fen - o.refunded_fen) "
                f"FROM {t['o']} o WHERE o.customer_id = c.id AND o.ordered_at >= %s AND o.ordered_at < %s), 0) >= %s",
                [fen, start, end, fen])

    rows_in = connection.vendor == "sqlite"

    def has(table: str, alias: str, where: str, *, join: str = "", negated: bool = False) -> str:
        # As a person would write it for the database: SQLite runs a correlated EXISTS once per customer of the
        # chain and never as a join, so there a positive test reads the rows once (IN); NOT EXISTS everywhere.
        if rows_in and not negated:
            return f"c.id IN (SELECT {alias}.customer_id FROM {table} {alias}{join} WHERE {where})"
        exists = f"EXISTS (SELECT 1 FROM {table} {alias}{join} WHERE {alias}.customer_id = c.id AND {where})"
        return f"NOT {exists}" if negated else exists

    def tagged(code: str, *, negated: bool = False) -> tuple[str, list]:
        # By id, as a person writing the query would (and as compile() resolves codes before the statement).
        tag_id = Tag.objects.filter(chain_id=chain.pk, code=code).values_list("id", flat=True).first() or 0
        return has(t["ct"], "ct", "ct.tag_id = %s", negated=negated), [tag_id]

    base = f"SELECT COUNT(*) FROM {t['c']} c WHERE c.chain_id = %s AND c.merged_into_id IS NULL"
    tag_value_sql, tag_value_params = tagged(value.code)
    no_tag_value_sql, _ = tagged(value.code, negated=True)
    tag_interest_sql, tag_interest_params = tagged(interest.code)
    cases = []

    # 1. 高价值沉睡客户: paid ≥ ¥5,000 in two years, no visit for 180 days, not already tagged high value
    spend_sql, spend_params = spend_at_least(730, 500_000)
    cases.append(Case("high value, dormant", {"all": [
        {"field": "spend_fen_days", "op": "gte", "value": 500_000, "days": 730},
        {"field": "last_visit_days", "op": "older_than", "value": 180},
        {"field": "tag", "op": "none_of", "value": [value.code]},
    ]}, f"{base} AND c.last_visit_at IS NOT NULL AND c.last_visit_at < %s AND {spend_sql} AND {no_tag_value_sql}",
        [chain.pk, window(180)[0], *spend_params, *tag_value_params]))

    # 2. 3公里内种植意向未到店: tagged interest, never visited, within 3 km of the clinic
    near_sql, near_params = near(3)
    cases.append(Case("interest, never visited, within 3 km", {"all": [
        {"field": "tag", "op": "any_of", "value": [interest.code]},
        {"field": "last_visit_days", "op": "never"},
        {"field": "distance_km", "op": "lte", "value": 3, "clinic": clinic.pk},
    ]}, f"{base} AND c.last_visit_at IS NULL AND {near_sql} AND {tag_interest_sql}",
        [chain.pk, *near_params, *tag_interest_params]))

    # 3. 治疗未完成: an unfinished plan, no staff contact in 14 days, no visit in 30 days
    contact_start = window(14)[0]
    visit_start, visit_end = window(30)
    kinds = ", ".join(["%s"] * len(CONTACT_KINDS))
    statuses = ", ".join(["%s"] * len(VISIT_STATUSES))
    cases.append(Case("unfinished plan, not contacted, no recent visit", {"all": [
        {"field": "unfinished_plan", "op": "is", "value": True},
        {"field": "last_contact_days", "op": "older_than", "value": 14},
        {"not": {"field": "visits_days", "op": "gte", "value": 1, "days": 30}},
    ]}, f"{base} AND {has(t['tp'], 'tp', 'tp.status = %s AND tp.steps_done < tp.steps_total')} "
        f"AND NOT EXISTS (SELECT 1 FROM {t['i']} i WHERE i.customer_id = c.id AND i.kind IN ({kinds}) "
        f"AND i.author_id IS NOT NULL AND i.occurred_at >= %s) "
        f"AND NOT EXISTS (SELECT 1 FROM {t['a']} a WHERE a.customer_id = c.id AND a.chain_id = %s "
        f"AND a.status IN ({statuses}) AND a.start_at >= %s AND a.start_at < %s)",
        [chain.pk, "active", *CONTACT_KINDS, contact_start, chain.pk, *VISIT_STATUSES, visit_start, visit_end]))

    # 4. 5公里内高价值活跃: (high-value tag or ≥ ¥10,000 in a year), within 5 km, visited in the last year
    near_sql, near_params = near(5)
    spend_sql, spend_params = spend_at_least(365, 1_000_000)
    cases.append(Case("valuable, within 5 km, active", {"all": [
        {"any": [{"field": "tag", "op": "any_of", "value": [value.code]},
                 {"field": "spend_fen_days", "op": "gte", "value": 1_000_000, "days": 365}]},
        {"field": "distance_km", "op": "lte", "value": 5, "clinic": clinic.pk},
        {"field": "last_visit_days", "op": "within", "value": 365},
    ]}, f"{base} AND c.last_visit_at IS NOT NULL AND c.last_visit_at >= %s AND {near_sql} "
        f"AND ({tag_value_sql} OR ({spend_sql}))",
        [chain.pk, window(365)[0], *near_params, *tag_value_params, *spend_params]))

    # 5. 种植术后关怀: implant in the last 90 days, plan finished, WeChat consent, spent ≤ ¥20,000 in 90 days
    start90, end90 = window(90)
    procedure_item = f" JOIN {t['si']} si ON si.id = p.item_id"
    cases.append(Case("implant in 90 days, plan done, consent, modest spend", {"all": [
        {"field": "procedure_days", "op": "within", "value": 90, "category": "implant"},
        {"field": "unfinished_plan", "op": "is", "value": False},
        {"field": "consent", "op": "granted", "value": "marketing_wechat"},
        {"field": "spend_fen_days", "op": "lte", "value": 2_000_000, "days": 90},
    ]}, f"{base} AND {has(t['p'], 'p', 'si.category = %s AND p.performed_on >= %s AND p.performed_on <= %s', join=procedure_item)} "
        f"AND {has(t['tp'], 'tp', 'tp.status = %s AND tp.steps_done < tp.steps_total', negated=True)} "
        f"AND (SELECT cs.granted FROM {t['cs']} cs WHERE cs.customer_id = c.id AND cs.purpose = %s "
        f"ORDER BY cs.recorded_at DESC, cs.id DESC LIMIT 1) = %s "
        f"AND COALESCE((SELECT SUM(o.amount_fen - o.refunded_fen) FROM {t['o']} o WHERE o.customer_id = c.id "
        f"AND o.ordered_at >= %s AND o.ordered_at < %s), 0) <= %s",
        [chain.pk, "implant", today - dt.timedelta(days=90), today, "active", "marketing_wechat", True,
         start90, end90, 2_000_000]))
    return cases


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _sql_count(sql: str, params: list) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def _has_spend(node) -> bool:
    if isinstance(node, dict):
        return node.get("field") == "spend_fen_days" or any(_has_spend(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_spend(v) for v in node)
    return False


def bench_segments(*, chain: Chain, repeat: int = 5, today: dt.date | None = None, explain: bool = False,
                   grouped: bool = True) -> dict:
    """Count each case `repeat` times both ways (after one warm-up each, interleaved); raise
    BenchCountMismatch if a count differs. Returns the numbers, per case and overall. With `grouped`, cases
    with a spend condition are also counted once with the grouped compilation (`orm_grouped_ms`), the
    alternative fields._aggregate_leaf rejects."""
    today = today or timezone.localdate()
    scope = chain_scope(chain)
    cases = bench_cases(chain, today=today)
    results = []
    for case in cases:
        orm_count = compile(scope, case.rule, today=today).count()
        sql_count = _sql_count(case.sql, case.params)
        if orm_count != sql_count:
            raise BenchCountMismatch(f"{case.name}: compile() counted {orm_count}, the hand-written SQL {sql_count}")
        orm_times, sql_times = [], []
        for _ in range(repeat):
            started = time.perf_counter()
            compile(scope, case.rule, today=today).count()
            orm_times.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            _sql_count(case.sql, case.params)
            sql_times.append((time.perf_counter() - started) * 1000)
        row = {
            "name": case.name, "count": orm_count,
            "orm_median_ms": round(statistics.median(orm_times), 2), "orm_p95_ms": round(_percentile(orm_times, .95), 2),
            "sql_median_ms": round(statistics.median(sql_times), 2), "sql_p95_ms": round(_percentile(sql_times, .95), 2),
        }
        row["ratio"] = round(row["orm_median_ms"] / row["sql_median_ms"], 2) if row["sql_median_ms"] else None
        if grouped and _has_spend(case.rule):
            # The other compilation of "spend in N days" (fields._aggregate_leaf), for the record.
            # Once: it reads the whole window of the chain's orders (seconds at 10M orders).
            started = time.perf_counter()
            n = compile(scope, case.rule, today=today, aggregates="grouped").count()
            row["orm_grouped_ms"] = round((time.perf_counter() - started) * 1000, 2)
            if n != orm_count:
                raise BenchCountMismatch(f"{case.name}: the grouped compilation counted {n}, not {orm_count}")
        if explain:
            row["plan"] = compile(scope, case.rule, today=today).order_by().values("id").explain()
        results.append(row)
    ratios = [r["ratio"] for r in results if r["ratio"] is not None]
    return {
        "vendor": connection.vendor, "today": today.isoformat(), "repeat": repeat,
        "customers": Customer.objects.filter(chain=chain).count(),
        "orders": Order.objects.filter(chain=chain).count(),
        "cases": results,
        "max_ratio": max(ratios) if ratios else None,
        "max_orm_median_ms": max(r["orm_median_ms"] for r in results),
        "targets": TARGETS,
        "settings": _settings(),
    }


def _settings() -> dict:
    """Server settings that move these numbers (PostgreSQL): JIT compiles a big plan for ~0.5 s."""
    if connection.vendor != "postgresql":
        return {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, setting FROM pg_settings WHERE name IN ('jit', 'work_mem', 'shared_buffers', "
                       "'max_parallel_workers_per_gather', 'server_version')")
        return dict(cursor.fetchall())
