"""The customers API end to end through Django's URL routing: auth, scoping, masking, idempotency, errors."""

import json
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import token_authenticate
from smileloop.clinics.services import token_create
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.core import idempotency
from smileloop.core.models import AuditEvent, IdempotencyRecord
from smileloop.customers.models import Consent, Customer, HouseholdMember, Identity, Interaction
from smileloop.customers.services import customer_upsert, household_member_add
from smileloop.customers.tests.factories import CustomerFactory, IdentityFactory

UPSERT = "/api/customers/upsert"


@pytest.fixture
def token_a(front_desk_a):
    return token_create(username=front_desk_a.user.username)


@pytest.fixture
def marketing_token(marketing):
    return token_create(username=marketing.user.username)


def post(client, url, body, *, token, key="key-1"):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if key:
        headers["Idempotency-Key"] = key
    return client.post(url, data=json.dumps(body), content_type="application/json", headers=headers)


def get(client, url, *, token, **params):
    return client.get(url, params, headers={"Authorization": f"Bearer {token}"})


def zhang_san(**extra):
    return {"name": "张三", "mobile": "138 0013 8000", "gender": "男", "birthday": "1990/1/5", **extra}


# --- authentication -----------------------------------------------------------------------------------

@pytest.mark.parametrize("token", [None, "sl_not-a-real-token"])
def test_a_request_without_a_valid_token_is_401_and_writes_nothing(client, clinic_a, token):
    # when
    response = post(client, UPSERT, zhang_san(), token=token)
    # then
    assert response.status_code == 401
    assert response.json() == {
        "code": "unauthenticated",
        "message": "Missing or invalid API token: send 'Authorization: Bearer <token>'",
        "errors": [],
    }
    assert response["WWW-Authenticate"] == 'Bearer realm="smileloop"'
    assert Customer.objects.count() == 0


def test_a_revoked_staff_login_can_no_longer_use_its_token(client, front_desk_a, token_a):
    # given
    front_desk_a.is_active = False
    front_desk_a.save(update_fields=["is_active"])
    # when
    response = get(client, "/api/customers", token=token_a)
    # then
    assert response.status_code == 401


def test_a_login_switched_off_in_the_admin_can_no_longer_use_its_token(client, front_desk_a, token_a):
    # given: the token was in use (its scope is cached), then the login itself is switched off, as the user admin
    # says to do instead of deleting it; its staff profile stays active
    assert get(client, "/api/customers", token=token_a).status_code == 200
    front_desk_a.user.is_active = False
    front_desk_a.user.save(update_fields=["is_active"])
    # when
    response = get(client, "/api/customers", token=token_a)
    # then: refused, as the login page refuses it
    assert response.status_code == 401
    assert token_authenticate(token_a) is None


# --- upsert -------------------------------------------------------------------------------------------

def test_upsert_creates_a_customer_in_the_callers_clinic_with_a_masked_phone(client, clinic_a, token_a):
    # when
    response = post(client, UPSERT, zhang_san(
        identities=[{"kind": "pms", "external_id": "P-1001"}],
        consents=[{"purpose": "data_processing", "granted": True, "source": "pms", "evidence": "signed form"}],
    ), token=token_a)
    # then
    assert response.status_code == 201
    body = response.json()
    customer = Customer.objects.get()
    assert body["created"] is True
    assert body["customer"]["id"] == customer.id
    assert body["customer"]["mobile"] == "138****8000"
    assert body["customer"]["mobile_revealed"] is False
    assert body["customer"]["gender"] == "M"
    assert body["customer"]["birthday"] == "1990-01-05"
    assert body["customer"]["home_clinic"] == {"id": clinic_a.id, "code": "SH01", "name": "静安门诊"}
    assert body["customer"]["identities"] == [{"kind": "pms", "external_id": "P-1001", "app_id": ""}]
    assert [(c["purpose"], c["granted"], c["source"]) for c in body["customer"]["consents"]] == [
        ("data_processing", True, "pms")]
    assert customer.mobile == "+8613800138000"
    assert customer.home_clinic_id == clinic_a.id


def test_a_person_created_by_one_clinics_staff_without_a_home_clinic_is_found_by_their_pinyin_search(
        client, clinic_a, token_a):
    # given: no home clinic sent, so the person gets the caller's single clinic
    created = post(client, UPSERT, {"name": "张三", "mobile": "13800138000"}, token=token_a)
    # when: the clinic-scoped search reads the clinic copied onto the search keys
    found = get(client, "/api/customers", token=token_a, q="zs")
    # then
    assert created.json()["customer"]["home_clinic"]["id"] == clinic_a.id
    assert [c["id"] for c in found.json()["items"]] == [created.json()["customer"]["id"]]


