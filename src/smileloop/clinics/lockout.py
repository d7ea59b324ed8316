"""Refusing password and token guessing: failed staff logins are counted per username and per client address, invalid
API tokens per address, in Django's cache (Redis in production, so every gunicorn process counts together; a
process's memory otherwise). At a limit within settings.LOGIN_FAILURE_WINDOW_SECONDS, that username or address is
refused for settings.LOGIN_LOCKOUT_SECONDS, a right password or token included (or guessing would go on), and the
lockout is written to the audit log; every failure is logged.

Why not django-axes: it has one failure limit for every lockout parameter, and a clinic's PCs reach us through one
NAT address, so an address needs a higher limit than a username; it also insists on the request in every
authenticate() call. The counters here are a few cache keys with a lifetime: no table, no write on a good login.

A browser a staff member has logged in from before is trusted for that username (a signed cookie, kept
settings.LOGIN_TRUSTED_DEVICE_DAYS): its failures count for that browser and username, not for the username, and the
username's lockout does not apply to it. Otherwise anyone could lock a known colleague out of the desk PC they use with
five wrong passwords from anywhere (the username's lock refuses the right password too). The address's counter applies
to every browser.

A counter is a fixed window: the first failure starts it, the lockout (or the window's end) clears it. A lockout is a
key holding the time it ends. An IPv6 client is counted by its /64 network (one host is given a whole one).

When the cache is down, logins and tokens keep working without the lockout (it fails open): a front desk that cannot
log in because Redis restarted stops a clinic, while guessing for the minutes Redis is away gains little (passwords
are hashed slowly, tokens are long). It is not quiet: the first failure, then one line a minute while it lasts, is
logged at ERROR on `smileloop.security` with how many checks were skipped, and its return at WARNING. After a
failure the cache is left alone for CACHE_RETRY_SECONDS (a Redis that does not answer would otherwise cost every login
its connect timeout; the settings bound that timeout too). `lockout_clear` (the `login_unlock` command) still fails
loudly: the operator must know the lockout was not lifted.
"""

import hashlib
import ipaddress
import logging
import math
import secrets
import time

from django.conf import settings
from django.core import signing
from django.core.cache import cache

from smileloop.core.audit import audit_record

try:
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover (redis is a dependency; another cache backend raises OSError)
    RedisError = OSError

logger = logging.getLogger("smileloop.security")

CACHE_RETRY_SECONDS = 5  # after a cache failure, how long logins skip the lockout before the cache is tried again
CACHE_DOWN_LOG_SECONDS = 60  # at most one ERROR line per this many seconds while the cache stays down
# What a cache that is down raises: redis-py's errors (connection refused, timeout), sockets' on other backends.
CACHE_DOWN = (RedisError, OSError)


class _CacheHealth:
    """This process's view of the cache: when it failed, when to try it again, what was skipped since the last log."""

    def __init__(self):
        self.retry_at = 0.0
        self.logged_at: float | None = None  # None: the cache is up (as far as we know)
        self.skipped = 0

    def available(self) -> bool:
        if time.monotonic() >= self.retry_at:
            return True
        self.skipped += 1
        return False

    def failed(self, exc: Exception, operation: str) -> None:
        now = time.monotonic()
        self.retry_at = now + CACHE_RETRY_SECONDS
        self.skipped += 1
        if self.logged_at is None or now - self.logged_at >= CACHE_DOWN_LOG_SECONDS:
            logger.error("login lockout SKIPPED: the cache is down (%s in %s: %s); logins and API tokens are taken "
                         "without failure counting, %d check(s) skipped since the last report", type(exc).__name__,
                         operation, exc, self.skipped)
            self.logged_at, self.skipped = now, 0

    def succeeded(self) -> None:
        if self.logged_at is not None:
            logger.warning("login lockout resumed: the cache answers again (%d check(s) skipped since the last "
                           "report)", self.skipped)
            self.logged_at, self.skipped = None, 0


_health = _CacheHealth()


