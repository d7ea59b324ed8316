"""Every API input is parsed by the shared types of smileloop.core.api: integers that do not fit (≥ 2**63, negative
ids, huge amounts), dates that are not ISO 8601 strings and bodies that are not JSON objects are a 422 naming the
field, never a 500 or a silent default; a body reference to a row that is missing or out of scope names its field."""

import datetime as dt
import json
import types
import typing
from enum import Enum

import pytest
from annotated_types import Le, Lt
from pydantic import BaseModel, BeforeValidator
from pydantic.fields import FieldInfo

from config.api import api
from smileloop.clinics.services import token_create
from smileloop.core.api import InputSchema
from smileloop.core.models import IdempotencyRecord
from smileloop.customers.models import Customer
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.loyalty.models import GiftExchange
from smileloop.visits.models import Appointment, TreatmentPlan

TOO_BIG = 2**63


# --- the guard: no operation takes an unbounded integer or a lax date ----------------------------------

def _operations():
    for prefix, router in api._routers:
        for path, path_view in router.path_operations.items():
            for operation in path_view.operations:
                yield f"{','.join(operation.methods)} {prefix.rstrip('/')}/{path.lstrip('/')}", operation


def _validators(metadata) -> list:
    found = []
    for item in metadata:
        if isinstance(item, FieldInfo):
            found += _validators(item.metadata)
        else:
            found.append(item)
    return found


