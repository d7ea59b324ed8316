"""Production hardening across the apps: no page or API answer is kept in a cache, every page carries the
Content-Security-Policy, a staff session ends after a while idle and after a working day, and the production settings
pass Django's deployment check."""

import os
import secrets
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from smileloop.clinics.services import token_create
from smileloop.core.middleware import SESSION_LOGIN_AT, SESSION_SEEN_AT
from smileloop.customers.tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

NEVER_CACHE = "max-age=0, no-cache, no-store, must-revalidate, private"


# --- Cache-Control --------------------------------------------------------------------------------------------

def test_staff_pages_and_api_answers_with_personal_data_are_never_stored(client, front_desk_a, clinic_a):
    customer = CustomerFactory(chain=front_desk_a.chain, home_clinic=clinic_a, name="张三")
    client.force_login(front_desk_a.user)
    token = token_create(username=front_desk_a.user.username)
    for response in (
        client.get(reverse("customers:list")),
        client.get(reverse("customers:list"), headers={"HX-Request": "true"}),  # a fragment
        client.get(reverse("customers:detail", args=[customer.pk])),
        client.get(f"/api/customers/{customer.pk}", headers={"Authorization": f"Bearer {token}"}),
        client.get("/api/customers", headers={"Authorization": "Bearer sl_wrong"}),  # an error answer
        client.get("/customers/no-such-page/"),
    ):
        assert response["Cache-Control"] == NEVER_CACHE, response


def test_static_files_keep_their_own_caching(client):
    response = client.get("/static/js/staff.js")
    assert response.status_code == 200
    assert "no-store" not in response["Cache-Control"] and "max-age=" in response["Cache-Control"]
    assert "Content-Security-Policy" not in response


# --- Content-Security-Policy ----------------------------------------------------------------------------------

def csp(response) -> dict[str, list[str]]:
    parts = [part.strip().split() for part in response["Content-Security-Policy"].split(";")]
    return {part[0]: part[1:] for part in parts if part}


def test_every_kind_of_page_carries_a_policy_without_inline_script_or_eval(client, front_desk_a, admin_user):
    anonymous = client.get(reverse("login"))
    client.force_login(front_desk_a.user)
    staff_page = client.get(reverse("customers:list"))
    client.force_login(admin_user)
    admin_page = client.get(reverse("admin:index"))
    for response in (anonymous, staff_page, admin_page, client.get("/api/openapi.json")):
        policy = csp(response)
        assert policy["script-src"] == ["'self'"], response
        assert policy["default-src"] == ["'self'"] and policy["object-src"] == ["'none'"]
        assert policy["style-src"] == policy["style-src-elem"] == ["'self'"]
        assert policy["style-src-attr"] == ["'unsafe-inline'"]  # ECharts' tooltips (see config/settings/base.py)
        assert policy["frame-ancestors"] == ["'none'"] and policy["base-uri"] == ["'none'"]
        assert policy["form-action"] == ["'self'"]


def test_no_template_has_an_inline_script_handler_or_javascript_url():
    """What the policy would refuse at run time, found in the source: every template of the project and its apps."""
    import re
    from pathlib import Path

    roots = [settings.BASE_DIR / "templates", *(settings.BASE_DIR / "src" / "smileloop").glob("*/templates")]
    offending = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>|\son[a-z]+\s*=|"
                           r"javascript:|\bhx-on|\"js:|allowEval\"?\s*:\s*true", re.IGNORECASE)
    found = [f"{path}: {match.group(0)}" for root in roots for path in Path(root).rglob("*.html")
             for match in offending.finditer(path.read_text())]
    assert found == []


# --- sessions on shared PCs -----------------------------------------------------------------------------------

def set_session(client, **stamps) -> None:
    session = client.session
    for key, value in stamps.items():
        session[key] = value
    session.save()


def test_a_session_idle_for_longer_than_the_limit_goes_to_the_login_and_says_why(client, front_desk_a):
    # given: logged in, last seen 31 minutes ago
    client.force_login(front_desk_a.user)
    now = int(time.time())
    set_session(client, **{SESSION_SEEN_AT: now - 31 * 60, SESSION_LOGIN_AT: now - 40 * 60})
    # when
    response = client.get(reverse("customers:list"))
    # then: logged out, sent to the login page, which comes back here and says why
    assert response.status_code == 302 and response["Location"] == "/login/?next=/customers/"
    assert "_auth_user_id" not in client.session
    login = client.get(response["Location"])
    assert "You were logged out after 30 minutes without activity." in login.content.decode()
    assert "without activity" not in client.get(response["Location"]).content.decode()  # said once


