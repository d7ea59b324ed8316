import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection

from smileloop.customers.tests.factories import CustomerFactory
from smileloop.membership.tests.factories import TreatmentPlanFactory
from smileloop.segments import bench
from smileloop.segments.tests.factories import ConsentFactory, OrderFactory, ProcedureFactory
from smileloop.segments.tests.reference import TZ

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_chain(chain, located, catalogue, today):
    clinic_a, _b = located
    for n in range(30):
        c = CustomerFactory(chain=chain, home_clinic=clinic_a,
                            latitude=clinic_a.latitude + Decimal(n) / 1000, longitude=clinic_a.longitude,
                            last_visit_at=None if n % 3 == 0 else dt.datetime(2025, 1, 1, tzinfo=TZ) + dt.timedelta(days=n * 5))
        OrderFactory(customer=c, amount_fen=100_000 * n, ordered_at=dt.datetime(2025, 5, 1, tzinfo=TZ))
        if n % 4 == 0:
            TreatmentPlanFactory(customer=c, steps_total=3, steps_done=n % 3)
            ProcedureFactory(customer=c, item=catalogue["IM01"], performed_on=today - dt.timedelta(days=n))
            ConsentFactory(customer=c, purpose="marketing_wechat", granted=True)
    return chain


def test_bench_counts_agree_with_the_hand_written_sql(small_chain, today):
    result = bench.bench_segments(chain=small_chain, repeat=2, today=today, explain=True)
    assert len(result["cases"]) == 5
    assert all(case["plan"] for case in result["cases"])
    assert sum(case["count"] for case in result["cases"]) > 0  # the fixture is not empty for every tree
    assert result["customers"] == 30 and result["vendor"] == connection.vendor
    # the bench tags were made once and are reused
    again = bench.bench_segments(chain=small_chain, repeat=1, today=today)
    assert [c["count"] for c in again["cases"]] == [c["count"] for c in result["cases"]]


def test_bench_fails_loudly_when_the_counts_differ(small_chain, today, monkeypatch):
    cases = bench.bench_cases(small_chain, today=today)
    broken = [bench.Case(c.name, c.rule, c.sql + " AND 1 = 0", c.params) for c in cases]
    monkeypatch.setattr(bench, "bench_cases", lambda chain, today: broken)
    with pytest.raises(bench.BenchCountMismatch):
        bench.bench_segments(chain=small_chain, repeat=1, today=today)
