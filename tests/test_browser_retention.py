"""The retention pages in a real browser: the front desk works today's follow-ups, marketing builds a segment,
a patient answers the satisfaction survey on a phone, and the director's charts draw without script errors.

Drives Debian's Chromium (/usr/bin/chromium) through Playwright's sync API; never downloads a browser.
Data is made through the services (playbooks installed, the daily follow-up run, the survey run), as in
production; the pages are only driven through what a user sees and clicks.
"""

import datetime as dt
import os
import re
from pathlib import Path

import pytest
from django.utils import timezone

from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.core.testing import FACTORY_PASSWORD, browser_log_in, browser_marks, context_page
from smileloop.customers.enums import Stage
from smileloop.customers.models import Customer, Interaction
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.enums import Outcome, TaskStatus
from smileloop.followups.models import FollowupTask
from smileloop.followups.services import followups_generate, playbooks_install_defaults
from smileloop.segments.models import Segment
from smileloop.surveys.models import Survey
from smileloop.surveys.services import survey_answer, surveys_create_for_visits
from smileloop.visits.enums import AppointmentStatus
from smileloop.visits.models import Appointment

# Playwright's sync API runs an event loop in this thread; Django's async-safety check would refuse the ORM.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

SCREENSHOT_DIR = Path(os.environ.get("SMILELOOP_SCREENSHOT_DIR", "/tmp"))
PASSWORD = FACTORY_PASSWORD

pytestmark = browser_marks()


@pytest.fixture
def browser_page(browser, js_errors):
    with context_page(browser, js_errors, locale="en-US") as page:
        yield page


@pytest.fixture
def phone_page(browser, js_errors):
    """A patient's phone: iPhone-sized, touch, Chinese."""
    with context_page(browser, js_errors, locale="zh-CN", phone=True) as page:
        yield page


def local(day: dt.date, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=timezone.get_current_timezone())


log_in = browser_log_in


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOT_DIR / f"smileloop-{name}.png"), full_page=True)


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def kpis_paired(page, selector: str) -> None:
    """Each figure of a KPI strip sits right under its label (not in a column of its own)."""
    kpis = page.locator(f"{selector} dt")
    assert kpis.count() > 1
    for i in range(kpis.count()):
        label = kpis.nth(i).bounding_box()
        value = page.locator(f"{selector} dd").nth(i).bounding_box()
        assert abs(label["x"] - value["x"]) < 2 and 0 <= value["y"] - (label["y"] + label["height"]) < 12, (
            i, label, value)


def on_one_line(*locators) -> bool:
    boxes = [loc.bounding_box() for loc in locators]
    centres = [b["y"] + b["height"] / 2 for b in boxes]
    return max(centres) - min(centres) < 8


# --- 1. the front desk's inbox ------------------------------------------------------------------------------

@pytest.fixture
def leads_due_today(transactional_db, chain, clinic_a, front_desk_a):
    """Two leads who never came (yesterday's and one from three days ago) and today's follow-up run."""
    playbooks_install_defaults(chain=chain)
    today = timezone.localdate()
    chen = CustomerFactory(chain=chain, name="陈静", mobile="+8613900139001", mobile_tail="9001",
                           home_clinic=clinic_a, stage=Stage.LEAD, first_touch_at=local(today - dt.timedelta(days=1)))
    liu = CustomerFactory(chain=chain, name="刘洋", mobile="+8613900139002", mobile_tail="9002",
                          home_clinic=clinic_a, stage=Stage.LEAD, first_touch_at=local(today - dt.timedelta(days=3)))
    followups_generate(chain=chain, today=today)
    chen_task = FollowupTask.objects.get(customer=chen, playbook__code="lead_never_came")
    liu_task = FollowupTask.objects.get(customer=liu, playbook__code="lead_never_came", step__delay_days=3)
    assert chen_task.assignee_id == liu_task.assignee_id == front_desk_a.id  # no consultant: the front desk
    return {"chen": chen, "liu": liu, "chen_task": chen_task, "liu_task": liu_task}