def test_a_new_customer_upsert_is_a_fixed_handful_of_statements(client, chain, chain_admin):
    # given: a warm-up request loads the staff member and scope and stamps the token's last use
    token = token_create(username=chain_admin.user.username)
    post(client, UPSERT, {"name": "李四", "mobile": "13900139000"}, token=token, key="warm")
    # when
    with CaptureQueriesContext(connection) as captured:
        response = post(client, UPSERT, {"name": "张三", "mobile": "13800138000"}, token=token, key="new")
    # then: token check, idempotency claim, the customer INSERT (on PostgreSQL with its search keys and
    # timeline row in the same statement), the stored answer; and no savepoint but the idempotency block's
    # own (a savepoint here only because the test runs inside a transaction; in production BEGIN … COMMIT)
    assert response.status_code == 201
    sql = [q["sql"] for q in captured.captured_queries]
    assert sum(s.startswith("SAVEPOINT") for s in sql) == 1, sql
    statements = [s for s in sql if not s.startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]
    assert len(statements) == (4 if connection.vendor == "postgresql" else 6), statements


def test_upsert_matches_the_same_person_by_a_differently_written_phone_and_answers_200(client, clinic_a, token_a):
    # given
    post(client, UPSERT, zhang_san(), token=token_a, key="first")
    # when
    response = post(client, UPSERT, {"name": "张三", "mobile": "+86-138-0013-8000", "community": "静安花园"},
                    token=token_a, key="second")
    # then
    assert response.status_code == 200
    assert response.json()["created"] is False
    assert Customer.objects.count() == 1
    customer = Customer.objects.get()
    assert customer.community == "静安花园"
    assert customer.birthday.isoformat() == "1990-01-05"  # fields left out keep their value


def test_upsert_lists_every_bad_field_and_writes_nothing(client, clinic_a, token_a):
    # when
    response = post(client, UPSERT, {"name": "张三", "mobile": "12345", "birthday": "2990-01-01"}, token=token_a)
    # then
    assert response.status_code == 422
    assert response.json() == {
        "code": "invalid",
        "message": "body.mobile: is not a valid phone number; body.birthday: is in the future",
        "errors": [
            {"field": "body.mobile", "message": "is not a valid phone number", "value": "12345"},
            {"field": "body.birthday", "message": "is in the future", "value": "2990-01-01"},
        ],
    }
    assert Customer.objects.count() == 0


def test_upsert_refuses_a_birth_year_alone_instead_of_storing_a_day_in_1905(client, clinic_a, token_a):
    response = post(client, UPSERT, {"name": "张三", "mobile": "138 0013 8000", "birthday": "1990"}, token=token_a)
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "body.birthday", "value": "1990",
                                          "message": "is a year, not a date of birth: write the whole date (1990-01-05)"}]
    assert Customer.objects.count() == 0


def test_a_malformed_body_is_422_with_dotted_field_paths_and_writes_nothing(client, clinic_a, token_a):
    # when
    response = post(client, UPSERT, {"mobile": "13800138000", "latitude": "north",
                                     "identities": [{"kind": "qq", "external_id": "1"}]}, token=token_a)
    # then
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [(e["field"], e.get("value")) for e in errors] == [
        ("body.name", None), ("body.latitude", "north"), ("body.identities[0].kind", "qq")]
    assert Customer.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0


def test_unparseable_json_is_400_in_the_common_error_shape(client, token_a):
    # when
    response = client.post(UPSERT, data="{not json", content_type="application/json",
                           headers={"Authorization": f"Bearer {token_a}", "Idempotency-Key": "k"})
    # then
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "bad_request"
    assert body["message"].startswith("body: is not valid JSON (Expecting property name enclosed in double quotes")
    assert body["errors"] == [{"field": "body", "message": "is not valid JSON (Expecting property name enclosed in "
                                                           "double quotes: line 1 column 2 (char 1))"}]


def test_a_name_of_only_invisible_characters_is_required_and_they_are_dropped_from_a_name(client, clinic_a, token_a):
    # when: a zero-width space and a right-to-left override, then the same inside a real name
    blank = post(client, UPSERT, zhang_san(name="\u202e\u200b"), token=token_a, key="k-blank")
    named = post(client, UPSERT, zhang_san(name="张\u200b三\u202e"), token=token_a, key="k-named")
    # then
    assert blank.status_code == 422
    assert [(e["field"], e["message"]) for e in blank.json()["errors"]] == [("body.name", "is required")]
    assert named.status_code == 201
    assert Customer.objects.get().name == "张三"


