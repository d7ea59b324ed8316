import re
import shutil

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
    assert re.fullmatch(r"[\d,]+ req/s vs [\d,]+ req/s = \d+\.\d%", value), value  # no error responses noted
    # 20 upserts plus the probe through the API, 20 inserts through the bare view: every request wrote one person.
    assert Customer.objects.filter(chain=chain, name__startswith="接口").count() == 21
    assert Customer.objects.filter(chain=chain, name__startswith="裸视图").count() == 20
    # A second run posts new phones and keys (no replays, no unique-phone clashes).
    _bench_api(result, chain, chain_admin, 20, lambda *a: None)
    assert "error" not in result.lines[1][1]
    assert Customer.objects.filter(chain=chain, name__startswith="裸视图").count() == 40


@pytest.mark.django_db(transaction=True)
def test_the_http_bench_serves_both_endpoints_from_gunicorn_and_reports_both_rates(chain, chain_admin):
    """On PostgreSQL (a database a server process can open): a real gunicorn serves the API and the bare view,
    wrk loads them, and both wrote their people. On the SQLite run's in-memory database it says why not."""
    from smileloop.clinics.services import token_create
    from smileloop.customers.models import Customer, CustomerSearchKey
    from smileloop.demo.bench_http import API_NAME, BARE_NAME, LABEL, bench_http, database_url

    token = token_create(username=chain_admin.user.username, name="bench")
    result = BenchResult()
    if database_url() is None:
        bench_http(result, chain, token, lambda *a: None, seconds=1, rounds=1)
        assert result.lines == [(LABEL, "not measured: this database cannot be opened by a server process", "≥ 50%")]
        return
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (make test installs Debian's wrk)")
    bench_http(result, chain, token, lambda *a: None, seconds=1, rounds=2)
    [(measure, value, target)] = result.lines
    assert measure == LABEL and target == "≥ 50%"
    assert re.fullmatch(r"[\d,]+ req/s vs [\d,]+ req/s = \d+\.\d% \(gunicorn, \d workers?, wrk\)", value), value
    served = Customer.objects.filter(chain=chain, name__startswith=API_NAME)
    assert served.count() > 10 and Customer.objects.filter(chain=chain, name__startswith=BARE_NAME).count() > 10
    # The API's people went through the service (search keys written), the bare view's did not.
    assert CustomerSearchKey.objects.filter(customer__in=served).values("customer").distinct().count() == served.count()
    # A second run posts new phones and keys: no replays, no clash with the first run's people.
    bench_http(result, chain, token, lambda *a: None, seconds=1, rounds=1)
    assert "error" not in result.lines[1][1] and "failed" not in result.lines[1][1], result.lines[1][1]


@pytest.mark.django_db
def test_the_search_bench_times_every_kind_for_the_chain_a_clinic_and_a_consultant():
    import random

    from smileloop.clinics.enums import Role
    from smileloop.clinics.models import Staff
    from smileloop.demo.bench import _bench_search
    from smileloop.demo.services import chain_seed

    chain = chain_seed(customers=60, clinics=2, years=1, seed=5).chain
    staff = {role: Staff.objects.filter(chain=chain, role=role).order_by("id").first()
             for role in (Role.CHAIN_ADMIN, Role.FRONT_DESK, Role.CONSULTANT)}
    result = BenchResult()
    _bench_search(result, chain, staff[Role.CHAIN_ADMIN], staff[Role.FRONT_DESK], random.Random(1), 10,
                  lambda *a: None, consultant=staff[Role.CONSULTANT])
    labels = [measure for measure, _value, _target in result.lines]
    assert len(labels) == 12 and labels[-1] == "search: full phone, consultant, 1 clinic + own patients"
    assert all(re.fullmatch(r"p50 [\d.]+ ms · p95 [\d.]+ ms", value) for _m, value, _t in result.lines)
