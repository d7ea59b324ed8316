"""The Content-Security-Policy in a real browser: staff pages, the charts, the admin and a patient's survey page work
under it, and the browser reports no violation (an inline script, handler or style sheet it refused, an eval).

Drives Debian's Chromium (/usr/bin/chromium) through Playwright's sync API; never downloads a browser.
"""

import datetime as dt
import os

import pytest
from django.utils import timezone

from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.core.testing import browser_marks
from smileloop.customers.enums import Stage
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.services import followups_generate, playbooks_install_defaults
from smileloop.surveys.models import Survey
from smileloop.surveys.services import surveys_create_for_visits
from smileloop.visits.enums import AppointmentStatus
from smileloop.visits.models import Appointment

# Playwright's sync API runs an event loop in this thread; Django's async-safety check would refuse the ORM.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

PASSWORD = "pass-1234"  # StaffFactory's
pytestmark = browser_marks()

# (Playwright's wait_for_function takes arrow functions here: a bare expression is evaluated with eval, which the policy
# refuses.) Each page records the violations the browser reports (the event, with what was refused and where) before any of its
# own scripts run; the console's CSP errors are kept too.
WATCH = """document.addEventListener("securitypolicyviolation", function (e) {
  (window.__cspViolations = window.__cspViolations || []).push(
    e.violatedDirective + " " + (e.blockedURI || "inline") + " @ " + e.sourceFile + ":" + e.lineNumber);
});"""


class Violations(list):
    def watch(self, page):
        page.add_init_script(WATCH)
        page.on("console", lambda msg: self.append(f"console: {msg.text}")
                if "Content Security Policy" in msg.text else None)
        page.on("pageerror", lambda exc: self.append(f"pageerror: {exc}"))
        return page

    def collect(self, page) -> list[str]:
        """This page's violations so far, with the console's."""
        return [*self, *page.evaluate("window.__cspViolations || []")]


def new_page(browser, violations, **context):
    page = violations.watch(browser.new_context(**context).new_page())
    page.set_default_timeout(15_000)
    return page


def local(day: dt.date, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=timezone.get_current_timezone())


@pytest.fixture
def clinic_data(transactional_db, chain, clinic_a, front_desk_a, chain_admin):
    """A patient with a phone, leads with today's follow-ups, and a survey waiting for yesterday's patient."""
    chain_admin.user.is_staff = chain_admin.user.is_superuser = True  # the admin too
    chain_admin.user.save(update_fields=["is_staff", "is_superuser"])
    playbooks_install_defaults(chain=chain)
    today = timezone.localdate()
    zhang = CustomerFactory(chain=chain, name="张三", mobile="+8613800138000", mobile_tail="8000", home_clinic=clinic_a,
                            stage=Stage.TREATED)
    for name in ("陈静", "刘洋"):
        CustomerFactory(chain=chain, name=name, home_clinic=clinic_a, stage=Stage.LEAD,
                        first_touch_at=local(today - dt.timedelta(days=1)))
    followups_generate(chain=chain, today=today)
    doctor = StaffFactory(chain=chain, role=Role.DOCTOR, name="陈医生", clinics=[clinic_a])
    start = local(today - dt.timedelta(days=1))
    Appointment.objects.create(chain=chain, clinic=clinic_a, customer=zhang, doctor=doctor,
                               status=AppointmentStatus.COMPLETED, start_at=start,
                               end_at=start + dt.timedelta(minutes=45))
    surveys_create_for_visits(chain=chain, today=today)
    return {"zhang": zhang, "survey": Survey.objects.get()}


