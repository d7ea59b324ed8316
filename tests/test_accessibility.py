"""Accessibility of the staff workspace and the patient pages: form errors tied to their fields, named table columns
and choices, text contrast (WCAG AA), and on a 390 px phone tables that scroll inside their box, reachable by keyboard.

The browser tests drive Debian's Chromium (/usr/bin/chromium) through Playwright's sync API; never a downloaded browser.
"""

import datetime as dt
import os
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from smileloop.core.testing import browser_marks, chromium_page
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.tagging.tests.factories import TagFactory, TagGroupFactory

# Playwright's sync API runs an event loop in this thread; Django's async-safety check would refuse the ORM.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ZH = {"Accept-Language": "zh-hans"}


def _ids(html: str) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', html))


# --- form errors ------------------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_field_error_is_announced_with_its_field(client, front_desk_a):
    """Django names "<id>_error" and "<id>_helptext" in a field's aria-describedby: those elements must exist, or a
    screen reader hears "invalid" and never what is wrong."""
    client.force_login(front_desk_a.user)
    response = client.post(reverse("customers:create"), {"name": "", "mobile": "12"}, headers=ZH)
    html = response.content.decode()
    inputs = re.findall(r'<input[^>]*name="(?:name|mobile)"[^>]*>', html)
    assert len(inputs) == 2
    ids = _ids(html)
    for tag in inputs:
        assert 'aria-invalid="true"' in tag
        described = re.search(r'aria-describedby="([^"]+)"', tag).group(1).split()
        assert any(ref.endswith("_error") for ref in described)
        for ref in described:
            assert ref in ids, f"{tag} is described by #{ref}, which the page lacks"
    # the error itself is what the description reads
    error_box = re.search(r'id="id_name_error">(.*?)</div>', html, re.S).group(1)
    assert "此项为必填项" in error_box


# --- table columns and choices have names --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_header_cells_of_the_selection_and_action_columns_are_named(client, chain_admin, chain, clinic_a):
    CustomerFactory(chain=chain, name="张三", home_clinic=clinic_a)
    TagFactory(group=TagGroupFactory(chain=chain), chain=chain)
    client.force_login(chain_admin.user)
    for url, name in ((reverse("customers:list"), "选择"), (reverse("tagging:list"), "操作"),
                      (reverse("followups:playbooks"), "操作")):
        html = client.get(url, headers=ZH).content.decode()
        assert "<th></th>" not in html, url
        assert f'<th><span class="visually-hidden">{name}</span></th>' in html, url


@pytest.mark.django_db
def test_each_keep_choice_of_a_duplicate_group_names_its_record(client, director_a, chain, clinic_a):
    first = CustomerFactory(chain=chain, name="赵六", birthday=dt.date(1985, 3, 1), home_clinic=clinic_a)
    second = CustomerFactory(chain=chain, name="赵六", birthday=dt.date(1985, 3, 1), home_clinic=clinic_a)
    client.force_login(director_a.user)
    html = client.get(reverse("customers:merge_candidates"), headers=ZH).content.decode()
    ids = _ids(html)
    for customer in (first, second):
        radio = re.search(rf'<input type="radio" name="survivor" value="{customer.id}"[^>]*>', html).group(0)
        labelled_by = re.search(r'aria-labelledby="([^"]+)"', radio).group(1).split()
        assert all(ref in ids for ref in labelled_by)
        name_cell = re.search(rf'<td id="{labelled_by[1]}">(.*?)</td>', html).group(1)
        assert "赵六" in name_cell
    assert len(ids) == len(re.findall(r'\bid="', html))  # ids are unique


# --- contrast ---------------------------------------------------------------------------------------------------------
def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: str, b: str) -> float:
    dark, light = sorted((_luminance(a), _luminance(b)))
    return (light + 0.05) / (dark + 0.05)


@pytest.mark.parametrize("css", ["static/css/staff.css", "static/css/member.css"])
def test_small_muted_and_accent_text_reads_at_wcag_aa_contrast(css):
    text = (Path(settings.BASE_DIR) / css).read_text()
    colours = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})", text))
    # muted text (page intros, footer, breadcrumbs, plain badges) on the page background and on the plain badge
    for background in ("#f4f6f9", "#f1f3f6", "#ffffff"):
        assert _contrast(colours["muted"], background) >= 4.5, (css, background)
    # the accent on its soft tint (the "arrived" badge, the current language)
    assert _contrast(colours["primary"], colours["primary-soft"]) >= 4.5, css


