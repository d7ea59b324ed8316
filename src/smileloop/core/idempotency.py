"""Idempotency-Key handling for API writes: a retried write returns the first answer and changes nothing.

Protocol (per user and key, stored in core.models.IdempotencyRecord):

- The request's fingerprint is the SHA-256 of method, path, sorted query string and canonical JSON body (a staff
  page's form: its fields, without the CSRF token, `form_fingerprint`, passed as idempotent_call's `fingerprint`).
- A key seen before with the same fingerprint replays the stored status and body; with a different
  fingerprint it is a 409 `idempotency_key_reused`.
- A new key is *claimed* by inserting its record first (`INSERT … ON CONFLICT DO NOTHING RETURNING`,
  one statement that is both the look-up and the claim), inside the transaction that then runs the
  write and stores the response. The unique (user, key) constraint makes a concurrent duplicate wait
  for the first transaction; when it commits, the duplicate's insert does nothing, its transaction
  ends without a write, and it replays the stored answer. So there is never a double write.
- A stored refusal (below) rolls the whole transaction back, the claim with it, and is then recorded
  in a transaction of its own by a claim that carries the answer; if a concurrent duplicate claimed
  the key in between, that claim waits for it and the refused request replays the duplicate's stored
  answer instead. So the success path needs no savepoint, and what a client is told always equals
  what is stored.

What is stored: the write's own answer: every 2xx response, and the business refusals a service raises
(ValidationFailed 422, Conflict 409), which the same request would meet again. Not stored, so the key
stays free for a retry: malformed requests rejected before the write runs (ninja's 422, a missing key),
authentication (401), permission and scope refusals (403, 404: they depend on who asks and on what
exists yet) and 409 `race` (a transient clash between concurrent writers). Records are kept until a
clean-up job deletes old ones.
"""

import hashlib
import json
from collections.abc import Callable
from typing import Annotated

from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Header
from ninja.responses import NinjaJSONEncoder

from smileloop.core.api import documented_required, domain_error_body
from smileloop.core.errors import (
    Conflict,
    DomainError,
    FieldError,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from smileloop.core.models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
_TRANSIENT_CODES = frozenset({"race"})


class IdempotencyKeyRequired(DomainError):
    code = "idempotency_key_required"
    status = 400


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class _KeyTaken(Exception):
    """A record for this key exists (stored earlier, or by a concurrent transaction that committed first)."""


SERVICE_KEY_MAX = 150  # a service's own key: its rows' columns hold 200, less what derived ledger keys append


def service_key_check(key: str, *, field: str = "key") -> str:
    """A service's key, stripped, or a ValidationFailed naming `field` when it is empty or over SERVICE_KEY_MAX."""
    key = (key or "").strip()
    if not key or len(key) > SERVICE_KEY_MAX:
        raise ValidationFailed([FieldError(field, "an idempotency key of 1–150 characters is required", key)])
    return key


def service_key(user_id: int, key: str | None, *, limit: int = SERVICE_KEY_MAX) -> str:
    """The key an API hands its service, `api:<user>:<Idempotency-Key>`, within `limit` characters (the services'
    key columns hold 200, less what they append for the ledger moves they derive). A longer one keeps its head and a
    digest of the whole, so two keys stay two and a replay finds its first result: an Idempotency-Key of up to
    MAX_KEY_LENGTH is valid, and as given it overflowed a column (a 500 on PostgreSQL), was refused as a bad `key`
    the client never sent, or, cut short, made two requests one."""
    full = f"api:{user_id}:{(key or '').strip()}"
    if len(full) <= limit:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()
    return f"{full[:limit - len(digest) - 1]}:{digest}"


def _fingerprint(request: HttpRequest, body: bytes) -> str:
    query = "&".join(sorted(request.META.get("QUERY_STRING", "").split("&")))
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.path.encode(), query.encode(), body):
        digest.update(part)
        digest.update(b"\x00")
    return digest.hexdigest()


