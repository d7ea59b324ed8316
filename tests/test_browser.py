"""The staff workspace in a real browser: log in, find a patient by pinyin initials, open the 360 page.

Drives Debian's Chromium (/usr/bin/chromium) through Playwright's sync API; never downloads a browser.
"""

import os
from pathlib import Path

import pytest
from django.utils import timezone

from smileloop.core.testing import browser_marks, chromium_page
from smileloop.customers.enums import Stage
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.visits.services import order_record

# Playwright's sync API runs an event loop in this thread; Django's async-safety check would refuse the ORM.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

SCREENSHOT_DIR = Path(os.environ.get("SMILELOOP_SCREENSHOT_DIR", "/tmp"))

pytestmark = browser_marks()


@pytest.fixture
def browser_page():
    pytest.importorskip("playwright.sync_api")
    with chromium_page() as page:
        yield page


def login_as_chain_admin(page, live_server) -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "chainadmin")
    page.fill("#id_password", "pass-1234")
    page.click(".auth-card button[type=submit]")
    page.wait_for_url(f"{live_server.url}/customers/")


@pytest.fixture
def patients(transactional_db, chain, clinic_a, clinic_b):
    zhang = CustomerFactory(chain=chain, name="张三", mobile="+8613800138000", mobile_tail="8000",
                            home_clinic=clinic_a, stage=Stage.TREATED, first_touch_channel="douyin")
    CustomerFactory(chain=chain, name="李四", home_clinic=clinic_a, stage=Stage.LEAD)
    CustomerFactory(chain=chain, name="王五", home_clinic=clinic_b, stage=Stage.TREATED)
    CustomerFactory(chain=chain, name="曾小明", home_clinic=clinic_b, stage=Stage.DORMANT)
    return zhang


def test_staff_member_finds_a_patient_by_pinyin_initials_and_opens_the_360_page(live_server, browser_page,
                                                                                 chain_admin, patients):
    page = browser_page
    # given: the chain admin logs in
    login_as_chain_admin(page, live_server)
    assert page.locator("#customer-results tbody tr").count() == 4

    # when: typing pinyin initials into the search box (htmx swaps only the results)
    page.fill("#id_q", "zs")
    page.wait_for_function(
        "() => document.querySelectorAll('#customer-results tbody tr').length === 1")

    # then: 张三 is the one result, with a masked phone
    row = page.locator("#customer-results tbody tr")
    assert row.locator("a.row-title").inner_text() == "张三"
    assert "138****8000" in row.inner_text()
    assert "q=zs" in page.url  # the search is in the address bar (hx-push-url)
    page.screenshot(path=str(SCREENSHOT_DIR / "smileloop-customer-list.png"), full_page=True)

    # when: opening the 360 page
    row.locator("a.row-title").click()
    page.wait_for_url(f"{live_server.url}/customers/{patients.id}/")

    # then
    assert page.locator("h1.profile-name").inner_text().startswith("张三")
    assert page.locator("[data-testid=phone]").inner_text() == "138****8000"
    assert "13800138000" not in page.content()
    page.screenshot(path=str(SCREENSHOT_DIR / "smileloop-customer-360.png"), full_page=True)

    # when: revealing the phone with a reason (htmx POST swaps the phone fragment)
    page.click("details.reveal > summary")
    page.fill("#id_reveal_reason", "confirm tomorrow's appointment")
    page.click("details.reveal button[type=submit]")
    page.wait_for_selector("[data-testid=phone].is-revealed")
    assert page.locator("[data-testid=phone]").inner_text() == "13800138000"


def _rows(page) -> list[str]:
    return page.eval_on_selector_all("#customer-results a.row-title", "links => links.map(a => a.textContent.trim())")


def _wait_for_rows(page, names: list[str]) -> None:
    page.wait_for_function(
        "names => JSON.stringify(Array.from(document.querySelectorAll('#customer-results a.row-title'), "
        "a => a.textContent.trim())) === JSON.stringify(names)", arg=names)


