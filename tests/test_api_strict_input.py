"""Bad input gets a clear error and loses nothing: every request body refuses a field it does not have and a JSON type
that is not its field's (a 422 naming each field at its path), a body not sent as JSON is a 415 naming the
Content-Type header, and none of these writes anything. Query and path parameters are text and keep reading digits."""

import json
import typing

import pytest
from pydantic import BaseModel

from config.api import api
from smileloop.clinics.services import token_create
from smileloop.core.api import InputSchema
from smileloop.core.models import IdempotencyRecord
from smileloop.customers.models import Consent, Customer
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.visits.models import Appointment, Order

UPSERT = "/api/customers/upsert"


@pytest.fixture
def token_a(front_desk_a):
    return token_create(username=front_desk_a.user.username)


@pytest.fixture
def patient_a(chain, clinic_a):
    return CustomerFactory(chain=chain, home_clinic=clinic_a, name="张三")


def post(client, url, body, *, token, key="key-1", content_type="application/json", raw=None):
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    return client.post(url, data=raw if raw is not None else json.dumps(body), content_type=content_type,
                       headers=headers)


def errors(response) -> list[tuple[str, str | None]]:
    return [(e["field"], e.get("value")) for e in response.json()["errors"]]


def order(patient, **line):
    return {"customer_id": patient.id, "clinic": "SH01", "ordered_at": "2025-03-01T10:00:00",
            "lines": [{"item_code": "CL01", **line}]}


# --- the guard: every body refuses unknown fields, and says so in the document --------------------------

def _models(annotation) -> typing.Iterator[type[BaseModel]]:
    for arg in typing.get_args(annotation):
        yield from _models(arg)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        for field in annotation.model_fields.values():
            yield from _models(field.annotation)


def _body_models() -> dict[str, type[BaseModel]]:
    found = {}
    for bound_router in api._get_bound_routers():
        for path_view in bound_router.path_operations.values():
            for operation in path_view.operations:
                for wrapper in operation.models:
                    if wrapper.__ninja_param_source__ == "body":
                        for field in wrapper.model_fields.values():
                            found.update({m.__qualname__: m for m in _models(field.annotation)})
    return found


def test_every_body_and_object_nested_in_one_is_an_input_schema_that_forbids_unknown_fields():
    models = _body_models()
    assert len(models) > 40  # every app's bodies: if this drops, the walk broke
    assert [name for name, model in models.items()
            if not issubclass(model, InputSchema) or model.model_config.get("extra") != "forbid"] == []


def test_the_document_shows_every_request_body_closed_to_other_fields():
    document = json.loads(json.dumps(api.get_openapi_schema(path_prefix="/api/")))
    schemas = document["components"]["schemas"]
    bodies = {name for name in _body_models()} & set(schemas)
    assert bodies and [name for name in sorted(bodies) if schemas[name].get("additionalProperties") is not False] == []
    writes = [(f"{method.upper()} {path}", details) for path, item in document["paths"].items()
              for method, details in item.items() if method in ("post", "put", "patch", "delete")]
    assert [name for name, details in writes if "415" not in details["responses"]] == []


# --- unknown fields ------------------------------------------------------------------------------------

def test_a_misspelt_mobile_is_a_422_naming_it_and_the_field_meant_and_creates_nobody(client, token_a, clinic_a):
    # when
    response = post(client, UPSERT, {"name": "王五", "moblie": "13800138011"}, token=token_a)
    # then
    assert response.status_code == 422
    assert errors(response) == [("body.moblie", "13800138011")]
    message = response.json()["errors"][0]["message"]
    assert message.startswith("is not a field of this endpoint (did you mean 'mobile'?); its fields here are: name, "
                              "mobile, gender, birthday,")
    assert "stage" not in message  # an undocumented field is not offered
    assert Customer.objects.count() == 0 and IdempotencyRecord.objects.count() == 0
    # and the documented optional fields still work, with the same key (nothing was stored for it)
    again = post(client, UPSERT, {"name": "王五", "mobile": "13800138011", "community": "阳光小区",
                                  "home_clinic": "SH01", "consents": [{"purpose": "marketing_sms", "granted": True}]},
                 token=token_a)
    assert again.status_code == 201, again.content
    assert Customer.objects.get().mobile == "+8613800138011"


def test_an_unknown_field_in_a_nested_object_is_named_at_its_path(client, token_a, patient_a, catalogue):
    # when a line's quantity is sent as "qty"
    response = post(client, "/api/orders", order(patient_a, qty=2), token=token_a)
    # then
    assert response.status_code == 422
    assert response.json()["errors"] == [{
        "field": "body.lines[0].qty", "value": "2",
        "message": "is not a field of this endpoint; its fields here are: item_code, quantity, unit_price_fen, "
                   "discount_fen, tooth"}]
    assert Order.objects.count() == 0


def test_all_of_a_bodys_errors_are_reported_at_once_in_field_order(client, token_a, patient_a):
    response = post(client, "/api/appointments", {"customer_id": str(patient_a.id), "clinic": "SH01",
                                                  "start_at": "2025-03-01T09:00:00", "doctr": "director_a"},
                    token=token_a)
    assert response.status_code == 422
    assert [field for field, _ in errors(response)] == ["body.customer_id", "body.end_at", "body.doctr"]
    assert Appointment.objects.count() == 0


# --- strict JSON types in bodies, text in query parameters ---------------------------------------------