@pytest.mark.parametrize("url, status", [(UPSERT, 400), ("/api/customers/{id}/family/leave", 422)])
def test_json_nested_too_deeply_to_read_is_refused_on_the_body_and_writes_nothing(client, chain, clinic_a, token_a,
                                                                                   url, status):
    # given: 100 000 nested arrays, past what the JSON decoder recurses into (a 500 on an endpoint without a body)
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    deep = "[" * 100_000 + "]" * 100_000
    # when
    response = client.post(url.format(id=customer.id), data=deep, content_type="application/json",
                           headers={"Authorization": f"Bearer {token_a}", "Idempotency-Key": "k"})
    # then
    assert response.status_code == status
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == ["body"]
    assert errors[0]["message"].startswith("is nested too deeply to read")
    assert Customer.objects.count() == 1
    assert IdempotencyRecord.objects.count() == 0


def test_upsert_of_a_person_outside_the_callers_clinics_is_409_and_changes_nothing(client, chain, clinic_b, token_a):
    # given
    other = CustomerFactory(chain=chain, name="李四", mobile="+8613900139000", home_clinic=clinic_b)
    # when
    response = post(client, UPSERT, {"name": "李四改", "mobile": "13900139000"}, token=token_a)
    # then
    assert response.status_code == 409
    assert response.json()["code"] == "out_of_scope"
    other.refresh_from_db()
    assert other.name == "李四"
    assert Customer.objects.count() == 1


def test_upsert_naming_a_clinic_outside_the_callers_clinics_is_403_and_writes_nothing(client, clinic_b, token_a):
    # when
    response = post(client, UPSERT, zhang_san(home_clinic="SH02"), token=token_a)
    # then
    assert response.status_code == 403
    assert response.json() == {
        "code": "forbidden",
        "message": "Clinic 'SH02' is not one of your clinics",
        "errors": [{"field": "body.home_clinic", "message": "Clinic 'SH02' is not one of your clinics"}],
    }
    assert Customer.objects.count() == 0


def test_a_role_without_customer_edit_gets_403_and_its_key_stays_free(client, chain, marketing_token):
    # when
    response = post(client, UPSERT, zhang_san(), token=marketing_token)
    # then
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert Customer.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0


@pytest.mark.parametrize("stage", ["member", "lost", None])
def test_upsert_with_a_stage_is_422_naming_the_field_and_writes_nothing(client, clinic_a, token_a, stage):
    # when
    response = post(client, UPSERT, zhang_san(stage=stage), token=token_a)
    # then
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid"
    [error] = body["errors"]
    assert error["field"] == "body.stage"
    assert error["message"].startswith("is derived from events")
    assert "POST /api/customers/{id}/lost" in error["message"]
    assert body["message"].startswith("body.stage: is derived from events")
    assert Customer.objects.count() == 0


def test_updating_an_existing_customer_with_a_stage_is_422_and_changes_nothing(client, chain, clinic_a, token_a):
    # given
    customer = CustomerFactory(chain=chain, name="张三", mobile="+8613800138000", home_clinic=clinic_a,
                               stage="booked", community="旧小区")
    before = Customer.objects.filter(pk=customer.pk).values().get()
    # when
    response = post(client, UPSERT, zhang_san(stage="treated", community="静安花园"), token=token_a)
    # then
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.stage"]
    assert Customer.objects.count() == 1
    assert Customer.objects.filter(pk=customer.pk).values().get() == before
    assert not Interaction.objects.exists()


def test_the_upsert_schema_no_longer_documents_a_stage(client, db):
    schema = client.get("/api/openapi.json").json()
    assert "stage" not in schema["components"]["schemas"]["CustomerUpsertIn"]["properties"]
    assert "name" in schema["components"]["schemas"]["CustomerUpsertIn"]["properties"]


# --- idempotency --------------------------------------------------------------------------------------