def test_front_desk_records_follow_up_outcomes_in_the_inbox_and_they_reach_the_timeline(
        live_server, browser_page, js_errors, front_desk_a, leads_due_today):
    page = browser_page
    chen, chen_task, liu_task = leads_due_today["chen"], leads_due_today["chen_task"], leads_due_today["liu_task"]
    # given: the front desk logs in and opens "My tasks" from the navigation
    log_in(page, live_server, "frontdesk_a")
    page.get_by_role("navigation", name="Main navigation").get_by_role("link", name="My tasks").click()
    page.wait_for_url(f"{live_server.url}/followups/")

    # then: both leads' tasks are listed, each with its script filled in with the patient's name
    row = page.locator(f"#task-{chen_task.id}")
    assert row.locator(".row-title").inner_text() == "陈静"
    script = row.locator("[data-testid=script]").inner_text()
    assert script.startswith("陈静您好，我是静安门诊的顾问。您1天前咨询过我们")
    assert "{" not in script
    liu_row = page.locator(f"#task-{liu_task.id}")
    assert liu_row.locator("[data-testid=script]").inner_text().startswith("刘洋您好")
    assert "139****9001" in row.inner_text() and "13900139001" not in page.content()
    # the counts read as label over figure, and the outcome form is one compact line on a desktop
    assert page.locator("[data-testid=inbox-counts] dd").all_inner_texts() == ["1", "2", "0"]
    kpis_paired(page, "[data-testid=inbox-counts]")
    assert on_one_line(row.locator("select[name=outcome]"), row.locator("input[name=note]"),
                       row.get_by_role("button", name="Record outcome"))
    shot(page, "followups-inbox")

    # when: the call went through; the outcome is recorded with a note (htmx swaps only that row)
    page.evaluate("window.__sameDocument = true")
    row.locator("select[name=outcome]").select_option(Outcome.REACHED.value)
    row.locator("input[name=note]").fill("周六上午来检查")
    row.get_by_role("button", name="Record outcome").click()
    result = page.locator(f"#task-{chen_task.id} [data-testid=task-result]")
    result.wait_for()

    # then: the row shows the outcome, the page was not reloaded, the other task is still open
    assert "Reached" in result.inner_text() and "周六上午来检查" in result.inner_text()
    assert page.evaluate("window.__sameDocument === true")
    assert page.locator(f"#task-{liu_task.id} form.fu-outcome").is_visible()
    chen_task.refresh_from_db()
    assert (chen_task.status, chen_task.outcome, chen_task.note, chen_task.completed_by_id) == (
        TaskStatus.DONE, Outcome.REACHED, "周六上午来检查", front_desk_a.id)

    # when: nobody answers on the other lead's number
    liu_row.locator("select[name=outcome]").select_option(Outcome.NO_ANSWER.value)
    liu_row.get_by_role("button", name="Record outcome").click()
    page.locator(f"#task-{liu_task.id} [data-testid=task-result]").wait_for()
    assert "No answer" in page.locator(f"#task-{liu_task.id}").inner_text()
    assert page.evaluate("window.__sameDocument === true")
    liu_task.refresh_from_db()
    assert (liu_task.status, liu_task.outcome) == (TaskStatus.DONE, Outcome.NO_ANSWER)
    shot(page, "followups-inbox-done")

    # then: the outcome is on the patient's 360 timeline
    page.locator(f"#task-{chen_task.id} a.row-title").click()
    page.wait_for_url(f"{live_server.url}/customers/{chen.id}/")
    timeline = page.locator("#timeline")
    entry = timeline.locator(".timeline-item", has_text="周六上午来检查")
    assert entry.count() == 1
    assert "未到店线索回访" in entry.inner_text() and "前台小王" in entry.inner_text()
    assert Interaction.objects.filter(customer=chen, data__followup_task_id=chen_task.id).count() == 1
    shot(page, "followups-timeline")
    assert js_errors == []


