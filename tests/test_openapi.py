"""The OpenAPI document (/api/openapi.json) describes what each operation really does.

ninja builds each operation's schemas on their own and files every model under its class name in one
`components.schemas`: two classes with one name (checkout's and visits' `RefundIn`) silently become whichever came
last, so an endpoint documented the other's body. Here every operation's own schemas are compared with the document.
Also: the Idempotency-Key is documented as required on every write that takes it (and a write without it is still
the 400 naming the header), and a method a route does not take is a JSON 405 with `Allow`."""

import inspect
import json
import typing
from collections import defaultdict
from enum import Enum

import pytest
from ninja.openapi.schema import REF_TEMPLATE
from ninja.schema import NinjaGenerateJsonSchema
from pydantic import BaseModel

from config.api import api
from smileloop.clinics.services import token_create
from smileloop.core.idempotency import HEADER, MAX_KEY_LENGTH
from smileloop.core.models import IdempotencyRecord
from smileloop.customers.models import Customer
from smileloop.visits.api import PaymentIn as OrderPaymentIn
from smileloop.visits.api import RefundIn as OrderRefundIn

WRITES = {"POST", "PUT", "PATCH", "DELETE"}
# Copies of one small reference schema in apps this guard came after (customers, visits, surveys): allowed only
# while every copy documents the same schema (checked below). Better: one shared class, or distinct names.
IDENTICAL_TWINS = {"ClinicRef", "StaffRef"}


@pytest.fixture(scope="module")
def document():
    return json.loads(json.dumps(api.get_openapi_schema(path_prefix="/api/")))


def _operations():
    for bound_router in api._get_bound_routers():
        for path, path_view in bound_router.path_operations.items():
            for operation in path_view.operations:
                yield f"{','.join(operation.methods)} {bound_router.prefix.rstrip('/')}/{path.lstrip('/')}", operation


def _classes(annotation) -> typing.Iterator[type]:
    """The models and enums an annotation names, nested ones included."""
    for arg in typing.get_args(annotation):
        yield from _classes(arg)
    if inspect.isclass(annotation) and issubclass(annotation, (BaseModel, Enum)):
        yield annotation
        if issubclass(annotation, BaseModel):
            for field in annotation.model_fields.values():
                yield from _classes(field.annotation)


def _documented_classes() -> dict[str, set[type]]:
    """Each name the document files a schema under, with the classes behind it (ninja's own wrappers excluded)."""
    found = defaultdict(set)
    for _, operation in _operations():
        wrappers = [*operation.models, *(m for m in operation.response_models.values() if m is not None)]
        for wrapper in wrappers:
            for field in wrapper.model_fields.values():
                for cls in _classes(field.annotation):
                    found[cls.__name__].add(cls)
    return found


def _own_schemas(operation) -> typing.Iterator[tuple[dict, str]]:
    """(JSON schema with its $defs, what it is) of each model as the operation validates or answers with it."""
    for model in operation.models:
        mode = "validation"
        yield model.model_json_schema(ref_template=REF_TEMPLATE, schema_generator=NinjaGenerateJsonSchema,
                                      mode=mode), f"{model.__ninja_param_source__} ({mode})"
    for status, model in operation.response_models.items():
        if model is None or status is Ellipsis:
            continue
        kwargs = {} if operation.by_alias is None else {"by_alias": operation.by_alias}
        yield model.model_json_schema(ref_template=REF_TEMPLATE, schema_generator=NinjaGenerateJsonSchema,
                                      mode="serialization", **kwargs), f"{status} response"


