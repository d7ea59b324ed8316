"""Each field on a small hand-made fixture, plus the invariants: scope, merged customers, one query."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.db import connection

from smileloop.core.errors import ValidationFailed
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.membership.tests.factories import MembershipFactory, TreatmentPlanFactory
from smileloop.segments.rules.compiler import compile
from smileloop.segments.selectors import chain_scope, segment_count, segment_preview, segment_sql
from smileloop.segments.tests.factories import (
    AppointmentFactory,
    ConsentFactory,
    OrderFactory,
    ProcedureFactory,
)
from smileloop.segments.tests.reference import TZ
from smileloop.tagging.enums import TagSource
from smileloop.tagging.models import Tag
from smileloop.tagging.services import tag_apply
from smileloop.tagging.tests.factories import CustomerTagFactory, InteractionFactory

pytestmark = pytest.mark.django_db


def at(day: dt.date, hour: int = 10) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=TZ)


def ids(scope, rule, today) -> set[int]:
    return set(compile(scope, rule, today=today).values_list("id", flat=True))


@pytest.fixture
def people(chain, clinic_a, clinic_b):
    def make(name, clinic=clinic_a, **kw):
        return CustomerFactory(chain=chain, name=name, home_clinic=clinic, **kw)

    return make


def test_stage_source_gender_and_clinic_compare_columns(admin_scope, people, clinic_a, clinic_b, today):
    lead = people("线索", stage="lead", first_touch_channel="douyin", gender="F")
    treated = people("患者", clinic_b, stage="treated", first_touch_channel="referral", gender="M")
    homeless = people("无门诊", None, stage="lead")
    assert ids(admin_scope, {"field": "stage", "op": "eq", "value": "lead"}, today) == {lead.id, homeless.id}
    assert ids(admin_scope, {"field": "source", "op": "in", "value": ["douyin", "wecom"]}, today) == {lead.id}
    assert ids(admin_scope, {"field": "gender", "op": "ne", "value": "F"}, today) == {treated.id, homeless.id}
    assert ids(admin_scope, {"field": "clinic", "op": "in", "value": [clinic_b.id]}, today) == {treated.id}
    # a customer without a home clinic is "not in" any clinic
    assert ids(admin_scope, {"field": "clinic", "op": "not_in", "value": [clinic_b.id]}, today) == {lead.id, homeless.id}


def test_age_is_counted_from_the_birthday_on_today(admin_scope, people, today):
    turns_30_today = people("今天30岁", birthday=dt.date(1995, 6, 15))
    turns_30_tomorrow = people("明天30岁", birthday=dt.date(1995, 6, 16))
    people("没有生日", birthday=None)
    rule = {"field": "age", "op": "gte", "value": 30}
    assert ids(admin_scope, rule, today) == {turns_30_today.id}
    assert ids(admin_scope, {"field": "age", "op": "between", "value": [20, 29]}, today) == {turns_30_tomorrow.id}
    # the complement includes the customer without a birthday
    assert len(ids(admin_scope, {"not": rule}, today)) == 2


def test_community_matches_exactly_or_by_part(admin_scope, people, today):
    sunny = people("阳光", community="阳光小区")
    garden = people("花园", community="阳光花园")
    assert ids(admin_scope, {"field": "community", "op": "eq", "value": "阳光小区"}, today) == {sunny.id}
    assert ids(admin_scope, {"field": "community", "op": "contains", "value": "阳光"}, today) == {sunny.id, garden.id}


def test_distance_uses_the_clinic_coordinates_and_skips_customers_without_any(admin_scope, people, located, clinic_c,
                                                                              today):
    clinic_a, _b = located
    # 0.01° of latitude ≈ 1.11 km north; 0.03° ≈ 3.34 km
    near = people("近", latitude=clinic_a.latitude + Decimal("0.01"), longitude=clinic_a.longitude)
    far = people("远", latitude=clinic_a.latitude + Decimal("0.03"), longitude=clinic_a.longitude)
    people("没有坐标")
    assert ids(admin_scope, {"field": "distance_km", "op": "lte", "value": 3, "clinic": clinic_a.id}, today) == {near.id}
    assert ids(admin_scope, {"field": "distance_km", "op": "gte", "value": 3, "clinic": clinic_a.id}, today) == {far.id}
    # a clinic without coordinates matches nobody
    assert ids(admin_scope, {"field": "distance_km", "op": "lte", "value": 100, "clinic": clinic_c.id}, today) == set()


def test_tags_any_all_and_none_of(admin_scope, people, tags, today):
    both = people("两个标签")
    implant_only = people("种植")
    nothing = people("无标签")
    for customer, codes in [(both, ["implant", "ortho"]), (implant_only, ["implant"])]:
        for code in codes:
            CustomerTagFactory(customer=customer, tag=tags[code])
    assert ids(admin_scope, {"field": "tag", "op": "any_of", "value": ["implant", "vip"]}, today) == {both.id,
                                                                                                      implant_only.id}
    assert ids(admin_scope, {"field": "tag", "op": "all_of", "value": ["implant", "ortho"]}, today) == {both.id}
    assert ids(admin_scope, {"field": "tag", "op": "none_of", "value": ["ortho"]}, today) == {implant_only.id,
                                                                                              nothing.id}


def test_consent_reads_the_latest_row_per_purpose(admin_scope, people, today):
    granted = people("同意")
    withdrawn = people("撤回")
    people("从未记录")
    ConsentFactory(customer=granted, purpose="marketing_sms", granted=True, recorded_at=at(today - dt.timedelta(days=9)))
    ConsentFactory(customer=withdrawn, purpose="marketing_sms", granted=True, recorded_at=at(today - dt.timedelta(days=9)))
    ConsentFactory(customer=withdrawn, purpose="marketing_sms", granted=False, recorded_at=at(today - dt.timedelta(days=1)))
    ConsentFactory(customer=withdrawn, purpose="marketing_wechat", granted=True, recorded_at=at(today))
    assert ids(admin_scope, {"field": "consent", "op": "granted", "value": "marketing_sms"}, today) == {granted.id}
    assert len(ids(admin_scope, {"field": "consent", "op": "not_granted", "value": "marketing_sms"}, today)) == 2


def test_spend_in_the_last_n_days_is_net_of_refunds(admin_scope, people, today):
    big = people("大客户")
    refunded = people("退款")
    old = people("很久以前")
    people("没消费")
    OrderFactory(customer=big, amount_fen=600_000, ordered_at=at(today - dt.timedelta(days=29)))
    OrderFactory(customer=refunded, amount_fen=600_000, refunded_fen=500_000, ordered_at=at(today))
    OrderFactory(customer=old, amount_fen=900_000, ordered_at=at(today - dt.timedelta(days=30)))
    rule = {"field": "spend_fen_days", "op": "gte", "value": 500_000, "days": 30}
    assert ids(admin_scope, rule, today) == {big.id}
    low = {"field": "spend_fen_days", "op": "lte", "value": 100_000, "days": 30}
    assert len(ids(admin_scope, low, today)) == 3  # refunded, old, and the one who never paid
    assert ids(admin_scope, {**rule, "days": 31}, today) == {big.id, old.id}


def test_visits_in_the_last_n_days_count_arrivals_only(admin_scope, people, today):
    twice = people("两次")
    booked = people("只预约")
    for day in (1, 5):
        AppointmentFactory(customer=twice, start_at=at(today - dt.timedelta(days=day)), status="completed")
    AppointmentFactory(customer=booked, start_at=at(today - dt.timedelta(days=1)), status="booked")
    assert ids(admin_scope, {"field": "visits_days", "op": "gte", "value": 2, "days": 7}, today) == {twice.id}
    assert ids(admin_scope, {"field": "visits_days", "op": "lte", "value": 0, "days": 7}, today) == {booked.id}


def test_last_visit_and_last_contact_recency(admin_scope, people, today, consultant):
    dormant = people("沉睡", last_visit_at=at(today - dt.timedelta(days=400)))
    recent = people("最近", last_visit_at=at(today - dt.timedelta(days=3)))
    never = people("没来过")
    assert ids(admin_scope, {"field": "last_visit_days", "op": "older_than", "value": 365}, today) == {dormant.id}
    assert ids(admin_scope, {"field": "last_visit_days", "op": "never"}, today) == {never.id}
    InteractionFactory(customer=recent, kind="call", author=consultant, occurred_at=at(today - dt.timedelta(days=2)))
    InteractionFactory(customer=dormant, kind="note", author=consultant, occurred_at=at(today))  # a note is no contact
    assert ids(admin_scope, {"field": "last_contact_days", "op": "older_than", "value": 30}, today) == {dormant.id,
                                                                                                       never.id}
    assert ids(admin_scope, {"field": "last_contact_days", "op": "within", "value": 30}, today) == {recent.id}


def test_unfinished_plan_and_procedure_n_days_ago(admin_scope, people, catalogue, today):
    open_plan = people("治疗中")
    done_plan = people("已完成")
    TreatmentPlanFactory(customer=open_plan, steps_total=4, steps_done=2)
    TreatmentPlanFactory(customer=done_plan, steps_total=4, steps_done=4, status="completed")
    ProcedureFactory(customer=open_plan, item=catalogue["IM01"], performed_on=today - dt.timedelta(days=30))
    ProcedureFactory(customer=done_plan, item=catalogue["CL01"], performed_on=today - dt.timedelta(days=30))
    assert ids(admin_scope, {"field": "unfinished_plan", "op": "is", "value": True}, today) == {open_plan.id}
    implant_30 = {"field": "procedure_days", "op": "eq", "value": 30, "category": "implant"}
    assert ids(admin_scope, implant_30, today) == {open_plan.id}
    assert ids(admin_scope, {**implant_30, "value": 29}, today) == set()
    assert ids(admin_scope, {**implant_30, "op": "between", "value": [28, 31]}, today) == {open_plan.id}


def test_membership_tier_and_birthday_next_month(admin_scope, people, tiers, today):
    silver, gold = tiers
    member = people("金卡会员", birthday=dt.date(1980, 7, 3))
    expired = people("过期会员")
    people("非会员", birthday=dt.date(1990, 6, 1))
    MembershipFactory(customer=member, tier=gold)
    MembershipFactory(customer=expired, tier=silver, status="active", expires_at=at(today - dt.timedelta(days=1)))
    assert ids(admin_scope, {"field": "membership_tier", "op": "in", "value": [gold.id]}, today) == {member.id}
    assert ids(admin_scope, {"field": "membership_tier", "op": "any"}, today) == {member.id}
    assert ids(admin_scope, {"field": "birthday_month", "op": "next_month"}, today) == {member.id}


def test_lifetime_spend_and_visit_count_use_the_denormalised_figures(admin_scope, people, today):
    whale = people("大鲸鱼", lifetime_spend_fen=5_000_000, visit_count=12)
    people("普通", lifetime_spend_fen=30_000, visit_count=1)
    assert ids(admin_scope, {"field": "lifetime_spend_fen", "op": "gte", "value": 3_000_000}, today) == {whale.id}
    assert ids(admin_scope, {"field": "visit_count", "op": "between", "value": [10, 20]}, today) == {whale.id}


def test_the_staff_scope_is_always_applied(scope_a, admin_scope, people, clinic_b, today):
    mine = people("本院", stage="lead")
    people("别院", clinic_b, stage="lead")
    rule = {"field": "stage", "op": "eq", "value": "lead"}
    assert ids(scope_a, rule, today) == {mine.id}
    assert len(ids(admin_scope, rule, today)) == 2
    # even a rule naming the other clinic cannot reach outside the scope
    assert ids(scope_a, {"field": "clinic", "op": "in", "value": [clinic_b.id]}, today) == set()


def test_other_chains_are_never_in_a_segment(admin_scope, today):
    CustomerFactory(stage="lead")  # its own chain
    assert ids(admin_scope, {"field": "stage", "op": "eq", "value": "lead"}, today) == set()


def test_merged_customers_are_never_in_a_segment(admin_scope, people, today):
    survivor = people("保留")
    merged = people("已合并")
    merged.merged_into = survivor
    merged.save(update_fields=["merged_into"])
    assert ids(admin_scope, {"field": "stage", "op": "eq", "value": "lead"}, today) == {survivor.id}
    assert ids(chain_scope(admin_scope.chain_id), {"not": {"field": "visit_count", "op": "gte", "value": 1}},
               today) == {survivor.id}


def test_a_count_is_one_query_whatever_the_rule(admin_scope, people, located, tags, tiers, today,
                                                django_assert_num_queries):
    people("某人")
    rule = {"all": [
        {"field": "spend_fen_days", "op": "gte", "value": 100, "days": 365},
        {"not": {"field": "spend_fen_days", "op": "between", "value": [1, 5], "days": 30}},
        {"field": "age", "op": "between", "value": [20, 60]},
        {"field": "consent", "op": "granted", "value": "marketing_sms"},
        {"any": [{"field": "unfinished_plan", "op": "is", "value": True},
                 {"field": "membership_tier", "op": "in", "value": [tiers[0].id]},
                 {"field": "last_contact_days", "op": "older_than", "value": 30},
                 {"field": "procedure_days", "op": "within", "value": 90, "category": "implant"},
                 {"field": "visits_days", "op": "gte", "value": 2, "days": 90}]},
    ]}
    with django_assert_num_queries(1):
        assert segment_count(admin_scope, rule, today=today) == 0


def test_tag_conditions_read_the_tag_ids_once_then_count_in_one_statement(admin_scope, people, tags, today,
                                                                          django_assert_num_queries):
    tagged = people("有标签")
    for code in ("implant", "vip"):
        tag = Tag.objects.get(chain_id=admin_scope.chain_id, code=code)
        tag_apply(customer=tagged, tag=tag, actor=None, source=TagSource.RULE if tag.kind == "rule" else "manual")
    people("无标签")
    rule = {"all": [{"field": "tag", "op": "all_of", "value": ["implant", "vip"]},
                    {"not": {"field": "tag", "op": "any_of", "value": ["no-such-tag"]}}]}
    with django_assert_num_queries(2):  # the tags' ids, then the count
        assert segment_count(admin_scope, rule, today=today) == 1
    rule = {"field": "tag", "op": "any_of", "value": ["no-such-tag"]}
    assert segment_count(admin_scope, rule, today=today) == 0


def test_distance_conditions_read_their_clinics_once_then_count_in_one_statement(
        admin_scope, people, located, today, django_assert_num_queries):
    clinic_a, clinic_b = located
    people("近", latitude=clinic_a.latitude, longitude=clinic_a.longitude)
    rule = {"any": [{"field": "distance_km", "op": "lte", "value": 3, "clinic": clinic_a.id},
                    {"field": "distance_km", "op": "gte", "value": 50, "clinic": clinic_b.id},
                    {"not": {"field": "distance_km", "op": "lte", "value": 1, "clinic": clinic_b.id}}]}
    with django_assert_num_queries(2):  # the clinics' coordinates (one query), then the count
        assert segment_count(admin_scope, rule, today=today) == 1


def test_compile_refuses_an_invalid_rule_with_the_paths(admin_scope, today):
    with pytest.raises(ValidationFailed) as caught:
        compile(admin_scope, {"all": [{"field": "spendd"}]}, today=today)
    assert [e.field for e in caught.value.errors] == ["all[0]"]


def test_preview_masks_phones_and_counts(admin_scope, people, today, django_assert_num_queries):
    people("张三", mobile="+8613812345678", birthday=dt.date(1990, 1, 1))
    with django_assert_num_queries(2):
        preview = segment_preview(admin_scope, {"field": "stage", "op": "eq", "value": "lead"}, today=today)
    assert preview.count == 1
    assert preview.rows[0].mobile == "138****5678"
    assert preview.rows[0].age == 35


def test_sql_is_shown_only_to_segment_managers(admin_scope, scope_a, today):
    from smileloop.core.errors import PermissionDenied

    shown = segment_sql(admin_scope, {"field": "tag", "op": "any_of", "value": ["implant"]}, today=today)
    assert "tagging_customertag" in shown["sql"] and "tagging_customertag" in shown["text"]  # tag ids resolved before
    with pytest.raises(PermissionDenied):
        segment_sql(scope_a, {"field": "stage", "op": "eq", "value": "lead"}, today=today)


@pytest.mark.parametrize("rule", [
    {"field": "unfinished_plan", "op": "is", "value": True},
    {"field": "procedure_days", "op": "within", "value": 90, "category": "implant"},
    {"field": "tag", "op": "any_of", "value": ["implant"]},
    {"field": "membership_tier", "op": "any"},
])
def test_a_positive_row_test_reads_the_rows_once_on_sqlite_and_a_negated_one_probes(admin_scope, today, rule):
    # given a positive test on rows with an index of their own, and the same test negated
    positive = str(compile(admin_scope, rule, today=today).order_by().values("id").query)
    negated = str(compile(admin_scope, {"not": rule}, today=today).order_by().values("id").query)
    # every segment leaves out the erased people (customers.selectors.without_erased): one NOT IN of a few ids,
    # the same in both; what is tested here is the rule's own shape
    erased = re.compile(r'NOT \("customers_customer"\."id" IN \(SELECT (\w+)\."id" AS "id" FROM "customers_customer" \1 '
                        r'WHERE \(\1\."chain_id" = \d+ AND \1\."erased_at" IS NOT NULL\)\)\)')
    assert erased.search(positive) and erased.search(negated)
    positive, negated = erased.sub("", positive), erased.sub("", negated)
    # then SQLite reads the rows once (IN, their customers by primary key) and PostgreSQL keeps its semi-join
    # (EXISTS); negated, both probe per candidate (NOT EXISTS)
    sqlite = connection.vendor == "sqlite"
    assert ('"id" IN (SELECT U0."customer_id"' in positive) == sqlite
    assert ("EXISTS" in positive) != sqlite
    assert "NOT (EXISTS" in negated and "IN (SELECT" not in negated


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's query plan")
def test_an_unfinished_plan_segment_starts_from_the_plans_on_sqlite(today):
    from smileloop.core.sql import statistics_refresh
    from smileloop.demo.services import chain_seed

    # given a seeded chain with its planner statistics, and "an unfinished plan and no recent contact" (bench
    # case 3)
    seeded = chain_seed(customers=400, clinics=2, years=2, seed=5, today=today)
    statistics_refresh()
    rule = {"all": [{"field": "unfinished_plan", "op": "is", "value": True},
                    {"field": "last_contact_days", "op": "older_than", "value": 14}]}
    query = compile(chain_scope(seeded.chain), rule, today=today).order_by().values("id").query
    sql, params = query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        plan = [row[-1] for row in cursor.fetchall()]
    # then SQLite reads the active plans once and fetches their customers by primary key, instead of walking
    # every customer of the chain (what a correlated EXISTS made it do: 2.7 s at 1M customers)
    assert plan[0].startswith("SEARCH customers_customer USING INTEGER PRIMARY KEY"), plan
    assert any(step.startswith("LIST SUBQUERY") for step in plan)
