"""An identity attached to, or a family joined by, a patient while they are erased (PostgreSQL): neither outlives it.

identity_add read the record (not erased yet) and inserted the identity; the erasure, holding the patient's row,
deleted their identities without seeing the uncommitted one, and the attach then committed: an erased person
linked again to a WeChat account (personal information the erasure promised to delete). It now locks the patient
first and refuses (409 `erased`) once the erasure has committed. household_member_add likewise put the erased person
into a family (the erasure's _household_leave found no membership yet): it now locks both people first."""

import threading

import pytest

from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.errors import Conflict
from smileloop.core.testing import held, paused, postgresql_only, race
from smileloop.customers.models import Consent, Customer, HouseholdMember, Identity, Interaction
from smileloop.customers.privacy import customer_erase
from smileloop.customers.services import ERASED_REFUSED, consent_record, household_member_add, identity_add


def _erase(patient, director_a):
    return lambda: customer_erase(scope=scope_for_staff(director_a), customer=Customer.objects.get(pk=patient.pk),
                                  actor=director_a, reason="本人申请")


def _race(write, patient, director_a) -> dict:
    """`write` runs in a transaction that stays open a second after it; the erasure of `patient` lands meanwhile."""
    reached = threading.Event()
    # as the API's request does: the erasure lands before the commit
    out = race(held(write, reached), _erase(patient, director_a), reached)
    assert "then" in out, out
    error = out.get("first_error")
    assert error is None or (isinstance(error, Conflict) and error.message == ERASED_REFUSED), out
    assert Customer.objects.get(pk=patient.pk).erased_at is not None
    return out


@pytest.mark.django_db(transaction=True)
@postgresql_only
def test_an_identity_attached_while_the_patient_is_erased_does_not_outlive_the_erasure(zhang_san, director_a):
    _race(lambda: identity_add(customer=Customer.objects.get(pk=zhang_san.pk), kind="wechat_openid",
                               external_id="o-zhangsan-1", app_id="wx1"), zhang_san, director_a)
    assert not Identity.objects.filter(customer_id=zhang_san.pk).exists()


@pytest.mark.django_db(transaction=True)
@postgresql_only
def test_a_family_joined_while_the_patient_is_erased_does_not_outlive_the_erasure(zhang_san, li_si, director_a):
    _race(lambda: household_member_add(head=Customer.objects.get(pk=li_si.pk),
                                       member=Customer.objects.get(pk=zhang_san.pk), relation="spouse"),
          zhang_san, director_a)
    assert not HouseholdMember.objects.filter(customer_id=zhang_san.pk).exists()


@pytest.mark.django_db(transaction=True)
@postgresql_only
def test_a_consent_granted_while_the_patient_is_erased_keeps_no_evidence(zhang_san, director_a):
    """The erasure blanks its consents' evidence (free text: "张三签字 138…"); a consent granted meanwhile kept it."""
    _race(lambda: consent_record(customer=Customer.objects.get(pk=zhang_san.pk), purpose="marketing_sms",
                                 granted=True, source="front_desk", evidence="张三本人签字 13800138000"),
          zhang_san, director_a)
    assert not Consent.objects.filter(customer_id=zhang_san.pk).exclude(evidence="").exists()


@pytest.mark.django_db(transaction=True)
@postgresql_only
def test_a_note_added_while_the_patient_is_erased_does_not_outlive_the_erasure(zhang_san, director_a, monkeypatch):
    """The note page read "not erased", then wrote the note after the erasure had blanked the timeline: the erased
    record's timeline said "张三说下周带女儿来" again. It now locks the patient before it reads and writes."""
    from django.test import Client
    from django.urls import reverse

    from smileloop.customers import services

    reached = threading.Event()
    # the page checked the record; the erasure commits before the note is written
    monkeypatch.setattr(services, "interaction_add", paused(services.interaction_add, reached, before=True))

    def post():
        client = Client()
        client.force_login(director_a.user)
        return client.post(reverse("customers:note_add", args=[zhang_san.pk]), {"text": "张三说下周带女儿来"}).status_code

    out = race(post, _erase(zhang_san, director_a), reached)
    assert "then" in out and out.get("first") in (302, 422), out
    assert not Interaction.objects.filter(customer_id=zhang_san.pk, text__contains="带女儿").exists()
