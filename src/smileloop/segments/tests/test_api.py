import json

import pytest

from smileloop.clinics.services import token_create
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.segments.models import Segment
from smileloop.segments.tests.factories import SegmentFactory

pytestmark = pytest.mark.django_db
BASE = "/api/segments"
LEADS = {"all": [{"field": "stage", "op": "eq", "value": "lead"}]}


@pytest.fixture
def manager_token(marketing):
    return token_create(username=marketing.user.username)


@pytest.fixture
def desk_token(front_desk_a):
    return token_create(username=front_desk_a.user.username)


@pytest.fixture
def director_token(director_a):
    return token_create(username=director_a.user.username)


def call(client, method, url, body=None, *, token, key=None):
    headers = {"Authorization": f"Bearer {token}"}
    if key:
        headers["Idempotency-Key"] = key
    # no body: nothing (the test client sent the text "None", a body the API refuses where it takes none)
    return getattr(client, method)(url, json.dumps(body) if body is not None else "",
                                   content_type="application/json", headers=headers)


def test_validate_answers_ok_or_the_errors_by_path(client, manager_token):
    ok = call(client, "post", f"{BASE}/validate", {"rule": LEADS}, token=manager_token)
    assert ok.status_code == 200 and ok.json() == {"ok": True, "errors": []}
    bad = call(client, "post", f"{BASE}/validate",
               {"rule": {"all": [LEADS, {"any": [{"field": "spendd", "op": "gte", "value": 1}]}]}}, token=manager_token)
    assert bad.status_code == 200
    assert bad.json() == {"ok": False, "errors": [
        {"field": "all[1].any[0]", "message": "unknown field 'spendd'; did you mean 'spend_fen_days'?",
         "value": '"spendd"'}]}


def test_validate_checks_tags_of_the_chain(client, manager_token, tags):
    response = call(client, "post", f"{BASE}/validate",
                    {"rule": {"field": "tag", "op": "any_of", "value": ["implant", "unknown"]}}, token=manager_token)
    assert response.json()["errors"] == [{"field": "rule", "message": "unknown tag 'unknown'", "value": '"unknown"'}]


def test_preview_counts_within_the_scope_and_masks_phones(client, director_token, chain, clinic_a, clinic_b):
    CustomerFactory(chain=chain, home_clinic=clinic_a, mobile="+8613812345678")
    CustomerFactory(chain=chain, home_clinic=clinic_b)
    response = call(client, "post", f"{BASE}/preview", {"rule": LEADS, "limit": 5}, token=director_token)
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["count"] == 1
    assert data["rows"][0]["mobile"] == "138****5678"


def test_preview_of_a_bad_rule_is_a_422_naming_the_part(client, manager_token):
    response = call(client, "post", f"{BASE}/preview",
                    {"rule": {"all": [{"field": "age", "op": "between", "value": 3}]}}, token=manager_token)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "body.rule.all[0]", "message": "op 'between' needs value [low, high]", "value": "3"}]


@pytest.mark.parametrize("value", ["a\ud800b", ["阳光小区", "\udfff"]])
def test_a_text_value_with_a_lone_surrogate_is_a_422_in_preview_and_save_and_saves_nothing(client, manager_token,
                                                                                           value):
    # given: JSON's "\\ud800" escape, which the database driver cannot encode (a 500 in preview, save and tag rules)
    op = "in" if isinstance(value, list) else "contains"
    rule = {"field": "community", "op": op, "value": value}
    # when
    preview = call(client, "post", f"{BASE}/preview", {"rule": rule}, token=manager_token)
    saved = call(client, "post", BASE, {"name": "小区", "rule": rule}, token=manager_token, key="k-1")
    # then
    for response in (preview, saved):
        assert response.status_code == 422
        [error] = response.json()["errors"]
        assert error["field"] == "body.rule"
        key = "value[1]" if isinstance(value, list) else "value"
        assert error["message"] == f"{key} must not contain a lone surrogate (\\ud800–\\udfff)"
    assert not Segment.objects.filter(name="小区").exists()