def test_staff_pages_charts_the_admin_and_the_survey_page_work_under_the_policy_without_a_violation(
        live_server, browser, clinic_data):
    violations = Violations()
    page = new_page(browser, violations, locale="en-US", viewport={"width": 1366, "height": 900})

    # given: the login page, with its policy
    response = page.goto(f"{live_server.url}/login/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    # the watcher sees what the policy refuses: an inline handler neither runs nor passes unreported
    page.evaluate("document.body.insertAdjacentHTML('beforeend', "
                  "'<img src=\"/static/img/favicon.svg\" onload=\"window.__ran = true\">')")
    page.wait_for_function("() => (window.__cspViolations || []).length > 0")
    assert page.evaluate("window.__ran") is None
    assert any("script-src-attr" in v for v in violations.collect(page))
    violations.clear()

    # when: logging in, searching the customer list (htmx), opening the 360 page and revealing the phone (htmx POST)
    page.fill("#id_username", "chainadmin")
    page.fill("#id_password", PASSWORD)
    page.click(".auth-card button[type=submit]")
    page.wait_for_url(f"{live_server.url}/customers/")
    page.fill("#id_q", "zs")
    page.wait_for_function("() => document.querySelectorAll('#customer-results tbody tr').length === 1")
    page.locator("#customer-results a.row-title").click()
    page.wait_for_url(f"{live_server.url}/customers/{clinic_data['zhang'].id}/")
    page.click("details.reveal > summary")
    page.fill("#id_reveal_reason", "confirm the appointment")
    page.click("details.reveal button[type=submit]")
    page.wait_for_selector("[data-testid=phone].is-revealed")
    assert violations.collect(page) == []

    # the charts draw, and their tooltips show on hover (ECharts writes them with style attributes)
    for path, chart in (("/followups/board/", "#fu-board-chart"), ("/lifecycle/", "#lc-funnel-chart"),
                        ("/surveys/", "#nps-trend")):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_selector(f"{chart} canvas")
        box = page.locator(chart).bounding_box()
        assert box["width"] > 200 and box["height"] > 150, path
        for x in (0.3, 0.5, 0.7):
            page.mouse.move(box["x"] + box["width"] * x, box["y"] + box["height"] * 0.5)
            page.wait_for_timeout(150)
        assert violations.collect(page) == [], path
    page.goto(f"{live_server.url}/followups/board/")
    box = page.locator("#fu-board-chart").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    page.wait_for_function("() => document.querySelector('#fu-board-chart').innerText.includes('前台小王')")

    # the new playbook's trigger choice submits its form on change (no inline onchange)
    page.goto(f"{live_server.url}/followups/playbooks/new/")
    page.select_option("#id_trigger", index=1)
    page.wait_for_url(lambda url: "trigger=" in url)
    page.wait_for_selector("[data-testid=playbook-form]")

    # the expired-form page's "Go back" goes back (no inline onclick): a form posted with a stale token
    page.goto(f"{live_server.url}/customers/")
    page.evaluate("document.querySelector('form[action=\"/logout/\"] [name=csrfmiddlewaretoken]').value = 'x'.repeat(64)")
    page.click("form[action='/logout/'] button[type=submit]")
    page.wait_for_selector("[data-error=form-expired]")
    page.click("[data-history-back]")
    page.wait_for_url(f"{live_server.url}/customers/")
    assert violations.collect(page) == []

    # the Django admin: its index, a list and an add form
    for path in ("/admin/", "/admin/clinics/staff/", "/admin/clinics/staff/add/", "/admin/core/auditevent/"):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200 and "content-security-policy" in response.headers, path
        assert violations.collect(page) == [], path

    # and a patient's survey page on a phone: answered, thanked, without a violation
    phone = new_page(browser, violations, locale="zh-CN", viewport={"width": 390, "height": 844}, is_mobile=True,
                     has_touch=True)
    url = f"{live_server.url}/surveys/s/{clinic_data['survey'].token}/"
    assert "script-src 'self'" in phone.goto(url).headers["content-security-policy"]
    phone.locator("[data-testid=score] label.choice:has(input[value='9']) span").tap()
    phone.get_by_role("button", name="提交评价").tap()
    phone.wait_for_url(f"{url}thanks/")
    assert violations.collect(phone) == []
    assert Survey.objects.get().score == 9
