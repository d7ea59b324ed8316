"""QA edges of the segment builder: malformed trees through the API and the builder page (a field-level error by
path, never a 500, nothing written), and results on a small hand-built pool (NULLs, no home clinic, no orders,
erased, merged, Shanghai midnights, fen boundaries, LIKE wildcards) compared with a plain-Python reading of the
rule. Runs on SQLite and, with TEST_DATABASE_URL, on PostgreSQL (where LIKE, NULL and case differ)."""

import datetime as dt
import json
import urllib.parse

import pytest
from django.urls import reverse

from smileloop.clinics.services import token_create
from smileloop.core.errors import ValidationFailed
from smileloop.customers.models import Customer
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.segments.models import Segment
from smileloop.segments.rules.validation import validate
from smileloop.segments.selectors import segment_count, segment_customers, segment_preview
from smileloop.segments.tests.factories import OrderFactory, SegmentFactory
from smileloop.segments.tests.reference import TZ
from smileloop.tagging.services import tag_update
from smileloop.tagging.tests.factories import CustomerTagFactory
from smileloop.visits.models import Order

pytestmark = pytest.mark.django_db
BASE = "/api/segments"
TODAY = dt.date(2025, 6, 15)
LEADS = {"all": [{"field": "stage", "op": "eq", "value": "lead"}]}


@pytest.fixture
def token(marketing):
    return token_create(username=marketing.user.username)


@pytest.fixture
def manager(client, marketing):
    client.force_login(marketing.user)
    return client


@pytest.fixture
def director_token(director_a):
    return token_create(username=director_a.user.username)


def post(client, url, body, *, token, key=None, method="post"):
    headers = {"Authorization": f"Bearer {token}"}
    if key:
        headers["Idempotency-Key"] = key
    data = body if isinstance(body, str) else json.dumps(body)
    return getattr(client, method)(url, data, content_type="application/json", headers=headers)


# --- malformed trees -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", [
    {"field": "clinic", "op": "in", "value": ["\ud800"]},
    {"all": [{"field": "distance_km", "op": "lte", "value": 5, "clinic": "SH\udfff"}]},
])
def test_a_clinic_code_with_a_lone_surrogate_is_a_field_error_everywhere_and_saves_nothing(client, token, clinic_a,
                                                                                          rule):
    """Was a 500 on every endpoint: the code reached the clinic lookup and the driver could not encode it."""
    checked = post(client, f"{BASE}/validate", {"rule": rule}, token=token)
    assert checked.status_code == 200 and checked.json()["ok"] is False
    assert "must be a clinic id or code" in checked.json()["errors"][0]["message"]
    for url in (f"{BASE}/preview", f"{BASE}/sql"):
        response = post(client, url, {"rule": rule}, token=token)
        assert response.status_code == 422, (url, response.content)
        assert response.json()["errors"][0]["field"].startswith("body.rule")
    saved = post(client, BASE, {"name": "代号", "rule": rule}, token=token, key="surrogate-clinic")
    assert saved.status_code == 422 and Segment.objects.count() == 0


def _deep(n: int, key: str) -> dict:
    node = {"field": "stage", "op": "eq", "value": "lead"}
    for _ in range(n):
        node = {"not": node} if key == "not" else {key: [node]}
    return node


