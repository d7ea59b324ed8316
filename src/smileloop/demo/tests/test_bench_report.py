import re

import pytest

from smileloop.demo.bench import BenchResult, machine_info, render


@pytest.mark.django_db
def test_a_bench_report_names_the_machine_and_its_yardsticks():
    machine = machine_info()
    assert machine["cpus"] >= 1 and machine["database"]
    assert machine["speed"]["python_ms"] > 0 and machine["speed"]["roundtrip_us"] > 0
    result = BenchResult(machine=machine, scale={"customers": 1000, "orders": 10_000, "appointments": 12_000,
                                                 "clinics": 3})
    result.add("import", "21,000 rows/s", "≥ 20,000 rows/s")
    text = render(result)
    assert f"5M-step Python loop {machine['speed']['python_ms']} ms" in text
    assert f"SELECT 1 round trip {machine['speed']['roundtrip_us']} µs" in text
    assert "Scale: 1,000 customers, 10,000 orders" in text
    assert "| import | 21,000 rows/s | ≥ 20,000 rows/s |" in text


@pytest.mark.django_db(transaction=True)
def test_the_api_bench_interleaves_upserts_and_bare_inserts_and_reports_both_rates(chain, chain_admin):
    from smileloop.customers.models import Customer
    from smileloop.demo.bench import _bench_api

    result = BenchResult()
    _bench_api(result, chain, chain_admin, 20, lambda *a: None)
    [(measure, value, target)] = result.lines
    assert measure == "API upsert vs bare JSON view" and target == "≥ 50%"
    assert re.fullmatch(r"[\d,]+ req/s vs [\d,]+ req/s = \d+%", value), value  # no error responses noted
    # 20 upserts plus the probe through the API, 20 inserts through the bare view: every request wrote one person.
    assert Customer.objects.filter(chain=chain, name__startswith="接口").count() == 21
    assert Customer.objects.filter(chain=chain, name__startswith="裸视图").count() == 20
    # A second run posts new phones and keys (no replays, no unique-phone clashes).
    _bench_api(result, chain, chain_admin, 20, lambda *a: None)
    assert "error" not in result.lines[1][1]
    assert Customer.objects.filter(chain=chain, name__startswith="裸视图").count() == 40