def test_a_failed_save_in_the_inbox_says_so_and_an_ended_session_goes_to_the_login_and_back(
        live_server, browser_page, js_errors, front_desk_a, leads_due_today):
    page = browser_page
    chen_task, liu_task = leads_due_today["chen_task"], leads_due_today["liu_task"]
    log_in(page, live_server, "frontdesk_a")
    page.goto(f"{live_server.url}/followups/")
    row = page.locator(f"#task-{chen_task.id}")
    banner = page.locator("#request-error")
    assert not banner.is_visible()

    # when the server fails on the save (the answer of a crashed worker)
    page.route("**/complete/", lambda route: route.fulfill(status=500, body="<h1>Server Error (500)</h1>"))
    row.get_by_role("button", name="Record outcome").click()
    # then the page says nothing was saved, and the task is still open to try again
    banner.wait_for(state="visible")
    assert "nothing was saved" in banner.inner_text() and "server" in banner.inner_text()
    assert row.locator("form.fu-outcome").is_visible()
    shot(page, "followups-inbox-server-error")

    # when the database is busy with another writer (the 503 DatabaseBusyMiddleware answers)
    page.unroute("**/complete/")
    page.route("**/complete/", lambda route: route.fulfill(
        status=503, headers={"Retry-After": "5"}, body='<div class="card" data-testid="database-busy">busy</div>'))
    row.get_by_role("button", name="Record outcome").click()
    page.wait_for_function("() => document.getElementById('request-error').dataset.kind === 'busy'")
    assert "database is busy" in banner.inner_text() and "nothing was saved" in banner.inner_text()
    assert row.locator("form.fu-outcome").is_visible()

    # when the network is gone
    page.unroute("**/complete/")
    page.route("**/complete/", lambda route: route.abort("internetdisconnected"))
    row.get_by_role("button", name="Record outcome").click()
    page.wait_for_function("() => document.getElementById('request-error').dataset.kind === 'network'")
    assert "No connection to the server" in banner.inner_text()
    page.unroute("**/complete/")
    # then the next attempt goes through and the message goes away
    row.get_by_role("button", name="Record outcome").click()
    page.locator(f"#task-{chen_task.id} [data-testid=task-result]").wait_for()
    assert not banner.is_visible()
    chen_task.refresh_from_db()
    assert chen_task.status == TaskStatus.DONE

    # when the form's CSRF cookie is gone (cleared by the browser) and the next outcome is recorded
    page.context.clear_cookies(name="csrftoken")
    page.locator(f"#task-{liu_task.id}").get_by_role("button", name="Record outcome").click()
    page.wait_for_function("() => document.getElementById('request-error').dataset.kind === 'expired'")
    assert "This form has expired" in banner.inner_text()
    page.reload()

    # when the session ended meanwhile (it expired, or logged out elsewhere) and the next outcome is recorded
    page.context.clear_cookies(name="sessionid")
    page.locator(f"#task-{liu_task.id}").get_by_role("button", name="Record outcome").click()
    # then the whole page goes to the login (not the login form inside the task's row), and back to the inbox
    page.wait_for_url(re.compile(r"/login/\?next="))
    assert page.locator(".auth-card").count() == 1 and page.locator(f"#task-{liu_task.id}").count() == 0
    page.fill("#id_username", "frontdesk_a")
    page.fill("#id_password", PASSWORD)
    page.click(".auth-card button[type=submit]")
    page.wait_for_url(f"{live_server.url}/followups/")
    liu_task.refresh_from_db()
    assert liu_task.status == TaskStatus.OPEN  # nothing was recorded without a login
    page.locator(f"#task-{liu_task.id} form.fu-outcome").wait_for()
    # no script error; what the console logged is the browser and htmx reporting the failures this test caused
    caused = ("status of 500", "status of 503", "status of 403", "ERR_INTERNET_DISCONNECTED")
    unexpected = [e for e in js_errors if e.startswith("pageerror") or not (
        "htmx.min.js" in e or (e.startswith("console.error: Failed to load resource") and any(c in e for c in caused)))]
    assert unexpected == [], unexpected


# --- 2. the segment builder ----------------------------------------------------------------------------------

@pytest.fixture
def segment_patients(transactional_db, chain, clinic_a, clinic_b):
    now = timezone.now()
    long_ago, recently = now - dt.timedelta(days=400), now - dt.timedelta(days=30)
    sleeper = CustomerFactory(chain=chain, name="曾小明", home_clinic=clinic_a, stage=Stage.DORMANT,
                              last_visit_at=long_ago, first_visit_at=long_ago, visit_count=3)
    CustomerFactory(chain=chain, name="王老五", home_clinic=clinic_b, stage=Stage.DORMANT,
                    last_visit_at=recently, first_visit_at=long_ago, visit_count=2)
    CustomerFactory(chain=chain, name="李四", home_clinic=clinic_a, stage=Stage.TREATED,
                    last_visit_at=long_ago, first_visit_at=long_ago, visit_count=1)
    CustomerFactory(chain=chain, name="赵六", home_clinic=clinic_b, stage=Stage.LEAD)
    return sleeper


