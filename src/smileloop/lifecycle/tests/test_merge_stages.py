"""The stage of two records merged into one person follows the events' rules: an active record wins over dormant,
lost is kept unless the other record was booked, seen or paid after the mark, and lost is never left for dormant.
Before, any active duplicate (with visits of before the mark) brought a patient marked lost by hand back, and a lost
record merged with a dormant one became dormant."""

import pytest
from django.utils import timezone

from smileloop.clinics.selectors import scope_for_staff
from smileloop.customers.models import Customer
from smileloop.customers.services import customer_merge, customer_stage_advance, interaction_add
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.lifecycle.services import stages_derive, stages_side_update
from smileloop.lifecycle.tests.test_derive_and_job import TODAY, at, pay, stage_events, stage_of

pytestmark = pytest.mark.django_db


def _merge(admin, survivor, merged) -> Customer:
    customer_merge(scope=scope_for_staff(admin), survivor=Customer.objects.get(pk=survivor.pk),
                   merged=Customer.objects.get(pk=merged.pk), actor=admin, reason="重复建档")
    return Customer.objects.get(pk=survivor.pk)


def _lost_by_hand(chain, clinic_a, days_ago: int, paid_days_ago: int = 200):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(customer, clinic_a, paid_days_ago)
    customer_stage_advance(customer=customer, to="lost", cause="搬去北京", at=at(days_ago))
    return customer


def _derive_agrees(chain, customer) -> None:
    before = stage_of(customer)
    stages_side_update(chain=chain, today=TODAY)
    stages_derive(chain=chain, today=TODAY)
    assert stage_of(customer) == before


@pytest.mark.parametrize("lost_survives", [True, False], ids=["lost-survivor", "lost-merged"])
def test_a_patient_marked_lost_stays_lost_when_merged_with_a_duplicate_seen_before_the_mark(
        chain, clinic_a, catalogue, chain_admin, lost_survives):
    lost = _lost_by_hand(chain, clinic_a, days_ago=5)
    duplicate = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(duplicate, clinic_a, 30)  # active (treated), last seen before the mark
    survivor, merged = (lost, duplicate) if lost_survives else (duplicate, lost)
    result = _merge(chain_admin, survivor, merged)
    assert stage_of(result) == ("lost", "treated")
    if not lost_survives:  # the survivor moved: one stage sentence, caused by the merge
        assert stage_events(result)[-1]["stage_to"] == "lost"
    _derive_agrees(chain, result)


@pytest.mark.parametrize("lost_survives", [True, False], ids=["lost-survivor", "lost-merged"])
def test_a_duplicate_seen_after_the_mark_brings_the_patient_back(chain, clinic_a, catalogue, chain_admin,
                                                                 lost_survives):
    lost = _lost_by_hand(chain, clinic_a, days_ago=20)
    duplicate = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(duplicate, clinic_a, 2)  # paid after the mark: something new
    survivor, merged = (lost, duplicate) if lost_survives else (duplicate, lost)
    result = _merge(chain_admin, survivor, merged)
    assert stage_of(result) == ("treated", "treated")
    _derive_agrees(chain, result)


def test_a_staff_contact_on_the_duplicate_alone_does_not_bring_a_lost_patient_back(chain, clinic_a, catalogue,
                                                                                   chain_admin, front_desk_a):
    lost = _lost_by_hand(chain, clinic_a, days_ago=20)
    duplicate = CustomerFactory(chain=chain, home_clinic=clinic_a)
    interaction_add(customer=duplicate, kind="call", text="回访", author=front_desk_a, occurred_at=timezone.now())
    assert stage_of(duplicate)[0] == "contacted"
    assert stage_of(_merge(chain_admin, duplicate, lost)) == ("lost", "treated")


@pytest.mark.parametrize("lost_survives", [True, False], ids=["lost-survivor", "lost-merged"])
def test_lost_merged_with_dormant_stays_lost(chain, clinic_a, catalogue, chain_admin, lost_survives):
    lost = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(lost, clinic_a, 1200)
    dormant = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(dormant, clinic_a, 400)
    stages_side_update(chain=chain, today=TODAY)
    assert (stage_of(lost)[0], stage_of(dormant)[0]) == ("lost", "dormant")
    survivor, merged = (lost, dormant) if lost_survives else (dormant, lost)
    result = _merge(chain_admin, survivor, merged)
    assert stage_of(result)[0] == "lost"
    _derive_agrees(chain, result)


def test_an_active_duplicate_still_wins_over_dormant(chain, clinic_a, catalogue, chain_admin):
    dormant = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(dormant, clinic_a, 400)
    stages_side_update(chain=chain, today=TODAY)
    active = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(active, clinic_a, 30)
    result = _merge(chain_admin, dormant, active)
    assert stage_of(result) == ("treated", "treated")
    _derive_agrees(chain, result)