def test_back_and_forward_after_live_searches_show_the_search_each_result_came_from(live_server, browser_page,
                                                                                    chain_admin, patients, clinic_b):
    page = browser_page
    login_as_chain_admin(page, live_server)
    # given: three live searches, the last one narrowed to a clinic, each pushed into the address bar
    page.fill("#id_q", "zs")
    _wait_for_rows(page, ["张三"])
    page.fill("#id_q", "ls")
    _wait_for_rows(page, ["李四"])
    page.fill("#id_q", "w")
    _wait_for_rows(page, ["王五"])
    page.select_option("#id_clinic", str(clinic_b.id))
    page.wait_for_function("id => new URLSearchParams(location.search).get('clinic') === id", arg=str(clinic_b.id))
    _wait_for_rows(page, ["王五"])
    expected = {  # the results and the fields each address stands for
        "zs": (["张三"], ""), "ls": (["李四"], ""), "w": (["王五"], ""), "w+B": (["王五"], str(clinic_b.id))}

    def assert_shows(step: str) -> None:
        names, clinic = expected[step]
        query = step.split("+")[0]
        page.wait_for_function("q => new URLSearchParams(location.search).get('q') === q", arg=query)
        _wait_for_rows(page, names)
        # then: the search box and the clinic select say what the address (and the results) say. Waited for
        # together: "w" and "w+B" share the search, so the box alone says nothing about whether the page is back.
        page.wait_for_function("([q, c]) => document.querySelector('#id_q').value === q"
                               " && document.querySelector('#id_clinic').value === c", arg=[query, clinic])
        assert page.input_value("#id_clinic") == clinic, step

    # when: going back through them, and forward again (htmx restores each from its history cache)
    for step in ("w", "ls", "zs"):
        page.go_back()
        assert_shows(step)
    for step in ("ls", "w", "w+B"):
        page.go_forward()
        assert_shows(step)

    # when: the history cache has lost the pages (htmx then asks the server for the whole page)
    page.evaluate("sessionStorage.removeItem('htmx-history-cache')")  # htmx 2 keeps it there
    page.go_back()
    assert_shows("w")
    assert page.locator("h1").first.inner_text() == "Customers"  # the whole page, not the results alone

    # when: exporting the list on screen after a live search, the export is of that search
    page.fill("#id_q", "zs")
    _wait_for_rows(page, ["张三"])
    page.click("details.export > summary")
    page.fill("details.export input[name=reason]", "review")
    with page.expect_download() as download:
        page.click("details.export button[type=submit]")
    exported = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert "张三" in exported and "李四" not in exported and "王五" not in exported

    # when: opening a patient from the results and coming back
    page.locator("#customer-results a.row-title").first.click()
    page.wait_for_url(f"{live_server.url}/customers/{patients.id}/")
    page.go_back()
    # then: the list page again (not the results fragment the browser fetched at the same address), search kept
    page.wait_for_selector("#id_q")
    page.wait_for_function("() => document.querySelector('#id_q').value === 'zs'")
    assert _rows(page) == ["张三"]


def test_a_card_form_loads_when_opened_and_tops_up_the_wallet(live_server, browser_page, chain_admin, patients):
    page = browser_page
    login_as_chain_admin(page, live_server)
    page.goto(f"{live_server.url}/customers/{patients.id}/")
    topup = page.locator("#loyalty details[data-subform=topup]")
    # given: the card's forms are closed and not in the page yet
    assert page.locator("#loyalty input[name=amount_yuan]").count() == 0

    # when: opening "Top up stored value" (htmx fetches the form) and submitting it
    topup.locator("summary").click()
    topup.locator("input[name=amount_yuan]").fill("100")
    topup.locator("select[name=method]").select_option("cash")
    topup.locator("button[type=submit]").click()

    # then: the card is swapped for the updated one, with the stored value and the forms closed again
    page.wait_for_function(
        "() => document.querySelector('[data-testid=wallet]').textContent.trim().startsWith('¥100.00')")
    assert page.locator("#loyalty input[name=amount_yuan]").count() == 0


def test_a_chain_admins_navigation_stays_on_one_line_on_a_1280_px_laptop(live_server, browser_page, chain_admin):
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 800})
    login_as_chain_admin(page, live_server)  # English (the context's locale): the longest labels
    tops = page.eval_on_selector_all(".mainnav-link", "links => links.map(a => Math.round(a.getBoundingClientRect().top))")
    assert len(tops) == 13  # every entry a chain admin may open
    assert len(set(tops)) == 1, f"the navigation wrapped: link tops {tops}"
    chip = page.locator(".user-chip")
    assert not page.locator(".user-text").is_visible()  # the name gave way to the nav …
    # … and is the avatar's tooltip; the chip opens one's own password change
    assert chip.get_attribute("title") == "总部管理员 · Chain admin (chainadmin) · Change your password"
    chip.click()
    page.wait_for_url(f"{live_server.url}/account/password/")


