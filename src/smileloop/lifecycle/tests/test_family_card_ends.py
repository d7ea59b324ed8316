"""A family-card member is a member while the card covers them. When it no longer does (unbound; the holder's card
cancelled, past its expiry, or trimmed by a tier with fewer slots) and they have no membership of their own, they go
back to the stage their own facts prove: at once when a write ends the binding (family_unbind, a cancellation, a
trim; the write named as the cause), at the next daily run for a card past its expiry. A renewal covers the family again at once, and counts as an enrolment for the
dormant clock."""

import pytest
from django.utils import timezone

from smileloop.customers.models import Customer, Interaction
from smileloop.customers.services import interaction_add
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.lifecycle.services import stages_derive, stages_side_update
from smileloop.lifecycle.tasks import stages_job
from smileloop.lifecycle.tests.test_derive_and_job import TODAY, at, pay, stage_events, stage_of
from smileloop.membership.enums import MembershipStatus, PlanKind
from smileloop.membership.models import FamilyBinding, Membership
from smileloop.membership.services import (
    family_bind,
    family_unbind,
    membership_cancel,
    membership_downgrade,
    membership_enrol,
    membership_renew,
)
from smileloop.membership.tests.factories import MembershipFactory, PlanFactory, TierFactory

pytestmark = pytest.mark.django_db

CONSENT = {"relation": "sibling", "consent_source": "纸质同意书", "consent_evidence": "F-0001"}


def _derive_agrees(chain, *customers) -> None:
    """The events' answer is the facts' answer: the next nightly run and a re-derivation change nothing."""
    before = [(stage_of(c), len(stage_events(c))) for c in customers]
    stages_side_update(chain=chain, today=TODAY)
    stages_derive(chain=chain, today=TODAY)
    assert [(stage_of(c), len(stage_events(c))) for c in customers] == before


@pytest.fixture
def plan(chain):
    plan = PlanFactory(chain=chain, name="年度家庭卡", kind=PlanKind.PAID, fee_fen=89_900, duration_months=12,
                       spend_threshold_fen=None, auto_enrol=False)
    TierFactory(plan=plan, name="家庭", rank=1, family_slots=3, downgrade_allowed=True)
    TierFactory(plan=plan, name="个人", rank=0, family_slots=0)
    return plan


@pytest.fixture
def holder(chain, clinic_a, catalogue, plan):
    """A family-card holder who comes regularly, enrolled 100 days ago."""
    holder = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王建国")
    pay(holder, clinic_a, 5)
    membership_enrol(customer=holder, plan=plan, tier=plan.tiers.get(rank=1), fee_fen=89_900, as_of=at(100))
    return holder


def _card(holder) -> Membership:
    return Membership.objects.get(customer=holder, status=MembershipStatus.ACTIVE)


def _bound(holder, member, days_ago=20) -> FamilyBinding:
    binding = family_bind(holder=holder, member=member, as_of=at(days_ago), **CONSENT)
    assert stage_of(member)[0] == "member"
    return binding


def test_an_unbound_member_goes_back_at_once_to_what_their_own_visits_prove(chain, clinic_a, holder):
    # given the holder's spouse, a patient who paid a bill 40 days ago, bound to the card 20 days ago
    spouse = CustomerFactory(chain=chain, home_clinic=clinic_a, name="李芳")
    pay(spouse, clinic_a, 40)
    binding = _bound(holder, spouse)
    # when staff unbind her
    family_unbind(binding=binding, reason="离婚")
    # then she is a treated patient again, at once, and her timeline says why
    assert stage_of(spouse) == ("treated", "treated")
    assert stage_events(spouse)[-1] == {"stage_from": "member", "stage_to": "treated",
                                        "cause": "unbound from the family card of 王**: 离婚"}
    # the holder keeps their own membership's stage
    assert stage_of(holder) == ("member", "member")
    _derive_agrees(chain, spouse, holder)


def test_an_unbound_member_keeps_a_stage_reached_that_only_their_timeline_shows(chain, clinic_a, holder):
    # given a patient a bulk load made "arrived" (no visit or bill on file), bound: "stage arrived → member"
    loaded = CustomerFactory(chain=chain, home_clinic=clinic_a, stage="arrived", stage_reached="arrived")
    binding = _bound(holder, loaded)
    # when unbound, then back to arrived (not a lead: the stage event of the binding says what they had reached)
    family_unbind(binding=binding)
    assert stage_of(loaded) == ("arrived", "arrived")
    _derive_agrees(chain, loaded)


