"""The REST API's shared kernel: one error shape for every failure, and the NinjaAPI that renders it.

Every 4xx body is `{"code": ..., "message": ..., "errors": [{"field", "message", "value"?}]}`, where
`field` is a dotted path into the request (`body.lines[0].item_code`, `query.limit`, `path.customer_id`,
`header.Idempotency-Key`), whether the error came from request parsing (ninja / pydantic) or from a
service (core.errors.DomainError). A method a route does not take is a 405 in the same shape, with `Allow`.
Imports no domain app.

Input is parsed with the shared types below, so that every app refuses the same things with a 422 naming the
field: `InputSchema` (the base of every request body schema: a JSON object, never an array, null or scalar read
as `{}`; no field it does not have; each field of its own JSON type, 5000 not "5000": core.api_body), `Id` (a key:
1 … 2**63 − 1), `IdOrCode` (a row by id or code / username), `Offset`, `Fen` /
`PositiveFen` and `Points` (bounded far below a bigint, see core.bounds), `BigInt` (any value a column holds, for
fields whose real range the service checks), `IsoDateTime` / `IsoDate` (ISO 8601 strings only: no Unix timestamps).
`tests/test_api_input_bounds.py` walks every operation and fails on an input integer or date that does not use them.
A body field that names a row (`customer_id`, `gift_id`, …) is looked up inside `referenced_by("body.<field>")`, so
that the 404 of a row that does not exist, or is outside the caller's scope, names the field.

A request with a body sends it as `Content-Type: application/json` (UTF-8), or it is a 415 naming
`header.Content-Type` (`content_type_check`); a write without a body needs none. An endpoint that takes no body
refuses one with fields (`_no_body_expected`).
"""

import datetime as dt
import inspect
import logging
import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial, wraps
from typing import Annotated, Any

from django.core.exceptions import SuspiciousOperation
from django.core.signals import got_request_exception
from django.db import OperationalError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.http.request import RawPostDataException
from django.urls import URLPattern
from django.utils import timezone
from ninja import Field, NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError, ValidationErrorContext
from ninja.parser import Parser
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from smileloop.core.api_body import body_errors
from smileloop.core.bounds import BIGINT_MAX, MAX_FEN, MAX_OFFSET, MAX_POINTS
from smileloop.core.errors import (
    BUSY_RETRY_AFTER_SECONDS,
    DomainError,
    FieldError,
    NotFound,
    ValidationFailed,
    database_busy,
    database_busy_log,
)

_SOURCES = ("body", "query", "path", "header", "cookie", "file", "form")


class FieldErrorOut(Schema):
    field: str
    message: str
    value: str | None = None


class ErrorOut(Schema):
    code: str
    message: str
    errors: list[FieldErrorOut] = []


# A clinic as every answer names one (a task's, a bill's, an order's, a patient's home clinic). No docstring: it
# would be the schema's description, and the copies of this shape in customers and surveys must document the same.
class ClinicRef(Schema):
    id: int
    code: str
    name: str


def clinic_ref(clinic) -> dict | None:
    """`ClinicRef` of a clinic row, or None."""
    return {"id": clinic.id, "code": clinic.code, "name": clinic.name} if clinic is not None else None


# Merge into each operation's `response=` so OpenAPI documents the error shape. 503 `busy` (with Retry-After) is what
# any operation answers when the database is busy with another writer (_on_operational_error): a client must know it.
ERROR_RESPONSES: dict[int, type[Schema]] = {s: ErrorOut for s in (400, 401, 403, 404, 409, 422, 503)}


def error_body(code: str, message: str, errors: list[dict] | None = None) -> dict:
    """A lone surrogate the request sent (JSON's "\\ud800", echoed in a value or a message) becomes U+FFFD: UTF-8
    cannot encode it, so no strict client could read the answer, nor PostgreSQL store it as a write's idempotent
    answer (a 500 in place of the 422)."""
    errors = [{name: _without_lone_surrogates(part) for name, part in error.items()} for error in errors or []]
    return {"code": code, "message": _without_lone_surrogates(message), "errors": errors}