def test_fields_lists_the_registry(client, director_token, desk_token, clinic_a):
    assert call(client, "get", f"{BASE}/fields", token=desk_token).status_code == 403  # no segment.view
    response = call(client, "get", f"{BASE}/fields", token=director_token)
    assert response.status_code == 200
    by_name = {f["name"]: f for f in response.json()}
    assert {"stage", "tag", "spend_fen_days", "distance_km", "procedure_days"} <= set(by_name)
    spend = by_name["spend_fen_days"]
    assert [o["op"] for o in spend["ops"]] == ["gte", "lte", "between"]
    assert spend["params"][0]["name"] == "days"
    assert by_name["clinic"]["choices"][0]["label"] == "静安门诊"


def test_sql_needs_segment_manage(client, desk_token, manager_token):
    assert call(client, "post", f"{BASE}/sql", {"rule": LEADS}, token=desk_token).status_code == 403
    shown = call(client, "post", f"{BASE}/sql", {"rule": LEADS}, token=manager_token)
    assert shown.status_code == 200 and "customers_customer" in shown.json()["sql"]


def test_saving_is_idempotent_on_the_header(client, manager_token, chain):
    body = {"name": "线索", "description": "未到店", "rule": LEADS}
    first = call(client, "post", BASE, body, token=manager_token, key="seg-1")
    again = call(client, "post", BASE, body, token=manager_token, key="seg-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Segment.objects.filter(chain=chain).count() == 1


def test_a_write_without_the_key_is_refused(client, manager_token):
    response = call(client, "post", BASE, {"name": "x", "rule": LEADS}, token=manager_token)
    assert response.status_code == 400 and response.json()["code"] == "idempotency_key_required"
    assert Segment.objects.count() == 0


def test_saving_a_bad_rule_changes_nothing_and_names_the_parts(client, manager_token):
    body = {"name": "坏规则", "rule": {"all": [{"field": "spend_fen_days", "op": "gte", "value": 1, "days": 0}]}}
    response = call(client, "post", BASE, body, token=manager_token, key="bad-1")
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "body.rule.all[0]", "message": "days must be 1..3650", "value": "0"}]
    assert Segment.objects.count() == 0


def test_front_desk_may_not_save(client, desk_token):
    response = call(client, "post", BASE, {"name": "x", "rule": LEADS}, token=desk_token, key="k")
    assert response.status_code == 403
    assert Segment.objects.count() == 0


def test_update_count_and_delete(client, manager_token, chain, clinic_a):
    segment = SegmentFactory(chain=chain, rule=LEADS)
    CustomerFactory(chain=chain, home_clinic=clinic_a, stage="lead")
    count = call(client, "get", f"{BASE}/{segment.id}/count", token=manager_token)
    assert count.json() == {"id": segment.id, "count": 1}
    changed = call(client, "put", f"{BASE}/{segment.id}",
                   {"name": "已治疗", "rule": {"field": "stage", "op": "eq", "value": "treated"}},
                   token=manager_token, key="u-1")
    assert changed.status_code == 200 and changed.json()["name"] == "已治疗"
    assert call(client, "get", f"{BASE}/{segment.id}/count", token=manager_token).json()["count"] == 0
    gone = call(client, "delete", f"{BASE}/{segment.id}", token=manager_token, key="d-1")
    assert gone.status_code == 200
    assert call(client, "get", f"{BASE}/{segment.id}", token=manager_token).status_code == 404
    assert call(client, "get", BASE, token=manager_token).json() == []


def test_another_chains_segment_is_not_found(client, manager_token):
    other = SegmentFactory(chain=CustomerFactory().chain)
    assert call(client, "get", f"{BASE}/{other.id}", token=manager_token).status_code == 404
    assert call(client, "get", f"{BASE}/{other.id}/count", token=manager_token).status_code == 404


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_the_api_answers_in_english_whatever_language_the_client_asks_for(client, manager_token, settings, language):
    # given a server whose default language is Chinese, and a client asking for one
    settings.LANGUAGE_CODE = "zh-hans"
    response = client.post(f"{BASE}/preview", json.dumps({"rule": {"all": [{"field": "nope", "op": "eq", "value": 1}]}}),
                           content_type="application/json",
                           headers={"Authorization": f"Bearer {manager_token}", "Accept-Language": language})
    # then the rule's error is in English, like every other API message
    assert response.status_code == 422
    assert response.json()["errors"][0]["message"] == "unknown field 'nope'"
    assert response["Content-Language"] == "en"