@pytest.mark.parametrize("rule, field, message", [
    (_deep(300, "not"), "not.not.not.not.not", "nested too deeply (at most 5 levels of groups)"),
    (_deep(300, "any"), "any[0].any[0].any[0].any[0].any[0]", "nested too deeply"),
    ({"all": [{"field": "stage", "op": "eq", "value": "lead"}] * 5000}, "rule", "too many parts"),
    ({"field": "stage", "op": "in", "value": ["lead"] * 201}, "rule", "at most 200 values"),
    ({"all": [{"field": "age", "op": "gte", "value": 1}, {"any": []}]}, "all[1]", "needs at least one condition"),
    ({"field": "age", "op": "gte", "value": True}, "rule", "whole number from 0 to 150"),
    ({"field": "age", "op": "gte", "value": "30"}, "rule", "whole number from 0 to 150"),
    ({"field": "age", "op": "gte", "value": [30]}, "rule", "whole number from 0 to 150"),
    ({"field": "lifetime_spend_fen", "op": "gte", "value": 2**70}, "rule", "whole number of fen"),
    ({"field": "lifetime_spend_fen", "op": "gte", "value": 100.5}, "rule", "whole number of fen"),
    ({"field": "membership_tier", "op": "in", "value": [2**70]}, "rule", "unknown membership tier id"),
    ({"field": "clinic", "op": "in", "value": [2**64]}, "rule", "unknown clinic id"),
    ({"field": "spend_fen_days", "op": "gte", "value": 1, "days": 2**64}, "rule", "days must be 1..3650"),
    ({"field": ["stage"], "op": "eq", "value": "lead"}, "rule", "unknown field"),
    ({"field": "stage", "op": ["eq"], "value": "lead"}, "rule", "is not valid for field 'stage'"),
    ({"field": "stage", "op": "eq", "value": {"lead": 1}}, "rule", "must be one of: lead"),
    ({"field": "community", "op": "contains", "value": "x" * 101}, "rule", "text of 1 to 100 characters"),
    ({"field": "community", "op": "contains", "value": "静安\x00"}, "rule", "NUL character"),
    ({"all": [{"field": "stage", "op": "eq", "value": "lead", "valeu": 1}]}, "all[0]", "did you mean 'value'"),
    ([LEADS], "rule", "must be a group"),
    ("all", "rule", "must be a group"),
])
def test_a_malformed_tree_is_named_by_its_path_through_the_api(client, token, rule, field, message):
    response = post(client, f"{BASE}/validate", {"rule": rule}, token=token)
    assert response.status_code == 200
    errors = response.json()["errors"]
    assert response.json()["ok"] is False and errors[0]["field"] == field and message in errors[0]["message"], errors
    preview = post(client, f"{BASE}/preview", {"rule": rule}, token=token)
    assert preview.status_code == 422 and preview.json()["errors"][0]["field"] == (
        "body.rule" if field == "rule" else f"body.rule.{field}")


@pytest.mark.parametrize("raw, field", [
    ('{"rule": {"field": "distance_km", "op": "lte", "value": NaN, "clinic": 1}}', "body.rule"),
    ('{"rule": {"field": "age", "op": "gte", "value": Infinity}}', "body.rule"),
    ('{"rule": {"field": "distance_km", "op": "lte", "value": 1e999, "clinic": 1}}', "body.rule"),
    ('{"rule": ' + '{"not": ' * 3000 + '1' + '}' * 3000 + '}', "body"),
    ('[{"rule": {"all": []}}]', "body"),
    ('{"rule": {"field": "age", "op": "gte", "value": 30}, "today": "2026-02-30"}', "body.today"),
    ('{"rule": {"field": "age", "op": "gte", "value": 30}, "today": "2025-06-15T09:30:00+08:00"}', "body.today"),
    ('{"rule": {"field": "age", "op": "gte", "value": 30}, "today": "0001-01-01"}', "body.today"),
    ('{"rule": {"field": "age", "op": "gte", "value": 30}, "today": 20250615}', "body.today"),
])
def test_a_body_json_cannot_read_well_is_a_4xx_naming_its_part(client, token, raw, field):
    response = post(client, f"{BASE}/preview", raw, token=token)
    assert response.status_code in (400, 422), response.content
    assert response.json()["errors"][0]["field"] == field, response.json()


def test_a_refused_change_leaves_the_saved_segment_as_it_was(client, token, manager, chain):
    segment = SegmentFactory(chain=chain, name="留存", rule=LEADS)
    before = Segment.objects.values().get(pk=segment.pk)
    bad = {"all": [{"field": "stage", "op": "eq", "value": "lead"}, {"field": "age", "op": "between",
                                                                   "value": [60, "old"]}]}
    response = post(client, f"{BASE}/{segment.pk}", {"name": "改名", "rule": bad}, token=token, key="bad-put",
                    method="put")
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "body.rule.all[1]",
                                          "message": "value[1] must be a whole number from 0 to 150",
                                          "value": '"old"'}]
    page = manager.post(reverse("segments:edit", args=[segment.pk]), {
        "name": "又改名", "mode": "all", "c-k1-field": "age", "c-k1-op": "gte", "c-k1-value": "9" * 30})
    assert page.status_code == 422 and "value must be a whole number from 0 to 150" in page.content.decode()
    assert Segment.objects.values().get(pk=segment.pk) == before


@pytest.mark.parametrize("rule, warned", [
    ('{"all": 5}', True), ('{"field": ["stage"]}', True), ('{"all": [{"not": {"field": {"a": 1}}}]}', True),
    ('{"any": [{"all": "lead"}]}', True), ('{"all": [{"field": "stage", "op": ["eq"], "value": "lead"}]}', False),
    ("[" * 5000 + "]" * 5000, False),
])
def test_the_builder_opens_any_json_in_its_rule_parameter_without_a_500(manager, rule, warned):
    """`/segments/new/?rule=` is a link other pages build: a tree the form cannot show opens with the warning (these
    were 500s: TypeError on a non-list group or an unhashable field/op, RecursionError on deep arrays)."""
    response = manager.get(reverse("segments:create") + "?rule=" + urllib.parse.quote(rule))
    assert response.status_code == 200
    assert ("nested deeper than the form can show" in response.content.decode()) is warned


