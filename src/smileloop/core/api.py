"""The REST API's shared kernel: one error shape for every failure, and the NinjaAPI that renders it.

Every 4xx body is `{"code": ..., "message": ..., "errors": [{"field", "message", "value"?}]}`, where
`field` is a dotted path into the request (`body.lines[0].item_code`, `query.limit`, `path.customer_id`,
`header.Idempotency-Key`), whether the error came from request parsing (ninja / pydantic) or from a
service (core.errors.DomainError). Imports no domain app.

Input is parsed with the shared types below, so that every app refuses the same things with a 422 naming the
field: `InputSchema` (the base of every request body schema: a JSON object, never an array, null or scalar read
as `{}`), `Id` (a key: 1 … 2**63 − 1), `IdOrCode` (a row by id or code / username), `Offset`, `Fen` /
`PositiveFen` and `Points` (bounded far below a bigint, see core.bounds), `BigInt` (any value a column holds, for
fields whose real range the service checks), `IsoDateTime` / `IsoDate` (ISO 8601 strings only: no Unix timestamps).
`tests/test_api_input_bounds.py` walks every operation and fails on an input integer or date that does not use them.
A body field that names a row (`customer_id`, `gift_id`, …) is looked up inside `referenced_by("body.<field>")`, so
that the 404 of a row that does not exist, or is outside the caller's scope, names the field.
"""

import datetime as dt
import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Annotated, Any

from django.db import OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from ninja import Field, NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError, ValidationErrorContext
from pydantic import BeforeValidator, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from smileloop.core.bounds import BIGINT_MAX, MAX_FEN, MAX_OFFSET, MAX_POINTS
from smileloop.core.errors import BUSY_RETRY_AFTER_SECONDS, DomainError, NotFound, database_busy

_SOURCES = ("body", "query", "path", "header", "cookie", "file", "form")


class FieldErrorOut(Schema):
    field: str
    message: str
    value: str | None = None


class ErrorOut(Schema):
    code: str
    message: str
    errors: list[FieldErrorOut] = []


# Merge into each operation's `response=` so OpenAPI documents the error shape.
ERROR_RESPONSES: dict[int, type[Schema]] = {s: ErrorOut for s in (400, 401, 403, 404, 409, 422)}


def error_body(code: str, message: str, errors: list[dict] | None = None) -> dict:
    return {"code": code, "message": message, "errors": errors or []}


def field_path(loc: tuple | list) -> str:
    """('body', 'payload', 'lines', 0, 'item_code') → 'body.lines[0].item_code'."""
    parts = list(loc)
    if len(parts) >= 2 and parts[0] == "body" and isinstance(parts[1], str) and _is_param_name(parts[1]):
        parts.pop(1)  # ninja nests the body under the view's parameter name; clients never see it
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _is_param_name(name: str) -> bool:
    # Body schemas are always bound to a parameter called `payload` in Smileloop's routers.
    return name == "payload"


def qualify_field(request: HttpRequest, field: str) -> str:
    """A service names fields as its caller passed them ('mobile', 'lines[0].amount_fen'); prefix the part
    of the request they came from so both kinds of error read the same."""
    if not field or field.split(".", 1)[0] in _SOURCES:
        return field
    head = field.split(".", 1)[0].split("[", 1)[0]
    path_params = getattr(getattr(request, "resolver_match", None), "kwargs", None) or {}
    if head in path_params:
        return f"path.{field}"
    return f"{'query' if request.method in ('GET', 'HEAD') else 'body'}.{field}"


def domain_error_body(request: HttpRequest, exc: DomainError) -> dict:
    data = exc.as_dict()
    errors = []
    for item in data.get("errors", []):
        item = dict(item)
        item["field"] = qualify_field(request, item.get("field", ""))
        errors.append(item)
    message = data.get("message", "")
    if errors and getattr(exc, "status", 400) == 422:
        message = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return error_body(data.get("code", "error"), message, errors)


def _scalar(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list, tuple, set)):
        return None
    return str(value)[:100]


