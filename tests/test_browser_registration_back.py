"""Registering a phone-less walk-in in a real browser, then Back and submit again: one patient, not two.

A walk-in without a phone has nothing to be matched on. The new-customer page carries a one-time key; Back used to
fetch the page again (every staff page was `no-store`) with a new key, and the same person was registered twice.
The empty page is now kept for Back (views.customer_create), so the form sent again is the first one with its key
and leads to the patient it made; and a namesake the desk registered minutes ago is named before a second record is
made (selectors.recent_walk_in_namesakes), whatever the browser keeps.

Drives Debian's Chromium (/usr/bin/chromium) through Playwright's sync API; never downloads a browser.
"""

import os
import re
from pathlib import Path

import pytest

from smileloop.core.testing import browser_log_in, browser_marks, context_page
from smileloop.customers.models import Customer

# Playwright's sync API runs an event loop in this thread; Django's async-safety check would refuse the ORM.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

SCREENSHOT_DIR = Path(os.environ.get("SMILELOOP_SCREENSHOT_DIR", "/tmp"))
SUBMIT = "form:has(input[name=key]) button[type=submit]"  # the page's first submit button switches the language

pytestmark = browser_marks()


@pytest.fixture
def desk_page(browser, js_errors):
    with context_page(browser, js_errors, locale="zh-CN") as page:
        yield page


log_in = browser_log_in


def register(page, name: str, clinic_id: int) -> None:
    page.fill("#id_name", name)
    page.select_option("#id_home_clinic", str(clinic_id))
    page.click(SUBMIT)


def test_back_and_submit_again_registers_a_phone_less_walk_in_once(live_server, desk_page, js_errors,
                                                                    front_desk_a, clinic_a):
    page = desk_page
    log_in(page, live_server, "frontdesk_a")

    # given: 陈小雨, a walk-in without a phone, registered from the new-customer page
    page.goto(f"{live_server.url}/customers/new/")
    register(page, "陈小雨", clinic_a.id)
    page.wait_for_url(re.compile(r"/customers/\d+/$"))
    first = Customer.objects.get(name="陈小雨")
    assert page.url.endswith(f"/customers/{first.id}/")

    # when: the desk presses Back and sends the form again (as it comes back, name and clinic filled in again)
    page.go_back()
    page.wait_for_selector("#id_name")
    assert "/customers/new/" in page.url
    with page.expect_navigation():
        register(page, "陈小雨", clinic_a.id)
    page.wait_for_load_state()

    # then: still one 陈小雨, and the page leads to her record: the form Back showed was the first one, with its key
    assert Customer.objects.filter(name="陈小雨").count() == 1
    assert page.url.endswith(f"/customers/{first.id}/")
    assert "此表单已提交过" in page.locator("main").inner_text()
    assert js_errors == []


def _registered_and_warned(page, live_server, clinic_a, *, typed: str):
    """The front desk registers the phone-less walk-in 陈小雨, then registers `typed` on a new form: (her record, the
    namesake warning shown instead)."""
    log_in(page, live_server, "frontdesk_a")
    page.goto(f"{live_server.url}/customers/new/")
    register(page, "陈小雨", clinic_a.id)
    page.wait_for_url(re.compile(r"/customers/\d+/$"))
    first = Customer.objects.get(name="陈小雨")
    page.goto(f"{live_server.url}/customers/new/")
    register(page, typed, clinic_a.id)
    warning = page.locator("[data-testid=recent-namesake]")
    warning.wait_for()
    return first, warning


def test_opening_the_form_anew_names_the_walk_in_just_registered_and_registers_a_second_only_when_told(
        live_server, desk_page, js_errors, front_desk_a, clinic_a):
    page = desk_page
    # when: the desk registers 陈小雨, opens a new form (a new key: the browser keeps nothing) and registers the same
    # name, typed with a space (the same name as stored)
    first, warning = _registered_and_warned(page, live_server, clinic_a, typed="陈 小雨")

    # then: nothing registered; a warning in Chinese names her, with a link to her record
    assert "陈小雨" in warning.inner_text() and "刚刚登记过" in warning.inner_text()
    assert warning.locator(f"a[href='/customers/{first.id}/']").count() == 1
    assert Customer.objects.filter(name="陈小雨").count() == 1
    page.screenshot(path=str(SCREENSHOT_DIR / "smileloop-registration-namesake.png"), full_page=True)

    # when: the desk says it is another person of that name
    page.click("[data-testid=register-anyway]")
    page.wait_for_url(re.compile(r"/customers/\d+/$"))

    # then: a second 陈小雨
    assert Customer.objects.filter(name="陈小雨").count() == 2
    assert not page.url.endswith(f"/customers/{first.id}/")
    assert js_errors == []


