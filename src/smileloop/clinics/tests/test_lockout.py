"""Password and token guessing is refused for a while: failed logins per username and per address, invalid API
tokens per address (clinics.lockout), said in the login form and recorded in the audit log."""

import time

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse

from smileloop.clinics.services import token_create
from smileloop.core.models import AuditEvent

PASSWORD = "pass-1234"  # StaffFactory's
LOGIN = "/login/"


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


def log_in(client, username, password, ip="203.0.113.7", **headers):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip, **headers)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_five_wrong_passwords_lock_the_username_even_for_the_right_one_and_say_so(client, front_desk_a):
    # given: four wrong passwords are plain failures
    for _ in range(4):
        response = log_in(client, "frontdesk_a", "wrong")
        assert response.status_code == 200
        assert "Please enter a correct username and password" in response.content.decode()
    assert AuditEvent.objects.count() == 0
    # when: the fifth
    response = log_in(client, "frontdesk_a", "wrong")
    # then: the username is locked: the form says so, with a 429, and the audit log has the lockout
    assert response.status_code == 429
    assert "Too many failed logins. Logging in with this username or from this network is paused for 15 minutes" \
        in response.content.decode()
    event = AuditEvent.objects.get()
    assert (event.action, event.object_type, event.object_id, event.ip_address, event.actor_id) == (
        "login.lockout", "login-user", "frontdesk_a", "203.0.113.7", None)
    assert event.detail == {"failures": 5, "lockout_seconds": 900, "username": "frontdesk_a"}
    # when: the right password, from another address, in another letter case
    response = log_in(client, "FrontDesk_A", PASSWORD, ip="198.51.100.9")
    # then: refused all the same, and nothing more is recorded
    assert response.status_code == 429 and not logged_in(client)
    assert AuditEvent.objects.count() == 1