def _without_lone_surrogates(value: Any) -> Any:
    return _LONE_SURROGATE.sub("\ufffd", value) if isinstance(value, str) else value


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


_NUL_MESSAGE = "must not contain the NUL character (\\u0000)"


def _has_nul(value: Any) -> bool:
    """Whether a value, or one of a list's values, is text holding a NUL character."""
    return any(isinstance(item, str) and "\x00" in item for item in (value if isinstance(value, list) else [value]))


_SURROGATE_MESSAGE = "must not contain a lone surrogate (\\ud800–\\udfff): it is not a character"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value: Any) -> bool:
    """Whether a value, or one of a list's values, is text holding a lone surrogate: JSON's "\\ud800" escape decodes
    to one (a pair decodes to its one character), and no database can encode it as UTF-8 (a 500 on the write)."""
    return any(isinstance(item, str) and _LONE_SURROGATE.search(item) is not None
               for item in (value if isinstance(value, list) else [value]))


class BodyNotJson(ValueError):
    """A request body that is not JSON text: ninja answers it with a 400, which names the body with this reason."""


class UnsupportedMediaType(DomainError):
    """A request body that does not say it is JSON (a form post, text/plain): refused before it is read, by the
    header, rather than parsed as whatever it happens to look like."""

    code = "unsupported_media_type"
    status = 415


JSON_MEDIA_TYPE = "application/json"
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _has_body(request: HttpRequest) -> bool:
    try:
        return bool(request.body.strip())
    except RawPostDataException:  # a multipart body Django already read as a form: a body all the same
        return True


def content_type_check(request: HttpRequest) -> None:
    """A request that sends a body must send it as `Content-Type: application/json` (UTF-8), or it is a 415 naming
    the header: a form post or text/plain was parsed as JSON when it happened to be JSON text, or was a 400 about
    the body's syntax, neither saying what to fix. A write without a body needs no Content-Type."""
    if not _has_body(request):
        return
    media_type = (request.content_type or "").strip().lower()
    charset = (request.content_params or {}).get("charset", "utf-8").strip().strip('"').lower()
    if media_type != JSON_MEDIA_TYPE:
        sent = f"not {media_type}" if media_type else "and it is missing"
        raise UnsupportedMediaType(f"must be {JSON_MEDIA_TYPE} for a request with a body, {sent}; the API reads "
                                   "only JSON bodies", field="header.Content-Type")
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(f"must be {JSON_MEDIA_TYPE} in UTF-8 (charset=utf-8 or no charset), not "
                                   f"charset={charset}", field="header.Content-Type")


class SmileloopParser(Parser):
    """Query strings refusing text with a NUL character by its parameter, as InputSchema does in bodies (a search
    for it was a 500 on PostgreSQL); a body that is not JSON says why (ninja's own 400 said only that it could not
    be parsed, and named no field), and one not sent as JSON is a 415 naming the Content-Type header."""

    def parse_body(self, request: HttpRequest) -> dict:
        content_type_check(request)
        try:
            return super().parse_body(request)
        except UnicodeDecodeError as exc:
            raise BodyNotJson(f"is not UTF-8 text (byte {exc.start})") from exc
        except ValueError as exc:
            raise BodyNotJson(f"is not valid JSON ({exc})") from exc
        except RecursionError as exc:  # json's decoder recurses per level: a 500 on a no-body endpoint, else no reason
            raise BodyNotJson("is nested too deeply to read (arrays or objects inside one another)") from exc

    def parse_querydict(self, data, list_fields: list[str], request: HttpRequest) -> dict:
        result = super().parse_querydict(data, list_fields, request)
        errors = [{"loc": ("query", name), "msg": _NUL_MESSAGE, "type": "nul_character"}
                  for name, value in result.items() if _has_nul(value)]
        if errors:
            raise ValidationError(errors)
        return result