def test_a_replay_with_the_same_key_returns_the_first_response_and_writes_once(client, clinic_a, token_a):
    # given
    first = post(client, UPSERT, zhang_san(), token=token_a, key="abc-123")
    # when
    replay = post(client, UPSERT, zhang_san(), token=token_a, key="abc-123")
    # then
    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json()
    assert replay["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Customer.objects.count() == 1
    assert Customer.objects.get().interactions.count() == 1
    record = IdempotencyRecord.objects.get()
    assert (record.key, record.status_code, record.operation) == ("abc-123", 201, "customers.upsert")


def test_the_same_key_with_a_different_body_is_409_and_changes_nothing(client, clinic_a, token_a):
    # given
    post(client, UPSERT, zhang_san(), token=token_a, key="abc-123")
    # when
    response = post(client, UPSERT, zhang_san(name="张三丰"), token=token_a, key="abc-123")
    # then
    assert response.status_code == 409
    assert response.json() == {
        "code": "idempotency_key_reused",
        "message": "This Idempotency-Key was already used for a different request; use a new key",
        "errors": [{"field": "header.Idempotency-Key",
                    "message": "This Idempotency-Key was already used for a different request; use a new key"}],
    }
    assert list(Customer.objects.values_list("name", flat=True)) == ["张三"]


def test_a_write_without_an_idempotency_key_is_400_and_writes_nothing(client, clinic_a, token_a):
    # when
    response = post(client, UPSERT, zhang_san(), token=token_a, key=None)
    # then
    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_required"
    assert response.json()["errors"][0]["field"] == "header.Idempotency-Key"
    assert Customer.objects.count() == 0


def test_the_same_key_used_by_two_staff_members_is_two_writes(client, chain, clinic_a, token_a):
    # given
    other = StaffFactory(chain=chain, role=Role.FRONT_DESK, clinics=[clinic_a])
    other_token = token_create(username=other.user.username)
    post(client, UPSERT, zhang_san(), token=token_a, key="shared")
    # when
    response = post(client, UPSERT, {"name": "王五", "mobile": "13700137000"}, token=other_token, key="shared")
    # then
    assert response.status_code == 201
    assert Customer.objects.count() == 2


def test_a_refused_write_is_replayed_as_the_same_refusal(client, clinic_a, token_a):
    # given
    first = post(client, UPSERT, {"name": "张三", "mobile": "12345"}, token=token_a, key="bad")
    # when
    replay = post(client, UPSERT, {"name": "张三", "mobile": "12345"}, token=token_a, key="bad")
    # then
    assert first.status_code == replay.status_code == 422
    assert replay.json() == first.json()
    assert Customer.objects.count() == 0


def test_a_concurrent_duplicate_that_loses_the_race_replays_the_winners_answer(client, clinic_a, token_a):
    # given: the winner's record is committed; the loser's claim (INSERT … ON CONFLICT DO NOTHING, which
    # waits for a concurrent winner's transaction) is also its look-up, so it finds the key taken
    first = post(client, UPSERT, zhang_san(), token=token_a, key="race")
    real_claim = idempotency._claim
    claims = []

    def claim_spy(**kwargs):
        claims.append(real_claim(**kwargs))
        return claims[-1]

    # when
    with mock.patch.object(idempotency, "_claim", side_effect=claim_spy):
        response = post(client, UPSERT, zhang_san(), token=token_a, key="race")
    # then
    assert claims == [None]
    assert response.status_code == 201
    assert response["Idempotent-Replayed"] == "true"
    assert response.json() == first.json()
    assert Customer.objects.count() == 1
    assert Customer.objects.get().interactions.count() == 1


# --- reads and scoping --------------------------------------------------------------------------------

def test_clinic_a_staff_gets_404_for_a_customer_of_clinic_b(client, chain, clinic_b, token_a):
    # given
    other = CustomerFactory(chain=chain, home_clinic=clinic_b)
    # when
    response = get(client, f"/api/customers/{other.id}", token=token_a)
    # then
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "Customer not found", "errors": []}