def _guarded(operation: str, run, down):
    """`run()`, or `down` when the cache is down (logged by _CacheHealth): the lockout fails open."""
    if not _health.available():
        return down
    try:
        result = run()
    except CACHE_DOWN as exc:
        _health.failed(exc, operation)
        return down
    _health.succeeded()
    return result

USERNAME, ADDRESS, TOKEN_ADDRESS, DEVICE = "login-user", "login-address", "token-address", "login-device"
UNLOCKED = "login-unlocked"  # a username's last `login_unlock` (_device_value)


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


def _subjects(*, username: str | None = None, ip: str | None = None, kind_of_ip: str = ADDRESS,
              device: str | None = None) -> list[tuple]:
    """(kind, value, limit) of each counter a request counts in: a trusted browser (`device`) counts for itself and
    the username instead of for the username."""
    subjects = []
    if username is not None and _normal_username(username):
        if device:
            subjects.append((DEVICE, _device_value(device, username), settings.LOGIN_FAILURE_LIMIT))
        else:
            subjects.append((USERNAME, _normal_username(username), settings.LOGIN_FAILURE_LIMIT))
    if ip:
        limit = settings.API_TOKEN_FAILURE_LIMIT if kind_of_ip == TOKEN_ADDRESS else settings.LOGIN_IP_FAILURE_LIMIT
        subjects.append((kind_of_ip, _address_bucket(ip), limit))
    return subjects


def _device_value(device: str, username: str) -> str:
    """A trusted browser's counter for a username. `login_unlock` cannot name the browsers (their ids are in their
    cookies alone), so it leaves a mark for the username (UNLOCKED) that is part of every browser's counter from
    then on: their failures and lockouts before it are forgotten. Without it, a colleague locked out at their own
    desk PC stayed locked whatever the administrator unlocked. One cache read, for a trusted browser only."""
    name = _normal_username(username)
    mark = cache.get(_key(UNLOCKED, name))
    return f"{device}:{mark}:{name}" if mark else f"{device}:{name}"


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
            shown = value if kind != USERNAME or username is not None else UNKNOWN_USERNAME
            audit_record(actor=None, action=action, object_type=kind, object_id=shown[:64], ip_address=ip,
                         reason=f"{failures} failures within {settings.LOGIN_FAILURE_WINDOW_SECONDS} s",
                         detail={"failures": failures, "lockout_seconds": seconds, "username": username or ""})
            logger.warning("%s: %s %r locked for %d s after %d failures (address %s)", action, kind, shown, seconds,
                           failures, ip)
    return _wait(subjects)


def login_lockout_wait(*, username: str, ip: str | None, device: str | None = None) -> int:
    """Seconds until a login for `username` from `ip` (from the trusted browser `device`) is taken again; 0 now (and
    while the cache is down)."""
    return _guarded("login_lockout_wait", lambda: _wait(_subjects(username=username, ip=ip, device=device)), 0)


def login_failure_record(*, username: str, ip: str | None, device: str | None = None) -> int:
    """A wrong password (or an unknown or inactive username): counted for the username (for a trusted browser: for it
    and the username) and the address. Returns the lockout's seconds if this failure, or an earlier one, locked
    either."""
    # A username no login has is not written down: it is often a password typed into the wrong box.
    shown = username if _is_login(username) else None
    logger.info("login failed for %r from %s", shown or UNKNOWN_USERNAME, ip)
    return _guarded("login_failure_record", lambda: _fail(_subjects(username=username, ip=ip, device=device),
                                                          action="login.lockout", ip=ip, username=shown), 0)


UNKNOWN_USERNAME = "(a username no login has)"


def _is_login(username: str) -> bool:
    from django.contrib.auth import get_user_model

    return get_user_model()._default_manager.filter(username__iexact=username.strip()).exists()


def login_success_record(*, username: str, device: str | None = None) -> None:
    """A right password: the username's (or this browser's) failures so far are forgiven (the address's are not: one
    address may be guessing at many usernames and know one)."""
    if _normal_username(username):
        def forgive():
            kind, value = (DEVICE, _device_value(device, username)) if device else (
                USERNAME, _normal_username(username))
            cache.delete(_key(kind, value))

        _guarded("login_success_record", forgive, None)