def test_a_front_desk_with_a_short_navigation_keeps_their_name_in_the_top_bar_at_1280_px(live_server, browser_page,
                                                                                        front_desk_a):
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "frontdesk_a")
    page.fill("#id_password", "pass-1234")
    page.click(".auth-card button[type=submit]")
    page.wait_for_url(f"{live_server.url}/customers/")
    assert page.locator(".mainnav-link").count() < 10
    assert page.locator(".user-text").is_visible()
    assert page.locator(".user-name").inner_text() == "前台小王"


def test_a_child_is_registered_with_the_mother_and_her_consents_and_the_family_shows_on_the_360_page(
        live_server, browser_page, chain_admin, patients, clinic_a):
    from smileloop.customers.models import Consent, Customer, HouseholdMember

    page = browser_page
    login_as_chain_admin(page, live_server)

    # when: the front desk registers 张小宝 without a phone, with the mother's number and two consents ticked
    page.goto(f"{live_server.url}/customers/new/")
    page.fill("#id_name", "张小宝")
    page.select_option("#id_gender", "M")
    page.select_option("#id_home_clinic", str(clinic_a.id))
    page.check("#registration-consents input[value=data_processing]")
    page.check("#registration-consents input[value=health_data]")
    page.fill("#id_relative", "138 0013 8000")
    page.select_option("#id_relation", "parent")
    page.click("form.form-card button[type=submit]")

    # then: the 360 page shows the household headed by the mother, and the two consents
    page.wait_for_selector("#family")
    child = Customer.objects.get(name="张小宝")
    assert page.url.endswith(f"/customers/{child.id}/")
    family = page.locator("#family").inner_text()
    assert "张三" in family and "Child" in family
    assert HouseholdMember.objects.get(customer=child).household.head_id == patients.id
    assert set(Consent.objects.filter(customer=child, granted=True).values_list("purpose", flat=True)) == {
        "data_processing", "health_data"}


def test_the_360_page_of_a_patient_with_bills_fits_a_390_px_phone_in_english(live_server, browser_page, chain_admin,
                                                                            patients, catalogue):
    # given a patient with a discounted bill (the widest line table: every column filled)
    order_record(customer=patients, clinic=patients.home_clinic, ordered_at=timezone.now(),
                 lines=[{"item_code": "CL01", "quantity": 1, "unit_price_fen": 20000, "discount_fen": 2400}],
                 payments=[{"method": "wechat_pay", "amount_fen": 17600}])
    page = browser_page
    login_as_chain_admin(page, live_server)
    # when the 360 page opens on a phone
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/customers/{patients.id}/")
    page.wait_for_selector("#orders article.order")
    # then the page does not scroll sideways, and the bill's amount is on the page (its table scrolls in its box)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.locator("#orders article.order").first.evaluate("el => getComputedStyle(el).overflowX") == "auto"
    assert "¥176.00" in page.locator("#orders").inner_text()


def test_after_a_password_reset_the_member_of_staff_chooses_their_own_before_anything_else(
        live_server, browser_page, chain_admin, front_desk_a):
    from smileloop.clinics.services import staff_password_set

    staff_password_set(staff=front_desk_a, actor=chain_admin.user, password="Temp-pass-2026", reason="忘记密码")
    page = browser_page
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "frontdesk_a")
    page.fill("#id_password", "Temp-pass-2026")
    page.click(".auth-card button[type=submit]")
    # the login's landing page is the password change, which will come back to it
    page.wait_for_url(f"{live_server.url}/account/password/?next=/customers/")
    assert page.locator("[data-testid=password-change-required]").is_visible()
    page.goto(f"{live_server.url}/followups/")
    page.wait_for_url(f"{live_server.url}/account/password/?next=/followups/")
    # a mismatch is refused on its field
    page.fill("#id_old_password", "Temp-pass-2026")
    page.fill("#id_new_password1", "Brush-twice-2026")
    page.fill("#id_new_password2", "Brush-twice-2027")
    page.click("[data-testid=password-change] button[type=submit]")
    assert page.locator("#id_new_password2_error").inner_text() == "The two passwords differ."
    page.fill("#id_old_password", "Temp-pass-2026")
    page.fill("#id_new_password1", "Brush-twice-2026")
    page.fill("#id_new_password2", "Brush-twice-2026")
    page.click("[data-testid=password-change] button[type=submit]")
    page.wait_for_url(f"{live_server.url}/followups/")
    assert "Your password was changed." in page.locator(".messages").inner_text()
    front_desk_a.user.refresh_from_db()
    assert front_desk_a.user.check_password("Brush-twice-2026")
