"""Helpers of tests/test_api_contract_fuzz.py: the write operations as the OpenAPI document describes them, a minimal
body built from each body schema, hostile values for a field chosen from its documented type, and a snapshot of
every table's rows (count and content) to show that a refused write changed nothing."""

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field

from django.apps import apps

from config.api import api

WRITES = ("post", "put", "patch", "delete")
TOO_BIG = 2**63
# Rows a refused write may legitimately touch: the token's last-used time; the caller's own idempotency record (a
# business refusal is stored so that a retry with the same key is answered the same way: core.idempotency).
SNAPSHOT_SKIP = {"clinics.apitoken", "core.idempotencyrecord"}


def document() -> dict:
    """The OpenAPI document the app serves at /api/openapi.json (plain JSON types)."""
    return json.loads(json.dumps(api.get_openapi_schema(path_prefix="/api/")))


@dataclass
class Operation:
    method: str
    path: str  # as documented: /api/customers/{customer_id}
    params: list[str]
    body: dict | None  # the request body schema ($refs resolved on use), or None for an operation without one
    takes_key: bool
    components: dict = field(repr=False, default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.method.upper()} {self.path}"


def write_operations(doc: dict) -> list[Operation]:
    found = []
    for path, item in doc["paths"].items():
        for method, details in item.items():
            if method not in WRITES:
                continue
            parameters = details.get("parameters", [])
            body = details.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            found.append(Operation(
                method=method, path=path, params=[p["name"] for p in parameters if p["in"] == "path"], body=body,
                takes_key=any(p["in"] == "header" and p["name"] == "Idempotency-Key" for p in parameters),
                components=doc["components"]["schemas"]))
    return found


def resolve(schema: dict, components: dict) -> dict:
    while True:
        if "$ref" in schema:
            schema = components[schema["$ref"].rsplit("/", 1)[-1]]
        elif "allOf" in schema and len(schema["allOf"]) == 1:
            schema = {**{k: v for k, v in schema.items() if k != "allOf"}, **schema["allOf"][0]}
            schema = {k: v for k, v in schema.items() if k != "default"} if "$ref" in schema else schema
        else:
            return schema


def options(schema: dict, components: dict) -> list[dict]:
    schema = resolve(schema, components)
    if "anyOf" in schema:
        return [o for option in schema["anyOf"] for o in options(option, components)]
    return [schema]


def json_types(schema: dict, components: dict) -> set[str]:
    """The JSON types a field documents ('any' for a schema with no type: a free rule tree)."""
    found = set()
    for option in options(schema, components):
        if "enum" in option or "const" in option:
            values = option.get("enum", [option.get("const")])
            found |= {_type_of(v) for v in values}
        elif "type" in option:
            found.add(option["type"])
            if option["type"] == "integer":
                found.add("integer")
        else:
            found.add("any")
    return found


def _type_of(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


# --- a minimal body ---------------------------------------------------------------------------------------------

def minimal(schema: dict, components: dict, hints: dict, name: str = "") -> object:
    """A value of `schema`: for an object its required properties only. `hints` maps a field name to a value
    (an id of a row the world has, a clinic code, a catalogue item) used wherever that name appears."""
    if name in hints:
        return hints[name]
    first = next((o for o in options(schema, components) if o.get("type") != "null"), {"type": "null"})
    if "const" in first:
        return first["const"]
    if "enum" in first:
        return first["enum"][0]
    kind = first.get("type")
    if kind == "object" or "properties" in first:
        return {prop: minimal(sub, components, hints, prop) for prop, sub in first.get("properties", {}).items()
                if prop in first.get("required", [])}
    if kind == "array":
        return [minimal(first["items"], components, hints, name)] * max(first.get("minItems", 0), 1) \
            if first.get("minItems") else []
    if kind == "integer":
        if "exclusiveMinimum" in first:
            return first["exclusiveMinimum"] + 1
        return max(first.get("minimum", 1), 1) if first.get("maximum", 1) >= 1 else first["maximum"]
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return False
    if kind == "string":
        if first.get("format") == "date-time":
            return "2025-03-01T10:00:00+08:00"
        if first.get("format") == "date":
            return "2025-03-01"
        if first.get("pattern") == "^(apply|remove)$":
            return "apply"
        return "测试" if first.get("minLength", 1) <= 2 else "测" * first["minLength"]
    if kind == "null":
        return None
    return {}


# --- where a field is, and hostile values for it ------------------------------------------------------------

def fields_of(schema: dict, components: dict, base: object, prefix: str = "body") -> list[tuple[str, dict, bool]]:
    """(path like 'body.lines[0].item_code', field schema, required) of every field of the body's objects that the
    minimal body reaches (objects nested in the first item of a list included)."""
    found = []
    for option in options(schema, components):
        if option.get("type") == "object" or "properties" in option:
            if not isinstance(base, dict):
                continue
            for prop, sub in option.get("properties", {}).items():
                here = f"{prefix}.{prop}"
                found.append((here, sub, prop in option.get("required", [])))
                if prop in base:
                    found += fields_of(sub, components, base[prop], here)
            break
        if option.get("type") == "array" and isinstance(base, list) and base:
            found += fields_of(option["items"], components, base[0], f"{prefix}[0]")
            break
    return found


_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def steps(path: str) -> list:
    """'body.lines[0].item_code' → ['lines', 0, 'item_code']."""
    assert path.startswith("body")
    return [name if name else int(index) for name, index in _STEP.findall(path[len("body"):])]


_ABSENT = object()


def with_value(body: object, path: str, value: object = _ABSENT) -> object:
    """A deep copy of `body` with the field at `path` set to `value`, or removed when no value is given."""
    body = copy.deepcopy(body)  # keeps a Raw value Raw
    *parents, last = steps(path)
    holder = body
    for step in parents:
        holder = holder[step]
    if value is _ABSENT:
        holder.pop(last, None)
    else:
        holder[last] = value
    return body


class Raw(str):
    """A JSON literal sent as written (1e400, NaN): Python's parser reads them, as the API's parser may."""


def encode(body: object) -> str:
    """`body` as JSON text, each Raw value written as its literal."""
    raws = {}

    def mark(value):
        if isinstance(value, Raw):
            raws[f"__raw_{len(raws)}__"] = str(value)
            return f"__raw_{len(raws) - 1}__"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(body))
    for placeholder, literal in raws.items():
        text = text.replace(f'"{placeholder}"', literal)
    return text