def _normal(schema):
    """A schema with its `required` lists sorted: the order of fields is not a difference."""
    if isinstance(schema, dict):
        return {k: sorted(v) if k == "required" and isinstance(v, list) else _normal(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_normal(item) for item in schema]
    return schema


def _component(document, ref_holder: dict) -> dict:
    return document["components"]["schemas"][ref_holder["$ref"].rsplit("/", 1)[-1]]


def _own_properties(model: type[BaseModel], *, mode: str) -> set[str]:
    """The properties a class documents itself (a field hidden from the schema, like the upsert's `stage`, is not)."""
    schema = model.model_json_schema(ref_template=REF_TEMPLATE, schema_generator=NinjaGenerateJsonSchema, mode=mode)
    return set(schema["properties"])


# --- one name, one class ----------------------------------------------------------------------------------

def test_no_two_classes_an_operation_uses_share_a_schema_name():
    # when
    shared = {name: sorted(f"{c.__module__}.{c.__qualname__}" for c in classes)
              for name, classes in _documented_classes().items() if len(classes) > 1}
    # then
    assert set(shared) <= IDENTICAL_TWINS, {n: c for n, c in shared.items() if n not in IDENTICAL_TWINS}


def test_the_twins_allowed_to_share_a_name_document_the_same_schema():
    # given
    classes = _documented_classes()
    for name in IDENTICAL_TWINS:
        # when
        schemas = {json.dumps(_normal(cls.model_json_schema(ref_template=REF_TEMPLATE,
                                                            schema_generator=NinjaGenerateJsonSchema)),
                              sort_keys=True) for cls in classes.get(name, ())}
        # then
        assert len(schemas) <= 1, f"{name}: {sorted(f'{c.__module__}' for c in classes[name])} differ"


def test_every_schema_an_operation_validates_or_answers_with_is_the_one_the_document_files():
    # given
    document = api.get_openapi_schema(path_prefix="/api/")
    components = json.loads(json.dumps(document["components"]["schemas"]))
    wrong = []
    for name, operation in _operations():
        for schema, what in _own_schemas(operation):
            for def_name, definition in schema.get("$defs", {}).items():
                # when
                filed = components.get(def_name)
                # then
                if _normal(filed) != _normal(json.loads(json.dumps(definition))):
                    wrong.append(f"{name} {what}: {def_name}")
    assert wrong == []


def test_every_request_body_and_response_documents_the_fields_of_the_class_the_endpoint_uses(document):
    # given
    paths = {(details["operationId"], method.upper()): path
             for path, item in document["paths"].items() for method, details in item.items()}
    wrong = []
    for name, operation in _operations():
        if not operation.include_in_schema:
            continue
        method = next(iter(operation.methods))
        documented = document["paths"][paths[operation.operation_id or api.get_openapi_operation_id(operation),
                                             method]][method.lower()]
        used = [(model.model_fields["payload"].annotation, "validation", "body",
                 documented["requestBody"]["content"]["application/json"]["schema"])
                for model in operation.models if model.__ninja_param_source__ == "body"]
        used += [(model.model_fields["response"].annotation, "serialization", str(status),
                  documented["responses"][str(status)]["content"]["application/json"]["schema"])
                 for status, model in operation.response_models.items()
                 if model is not None and status is not Ellipsis]
        for cls, mode, what, schema in used:
            # when
            if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or "$ref" not in schema:
                continue  # a list or a scalar: its items are covered by the $defs comparison above
            # then
            if set(_component(document, schema)["properties"]) != _own_properties(cls, mode=mode):
                used_class = f"{cls.__module__}.{cls.__qualname__}"
                wrong.append(f"{name} {what}: documented as {schema['$ref']}, uses {used_class}")
    assert wrong == []


def test_the_order_refund_documents_the_visits_refund_body_and_answer(document):
    # when
    operation = document["paths"]["/api/orders/{order_id}/refunds"]["post"]
    body = _component(document, operation["requestBody"]["content"]["application/json"]["schema"])
    answer = _component(document, operation["responses"]["201"]["content"]["application/json"]["schema"])
    # then
    assert {"amount_fen", "method", "external_id", "refunded_at", "lines"} <= set(body["properties"])
    assert set(body["properties"]) == set(OrderRefundIn.model_fields)
    assert {"order_id", "method", "lines"} <= set(answer["properties"])
    assert not {"settlement_id", "cash_fen", "breakdown"} & set(answer["properties"])


def test_the_order_payments_document_the_visits_payment_with_its_method_enum(document):
    # given
    order = _component(document, document["paths"]["/api/orders"]["post"]["requestBody"]["content"][
        "application/json"]["schema"])
    # when
    payment = _component(document, order["properties"]["payments"]["items"])
    # then
    assert payment["title"] == "PaymentIn"
    own = OrderPaymentIn.model_json_schema(ref_template=REF_TEMPLATE, schema_generator=NinjaGenerateJsonSchema)
    own.pop("$defs")
    assert _normal(payment) == _normal(own)
    assert _component(document, payment["properties"]["method"])["enum"]


def test_the_checkout_refund_keeps_its_own_body_and_answer(document):
    # when
    operation = document["paths"]["/api/checkout/settlements/{settlement_id}/refund"]["post"]
    body = _component(document, operation["requestBody"]["content"]["application/json"]["schema"])
    answer = _component(document, operation["responses"]["201"]["content"]["application/json"]["schema"])
    # then
    assert set(body["properties"]) == {"lines", "whole", "reason"}
    assert set(answer["properties"]) == {"id", "settlement_id", "amount_fen", "cash_fen", "breakdown"}


# --- Idempotency-Key -------------------------------------------------------------------------------------

def test_every_write_that_takes_an_idempotency_key_documents_it_as_a_required_string(document):
    # given
    writes = [(path, method, details) for path, item in document["paths"].items()
              for method, details in item.items() if method.upper() in WRITES]
    taking = [(f"{method.upper()} {path}", p) for path, method, details in writes
              for p in details.get("parameters", []) if p["in"] == "header" and p["name"] == HEADER]
    # then
    assert len(taking) > 40  # every ingestion and staff write: if this drops, the walk broke
    assert [name for name, p in taking if p["required"] is not True] == []
    assert all(p["schema"]["type"] == "string" and p["schema"]["maxLength"] == MAX_KEY_LENGTH for _, p in taking)
    assert all("x-smileloop-required" not in p["schema"] for _, p in taking)


def test_no_read_documents_an_idempotency_key(document):
    # when
    reads = [f"{method.upper()} {path}" for path, item in document["paths"].items()
             for method, details in item.items() if method.upper() not in WRITES
             for p in details.get("parameters", []) if p["name"] == HEADER]
    # then
    assert reads == []


@pytest.mark.parametrize("key", [None, "", "   "])
def test_a_write_without_a_usable_idempotency_key_is_still_the_400_naming_the_header(client, clinic_a, front_desk_a,
                                                                                     key):
    # given
    headers = {"Authorization": f"Bearer {token_create(username=front_desk_a.user.username)}"}
    if key is not None:
        headers[HEADER] = key
    # when
    response = client.post("/api/customers/upsert", data=json.dumps({"name": "张三", "mobile": "13800138000"}),
                           content_type="application/json", headers=headers)
    # then
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "idempotency_key_required"
    assert "Idempotency-Key header is required" in body["message"]
    assert [e["field"] for e in body["errors"]] == ["header.Idempotency-Key"]
    assert Customer.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0


# --- 405 -------------------------------------------------------------------------------------------------

def test_a_method_the_route_does_not_take_is_a_json_405_naming_the_allowed_methods(client, db):
    # when
    response = client.delete("/api/orders")
    # then
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"code": "method_not_allowed",
                               "message": "DELETE is not allowed on /api/orders; allowed: POST", "errors": []}


