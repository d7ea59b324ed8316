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
    page.wait_for_function("document.activeElement !== document.body")
    assert page.evaluate(focused)[0] == "BUTTON"

    # when: removing it with its × button, which the new section no longer has
    page.focus("#tags button[aria-label]")
    page.keyboard.press("Enter")
    page.locator("#tags [data-tag]").wait_for(state="detached")
    # then: the focus is on the section, so the next Tab continues from there
    page.wait_for_function("document.activeElement !== document.body")
    assert page.evaluate(focused)[:2] == ["SECTION", "tags"]


def test_a_finished_follow_up_is_not_faded_below_readable_contrast():
    """An opacity of .8 took the task's muted text and links to 3.5:1 on white (WCAG AA asks 4.5:1)."""
    css = (Path(settings.BASE_DIR) / "src/smileloop/followups/static/followups/followups.css").read_text()
    rule = re.search(r"\.fu-finished\s*\{([^}]*)\}", css).group(1)
    assert "opacity" not in rule
