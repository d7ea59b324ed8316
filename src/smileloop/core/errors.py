"""Typed errors with stable codes. Views and the API turn them into 4xx responses."""

import logging
import re
from dataclasses import dataclass, field


@dataclass
class FieldError:
    field: str
    message: str
    value: str | None = None

    def as_dict(self) -> dict:
        data = {"field": self.field, "message": str(self.message)}
        if self.value is not None:
            data["value"] = self.value
        return data


class DomainError(Exception):
    """Base of every business-rule error; `code` is stable and machine-readable."""

    code = "error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = str(message)
        if code:
            self.code = code
        self.field = field

    def as_dict(self) -> dict:
        data = {"code": self.code, "message": self.message}
        if self.field:
            data["errors"] = [{"field": self.field, "message": self.message}]
        return data


@dataclass
class ValidationFailed(DomainError):
    """Input was wrong in one or more fields; nothing was written."""

    errors: list[FieldError] = field(default_factory=list)

    def __post_init__(self):
        message = "; ".join(f"{e.field}: {e.message}" for e in self.errors) or "invalid input"
        DomainError.__init__(self, message, code="invalid")
        self.status = 422

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "errors": [e.as_dict() for e in self.errors]}


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Conflict(DomainError):
    code = "conflict"
    status = 409


class PermissionDenied(DomainError):
    code = "forbidden"
    status = 403


# SQLite: another connection holds the write lock past the busy timeout (a long import in the worker), or a
# shared-cache lock. PostgreSQL: a serialization failure, a deadlock, a lock_timeout. All transient: the
# transaction was rolled back, and the same request can succeed a moment later.
_BUSY_SQLITE = ("SQLITE_BUSY", "SQLITE_LOCKED")
_BUSY_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
BUSY_RETRY_AFTER_SECONDS = 5


def database_busy(exc: BaseException) -> bool:
    """Whether `exc` (a django.db OperationalError) means 'the database is busy, retry' rather than a fault."""
    cause = exc.__cause__ or exc
    if str(getattr(cause, "sqlite_errorname", "")).startswith(_BUSY_SQLITE):
        return True
    return getattr(cause, "sqlstate", None) in _BUSY_SQLSTATES


def database_busy_log(request, exc: BaseException) -> None:
    """Log what made a request a 503 (Django's own line says only "Service Unavailable: <path>"): the database's
    words and code, so an operator tells a deadlock (40P01) from a lock timeout (55P03) or a locked SQLite file."""
    cause = exc.__cause__ or exc
    code = getattr(cause, "sqlstate", None) or getattr(cause, "sqlite_errorname", None) or "?"
    said = (str(exc).strip().splitlines() or [""])[0]
    logging.getLogger("smileloop.database").warning("Database busy, answered 503: %s %s (%s: %s)", request.method,
                                                    request.path, code, said)


_CONSTRAINT = re.compile(r'constraint "([^"]+)"|constraint failed: ([^\n]+)')


def unique_clash_name(exc: Exception) -> str:
    """What a unique clash was about, by the constraint's name (PostgreSQL) or its columns (SQLite), never the
    database's full text: that quotes the clashing values (a patient's phone) to whoever reads the message."""
    found = _CONSTRAINT.search(str(exc))
    return (found.group(1) or found.group(2)).strip() if found else "unique constraint"