def test_one_customer_shows_identities_household_current_consents_and_counts(client, chain, clinic_a, token_a):
    # given
    head, _ = customer_upsert(chain=chain, data={"name": "张三", "mobile": "13800138000", "home_clinic": clinic_a},
                              identities=[{"kind": "wechat_openid", "external_id": "oABC"}])
    child = CustomerFactory(chain=chain, home_clinic=clinic_a, name="张小三")
    household_member_add(head=head, member=child, relation="child")
    post(client, UPSERT, {"name": "张三", "mobile": "13800138000", "consents": [
        {"purpose": "marketing_sms", "granted": True, "source": "pms"}]}, token=token_a, key="c1")
    post(client, UPSERT, {"name": "张三", "mobile": "13800138000", "consents": [
        {"purpose": "marketing_sms", "granted": False, "source": "pms"}]}, token=token_a, key="c2")
    # when
    response = get(client, f"/api/customers/{head.id}", token=token_a)
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["mobile"] == "138****8000"
    # an openid is masked for every token (customers/tests/test_identities_masked.py)
    assert body["identities"] == [{"kind": "wechat_openid", "external_id": "****C", "app_id": ""}]
    assert body["household"]["head_id"] == head.id
    assert body["household"]["relation"] == "head"
    assert body["household"]["members"] == [{"customer_id": head.id, "relation": "head"},
                                            {"customer_id": child.id, "relation": "child"}]
    assert [(c["purpose"], c["granted"]) for c in body["consents"]] == [("marketing_sms", False)]
    assert Consent.objects.count() == 2
    assert body["counts"] == {"appointments": 0, "orders": 0, "treatment_plans": 0}


def test_the_household_gives_no_id_nor_name_of_a_relative_of_another_clinic(client, chain, clinic_a, clinic_b,
                                                                             token_a):
    # given a household headed by 王芳 of clinic B (linked by a chain role), with her son in clinic A and her
    # husband in clinic B
    head = CustomerFactory(chain=chain, home_clinic=clinic_b, name="王芳")
    son = CustomerFactory(chain=chain, home_clinic=clinic_a, name="李小明")
    husband = CustomerFactory(chain=chain, home_clinic=clinic_b, name="李建国")
    household_member_add(head=head, member=son, relation="child")
    household_member_add(head=head, member=husband, relation="spouse")
    # when clinic A's front desk reads the son
    response = get(client, f"/api/customers/{son.id}", token=token_a)
    # then the relatives of clinic B keep their relation but have no id, and are not named (not in the
    # household's name either)
    assert response.status_code == 200
    household = response.json()["household"]
    assert household["head_id"] is None and household["relation"] == "child"
    assert household["members"] == [{"customer_id": None, "relation": "head"},
                                    {"customer_id": son.id, "relation": "child"},
                                    {"customer_id": None, "relation": "spouse"}]
    assert household["name"] == "王*家"
    assert "王芳" not in response.content.decode() and "李建国" not in response.content.decode()


def test_the_household_schema_documents_ids_as_nullable(client, db):
    schema = client.get("/api/openapi.json").json()["components"]["schemas"]
    member, household = schema["HouseholdMemberOut"]["properties"], schema["HouseholdOut"]["properties"]
    for prop in (member["customer_id"], household["head_id"]):
        assert {"type": "null"} in prop["anyOf"] and "outside your clinics" in prop["description"]


def test_revealing_a_phone_with_a_reason_returns_it_and_writes_an_audit_row(client, chain, clinic_a, front_desk_a,
                                                                              token_a):
    # given
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a, mobile="+8613800138000")
    # when
    response = get(client, f"/api/customers/{customer.id}", token=token_a, reveal_phone="true",
                   reason="回访预约")
    # then
    assert response.status_code == 200
    assert response.json()["mobile"] == "+8613800138000"
    assert response.json()["mobile_revealed"] is True
    event = AuditEvent.objects.exclude(action="api_token.create").get()
    assert (event.actor_id, event.action, event.object_id, event.reason) == (
        front_desk_a.user_id, "phone.reveal", str(customer.id), "回访预约")


def test_revealing_a_phone_without_a_reason_is_422_and_not_audited(client, chain, clinic_a, token_a):
    # given
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    # when
    response = get(client, f"/api/customers/{customer.id}", token=token_a, reveal_phone="true")
    # then
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "query.reason", "message": "is required to reveal a phone number",
                                          "value": ""}]
    assert not AuditEvent.objects.exclude(action="api_token.create").exists()


def test_a_role_without_phone_view_cannot_reveal_and_nothing_is_audited(client, chain, clinic_a, marketing_token):
    # given
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    # when
    response = get(client, f"/api/customers/{customer.id}", token=marketing_token, reveal_phone="true",
                   reason="curious")
    # then
    assert response.status_code == 403
    assert response.json()["message"] == "Your role may not see full phone numbers"
    assert not AuditEvent.objects.exclude(action="api_token.create").exists()