def test_an_unbound_member_last_seen_long_ago_is_dormant_at_once(chain, clinic_a, holder):
    # given a patient last seen 800 days ago, bound 400 days ago (the binding was their last enrolment)
    parent = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(parent, clinic_a, 800)
    binding = family_bind(holder=holder, member=parent, as_of=at(400), **CONSENT)
    # when unbound
    family_unbind(binding=binding)
    # then dormant by their last visit (12 months), in one event naming the unbinding
    assert stage_of(parent) == ("dormant", "treated")
    assert stage_events(parent)[-1] == {"stage_from": "member", "stage_to": "dormant",
                                        "cause": "unbound from the family card of 王**"}
    _derive_agrees(chain, parent)


def test_an_unbound_member_who_never_came_is_a_lead_again_and_the_lead_window_applies(chain, clinic_a, holder):
    # given two people recorded 300 days ago who never came: one bound 250 days ago, one bound 30 days ago
    old, recent = (CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(2))
    Customer.objects.filter(pk__in=[old.pk, recent.pk]).update(created_at=at(300), last_touch_at=at(300))
    old_binding = family_bind(holder=holder, member=old, as_of=at(250), **CONSENT)
    recent_binding = family_bind(holder=holder, member=recent, as_of=at(30), **CONSENT)
    # when both are unbound
    family_unbind(binding=old_binding)
    family_unbind(binding=recent_binding)
    # then: nothing from them for 180 days (the binding 250 days ago was the last thing) → lost; the recent binding
    # still counts as their last enrolment → a lead
    assert stage_of(old) == ("lost", "lead")
    assert stage_of(recent) == ("lead", "lead")
    assert stage_events(recent)[-1]["stage_to"] == "lead"
    _derive_agrees(chain, old, recent)


def test_a_member_of_their_own_or_a_referrer_keeps_their_stage_when_unbound(chain, clinic_a, holder):
    # given one whose own (now expired) membership made them a member before, and one who is a referrer
    former = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(former, clinic_a, 40)
    MembershipFactory(customer=former, status=MembershipStatus.EXPIRED, started_at=at(500), expires_at=at(135))
    referrer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(referrer, clinic_a, 40)
    Customer.objects.filter(pk=referrer.pk).update(stage="referrer", stage_reached="referrer")
    b1 = _bound(holder, former)
    b2 = family_bind(holder=holder, member=referrer, as_of=at(20), **CONSENT)
    events = len(stage_events(former)), len(stage_events(referrer))
    # when both are unbound
    family_unbind(binding=b1)
    family_unbind(binding=b2)
    # then nothing moves
    assert (stage_of(former), stage_of(referrer)) == (("member", "member"), ("referrer", "referrer"))
    assert (len(stage_events(former)), len(stage_events(referrer))) == events


def test_the_members_follow_a_card_past_its_expiry_at_the_next_daily_run(chain, clinic_a, holder, plan):
    # given a bound spouse who is a treated patient
    spouse = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(spouse, clinic_a, 40)
    _bound(holder, spouse)
    card = _card(holder)
    # when the holder's card is past its expiry (the membership job has not run yet): time, not a write
    Membership.objects.filter(pk=card.pk).update(expires_at=at(1))
    assert stage_of(spouse)[0] == "member"
    # then the daily run takes member back from the spouse, saying why; the holder stays a member
    stages_job(today=TODAY)
    assert stage_of(spouse) == ("treated", "treated")
    assert stage_events(spouse)[-1] == {"stage_from": "member", "stage_to": "treated",
                                        "cause": "no longer covered by a family card (no membership of their own)"}
    assert stage_of(holder)[0] == "member"
    _derive_agrees(chain, spouse, holder)


@pytest.mark.parametrize("end", ["cancelled", "downgraded"])
def test_the_members_follow_a_card_staff_end_at_once(chain, clinic_a, holder, plan, front_desk_a, end):
    # given a bound spouse who is a treated patient, and a child who never came
    spouse = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(spouse, clinic_a, 40)
    _bound(holder, spouse)
    card = _card(holder)
    # when staff cancel the holder's card / move it to a tier without family slots
    if end == "cancelled":
        membership_cancel(membership=card, reason="退卡", actor=front_desk_a)
        cause = "the family card of 王** was cancelled"
    else:
        membership_downgrade(membership=card, tier=plan.tiers.get(rank=0), reason="降级", actor=front_desk_a)
        cause = "no slot left for them on the family card of 王** (tier 个人 has 0)"
    # then the spouse is a treated patient again at once, her timeline naming the card's end and who ended it
    assert stage_of(spouse) == ("treated", "treated")
    event = Interaction.objects.filter(customer=spouse, data__has_key="stage_to").latest("id")
    assert (event.data, event.author_id) == ({"stage_from": "member", "stage_to": "treated", "cause": cause},
                                             front_desk_a.pk)
    # the holder keeps their own stage, and the next nightly run has nothing left to do
    assert stage_of(holder)[0] == "member"
    _derive_agrees(chain, spouse, holder)


