"""A contract sweep of every write the OpenAPI document lists: hostile input is refused with a 4xx in the error shape
that names the offending field, never a 5xx, and a refused write changes no row of any table.

The operations, their path parameters and their body schemas are read from the document the app serves. For each
write a minimal body is built from its schema (and the objects of a whole world: a patient with membership, a
top-up, a paid bill, a plan, a task, a survey, a friend card, a package: tests/test_scope_sweep.py builds it), and
then broken: a field of another JSON type, null, a missing required field, an unknown field, integers beyond any
column (2**63, -1, 0), floats where whole numbers are expected, overlong strings, NUL, lone surrogates and control
characters, impossible dates; and the request itself: malformed JSON, another Content-Type, an empty body, a body
that is not an object, an Idempotency-Key missing, empty, overlong or not ASCII. The caller is a chain admin (every
permission, every clinic), so a refusal is the input's doing, not a 401/403/404 of who asks.

tests/test_api_strict_input.py, test_api_input_bounds.py and test_openapi.py check the rules one endpoint at a time;
this file checks that every write keeps them."""

import json
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smileloop.clinics.services import token_create
from tests import test_scope_sweep as sweep
from tests.api_contract_fuzz_helpers import (
    Operation,
    changed,
    document,
    encode,
    fields_of,
    hostile_values,
    json_types,
    minimal,
    snapshot,
    with_value,
    write_operations,
)

# The whole world of the scope sweep (its fixtures, used here as they are) and how it names each path's object.
config, director_b, world = sweep.config, sweep.director_b, sweep.world
API_BODIES, PARAMS = sweep.API_BODIES, sweep.PARAMS

pytestmark = pytest.mark.django_db

DOCUMENT = document()
OPERATIONS = write_operations(DOCUMENT)
BY_ID = {op.id: op for op in OPERATIONS}
WITH_BODY = [op for op in OPERATIONS if op.body is not None]
# the sweep's own bodies (valid for its world), keyed by the documented path
SWEEP_BODIES = {op_id.replace("{int:", "{"): body for op_id, body in API_BODIES.items()}
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


def _hints(w) -> dict:
    """Body fields by name → a value naming a row of the world (the chain admin may act on any of them)."""
    return {"customer_id": w.customer.id, "relative_id": w.customer_a.id, "member_id": w.customer_a.id,
            "to_customer_id": w.customer_a.id, "clinic": w.clinic_b.code, "item_code": "CL01", "plan_id": w.plan.id,
            "tier_id": w.tier.id, "gift_id": w.gift.id, "package_id": w.package.id, "covered_ids": [w.customer.id],
            "customer_ids": [w.customer.id], "rule_code": w.earn_rule.code, "rule": w.rule, "tag": w.tag.code,
            "programme": w.programme.code, "method": "cash", "group": w.tag_group.code, "name": "契约测试",
            "reason": "契约测试", "title": "契约测试", "source": "paper"}


def _path(w, op: Operation) -> str:
    url = op.path
    prefix = "/".join(op.path.split("/")[:3])
    for param in op.params:
        key = next(k for k in (f"{prefix}:{param}", param) if k in PARAMS)
        url = url.replace("{" + param + "}", str(PARAMS[key](w)))
    return url


def _body(w, op: Operation) -> dict | None:
    if op.body is None:
        return None
    body = minimal(op.body, op.components, _hints(w))
    if op.id in SWEEP_BODIES:
        body.update(SWEEP_BODIES[op.id](w))
    body.update(OVERRIDES.get(op.id, lambda w: {})(w))
    return body


# Minimal bodies the schema alone cannot make valid (a later time, a code's pattern, consent evidence).
OVERRIDES = {
    "POST /api/appointments": lambda w: {"end_at": "2025-03-01T10:30:00+08:00"},
    "POST /api/tags": lambda w: {"code": "contract-fuzz"},
    "POST /api/membership/customers/{customer_id}/family": lambda w: {"consent_source": "paper",
                                                                      "consent_evidence": "F-1"},
}