HTMX_BUSY = ".htmx-request, .htmx-swapping, .htmx-settling, .htmx-added"


def htmx_settled(page) -> None:
    """Wait until htmx has swapped and settled everything: content it has just added gets its listeners only
    then, so a change made earlier would be lost (no request)."""
    page.wait_for_function(f"() => !document.querySelector('{HTMX_BUSY}')")


def condition_set(page, row, field: str):
    """Pick a row's field; htmx redraws the row (same id) with that field's operators and value input."""
    htmx_settled(page)
    row_id = row.get_attribute("id")
    row.locator("select[name$=-field]").select_option(field)
    page.wait_for_function(
        "id => { const r = document.getElementById(id); return r && r.querySelector('select[name$=-op]'); }",
        arg=row_id)
    return page.locator(f"#{row_id}")


def preview(page):
    with page.expect_response(re.compile(r"/segments/builder/preview/")) as response:
        page.get_by_role("button", name="Preview").click()
    # The response arrives before htmx swaps it in: wait until htmx has swapped and settled.
    htmx_settled(page)
    page.locator("#builder").wait_for()
    return response.value


def test_marketing_builds_a_segment_from_conditions_previews_it_and_saves_it(
        live_server, browser_page, js_errors, marketing, segment_patients):
    page = browser_page
    # given: marketing opens the segments page and starts a new segment
    log_in(page, live_server, "marketing")
    page.goto(f"{live_server.url}/segments/")
    page.get_by_role("link", name="New segment").click()
    page.wait_for_url(f"{live_server.url}/segments/new/")

    # when: the first (empty) row becomes "lifecycle stage is dormant", and the preview is asked for
    first = condition_set(page, page.locator(".seg-cond").first, "stage")
    first.locator("select[name$=-value]").select_option("dormant")
    # a condition reads as one line, "[not] Lifecycle stage · is · Dormant ×", inside a visible box
    assert on_one_line(first.locator("select[name$=-field]"), first.locator("select[name$=-op]"),
                       first.locator("select[name$=-value]"), first.locator(".seg-remove"))
    assert page.locator(".seg-top").evaluate("el => getComputedStyle(el).borderTopStyle") != "none"
    assert preview(page).status == 200

    # then: both dormant patients are counted and listed, the others are not
    assert page.locator("#preview .seg-count").inner_text() == "2 customers"
    names = page.locator("#preview tbody .row-title").all_inner_texts()
    assert sorted(names) == sorted(["曾小明", "王老五"])

    # when: a second condition "last visit more than 180 days ago" is added
    page.get_by_role("button", name="+ Condition").first.click()
    page.wait_for_function("() => document.querySelectorAll('#top-items .seg-cond').length === 2")
    second = condition_set(page, page.locator("#top-items .seg-cond").nth(1), "last_visit_days")
    assert second.locator("select[name$=-op]").input_value() == "older_than"
    second.locator("input[name$=-value]").fill("180")
    preview(page)

    # then: only the patient whose last visit is older is left
    assert page.locator("#preview .seg-count").inner_text() == "1 customer"
    assert page.locator("#preview tbody .row-title").all_inner_texts() == ["曾小明"]
    shot(page, "segment-builder-preview")

    # when: a bad value (0 days) is previewed
    second = page.locator("#top-items .seg-cond").nth(1)
    second.locator("input[name$=-value]").fill("0")
    assert preview(page).status == 422

    # then: a clear error sits next to that condition, not the first one, and no count is shown
    page.locator("#top-items .seg-cond.has-error").wait_for()
    second = page.locator("#top-items .seg-cond").nth(1)
    assert "has-error" in second.get_attribute("class")
    error = second.locator(".seg-error").inner_text()
    assert re.search(r"\b1\b", error), error  # names the minimum
    assert page.locator("#top-items .seg-cond").first.locator(".seg-error").count() == 0
    assert page.locator("#preview .seg-count").count() == 0
    shot(page, "segment-builder-error")
    # the busy indicator sits beside the buttons, inside the form (not at the page's right edge)
    spinner, actions = page.locator("#seg-indicator").bounding_box(), page.locator("#builder .form-actions").bounding_box()
    assert actions["x"] <= spinner["x"] and spinner["x"] + spinner["width"] <= actions["x"] + actions["width"]
    assert actions["y"] <= spinner["y"] <= actions["y"] + actions["height"]

    # when: the value is corrected and the segment is saved under a name
    second.locator("input[name$=-value]").fill("365")
    page.fill("#id_name", "一年未到店的沉睡客户")
    page.get_by_role("button", name="Save segment").click()
    page.wait_for_url(re.compile(rf"{live_server.url}/segments/\d+/$"))

    # then: it is stored as the rule tree the rows describe, and listed with its count
    segment = Segment.objects.get()
    assert segment.name == "一年未到店的沉睡客户"
    assert segment.rule == {"all": [{"field": "stage", "op": "eq", "value": "dormant"},
                                    {"field": "last_visit_days", "op": "older_than", "value": 365}]}
    assert page.locator(".message-success").inner_text() == "Segment saved."
    page.goto(f"{live_server.url}/segments/")
    row = page.locator("tbody tr", has_text="一年未到店的沉睡客户")
    count_cell = row.locator("td.num")
    page.wait_for_function("el => el.textContent.trim() === '1'", arg=count_cell.element_handle())
    shot(page, "segment-list")
    assert js_errors == []


