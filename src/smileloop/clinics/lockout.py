"""Refusing password and token guessing: failed staff logins are counted per username and per client address, invalid
API tokens per address, in Django's cache (Redis in production, so every gunicorn process counts together; a
process's memory otherwise). At a limit within settings.LOGIN_FAILURE_WINDOW_SECONDS, that username or address is
refused for settings.LOGIN_LOCKOUT_SECONDS, a right password or token included (or guessing would go on), and the
lockout is written to the audit log; every failure is logged.

Why not django-axes: it has one failure limit for every lockout parameter, and a clinic's PCs reach us through one
NAT address, so an address needs a higher limit than a username; it also insists on the request in every
authenticate() call. The counters here are a few cache keys with a lifetime: no table, no write on a good login.

A counter is a fixed window: the first failure starts it, the lockout (or the window's end) clears it. A lockout is a
key holding the time it ends. An IPv6 client is counted by its /64 network (one host is given a whole one).
"""

import hashlib
import ipaddress
import logging
import math
import time

from django.conf import settings
from django.core.cache import cache

from smileloop.core.audit import audit_record

logger = logging.getLogger("smileloop.security")

USERNAME, ADDRESS, TOKEN_ADDRESS = "login-user", "login-address", "token-address"


def _normal_username(username: str) -> str:
    # "Admin" and "admin " count as one: a guesser gains nothing by varying the case.
    return username.strip().casefold()


def _address_bucket(ip: str) -> str:
    address = ipaddress.ip_address(ip)
    if address.version == 4:
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.ip_network(f"{address}/64", strict=False))


def _key(kind: str, value: str) -> str:
    return f"lockout:{kind}:{hashlib.sha256(value.encode()).hexdigest()[:40]}"


def _subjects(*, username: str | None = None, ip: str | None = None, kind_of_ip: str = ADDRESS) -> list[tuple]:
    """(kind, value, limit) of each counter a request counts in."""
    subjects = []
    if username is not None and _normal_username(username):
        subjects.append((USERNAME, _normal_username(username), settings.LOGIN_FAILURE_LIMIT))
    if ip:
        limit = settings.API_TOKEN_FAILURE_LIMIT if kind_of_ip == TOKEN_ADDRESS else settings.LOGIN_IP_FAILURE_LIMIT
        subjects.append((kind_of_ip, _address_bucket(ip), limit))
    return subjects


def _wait(subjects: list[tuple]) -> int:
    """Whole seconds until the last of the subjects' lockouts ends; 0 when none is locked. One cache read."""
    if not subjects:
        return 0
    ends = cache.get_many([_key(kind, value) + ":lock" for kind, value, _limit in subjects]).values()
    now = time.time()
    return max((math.ceil(end - now) for end in ends if end > now), default=0)


def _fail(subjects: list[tuple], *, action: str, ip: str | None, username: str | None) -> int:
    """Count one failure for each subject; lock those that reached their limit. Returns _wait of the subjects."""
    for kind, value, limit in subjects:
        key = _key(kind, value)
        cache.add(key, 0, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS)
        try:
            failures = cache.incr(key)
        except ValueError:  # the window ended between the two calls: this failure opens the next one
            cache.add(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS)
            failures = 1
        if failures < limit:
            continue
        seconds = settings.LOGIN_LOCKOUT_SECONDS
        # add, not set: of two processes crossing the limit at once, one records the lockout.
        if cache.add(key + ":lock", time.time() + seconds, timeout=seconds):
            cache.delete(key)
            audit_record(actor=None, action=action, object_type=kind, object_id=value[:64], ip_address=ip,
                         reason=f"{failures} failures within {settings.LOGIN_FAILURE_WINDOW_SECONDS} s",
                         detail={"failures": failures, "lockout_seconds": seconds, "username": username or ""})
            logger.warning("%s: %s %r locked for %d s after %d failures (address %s)", action, kind, value, seconds,
                           failures, ip)
    return _wait(subjects)


def login_lockout_wait(*, username: str, ip: str | None) -> int:
    """Seconds until a login for `username` from `ip` is taken again; 0 now."""
    return _wait(_subjects(username=username, ip=ip))


def login_failure_record(*, username: str, ip: str | None) -> int:
    """A wrong password (or an unknown or inactive username): counted for the username and the address. Returns the
    lockout's seconds if this failure, or an earlier one, locked either."""
    logger.info("login failed for %r from %s", username, ip)
    return _fail(_subjects(username=username, ip=ip), action="login.lockout", ip=ip, username=username)


def login_success_record(*, username: str) -> None:
    """A right password: the username's failures so far are forgiven (the address's are not: one address may be
    guessing at many usernames and know one)."""
    if _normal_username(username):
        cache.delete(_key(USERNAME, _normal_username(username)))


def token_lockout_wait(*, ip: str | None) -> int:
    """Seconds until bearer tokens from `ip` are looked at again; 0 now."""
    return _wait(_subjects(ip=ip, kind_of_ip=TOKEN_ADDRESS))


def token_failure_record(*, ip: str | None) -> int:
    """An invalid, revoked or inactive staff member's bearer token from `ip`. Returns the lockout's seconds if it
    locked the address."""
    logger.info("invalid API token from %s", ip)
    return _fail(_subjects(ip=ip, kind_of_ip=TOKEN_ADDRESS), action="api_token.lockout", ip=ip, username=None)


def lockout_clear(*, username: str | None = None, ip: str | None = None) -> None:
    """Lift a lockout early and forget the failures (`smileloop login_unlock`): a locked-out colleague who proved who
    they are, or a clinic's address after a mistyped password spree."""
    keys = []
    for kind, value, _limit in _subjects(username=username, ip=ip) + _subjects(ip=ip, kind_of_ip=TOKEN_ADDRESS):
        keys += [_key(kind, value), _key(kind, value) + ":lock"]
    cache.delete_many(keys)