def test_back_to_the_namesake_warning_shows_it_again_without_asking_to_resend_a_form(
        live_server, desk_page, js_errors, front_desk_a, clinic_a):
    page = desk_page
    first, warning = _registered_and_warned(page, live_server, clinic_a, typed="陈小雨")
    assert "刚刚登记过" in warning.inner_text()
    assert "陈小雨" not in page.url  # the warning's own address (a GET) carries no patient data

    # when: the desk opens the record it names, then comes Back
    warning.locator(f"a[href='/customers/{first.id}/']").click()
    page.wait_for_url(re.compile(rf"/customers/{first.id}/$"))
    page.go_back()
    # then: the warning again, with the form as typed (Chromium asked to resend a form: the warning was a POST's page)
    page.locator("[data-testid=recent-namesake]").wait_for()
    assert page.input_value("#id_name") == "陈小雨"

    # when: the desk registers a second 陈小雨, then comes Back and presses the button again
    page.click("[data-testid=register-anyway]")
    page.wait_for_url(re.compile(r"/customers/\d+/$"))
    second = Customer.objects.exclude(pk=first.pk).get(name="陈小雨")
    assert page.url.endswith(f"/customers/{second.id}/")
    page.go_back()
    page.locator("[data-testid=register-anyway]").wait_for()
    with page.expect_navigation():
        page.click("[data-testid=register-anyway]")
    page.wait_for_load_state()
    # then: the form Back showed is the one that registered her, with its key: it leads to her, nothing new
    assert page.url.endswith(f"/customers/{second.id}/")
    assert "此表单已提交过" in page.locator("main").inner_text()
    assert Customer.objects.filter(name="陈小雨").count() == 2
    assert js_errors == []


def test_back_to_a_refusal_from_the_record_it_names_shows_it_again_and_the_form_corrected_registers(
        live_server, desk_page, js_errors, front_desk_a, chain, clinic_a):
    from smileloop.customers.tests.factories import CustomerFactory

    page = desk_page
    zhang_san = CustomerFactory(chain=chain, name="张三", mobile="+8613800138000", home_clinic=clinic_a)
    log_in(page, live_server, "frontdesk_a")

    # given: a new patient typed with 张三's phone: refused, the page naming her, with a link to her record
    page.goto(f"{live_server.url}/customers/new/")
    page.fill("#id_mobile", "138 0013 8000")
    register(page, "张三丰", clinic_a.id)
    refusal = page.locator("[data-testid=existing-customer]")
    refusal.wait_for()
    assert "张三" in refusal.inner_text() and "?warned=" in page.url
    assert "13800138000" not in page.url and "张三丰" not in page.url  # what was typed waits on the server
    assert Customer.objects.count() == 1

    # when: the desk opens her record, then comes Back
    refusal.locator(f"a[href='/customers/{zhang_san.id}/']").click()
    page.wait_for_url(re.compile(rf"/customers/{zhang_san.id}/$"))
    page.go_back()
    # then: the refusal again, with the form as typed: a GET's page (Chromium asked to resend a form: it was a POST's)
    page.locator("[data-testid=existing-customer]").wait_for()
    assert "?warned=" in page.url
    assert page.input_value("#id_name") == "张三丰" and page.input_value("#id_mobile") == "138 0013 8000"

    # when: the desk corrects the phone and sends the form
    page.fill("#id_mobile", "139 0013 9000")
    with page.expect_navigation():
        page.click(SUBMIT)
    page.wait_for_url(re.compile(r"/customers/\d+/$"))
    # then: the patient is registered, once
    new = Customer.objects.get(name="张三丰")
    assert page.url.endswith(f"/customers/{new.id}/") and new.mobile == "+8613900139000"
    assert Customer.objects.count() == 2
    assert js_errors == []