def test_a_405_on_a_route_with_a_read_names_its_method(client, db):
    # when
    response = client.post("/api/followups/playbooks", data="{}", content_type="application/json")
    # then
    assert response.status_code == 405
    assert response["Allow"] == "GET"
    assert response.json()["code"] == "method_not_allowed"
    assert response.json()["message"].endswith("allowed: GET")


def test_money_and_quantities_document_their_bounds_and_integer_type(document):
    # the whole-number check (core.api.WholeNumber) must not hide the Field's bounds from the document
    line = document["components"]["schemas"]["OrderLineIn"]["properties"]
    assert (line["quantity"]["type"], line["quantity"]["minimum"], line["quantity"]["maximum"]) == ("integer", 1,
                                                                                                   10_000)
    discount = line["discount_fen"]
    assert (discount["type"], discount["minimum"], discount["maximum"]) == ("integer", 0, 10**12)
    payment = document["components"]["schemas"]["PaymentIn"]["properties"]["amount_fen"]
    assert (payment["exclusiveMinimum"], payment["maximum"]) == (0, 10**12)


# --- answers no route gives: the error shape all the same ----------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/nope", "/api/customers/abc", "/api/customers/1/nothing", "/api/customers/",
                                  "/api/"])
@pytest.mark.parametrize("authenticated", [True, False])
def test_a_path_no_operation_has_is_a_json_404_in_the_error_shape(client, front_desk_a, path, authenticated):
    # given
    headers = {"Authorization": f"Bearer {token_create(username=front_desk_a.user.username)}"} if authenticated else {}
    # when
    response = client.get(path, headers=headers)
    # then
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"code", "message", "errors"}
    assert body["code"] == "not_found"
    assert body["message"].startswith(f"No API operation at {path}: see /api/openapi.json")


