"""The funnel selector, the staff page (/lifecycle/) and GET /api/lifecycle/funnel."""

import datetime as dt
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from smileloop.clinics.services import token_create
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.lifecycle.selectors import funnel

pytestmark = pytest.mark.django_db


@pytest.fixture
def pool(chain, clinic_a, clinic_b, front_desk_a):
    """Clinic A: 4 leads, 3 booked, 2 treated, 1 member, 1 dormant (had been treated). Clinic B: 2 leads."""
    made = []
    for stage, reached, n, source in (("lead", "lead", 4, "douyin"), ("booked", "booked", 3, "douyin"),
                                      ("treated", "treated", 2, "meituan"), ("member", "member", 1, "meituan"),
                                      ("dormant", "treated", 1, "douyin")):
        made += [CustomerFactory(chain=chain, home_clinic=clinic_a, stage=stage, stage_reached=reached,
                                 first_touch_channel=source) for _ in range(n)]
    made += [CustomerFactory(chain=chain, home_clinic=clinic_b, first_touch_channel="baidu") for _ in range(2)]
    # a merged tombstone never counts
    CustomerFactory(chain=chain, home_clinic=clinic_a, stage="member", stage_reached="member", mobile=None,
                    merged_into=made[0])
    return made


def steps(result):
    return {s.stage: (s.current, s.reached, s.rate) for s in result.stages}


def test_the_funnel_counts_current_stage_and_reached_with_conversion_rates(admin_scope, pool,
                                                                          django_assert_num_queries):
    with django_assert_num_queries(1):
        result = funnel(admin_scope)
    assert result.total == 13
    got = steps(result)
    assert got["lead"] == (6, 13, None)
    assert got["contacted"] == (0, 7, Decimal("53.8"))
    assert got["booked"] == (3, 7, Decimal("100.0"))
    assert got["arrived"] == (0, 4, Decimal("57.1"))
    assert got["treated"] == (2, 4, Decimal("100.0"))
    assert got["member"] == (1, 1, Decimal("25.0"))
    assert got["referrer"] == (0, 0, Decimal("0.0"))
    assert got["dormant"] == (1, None, None)
    assert got["lost"] == (0, None, None)


def test_on_sqlite_the_funnel_reads_one_index_alone_for_the_chain_and_for_a_clinic(admin_scope, scope_a, pool):
    from django.db import connection

    from smileloop.core.sql import statistics_refresh
    from smileloop.customers.models import Customer

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's query plan")
    Customer.objects.bulk_create(Customer(chain_id=admin_scope.chain_id, name=f"李{i}", home_clinic_id=None)
                                 for i in range(2000))
    assert statistics_refresh()
    for scope in (admin_scope, scope_a):
        with CaptureQueriesContext(connection) as queries:
            funnel(scope)
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN QUERY PLAN " + queries[0]["sql"])
            plan = [row[-1] for row in cursor.fetchall()]
        # then the GROUP BY is a walk of the source index, neither a visit of every customer row (500 ms at 56k
        # customers through the name index) nor a sort in a temporary B-tree; the erased people it leaves out are a
        # list read once from their small partial index
        assert plan == ["SEARCH customers_customer USING COVERING INDEX customer_source (chain_id=?)",
                        "LIST SUBQUERY 1",
                        "SEARCH U0 USING COVERING INDEX customer_erased (chain_id=? AND erased_at>?)"], plan


def test_the_funnel_filters_by_clinic_source_and_creation_date(admin_scope, pool, clinic_b):
    assert funnel(admin_scope, clinic_id=clinic_b.id).total == 2
    assert funnel(admin_scope, source="meituan").total == 3
    assert steps(funnel(admin_scope, source="meituan"))["member"] == (1, 1, Decimal("33.3"))
    assert funnel(admin_scope, since=timezone.localdate() + dt.timedelta(days=1)).total == 0
    rows = funnel(admin_scope, clinic_id=clinic_b.id).rows
    assert [(r.stage, r.clinic_id, r.source, r.count) for r in rows] == [("lead", clinic_b.id, "baidu", 2)]


def test_a_clinic_scope_counts_only_its_clinics_patients(scope_a, pool, clinic_b):
    assert funnel(scope_a).total == 11
    assert funnel(scope_a, clinic_id=clinic_b.id).total == 0


# --- the page ---------------------------------------------------------------------------------------------