# --- results on a hand-built pool ------------------------------------------------------------------------------


def at(day: dt.date, *time) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, *time, tzinfo=TZ)


@pytest.fixture
def pool(chain, clinic_a, clinic_b):
    """Customers whose facts sit on the edges; every one has a name that says why it is here."""
    def make(name, clinic=clinic_a, **kw):
        return CustomerFactory(chain=chain, name=name, home_clinic=clinic, **kw)

    p = {
        "no_birthday": make("无生日", birthday=None, community="静安寺"),
        "no_clinic": make("无门诊", clinic=None, birthday=dt.date(1960, 1, 1), community=""),
        "born_30_today": make("今天三十", birthday=dt.date(1995, 6, 15), community="100%_新村"),
        "born_30_tomorrow": make("明天三十", birthday=dt.date(1995, 6, 16), community="100a新村"),
        "clinic_b": make("浦东", clinic=clinic_b, birthday=dt.date(1980, 2, 29), community="ABC 花园"),
        "erased": make("已注销", birthday=dt.date(1960, 1, 1), community="静安寺"),
        "merged": make("已合并", birthday=dt.date(1960, 1, 1), community="静安寺"),
        "spend_exact": make("正好", community="back\\slash"),
        "spend_short": make("差一分"),
        "midnight_in": make("零点"),
        "midnight_out": make("前一刻"),
    }
    Customer.objects.filter(pk=p["erased"].pk).update(erased_at=at(TODAY, 9))
    Customer.objects.filter(pk=p["merged"].pk).update(merged_into=p["no_birthday"])
    first_day = TODAY - dt.timedelta(days=29)  # the first day of "the last 30 days"
    OrderFactory(customer=p["spend_exact"], ordered_at=at(TODAY, 23, 59, 59), amount_fen=100_000)
    OrderFactory(customer=p["spend_short"], ordered_at=at(TODAY, 12), amount_fen=100_050, refunded_fen=51)
    OrderFactory(customer=p["midnight_in"], ordered_at=at(first_day, 0, 0, 0), amount_fen=100_000)
    OrderFactory(customer=p["midnight_out"], ordered_at=at(first_day, 0, 0, 0) - dt.timedelta(microseconds=1),
                 amount_fen=100_000)
    OrderFactory(customer=p["erased"], ordered_at=at(TODAY, 10), amount_fen=500_000)
    OrderFactory(customer=p["merged"], ordered_at=at(TODAY, 10), amount_fen=500_000)
    for c in p.values():
        c.refresh_from_db()
    return p


def python_reading(pool: dict, rule: dict) -> set[str]:
    """Which of the pool's live customers match, read from the rule's words (only the leaves these tests use)."""
    def age(c):
        if c.birthday is None:
            return None
        return TODAY.year - c.birthday.year - ((TODAY.month, TODAY.day) < (c.birthday.month, c.birthday.day))

    def spend(c, days):
        start = at(TODAY - dt.timedelta(days=days - 1))
        end = at(TODAY + dt.timedelta(days=1))
        return sum(o.amount_fen - o.refunded_fen for o in Order.objects.filter(customer=c)
                   if start <= o.ordered_at < end)

    def leaf(c, node):
        f, op, v = node["field"], node["op"], node.get("value")
        if f == "age":
            a = age(c)
            return a is not None and (a >= v if op == "gte" else a <= v if op == "lte" else v[0] <= a <= v[1])
        if f == "clinic":
            return (c.home_clinic_id in v) == (op == "in")
        if f == "community":
            return v.lower() in c.community.lower() if op == "contains" else c.community == v
        if f == "spend_fen_days":
            s = spend(c, node["days"])
            return s >= v if op == "gte" else s <= v if op == "lte" else v[0] <= s <= v[1]
        raise ValueError(f)

    def match(c, node):
        if "field" in node:
            return leaf(c, node)
        if "not" in node:
            return not match(c, node["not"])
        key = "all" if "all" in node else "any"
        return (all if key == "all" else any)(match(c, child) for child in node[key])

    return {name for name, c in pool.items() if c.erased_at is None and c.merged_into_id is None and match(c, rule)}


def names(pool, ids) -> set[str]:
    by_id = {c.pk: name for name, c in pool.items()}
    return {by_id[i] for i in ids}


