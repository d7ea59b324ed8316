"""What a JSON request body may hold, field by field: core.api.InputSchema refuses, before pydantic reads a body
object, the fields it does not have and the values whose JSON type is not their field's.

pydantic's lax mode read "5000" as the integer 5000, true as 1 and "yes" as true, and ignored unknown fields, so a
client's wrong types and misspelt names passed unnoticed (a misspelt `moblie`: a 201 and no phone). Strict mode is no
answer: it refuses the JSON strings of dates, enums and decimals too. So each field's type is read once per schema
(`_expected`: the kinds of JSON value it takes) and each body checked against it; a documented JSON schema
(WithJsonSchema) is the contract where the Python type says less (checkout's `points`: an integer or "max").
Dates are left to their own validators (ISO 8601 strings, with an example in the message), enums and literals to
pydantic's message listing the values. Imports no domain app.
"""

import difflib
import inspect
import json
import re
import types
import typing
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import InitErrorDetails, PydanticCustomError

_KIND_WORDS = {"integer": "a whole number (a JSON integer)", "number": "a JSON number", "string": "a JSON string",
               "boolean": "true or false", "array": "a JSON array", "object": "a JSON object", "null": "null"}
_DIGITS = re.compile(r"-?\d+")


@dataclass(frozen=True)
class _Expected:
    """The JSON kinds a body field takes (integer, number, string, boolean, null, array, object), for an array what
    its items take (None: not checked here), and the only strings it takes when a documented schema lists them
    (None: any string; enums and literals are pydantic's to check, with their own message)."""

    kinds: frozenset[str]
    items: "_Expected | None" = None
    strings: frozenset[str] | None = None


def _schema_expected(schema: dict) -> _Expected | None:
    """What a documented JSON schema (WithJsonSchema: `points` is an integer or "max") allows: the document is the
    contract, whatever the Python type behind it."""
    parts = schema.get("anyOf") or schema.get("oneOf")
    if parts:
        found = [_schema_expected(part) for part in parts]
        if None in found:
            return None
        strings = [part.strings for part in found if "string" in part.kinds]
        return _Expected(frozenset().union(*(part.kinds for part in found)),
                         strings=None if None in strings else frozenset().union(*strings))
    if "type" in schema:
        return _Expected(frozenset(schema["type"] if isinstance(schema["type"], list) else [schema["type"]]))
    values = [schema["const"]] if "const" in schema else schema.get("enum")
    kinds = {_kind(value) for value in values or ()}
    if not kinds or None in kinds:
        return None
    return _Expected(frozenset(kinds), strings=frozenset(v for v in values if isinstance(v, str)))


def _expected(annotation: Any, metadata: list | tuple = ()) -> _Expected | None:
    """What JSON a field of this type takes; None where pydantic's own check is already strict or better worded
    (dates: ISO strings with an example) or the type is open (Any)."""
    for item in metadata:
        if isinstance(item, WithJsonSchema) and item.json_schema is not None:
            return _schema_expected(item.json_schema)
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        base, *extra = typing.get_args(annotation)
        return _expected(base, [*metadata, *extra])
    if origin in (typing.Union, types.UnionType):
        parts = [_expected(arg) for arg in typing.get_args(annotation)]
        if None in parts:
            return None
        arrays = [part.items for part in parts if "array" in part.kinds]
        return _Expected(frozenset().union(*(part.kinds for part in parts)), arrays[0] if len(arrays) == 1 else None)
    if origin in (list, set, frozenset, tuple):
        args = [arg for arg in typing.get_args(annotation) if arg is not Ellipsis]
        return _Expected(frozenset({"array"}), _expected(args[0]) if len(set(args)) == 1 else None)
    if origin is typing.Literal:
        kinds = {_kind(value) for value in typing.get_args(annotation)}
        return None if None in kinds else _Expected(frozenset(kinds))
    if origin is dict or annotation is dict:
        return _Expected(frozenset({"object"}))
    if annotation is type(None):
        return _Expected(frozenset({"null"}))
    if annotation is bool:
        return _Expected(frozenset({"boolean"}))
    if annotation is int:
        return _Expected(frozenset({"integer"}))
    if annotation in (float, Decimal):
        return _Expected(frozenset({"number"}))
    if annotation is str:
        return _Expected(frozenset({"string"}))
    if inspect.isclass(annotation) and issubclass(annotation, Enum):
        kinds = {_kind(member.value) for member in annotation}
        return None if None in kinds else _Expected(frozenset(kinds))
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return _Expected(frozenset({"object"}))
    return None


def _kind(value: Any) -> str | None:
    if value is None:
        return "null"
    for python_type, kind in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
                              (list, "array"), (dict, "object")):
        if isinstance(value, python_type):
            return kind
    return None


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return "the string " + json.dumps(value[:40], ensure_ascii=False)
    if isinstance(value, (list, dict)):
        return "an array" if isinstance(value, list) else "an object"
    return json.dumps(value)


def _type_errors(expected: _Expected, value: Any, loc: tuple) -> list[InitErrorDetails]:
    kind = _kind(value)
    fits = kind in expected.kinds or (kind == "integer" and "number" in expected.kinds)
    if kind == "string" and expected.strings is not None:
        fits = value in expected.strings
    if kind is None or fits:
        if kind == "array" and expected.items is not None:
            return [error for index, item in enumerate(value)
                    for error in _type_errors(expected.items, item, (*loc, index))]
        return []
    wanted = []
    for k in _KIND_WORDS:
        if k == "string" and k in expected.kinds and expected.strings is not None:
            wanted += [json.dumps(v, ensure_ascii=False) for v in sorted(expected.strings)]
        elif k in expected.kinds:
            wanted.append(_KIND_WORDS[k])
    message = f"must be {', '.join(wanted[:-1]) + ' or ' if len(wanted) > 1 else ''}{wanted[-1]}, not {_shown(value)}"
    if kind == "string" and "integer" in expected.kinds and _DIGITS.fullmatch(value.strip()):
        message += f": send {value.strip()}, without quotes"
    return [InitErrorDetails(type=PydanticCustomError("json_type", message), loc=loc, input=value)]


@dataclass(frozen=True)
class _BodyFields:
    expected: dict[str, _Expected | None]
    shown: tuple[str, ...]  # the documented names (a field hidden from the schema, like the upsert's stage, is not)


@cache
def _body_fields(cls: type[BaseModel]) -> _BodyFields:
    fields = cls.model_fields
    return _BodyFields(
        expected={name: _expected(field.annotation, field.metadata) for name, field in fields.items()},
        shown=tuple(name for name, field in fields.items()
                    if not any(isinstance(m, SkipJsonSchema) for m in field.metadata)))


def _unknown_field_message(name: str, fields: _BodyFields) -> str:
    close = difflib.get_close_matches(name, fields.shown, n=1, cutoff=0.7)
    message = "is not a field of this endpoint"
    if close:
        message += f" (did you mean {close[0]!r}?)"
    if len(fields.shown) <= 20:
        message += f"; its fields here are: {', '.join(fields.shown)}"
    return message


def body_errors(cls: type[BaseModel], data: dict) -> list[InitErrorDetails]:
    """A body object's unknown fields, and its fields whose JSON type is not theirs (array items included;
    objects nested in it check their own)."""
    fields = _body_fields(cls)
    errors = []
    for name, value in data.items():
        if name not in fields.expected:
            errors.append(InitErrorDetails(type=PydanticCustomError("unknown_field", _unknown_field_message(
                name, fields)), loc=(name,), input=value))
        elif fields.expected[name] is not None:
            errors += _type_errors(fields.expected[name], value, (name,))
    return errors