def test_marketing_edits_a_rule_tags_rule_in_the_builder_and_enter_saves_it_to_the_tag(
        live_server, browser_page, js_errors, marketing, segment_patients):
    from smileloop.tagging.enums import TagKind
    from smileloop.tagging.models import Tag
    from smileloop.tagging.tests.factories import TagFactory, TagGroupFactory

    group = TagGroupFactory(chain=marketing.chain, code="basic", name="基础属性")
    senior = TagFactory(group=group, code="senior", name="老年", kind=TagKind.RULE,
                        rule={"all": [{"field": "age", "op": "gte", "value": 60}]})
    page = browser_page
    # given: marketing opens the tag's rule from the tag list
    log_in(page, live_server, "marketing")
    page.goto(f"{live_server.url}/tags/")
    page.locator(f"a[href='/segments/new/?tag={senior.id}']").click()
    page.wait_for_url(f"{live_server.url}/segments/new/?tag={senior.id}")
    # then: the page edits the tag's rule, not a segment (no segment name, no "Save segment")
    assert page.locator("h1").inner_text() == "Rule of the tag “老年”"
    assert page.locator("#id_name").count() == 0
    assert page.get_by_role("button", name="Save segment").count() == 0
    value = page.locator(".seg-cond input[name$=-value]").first
    assert value.input_value() == "60"
    # when: the age becomes 65 and Enter is pressed in the field
    value.fill("65")
    value.press("Enter")
    page.wait_for_url(f"{live_server.url}/tags/")
    # then: the tag carries the new rule, and nothing else was made
    senior.refresh_from_db()
    assert senior.rule == {"all": [{"field": "age", "op": "gte", "value": 65}]}
    assert Segment.objects.count() == 0 and Tag.objects.count() == 1
    assert "Rule of tag “老年” saved" in page.locator(".message-success").inner_text()
    assert js_errors == []

# --- 3. the patient's survey on a phone ----------------------------------------------------------------------

@pytest.fixture
def survey_link(transactional_db, chain, clinic_a, director_a):
    """Yesterday's completed visit with a doctor, and the nightly survey run."""
    playbooks_install_defaults(chain=chain)
    doctor = StaffFactory(chain=chain, role=Role.DOCTOR, name="陈医生", clinics=[clinic_a])
    patient = CustomerFactory(chain=chain, name="张三丰", home_clinic=clinic_a, stage=Stage.TREATED)
    start = local(timezone.localdate() - dt.timedelta(days=1), 10)
    Appointment.objects.create(chain=chain, clinic=clinic_a, customer=patient, doctor=doctor,
                               status=AppointmentStatus.COMPLETED, start_at=start,
                               end_at=start + dt.timedelta(minutes=45))
    assert surveys_create_for_visits(chain=chain, today=timezone.localdate())["created"] == 1
    return Survey.objects.get()


