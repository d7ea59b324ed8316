"""A patient's survey comment may hold a number ("请打 13911112222 联系我"): on the 360 page and the NPS page it is
masked for a role that may not see phones, as the notes are (customers_ui.phones_for), and shown to one that may."""

import pytest
from django.urls import reverse
from django.utils import timezone

from smileloop.customers.tests.factories import CustomerFactory
from smileloop.surveys.tests.factories import SurveyFactory

pytestmark = pytest.mark.django_db

COMMENT = "请打 13911112222 联系我"


@pytest.fixture
def answered(chain, clinic_a, doctor_a):
    customer = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a)
    SurveyFactory(chain=chain, clinic=clinic_a, doctor=doctor_a, score=3, sent_at=timezone.now(), comment=COMMENT,
                  customer=customer)
    return customer


def test_the_360_page_masks_a_number_in_a_comment_for_marketing_and_shows_it_to_the_director(
        client, answered, marketing, director_a):
    client.force_login(marketing.user)
    html = client.get(reverse("customers:detail", args=[answered.id])).content.decode()
    assert "请打 139****2222 联系我" in html and "13911112222" not in html
    client.force_login(director_a.user)
    assert COMMENT in client.get(reverse("customers:detail", args=[answered.id])).content.decode()


def test_the_nps_page_masks_a_number_in_a_comment_for_marketing(client, answered, marketing):
    client.force_login(marketing.user)
    response = client.get(reverse("surveys:nps"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "请打 139****2222 联系我" in html and "13911112222" not in html