_WRITE_SQL = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
_SKIPPED_TABLES = ("clinics_apitoken", "core_idempotencyrecord")


class Caller:
    """A chain admin's API client: each request with a fresh Idempotency-Key unless one is given. It keeps a snapshot
    of every table and tells whether a request changed any row: when the request ran no INSERT, UPDATE or DELETE
    (of a table that counts) nothing can have changed; otherwise the tables are compared with the snapshot."""

    def __init__(self, chain_admin):
        self.client = Client(raise_request_exception=False)
        self.auth = {"Authorization": f"Bearer {token_create(username=chain_admin.user.username)}"}
        self.sent = 0
        self.state = snapshot()
        self.changes: list[str] = []  # what the last request changed

    def send(self, op: Operation, url: str, data: str | bytes | None, *, content_type="application/json",
             key: object = "fresh"):
        self.sent += 1
        extra = dict(self.auth)
        if key == "fresh":
            extra["Idempotency-Key"] = f"fuzz-{self.sent}"
        elif key is not None:
            extra["Idempotency-Key"] = key
        with CaptureQueriesContext(connection) as queries:
            if data is None:
                response = self.client.generic(op.method.upper(), url, b"", headers=extra)
            else:
                response = self.client.generic(op.method.upper(), url, data, content_type=content_type,
                                               headers=extra)
        # a statement the driver refused may have no text: it is counted as a write (the tables are compared)
        writes = [q["sql"] for q in queries.captured_queries if q["sql"] is None
                  or (_WRITE_SQL.match(q["sql"]) and not any(t in q["sql"] for t in _SKIPPED_TABLES))]
        self.changes = []
        if writes:
            after = snapshot()
            self.changes = changed(self.state, after)
            self.state = after
        return response


@pytest.fixture
def caller(world, chain_admin):
    return Caller(chain_admin)


def _describe(op, what, response) -> str:
    return f"{op.id} with {what}: {response.status_code} {response.content[:400]!r}"


def _error_shape(op, what, response) -> list[str]:
    """What is wrong with a 4xx answer's body: it must be the ErrorOut shape, each error naming a field."""
    if not response.get("Content-Type", "").startswith("application/json"):
        return [f"{_describe(op, what, response)}: not JSON"]
    body = response.json()
    if set(body) != {"code", "message", "errors"} or not body["message"]:
        return [f"{_describe(op, what, response)}: not the error shape"]
    if any(e.get("field", "").split(".")[0].split("[")[0] not in ("body", "path", "query", "header")
           for e in body["errors"]):
        return [f"{_describe(op, what, response)}: an error names no field of the request"]
    return []


def _names(field: str, path: str) -> bool:
    """Whether an error's field is the field at `path`, inside it, or the object or list holding it."""
    return field == path or field.startswith((f"{path}.", f"{path}[")) or path.startswith((f"{field}.", f"{field}["))


def _check_refused(op, what, response, caller, *, field: str | None = None, must_refuse: bool = True) -> list[str]:
    """The invariants of one hostile request: never a 5xx; refused (when it must be) with a 4xx in the error shape
    that names `field` on a 422; no 401/403 (the chain admin may do everything); a refusal changes nothing."""
    status = response.status_code
    if status >= 500:
        return [f"{_describe(op, what, response)}: a 5xx"]
    if status < 400:
        return [f"{_describe(op, what, response)}: taken"] if must_refuse else []
    problems = _error_shape(op, what, response)
    if status in (401, 403):
        problems.append(f"{_describe(op, what, response)}: an auth refusal of a chain admin")
    if field is not None and status == 422 and not problems:
        named = [e["field"] for e in response.json()["errors"]]
        if not any(_names(name, field) for name in named):
            problems.append(f"{_describe(op, what, response)}: does not name {field} (names {named})")
    if caller.changes:
        problems.append(f"{_describe(op, what, response)}: refused but changed {caller.changes}")
    return problems