def test_patient_answers_the_survey_on_a_phone_in_chinese_and_a_low_score_opens_a_complaint(
        live_server, phone_page, js_errors, director_a, survey_link):
    page = phone_page
    url = f"{live_server.url}/surveys/s/{survey_link.token}/"
    # given: the patient opens the link on the phone
    page.goto(url)

    # then: the page is in Chinese, with the clinic and doctor and a masked name, and fits the screen
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    heading = page.locator("h1").inner_text()
    assert "这次就诊体验如何" in heading and "张三丰" not in heading
    assert "静安门诊" in page.locator(".m-facts").inner_text()
    assert "陈医生" in page.locator(".m-facts").inner_text()
    assert page.get_by_role("button", name="提交评价").is_visible()
    assert no_horizontal_scroll(page)
    # the 0–10 scale is two even rows of thumb-sized buttons (no "10" left alone on a third row)
    boxes = page.eval_on_selector_all("[data-testid=score] label.choice span", "spans => spans.map(s => {"
                                      "const r = s.getBoundingClientRect(); return [Math.round(r.top), r.width, r.height]; })")
    assert len(boxes) == 11 and len({top for top, _, _ in boxes}) == 2
    assert min(min(w, h) for _, w, h in boxes) >= 44
    shot(page, "survey-phone")

    # when: a score of 3 and the tag "waiting time" are chosen (tapping the chips), with a comment
    page.locator("[data-testid=score] label.choice:has(input[value='3']) span").tap()
    page.locator("[data-testid=tags] label.choice", has_text="等待时间").locator("span").tap()
    assert page.locator("[data-testid=score] input[value='3']").is_checked()
    assert page.locator("[data-testid=tags] input[value='waiting_time']").is_checked()
    page.locator("textarea[name=comment]").fill("等了一个小时才看上")
    shot(page, "survey-phone-filled")
    page.get_by_role("button", name="提交评价").tap()

    # then: the thank-you page
    page.wait_for_url(f"{url}thanks/")
    assert page.locator("[data-testid=thanks] h1").inner_text() == "感谢您的评价！"
    assert no_horizontal_scroll(page)
    shot(page, "survey-phone-thanks")

    # and: the answer is stored, and the low score opened a complaint task for the clinic director
    survey = Survey.objects.get(pk=survey_link.pk)
    assert (survey.score, survey.tags, survey.comment) == (3, ["waiting_time"], "等了一个小时才看上")
    task = FollowupTask.objects.get(pk=survey.complaint_task_id)
    assert (task.playbook.code, task.status, task.assignee_id) == ("complaint", TaskStatus.OPEN, director_a.id)
    assert task.due_at <= survey.answered_at + dt.timedelta(hours=24)

    # when: the link is opened again
    page.goto(url)

    # then: it says it was already answered and offers no form
    assert page.locator("[data-testid=closed-answered] h1").inner_text() == "您已提交过评价，感谢！"
    assert page.locator("input[name=score]").count() == 0
    assert FollowupTask.objects.filter(playbook__code="complaint").count() == 1
    assert js_errors == []


def test_a_promoter_score_opens_no_complaint(live_server, phone_page, js_errors, survey_link):
    page = phone_page
    page.goto(f"{live_server.url}/surveys/s/{survey_link.token}/")
    page.locator("[data-testid=score] label.choice:has(input[value='10']) span").tap()
    page.get_by_role("button", name="提交评价").tap()
    page.wait_for_url(re.compile(r"/thanks/$"))
    assert Survey.objects.get(pk=survey_link.pk).score == 10
    assert not FollowupTask.objects.filter(playbook__code="complaint").exists()
    assert js_errors == []


def test_submitting_without_a_score_shows_the_error_in_chinese(live_server, phone_page, js_errors, survey_link):
    page = phone_page
    page.goto(f"{live_server.url}/surveys/s/{survey_link.token}/")
    page.get_by_role("button", name="提交评价").tap()
    error = page.locator("#score-errors")
    error.wait_for()
    assert re.search(r"[\u4e00-\u9fff]", error.inner_text()), error.inner_text()
    assert Survey.objects.get(pk=survey_link.pk).answered_at is None
    assert no_horizontal_scroll(page)


# --- 4. the director's charts --------------------------------------------------------------------------------

