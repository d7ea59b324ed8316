"""The survey pages on a phone in a real browser (Debian's Chromium through Playwright; never downloads one)."""

import os

import pytest
from django.urls import reverse
from django.utils import timezone

from smileloop.core.testing import browser_marks, chromium_page
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.surveys.models import Survey
from smileloop.surveys.tests.factories import SurveyFactory

# Playwright's sync API runs an event loop in this thread; Django's async-safety check would refuse the ORM.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


pytestmark = browser_marks()


@pytest.fixture
def phone():
    """A 390 px wide, touch, Chinese phone."""
    pytest.importorskip("playwright.sync_api")
    with chromium_page(locale="zh-CN", width=390, height=844, phone=True) as page:
        yield page


def test_the_nps_page_fits_a_phone_without_scrolling_sideways(live_server, phone, transactional_db, chain,
                                                               clinic_a, director_a):
    # given answers to show
    for score in (3, 8, 10):
        SurveyFactory(chain=chain, clinic=clinic_a, score=score, sent_at=timezone.now(),
                      customer=CustomerFactory(chain=chain, home_clinic=clinic_a))
    phone.goto(f"{live_server.url}/login/")
    phone.fill("#id_username", director_a.user.username)
    phone.fill("#id_password", "pass-1234")
    phone.click(".auth-card button[type=submit]")
    phone.wait_for_url(lambda url: "/login/" not in url)
    # when
    phone.goto(f"{live_server.url}{reverse('surveys:nps')}")
    phone.wait_for_selector("#nps-trend canvas, #nps-trend svg", state="attached")
    # then the cards keep to the screen (wide tables scroll inside their own box)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390


def test_a_comment_the_textarea_accepts_is_saved_with_its_line_breaks(live_server, phone, transactional_db, chain,
                                                                       clinic_a):
    # given
    survey = SurveyFactory(chain=chain, clinic=clinic_a, customer=CustomerFactory(chain=chain, home_clinic=clinic_a))
    phone.goto(f"{live_server.url}{reverse('surveys:answer', kwargs={'token': survey.token})}")
    # when the patient writes ten lines up to the textarea's limit and submits
    phone.locator("label.choice:has(input[name=score][value='8'])").click()
    phone.fill("textarea", "\n".join(["好" * 49] * 9 + ["好" * 50]))  # 500 with 9 line breaks: the maxlength
    assert phone.evaluate("document.querySelector('textarea').value.length") == 500
    phone.click("button.btn-submit")
    # then
    phone.wait_for_selector("[data-testid=thanks]")
    saved = Survey.objects.get(pk=survey.pk)
    assert saved.score == 8 and len(saved.comment) == 500 and saved.comment.count("\n") == 9