class SmileloopAPI(NinjaAPI):
    """NinjaAPI whose errors all use the one shape above (and keep the rejected value of each field)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("parser", SmileloopParser())
        super().__init__(*args, **kwargs)
        self.add_exception_handler(ValidationError, partial(_on_validation_error, api=self))
        self.add_exception_handler(DomainError, partial(_on_domain_error, api=self))
        self.add_exception_handler(Http404, partial(_on_404, api=self))
        self.add_exception_handler(AuthenticationError, partial(_on_unauthenticated, api=self))
        self.add_exception_handler(HttpError, partial(_on_http_error, api=self))
        self.add_exception_handler(OperationalError, partial(_on_operational_error, api=self))
        self.add_exception_handler(Exception, partial(_on_unexpected_error, api=self))
        self.add_decorator(_no_body_expected, mode="operation")

    def validation_error_from_error_contexts(self, error_contexts: list[ValidationErrorContext]) -> ValidationError:
        errors = []
        for context in error_contexts:
            model = context.model
            for item in context.pydantic_validation_error.errors(include_url=False):
                loc = (model.__ninja_param_source__,) + model.__ninja_flatten_map_reverse__.get(item["loc"], item["loc"])
                value = None if item.get("type") == "missing" else _scalar(item.get("input"))
                errors.append({"loc": loc, "msg": item["msg"], "type": item["type"], "value": value})
        return ValidationError(errors)

    @property
    def urls(self):
        """The API's URL patterns, each answering a method its route does not take with the error shape."""
        patterns, app_name, namespace = super().urls
        for pattern in patterns:
            if isinstance(pattern, URLPattern):
                pattern.callback = _method_not_allowed_as_json(pattern.callback, api=self)
        return patterns, app_name, namespace

    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: dict | None = None):
        """ninja's document, with every parameter marked by `documented_required` documented as required, and the
        415 of a write whose body is not sent as JSON (content_type_check)."""
        document = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        for path_item in document["paths"].values():
            for method, operation in path_item.items():
                for parameter in operation.get("parameters", []):
                    if parameter.get("schema", {}).pop(REQUIRED_IN_DOCUMENT, False):
                        parameter["required"] = True
                responses = operation.get("responses", {})
                if method.upper() in _WRITE_METHODS and 422 in responses:
                    responses.setdefault(415, {**responses[422], "description": "Unsupported Media Type: a body "
                                                                                "is sent as application/json"})
        return document


# The mark (a JSON-schema key) of a parameter that the parser takes as optional, so that its view answers a missing
# value with an error of its own (a write without an Idempotency-Key is a 400 naming the header, not a generic 422),
# but that the protocol requires: SmileloopAPI.get_openapi_schema removes the mark and documents it `required: true`.
REQUIRED_IN_DOCUMENT = "x-smileloop-required"


def documented_required(schema: dict) -> WithJsonSchema:
    """Annotate an optional parameter with the JSON schema the document shows for it, as a required parameter."""
    return WithJsonSchema({**schema, REQUIRED_IN_DOCUMENT: True})


def _allowed(response: HttpResponseNotAllowed) -> list[str]:
    return sorted(m.strip() for m in response.get("Allow", "").split(",") if m.strip())