def test_a_session_is_kept_while_used_and_ends_after_the_working_day_however_busy(client, front_desk_a):
    client.force_login(front_desk_a.user)
    now = int(time.time())
    set_session(client, **{SESSION_SEEN_AT: now - 29 * 60, SESSION_LOGIN_AT: now - 9 * 3600})
    assert client.get(reverse("customers:list")).status_code == 200
    assert client.session[SESSION_SEEN_AT] >= now  # the idle clock starts again
    # when: ten hours after the login, though active a minute ago
    set_session(client, **{SESSION_SEEN_AT: now - 60, SESSION_LOGIN_AT: now - 10 * 3600 - 1})
    response = client.get(reverse("customers:list"))
    assert response.status_code == 302 and "_auth_user_id" not in client.session
    assert "Your session has ended. Please log in again." in client.get(response["Location"]).content.decode()


@override_settings(SESSION_IDLE_MINUTES=5)
def test_the_idle_limit_comes_from_the_settings(client, front_desk_a):
    client.force_login(front_desk_a.user)
    set_session(client, **{SESSION_SEEN_AT: int(time.time()) - 6 * 60})
    assert client.get(reverse("customers:list")).status_code == 302


def test_a_login_stamps_the_session_so_the_next_requests_write_nothing_more(client, front_desk_a):
    # force_login (as the login form) starts the clocks: the requests within the next minute write no session
    client.force_login(front_desk_a.user)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("customers:list")).status_code == 200
        assert client.get(reverse("customers:list")).status_code == 200
    writes = [q["sql"] for q in queries.captured_queries if "django_session" in q["sql"]
              and not q["sql"].lstrip().upper().startswith("SELECT")]
    assert writes == []


def test_the_session_cookie_ends_with_the_browser_and_the_working_day():
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE is True
    assert settings.SESSION_COOKIE_AGE == 10 * 3600 and settings.SESSION_IDLE_MINUTES == 30
    assert settings.CSRF_COOKIE_HTTPONLY is True


# --- production settings --------------------------------------------------------------------------------------

def _prod(code: str, **env) -> subprocess.CompletedProcess:
    # Not the test process's own switches: the browser tests set DJANGO_ALLOW_ASYNC_UNSAFE for Playwright (module
    # import time), which the deployment check rightly reports.
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("SECURE_", "SESSION_")) and key != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    environment.update(DJANGO_SETTINGS_MODULE="config.settings.prod", SECRET_KEY=secrets.token_urlsafe(50),
                       ALLOWED_HOSTS="crm.example.com", DATABASE_URL="sqlite:///:memory:", **env)
    return subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=300,
                          cwd=settings.BASE_DIR)


def test_the_deployment_check_with_the_documented_environment_finds_nothing():
    result = _prod("import sys; from django.core.management import execute_from_command_line; "
                   "execute_from_command_line(['smileloop', 'check', '--deploy', '--fail-level', 'WARNING'])")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


SHOW = ("import django; django.setup(); from django.conf import settings as s; print(s.SECURE_HSTS_SECONDS, "
        "s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_NAME, s.SESSION_COOKIE_SECURE, "
        "s.TRUSTED_PROXY_COUNT, s.SESSION_IDLE_MINUTES, s.SESSION_EXPIRE_AT_BROWSER_CLOSE, s.X_FRAME_OPTIONS, "
        "s.SECURE_CONTENT_TYPE_NOSNIFF, s.SECURE_REFERRER_POLICY)")


def test_production_defaults_and_their_switches_behind_a_proxy_that_does_tls_itself():
    assert _prod(SHOW).stdout.split() == ["31536000", "True", "True", "__Host-sessionid", "True", "1", "30", "True",
                                          "DENY", "True", "same-origin"]
    switched = _prod(SHOW, SECURE_HSTS_SECONDS="0", SECURE_SSL_REDIRECT="false", SECURE_COOKIES="false",
                     TRUSTED_PROXY_COUNT="2", SESSION_IDLE_MINUTES="45", SESSION_EXPIRE_AT_BROWSER_CLOSE="false")
    assert switched.stdout.split() == ["0", "True", "False", "sessionid", "False", "2", "45", "False", "DENY", "True",
                                       "same-origin"]
    bad = _prod(SHOW, SECURE_HSTS_SECONDS="a year")
    assert bad.returncode != 0 and "SECURE_HSTS_SECONDS='a year' is not a whole number" in bad.stderr
