"""QA edges of the lifecycle: erased records keep their stage, a patient lost by hand stays lost in derive until
something new happens (as the events say)."""

import pytest
from django.urls import reverse
from django.utils import timezone

from smileloop.clinics.services import token_create
from smileloop.customers.models import Customer, Interaction
from smileloop.customers.privacy import customer_erase
from smileloop.customers.services import customer_stage_advance, interaction_add
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.lifecycle.models import LifecycleSettings
from smileloop.lifecycle.services import DERIVE_CAUSE, stages_derive, stages_side_update
from smileloop.lifecycle.tests.test_derive_and_job import TODAY, at, book, pay, stage_events, stage_of
from smileloop.membership.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def _erased(scope, customer, actor):
    customer_erase(scope=scope, customer=customer, actor=actor, reason="本人书面申请")
    return Customer.objects.get(pk=customer.pk)


# --- erased records (PIPL) -------------------------------------------------------------------------------------


def test_an_event_about_an_erased_records_earlier_booking_does_not_move_its_stage(
    chain, clinic_a, catalogue, director_scope, director_a
):
    """The PMS still sends a booking's status after the erasure (taken, as docs/architecture.md says), but the
    anonymous record is not profiled again: no stage move, no stage sentence on its blanked timeline."""
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    book(customer, clinic_a, 1, ext="PMS-1")
    customer = _erased(director_scope, customer, director_a)
    events = len(stage_events(customer))
    # when the booking arrives, and any other event names the record
    book(customer, clinic_a, 1, ext="PMS-1", status="arrived")
    assert customer_stage_advance(customer=customer.pk, to="member", cause="enrolled") is False
    # then
    assert stage_of(customer) == ("booked", "booked")
    assert len(stage_events(customer)) == events


def test_marking_an_erased_record_lost_is_a_409_erased_and_writes_nothing(
    client, chain, clinic_a, director_scope, director_a
):
    customer = _erased(director_scope, CustomerFactory(chain=chain, home_clinic=clinic_a), director_a)
    before = Interaction.objects.filter(customer=customer).count()
    headers = {
        "Authorization": f"Bearer {token_create(username=director_a.user.username)}",
        "Idempotency-Key": "lost-1",
    }
    # when
    response = client.post(
        f"/api/customers/{customer.pk}/lost",
        {"reason": "搬去北京"},
        content_type="application/json",
        headers=headers,
    )
    # then
    assert response.status_code == 409 and response.json()["code"] == "erased"
    assert stage_of(customer) == ("lead", "lead")
    assert Interaction.objects.filter(customer=customer).count() == before


def test_the_360_pages_mark_lost_form_names_the_erasure_not_already_lost(
    client, chain, clinic_a, director_scope, director_a
):
    customer = _erased(director_scope, CustomerFactory(chain=chain, home_clinic=clinic_a), director_a)
    client.force_login(director_a.user)
    # when a page opened before the erasure is sent
    response = client.post(reverse("customers:mark_lost", args=[customer.pk]), {"reason": "搬去北京"})
    # then
    assert response.status_code == 422
    assert "personal information was erased" in response.content.decode()
    assert "already marked lost" not in response.content.decode()
    assert stage_of(customer) == ("lead", "lead")


def test_the_daily_job_and_derive_leave_an_erased_record_as_it_is(
    chain, clinic_a, catalogue, director_scope, director_a
):
    # given a patient last seen 13 months ago and a lead of 200 days, both erased
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(patient, clinic_a, 400)
    lead = CustomerFactory(chain=chain, home_clinic=clinic_a)
    Customer.objects.filter(pk=lead.pk).update(created_at=at(200))
    patient, lead = _erased(director_scope, patient, director_a), _erased(director_scope, lead, director_a)
    events = len(stage_events(patient)) + len(stage_events(lead))
    # when
    side = stages_side_update(chain=chain, today=TODAY)
    derived = stages_derive(chain=chain, today=TODAY)
    # then nothing about them is written ("no visit since <day>" would profile them again)
    assert side["events"] == derived["events"] == 0
    assert stage_of(patient) == ("treated", "treated") and stage_of(lead) == ("lead", "lead")
    assert len(stage_events(patient)) + len(stage_events(lead)) == events


# --- lost by hand, then derive -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["cancelled", "booked"])
def test_derive_keeps_a_patient_lost_by_hand_whose_earlier_booking_lies_ahead(
    chain, clinic_a, catalogue, status
):
    """A booking made before the mark for a later day is not something new (the event path keeps them lost):
    derive revived them, even when the booking had been cancelled."""
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(customer, clinic_a, 30)
    book(customer, clinic_a, -7, ext="NEXT-WEEK")
    book(customer, clinic_a, -7, ext="NEXT-WEEK", status=status)
    customer_stage_advance(customer=customer, to="lost", cause="moved to Beijing")
    # when
    counts = stages_derive(chain=chain, today=TODAY)
    # then
    assert stage_of(customer) == ("lost", "treated")
    assert counts["revived"] == counts["events"] == 0


def test_derive_brings_back_a_patient_lost_by_hand_enrolled_since_as_the_enrolment_event_does(
    chain, clinic_a, catalogue
):
    """Bulk enrolment (spend_based_enrol_all) skips the events and asks for derive: an enrolment after the mark
    brings the patient back, as membership.services.enrolment does on the event path."""
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(customer, clinic_a, 30)
    customer_stage_advance(
        customer=customer, to="lost", cause="moved to Beijing", at=timezone.now() - timezone.timedelta(days=1)
    )
    MembershipFactory(customer=customer)  # enrolled in bulk today
    # when
    stages_derive(chain=chain, today=TODAY)
    # then
    assert stage_of(customer) == ("member", "member")
    assert stage_events(customer)[-1]["stage_from"] == "lost"


# --- settings changes -------------------------------------------------------------------------------------------


def test_derive_brings_back_a_lead_lost_by_the_window_when_the_window_is_lengthened(
    chain, clinic_a, front_desk_a
):
    """A lead lost by the job after 180 days is back in the pool when the chain makes it 365 and re-derives (the
    facts no longer make them lost); one marked lost by hand, or lost by the window and then only called, stays."""
    by_window, called, by_hand = (CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(3))
    Customer.objects.filter(pk__in=[by_window.pk, called.pk, by_hand.pk]).update(created_at=at(200))
    customer_stage_advance(customer=by_hand.pk, to="lost", cause="marked lost by 院长老李: 搬去北京")
    stages_side_update(chain=chain, today=TODAY)
    interaction_add(customer=called, kind="call", text="回访", author=front_desk_a)
    assert [stage_of(c)[0] for c in (by_window, called, by_hand)] == ["lost"] * 3
    LifecycleSettings.objects.create(chain=chain, lead_lost_after_days=365)
    # when
    counts = stages_derive(chain=chain, today=TODAY)
    # then
    assert [stage_of(c) for c in (by_window, called, by_hand)] == [
        ("lead", "lead"),
        ("lost", "lead"),
        ("lost", "lead"),
    ]
    assert counts["events"] == 1
    assert stage_events(by_window)[-1] == {"stage_from": "lost", "stage_to": "lead", "cause": DERIVE_CAUSE}
    # and the daily job under the new window leaves them there
    assert stages_side_update(chain=chain, today=TODAY)["events"] == 0