def test_the_page_renders_the_funnel_in_english(client, director_a, pool):
    client.force_login(director_a.user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    response = client.get(reverse("lifecycle:funnel"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Lifecycle funnel" in html and 'id="lc-funnel-data"' in html
    assert "vendor/echarts/echarts.min.js" in html and "lifecycle/funnel_chart.js" in html
    assert "11 customers" in html  # clinic A only
    assert '<script>' not in html.replace('<script type="application/json"', "")  # no inline script


def test_the_page_renders_in_chinese(client, director_a, pool):
    client.force_login(director_a.user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    html = client.get(reverse("lifecycle:funnel")).content.decode()
    assert "生命周期漏斗" in html and "沉睡" in html and "转化率" in html


def test_large_counts_are_grouped_in_thousands_like_the_amounts(client, director_a, chain, clinic_a):
    # given 1,200 leads of clinic A
    from smileloop.customers.models import Customer

    Customer.objects.bulk_create([CustomerFactory.build(chain=chain, home_clinic=clinic_a, mobile=None)
                                  for _ in range(1200)])
    client.force_login(director_a.user)
    # when the funnel is read in Chinese and in English
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    zh = client.get(reverse("lifecycle:funnel")).content.decode()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    en = client.get(reverse("lifecycle:funnel")).content.decode()
    # then the count reads 1,200, never 1200
    assert "共 1,200 位客户" in zh and '<td class="num">1,200</td>' in zh
    assert "1,200 customers" in en and ">1200<" not in en


def test_the_page_filters_with_htmx_and_ignores_a_clinic_outside_the_scope(client, director_a, pool, clinic_b):
    client.force_login(director_a.user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    response = client.get(reverse("lifecycle:funnel"), {"source": "meituan"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert "<html" not in html and 'id="funnel-results"' in html and "3 customers" in html
    other = client.get(reverse("lifecycle:funnel"), {"clinic": clinic_b.id}).content.decode()
    assert "11 customers" in other  # not clinic B's two leads


def test_the_page_needs_a_login(client):
    response = client.get(reverse("lifecycle:funnel"))
    assert response.status_code == 302


# --- the API ----------------------------------------------------------------------------------------------


def test_the_api_returns_the_scoped_funnel(client, director_a, chain_admin, pool, clinic_b):
    director = token_create(username=director_a.user.username)
    admin = token_create(username=chain_admin.user.username)
    mine = client.get("/api/lifecycle/funnel", headers={"Authorization": f"Bearer {director}"}).json()
    everyone = client.get("/api/lifecycle/funnel", {"source": "meituan"},
                          headers={"Authorization": f"Bearer {admin}"}).json()
    assert mine["total"] == 11 and everyone["total"] == 3
    assert mine["stages"][0] == {"stage": "lead", "label": "Lead", "current": 4, "reached": 11, "rate": None}
    home = pool[0].home_clinic
    assert {"stage": "member", "stage_reached": "member", "clinic_id": home.id, "source": "meituan", "count": 1,
            "clinic": {"id": home.id, "code": home.code, "name": home.name}} in everyone["rows"]


def test_the_api_refuses_another_clinic_and_a_bad_source(client, director_a, clinic_b):
    director = token_create(username=director_a.user.username)
    headers = {"Authorization": f"Bearer {director}"}
    assert client.get("/api/lifecycle/funnel", {"clinic": "SH02"}, headers=headers).status_code == 403
    bad = client.get("/api/lifecycle/funnel", {"source": "carrier_pigeon"}, headers=headers)
    assert bad.status_code == 422
    assert client.get("/api/lifecycle/funnel").status_code == 401


def test_the_api_rows_name_their_home_clinic_as_every_answer_names_one_in_one_look_up(
        client, chain_admin, pool, clinic_a, clinic_b):
    # given the pool over clinics A and B, and a customer without a home clinic
    CustomerFactory(chain=clinic_a.chain, home_clinic=None, stage="lead")
    headers = {"Authorization": f"Bearer {token_create(username=chain_admin.user.username)}"}
    client.get("/api/lifecycle/funnel", headers=headers)  # warm the token's caches
    # when the funnel is read: the token and scope, the one GROUP BY, one look-up of the clinics
    with CaptureQueriesContext(connection) as queries:
        rows = client.get("/api/lifecycle/funnel", headers=headers).json()["rows"]
    # then every row names its clinic as an object beside the id it kept
    assert len([q for q in queries.captured_queries if 'FROM "clinics_clinic"' in q["sql"]]) == 1
    by_clinic = {r["clinic_id"]: r["clinic"] for r in rows}
    assert by_clinic == {clinic_a.id: {"id": clinic_a.id, "code": "SH01", "name": "静安门诊"},
                         clinic_b.id: {"id": clinic_b.id, "code": clinic_b.code, "name": clinic_b.name},
                         None: None}