# A value of each JSON type (the wrong-type probes): one is chosen whose type the field does not document.
OF_TYPE = {"string": "1", "integer": 1, "number": 1.5, "boolean": True, "array": [1], "object": {"a": 1},
           "null": None}


def hostile_values(schema: dict, components: dict) -> list[tuple[str, object, bool]]:
    """(label, value, must_refuse) for a field: values of JSON types the field does not take (must be refused),
    and values of its own type at and beyond its limits (out of the documented bounds: must be refused; inside them:
    may be taken, never a 5xx)."""
    types = json_types(schema, components)
    out = []
    if "any" not in types:
        for kind, value in OF_TYPE.items():
            if kind not in types and not (kind == "integer" and "number" in types):
                out.append((f"a JSON {kind}", value, True))
    for option in options(schema, components):
        kind = option.get("type")
        if kind == "integer" and "enum" not in option:
            low = option.get("minimum", option.get("exclusiveMinimum", -TOO_BIG - 1) + 1
                             if "exclusiveMinimum" in option else None)
            high = option.get("maximum")
            for label, value in (("2**63", TOO_BIG), ("-(2**63)-1", -TOO_BIG - 1), ("-1", -1), ("0", 0),
                                 ("10**30", 10**30)):
                refused = (low is not None and value < low) or (high is not None and value > high) \
                    or abs(value) >= TOO_BIG
                out.append((label, value, refused))
            if "number" not in types:
                out += [("a float 1.5", 1.5, True), ("a float 1.0", 1.0, False), ("1e400 (infinite)", Raw("1e400"), True),
                        ("NaN", Raw("NaN"), True), ("-Infinity", Raw("-Infinity"), True)]
        elif kind == "string" and "enum" not in option and "const" not in option:
            limit = option.get("maxLength")
            out += [("NUL", "a\x00b", True), ("a lone surrogate", "\ud800", True),
                    ("control characters", "a\x01\x1b\x7fb", False),
                    ("an overlong string", "长" * ((limit or 0) + 1 if limit else 20_000), bool(limit)),
                    ("whitespace only", "   ", False), ("empty", "", option.get("minLength", 0) > 0)]
            if option.get("format") in ("date", "date-time"):
                out += [("February 30th", "2025-02-30" + ("T10:00:00" if option["format"] == "date-time" else ""),
                         True), ("not a date", "yesterday", True), ("year 0", "0000-01-01", True),
                        ("year 99999", "99999-01-01", True), ("a timestamp string", "1740790800", True)]
        elif kind == "string" or "enum" in option:
            out += [("not in the enum", "no-such-value", True), ("NUL", "\x00", True)]
        elif kind == "array":
            out += [("an empty list", [], option.get("minItems", 0) > 0)]
            if "maxItems" in option:
                out += [("too many items", [None] * (option["maxItems"] + 1), True)]
    return out


# --- snapshots ----------------------------------------------------------------------------------------------

def snapshot() -> dict[str, str]:
    """Every table of the project: its row count and a digest of its rows."""
    state = {}
    for model in apps.get_models():
        if not model.__module__.startswith("smileloop.") or model._meta.label_lower in SNAPSHOT_SKIP:
            continue
        rows = list(model._base_manager.order_by("pk").values_list())
        state[model._meta.label_lower] = f"{len(rows)} rows, {hashlib.sha256(repr(rows).encode()).hexdigest()}"
    return state


def changed(before: dict, after: dict) -> list[str]:
    return sorted(f"{label}: {before[label]} → {after.get(label)}" for label in before
                  if before[label] != after.get(label))