def test_the_list_is_scoped_searchable_paginated_and_masked(client, chain, clinic_a, clinic_b, token_a):
    # given
    zs, _ = customer_upsert(chain=chain, data={"name": "张三", "mobile": "13800138000", "home_clinic": clinic_a})
    for i in range(3):
        CustomerFactory(chain=chain, home_clinic=clinic_a, name=f"王{i}")
    CustomerFactory(chain=chain, home_clinic=clinic_b, name="张四")
    # when
    found = get(client, "/api/customers", token=token_a, q="zs")
    page = get(client, "/api/customers", token=token_a, limit=2, offset=1)
    # then
    assert found.status_code == 200
    assert found.json()["count"] == 1
    assert [(c["id"], c["mobile"]) for c in found.json()["items"]] == [(zs.id, "138****8000")]
    assert page.json()["count"] == 4
    assert (page.json()["limit"], page.json()["offset"], len(page.json()["items"])) == (2, 1, 2)


def test_filtering_the_list_by_another_clinic_is_403(client, clinic_b, token_a):
    # when
    response = get(client, "/api/customers", token=token_a, clinic="SH02")
    # then
    assert response.status_code == 403
    assert response.json()["errors"][0]["field"] == "query.clinic"


def test_bad_list_parameters_are_422_field_by_field(client, token_a):
    # when
    response = get(client, "/api/customers", token=token_a, limit=1000, source="carrier-pigeon")
    # then
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["query.limit"]


def test_the_list_makes_the_same_three_queries_for_2_or_20_customers(client, chain, clinic_a, token_a,
                                                                     django_assert_num_queries):
    # given: token check, count, page (the staff member and scope stay loaded per process, see TokenAuth)
    CustomerFactory.create_batch(2, chain=chain, home_clinic=clinic_a)
    get(client, "/api/customers", token=token_a)  # loads staff and scope, stamps the token's last_used_at
    with django_assert_num_queries(3):
        get(client, "/api/customers", token=token_a)
    CustomerFactory.create_batch(18, chain=chain, home_clinic=clinic_a)
    # when / then
    with django_assert_num_queries(3):
        response = get(client, "/api/customers", token=token_a)
    assert response.json()["count"] == 20
    assert len(response.json()["items"]) == 20


# --- identities ---------------------------------------------------------------------------------------

def test_adding_an_identity_attaches_it_once(client, chain, clinic_a, token_a):
    # given
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    url = f"/api/customers/{customer.id}/identities"
    # when
    first = post(client, url, {"kind": "douyin_openid", "external_id": "dy-1"}, token=token_a, key="i1")
    again = post(client, url, {"kind": "douyin_openid", "external_id": "dy-1"}, token=token_a, key="i2")
    # then
    assert first.status_code == again.status_code == 201
    assert first.json() == {"kind": "douyin_openid", "external_id": "****1", "app_id": ""}  # masked
    assert Identity.objects.filter(customer=customer).count() == 1


def test_adding_an_identity_of_another_person_is_409_and_changes_nothing(client, chain, clinic_a, token_a):
    # given
    owner = IdentityFactory(customer=CustomerFactory(chain=chain, home_clinic=clinic_a), kind="pms",
                            external_id="P1").customer
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    # when
    response = post(client, f"/api/customers/{customer.id}/identities", {"kind": "pms", "external_id": "P1"},
                    token=token_a)
    # then
    assert response.status_code == 409
    assert response.json()["code"] == "identity_conflict"
    assert response.json()["errors"][0]["field"] == "body.external_id"
    assert list(Identity.objects.values_list("customer_id", flat=True)) == [owner.id]


def test_adding_an_identity_to_a_customer_of_clinic_b_is_404_and_writes_nothing(client, chain, clinic_b, token_a):
    # given
    other = CustomerFactory(chain=chain, home_clinic=clinic_b)
    # when
    response = post(client, f"/api/customers/{other.id}/identities", {"kind": "pms", "external_id": "P9"},
                    token=token_a)
    # then
    assert response.status_code == 404
    assert Identity.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0


# --- marking a patient lost ----------------------------------------------------------------------------

def test_marking_a_patient_lost_returns_the_new_stage_and_writes_the_timeline_event(client, chain, clinic_a,
                                                                                    front_desk_a, token_a):
    # given
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a, stage="treated")
    # when
    response = post(client, f"/api/customers/{customer.id}/lost", {"reason": "moved to Beijing"}, token=token_a)
    # then
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("id", "stage", "stage_reached")} == {
        "id": customer.id, "stage": "lost", "stage_reached": "treated"}
    assert body["stage_changed_at"] is not None
    event = Interaction.objects.get(customer=customer)
    assert (event.author_id, event.text) == (
        front_desk_a.id, "stage treated → lost: marked lost by 前台小王: moved to Beijing")


