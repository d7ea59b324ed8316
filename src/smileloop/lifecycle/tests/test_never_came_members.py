"""A member who has not come yet is a member, not a lead: the lead window ("a lead who never came is lost after L
days") made a paying member lost a few months after joining. Such customers go dormant and lost on the chain's
N / N + M months, counted from their enrolment (no visit, booking or enrolment since); leads who never came (lead,
contacted, booked) still fall to the lead window."""

import datetime as dt

import pytest
from django.utils import translation

from smileloop.customers.enums import Channel
from smileloop.customers.models import Customer
from smileloop.customers.services import customer_stage_advance
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.customers.timeline import timeline_text
from smileloop.lifecycle.models import LifecycleSettings
from smileloop.lifecycle.services import stages_derive, stages_side_update
from smileloop.lifecycle.tests.test_derive_and_job import TODAY, at, book, stage_events, stage_of
from smileloop.membership.enums import PlanKind
from smileloop.membership.services import membership_enrol
from smileloop.membership.tests.factories import PlanFactory, TierFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def card(chain):
    """A paid lifetime card bought at the desk or online: no bill, no visit."""
    plan = PlanFactory(chain=chain, name="终身会员", kind=PlanKind.PAID, fee_fen=29_900, duration_months=None,
                       spend_threshold_fen=None, auto_enrol=False)
    TierFactory(plan=plan)
    return plan


def _joined(chain, clinic, card, days_ago: int, **fields) -> Customer:
    customer = CustomerFactory(chain=chain, home_clinic=clinic, **fields)
    Customer.objects.filter(pk=customer.pk).update(created_at=at(days_ago + 1), last_touch_at=at(days_ago + 1))
    membership_enrol(customer=customer, plan=card, fee_fen=29_900, as_of=at(days_ago))
    assert stage_of(customer) == ("member", "member")
    return customer


@pytest.mark.parametrize("run", [stages_side_update, stages_derive])
def test_a_member_who_never_came_is_not_lost_after_the_lead_window(chain, clinic_a, card, run):
    member = _joined(chain, clinic_a, card, 181)  # L + 1 days ago (default L = 180)
    lead = CustomerFactory(chain=chain, home_clinic=clinic_a, first_touch_channel=Channel.REFERRAL)  # a referred lead
    booked = CustomerFactory(chain=chain, home_clinic=clinic_a)
    appointment = book(booked, clinic_a, 190, status="no_show")
    type(appointment).objects.filter(pk=appointment.pk).update(created_at=at(195))
    Customer.objects.filter(pk__in=[lead.pk, booked.pk]).update(created_at=at(200), last_touch_at=at(200))
    # when
    run(chain=chain, today=TODAY)
    # then: the member stays a member; who never came and never joined is still lost by the window
    assert stage_of(member) == ("member", "member")
    assert stage_of(lead) == ("lost", "lead")
    assert stage_of(booked) == ("lost", "booked")
    assert stage_events(lead)[-1]["cause"] == "never came: no booking or contact for 180 days"


@pytest.mark.parametrize("run", [stages_side_update, stages_derive])
def test_a_member_who_never_came_goes_dormant_then_lost_counted_from_the_enrolment(chain, clinic_a, card, run):
    LifecycleSettings.objects.create(chain=chain, dormant_after_months=6, lost_after_months=6,
                                     lead_lost_after_days=30)
    member = _joined(chain, clinic_a, card, 10)
    joined = TODAY - dt.timedelta(days=10)
    # a day before six months since the enrolment: still a member (the 30-day lead window does not apply)
    run(chain=chain, today=joined + dt.timedelta(days=181))
    assert stage_of(member) == ("member", "member")
    # six months after it: dormant
    run(chain=chain, today=joined + dt.timedelta(days=185))
    assert stage_of(member) == ("dormant", "member")
    assert stage_events(member)[-1] == {"stage_from": "member", "stage_to": "dormant",
                                        "cause": "no visit, booking or enrolment for 6 months (never came)"}
    run(chain=chain, today=joined + dt.timedelta(days=300))
    assert stage_of(member) == ("dormant", "member")
    # twelve months after it: lost, and a second run changes nothing
    run(chain=chain, today=joined + dt.timedelta(days=367))
    assert stage_of(member) == ("lost", "member")
    assert stage_events(member)[-1] == {"stage_from": "dormant", "stage_to": "lost",
                                        "cause": "no visit, booking or enrolment for 12 months (never came)"}
    events = len(stage_events(member))
    run(chain=chain, today=joined + dt.timedelta(days=367))
    assert (stage_of(member), len(stage_events(member))) == (("lost", "member"), events)


def test_a_member_enrolled_long_ago_who_never_came_is_derived_dormant_or_lost(chain, clinic_a, card):
    dormant = _joined(chain, clinic_a, card, 400)  # past 12 months
    lost = _joined(chain, clinic_a, card, 1200)  # past 12 + 24 months
    recent = _joined(chain, clinic_a, card, 300)
    Customer.objects.filter(pk__in=[dormant.pk, lost.pk, recent.pk]).update(
        stage="lead", stage_reached="lead", stage_changed_at=None, stage_prev="")
    # when everything is re-derived from the facts
    stages_derive(chain=chain, today=TODAY)
    # then
    assert [stage_of(c) for c in (dormant, lost, recent)] == [
        ("dormant", "member"), ("lost", "member"), ("member", "member")]
    assert stage_events(lost)[-1]["cause"] == "no visit, booking or enrolment for 36 months (never came)"
    text = Customer.objects.get(pk=lost.pk).interactions.filter(kind="system").order_by("id").last().text
    with translation.override("zh-hans"):
        assert timeline_text(text).endswith("36 个月内无到店、预约或入会（从未到店）"), timeline_text(text)


def test_derive_brings_back_a_member_the_lead_window_had_set_lost(chain, clinic_a, card, front_desk_a):
    member = _joined(chain, clinic_a, card, 200)
    long_ago = _joined(chain, clinic_a, card, 500)  # dormant by the facts: lost is never left for dormant
    for customer in (member, long_ago):  # as the run before the fix did (its own event, with its cause)
        customer_stage_advance(customer=customer, to="lost", at=at(19),
                               cause="never came: no booking or contact for 180 days")
    by_hand = _joined(chain, clinic_a, card, 200)
    customer_stage_advance(customer=by_hand, to="lost", cause="moved to Beijing", at=at(19), actor=front_desk_a)
    # when
    stages_derive(chain=chain, today=TODAY)
    # then: the window no longer applies to them; one marked lost by staff stays lost
    assert stage_of(member) == ("member", "member")
    assert stage_events(member)[-1]["stage_from"] == "lost"
    assert stage_of(by_hand) == ("lost", "member")
    assert stage_of(long_ago) == ("lost", "member")