@pytest.mark.parametrize("data, content_type, reason", [
    ('{"name": ', "application/json", "is not valid JSON (Expecting value: line 1 column 10 (char 9))"),
    # a form post is refused by its Content-Type before it is read: tests/test_api_strict_input.py
    (b'{"name": "\xff"}', "application/json", "is not UTF-8 text (byte 10)"),
])
def test_a_body_that_is_not_json_is_a_400_naming_the_body_and_why(client, front_desk_a, data, content_type, reason):
    # given
    headers = {"Authorization": f"Bearer {token_create(username=front_desk_a.user.username)}", HEADER: "k-not-json"}
    # when
    response = client.post("/api/customers/upsert", data=data, content_type=content_type, headers=headers)
    # then
    assert response.status_code == 400
    assert response.json() == {"code": "bad_request", "errors": [{"field": "body", "message": reason}],
                               "message": f"body: {reason}; send one JSON object with Content-Type: application/json"}
    assert Customer.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0


def test_every_operation_documents_the_error_statuses_any_operation_may_answer_in_the_error_shape(document):
    # given: a busy database is a 503 `busy` with Retry-After on any operation (core.api._on_operational_error)
    expected = {"400", "401", "403", "404", "409", "422", "503"}
    wrong = []
    for path, item in document["paths"].items():
        for method, details in item.items():
            # when
            responses = {str(status): answer for status, answer in details["responses"].items()}
            # then
            missing = expected - set(responses)
            not_shape = [s for s in expected & set(responses)
                         if responses[s]["content"]["application/json"]["schema"] != {
                             "$ref": "#/components/schemas/ErrorOut"}]
            if missing or not_shape:
                wrong.append(f"{method.upper()} {path}: missing {sorted(missing)}, not ErrorOut {not_shape}")
    assert wrong == []


def test_head_on_a_read_is_the_read_without_its_body(client, front_desk_a):
    # given
    headers = {"Authorization": f"Bearer {token_create(username=front_desk_a.user.username)}"}
    get = client.get("/api/customers", headers=headers)
    # when
    head = client.head("/api/customers", headers=headers)
    unauthenticated = client.head("/api/customers")
    on_a_write = client.head("/api/orders", headers=headers)
    # then
    assert (head.status_code, head.content) == (200, b"")
    assert head["Content-Type"] == get["Content-Type"]
    assert head["Content-Length"] == str(len(get.content))
    assert unauthenticated.status_code == 401
    assert (on_a_write.status_code, on_a_write["Allow"]) == (405, "POST")