# --- the sweep walks every write --------------------------------------------------------------------------------

def test_the_sweep_walks_every_write_the_document_lists_and_knows_its_path_parameters():
    assert len(OPERATIONS) > 45 and len(WITH_BODY) > 40
    prefixes = {op.id: "/".join(op.path.split("/")[:3]) for op in OPERATIONS}
    unknown = [f"{op.id}: {p}" for op in OPERATIONS for p in op.params
               if f"{prefixes[op.id]}:{p}" not in PARAMS and p not in PARAMS]
    assert unknown == []


# --- a valid minimal request is taken: the sweep reaches the writes, not only their refusals ------------------------

# The writes whose minimal body (schema + world) is taken, sent in document order to one world. The others meet a
# business refusal of this world's state (a lifetime membership cannot be renewed, a checkout-paid order is refunded
# at checkout, no active voucher campaign, …): still a 4xx in the error shape, past input validation.
TAKEN = {
    "POST /api/customers/upsert", "POST /api/customers/{customer_id}/identities",
    "POST /api/customers/{customer_id}/family/leave", "POST /api/customers/{customer_id}/lost",
    "POST /api/appointments", "POST /api/orders", "POST /api/treatment-plans",
    "POST /api/treatment-plans/{plan_id}/steps/{seq}", "POST /api/procedures",
    "POST /api/membership/customers/{customer_id}/cancel", "POST /api/membership/customers/{customer_id}/evaluate",
    "POST /api/loyalty/customers/{customer_id}/wallet/topups", "POST /api/loyalty/topups/{topup_id}/refunds",
    "POST /api/loyalty/customers/{customer_id}/packages", "POST /api/loyalty/customers/{customer_id}/entitlements/redeem",
    "POST /api/loyalty/packages/{purchase_id}/cancel", "POST /api/checkout/price", "POST /api/checkout/pay",
    "POST /api/checkout/settlements/{settlement_id}/refund", "POST /api/giftcards/friend-cards",
    "POST /api/giftcards/codes/{code}/holder", "POST /api/tags", "POST /api/tags/customers/{customer_id}",
    "DELETE /api/tags/customers/{customer_id}/{tag}", "POST /api/tags/bulk", "POST /api/segments/validate",
    "POST /api/segments/preview", "POST /api/segments/sql", "POST /api/segments", "PUT /api/segments/{segment_id}",
    "DELETE /api/segments/{segment_id}", "POST /api/followups/tasks/{task_id}/complete",
    "POST /api/surveys/{survey_id}/sent",
}

# A 404 that is this world's state, not the request: the membership cancelled just before unbound the family.
BUSINESS_404 = {"POST /api/membership/customers/{customer_id}/family/{member_id}/unbind": "not_found"}


def test_the_minimal_request_of_each_write_is_taken_or_refused_by_the_business_not_the_input(world, caller):
    problems, taken = [], set()
    for op in OPERATIONS:
        body = _body(world, op)
        # when
        response = caller.send(op, _path(world, op), None if body is None else encode(body))
        # then
        if response.status_code < 300:
            taken.add(op.id)
            continue
        problems += _check_refused(op, "its minimal body", response, caller, must_refuse=False)
        if BUSINESS_404.get(op.id) == response.json()["code"]:
            continue
        if response.status_code in (401, 403, 404, 405, 415) or response.json()["code"] == "idempotency_key_required":
            problems.append(f"{_describe(op, 'its minimal body', response)}: refused before the write")
    assert problems == []
    assert sorted(TAKEN - taken) == []
    assert len(taken) > len(OPERATIONS) / 2


# --- the request itself: JSON, Content-Type, body, Idempotency-Key ------------------------------------------------