def test_the_lockout_message_is_chinese_by_default(client, front_desk_a):
    for _ in range(5):
        response = log_in(client, "frontdesk_a", "wrong", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 429
    assert "登录失败次数过多。此用户名或本网络的登录已暂停 15 分钟" in response.content.decode()


@override_settings(LOGIN_LOCKOUT_SECONDS=1)
def test_the_right_password_logs_in_once_the_lockout_has_ended(client, front_desk_a):
    # given: locked
    for _ in range(5):
        log_in(client, "frontdesk_a", "wrong")
    assert log_in(client, "frontdesk_a", PASSWORD).status_code == 429
    # when: the lockout's second has passed
    time.sleep(1.2)
    response = log_in(client, "frontdesk_a", PASSWORD)
    # then
    assert response.status_code == 302 and logged_in(client)


def test_a_right_password_forgives_the_usernames_earlier_failures(client, front_desk_a):
    for _ in range(4):
        log_in(client, "frontdesk_a", "wrong")
    assert log_in(client, "frontdesk_a", PASSWORD).status_code == 302
    client.logout()
    for _ in range(4):
        assert log_in(client, "frontdesk_a", "wrong").status_code == 200
    assert log_in(client, "frontdesk_a", PASSWORD).status_code == 302
    assert AuditEvent.objects.count() == 0


@override_settings(LOGIN_IP_FAILURE_LIMIT=6)
def test_many_usernames_guessed_from_one_address_lock_that_address_only(client, chain, front_desk_a):
    # given: six failures spread over three usernames (two each: no username reaches its limit)
    for name in ("a", "b", "c") * 2:
        log_in(client, name, "wrong", ip="203.0.113.7")
    # then: the address is locked, for an account that never failed too
    response = log_in(client, "frontdesk_a", PASSWORD, ip="203.0.113.7")
    assert response.status_code == 429 and not logged_in(client)
    event = AuditEvent.objects.get()
    assert (event.action, event.object_type, event.object_id) == ("login.lockout", "login-address", "203.0.113.7")
    # and another address logs in
    assert log_in(client, "frontdesk_a", PASSWORD, ip="198.51.100.9").status_code == 302


@override_settings(LOGIN_IP_FAILURE_LIMIT=2)
def test_an_ipv6_client_is_counted_by_its_64_network(client, front_desk_a):
    log_in(client, "x", "wrong", ip="2001:db8:1:2::10")
    log_in(client, "y", "wrong", ip="2001:db8:1:2:ffff::1")
    assert log_in(client, "frontdesk_a", PASSWORD, ip="2001:db8:1:2::99").status_code == 429
    assert log_in(client, "frontdesk_a", PASSWORD, ip="2001:db8:1:3::99").status_code == 302


@override_settings(TRUSTED_PROXY_COUNT=1, LOGIN_IP_FAILURE_LIMIT=5)
def test_behind_a_proxy_the_address_the_proxy_saw_is_counted_not_what_the_client_wrote(client, front_desk_a):
    # given: five failures through the proxy (10.0.0.2), each client claiming another address in front of the one
    # the proxy appended
    for i in range(5):
        log_in(client, f"guess{i}", "wrong", ip="10.0.0.2", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}, 203.0.113.7")
    # then: the address the proxy saw is locked
    event = AuditEvent.objects.get()
    assert (event.object_type, event.object_id, event.ip_address) == ("login-address", "203.0.113.7", "203.0.113.7")
    response = log_in(client, "frontdesk_a", PASSWORD, ip="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert response.status_code == 429
    # and another client behind the same proxy is not
    response = log_in(client, "frontdesk_a", PASSWORD, ip="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.9")
    assert response.status_code == 302


def test_the_admin_login_is_no_second_way_around_the_lockout(client, front_desk_a):
    # given: the username is locked out on the staff login page
    for _ in range(5):
        log_in(client, "frontdesk_a", "wrong")
    # when: the right password is posted to the Django admin's login URL, and wrong ones after it
    for password in (PASSWORD, "wrong", "wrong"):
        response = client.post(reverse("admin:login"), {"username": "frontdesk_a", "password": password},
                               REMOTE_ADDR="198.51.100.9")
        # then: it takes no password at all: nobody is logged in, the browser is sent to our login page
        assert response.status_code == 302 and response["Location"] == "/login/?next=/admin/"
        assert not logged_in(client)
    assert AuditEvent.objects.filter(action="login.lockout").count() == 1


def test_login_unlock_lifts_a_lockout(client, front_desk_a):
    from django.core.management import call_command

    for _ in range(5):
        log_in(client, "frontdesk_a", "wrong")
    call_command("login_unlock", "frontdesk_a", "--ip", "203.0.113.7")
    assert log_in(client, "frontdesk_a", PASSWORD).status_code == 302


# --- API tokens ----------------------------------------------------------------------------------------------

def api_get(client, token, ip="203.0.113.7"):
    return client.get("/api/customers", headers={"Authorization": f"Bearer {token}"}, REMOTE_ADDR=ip)


@override_settings(API_TOKEN_FAILURE_LIMIT=3, LOGIN_LOCKOUT_SECONDS=120)
def test_invalid_bearer_tokens_from_one_address_are_throttled_with_429_in_the_api_error_shape(client, front_desk_a):
    valid = token_create(username=front_desk_a.user.username)
    # given: two invalid tokens are plain 401s
    for i in range(2):
        assert api_get(client, f"sl_guess{i}").status_code == 401
    # when: the third
    response = api_get(client, "sl_guess2")
    # then: 429 with the error shape and when to come back; the audit log has it
    assert response.status_code == 429
    assert response.json() == {
        "code": "throttled",
        "message": "Too many requests with an invalid API token from this address: tokens from it are refused for "
                   "120 seconds",
        "errors": [],
    }
    assert response["Retry-After"] == "120"
    event = AuditEvent.objects.exclude(action="api_token.create").get()
    assert (event.action, event.object_type, event.object_id) == ("api_token.lockout", "token-address",
                                                                  "203.0.113.7")
    # and a valid token new to this process is refused from that address too, but not from another one
    assert api_get(client, valid).status_code == 429
    assert api_get(client, valid, ip="198.51.100.9").status_code == 200
    assert api_get(client, "sl_guess3", ip="198.51.100.9").status_code == 401


@override_settings(LOGIN_IP_FAILURE_LIMIT=3, API_TOKEN_FAILURE_LIMIT=3)
def test_failed_logins_and_invalid_tokens_are_counted_apart(client, front_desk_a):
    # staff mistyping passwords at a clinic do not lock out its POS integration, nor the reverse
    for i in range(3):
        log_in(client, f"typo{i}", "wrong")
    assert log_in(client, "frontdesk_a", PASSWORD).status_code == 429
    assert api_get(client, "sl_guess").status_code == 401
    cache.clear()
    for i in range(3):
        api_get(client, f"sl_guess{i}")
    assert api_get(client, "sl_guess").status_code == 429
    assert log_in(client, "frontdesk_a", PASSWORD).status_code == 302


# --- the cache is down ------------------------------------------------------------------------------------------

# A real Redis client pointed at a port nothing listens on: every cache call is a refused connection.
CACHE_DOWN = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0",
                          "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}}


@pytest.fixture
def cache_health():
    """This process's view of the cache starts healthy and is left so (it outlives a test's settings)."""
    from smileloop.clinics import lockout

    lockout._health = lockout._CacheHealth()
    yield lockout
    lockout._health = lockout._CacheHealth()


def _down_reports(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "smileloop.security" and r.levelname == "ERROR" and "lockout SKIPPED" in r.getMessage()]


def test_while_the_cache_is_down_logins_work_without_the_lockout_and_it_is_logged_once(
        client, front_desk_a, cache_health, caplog):
    with override_settings(CACHES=CACHE_DOWN):
        # when: a wrong password, then the right one, while the cache refuses every connection
        wrong = log_in(client, "frontdesk_a", "wrong")
        right = log_in(client, "frontdesk_a", PASSWORD)
    # then: a plain failure, then a login (not a 500 at the front desk), and nothing recorded as a lockout
    assert wrong.status_code == 200 and "Please enter a correct username and password" in wrong.content.decode()
    assert right.status_code == 302 and logged_in(client)
    assert AuditEvent.objects.count() == 0
    # and the outage is reported at ERROR once, not once per check
    [report] = _down_reports(caplog)
    assert "the cache is down (ConnectionError in login_lockout_wait" in report


def test_while_the_cache_is_down_api_tokens_still_answer_401_or_200(client, front_desk_a, cache_health):
    valid = token_create(username=front_desk_a.user.username)
    with override_settings(CACHES=CACHE_DOWN):
        assert api_get(client, "not-a-token").status_code == 401
        assert api_get(client, valid).status_code == 200


def test_the_down_report_repeats_once_a_minute_and_the_cache_is_tried_again_after_a_pause(
        client, front_desk_a, cache_health, caplog):
    with override_settings(CACHES=CACHE_DOWN):
        log_in(client, "frontdesk_a", "wrong")
        # given the pause before the next try, and the minute since the report, are over
        cache_health._health.retry_at = 0.0
        cache_health._health.logged_at -= cache_health.CACHE_DOWN_LOG_SECONDS
        log_in(client, "frontdesk_a", "wrong")
    assert len(_down_reports(caplog)) == 2


def test_once_the_cache_is_back_the_lockout_counts_again_and_says_so(client, front_desk_a, cache_health, caplog):
    with override_settings(CACHES=CACHE_DOWN):
        log_in(client, "frontdesk_a", "wrong")
    cache_health._health.retry_at = 0.0  # the pause before the next try is over
    # when: five wrong passwords with the cache back
    for _ in range(5):
        response = log_in(client, "frontdesk_a", "wrong")
    # then: locked as usual, and the return was logged
    assert response.status_code == 429
    assert any("lockout resumed" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


# --- trusted browsers ---------------------------------------------------------------------------------------------


def _desk_pc(client, username):
    """A browser that has logged in as `username` before: its device cookie only (logged out)."""
    from django.test import Client

    assert log_in(client, username, PASSWORD).status_code == 302
    desk = Client()
    desk.cookies["sl_device"] = client.cookies["sl_device"].value
    return desk


def test_guesses_from_elsewhere_cannot_lock_a_colleague_out_of_the_browser_they_log_in_from(client, front_desk_a):
    # given the front desk's PC, where she logged in yesterday
    desk = _desk_pc(client, "frontdesk_a")
    # when someone elsewhere tries five passwords on her username
    from django.test import Client

    stranger = Client()
    for _ in range(5):
        log_in(stranger, "frontdesk_a", "wrong", ip="198.51.100.66")
    # then the username is locked for every other browser, the right password included …
    assert log_in(Client(), "frontdesk_a", PASSWORD, ip="203.0.113.7").status_code == 429
    # … but not at her desk
    response = log_in(desk, "frontdesk_a", PASSWORD, ip="203.0.113.7")
    assert response.status_code == 302 and logged_in(desk)


def test_wrong_passwords_at_a_trusted_browser_lock_that_browser_for_that_user(client, front_desk_a):
    desk = _desk_pc(client, "frontdesk_a")
    for _ in range(5):
        response = log_in(desk, "frontdesk_a", "wrong")
    assert response.status_code == 429
    assert log_in(desk, "frontdesk_a", PASSWORD).status_code == 429
    event = AuditEvent.objects.get()
    assert (event.action, event.object_type) == ("login.lockout", "login-device")


def test_a_tampered_device_cookie_or_another_username_is_not_trusted(client, front_desk_a, director_a):
    from django.test import Client

    desk = _desk_pc(client, "frontdesk_a")
    forged = Client()
    forged.cookies["sl_device"] = desk.cookies["sl_device"].value[:-2] + "xx"
    for _ in range(5):
        log_in(Client(), "frontdesk_a", "wrong", ip="198.51.100.66")
        log_in(Client(), "director_a", "wrong", ip="198.51.100.67")
    # a forged cookie is no trusted browser, and the desk PC is trusted for the username that logged in there only
    assert log_in(forged, "frontdesk_a", PASSWORD).status_code == 429
    assert log_in(desk, "director_a", PASSWORD).status_code == 429
    # the cookie names its usernames by a keyed hash, not in clear
    assert "frontdesk_a" not in desk.cookies["sl_device"].value


def test_a_username_no_login_has_is_written_neither_to_the_log_nor_to_the_audit(client, front_desk_a, caplog):
    # a password typed into the username box, five times
    caplog.set_level("INFO", logger="smileloop.security")
    for _ in range(5):
        response = log_in(client, "Secret-Pa55", "wrong")
    assert response.status_code == 429
    event = AuditEvent.objects.get()
    assert "Secret-Pa55".casefold() not in (event.object_id + str(event.detail)).casefold()
    assert "secret-pa55" not in caplog.text.casefold()
    # a real username is named, as before
    for _ in range(5):
        log_in(client, "frontdesk_a", "wrong", ip="198.51.100.9")
    assert "frontdesk_a" in caplog.text
    assert AuditEvent.objects.filter(object_id="frontdesk_a").exists()