RULES = {
    "age at least 30": ({"field": "age", "op": "gte", "value": 30}, {"born_30_today", "no_clinic", "clinic_b"}),
    "not age at least 30": ({"not": {"field": "age", "op": "gte", "value": 30}},
                            {"no_birthday", "born_30_tomorrow", "spend_exact", "spend_short", "midnight_in",
                             "midnight_out"}),
    "age at most 29": ({"field": "age", "op": "lte", "value": 29}, {"born_30_tomorrow"}),
    "not in clinic B": ({"field": "clinic", "op": "not_in", "value": ["SH02"]}, None),
    "not (in clinic A)": ({"not": {"field": "clinic", "op": "in", "value": ["SH01"]}}, {"no_clinic", "clinic_b"}),
    "community contains %_": ({"field": "community", "op": "contains", "value": "%_"}, {"born_30_today"}),
    "community contains backslash": ({"field": "community", "op": "contains", "value": "\\"}, {"spend_exact"}),
    "community contains abc": ({"field": "community", "op": "contains", "value": "abc"}, {"clinic_b"}),
    "not community 静安寺": ({"not": {"field": "community", "op": "eq", "value": "静安寺"}}, None),
    "spend ≥ 1000 yuan in 30 days": ({"field": "spend_fen_days", "op": "gte", "value": 100_000, "days": 30},
                                     {"spend_exact", "midnight_in"}),
    "spend ≤ 999.99 yuan in 30 days": ({"field": "spend_fen_days", "op": "lte", "value": 99_999, "days": 30}, None),
    "spend between exactly": ({"field": "spend_fen_days", "op": "between", "value": [100_000, 100_000],
                               "days": 30}, {"spend_exact", "midnight_in"}),
    "not spend ≥ 1000 yuan in 1 day": ({"not": {"field": "spend_fen_days", "op": "gte", "value": 100_000,
                                                "days": 1}}, None),
}


@pytest.mark.parametrize("name", list(RULES))
def test_counts_lists_and_previews_agree_with_a_plain_reading_of_the_rule(admin_scope, pool, clinic_a, clinic_b,
                                                                           name):
    rule, expected = RULES[name]
    rule = json.loads(json.dumps(rule).replace('"SH01"', str(clinic_a.pk)).replace('"SH02"', str(clinic_b.pk)))
    assert clinic_a.code == "SH01" and clinic_b.code == "SH02"
    want = python_reading(pool, rule)
    if expected is not None:
        assert want == expected  # the reading itself says what the edge means
    assert segment_count(admin_scope, rule, today=TODAY) == len(want)
    preview = segment_preview(admin_scope, rule, today=TODAY, limit=100)
    assert names(pool, [row.id for row in preview.rows]) == want and preview.count == len(want)
    segment = SegmentFactory(chain=clinic_a.chain, rule=rule)
    assert names(pool, segment_customers(admin_scope, segment, today=TODAY).values_list("id", flat=True)) == want


def test_a_clinic_named_by_code_counts_like_its_id_and_the_not_in_keeps_customers_without_a_clinic(
        client, token, pool, clinic_b):
    by_code = post(client, f"{BASE}/preview", {"rule": {"field": "clinic", "op": "not_in", "value": ["SH02"]},
                                               "today": TODAY.isoformat(), "limit": 100}, token=token)
    by_id = post(client, f"{BASE}/preview", {"rule": {"field": "clinic", "op": "not_in", "value": [clinic_b.pk]},
                                             "today": TODAY.isoformat(), "limit": 100}, token=token)
    assert by_code.status_code == 200 and by_code.json() == by_id.json()
    got = names(pool, [row["id"] for row in by_code.json()["rows"]])
    assert "no_clinic" in got and "clinic_b" not in got and not {"erased", "merged"} & got
    assert all("****" in row["mobile"] for row in by_code.json()["rows"])


def test_clinic_staff_learn_nothing_about_another_clinics_patients(client, director_token, director_a, pool,
                                                                     clinic_b, chain):
    rule = {"field": "clinic", "op": "in", "value": [clinic_b.pk]}
    response = post(client, f"{BASE}/preview", {"rule": rule, "limit": 100}, token=director_token)
    assert response.status_code == 200 and response.json() == {"count": 0, "rows": []}
    everyone = post(client, f"{BASE}/preview", {"rule": {"not": rule}, "limit": 100}, token=director_token)
    assert "clinic_b" not in names(pool, [row["id"] for row in everyone.json()["rows"]])
    chain_segment = SegmentFactory(chain=chain, rule=rule)
    count = client.get(f"{BASE}/{chain_segment.pk}/count", headers={"Authorization": f"Bearer {director_token}"})
    assert count.status_code == 200 and count.json()["count"] == 0
    other = SegmentFactory(chain=chain, clinic=clinic_b, rule={"field": "age", "op": "gte", "value": 0})
    hidden = client.get(f"{BASE}/{other.pk}/count", headers={"Authorization": f"Bearer {director_token}"})
    assert hidden.status_code == 404