# (what, raw body or a callable of the minimal body, Content-Type, Idempotency-Key, the field a refusal names;
#  None: the request may be taken; "-": it is refused, naming no field) - applied to every write
REQUESTS = [
    ("malformed JSON", '{"name": ', "application/json", "fresh", "body"),
    ("a body that is not UTF-8", b'{"name": "\xff"}', "application/json", "fresh", "body"),
    ("JSON with a trailing comma", '{"a": 1,}', "application/json", "fresh", "body"),
    ("two JSON documents", "{} {}", "application/json", "fresh", "body"),
    ("a JSON array", "[]", "application/json", "fresh", "body"),
    ("a JSON string", '"x"', "application/json", "fresh", "body"),
    ("a JSON number", "7", "application/json", "fresh", "body"),
    ("a deeply nested array", "[" * 5000 + "]" * 5000, "application/json", "fresh", "body"),
    ("an array nested beyond the parser's recursion", "[" * 200_000 + "]" * 200_000, "application/json", "fresh",
     "body"),
    ("NaN and Infinity literals", '{"zz": NaN, "yy": -Infinity}', "application/json", "fresh", "body"),
    # refused by its Content-Length before anything is read (core.middleware): a 413 naming the body
    ("a body over the upload limit", '{"zz": "' + "x" * (10 * 1024 * 1024) + '"}', "application/json", "fresh", "body"),
    ("the body as a form", lambda b: "a=1", "application/x-www-form-urlencoded", "fresh", "header.Content-Type"),
    ("the body as text/plain", lambda b: encode(b or {"a": 1}), "text/plain", "fresh", "header.Content-Type"),
    ("the body as XML", lambda b: "<a>1</a>", "application/xml", "fresh", "header.Content-Type"),
    ("a GBK charset", lambda b: encode(b or {"a": 1}), "application/json; charset=gbk", "fresh",
     "header.Content-Type"),
    ("no Idempotency-Key", lambda b: encode(b or {}), "application/json", None, "header.Idempotency-Key"),
    ("an empty Idempotency-Key", lambda b: encode(b or {}), "application/json", "", "header.Idempotency-Key"),
    ("a blank Idempotency-Key", lambda b: encode(b or {}), "application/json", " \t ", "header.Idempotency-Key"),
    ("an overlong Idempotency-Key", lambda b: encode(b or {}), "application/json", "k" * 256,
     "header.Idempotency-Key"),
    ("a Latin-1 Idempotency-Key", lambda b: encode(b or {}), "application/json", "clé-ü-1", None),
    ("an Idempotency-Key with control characters", lambda b: encode(b or {}), "application/json", "k\x01\x7f",
     "header.Idempotency-Key"),
    ("a 255-character Idempotency-Key", lambda b: encode(b or {}), "application/json", "m" * 255, None),
    # HTTP allows no control characters in a header value; PostgreSQL cannot store a NUL (it was a 500 there)
    ("an Idempotency-Key with NUL", lambda b: encode(b or {}), "application/json", "k\x00k", "header.Idempotency-Key"),
    # a header's bytes reach Django as ISO-8859-1 text (WSGI, PEP 3333): UTF-8 "键" is three characters there
    ("a UTF-8 Idempotency-Key as WSGI passes it", lambda b: encode(b or {}), "application/json",
     "密钥-1".encode().decode("latin-1"), None),
    ("an Idempotency-Key of 85 UTF-8 characters (255 bytes)", lambda b: encode(b or {}), "application/json",
     ("键" * 85).encode().decode("latin-1"), None),
    ("an Idempotency-Key of 86 UTF-8 characters (258 bytes)", lambda b: encode(b or {}), "application/json",
     ("键" * 86).encode().decode("latin-1"), "header.Idempotency-Key"),
    ("an unknown field named with NUL", lambda b: json.dumps({**(b or {}), "a\x00": 1}), "application/json",
     "fresh", "body"),
    ("an unknown field named with a lone surrogate", lambda b: json.dumps({**(b or {}), "\ud800": 1}),
     "application/json", "fresh", "body"),
    ("an unknown field with a 10 000-character name", lambda b: json.dumps({**(b or {}), "名" * 10_000: 1}),
     "application/json", "fresh", "body"),
]