def _canonical_json(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def request_fingerprint(request: HttpRequest) -> str:
    try:
        body = _canonical_json(json.loads(request.body or b"null"))
    except (ValueError, UnicodeDecodeError):
        body = request.body
    return _fingerprint(request, body)


def form_fingerprint(request: HttpRequest, *, leave_out: tuple[str, ...] = ()) -> str:
    """A posted form's fingerprint, for idempotent_call: method, path, query string and its fields in a canonical
    order, without the CSRF token (masked anew on every page rendered) and the multipart boundary (new on every send),
    so the same form sent again is the same request and the same key with other data is not. `leave_out`: fields
    that do not change what the form writes (a confirmation the page asks for after a first send)."""
    fields = {name: request.POST.getlist(name) for name in request.POST
              if name != "csrfmiddlewaretoken" and name not in leave_out}
    return _fingerprint(request, _canonical_json(fields))


def _is_stored(exc: DomainError) -> bool:
    if isinstance(exc, (NotFound, PermissionDenied, IdempotencyKeyRequired)):
        return False
    return 400 <= exc.status < 500 and exc.code not in _TRANSIENT_CODES


def _key_clean(key: str | None) -> str:
    key = (key or "").strip()
    if not key:
        raise IdempotencyKeyRequired(f"The {HEADER} header is required on every write (a unique string per "
                                     "operation, e.g. a UUID; re-send it to retry safely)",
                                     field=f"header.{HEADER}")
    if len(key) > MAX_KEY_LENGTH:
        raise IdempotencyKeyRequired(f"The {HEADER} header must be at most {MAX_KEY_LENGTH} characters",
                                     code="idempotency_key_invalid", field=f"header.{HEADER}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        # HTTP allows no control characters in a header value, and PostgreSQL stores no NUL (it was a 500 there)
        raise IdempotencyKeyRequired(f"The {HEADER} header must not contain control characters",
                                     code="idempotency_key_invalid", field=f"header.{HEADER}")
    return key


def _replay(*, user_id: int, key: str, fingerprint: str) -> tuple[int, dict] | None:
    record = IdempotencyRecord.objects.filter(user_id=user_id, key=key).first()
    if record is None:
        return None
    if record.request_hash != fingerprint:
        raise IdempotencyKeyReused(f"This {HEADER} was already used for a different request; use a new key",
                                   field=f"header.{HEADER}")
    return record.status_code, _stored_body(record.response)


def _stored(body: dict) -> str:
    """The answer as it is stored: its JSON text (a JSON string in the column). PostgreSQL's jsonb keeps no key order
    (it sorts an object's keys by length), so a stored object replayed its fields in another order than the first
    answer; the text keeps the first answer's order, and a replay is the same bytes."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _stored_body(response: str | dict) -> dict:
    """A stored answer back as the object it was (records stored before _stored are the object itself)."""
    return json.loads(response) if isinstance(response, str) else response


def _claim(*, user_id: int, key: str, operation: str, fingerprint: str, status: int = 0,
           body: dict | None = None) -> int | None:
    """Insert the key's record unless one exists; its id, or None when the key is taken. One statement
    (PostgreSQL and SQLite ≥ 3.35 both have ON CONFLICT … DO NOTHING RETURNING); a concurrent claim of
    the same key waits here until the other transaction ends. Without `status` the record is a claim
    whose answer _store writes later; with it, the record is complete at once."""
    qn = connection.ops.quote_name
    table = qn(IdempotencyRecord._meta.db_table)
    response = IdempotencyRecord._meta.get_field("response").get_db_prep_value(_stored(body or {}), connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({qn('user_id')}, {qn('key')}, {qn('operation')}, {qn('request_hash')}, "
            f"{qn('status_code')}, {qn('response')}, {qn('created_at')}) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            f"ON CONFLICT ({qn('user_id')}, {qn('key')}) DO NOTHING RETURNING {qn('id')}",
            [user_id, key, operation[:100], fingerprint, status, response, timezone.now()])
        row = cursor.fetchone()
    return row[0] if row else None


def _store(*, record_id: int, status: int, body: dict) -> None:
    qn = connection.ops.quote_name
    response = IdempotencyRecord._meta.get_field("response").get_db_prep_value(_stored(body), connection)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {qn(IdempotencyRecord._meta.db_table)} SET {qn('status_code')} = %s, "
                       f"{qn('response')} = %s WHERE {qn('id')} = %s", [status, response, record_id])


def idempotent_call(*, request: HttpRequest, user_id: int, key: str | None, operation: str,
                    run: Callable[[], tuple[int, dict]], fingerprint: str | None = None) -> tuple[int, dict, bool]:
    """Run `run()` (a write returning (status, JSON body)) at most once per (user, key).

    `fingerprint` is what makes two requests the same one: by default the request's (request_fingerprint); a caller
    whose request carries parts that differ on every send (a staff page's form: its CSRF token, its multipart
    boundary) passes its own (form_fingerprint). Returns (status, body, replayed). Errors that are not stored
    propagate with nothing written.
    """
    key = _key_clean(key)
    fingerprint = request_fingerprint(request) if fingerprint is None else fingerprint
    try:
        # One transaction (a savepoint when the caller has one open) and no savepoint inside it: whatever
        # fails in run() rolls the whole block back, claim included, so a write refused halfway through
        # leaves nothing behind (and the services it calls need no savepoints of their own).
        with transaction.atomic():
            record_id = _claim(user_id=user_id, key=key, operation=operation, fingerprint=fingerprint)
            if record_id is None:
                raise _KeyTaken
            status, body = run()
            _store(record_id=record_id, status=status, body=body)
            return status, body, False
    except _KeyTaken:
        return _replayed(user_id=user_id, key=key, fingerprint=fingerprint)
    except DomainError as exc:
        if not _is_stored(exc):
            raise
        refusal = exc
    # A refusal the same request would meet again: its write (if any) and the claim are rolled back; record
    # the answer under the key now, unless a concurrent duplicate took the key meanwhile (then replay its
    # answer: the client is never told anything but what the key stores).
    status, body = refusal.status, domain_error_body(request, refusal)
    record_id = _claim(user_id=user_id, key=key, operation=operation, fingerprint=fingerprint, status=status,
                       body=body)
    if record_id is None:
        return _replayed(user_id=user_id, key=key, fingerprint=fingerprint)
    return status, body, False


def _replayed(*, user_id: int, key: str, fingerprint: str) -> tuple[int, dict, bool]:
    stored = _replay(user_id=user_id, key=key, fingerprint=fingerprint)
    if stored is None:  # the other request failed and released the key: let the client retry
        raise Conflict(f"A request with this {HEADER} was being processed at the same time; retry", code="race")
    return (*stored, True)


# Required on every write, and documented so; parsed as optional so that a missing or empty key is the 400
# `idempotency_key_required` naming the header (from _key_clean), not ninja's generic 422.
IdempotencyKeyHeader = Annotated[
    str | None,
    documented_required({"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH}),
    Header(None, alias=HEADER,
           description="Required on every write: a unique string per operation (e.g. a UUID). A retry with the same "
                       "key and body replays the first answer; a different body is a 409."),
]


def idempotent_response(request: HttpRequest, response: HttpResponse, *, user_id: int, key: str | None,
                        operation: str, run: Callable[[], tuple[int, dict]]) -> HttpResponse:
    """idempotent_call for a ninja view; a replay carries the header `Idempotent-Replayed: true`.

    The body is already the validated, JSON-ready answer (the write rendered it through its schema to store
    it), so it is sent as is instead of letting ninja validate it against the schema a second time."""
    status, body, replayed = idempotent_call(request=request, user_id=user_id, key=key, operation=operation, run=run)
    out = HttpResponse(json.dumps(body, cls=NinjaJSONEncoder), status=status,
                       content_type="application/json; charset=utf-8")
    for header, value in response.items():
        out[header] = value
    if replayed:
        out["Idempotent-Replayed"] = "true"
    return out