class SmileloopAPI(NinjaAPI):
    """NinjaAPI whose errors all use the one shape above (and keep the rejected value of each field)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_exception_handler(ValidationError, partial(_on_validation_error, api=self))
        self.add_exception_handler(DomainError, partial(_on_domain_error, api=self))
        self.add_exception_handler(Http404, partial(_on_404, api=self))
        self.add_exception_handler(AuthenticationError, partial(_on_unauthenticated, api=self))
        self.add_exception_handler(HttpError, partial(_on_http_error, api=self))
        self.add_exception_handler(OperationalError, partial(_on_operational_error, api=self))

    def validation_error_from_error_contexts(self, error_contexts: list[ValidationErrorContext]) -> ValidationError:
        errors = []
        for context in error_contexts:
            model = context.model
            for item in context.pydantic_validation_error.errors(include_url=False):
                loc = (model.__ninja_param_source__,) + model.__ninja_flatten_map_reverse__.get(item["loc"], item["loc"])
                value = None if item.get("type") == "missing" else _scalar(item.get("input"))
                errors.append({"loc": loc, "msg": item["msg"], "type": item["type"], "value": value})
        return ValidationError(errors)


def _on_validation_error(request: HttpRequest, exc: ValidationError, api: NinjaAPI) -> HttpResponse:
    errors = []
    for item in exc.errors:
        entry = {"field": field_path(item.get("loc", ())), "message": item.get("msg", "is invalid")}
        if item.get("value") is not None:
            entry["value"] = item["value"]
        errors.append(entry)
    message = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid input"
    return api.create_response(request, error_body("invalid", message, errors), status=422)


def _on_domain_error(request: HttpRequest, exc: DomainError, api: NinjaAPI) -> HttpResponse:
    return api.create_response(request, domain_error_body(request, exc), status=exc.status)


def _on_404(request: HttpRequest, exc: Http404, api: NinjaAPI) -> HttpResponse:
    return api.create_response(request, error_body("not_found", "Not found"), status=404)


def _on_unauthenticated(request: HttpRequest, exc: AuthenticationError, api: NinjaAPI) -> HttpResponse:
    body = error_body("unauthenticated", "Missing or invalid API token: send 'Authorization: Bearer <token>'")
    response = api.create_response(request, body, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="smileloop"'
    return response


def _on_http_error(request: HttpRequest, exc: HttpError, api: NinjaAPI) -> HttpResponse:
    code = {400: "bad_request", 403: "forbidden", 405: "method_not_allowed", 429: "throttled"}.get(
        exc.status_code, "http_error")
    return api.create_response(request, error_body(code, str(exc)), status=exc.status_code)


# --- input types ---------------------------------------------------------------------------------------

class InputSchema(Schema):
    """The base of every request body schema (and of the objects nested in one).

    ninja's Schema reads its fields from any object's attributes, so a JSON array, null, string or number where
    an object is expected would validate as `{}` (every field at its default): refused here instead."""

    @model_validator(mode="wrap")
    @classmethod
    def _json_object_only(cls, value: Any, handler, info: ValidationInfo) -> Any:
        if not isinstance(value, (dict, cls)):
            raise PydanticCustomError("model_type", "must be a JSON object")
        return handler(value)


Id = Annotated[int, Field(ge=1, le=BIGINT_MAX, description="An id (1 … 2**63 − 1)")]
BigInt = Annotated[int, Field(ge=-BIGINT_MAX - 1, le=BIGINT_MAX)]
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET)]
Fen = Annotated[int, Field(ge=0, le=MAX_FEN, description="Integer fen (1 yuan = 100 fen)")]
PositiveFen = Annotated[int, Field(gt=0, le=MAX_FEN, description="Integer fen (1 yuan = 100 fen)")]
Points = Annotated[int, Field(ge=0, le=MAX_POINTS)]


def _id_or_code(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        out_of_range = not 1 <= value <= BIGINT_MAX
    else:  # digits (full-width ones too) beyond any key would overflow the id look-up on SQLite
        text = unicodedata.normalize("NFKC", value).strip() if isinstance(value, str) else ""
        out_of_range = text.isascii() and text.isdigit() and int(text) > BIGINT_MAX
    if out_of_range:
        raise PydanticCustomError("id_or_code", "must be an id (1 … 2**63 − 1) or a code")
    return value


# A row named by id or by code / username: the text is resolved with core.bounds.pk_from_text.
IdOrCode = Annotated[int | str, BeforeValidator(_id_or_code)]

_NUMBER = re.compile(r"\s*[+-]?\d+(\.\d*)?\s*")


def _iso_only(kind: str, example: str):
    def check(value: Any) -> Any:
        if isinstance(value, (dt.date, dt.datetime)):
            return value
        if not isinstance(value, str) or _NUMBER.fullmatch(value):
            # pydantic reads numbers (and digit strings) as Unix timestamps: 12345 would be 1970-01-01T03:25:45Z.
            raise PydanticCustomError("iso_8601", "must be an ISO 8601 {kind} string, e.g. {example}",
                                      {"kind": kind, "example": example})
        return value
    return BeforeValidator(check)


IsoDateTime = Annotated[dt.datetime, _iso_only("date-time", "2025-03-01T09:30:00+08:00")]
IsoDate = Annotated[dt.date, _iso_only("date", "2025-03-01")]


@contextmanager
def referenced_by(field: str) -> Iterator[None]:
    """Look up the row a request field names: its NotFound (no such row, or one outside the caller's scope: the
    two stay indistinguishable) names `field`, e.g. `body.customer_id`."""
    try:
        yield
    except NotFound as exc:
        if not exc.field:
            exc.field = field
        raise


def render(schema: type[Schema], data: Any) -> dict:
    """Validate `data` (a dict or an object) against an output schema and return plain JSON types, ready
    to be stored (idempotency) and replayed byte for byte."""
    return schema.model_validate(data).model_dump(mode="json")


def _on_operational_error(request: HttpRequest, exc: OperationalError, api: NinjaAPI) -> HttpResponse:
    """A busy database (another writer held the lock too long, a deadlock) is a 503 the client may retry, with the
    same Idempotency-Key: the transaction was rolled back, the key was not used. Anything else stays a 500."""
    if not database_busy(exc):
        raise exc
    body = error_body("busy", "The database is busy with another write (an import, a nightly job); nothing was "
                              f"written. Retry in {BUSY_RETRY_AFTER_SECONDS} seconds with the same Idempotency-Key.")
    response = api.create_response(request, body, status=503)
    response["Retry-After"] = str(BUSY_RETRY_AFTER_SECONDS)
    return response
