"""A family member bound to a family card (membership.FamilyBinding) is a member, not a lead: the lead window ("a lead
who never came is lost after L days") does not apply to them while the card is in force. And an erased record (PIPL)
is not counted in the funnel."""

import datetime as dt

import pytest
from django.utils import timezone

from smileloop.customers.models import Customer, Interaction
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.lifecycle.models import LifecycleSettings
from smileloop.lifecycle.selectors import funnel
from smileloop.lifecycle.services import stages_derive, stages_side_update
from smileloop.lifecycle.tests.test_derive_and_job import TODAY, at, stage_events, stage_of
from smileloop.membership.enums import MembershipStatus
from smileloop.membership.models import Membership
from smileloop.membership.services import family_bind
from smileloop.membership.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def _lead(chain, clinic, days_ago: int, **fields) -> Customer:
    """A record made `days_ago` days ago with nothing since (no visit, booking or staff contact)."""
    customer = CustomerFactory(chain=chain, home_clinic=clinic, **fields)
    Customer.objects.filter(pk=customer.pk).update(created_at=at(days_ago), last_touch_at=at(days_ago))
    return customer


@pytest.fixture
def holder(chain, clinic_a):
    """A lifetime family-card holder who comes regularly."""
    holder = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王建国")
    Customer.objects.filter(pk=holder.pk).update(stage="member", stage_reached="member", last_visit_at=at(10))
    MembershipFactory(customer=holder, started_at=at(400))
    return holder


def _bind(holder, member, days_ago: int, **kw):
    """A binding as one made before family_bind moved the member's stage left it (the stage as it was): what the
    lifecycle runs must read right by themselves. family_bind now moves the member at once (membership's tests)."""
    before = Customer.objects.filter(pk=member.pk).values("stage", "stage_reached", "stage_prev",
                                                            "stage_changed_at").get()
    kw = kw or {"relation": "child", "consent_source": "纸质同意书"}
    binding = family_bind(holder=holder, member=member, as_of=at(days_ago), **kw)
    Customer.objects.filter(pk=member.pk).update(**before)
    Interaction.objects.filter(customer=member, data__has_key="stage_to", occurred_at=at(days_ago)).delete()
    return binding


@pytest.mark.parametrize("run", [stages_side_update, stages_derive])
def test_a_family_card_member_who_never_came_is_not_lost_after_the_lead_window(chain, clinic_a, holder, run):
    # given the holder's child, recorded 200 days ago (L = 180) and bound to the card 190 days ago, never came; and a
    # lead of the same age who is nobody's family member
    child = _lead(chain, clinic_a, 200, name="王小明", birthday=dt.date(2018, 5, 1))
    _bind(holder, child, 190)
    lead = _lead(chain, clinic_a, 200)
    # when
    run(chain=chain, today=TODAY)
    # then the child is not lost (stages_derive counts them a member); the other lead is lost by the window
    assert stage_of(child) == (("member", "member") if run is stages_derive else ("lead", "lead"))
    assert stage_of(lead) == ("lost", "lead")
    assert [e["stage_to"] for e in stage_events(child)] == (["member"] if run is stages_derive else [])


@pytest.mark.parametrize("run", [stages_side_update, stages_derive])
def test_the_lead_window_applies_again_once_the_binding_ended_or_the_card_expired(chain, clinic_a, holder, run):
    # given two relatives bound long ago: one unbound since, one on a card that has expired
    unbound = _lead(chain, clinic_a, 200, name="王小红", birthday=dt.date(2016, 3, 1))
    binding = _bind(holder, unbound, 190)
    type(binding).objects.filter(pk=binding.pk).update(unbound_at=at(185))
    other = CustomerFactory(chain=chain, home_clinic=clinic_a, name="李华")
    card = MembershipFactory(customer=other, started_at=at(500), expires_at=at(100, hour=12))
    on_expired = _lead(chain, clinic_a, 600, name="李小华", birthday=dt.date(2017, 3, 1))
    _bind(other, on_expired, 400)
    # the card lapsed 100 days ago, not yet marked expired by the nightly job
    assert Membership.objects.get(pk=card.pk).status == MembershipStatus.ACTIVE
    # when
    run(chain=chain, today=TODAY)
    # then both are leads who never came: lost by the window
    assert stage_of(unbound)[0] == stage_of(on_expired)[0] == "lost"
    assert stage_events(unbound)[-1]["cause"] == "never came: no booking or contact for 180 days"


def test_a_family_card_member_who_never_came_goes_dormant_counted_from_the_binding(chain, clinic_a, holder):
    # given a 30-day lead window and 6 / 6 months, a relative recorded 400 days ago and bound 10 days ago
    LifecycleSettings.objects.create(chain=chain, dormant_after_months=6, lost_after_months=6, lead_lost_after_days=30)
    spouse = _lead(chain, clinic_a, 400, name="张丽", birthday=dt.date(1985, 1, 1))
    _bind(holder, spouse, 10, relation="spouse", consent_source="in_person", consent_evidence="F-1")
    bound = TODAY - dt.timedelta(days=10)
    # when the daily run passes the lead window, then six months after the binding
    stages_side_update(chain=chain, today=TODAY)
    assert stage_of(spouse)[0] == "lead"
    stages_side_update(chain=chain, today=bound + dt.timedelta(days=185))
    # then dormant, with the members' sentence
    assert stage_of(spouse)[0] == "dormant"
    assert stage_events(spouse)[-1] == {"stage_from": "lead", "stage_to": "dormant",
                                        "cause": "no visit, booking or enrolment for 6 months (never came)"}


def test_a_lead_lost_by_the_window_and_bound_to_a_family_card_since_is_a_member_again(chain, clinic_a, holder):
    # given a relative the lead window set lost, bound to the holder's card afterwards
    child = _lead(chain, clinic_a, 200, name="王小明", birthday=dt.date(2018, 5, 1))
    stages_side_update(chain=chain, today=TODAY)
    assert stage_of(child) == ("lost", "lead")
    _bind(holder, child, 0)
    # when
    stages_derive(chain=chain, today=TODAY)
    # then a member, as an enrolment since the mark brings a patient back
    assert stage_of(child) == ("member", "member")
    assert stage_events(child)[-1]["stage_to"] == "member"


def test_the_funnel_does_not_count_erased_records(admin_scope, chain, clinic_a):
    # given two treated patients, one of them erased (PIPL), and an erased lead
    kept = CustomerFactory(chain=chain, home_clinic=clinic_a, stage="treated", stage_reached="treated")
    erased = CustomerFactory(chain=chain, home_clinic=clinic_a, stage="treated", stage_reached="treated")
    erased_lead = CustomerFactory(chain=chain, home_clinic=clinic_a)
    Customer.objects.filter(pk__in=[erased.pk, erased_lead.pk]).update(erased_at=timezone.now())
    # when
    result = funnel(admin_scope)
    # then only the one kept counts, in the total, the steps and the rows
    assert result.total == 1
    steps = {s.stage: (s.current, s.reached) for s in result.stages}
    assert steps["lead"] == (0, 1) and steps["treated"] == (1, 1)
    assert [(r.stage, r.count) for r in result.rows] == [("treated", 1)]
    assert Customer.objects.filter(chain=chain, erased_at__isnull=True).get() == kept