def test_a_renamed_tag_keeps_its_segments_and_a_deleted_one_is_flagged_on_the_page(admin_scope, manager, chain,
                                                                                    pool, tags):
    CustomerTagFactory(customer=pool["spend_exact"], tag=tags["ortho"])
    rule = {"all": [{"field": "tag", "op": "any_of", "value": ["ortho"]}]}
    segment = SegmentFactory(chain=chain, rule=rule)
    tag_update(tag=tags["ortho"], data={"name": "正畸 · 改名"})
    assert names(pool, segment_customers(admin_scope, segment, today=TODAY).values_list("id", flat=True)) == {
        "spend_exact"}
    with pytest.raises(ValidationFailed, match="is tested by the segments"):
        tag_update(tag=tags["ortho"], data={"code": "ortho2"})  # tagging refuses: the rule names the code
    tags["ortho"].delete()  # the admin can delete a tag; the segment's rule still names its code
    assert segment_count(admin_scope, segment.rule, today=TODAY) == 0
    assert [e.message for e in validate(segment.rule, chain_id=chain.pk)] == ["unknown tag 'ortho'"]
    html = manager.get(reverse("segments:edit", args=[segment.pk])).content.decode()
    assert "unknown tag &#x27;ortho&#x27;" in html


def test_a_change_that_omits_the_description_keeps_it_as_it_keeps_the_clinic(client, token, chain, clinic_a):
    segment = SegmentFactory(chain=chain, name="老客", description="十年以上的老客户", clinic=clinic_a, rule=LEADS)
    renamed = post(client, f"{BASE}/{segment.pk}", {"name": "老顾客", "rule": LEADS}, token=token, key="rename",
                   method="put")
    assert renamed.status_code == 200
    assert (renamed.json()["description"], renamed.json()["clinic_id"]) == ("十年以上的老客户", clinic_a.pk)
    cleared = post(client, f"{BASE}/{segment.pk}", {"name": "老顾客", "rule": LEADS, "description": ""},
                   token=token, key="clear", method="put")
    assert cleared.status_code == 200 and cleared.json()["description"] == ""


@pytest.mark.parametrize("leaf", [
    {"field": "distance_km", "op": "lte", "value": 5, "clinic": "SH02"},
    {"field": "clinic", "op": "in", "value": ["SH02"]},
])
def test_a_rule_link_naming_clinics_by_code_opens_with_those_clinics_chosen(manager, chain, located, leaf):
    """A `?rule=` may name clinics by code, as every endpoint accepts; the page's selects offer them by id. The
    distance's clinic select chose none, so the browser sent the first clinic: saved as-is, the segment measured
    from another clinic than the link said (and the home clinic's boxes were all unticked)."""
    from smileloop.segments.tests.test_views import scrape

    clinic_a, clinic_b = located
    page = manager.get(reverse("segments:create") + "?rule=" + urllib.parse.quote(json.dumps({"all": [leaf]})))
    assert page.status_code == 200
    data = scrape(page.content.decode())
    data["name"] = ["浦东"]
    saved = manager.post(reverse("segments:create"), data)
    assert saved.status_code in (302, 303), saved.content.decode()[:1500]
    by_id = json.loads(json.dumps(leaf).replace('"SH02"', str(clinic_b.pk)))
    assert Segment.objects.get(name="浦东").rule == {"all": [by_id]}


@pytest.mark.parametrize("body, field", [
    ({"name": "老客\x07召回", "rule": LEADS}, "body.name"),
    ({"name": "老客召回", "description": "半年未到\x1b[31m", "rule": LEADS}, "body.description"),
])
def test_control_characters_in_a_name_or_description_are_refused_and_save_nothing(client, token, body, field):
    # a bell showed as nothing in the segment list (a NUL the API refuses itself)
    response = post(client, BASE, body, token=token, key="ctl")
    assert response.status_code == 422
    assert [(e["field"], e["message"]) for e in response.json()["errors"]] == [
        (field, "must not contain control characters")]
    assert not Segment.objects.exists()


def test_a_description_keeps_its_line_breaks_and_tabs(client, token):
    response = post(client, BASE, {"name": "老客召回", "description": "半年未到\n\t优先电话", "rule": LEADS},
                    token=token, key="lines")
    assert response.status_code == 201, response.content
    assert Segment.objects.get().description == "半年未到\n\t优先电话"
