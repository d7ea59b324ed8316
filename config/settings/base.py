"""Settings shared by every environment. Values that differ per deployment come from config.env."""

from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.utils.translation import gettext_lazy as _

from config.env import BASE_DIR, DEFAULT_SQLITE_URL, database_config, env_bool, env_int, env_list, env_str

SECRET_KEY = env_str("SECRET_KEY", "dev-insecure-key-change-me-in-production-0123456789")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "ninja",
    "huey.contrib.djhuey",
    "csp",
    "smileloop.core",
    "smileloop.clinics",
    "smileloop.customers",
    "smileloop.visits",
    "smileloop.membership",  # membership app (issue 3 §1–2)
    "smileloop.ledger",
    "smileloop.loyalty",  # loyalty app (issue 3 §3, §4, §6)
    "smileloop.giftcards",  # gift cards and vouchers (issue 3 §5)
    "smileloop.checkout",  # checkout (issue 3 §7)
    "smileloop.tagging",  # tags (issue 4 §2)
    "smileloop.segments",  # segments (issue 4 §3)
    "smileloop.lifecycle",  # lifecycle stages (issue 4 §4)
    "smileloop.followups",  # follow-up playbooks (issue 4 §5)
    "smileloop.surveys",  # satisfaction surveys (issue 4 §6)
    "smileloop.imports",
    "smileloop.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files: answered here, with their own caching
    "smileloop.core.middleware.NoStoreMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "smileloop.core.middleware.ApiEnglishMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "smileloop.clinics.lockout.TrustedDeviceMiddleware",
    "smileloop.core.middleware.SessionTimeoutMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Before any view reads the body (CSRF's check parses a form): the reader's language and login are known by now.
    "smileloop.core.middleware.RequestSizeLimitMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "smileloop.clinics.middleware.PasswordChangeRequiredMiddleware",
    "smileloop.core.middleware.DatabaseBusyMiddleware",
]

# ModelBackend that loads the staff profile with the user (one query instead of two on every staff page).
AUTHENTICATION_BACKENDS = ["smileloop.clinics.auth.StaffModelBackend"]

ROOT_URLCONF = "config.urls"
# Pages patients open from a link (no login, a phone): their error pages use the member layout (core.error_pages).
PATIENT_PATH_PREFIXES = ["/surveys/s/"]
# The REST API (config/urls.py) answers in English: core.middleware.ApiEnglishMiddleware
API_PATH_PREFIX = "/api/"
CSRF_FAILURE_VIEW = "smileloop.core.error_pages.csrf_failure"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "smileloop.clinics.context_processors.navigation",
            ],
        },
    }
]

DATABASES = {"default": database_config(env_str("DATABASE_URL", DEFAULT_SQLITE_URL))}
# Where patients reach public pages (survey links in follow-up scripts, later the member center).
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# SQLite has no INCLUDE columns: covering indexes (visits.Order) are plain indexes there, which is fine.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
# WhiteNoise serves STATIC_ROOT (filled by `collectstatic`, which `make demo` and a deploy run) from gunicorn itself;
# a reverse proxy in front may serve var/static/ instead.

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "customers:list"
LOGOUT_REDIRECT_URL = "login"

SESSION_COOKIE_HTTPONLY = True
# Nothing frames Smileloop's pages (the CSP's frame-ancestors says the same to current browsers).
X_FRAME_OPTIONS = "DENY"

# Sessions on shared front-desk PCs (core.middleware.SessionTimeoutMiddleware). A staff member who walks away is
# logged out after SESSION_IDLE_MINUTES without a request, and everyone after SESSION_MAX_AGE_MINUTES from the login
# whatever they do: a clinic day (opening to closing, so one login a day), never into the next day's first user.
# Idle 30 minutes: the PC stands at a counter patients lean over; logging in again costs seconds.
SESSION_IDLE_MINUTES = env_int("SESSION_IDLE_MINUTES", 30, minimum=1)
SESSION_MAX_AGE_MINUTES = env_int("SESSION_MAX_AGE_MINUTES", 10 * 60, minimum=1)
SESSION_COOKIE_AGE = SESSION_MAX_AGE_MINUTES * 60  # the stored session and the cookie end with it too
# The cookie lives only as long as the browser (closing the browser at the end of a shift logs out).
SESSION_EXPIRE_AT_BROWSER_CLOSE = env_bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", True)
# The layout hands htmx the token (hx-headers) and forms carry it: no script reads the CSRF cookie.
CSRF_COOKIE_HTTPONLY = True

# Content-Security-Policy (django-csp) on every response: scripts and style sheets only from our own static files, no
# inline script or handler, no eval (htmx's allowEval is off in the layout), no <style> element. One allowance: style
# *attributes* (style-src-attr). No template writes one, but the vendored ECharts builds its tooltips as markup with
# style attributes (the series' colour dot, the layout), whose values change with the data, so no hash can name them;
# without them the charts' tooltips lose their layout and every hover logs violations. A style attribute runs no
# script and cannot select other elements, so it cannot read the page as an injected style sheet could.
# data: images: the admin's and the API docs' style sheets draw icons with them.
# tests/test_browser_csp.py walks the pages in Chromium and fails on any violation.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "style-src-elem": [SELF],
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "report-uri": env_str("CSP_REPORT_URI", "") or None,
    },
}

