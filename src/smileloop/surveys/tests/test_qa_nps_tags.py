"""The NPS page's answer topics read as a list (QA sweep, 2026-12): two pills side by side were one word to a screen
reader and to a copy ("医生讲解诊所环境")."""

import re

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from smileloop.customers.tests.factories import CustomerFactory
from smileloop.surveys.tests.factories import SurveyFactory

pytestmark = pytest.mark.django_db


def test_an_answers_topics_are_separated_for_a_screen_reader_and_a_copy(client, chain, clinic_a, director_a,
                                                                        doctor_a):
    # given: an answer about two topics
    SurveyFactory(chain=chain, clinic=clinic_a, doctor=doctor_a, score=9, sent_at=timezone.now(),
                  tags=["doctor_explanation", "environment"],
                  customer=CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a))
    client.force_login(director_a.user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    # when
    html = client.get(reverse("surveys:nps")).content.decode()
    # then: the text of the cell reads "医生讲解、诊所环境" (the separator is hidden from sight only)
    cell = re.search(r'<span class="pill">医生讲解</span>.*?</td>', html, re.S).group(0)
    assert re.sub(r"<[^>]+>", "", cell) == "医生讲解、诊所环境"
    assert '<span class="visually-hidden">、</span>' in cell