def _method_not_allowed_as_json(view, *, api: NinjaAPI):
    """ninja answers a method the route does not take (DELETE /api/orders) with a plain-text 405: give it the error
    shape, naming the allowed methods, and keep its `Allow` header. HEAD on a read is that read without its body
    (HTTP requires it of every server; ninja answered a 405, so a monitor's HEAD check of an endpoint failed)."""

    def head_as_get(request: HttpRequest, response, args, kwargs):
        if request.method != "HEAD" or not isinstance(response, HttpResponseNotAllowed) or \
                "GET" not in _allowed(response):
            return response
        request.method = "GET"
        try:
            response = view(request, *args, **kwargs)
        finally:
            request.method = "HEAD"
        if not response.streaming:
            response["Content-Length"] = str(len(response.content))
            response.content = b""
        return response

    def as_json(request: HttpRequest, response):
        if not isinstance(response, HttpResponseNotAllowed):
            return response
        allowed = _allowed(response)
        body = error_body("method_not_allowed", f"{request.method} is not allowed on {request.path}; allowed: "
                                                f"{', '.join(allowed) or 'none'}")
        out = api.create_response(request, body, status=405)
        out["Allow"] = ", ".join(allowed)
        return out

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        return as_json(request, head_as_get(request, view(request, *args, **kwargs), args, kwargs))
    return wrapper


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
    if isinstance(exc.__cause__, DomainError):  # raised while the body was read (UnsupportedMediaType)
        return _on_domain_error(request, exc.__cause__, api)
    if isinstance(exc.__cause__, BodyNotJson):
        reason = str(exc.__cause__)
        body = error_body(code, f"body: {reason}; send one JSON object with Content-Type: application/json",
                          [{"field": "body", "message": reason}])
        return api.create_response(request, body, status=exc.status_code)
    response = api.create_response(request, error_body(code, str(exc)), status=exc.status_code)
    if getattr(exc, "wait", None):  # ninja's Throttled (a 429): when to come back, in whole seconds (RFC 9110)
        response["Retry-After"] = str(int(-(-exc.wait // 1)))
    return response


def _takes_body(view) -> bool:
    """Whether an endpoint function reads a JSON body: Smileloop binds every body schema to `payload`."""
    return any(_is_param_name(name) or (inspect.isclass(param.annotation) and issubclass(param.annotation, BaseModel))
               for name, param in inspect.signature(view).parameters.items())


def _no_body_expected(view):
    """An endpoint that takes no body (family/leave, a revoke, a DELETE) refuses one that carries fields, as a body
    schema refuses an unknown field: a client sending `{"reason": "…"}` there believes it was recorded. No body,
    `{}` or `null` is fine; a body not sent as JSON is the 415 every endpoint answers."""
    if _takes_body(view):
        return view

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if request.method in _WRITE_METHODS and _has_body(request):
            content_type_check(request)
            try:
                data = SmileloopParser().parse_body(request)
            except BodyNotJson as exc:
                raise ValidationFailed([FieldError("body", f"{exc}; this endpoint takes no body: send none")]) \
                    from None
            if isinstance(data, dict) and data:
                raise ValidationFailed([FieldError(f"body.{key}", "is not a field of this endpoint: it takes no body",
                                                   _scalar(value)) for key, value in data.items()])
            if data not in ({}, None):
                raise ValidationFailed([FieldError("body", "this endpoint takes no body: send none, or {}")])
        return view(request, *args, **kwargs)
    return wrapper


# --- input types ---------------------------------------------------------------------------------------

class InputSchema(Schema):
    """The base of every request body schema (and of the objects nested in one). A body is refused, with a 422 that
    names each wrong field at its path and all of them at once, when:

    - it is not a JSON object: ninja's Schema reads its fields from any object's attributes, so a JSON array, null,
      string or number would validate as `{}` (every field at its default);
    - it has a field the schema does not (`extra="forbid"`, documented as `additionalProperties: false`): a
      misspelt `moblie` was dropped and the write went ahead without the phone. The error lists the fields taken
      there and the likely one meant;
    - a field has another JSON type than its own (`core.api_body`): pydantic's lax mode read "5000" as an
      integer, true as 1 and "yes" as true, so a client's wrong types passed unnoticed. Query and path parameters
      are text and never InputSchemas: they keep reading digits."""

    model_config = ConfigDict(from_attributes=True, extra="forbid")

    @model_validator(mode="wrap")
    @classmethod
    def _run_root_validator(cls, value: Any, handler, info: ValidationInfo) -> Any:
        # Replaces ninja's root validator of the same name: with extra="forbid" it validates every object twice to
        # wrap it in a getter for model attributes (twice more for each level of nesting); a JSON object needs none.
        if isinstance(value, cls):
            return handler(value)
        if not isinstance(value, dict):
            raise PydanticCustomError("model_type", "must be a JSON object")
        errors = body_errors(cls, value)
        if not errors:
            return handler(value)
        try:
            handler(value)
        except PydanticValidationError as exc:  # the other fields' errors too, but one error per field
            mine = [error["loc"] for error in errors]
            errors += [InitErrorDetails(type=PydanticCustomError(e["type"], e["msg"]), loc=e["loc"], input=e["input"])
                       for e in exc.errors(include_url=False)
                       if not any(e["loc"][:len(loc)] == loc for loc in mine)]
        order = {name: index for index, name in enumerate(cls.model_fields)}  # the object's own errors first, then
        errors.sort(key=lambda e: order.get(e["loc"][0], len(order)) if e["loc"] else -1)  # by field, unknown last
        raise PydanticValidationError.from_exception_data(cls.__name__, errors)

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        """Text with a NUL character is refused by its field: PostgreSQL cannot store one in a text column (a 500
        on the write, or on a later search), and no real name, note or code contains it. Objects nested in a list
        are InputSchemas that check their own fields (so the error names the innermost field)."""
        if _has_nul(value):
            raise PydanticCustomError("nul_character", _NUL_MESSAGE)
        if _has_lone_surrogate(value):
            raise PydanticCustomError("surrogate_character", _SURROGATE_MESSAGE)
        return value


def input_errors(title: str, errors: list[tuple[str, str, Any]]) -> PydanticValidationError:
    """A body schema's own check failing on named fields, [(field, message, value)], raised from its validator:
    each error is reported at its field's path (`body.whole`), as a type error would be."""
    return PydanticValidationError.from_exception_data(title, [
        InitErrorDetails(type=PydanticCustomError("invalid_choice", message), loc=(field,), input=value)
        for field, message, value in errors])


Id = Annotated[int, Field(ge=1, le=BIGINT_MAX, description="An id (1 … 2**63 − 1)")]
BigInt = Annotated[int, Field(ge=-BIGINT_MAX - 1, le=BIGINT_MAX)]
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET)]


def _whole_number(value: Any) -> Any:
    """Money, points and quantities are whole numbers. pydantic would take 5000.0 and true as 5000 and 1: a client
    that computes money in floating point is told so instead. Digit strings pass here, as query parameters are text;
    in a body, InputSchema refuses them first (a JSON integer, not "5000")."""
    if isinstance(value, bool | float):
        raise PydanticCustomError("int_type", "must be a whole number (a JSON integer), not {value}",
                                  {"value": value})
    return value


WholeNumber = BeforeValidator(_whole_number)
Fen = Annotated[int, Field(ge=0, le=MAX_FEN, description="Integer fen (1 yuan = 100 fen)"), WholeNumber]
PositiveFen = Annotated[int, Field(gt=0, le=MAX_FEN, description="Integer fen (1 yuan = 100 fen)"), WholeNumber]
Points = Annotated[int, Field(ge=0, le=MAX_POINTS), WholeNumber]


def _id_or_code(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        out_of_range = not 1 <= value <= BIGINT_MAX
    else:  # digits (full-width ones too) beyond any key would overflow the id look-up on SQLite
        text = unicodedata.normalize("NFKC", value).strip() if isinstance(value, str) else ""
        out_of_range = text.isascii() and text.isdigit() and int(text) > BIGINT_MAX
    if out_of_range:
        raise PydanticCustomError("id_or_code", "must be an id (1 … 2**63 − 1) or a code")
    return value


# A row named by id or by code / username: the text is resolved with core.bounds.pk_from_text. The id's range is
# documented too (it was `integer` alone, so a client reading the document could send 0 and be refused).
IdOrCode = Annotated[Annotated[int, Field(ge=1, le=BIGINT_MAX)] | str, BeforeValidator(_id_or_code)]

_NUMBER = re.compile(r"\s*[+-]?\d+(\.\d*)?\s*")


def _iso_only(kind: str, example: str):
    def check(value: Any) -> Any:
        if isinstance(value, (dt.date, dt.datetime)):
            return value
        if not isinstance(value, str) or _NUMBER.fullmatch(value):
            # pydantic reads numbers (and digit strings) as Unix timestamps: 12345 would be 1970-01-01T03:25:45Z.
            raise PydanticCustomError("iso_8601", "must be an ISO 8601 {kind} string, e.g. {example}",
                                      {"kind": kind, "example": example})
        if kind == "date" and not _PLAIN_DATE.fullmatch(value):
            # pydantic reads a midnight date-time as its date, whatever its offset: "2025-06-15T00:00:00+14:00" is
            # the 14th in Shanghai, and the same instant at 00:00:01 was refused. A date is a date.
            raise PydanticCustomError("iso_8601", "must be an ISO 8601 {kind} string, e.g. {example}",
                                      {"kind": kind, "example": example})
        return value
    return BeforeValidator(check)


_PLAIN_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


# Years an input date may have. Outside them a date is a typo or a placeholder (0001-01-01, 9999-12-31), and it
# broke things: year 1 or 9999 with an offset overflows Python's datetime when converted (a 500), PostgreSQL stored
# "0001-12-31 BC" that no later read could turn back into a datetime, and before 1901 Asia/Shanghai is local mean
# time (+08:05:43). The domain's own bounds (no order in the future, …) are the services'.
EARLIEST_INPUT_YEAR, LATEST_INPUT_YEAR = 1901, 2099


def _within_years(value: dt.date) -> dt.date:
    if not EARLIEST_INPUT_YEAR <= value.year <= LATEST_INPUT_YEAR:
        raise PydanticCustomError("date_range", "must be between {low}-01-01 and {high}-12-31",
                                  {"low": EARLIEST_INPUT_YEAR, "high": LATEST_INPUT_YEAR})
    return value


IsoDateTime = Annotated[dt.datetime, _iso_only("date-time", "2025-03-01T09:30:00+08:00"),
                        AfterValidator(_within_years)]
IsoDate = Annotated[dt.date, _iso_only("date", "2025-03-01"), AfterValidator(_within_years)]


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


def local_time(value: dt.datetime | None) -> dt.datetime | None:
    """A stored (UTC) time as the API gives every time: local, with its offset (2026-03-01T09:30:00+08:00)."""
    return timezone.localtime(value) if value else None


def render(schema: type[Schema], data: Any) -> dict:
    """Validate `data` (a dict or an object) against an output schema and return plain JSON types, ready
    to be stored (idempotency) and replayed byte for byte."""
    return schema.model_validate(data).model_dump(mode="json")


def _on_operational_error(request: HttpRequest, exc: OperationalError, api: NinjaAPI) -> HttpResponse:
    """A busy database (another writer held the lock too long, a deadlock) is a 503 the client may retry, with the
    same Idempotency-Key: the transaction was rolled back, the key was not used. Anything else stays a 500."""
    if not database_busy(exc):
        return _on_unexpected_error(request, exc, api)
    database_busy_log(request, exc)
    body = error_body("busy", "The database is busy with another write (an import, a nightly job); nothing was "
                              f"written. Retry in {BUSY_RETRY_AFTER_SECONDS} seconds with the same Idempotency-Key.")
    response = api.create_response(request, body, status=503)
    response["Retry-After"] = str(BUSY_RETRY_AFTER_SECONDS)
    return response


def _on_unexpected_error(request: HttpRequest, exc: Exception, api: NinjaAPI) -> HttpResponse:
    """A fault (a bug, a lost database) is a 500 in the API's own JSON shape, not Django's HTML error page a client
    cannot parse. It is logged and signalled as Django does for any uncaught exception (error reporting, and the
    test client re-raising it). A request Django calls suspicious (a body over DATA_UPLOAD_MAX_MEMORY_SIZE, read by
    the API's parser) stays the 400 Django would answer."""
    if isinstance(exc, SuspiciousOperation):
        return api.create_response(request, error_body("bad_request", f"The request was refused: {exc}"), status=400)
    logging.getLogger("django.request").error("Internal Server Error: %s", request.path, exc_info=exc,
                                              extra={"status_code": 500, "request": request})
    got_request_exception.send(sender=None, request=request)
    body = error_body("server_error", "An internal error stopped this request; it was logged. A write's transaction "
                                      "was rolled back: retry it later with the same Idempotency-Key.")
    return api.create_response(request, body, status=500)