@pytest.mark.parametrize("what, data, content_type, key, field", REQUESTS,
                         ids=[r.values[0] if hasattr(r, "values") else r[0] for r in REQUESTS])
def test_a_malformed_request_to_any_write_is_a_4xx_naming_what_is_wrong_and_changes_nothing(
        world, caller, what, data, content_type, key, field):
    problems = []
    for op in OPERATIONS:
        if field == "header.Idempotency-Key" and not op.takes_key:
            continue
        if field == "body" and op.body is None and data in ("[]", '"x"', "7"):
            field_here = "body"  # an endpoint without a body refuses a non-object as well
        else:
            field_here = field
        raw = data(_body(world, op)) if callable(data) else data
        # when
        response = caller.send(op, _path(world, op), raw, content_type=content_type, key=key)
        # then
        problems += _check_refused(op, what, response, caller, field=None if field_here == "-" else field_here,
                                   must_refuse=field_here is not None)
        if field_here not in (None, "-") and response.status_code < 500 and 400 <= response.status_code and \
                response.status_code != 422 and not problems:
            named = [e["field"] for e in response.json()["errors"]]
            if not any(_names(name, field_here) for name in named):
                problems.append(f"{_describe(op, what, response)}: does not name {field_here}")
    assert problems == []


# --- fields: missing, null, unknown -----------------------------------------------------------------------------

def _body_fields(world) -> list[tuple[Operation, str, dict, bool]]:
    return [(op, path, schema, required) for op in WITH_BODY
            for path, schema, required in fields_of(op.body, op.components, _body(world, op))]


def test_the_sweep_reaches_the_fields_of_every_body(world):
    found = _body_fields(world)
    assert len(found) > 150
    assert {op.id for op, *_ in found} == {op.id for op in WITH_BODY if op.body is not None} - {
        op.id for op in WITH_BODY if not fields_of(op.body, op.components, _body(world, op))}
    assert any(path.startswith("body.lines[0].") for _, path, _, _ in found)


def test_every_required_field_missing_and_every_non_nullable_field_null_is_a_422_naming_it(world, caller):
    problems = []
    for op, path, schema, required in _body_fields(world):
        base = _body(world, op)
        probes = []
        if required:
            probes.append(("it missing", with_value(base, path), True))
        if "null" not in json_types(schema, op.components) and "any" not in json_types(schema, op.components):
            probes.append(("null", with_value(base, path, None), True))
        for what, body, must_refuse in probes:
            # when
            response = caller.send(op, _path(world, op), encode(body))
            # then
            problems += _check_refused(op, f"{path} {what}", response, caller, field=path, must_refuse=must_refuse)
            if response.status_code != 422 and response.status_code < 500:
                problems.append(f"{_describe(op, f'{path} {what}', response)}: not a 422")
    assert problems == []


def test_an_unknown_field_in_any_object_of_any_body_is_a_422_naming_it(world, caller):
    problems = []
    objects = {(op.id, "body") for op in WITH_BODY}
    objects |= {(op.id, path.rsplit(".", 1)[0]) for op, path, _, _ in _body_fields(world)}
    for op_id, holder in sorted(objects):
        op = BY_ID[op_id]
        path = f"{holder}.zz_not_a_field"
        # when
        response = caller.send(op, _path(world, op), encode(with_value(_body(world, op), path, "x")))
        # then
        problems += _check_refused(op, f"an unknown {path}", response, caller, field=path)
        if response.status_code != 422:
            problems.append(f"{_describe(op, f'an unknown {path}', response)}: not a 422")
    assert problems == []


# --- fields: hostile values, chosen by hypothesis ------------------------------------------------------------

def _hostile(world) -> list[tuple[Operation, str, str, object, bool]]:
    return [(op, path, label, value, must_refuse or (label == "a float 1.0" and _whole_number(path)))
            for op, path, schema, _ in _body_fields(world)
            for label, value, must_refuse in hostile_values(schema, op.components)]


