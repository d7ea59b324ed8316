"""API plumbing owned by clinics: bearer-token auth, the caller's Scope, and resolving the clinics and
staff that a request names (by id or code / username) within what the caller may touch."""

import dataclasses
import threading
import time

from django.http import HttpRequest
from ninja.errors import HttpError, Throttled
from ninja.security import HttpBearer

from smileloop.clinics.lockout import token_failure_record, token_lockout_wait
from smileloop.clinics.models import ApiToken, Clinic, Staff
from smileloop.clinics.selectors import (
    clinic_list,
    scope_for_staff,
    staff_list,
    token_authenticate,
    token_staff_check,
    token_touch,
)
from smileloop.clinics.web import client_ip
from smileloop.core.bounds import row_named
from smileloop.core.errors import FieldError, PermissionDenied, ValidationFailed
from smileloop.core.scoping import Scope

# Per process: token hash → (loaded at, staff, scope, last_used_at touched at, live fingerprint). Revocation,
# deactivation, a role change and any change of the staff member's clinics take effect on the very next
# request: token_staff_check runs on every request and its answer must equal the cached one.
_SCOPE_TTL = 30.0
_TOUCH_EVERY = 60.0
_scope_cache: dict[str, tuple[float, Staff, Scope, float, tuple]] = {}
_scope_lock = threading.Lock()


class TokenThrottled(Throttled):
    """429 `throttled` (core.api's error shape) with Retry-After: too many invalid tokens came from the address."""

    def __init__(self, wait: int) -> None:
        HttpError.__init__(self, 429, f"Too many requests with an invalid API token from this address: tokens from it "
                                      f"are refused for {wait} seconds")
        self.wait = wait


class TokenAuth(HttpBearer):
    """`Authorization: Bearer <token>`; sets request.staff and request.scope. None → ninja answers 401.

    Invalid tokens are counted per client address (clinics.lockout); past settings.API_TOKEN_FAILURE_LIMIT the address
    gets 429s for a while, a valid token included unless this process already knows it (a token known valid is no
    guess, and the check would cost a cache read on every request of an integration)."""

    def authenticate(self, request: HttpRequest, token: str) -> Staff | None:
        key = token.strip()
        if not key:
            return None
        key_hash = ApiToken.hash_key(key)
        cached = _scope_cache.get(key_hash)
        if cached is None:
            wait = token_lockout_wait(ip=client_ip(request))
            if wait:
                raise TokenThrottled(wait)
        live = token_staff_check(key_hash)
        now = time.monotonic()
        if live is None:
            if cached is not None:
                _scope_cache.pop(key_hash, None)
            wait = token_failure_record(ip=client_ip(request))
            if wait:
                raise TokenThrottled(wait)
            return None
        if cached is not None and now - cached[0] < _SCOPE_TTL and cached[4] == live:
            _, staff, scope, touched, _live = cached
            if now - touched > _TOUCH_EVERY:
                token_touch(key_hash)
                _scope_cache[key_hash] = (cached[0], staff, scope, now, live)
        else:
            staff = token_authenticate(key)  # also records last_used_at
            if staff is None:
                return None
            scope = scope_for_staff(staff)
            with _scope_lock:
                if len(_scope_cache) > 1000:
                    _scope_cache.clear()
                _scope_cache[key_hash] = (now, staff, scope, now, live)
        request.staff = staff
        request.scope = scope
        return staff


def request_scope(request: HttpRequest) -> Scope:
    return request.scope


def permission_require(scope: Scope, permission: str) -> None:
    if not scope.can(permission):
        raise PermissionDenied(f"Your role ({scope.role or 'none'}) lacks the permission {permission!r}")


def _chain_wide(scope: Scope) -> Scope:
    return dataclasses.replace(scope, clinic_ids=None)


def _clinic_in_scope(*, scope: Scope, value: int | str, field: str, refusal: str) -> Clinic:
    # Named among the chain's clinics first, then checked against the caller's: resolved among their own alone, a
    # code of a clinic outside them that is also the id of one of theirs named their own.
    clinic = row_named(clinic_list(_chain_wide(scope)), value, ("code",))
    if clinic is None:
        raise ValidationFailed([FieldError(field, "is not an active clinic of this chain (use its id or code)",
                                           str(value))])
    if not scope.allows_clinic(clinic.pk):
        raise PermissionDenied(f"Clinic {value!r} is not one of your clinics; {refusal}", field=field)
    return clinic


def clinic_for_write(*, scope: Scope, value: int | str, field: str = "clinic") -> Clinic:
    """The clinic named by id or code, if the caller may write to it.

    Unknown in the chain → ValidationFailed on `field`; a clinic of the chain outside the caller's
    clinics → PermissionDenied (the caller knows the clinic exists: it is their own chain's).
    """
    return _clinic_in_scope(scope=scope, value=value, field=field, refusal="you may not write to it")


def clinic_for_filter(*, scope: Scope, value: int | str, field: str = "clinic") -> Clinic:
    """Like clinic_for_write, for read filters: the same checks (and the same 403 for a clinic of the chain
    outside the caller's clinics), so a filter never widens the scope."""
    return _clinic_in_scope(scope=scope, value=value, field=field, refusal="you may not see its data")


def staff_for_input(*, scope: Scope, value: int | str | None, field: str) -> Staff | None:
    """A staff member of the caller's chain named by id or username (a doctor may work at any clinic)."""
    if value is None or str(value).strip() == "":
        return None
    staff = row_named(staff_list(_chain_wide(scope)), value, ("user__username",))
    if staff is None:
        raise ValidationFailed([FieldError(field, "is not an active staff member of this chain (use id or username)",
                                           str(value))])
    return staff