def test_a_replayed_mark_lost_returns_the_first_answer_and_writes_once(client, chain, clinic_a, token_a):
    # given
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a, stage="arrived")
    url = f"/api/customers/{customer.id}/lost"
    first = post(client, url, {"reason": "chose another clinic"}, token=token_a, key="lost-1")
    # when
    replay = post(client, url, {"reason": "chose another clinic"}, token=token_a, key="lost-1")
    # then
    assert first.status_code == replay.status_code == 200
    assert replay.json() == first.json()
    assert replay["Idempotent-Replayed"] == "true"
    assert Interaction.objects.filter(customer=customer).count() == 1


def test_marking_an_already_lost_patient_with_a_new_key_is_409(client, chain, clinic_a, token_a):
    # given
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a, stage="arrived")
    url = f"/api/customers/{customer.id}/lost"
    post(client, url, {"reason": "moved"}, token=token_a, key="lost-1")
    # when
    response = post(client, url, {"reason": "moved again"}, token=token_a, key="lost-2")
    # then
    assert response.status_code == 409
    assert response.json()["code"] == "already_lost"
    assert Interaction.objects.filter(customer=customer).count() == 1


def test_marking_lost_without_a_reason_is_422_and_changes_nothing(client, chain, clinic_a, token_a):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a, stage="arrived")
    response = post(client, f"/api/customers/{customer.id}/lost", {"reason": "  "}, token=token_a)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "body.reason", "message": "is required to mark a patient lost", "value": "  "}]
    assert Customer.objects.get(pk=customer.pk).stage == "arrived"
    assert not Interaction.objects.exists()


def test_marking_lost_a_patient_of_clinic_b_is_404_and_writes_nothing(client, chain, clinic_b, token_a):
    other = CustomerFactory(chain=chain, home_clinic=clinic_b, stage="arrived")
    response = post(client, f"/api/customers/{other.id}/lost", {"reason": "moved"}, token=token_a)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert Customer.objects.get(pk=other.pk).stage == "arrived"
    assert not Interaction.objects.exists()
    assert IdempotencyRecord.objects.count() == 0


def test_a_role_without_customer_edit_cannot_mark_lost(client, chain, clinic_a, marketing_token):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a, stage="arrived")
    response = post(client, f"/api/customers/{customer.id}/lost", {"reason": "moved"}, token=marketing_token)
    assert response.status_code == 403
    assert Customer.objects.get(pk=customer.pk).stage == "arrived"


# --- OpenAPI ------------------------------------------------------------------------------------------

def test_the_openapi_document_and_docs_are_served_and_list_every_ingestion_route(client, db):
    # when
    schema = client.get("/api/openapi.json")
    docs = client.get("/api/docs")
    # then
    assert schema.status_code == 200
    assert docs.status_code == 200
    assert set(schema.json()["paths"]) >= {
        "/api/customers/upsert", "/api/customers", "/api/customers/{customer_id}",
        "/api/customers/{customer_id}/identities", "/api/customers/{customer_id}/lost", "/api/appointments", "/api/orders",
        "/api/orders/{order_id}/refunds", "/api/treatment-plans", "/api/treatment-plans/{plan_id}/steps/{seq}",
        "/api/procedures",
    }
    upsert = schema.json()["paths"]["/api/customers/upsert"]["post"]
    assert {p["name"] for p in upsert["parameters"]} == {"Idempotency-Key"}
    assert set(upsert["responses"]) == {"200", "201", "400", "401", "403", "404", "409", "415", "422", "503"}


def test_a_change_of_the_staff_members_clinics_applies_to_the_very_next_api_request(
        client, chain, clinic_a, clinic_b, front_desk_a, token_a):
    # given a clinic-B patient that clinic-A staff cannot see (their scope is now cached)
    other = CustomerFactory(chain=chain, home_clinic=clinic_b)
    assert get(client, f"/api/customers/{other.id}", token=token_a).status_code == 404
    # when clinic B is assigned, then taken away again
    front_desk_a.clinics.add(clinic_b)
    granted = get(client, f"/api/customers/{other.id}", token=token_a).status_code
    front_desk_a.clinics.remove(clinic_b)
    revoked = get(client, f"/api/customers/{other.id}", token=token_a).status_code
    # then each change is seen at once, not after the scope cache's lifetime
    assert (granted, revoked) == (200, 404)


# --- family ------------------------------------------------------------------------------------------------

