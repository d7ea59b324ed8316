"""A visit or bill sent in late (a PMS back-filling, a POS catching up) brings a dormant or lost patient back only
when `stages_derive` would: it is within the chain's dormant threshold, and for a lost patient it came after they
were set lost. Before, every late bill brought them back and the next night's run set them dormant or lost again."""

import pytest
from django.utils import timezone

from smileloop.customers.services import customer_stage_advance
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.lifecycle.models import LifecycleSettings
from smileloop.lifecycle.services import stages_derive, stages_side_update
from smileloop.lifecycle.tests.test_derive_and_job import TODAY, at, book, pay, stage_events, stage_of
from smileloop.visits.services import order_record

pytestmark = pytest.mark.django_db


def _derive_agrees(chain, customer) -> None:
    """The events' answer is the facts' answer: a re-derivation and the next nightly run change nothing."""
    before, events = stage_of(customer), len(stage_events(customer))
    stages_side_update(chain=chain, today=TODAY)
    stages_derive(chain=chain, today=TODAY)
    assert (stage_of(customer), len(stage_events(customer))) == (before, events)


@pytest.fixture
def dormant(chain, clinic_a, catalogue):
    """Last seen 400 days ago: dormant by the default 12 months."""
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(customer, clinic_a, 400)
    stages_side_update(chain=chain, today=TODAY)
    assert stage_of(customer) == ("dormant", "treated")
    return customer


def test_a_bill_older_than_the_dormant_threshold_leaves_a_dormant_patient_dormant(chain, clinic_a, dormant):
    events = len(stage_events(dormant))
    # when the POS sends a bill of 380 days ago it had not sent
    pay(dormant, clinic_a, 380)
    # then
    assert stage_of(dormant) == ("dormant", "treated")
    assert len(stage_events(dormant)) == events
    _derive_agrees(chain, dormant)


def test_a_late_bill_within_the_threshold_brings_a_dormant_patient_back(chain, clinic_a, dormant):
    # when a bill of 200 days ago (inside 12 months) arrives
    pay(dormant, clinic_a, 200)
    # then: the facts no longer make them dormant
    assert stage_of(dormant) == ("treated", "treated")
    assert stage_events(dormant)[-1]["stage_from"] == "dormant"
    _derive_agrees(chain, dormant)


def test_the_threshold_is_the_chains_own(chain, clinic_a, catalogue):
    LifecycleSettings.objects.create(chain=chain, dormant_after_months=3, lost_after_months=12)
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(customer, clinic_a, 150)
    stages_side_update(chain=chain, today=TODAY)
    assert stage_of(customer)[0] == "dormant"
    pay(customer, clinic_a, 120)  # four months ago: still past three
    assert stage_of(customer)[0] == "dormant"
    _derive_agrees(chain, customer)
    pay(customer, clinic_a, 60)  # two months ago: back
    assert stage_of(customer)[0] == "treated"
    _derive_agrees(chain, customer)


def test_a_bill_paid_before_a_patient_was_marked_lost_leaves_them_lost(chain, clinic_a, catalogue):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(customer, clinic_a, 30)
    customer_stage_advance(customer=customer, to="lost", cause="moved to Beijing", at=at(5))
    # when last week's bill, paid before the mark, is sent in late
    pay(customer, clinic_a, 10)
    # then: nothing new happened since the mark
    assert stage_of(customer) == ("lost", "treated")
    _derive_agrees(chain, customer)
    # when they come back and pay after it
    pay(customer, clinic_a, 1)
    assert stage_of(customer) == ("treated", "treated")
    _derive_agrees(chain, customer)


def test_a_long_gone_patient_is_not_brought_back_by_an_old_bill_and_comes_back_on_todays(chain, clinic_a,
                                                                                         catalogue):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(customer, clinic_a, 1200)
    stages_side_update(chain=chain, today=TODAY)
    assert stage_of(customer)[0] == "lost"
    pay(customer, clinic_a, 900)
    assert stage_of(customer)[0] == "lost"
    _derive_agrees(chain, customer)
    # today's bill, paid now: after the mark (today at 10:00 was before it from 10:00 Shanghai time on)
    order_record(customer=customer, clinic=clinic_a, ordered_at=timezone.now(), lines=[{"item_code": "EX01"}],
                 payments=[{"method": "cash", "amount_fen": 5000}])
    assert stage_of(customer) == ("treated", "treated")