def test_stages_derive_takes_member_back_too(chain, clinic_a, holder):
    spouse = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(spouse, clinic_a, 40)
    _bound(holder, spouse)
    Membership.objects.filter(pk=_card(holder).pk).update(expires_at=at(1))
    counts = stages_derive(chain=chain, today=TODAY)
    assert counts["family_card_ended"] == 1
    assert stage_of(spouse) == ("treated", "treated")
    assert stage_events(spouse)[-1]["cause"] == "no longer covered by a family card (no membership of their own)"


def test_a_renewal_after_a_lapse_covers_the_family_again_at_once(chain, clinic_a, holder):
    spouse = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(spouse, clinic_a, 40)
    _bound(holder, spouse)
    card = _card(holder)
    Membership.objects.filter(pk=card.pk).update(expires_at=at(1))
    stages_job(today=TODAY)
    assert stage_of(spouse)[0] == "treated"
    # when the holder renews (the binding was kept through the lapse)
    membership_renew(membership=card)
    # then the spouse is a member again at once
    assert stage_of(spouse) == ("member", "member")
    assert stage_events(spouse)[-1]["cause"] == "the family card of 王** is in force again (renewed)"
    _derive_agrees(chain, spouse, holder)


# --- the dormant clock of a member with no visit on file ------------------------------------------------------


@pytest.fixture
def never_seen_member(chain, clinic_a, plan):
    """A paid member imported 400 days ago with no visit on file, enrolled that day."""
    member = CustomerFactory(chain=chain, home_clinic=clinic_a)
    Customer.objects.filter(pk=member.pk).update(created_at=at(400), last_touch_at=at(400))
    membership_enrol(customer=member, plan=plan, tier=plan.tiers.get(rank=0), fee_fen=89_900, as_of=at(400))
    return member


def test_a_member_who_renewed_is_not_dormant_for_want_of_a_visit_on_file(chain, never_seen_member):
    # given they renewed a month ago
    membership_renew(membership=Membership.objects.get(customer=never_seen_member), as_of=at(30))
    # when the daily run and a re-derivation run
    stages_job(today=TODAY)
    stages_derive(chain=chain, today=TODAY)
    # then the renewal is their last enrolment: not dormant
    assert stage_of(never_seen_member) == ("member", "member")


def test_a_member_with_nothing_since_joining_is_dormant_and_a_renewal_brings_them_back(chain, never_seen_member):
    stages_job(today=TODAY)
    assert stage_of(never_seen_member) == ("dormant", "member")
    assert stage_events(never_seen_member)[-1]["cause"] == "no visit, booking or enrolment for 12 months (never came)"
    # when they renew now
    membership_renew(membership=Membership.objects.get(customer=never_seen_member))
    assert stage_of(never_seen_member) == ("member", "member")
    assert stage_events(never_seen_member)[-1]["stage_from"] == "dormant"
    _derive_agrees(chain, never_seen_member)


# --- a refused revival changes nothing ------------------------------------------------------------------------


def _row(customer) -> dict:
    return Customer.objects.values("stage", "stage_reached", "stage_prev", "stage_changed_at").get(pk=customer.pk)


def test_a_refused_revival_writes_no_stage_field_and_no_event(chain, clinic_a, catalogue, front_desk_a, holder):
    # given a dormant patient who only ever arrived (never paid): reached "arrived"
    dormant = CustomerFactory(chain=chain, home_clinic=clinic_a)
    Customer.objects.filter(pk=dormant.pk).update(last_visit_at=at(400), visit_count=1, stage="dormant",
                                                  stage_reached="arrived", stage_prev="arrived",
                                                  stage_changed_at=at(30))
    # and a patient marked lost by hand 5 days ago, who had only arrived
    lost = CustomerFactory(chain=chain, home_clinic=clinic_a)
    Customer.objects.filter(pk=lost.pk).update(last_visit_at=at(60), visit_count=1, stage="lost",
                                               stage_reached="arrived", stage_prev="arrived", stage_changed_at=at(5))
    rows, events = {c.pk: _row(c) for c in (dormant, lost)}, Interaction.objects.filter(
        data__has_key="stage_to").count()
    # when a bill of 380 days ago reaches the dormant one (older than the threshold), a bill of 10 days ago (before
    # the mark) and a binding dated before the mark reach the lost one, and staff call both
    pay(dormant, clinic_a, 380)
    pay(lost, clinic_a, 10)
    family_bind(holder=holder, member=lost, as_of=at(8), **CONSENT)
    for c in (dormant, lost):
        interaction_add(customer=c, kind="call", text="回访", author=front_desk_a, occurred_at=timezone.now())
    # then: no stage field moved (not even the stage reached: the event wrote nothing), and no stage event
    assert {c.pk: _row(c) for c in (dormant, lost)} == rows
    assert Interaction.objects.filter(data__has_key="stage_to").count() == events