def test_linking_a_relative_answers_the_household_and_a_replay_changes_nothing(client, chain, clinic_a, token_a):
    # given a mother and her child, in no household yet
    mother = CustomerFactory(chain=chain, name="周敏", home_clinic=clinic_a)
    child = CustomerFactory(chain=chain, name="李小宝", home_clinic=clinic_a)
    url = f"/api/customers/{child.id}/family"

    # when the PMS says the mother is the child's parent, twice with one key
    first = post(client, url, {"relative_id": mother.id, "relation": "parent"}, token=token_a, key="f1")
    again = post(client, url, {"relative_id": mother.id, "relation": "parent"}, token=token_a, key="f1")

    # then the mother heads the new household and the child is her child; the replay is the first answer
    assert first.status_code == again.status_code == 201
    body = first.json()
    assert again.json() == body
    assert (body["head_id"], body["relation"], body["name"]) == (mother.id, "child", "周敏家")
    assert sorted((m["customer_id"], m["relation"]) for m in body["members"]) == sorted(
        [(mother.id, "head"), (child.id, "child")])
    assert get(client, f"/api/customers/{mother.id}", token=token_a).json()["household"]["relation"] == "head"


@pytest.mark.parametrize(("relation", "status", "code", "field"), [
    ("head", 422, "invalid", "body.relation"),
    ("cousin", 422, "invalid", "body.relation"),
    ("grandparent", 422, "invalid", "body.relation"),  # the head's son's grandmother: his mother or mother-in-law?
    ("sibling", 409, "household_same", "body.relative_id"),
])
def test_a_family_link_that_cannot_be_made_is_refused_naming_the_field(client, chain, clinic_a, token_a, relation,
                                                                       status, code, field):
    # given a household: the head and his son; his sister is the one to link from the son's page
    head = CustomerFactory(chain=chain, name="王峰", home_clinic=clinic_a)
    son = CustomerFactory(chain=chain, name="王锦程", home_clinic=clinic_a)
    household_member_add(head=head, member=son, relation="child")
    relative = head if code == "household_same" else CustomerFactory(chain=chain, name="王奶奶", home_clinic=clinic_a)

    response = post(client, f"/api/customers/{son.id}/family", {"relative_id": relative.id, "relation": relation},
                    token=token_a)

    assert response.status_code == status
    assert (response.json()["code"], response.json()["errors"][0]["field"]) == (code, field)
    assert sorted(HouseholdMember.objects.values_list("customer_id", "relation")) == sorted(
        [(head.id, "head"), (son.id, "child")])


def test_a_relative_of_another_clinic_is_404_naming_the_field(client, chain, clinic_a, clinic_b, token_a):
    child = CustomerFactory(chain=chain, home_clinic=clinic_a)
    other = CustomerFactory(chain=chain, home_clinic=clinic_b)

    response = post(client, f"/api/customers/{child.id}/family", {"relative_id": other.id, "relation": "parent"},
                    token=token_a)

    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "body.relative_id"
    assert not HouseholdMember.objects.exists()


def test_leaving_a_family_through_the_api(client, chain, clinic_a, token_a):
    head = CustomerFactory(chain=chain, name="王峰", home_clinic=clinic_a)
    wife = CustomerFactory(chain=chain, name="郑佳琪", home_clinic=clinic_a)
    son = CustomerFactory(chain=chain, name="王锦程", home_clinic=clinic_a)
    household_member_add(head=head, member=wife, relation="spouse")
    household_member_add(head=head, member=son, relation="child")
    household_id = HouseholdMember.objects.get(customer=son).household_id

    # the head of three is refused; the son leaves; then the wife, which dissolves the family
    refused = post(client, f"/api/customers/{head.id}/family/leave", {}, token=token_a, key="l0")
    son_left = post(client, f"/api/customers/{son.id}/family/leave", {}, token=token_a, key="l1")
    replay = post(client, f"/api/customers/{son.id}/family/leave", {}, token=token_a, key="l1")
    wife_left = post(client, f"/api/customers/{wife.id}/family/leave", {}, token=token_a, key="l2")
    alone = post(client, f"/api/customers/{head.id}/family/leave", {}, token=token_a, key="l3")

    assert (refused.status_code, refused.json()["code"]) == (409, "household_head")
    assert son_left.status_code == 200 and son_left.json() == {"household_id": household_id, "dissolved": False}
    assert replay.json() == son_left.json()
    assert wife_left.json() == {"household_id": household_id, "dissolved": True}
    assert (alone.status_code, alone.json()["code"]) == (409, "no_household")
    assert not HouseholdMember.objects.exists()