def test_a_booking_first_heard_of_now_is_new_a_known_one_turned_visit_counts_from_its_day(chain, clinic_a,
                                                                                             dormant):
    other = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(other, clinic_a, 420)
    # a booking the PMS sent 400 days ago (so made then), still "booked" when the patient went dormant
    known = book(other, clinic_a, 395, ext="PMS-KNOWN")
    type(known).objects.filter(pk=known.pk).update(created_at=at(400))
    stages_side_update(chain=chain, today=TODAY)
    assert stage_of(other)[0] == "dormant"
    # when the PMS now says that old booking was attended: a visit 395 days ago, past the threshold
    book(other, clinic_a, 395, ext="PMS-KNOWN", status="completed")
    assert stage_of(other)[0] == "dormant"
    _derive_agrees(chain, other)
    # a booking of the same old day first sent now is a booking made since, as stages_derive reads it
    book(dormant, clinic_a, 390, ext="PMS-NEW", status="completed")
    assert stage_of(dormant) == ("treated", "treated")
    _derive_agrees(chain, dormant)


def test_todays_checkout_brings_a_dormant_patient_back_without_reading_the_settings(chain, clinic_a, dormant):
    """The hot path: a bill paid now never reads the chain or its lifecycle settings."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        customer_stage_advance(customer=dormant, to="treated", cause="paid", event_at=timezone.now())
    assert stage_of(dormant) == ("treated", "treated")
    assert not any("lifecycle_" in q["sql"] or "clinics_chain" in q["sql"] for q in queries.captured_queries)


def test_an_enrolment_dated_before_a_lost_mark_leaves_the_patient_lost(
        chain, clinic_a, catalogue):
    from smileloop.membership.enums import PlanKind
    from smileloop.membership.services import membership_enrol
    from smileloop.membership.tests.factories import PlanFactory, TierFactory

    plan = PlanFactory(chain=chain, name="年度会员", kind=PlanKind.PAID, fee_fen=89_900, duration_months=12,
                       spend_threshold_fen=None, auto_enrol=False)
    TierFactory(plan=plan)
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(customer, clinic_a, 30)
    customer_stage_advance(customer=customer, to="lost", cause="moved to Beijing", at=at(5))
    # when the desk records, dated last week, the card the patient bought before the mark
    membership_enrol(customer=customer, plan=plan, fee_fen=89_900, as_of=at(10))
    # then: nothing new since the mark, as stages_derive reads an enrolment (started since the mark)
    assert stage_of(customer)[0] == "lost"
    stages_derive(chain=chain, today=TODAY)
    assert stage_of(customer)[0] == "lost"


def test_a_booking_made_before_a_lost_mark_and_booked_again_leaves_the_patient_lost(chain, clinic_a, catalogue):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(customer, clinic_a, 30)
    # a check-up booked 20 days ago for next week, then cancelled; the patient marked lost ("moved to Beijing")
    appointment = book(customer, clinic_a, -7, ext="PMS-OLD")
    type(appointment).objects.filter(pk=appointment.pk).update(created_at=at(20))
    book(customer, clinic_a, -7, ext="PMS-OLD", status="cancelled")
    customer_stage_advance(customer=customer, to="lost", cause="moved to Beijing", at=at(5))
    events = len(stage_events(customer))
    # when the PMS sends that old booking as booked again (a desk undoing the cancellation)
    book(customer, clinic_a, -7, ext="PMS-OLD")
    # then: nothing made since the mark, as stages_derive reads a booking
    assert stage_of(customer) == ("lost", "treated")
    assert len(stage_events(customer)) == events
    _derive_agrees(chain, customer)
    # when they book again, a booking made now
    book(customer, clinic_a, -9, ext="PMS-NEW")
    assert stage_of(customer) == ("treated", "treated")
    _derive_agrees(chain, customer)