# Login lockout (smileloop.clinics.lockout): failed logins are counted per username and per client address within
# LOGIN_FAILURE_WINDOW_SECONDS; at the limit, logins for that username (or from that address) are refused for
# LOGIN_LOCKOUT_SECONDS, a correct password included, and the lockout is written to the audit log. An address's
# limit is higher: a clinic's PCs reach us through one NAT address. API tokens: that many invalid bearer tokens from
# one address within the window → 429 for the lockout's length.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_IP_FAILURE_LIMIT = env_int("LOGIN_IP_FAILURE_LIMIT", 30, minimum=1)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60, minimum=1)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 15 * 60, minimum=1)
# A browser a staff member logged in from is trusted for that username this many days (0: never): its failures count
# apart and the username's lockout does not stop it, so guesses from elsewhere cannot lock a colleague out of their
# desk PC (clinics.lockout).
LOGIN_TRUSTED_DEVICE_DAYS = env_int("LOGIN_TRUSTED_DEVICE_DAYS", 180, minimum=0)
API_TOKEN_FAILURE_LIMIT = env_int("API_TOKEN_FAILURE_LIMIT", 20, minimum=1)
# Proxies in front of gunicorn that append the client's address to X-Forwarded-For (0: none, REMOTE_ADDR is the
# client). The lockout and the audit log's addresses read it (clinics.web.client_ip); too high a number would let
# a client name its own address.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

# A request body (all but the import page's upload, which takes SMILELOOP_IMPORT_MAX_BYTES) is refused above this by
# its Content-Length before anything reads it (core.middleware.RequestSizeLimitMiddleware): no form or API call of
# ours comes near it (the largest, a bulk tagging of 10,000 patients, is about 100 KB).
REQUEST_BODY_MAX_BYTES = env_int("REQUEST_BODY_MAX_BYTES", 10 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # When and how grave, next to gunicorn's own stamped lines (times in TIME_ZONE, which Django makes the process's).
    "formatters": {"stamped": {"format": "[%(asctime)s] %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "stamped"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # `smileloop worker` (huey's run_huey) gives the "huey" logger a handler of its own unless it has one: given this
    # one, and not passing its lines on to the root's, the worker's log has each line once instead of twice.
    "loggers": {"huey": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False}},
}

SMILELOOP_DEFAULT_REGION = "CN"

# Background jobs (issue 4 §1): Huey with SQLite storage embedded, Redis (REDIS_URL) in production.
# Every periodic job is listed once in config/schedules.py (JOB_SCHEDULES); `smileloop worker` runs the
# consumer, `smileloop run JOB` one job by hand. Results are not stored: jobs log their counts, and
# nothing reads a task's return value (stored results would only pile up).
REDIS_URL = env_str("REDIS_URL", "")
# The cache holds the login lockout's counters, which every gunicorn process must share: Redis when REDIS_URL is set
# (CACHE_URL names another server), else this process's memory (one process, as on SQLite, counts alike).
CACHE_URL = env_str("CACHE_URL", "") or REDIS_URL
# Bounded waits: a Redis that does not answer costs a login at most these seconds before the lockout is skipped
# (clinics.lockout fails open while the cache is down, and logs it).
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL,
                "KEY_PREFIX": "smileloop", "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}
    if CACHE_URL else
    {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "smileloop"},
}


def huey_settings(redis_url: str, var_dir) -> dict:
    """The HUEY block: Redis when a URL is given, else the embedded SQLite queue (one writer: one thread)."""
    if redis_url:
        return {"huey_class": "huey.RedisHuey", "name": "smileloop", "url": redis_url, "immediate": False,
                "results": False, "consumer": {"workers": 2, "worker_type": "thread"}}
    var_dir.mkdir(exist_ok=True)  # the embedded queue's file is opened when Django starts
    return {"huey_class": "huey.SqliteHuey", "name": "smileloop", "filename": str(var_dir / "huey.sqlite3"),
            "immediate": False, "results": False, "consumer": {"workers": 1, "worker_type": "thread"}}


HUEY = huey_settings(REDIS_URL, BASE_DIR / "var")
JOB_SCHEDULES = "config.schedules.JOBS"
# Uploaded import files wait here for their check and import; the web server and the worker must both see it.
SMILELOOP_IMPORT_DIR = env_str("SMILELOOP_IMPORT_DIR", "") or str(BASE_DIR / "var" / "imports")
# The largest file the import page accepts: a chain's whole list of 1,000,000 patients is ~80 MB of CSV.
SMILELOOP_IMPORT_MAX_BYTES = 200 * 1024 * 1024
IDEMPOTENCY_KEEP_DAYS = 7  # see smileloop.core.tasks.idempotency_purge_job