def _whole_number(path: str) -> bool:
    """Money, points and quantities refuse 5000.0 (core.api.WholeNumber): a client computing money in floating point
    is told so. An id may read 1.0 as 1."""
    name = path.rsplit(".", 1)[-1]
    return name.endswith("_fen") or name in ("quantity", "points")


def test_the_hostile_values_cover_every_kind_the_brief_names(world):
    labels = {label for _, _, label, _, _ in _hostile(world)}
    assert {"2**63", "-1", "0", "a float 1.5", "1e400 (infinite)", "NUL", "a lone surrogate", "control characters",
            "an overlong string", "February 30th", "not a date", "a JSON string", "a JSON integer", "a JSON null",
            "a JSON array", "a JSON object", "a JSON boolean", "not in the enum", "too many items"} <= labels


def _probe(world, caller, index: int) -> list[str]:
    op, path, label, value, must_refuse = _hostile(world)[index]
    body = with_value(_body(world, op), path, value)
    # when
    response = caller.send(op, _path(world, op), encode(body))
    # then
    return _check_refused(op, f"{path} = {label}", response, caller, field=path if must_refuse else None,
                          must_refuse=must_refuse)


@FUZZ
@given(data=st.data())
def test_a_hostile_value_in_any_field_of_any_write_is_never_a_5xx_and_a_refusal_names_it(world, caller, data):
    hostile = _hostile(world)
    index = data.draw(st.integers(min_value=0, max_value=len(hostile) - 1), label="probe")
    assert _probe(world, caller, index) == []


# The probes that must be refused, in groups (each group its own bounded search, so every kind is tried).
KINDS = {
    "another JSON type": lambda label: label.startswith("a JSON "),
    "integers and floats": lambda label: label in ("2**63", "-(2**63)-1", "-1", "0", "10**30", "a float 1.0", "a float 1.5")
    or label in ("1e400 (infinite)", "NaN", "-Infinity"),
    "text": lambda label: label in ("NUL", "a lone surrogate", "an overlong string", "empty", "not in the enum"),
    "dates": lambda label: label in ("February 30th", "not a date", "year 0", "year 99999", "a timestamp string"),
    "lists": lambda label: label in ("an empty list", "too many items"),
}


def _refused_probes(world, kind: str) -> list[int]:
    return [i for i, (_, _, label, _, must) in enumerate(_hostile(world)) if must and KINDS[kind](label)]


def test_every_probe_that_must_be_refused_is_in_a_group(world):
    hostile = _hostile(world)
    ungrouped = {label for _, _, label, _, must in hostile if must and not any(k(label) for k in KINDS.values())}
    assert ungrouped == set()
    assert all(_refused_probes(world, kind) for kind in KINDS)


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(data=st.data())
def test_a_value_that_must_be_refused_in_any_field_of_any_write_is_a_422_naming_it(world, caller, kind, data):
    index = data.draw(st.sampled_from(_refused_probes(world, kind)), label="probe")
    assert _probe(world, caller, index) == []


@FUZZ
@given(data=st.data())
def test_two_bad_fields_of_one_body_are_both_named_in_one_422_that_changes_nothing(world, caller, data):
    hostile = _hostile(world)
    first = data.draw(st.sampled_from([i for i, p in enumerate(hostile) if p[-1]]), label="first")
    op, path, label, value, _ = hostile[first]
    others = [i for i, p in enumerate(hostile) if p[0] is op and p[-1] and not _names(p[1], path)
              and not _names(path, p[1])]
    if not others:
        return
    _, other_path, other_label, other_value, _ = hostile[data.draw(st.sampled_from(others), label="second")]
    body = with_value(with_value(_body(world, op), path, value), other_path, other_value)
    # when
    response = caller.send(op, _path(world, op), encode(body))
    # then
    what = f"{path} = {label} and {other_path} = {other_label}"
    problems = _check_refused(op, what, response, caller, field=path)
    problems += _check_refused(op, what, response, caller, field=other_path)
    if response.status_code != 422:
        problems.append(f"{_describe(op, what, response)}: not a 422")
    assert problems == []