@pytest.mark.parametrize(("url", "body", "field", "message"), [
    ("/api/appointments", {"customer_id": "{id}", "clinic": "SH01", "start_at": "2025-03-01T09:00:00",
                           "end_at": "2025-03-01T09:30:00"}, "body.customer_id",
     'must be a whole number (a JSON integer), not the string "{id}": send {id}, without quotes'),
    ("/api/orders", "order", "body.lines[0].unit_price_fen",
     'must be a whole number (a JSON integer) or null, not the string "5000": send 5000, without quotes'),
    (UPSERT, {"name": "王五", "mobile": "13800138011", "consents": [{"purpose": "marketing_sms", "granted": "true"}]},
     "body.consents[0].granted", 'must be true or false, not the string "true"'),
    (UPSERT, {"name": "王五", "mobile": "13800138011", "latitude": "31.2"}, "body.latitude",
     'must be a JSON number or null, not the string "31.2"'),
    (UPSERT, {"name": 12345, "mobile": "13800138011"}, "body.name", "must be a JSON string, not 12345"),
])
def test_a_body_field_of_another_json_type_is_a_422_naming_it_and_writes_nothing(client, token_a, patient_a,
                                                                                 catalogue, url, body, field, message):
    body = order(patient_a, unit_price_fen="5000") if body == "order" else \
        json.loads(json.dumps(body).replace("{id}", str(patient_a.id)))
    # when
    response = post(client, url, body, token=token_a)
    # then
    assert response.status_code == 422, response.content
    assert response.json()["errors"][0]["field"] == field
    assert response.json()["errors"][0]["message"] == message.replace("{id}", str(patient_a.id))
    assert (Customer.objects.count(), Appointment.objects.count(), Order.objects.count()) == (1, 0, 0)
    assert Consent.objects.count() == 0 and IdempotencyRecord.objects.count() == 0


def test_query_and_path_parameters_are_text_and_keep_reading_digits(client, token_a, patient_a):
    headers = {"Authorization": f"Bearer {token_a}"}
    listed = client.get("/api/customers", {"limit": "5", "offset": "0"}, headers=headers)
    quote = client.get(f"/api/loyalty/customers/{patient_a.id}/points/redeem-quote", {"bill_fen": "5000"},
                       headers=headers)
    assert (listed.status_code, listed.json()["limit"]) == (200, 5)
    assert quote.status_code == 200, quote.content


# --- Content-Type ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("content_type", "data", "said"), [
    ("application/x-www-form-urlencoded", "name=王五&mobile=13800138011", "not application/x-www-form-urlencoded"),
    ("text/plain", '{"name": "王五", "mobile": "13800138011"}', "not text/plain"),
    ("", '{"name": "王五", "mobile": "13800138011"}', "and it is missing"),
    ("application/json; charset=gbk", '{"name": "王五", "mobile": "13800138011"}', "charset=gbk"),
])
def test_a_body_not_sent_as_json_is_a_415_naming_the_header_and_writes_nothing(client, token_a, clinic_a,
                                                                               content_type, data, said):
    # when
    response = client.post(UPSERT, data=data.encode(), content_type=content_type,
                           headers={"Authorization": f"Bearer {token_a}", "Idempotency-Key": "k"})
    # then
    assert response.status_code == 415
    body = response.json()
    assert body["code"] == "unsupported_media_type"
    assert [e["field"] for e in body["errors"]] == ["header.Content-Type"]
    assert said in body["message"] and "application/json" in body["message"]
    assert Customer.objects.count() == 0 and IdempotencyRecord.objects.count() == 0


def test_json_with_a_utf8_charset_is_taken(client, token_a, clinic_a):
    response = post(client, UPSERT, {"name": "王五", "mobile": "13800138011"}, token=token_a,
                    content_type="application/json; charset=UTF-8")
    assert response.status_code == 201, response.content


def test_an_unauthenticated_form_post_is_still_the_401(client):
    response = client.post(UPSERT, data="name=x", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 401


# --- an endpoint that takes no body ------------------------------------------------------------------------

def test_a_write_that_takes_no_body_needs_no_content_type_and_takes_an_empty_object(client, token_a, patient_a):
    url = f"/api/customers/{patient_a.id}/family/leave"
    headers = {"Authorization": f"Bearer {token_a}"}
    # when: no body and no Content-Type, then `{}`
    bare = client.generic("POST", url, b"", headers={**headers, "Idempotency-Key": "k-1"})
    empty = post(client, url, {}, token=token_a, key="k-2")
    # then both reach the endpoint (a patient in no family: its own 409)
    assert (bare.status_code, bare.json()["code"]) == (409, "no_household")
    assert (empty.status_code, empty.json()["code"]) == (409, "no_household")


def test_a_write_that_takes_no_body_refuses_fields_it_would_drop_and_a_form(client, token_a, patient_a):
    url = f"/api/customers/{patient_a.id}/family/leave"
    # when a client sends a reason the endpoint has no field for
    fields = post(client, url, {"reason": "分开了"}, token=token_a)
    form = post(client, url, None, token=token_a, key="k-2", content_type="application/x-www-form-urlencoded",
                raw="reason=x")
    # then
    assert fields.status_code == 422
    assert fields.json()["errors"] == [{"field": "body.reason", "value": "分开了",
                                        "message": "is not a field of this endpoint: it takes no body"}]
    assert (form.status_code, [e["field"] for e in form.json()["errors"]]) == (415, ["header.Content-Type"])
    assert IdempotencyRecord.objects.count() == 0
