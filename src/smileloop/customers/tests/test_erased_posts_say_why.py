"""A consent or a relative posted for an erased record (a page opened before the erasure, a hand-made post) is refused
saying why on the card it was posted to: its page offers neither form, so the refusal, put on the form, was a 422
without a word."""

import pytest
from django.urls import reverse

from smileloop.clinics.selectors import scope_for_staff
from smileloop.customers.enums import ConsentPurpose, Relation
from smileloop.customers.models import Consent, HouseholdMember
from smileloop.customers.privacy import customer_erase
from smileloop.customers.tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def erased(chain, clinic_a, director_a):
    person = CustomerFactory(chain=chain, home_clinic=clinic_a, name="张三", mobile="+8613800138000")
    customer_erase(scope=scope_for_staff(director_a), customer=person, actor=None, reason="本人书面申请")
    person.refresh_from_db()
    return person


@pytest.mark.parametrize("headers", [HTMX, {}], ids=["htmx", "page"])
def test_a_consent_posted_for_an_erased_record_says_why_and_records_nothing(client, director_a, erased, headers):
    client.force_login(director_a.user)
    before = Consent.objects.filter(customer=erased).count()
    response = client.post(reverse("customers:consent_add", args=[erased.id]), {
        "purpose": ConsentPurpose.MARKETING_SMS, "granted": "on", "source": "paper"}, headers=headers)
    assert response.status_code == 422
    assert 'data-testid="consent-error"' in response.text
    assert "This patient&#x27;s personal information was erased" in response.text
    assert Consent.objects.filter(customer=erased).count() == before


@pytest.mark.parametrize("headers", [HTMX, {}], ids=["htmx", "page"])
def test_a_relative_posted_for_an_erased_record_says_why_and_links_nobody(client, director_a, erased, chain, clinic_a,
                                                                           headers):
    relative = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王芳", mobile="+8613500135000")
    client.force_login(director_a.user)
    response = client.post(reverse("customers:family_add", args=[erased.id]),
                           {"member": "13500135000", "relation": Relation.SPOUSE}, headers=headers)
    assert response.status_code == 422
    assert 'data-testid="family-error"' in response.text
    assert "This patient&#x27;s personal information was erased" in response.text
    assert not HouseholdMember.objects.filter(customer__in=[erased, relative]).exists()


def test_a_chinese_reader_is_told_in_chinese(client, director_a, erased):
    client.force_login(director_a.user)
    response = client.post(reverse("customers:consent_add", args=[erased.id]), {
        "purpose": ConsentPurpose.MARKETING_SMS, "granted": "on", "source": "paper"},
        headers=HTMX | {"Accept-Language": "zh-hans"})
    assert response.status_code == 422
    assert "This patient" not in response.text
    error = response.text.split('data-testid="consent-error">', 1)[1].split("</p>", 1)[0]
    assert error and not error.isascii()