# --- trusted browsers --------------------------------------------------------------------------------------------

_DEVICE_SALT = "smileloop.clinics.lockout.device"
_DEVICE_USERNAMES_KEPT = 20  # a shared desk PC: the last twenty staff who logged in from it


def _device_cookie_name() -> str:
    # Over HTTPS under the __Host- prefix, as the session's (config/settings/prod.py).
    return "__Host-sl_device" if settings.SESSION_COOKIE_SECURE else "sl_device"


def _username_mark(username: str) -> str:
    # The cookie is signed, not encrypted: it names the usernames by a keyed hash, not in clear.
    return signing.salted_hmac(_DEVICE_SALT, _normal_username(username)).hexdigest()[:24]


def _device_data(request) -> dict | None:
    raw = request.COOKIES.get(_device_cookie_name())
    if not raw or not settings.LOGIN_TRUSTED_DEVICE_DAYS:
        return None
    try:
        data = signing.loads(raw, salt=_DEVICE_SALT, max_age=settings.LOGIN_TRUSTED_DEVICE_DAYS * 86400)
    except signing.BadSignature:
        return None
    if not (isinstance(data, dict) and isinstance(data.get("d"), str) and isinstance(data.get("u"), list)):
        return None
    return data


def trusted_device(request, username: str) -> str | None:
    """This browser's id when `username` has logged in from it before (the lockout then counts it apart), else None."""
    data = _device_data(request)
    if data is None or _username_mark(username) not in data["u"]:
        return None
    return data["d"]


class TrustedDeviceMiddleware:
    """After a login with the right password (clinics.auth marks the request), the browser is remembered as one this
    username logs in from: a signed, HTTP-only cookie with the browser's id and the last usernames' marks."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        username = getattr(request, "login_device_trust", None)
        if username and settings.LOGIN_TRUSTED_DEVICE_DAYS:
            data = _device_data(request) or {"d": secrets.token_urlsafe(16), "u": []}
            mark = _username_mark(username)
            marks = [m for m in data["u"] if m != mark] + [mark]
            value = signing.dumps({"d": data["d"], "u": marks[-_DEVICE_USERNAMES_KEPT:]}, salt=_DEVICE_SALT)
            response.set_cookie(_device_cookie_name(), value, max_age=settings.LOGIN_TRUSTED_DEVICE_DAYS * 86400,
                                secure=settings.SESSION_COOKIE_SECURE, httponly=True, samesite="Lax")
        return response


def token_lockout_wait(*, ip: str | None) -> int:
    """Seconds until bearer tokens from `ip` are looked at again; 0 now (and while the cache is down)."""
    subjects = _subjects(ip=ip, kind_of_ip=TOKEN_ADDRESS)
    return _guarded("token_lockout_wait", lambda: _wait(subjects), 0)


def token_failure_record(*, ip: str | None) -> int:
    """An invalid, revoked or inactive staff member's bearer token from `ip`. Returns the lockout's seconds if it
    locked the address."""
    logger.info("invalid API token from %s", ip)
    subjects = _subjects(ip=ip, kind_of_ip=TOKEN_ADDRESS)
    return _guarded("token_failure_record",
                    lambda: _fail(subjects, action="api_token.lockout", ip=ip, username=None), 0)


def lockout_clear(*, username: str | None = None, ip: str | None = None) -> None:
    """Lift a lockout early and forget the failures (`smileloop login_unlock`): a locked-out colleague who proved who
    they are (at any browser, their trusted ones included: _device_value), or a clinic's address after a mistyped
    password spree."""
    keys = []
    for kind, value, _limit in _subjects(username=username, ip=ip) + _subjects(ip=ip, kind_of_ip=TOKEN_ADDRESS):
        keys += [_key(kind, value), _key(kind, value) + ":lock"]
    cache.delete_many(keys)
    if username is not None and _normal_username(username):
        cache.set(_key(UNLOCKED, _normal_username(username)), secrets.token_hex(4), timeout=None)