def test_segments_name_their_clinic_as_every_answer_names_one_in_one_query_for_the_list(
        client, manager_token, chain, clinic_a, clinic_b, django_assert_max_num_queries):
    # given the chain's segment and one of each clinic
    SegmentFactory(chain=chain, rule=LEADS, name="全院线索")
    SegmentFactory(chain=chain, rule=LEADS, name="静安线索", clinic=clinic_a)
    SegmentFactory(chain=chain, rule=LEADS, name="浦东线索", clinic=clinic_b)
    # when the list is read (a request's token check and scope, then the segments with their clinics)
    call(client, "get", BASE, token=manager_token)  # warm the token's caches
    with django_assert_max_num_queries(4) as queries:
        listed = call(client, "get", BASE, token=manager_token).json()
    # then each names its clinic as an object, its id kept, and the clinics came with the segments
    assert [q for q in queries.captured_queries if "clinics_clinic" in q["sql"] and "segments_segment" not in q["sql"]] == []
    by_name = {s["name"]: s for s in listed}
    assert by_name["全院线索"]["clinic"] is None and by_name["全院线索"]["clinic_id"] is None
    assert by_name["静安线索"]["clinic"] == {"id": clinic_a.id, "code": "SH01", "name": "静安门诊"}
    assert by_name["静安线索"]["clinic_id"] == clinic_a.id
    assert by_name["浦东线索"]["clinic"] == {"id": clinic_b.id, "code": clinic_b.code, "name": clinic_b.name}


def test_a_saved_segment_answers_with_its_clinic_object(client, manager_token, clinic_a):
    created = call(client, "post", BASE, {"name": "静安线索", "rule": LEADS, "clinic": "SH01"},
                   token=manager_token, key="c-clinic")
    assert created.status_code == 201, created.content
    assert created.json()["clinic"] == {"id": clinic_a.id, "code": "SH01", "name": "静安门诊"}
    fetched = call(client, "get", f"{BASE}/{created.json()['id']}", token=manager_token).json()
    assert fetched["clinic"] == created.json()["clinic"] and fetched["clinic_id"] == clinic_a.id


def test_preview_rows_name_the_home_clinic_as_an_object_and_keep_its_name(client, manager_token, chain, clinic_a):
    # given a lead of clinic A and one without a home clinic
    with_clinic = CustomerFactory(chain=chain, home_clinic=clinic_a, stage="lead")
    without = CustomerFactory(chain=chain, home_clinic=None, stage="lead")
    # when previewed
    rows = {r["id"]: r for r in call(client, "post", f"{BASE}/preview", {"rule": LEADS}, token=manager_token)
            .json()["rows"]}
    # then the clinic is the usual object, and the name string stays for older clients
    assert rows[with_clinic.id]["clinic"] == {"id": clinic_a.id, "code": "SH01", "name": "静安门诊"}
    assert rows[with_clinic.id]["home_clinic"] == "静安门诊"
    assert rows[without.id]["clinic"] is None and rows[without.id]["home_clinic"] == ""


def test_a_preview_may_name_a_clinic_by_code_and_counts_as_by_id(client, manager_token, chain, clinic_a, clinic_b):
    CustomerFactory(chain=chain, home_clinic=clinic_a, stage="lead")
    CustomerFactory(chain=chain, home_clinic=clinic_b, stage="lead")
    by_code = call(client, "post", f"{BASE}/preview", {"rule": {"field": "clinic", "op": "in", "value": ["SH01"]}},
                   token=manager_token)
    by_id = call(client, "post", f"{BASE}/preview", {"rule": {"field": "clinic", "op": "in", "value": [clinic_a.id]}},
                 token=manager_token)
    assert by_code.status_code == 200, by_code.content
    assert by_code.json() == by_id.json() and by_code.json()["count"] == 1
    unknown = call(client, "post", f"{BASE}/preview", {"rule": {"all": [{"field": "clinic", "op": "in",
                                                                          "value": ["BJ01"]}]}}, token=manager_token)
    assert unknown.status_code == 422
    assert unknown.json()["errors"] == [{"field": "body.rule.all[0]", "message": "unknown clinic code 'BJ01'",
                                         "value": '"BJ01"'}]