# --- path parameters ------------------------------------------------------------------------------------------

# "{v}" is the parameter's own value (an id of the world's row, a code, a token): dressed up, it must not find it -
# but an id with a leading zero is the same number, and a card code is read as a person types it (its letters and
# digits only, any case: giftcards.codes.code_normalize) and a tag's code without the spaces around it
# (tagging.selectors.tag_get), so those may be taken.
PATH_VALUES = ["0", str(2**63), str(2**63 - 1), "-1", "1.5", "1e3", "%00", "a%00b", "%ED%A0%80", "%FF", "长" * 300,
               "%20", "x" * 5000, "..%2F..", "{v}%0A", "%20{v}", "+{v}", "0{v}", "{v}.0", "{v}_0", "{v}%00"]


@pytest.mark.parametrize("value", PATH_VALUES)
def test_a_hostile_path_parameter_of_any_write_is_a_4xx_naming_it_or_a_404_and_changes_nothing(world, caller, value):
    problems = []
    for op in OPERATIONS:
        for param in op.params:
            url = _path(world, op)
            prefix = "/".join(op.path.split("/")[:3])
            key = next(k for k in (f"{prefix}:{param}", param) if k in PARAMS)
            template = op.path
            for other in op.params:
                if other != param:
                    other_key = next(k for k in (f"{prefix}:{other}", other) if k in PARAMS)
                    template = template.replace("{" + other + "}", str(PARAMS[other_key](world)))
            url = template.replace("{" + param + "}", value.replace("{v}", str(PARAMS[key](world))))
            body = _body(world, op)
            # when
            response = caller.send(op, url, None if body is None else encode(body))
            # then
            what = f"path.{param} = {value[:20]!r}"
            taken_as_typed = value == "0{v}" or (param == "code" and "{v}" in value) or (
                param == "tag" and value in ("{v}%0A", "%20{v}"))
            problems += _check_refused(op, what, response, caller, field=None if taken_as_typed else f"path.{param}",
                                       must_refuse=not taken_as_typed)
    assert problems == []


def test_a_tag_write_reads_the_customer_id_in_its_path_as_digits_only(world, caller):
    # given: the id as every other path of the API takes it ({int:…}), not as pydantic's lax int reads text
    op = BY_ID["POST /api/tags/customers/{customer_id}"]
    customer = world.customer
    for dressed in (f"{customer.id}.0", f"+{customer.id}", f"%20{customer.id}", f"{customer.id}%0A", f"{customer.id}_0"):
        # when
        response = caller.send(op, f"/api/tags/customers/{dressed}", encode({"tag": world.tag.code}))
        # then
        assert response.status_code == 404, (dressed, response.content)
    assert caller.send(op, f"/api/tags/customers/{customer.id}", encode({"tag": world.tag.code})).status_code == 200


# Every field, not a sample, for the probes that break a database rather than a validator: a column shorter than the
# text, a text PostgreSQL cannot store (NUL, a lone surrogate), an integer no column holds.
EVERY_FIELD = ["an overlong string", "NUL", "a lone surrogate", "control characters", "2**63", "-(2**63)-1", "10**30",
               "a float 1.0", "a float 1.5", "1e400 (infinite)", "NaN"]


@pytest.mark.parametrize("label", EVERY_FIELD)
def test_a_value_no_column_can_hold_in_any_field_of_any_write_is_taken_or_refused_naming_it_never_a_5xx(
        world, caller, label):
    probes = [index for index, probe in enumerate(_hostile(world)) if probe[2] == label]
    assert len(probes) > 20
    problems = [problem for index in probes for problem in _probe(world, caller, index)]
    assert problems == []
