"""The lifecycle funnel: counts by stage × clinic × source channel in one GROUP BY, within a Scope.

Analytics reuses `funnel`: `rows` are the raw groups (current stage, highest stage reached, home clinic,
source channel, count); `stages` are the funnel steps (how many reached at least each progress stage,
and the conversion rate from the step before) plus the current count in every stage, side states
included.
"""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count

from smileloop.core.jobs import day_start
from smileloop.core.scoping import Scope
from smileloop.customers.enums import STAGE_PROGRESS, STAGE_SIDE, Stage
from smileloop.customers.selectors import customer_queryset, without_erased
from smileloop.lifecycle.models import LifecycleSettings
from smileloop.lifecycle.services import lifecycle_settings_for


@dataclass(frozen=True)
class FunnelRow:
    stage: str
    stage_reached: str
    clinic_id: int | None
    source: str
    count: int


@dataclass(frozen=True)
class FunnelStep:
    stage: str
    label: str
    current: int  # customers in this stage now
    reached: int | None  # customers who reached at least this stage (progress stages only)
    rate: Decimal | None  # reached ÷ reached at the step before, in % (progress stages after lead)


@dataclass
class Funnel:
    total: int
    stages: list[FunnelStep]
    rows: list[FunnelRow]
    by_clinic: dict[int | None, dict[str, int]] = field(default_factory=dict)  # clinic → stage → current


def _rate(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) * 100 / whole).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def funnel(scope: Scope, *, clinic_id: int | None = None, source: str | None = None,
           since: dt.date | None = None) -> Funnel:
    """Customers in scope (optionally one clinic, one source channel, and created on or after `since`)
    counted by current stage, highest stage reached, home clinic and source: ONE aggregate query. Erased people
    (PIPL, `erased_at` set) are not counted: an anonymous record of past bills is nobody's stage any more."""
    qs = without_erased(customer_queryset(scope), chain_id=scope.chain_id)
    if clinic_id is not None:
        qs = qs.filter(home_clinic_id=clinic_id)
    if source:
        qs = qs.filter(first_touch_channel=source)
    if since is not None:
        qs = qs.filter(created_at__gte=day_start(since))
    # Grouped in the column order of the customer_source index, which holds every column used here; COUNT(*),
    # as the id is not in that index on PostgreSQL (see customers.selectors.merge_candidates_list).
    groups = (qs.order_by().values("first_touch_channel", "stage", "stage_reached", "home_clinic_id")
              .annotate(n=Count("*")))
    rows = [FunnelRow(g["stage"], g["stage_reached"], g["home_clinic_id"], g["first_touch_channel"], g["n"])
            for g in groups]
    current: dict[str, int] = defaultdict(int)
    reached_exactly: dict[str, int] = defaultdict(int)
    by_clinic: dict[int | None, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        current[row.stage] += row.count
        reached_exactly[row.stage_reached] += row.count
        by_clinic[row.clinic_id][row.stage] += row.count
    total = sum(current.values())
    labels = dict(Stage.choices)
    steps, above = [], 0
    at_least: dict[str, int] = {}
    for stage in reversed(STAGE_PROGRESS):
        above += reached_exactly.get(stage, 0)
        at_least[stage] = above
    previous = None
    for stage in STAGE_PROGRESS:
        steps.append(FunnelStep(stage, str(labels[stage]), current.get(stage, 0), at_least[stage],
                                None if previous is None else _rate(at_least[stage], at_least[previous])))
        previous = stage
    for stage in STAGE_SIDE:
        steps.append(FunnelStep(stage, str(labels[stage]), current.get(stage, 0), None, None))
    return Funnel(total=total, stages=steps, rows=rows,
                  by_clinic={k: dict(v) for k, v in by_clinic.items()})


def settings_get(scope: Scope) -> LifecycleSettings:
    return lifecycle_settings_for(scope.chain_id)