# --- a 390 px phone -----------------------------------------------------------------------------------------------------
@pytest.fixture
def phone_page():
    pytest.importorskip("playwright.sync_api")
    with chromium_page(locale="en-US", width=390, height=844, phone=True) as page:
        yield page


def _browser_test(test):
    for mark in browser_marks():
        test = mark(test)
    return test


def _log_in(page, live_server) -> None:
    """As the chain admin the chain_admin fixture makes (its login is chainadmin / pass-1234)."""
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "chainadmin")
    page.fill("#id_password", "pass-1234")
    page.click(".auth-card button[type=submit]")
    page.wait_for_url(f"{live_server.url}/customers/")


@_browser_test
def test_on_a_phone_pages_fit_tables_scroll_in_a_keyboard_reachable_box_and_boxes_can_be_tapped(
        live_server, phone_page, transactional_db, chain_admin, chain, clinic_a):
    group = TagGroupFactory(chain=chain, name="Interests of a rather long group name")
    for n in range(3):
        TagFactory(group=group, chain=chain, name=f"{n}" + "Orthodontics" * 4)  # no place to break the line
    for n in range(3):
        CustomerFactory(chain=chain, name=f"患者{n}", home_clinic=clinic_a, mobile=f"+861380013800{n}")
    page = phone_page
    _log_in(page, live_server)

    for path in ("/customers/", "/tags/"):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        # no page wider than the phone: a hidden column name at the far end of a wide table stays in its box
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        boxes = page.evaluate("""() => [...document.querySelectorAll('.table-wrap')]
            .filter(w => w.scrollWidth > w.clientWidth + 1)
            .map(w => ({tabindex: w.getAttribute('tabindex'), role: w.getAttribute('role'),
                        label: w.getAttribute('aria-label')}))""")
        assert boxes, f"{path}: expected a table wider than the phone"
        for box in boxes:  # a keyboard user can scroll it, a screen reader names it
            assert box["tabindex"] == "0" and box["role"] == "region" and box["label"], (path, box)

    # the list's check boxes are big enough to hit with a finger
    page.goto(f"{live_server.url}/customers/")
    sizes = page.evaluate("""() => [...document.querySelectorAll('input[type=checkbox]')].map(
        b => [b.getBoundingClientRect().width, b.getBoundingClientRect().height])""")
    assert sizes and all(w >= 24 and h >= 24 for w, h in sizes), sizes

    # links in the page's text are underlined, not told apart by colour alone
    decoration = page.evaluate("getComputedStyle(document.querySelector('main a:not(.btn)')).textDecorationLine")
    assert decoration == "underline"


@_browser_test
def test_the_focus_stays_in_the_tags_section_after_a_tag_is_added_or_removed_by_keyboard(
        live_server, phone_page, transactional_db, chain_admin, chain, clinic_a):
    group = TagGroupFactory(chain=chain, name="Interests")
    TagFactory(group=group, chain=chain, name="Implants")
    TagFactory(group=group, chain=chain, name="Whitening")  # so the add form stays
    patient = CustomerFactory(chain=chain, name="张三", home_clinic=clinic_a)
    page = phone_page
    _log_in(page, live_server)
    page.goto(f"{live_server.url}/customers/{patient.id}/")
    focused = "() => { const a = document.activeElement; return [a.tagName, a.id, a.textContent.trim()]; }"

    # when: choosing a tag and pressing Enter on "Add tag" (htmx replaces the whole section)
    page.select_option("#id_add_tag", label="Implants")
    page.focus("#tags form.stack button[type=submit]")
    page.keyboard.press("Enter")
    page.locator("#tags [data-tag]").wait_for()
    # then: the focus is on "Add tag" again, not lost to the top of the page
    page.wait_for_function("() => document.activeElement !== document.body")
    assert page.evaluate(focused)[0] == "BUTTON"

    # when: removing it with its × button, which the new section no longer has
    page.focus("#tags button[aria-label]")
    page.keyboard.press("Enter")
    page.locator("#tags [data-tag]").wait_for(state="detached")
    # then: the focus is on the section, so the next Tab continues from there
    page.wait_for_function("() => document.activeElement !== document.body")
    assert page.evaluate(focused)[:2] == ["SECTION", "tags"]