def _problems(annotation, metadata, where: str) -> list[str]:
    """The input positions under `annotation` whose integers have no upper bound or whose dates accept
    timestamps; `metadata` is what an enclosing Annotated (or the field) adds."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        return _problems(base, [*metadata, *extra], where)
    checks = _validators(metadata)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = typing.get_args(annotation)
        if int in members and str in members:  # an id or a code: the validator must bound the id
            ok = any(isinstance(c, BeforeValidator) and c.func.__name__ == "_id_or_code" for c in checks)
            return [] if ok else [f"{where}: id-or-code without IdOrCode"]
        return [p for m in members for p in _problems(m, metadata, where)]
    if typing.get_origin(annotation) in (list, tuple, set, frozenset):
        return [p for arg in typing.get_args(annotation) for p in _problems(arg, [], f"{where}[]")]
    if annotation is int:
        return [] if any(isinstance(c, (Le, Lt)) for c in checks) else [f"{where}: int without an upper bound"]
    if annotation in (dt.datetime, dt.date):
        ok = any(isinstance(c, BeforeValidator) and c.func.__qualname__.startswith("_iso_only") for c in checks)
        return [] if ok else [f"{where}: {annotation.__name__} that is not IsoDateTime / IsoDate"]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel) and not issubclass(annotation, Enum):
        problems = [] if issubclass(annotation, InputSchema) else [f"{where}: {annotation.__name__} is not an InputSchema"]
        for name, field in annotation.model_fields.items():
            problems += _problems(field.annotation, field.metadata, f"{where}.{name}")
        return problems
    return []


def test_every_integer_and_date_an_operation_takes_uses_the_shared_bounded_types():
    problems = []
    for name, operation in _operations():
        for model in operation.models:
            for field_name, field in model.model_fields.items():
                where = f"{name} {model.__ninja_param_source__}.{field_name}"
                problems += _problems(field.annotation, field.metadata, where)
    assert problems == []


# --- requests -----------------------------------------------------------------------------------------

@pytest.fixture
def token_a(front_desk_a):
    return token_create(username=front_desk_a.user.username)


@pytest.fixture
def admin_token(chain_admin):
    return token_create(username=chain_admin.user.username)


@pytest.fixture
def director_token(director_a):
    return token_create(username=director_a.user.username)


@pytest.fixture
def patient_a(chain, clinic_a):
    return CustomerFactory(chain=chain, home_clinic=clinic_a, name="张三")


@pytest.fixture
def patient_b(chain, clinic_b):
    return CustomerFactory(chain=chain, home_clinic=clinic_b, name="李四")


def get(client, url, *, token, **params):
    return client.get(url, params, headers={"Authorization": f"Bearer {token}"})


def post(client, url, body, *, token, key="key-1", raw=None):
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    data = raw if raw is not None else json.dumps(body)
    return client.post(url, data=data, content_type="application/json", headers=headers)


def fields(response) -> list[str]:
    return [e["field"] for e in response.json()["errors"]]


@pytest.mark.parametrize("url", ["/api/customers", "/api/followups/tasks", "/api/surveys"])
@pytest.mark.parametrize("offset", [str(TOO_BIG), "-1", "1000000001"])
def test_an_offset_out_of_range_is_a_422_on_query_offset(client, admin_token, url, offset):
    response = get(client, url, token=admin_token, offset=offset)
    assert response.status_code == 422, response.content
    assert fields(response) == ["query.offset"]
    assert response.json()["errors"][0]["value"] == offset


def test_a_clinic_filter_beyond_any_id_is_a_422_on_query_clinic(client, admin_token):
    response = get(client, "/api/followups/tasks", token=admin_token, mine="false", clinic=str(TOO_BIG))
    assert (response.status_code, fields(response)) == (422, ["query.clinic"])
    for url in ("/api/customers", "/api/surveys", "/api/lifecycle/funnel"):
        response = get(client, url, token=admin_token, clinic=str(TOO_BIG))
        assert (response.status_code, fields(response)) == (422, ["query.clinic"]), url


@pytest.mark.parametrize("url", [
    "/api/customers/{n}", "/api/followups/tasks/{n}", "/api/surveys/{n}", "/api/segments/{n}",
    "/api/checkout/settlements/{n}", "/api/membership/customers/{n}", "/api/loyalty/customers/{n}/points",
    "/api/tags/customers/{n}",
])
@pytest.mark.parametrize("n", [TOO_BIG, 0])
def test_a_path_id_that_no_row_can_have_is_a_422_on_its_path_parameter(client, admin_token, url, n):
    response = get(client, url.format(n=n), token=admin_token)
    assert response.status_code == 422, response.content
    assert len(fields(response)) == 1 and fields(response)[0].startswith("path.")


def test_a_tag_path_segment_of_digits_beyond_any_id_is_a_404(client, admin_token, patient_a):
    response = client.delete(f"/api/tags/customers/{patient_a.id}/{TOO_BIG}",
                             headers={"Authorization": f"Bearer {admin_token}", "Idempotency-Key": "k"})
    assert response.status_code == 404


def test_a_redeem_quote_for_a_bill_beyond_the_money_bound_is_a_422(client, admin_token, patient_a):
    response = get(client, f"/api/loyalty/customers/{patient_a.id}/points/redeem-quote", token=admin_token,
                   bill_fen=str(TOO_BIG))
    assert (response.status_code, fields(response)) == (422, ["query.bill_fen"])


@pytest.mark.parametrize("clinic", [TOO_BIG, str(TOO_BIG), "９２２３３７２０３６８５４７７５８０８", 0, -3])
def test_a_clinic_or_staff_reference_beyond_any_id_is_a_422_and_creates_nobody(client, token_a, clinic_a, clinic):
    response = post(client, "/api/customers/upsert", {"name": "王五", "mobile": "13800138011", "home_clinic": clinic},
                    token=token_a)
    assert (response.status_code, fields(response)) == (422, ["body.home_clinic"])
    response = post(client, "/api/customers/upsert", {"name": "王五", "mobile": "13800138011", "consultant": clinic},
                    token=token_a, key="key-2")
    assert (response.status_code, fields(response)) == (422, ["body.consultant"])
    assert Customer.objects.count() == 0


def test_an_appointment_clinic_given_as_digits_beyond_any_id_is_a_422(client, token_a, patient_a):
    response = post(client, "/api/appointments", {
        "customer_id": patient_a.id, "clinic": str(TOO_BIG), "start_at": "2025-03-01T09:00:00",
        "end_at": "2025-03-01T09:30:00"}, token=token_a)
    assert (response.status_code, fields(response)) == (422, ["body.clinic"])
    assert Appointment.objects.count() == 0


# --- dates are ISO 8601 strings -----------------------------------------------------------------------

def test_a_plan_step_done_at_given_as_a_number_is_a_422_and_the_plan_is_unchanged(client, director_token,
                                                                                   patient_a, catalogue):
    plan = post(client, "/api/treatment-plans", {
        "customer_id": patient_a.id, "clinic": "SH01", "title": "种植方案",
        "steps": [{"seq": 1, "item_code": "EX01"}]}, token=director_token, key="p1").json()
    url = f"/api/treatment-plans/{plan['id']}/steps/1"
    for i, done_at in enumerate([12345, "12345", 1.5, True, "yesterday"]):
        response = post(client, url, {"status": "done", "done_at": done_at}, token=director_token, key=f"s{i}")
        assert (response.status_code, fields(response)) == (422, ["body.done_at"]), done_at
    assert TreatmentPlan.objects.get().steps.get().status == "planned"
    ok = post(client, url, {"status": "done", "done_at": "2025-03-01T10:00:00+08:00"}, token=director_token, key="ok")
    assert ok.status_code == 200, ok.content


def test_a_plan_step_beyond_the_step_bound_is_a_422(client, director_token):
    response = post(client, f"/api/treatment-plans/1/steps/{TOO_BIG}", {"status": "done"}, token=director_token)
    assert (response.status_code, fields(response)) == (422, ["path.seq"])


def test_date_filters_take_iso_strings_only(client, admin_token):
    response = get(client, "/api/followups/tasks", token=admin_token, due_from="1700000000")
    assert (response.status_code, fields(response)) == (422, ["query.due_from"])
    response = get(client, "/api/surveys", token=admin_token, since="20250101")
    assert (response.status_code, fields(response)) == (422, ["query.since"])
    assert get(client, "/api/surveys", token=admin_token, since="2025-01-01").status_code == 200


@pytest.mark.parametrize("since", ["2025-01-01T00:00:00+14:00", "2025-01-01T00:00:00Z", "2025-01-01T00:00",
                                   "2025-1-1"])
def test_a_date_filter_given_a_date_time_is_a_422_not_the_midnight_s_date(client, admin_token, since):
    # pydantic read a midnight date-time as its date whatever its offset (+14:00 is the day before in Shanghai)
    response = get(client, "/api/surveys", token=admin_token, since=since)
    assert (response.status_code, fields(response)) == (422, ["query.since"])
    assert "2025-03-01" in response.json()["errors"][0]["message"]


def test_an_appointment_with_a_timestamp_is_a_422_naming_both_times(client, token_a, patient_a):
    response = post(client, "/api/appointments", {"customer_id": patient_a.id, "clinic": "SH01",
                                                  "start_at": 1740790800, "end_at": "1740792600"}, token=token_a)
    assert (response.status_code, fields(response)) == (422, ["body.start_at", "body.end_at"])
    assert Appointment.objects.count() == 0


# --- bodies are JSON objects --------------------------------------------------------------------------

@pytest.mark.parametrize("raw", ["[]", "null", "\"x\"", "7"])
def test_a_body_that_is_not_a_json_object_is_a_422_and_changes_nothing(client, token_a, patient_a, raw):
    response = post(client, f"/api/customers/{patient_a.id}/lost", None, token=token_a, raw=raw)
    assert response.status_code == 422, response.content
    assert response.json()["errors"][0]["field"] == "body"
    assert response.json()["errors"][0]["message"] == "must be a JSON object"
    patient_a.refresh_from_db()
    assert patient_a.stage != "lost"


def test_a_nested_object_given_as_an_array_is_a_422_on_its_field(client, token_a, patient_a, catalogue):
    response = post(client, "/api/checkout/price", {"customer_id": patient_a.id, "clinic": "SH01",
                                                    "lines": [{"item_code": "CL01"}], "wallet": []}, token=token_a)
    assert (response.status_code, fields(response)) == (422, ["body.wallet"])
    response = post(client, "/api/checkout/price", {"customer_id": patient_a.id, "clinic": "SH01",
                                                    "lines": [[]]}, token=token_a)
    assert (response.status_code, fields(response)) == (422, ["body.lines[0]"])


@pytest.mark.parametrize("extra", [{"points": TOO_BIG}, {"points": -1}, {"wallet": {"amount_fen": TOO_BIG}},
                                   {"clinic": TOO_BIG}])
def test_checkout_amounts_beyond_the_bounds_are_a_422(client, token_a, patient_a, catalogue, extra):
    body = {"customer_id": patient_a.id, "clinic": "SH01", "lines": [{"item_code": "CL01"}], **extra}
    response = post(client, "/api/checkout/price", body, token=token_a)
    assert response.status_code == 422, response.content
    assert fields(response)[0].startswith(f"body.{next(iter(extra))}")


# --- body references name their field ----------------------------------------------------------------

@pytest.mark.parametrize("who", ["missing", "other_clinic"])
def test_a_body_customer_id_missing_or_out_of_scope_is_a_404_naming_the_field(client, token_a, patient_b, who):
    customer_id = patient_b.id + 1000 if who == "missing" else patient_b.id
    response = post(client, "/api/appointments", {"customer_id": customer_id, "clinic": "SH01",
                                                  "start_at": "2025-03-01T09:00:00",
                                                  "end_at": "2025-03-01T09:30:00"}, token=token_a)
    # the same answer either way: another clinic's patient is indistinguishable from none
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "Customer not found",
                               "errors": [{"field": "body.customer_id", "message": "Customer not found"}]}
    assert Appointment.objects.count() == 0 and IdempotencyRecord.objects.count() == 0


def test_an_unknown_gift_is_a_404_naming_gift_id(client, token_a, patient_a):
    response = post(client, f"/api/loyalty/customers/{patient_a.id}/gift-exchanges", {"gift_id": 999_999},
                    token=token_a)
    assert (response.status_code, fields(response)) == (404, ["body.gift_id"])
    assert GiftExchange.objects.count() == 0


def test_an_unknown_package_and_covered_person_name_their_fields(client, token_a, patient_a, patient_b):
    response = post(client, f"/api/loyalty/customers/{patient_a.id}/packages",
                    {"package_id": 999_999, "covered_ids": [patient_a.id]}, token=token_a)
    assert (response.status_code, fields(response)) == (404, ["body.package_id"])


def test_a_transfer_to_a_customer_out_of_scope_names_to_customer_id(client, token_a, patient_a, patient_b):
    response = post(client, f"/api/loyalty/customers/{patient_a.id}/wallet/transfers",
                    {"to_customer_id": patient_b.id, "amount_fen": 100}, token=token_a)
    assert (response.status_code, fields(response)) == (404, ["body.to_customer_id"])


@pytest.mark.parametrize(("url", "body", "field"), [
    ("/api/membership/customers/{a}/family", {"member_id": "{b}", "relation": "spouse"}, "body.member_id"),
    ("/api/membership/customers/{a}/friend-link", {"member_id": "{b}"}, "body.member_id"),
    ("/api/giftcards/friend-cards", {"member_id": "{b}", "programme": "x"}, "body.member_id"),
    ("/api/giftcards/vouchers", {"campaign": "x", "customer_id": "{b}"}, "body.customer_id"),
])
def test_other_body_references_out_of_scope_name_their_field(client, token_a, director_token, patient_a, patient_b,
                                                              url, body, field):
    body = {k: (patient_b.id if v == "{b}" else v) for k, v in body.items()}
    # Handing out vouchers and friend cards is a clinic lead's (value.issue), not the front desk's.
    token = director_token if url.startswith("/api/giftcards") else token_a
    response = post(client, url.format(a=patient_a.id), body, token=token)
    assert (response.status_code, fields(response)) == (404, [field])


# --- a clinic filter outside the caller's clinics ------------------------------------------------------

def test_a_clinic_filter_outside_my_clinics_is_the_same_read_refusal_on_every_list(client, token_a, director_token,
                                                                                  clinic_b):
    expected = [{"field": "query.clinic",
                 "message": f"Clinic {str(clinic_b.id)!r} is not one of your clinics; you may not see its data"}]
    customers = get(client, "/api/customers", token=token_a, clinic=str(clinic_b.id))
    assert customers.status_code == 403
    assert customers.json()["errors"] == expected
    assert "write" not in customers.json()["message"]
    tasks = get(client, "/api/followups/tasks", token=director_token, mine="false", clinic=str(clinic_b.id))
    assert tasks.status_code == 403
    assert tasks.json()["errors"][0]["field"] == "query.clinic"
    assert tasks.json()["message"].endswith("is not one of your clinics; you may not see its data")
