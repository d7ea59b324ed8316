"""Production: every secret from the environment, HTTPS only (redirect, HSTS, secure cookies), PostgreSQL expected.
`smileloop check --deploy` with these settings and the README's environment reports no warning."""

from config.env import env_bool, env_int, env_str

from .base import *  # noqa: F403

SECRET_KEY = env_str("SECRET_KEY")
DEBUG = False

# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and must strip a client's own).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# That proxy appends the client's address to X-Forwarded-For: the login lockout and the audit log count it.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 1)
# A plain-HTTP request is redirected to HTTPS. Off (SECURE_SSL_REDIRECT=false) only where the proxy redirects itself.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
# HSTS: browsers use HTTPS only, for a year. SECURE_HSTS_SECONDS=0 when the proxy already sends the header (then
# check --deploy's W004 reminds that it must). Subdomains included: set SECURE_HSTS_INCLUDE_SUBDOMAINS=false if another
# host under the same domain still serves plain HTTP. Preloading is the domain owner's own one-way decision.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if not SECURE_HSTS_PRELOAD:
    # W021 asks for preloading: a chain's domain goes on every browser's list for good, for all its subdomains.
    SILENCED_SYSTEM_CHECKS = [*SILENCED_SYSTEM_CHECKS, "security.W021"]  # noqa: F405
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"  # patients' ids in URLs never leave for another site
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# Cookies over HTTPS only, under the __Host- prefix (the browser refuses one set by a sibling subdomain or over HTTP).
# SECURE_COOKIES=false only to try production settings over plain HTTP.
SECURE_COOKIES = env_bool("SECURE_COOKIES", True)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_COOKIES
if SECURE_COOKIES:
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