def test_a_finished_follow_up_is_not_faded_below_readable_contrast():
    """An opacity of .8 took the task's muted text and links to 3.5:1 on white (WCAG AA asks 4.5:1)."""
    css = (Path(settings.BASE_DIR) / "src/smileloop/followups/static/followups/followups.css").read_text()
    rule = re.search(r"\.fu-finished\s*\{([^}]*)\}", css).group(1)
    assert "opacity" not in rule


# --- axe-core -------------------------------------------------------------------------------------------------------
# axe-core (Deque's accessibility engine) is vendored for these tests only: tests/vendor/axe-core (see its VERSION).
AXE = Path(settings.BASE_DIR) / "tests" / "vendor" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def _axe_violations(page, include: list[str] | None = None) -> list[str]:
    """axe's violations on the page (or inside the `include` selectors), as "rule: targets". Evaluated through the
    browser's devtools, so a Content-Security-Policy without 'unsafe-inline' does not stop it."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    return page.evaluate("""async ([include, tags]) => {
        const context = include ? {include: include.map(s => [s])} : document;
        const result = await window.axe.run(context, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
        return result.violations.map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '));
    }""", [include, AXE_TAGS])


# --- form-wide errors are announced -----------------------------------------------------------------------------------
FORM_ERROR = "这条记录刚被另一位员工修改，请重新打开后再保存。"


def _pages_with_form_wide_errors(user, scope, patient) -> dict[str, str]:
    """The new-patient page and the 360 page as the views render them after a POST refused with a form-wide error (a
    service error that names no field of the form): the new patient form, the consent form and the family form."""
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.shortcuts import render
    from django.test import RequestFactory
    from django.utils import translation

    from smileloop.customers.forms import ConsentForm, CustomerForm, FamilyMemberForm
    from smileloop.customers.views import _render_360

    def request():
        req = RequestFactory().post("/", HTTP_ACCEPT_LANGUAGE="zh-hans")
        req.user, req.htmx, req.session = user, False, {}
        req._messages = FallbackStorage(req)
        return req

    new = CustomerForm(scope, {"name": "李雷", "mobile": "13800138000", "key": "k1"})
    consent = ConsentForm({"purpose": "marketing_sms", "granted": "on", "source": "paper"})
    family = FamilyMemberForm(scope, {"member": patient.mobile or "", "relation": "spouse"}, head=patient)
    for form in (new, consent, family):
        form.is_valid()
        form.add_error(None, FORM_ERROR)
    with translation.override("zh-hans"):
        return {
            "new": render(request(), "customers/customer_form.html", {"form": new, "existing": None,
                                                                       "existing_in_family": False, "customer": None},
                          status=422).content.decode(),
            "360": _render_360(request(), scope, patient, status=422, consent_form=consent,
                               family_form=family).content.decode(),
        }


@pytest.mark.django_db
def test_form_wide_errors_of_the_new_patient_consent_and_family_forms_are_a_live_region_the_form_names(
        front_desk_a, scope_a, clinic_a, chain):
    # given: each form refused with an error of the whole form (it has no field to sit beside)
    patient = CustomerFactory(chain=chain, name="张三", home_clinic=clinic_a)
    pages = _pages_with_form_wide_errors(front_desk_a.user, scope_a, patient)
    # then: the error is an alert (announced when it appears), and its form names it (read with the form)
    for page, region in (("new", "customer-form-errors"), ("360", "consent-form-errors"),
                         ("360", "family-form-errors")):
        html = pages[page]
        assert re.search(rf'<form [^>]*aria-describedby="{region}"[^>]*>\s*<input type="hidden" '
                         rf'name="csrfmiddlewaretoken"[^>]*>\s*(?:<div class="message message-error" role="alert">'
                         rf'[^<]*</div>\s*)?<div class="form-errors" role="alert" id="{region}">'
                         rf'<p class="field-error">{FORM_ERROR}</p></div>', html), (page, region)
        assert html.count(f'id="{region}"') == 1


@_browser_test
def test_axe_finds_nothing_wrong_with_the_forms_that_show_form_wide_errors(
        live_server, phone_page, transactional_db, front_desk_a, scope_a, clinic_a, chain):
    patient = CustomerFactory(chain=chain, name="张三", home_clinic=clinic_a)
    pages = _pages_with_form_wide_errors(front_desk_a.user, scope_a, patient)
    page = phone_page
    # the pages' stylesheets load from the live server; htmx does not (its lazy sections would ask it as nobody)
    page.route("**/htmx.min.js", lambda route: route.abort())
    page.goto(f"{live_server.url}/login/")
    page.set_content(pages["new"], wait_until="load")
    assert _axe_violations(page, ["form.form-card"]) == []
    page.set_content(pages["360"], wait_until="load")
    page.evaluate("document.querySelectorAll('details.subform').forEach(d => d.open = true)")
    assert _axe_violations(page, ["#consents form.stack", "#family form.stack"]) == []


@_browser_test
def test_axe_finds_nothing_wrong_with_the_audit_log_page_and_it_fits_a_phone(
        live_server, phone_page, transactional_db, chain_admin, chain, clinic_a):
    from smileloop.core.audit import audit_record

    patient = CustomerFactory(chain=chain, name="张三", home_clinic=clinic_a)
    audit_record(actor=chain_admin.user, action="phone.reveal", object_type="customer", object_id=patient.pk,
                 reason="回访", ip_address="203.0.113.7")
    page = phone_page
    _log_in(page, live_server)
    page.goto(f"{live_server.url}/audit/")
    page.wait_for_load_state("networkidle")
    assert page.locator("main table tbody tr").count() >= 1
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert _axe_violations(page, ["main"]) == []
    # a bad filter is said beside its field, and the page stays clean
    page.goto(f"{live_server.url}/audit/?date_from=2026-13-40")
    assert page.locator("[data-testid=audit-invalid]").count() == 1
    assert _axe_violations(page, ["main"]) == []


@_browser_test
def test_axe_finds_nothing_wrong_with_the_password_change_page_and_its_errors_on_a_phone(
        live_server, phone_page, transactional_db, chain_admin):
    page = phone_page
    _log_in(page, live_server)
    page.goto(f"{live_server.url}/account/password/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert _axe_violations(page, ["main"]) == []
    page.fill("#id_old_password", "wrong-password")
    page.fill("#id_new_password1", "123")
    page.fill("#id_new_password2", "123")
    page.click("[data-testid=password-change] button[type=submit]")
    page.wait_for_selector("#id_old_password_error")
    assert page.locator("#id_old_password").get_attribute("aria-invalid") == "true"
    assert _axe_violations(page, ["main"]) == []


# --- the main menu on a phone ------------------------------------------------------------------------------------------
@_browser_test
def test_on_a_phone_the_main_menu_is_collapsed_behind_a_button_that_opens_it_by_touch_and_keyboard(
        live_server, phone_page, transactional_db, chain_admin, chain, clinic_a):
    """A chain admin's twelve entries wrapped into about four rows above every page at 390 px."""
    page = phone_page
    _log_in(page, live_server)
    menu, button = page.locator("nav.mainnav"), page.locator("button[data-nav-toggle]")
    # given: a page on a phone — the menu is collapsed, the button says so and names what it controls
    assert button.is_visible() and not menu.is_visible()
    assert (button.get_attribute("aria-expanded"), button.get_attribute("aria-controls")) == ("false", "mainnav")
    header = page.evaluate("document.querySelector('header.topbar').getBoundingClientRect().height")
    assert header < 130, header  # two rows at most: brand and menu button, then the user's tools
    assert _axe_violations(page) == []

    # when: tapping the button, the menu opens with every entry
    button.tap()
    assert button.get_attribute("aria-expanded") == "true" and menu.is_visible()
    assert menu.locator("a.mainnav-link").count() >= 10
    assert _axe_violations(page) == []
    button.tap()
    assert button.get_attribute("aria-expanded") == "false" and not menu.is_visible()

    # when: by keyboard — Enter on the button opens it, Tab reaches the first entry, Escape closes it on the button
    button.focus()
    page.keyboard.press("Enter")
    assert button.get_attribute("aria-expanded") == "true"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.classList.contains('mainnav-link')")
    page.keyboard.press("Escape")
    assert button.get_attribute("aria-expanded") == "false" and not menu.is_visible()
    assert page.evaluate("document.activeElement.hasAttribute('data-nav-toggle')")
    page.keyboard.press("Space")
    assert button.get_attribute("aria-expanded") == "true"


@_browser_test
def test_on_a_wide_screen_the_main_menu_stays_open_without_a_button(live_server, transactional_db, chain_admin):
    pytest.importorskip("playwright.sync_api")
    with chromium_page(locale="en-US", width=1366, height=900) as page:
        _log_in(page, live_server)
        assert page.locator("nav.mainnav").is_visible() and not page.locator("button[data-nav-toggle]").is_visible()
        assert page.locator("nav.mainnav a.mainnav-link").first.is_visible()