@pytest.fixture
def director_data(transactional_db, chain, clinic_a, front_desk_a, director_a):
    """Follow-ups due this week (one done), customers in several stages, and an answered survey."""
    playbooks_install_defaults(chain=chain)
    today = timezone.localdate()
    for i, (name, stage) in enumerate([("陈静", Stage.LEAD), ("刘洋", Stage.LEAD), ("王芳", Stage.TREATED),
                                       ("李娜", Stage.BOOKED)]):
        CustomerFactory(chain=chain, name=name, home_clinic=clinic_a, stage=stage,
                        first_touch_at=local(today - dt.timedelta(days=1 + i % 2)))
    followups_generate(chain=chain, today=today)
    from smileloop.followups.services import followup_complete

    # a lead's task (the row order of the generated tasks depends on the query plan): reaching them makes one
    # customer "contacted"
    task = FollowupTask.objects.filter(assignee=front_desk_a, customer__stage=Stage.LEAD).order_by("id").first()
    assert task is not None
    followup_complete(task=task, outcome=Outcome.REACHED, note="", actor=front_desk_a)
    patient = CustomerFactory(chain=chain, name="张三丰", home_clinic=clinic_a, stage=Stage.TREATED)
    start = local(today - dt.timedelta(days=1), 10)
    Appointment.objects.create(chain=chain, clinic=clinic_a, customer=patient, status=AppointmentStatus.COMPLETED,
                               start_at=start, end_at=start + dt.timedelta(minutes=45))
    surveys_create_for_visits(chain=chain, today=today)
    survey_answer(token=Survey.objects.get().token, score=9, tags=["environment"], comment="很好")


def chart_drawn(page, container: str) -> None:
    page.wait_for_selector(f"{container} canvas, {container} svg", state="attached")
    box = page.locator(container).bounding_box()
    assert box and box["width"] > 200 and box["height"] > 150, box


def test_director_opens_the_team_board_funnel_and_nps_pages_with_charts_and_no_script_errors(
        live_server, browser_page, js_errors, director_data):
    page = browser_page
    log_in(page, live_server, "director_a")

    # the team board: the front desk's row, and the stacked bar chart
    page.goto(f"{live_server.url}/followups/board/")
    assert "前台小王" in page.locator("[data-testid=by-staff]").inner_text()
    chart_drawn(page, "#fu-board-chart")
    shot(page, "followups-board")
    # changing the period swaps the results by htmx and the chart is drawn again
    with page.expect_response(re.compile(r"/followups/board/\?")):
        page.select_option("#id_days", "30")
    chart_drawn(page, "#fu-board-chart")

    # the lifecycle funnel
    page.goto(f"{live_server.url}/lifecycle/")
    for stage in (Stage.LEAD, Stage.CONTACTED, Stage.TREATED):
        now_in_stage = Customer.objects.filter(stage=stage).count()
        assert now_in_stage > 0
        cell = page.locator(f"[data-testid=stages] tr[data-stage={stage.value}] td.num").first
        assert cell.inner_text() == str(now_in_stage), stage
    chart_drawn(page, "#lc-funnel-chart")
    shot(page, "lifecycle-funnel")

    # NPS
    page.goto(f"{live_server.url}/surveys/")
    assert "很好" in page.locator("[data-testid=latest]").inner_text()
    chart_drawn(page, "#nps-trend")
    shot(page, "surveys-nps")

    assert js_errors == []


def test_the_team_board_and_the_funnel_fit_a_390_px_phone_in_english(live_server, browser, js_errors, director_data):
    # given: a director on a phone, in English (longer column headings than Chinese)
    context = browser.new_context(locale="en-US", viewport={"width": 390, "height": 844}, is_mobile=True)
    page = js_errors.watch(context.new_page())
    try:
        log_in(page, live_server, "director_a")
        for path, table in (("/followups/board/", "[data-testid=by-staff]"), ("/lifecycle/", "[data-testid=stages]")):
            # when
            page.goto(f"{live_server.url}{path}")
            page.wait_for_selector(table)
            # then: the page does not scroll sideways; a wide table scrolls inside its card
            assert no_horizontal_scroll(page), path
            card = page.locator(table).locator("xpath=ancestor::section[1]").bounding_box()
            assert card["x"] >= 0 and card["x"] + card["width"] <= 390, (path, card)
    finally:
        context.close()
    assert js_errors == []
