"""stages_derive (set-based re-derivation from the facts) and stages_job (daily dormant / lost)."""

import datetime as dt

import pytest
from django.utils import timezone

from smileloop.customers.models import Customer, Interaction
from smileloop.customers.services import customer_stage_advance, interaction_add
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.lifecycle.models import LifecycleSettings
from smileloop.lifecycle.services import months_before, stages_derive, stages_side_update
from smileloop.lifecycle.tasks import stages_derive_job, stages_job
from smileloop.membership.tests.factories import MembershipFactory
from smileloop.visits.services import appointment_upsert, order_record

TODAY = timezone.localdate()


def at(days_ago: int, hour: int = 10) -> dt.datetime:
    day = TODAY - dt.timedelta(days=days_ago)
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


def stage_of(customer) -> tuple[str, str]:
    row = Customer.objects.values_list("stage", "stage_reached").get(pk=customer.pk)
    return row


def stage_events(customer) -> list[dict]:
    return list(Interaction.objects.filter(customer=customer, kind="system", data__has_key="stage_to")
                .order_by("id").values_list("data", flat=True))


def book(customer, clinic, days_ago, status="booked", ext=None):
    start = at(days_ago)
    return appointment_upsert(customer=customer, clinic=clinic, start_at=start, end_at=start + dt.timedelta(hours=1),
                              status=status, external_id=ext)[0]


def pay(customer, clinic, days_ago, amount=5000):
    return order_record(customer=customer, clinic=clinic, ordered_at=at(days_ago), lines=[{"item_code": "EX01"}],
                        payments=[{"method": "cash", "amount_fen": amount}])[0]


@pytest.fixture
def people(chain, clinic_a, front_desk_a, catalogue):
    """A small pool built through the real events (so the event-driven stages are the reference)."""
    p = {name: CustomerFactory(chain=chain, home_clinic=clinic_a, name=name) for name in (
        "lead", "contacted", "booked", "no_show", "arrived", "treated", "member", "dormant", "long_gone")}
    interaction_add(customer=p["contacted"], kind="call", text="回访", author=front_desk_a, occurred_at=at(3))
    book(p["booked"], clinic_a, -3)
    book(p["no_show"], clinic_a, 5)
    book(p["no_show"], clinic_a, 5, status="no_show")  # a new appointment row, straight to no-show
    book(p["arrived"], clinic_a, 20, status="completed")
    book(p["treated"], clinic_a, 40, status="completed")
    pay(p["treated"], clinic_a, 40)
    pay(p["member"], clinic_a, 60)
    MembershipFactory(customer=p["member"])
    customer_stage_advance(customer=p["member"], to="member", cause="enrolled")
    pay(p["dormant"], clinic_a, 400)
    pay(p["long_gone"], clinic_a, 1200)
    return p


def test_derive_from_scratch_equals_the_event_driven_stages(chain, people):
    # given: the event-driven progress, then the daily job's side states
    stages_job(today=TODAY)
    expected = {name: stage_of(c) for name, c in people.items()}
    assert expected == {
        "lead": ("lead", "lead"), "contacted": ("contacted", "contacted"), "booked": ("booked", "booked"),
        "no_show": ("booked", "booked"), "arrived": ("arrived", "arrived"), "treated": ("treated", "treated"),
        "member": ("member", "member"), "dormant": ("dormant", "treated"), "long_gone": ("lost", "treated")}
    # when: every stage is wiped and re-derived from the facts alone
    Customer.objects.update(stage="lead", stage_reached="lead", stage_changed_at=None, stage_prev="")
    counts = stages_derive(chain=chain, today=TODAY)
    # then
    assert {name: stage_of(c) for name, c in people.items()} == expected
    assert counts["events"] == 8  # everyone but the lead changed once
    assert stage_events(people["long_gone"])[-1] == {
        "stage_from": "lead", "stage_to": "lost",
        "cause": f"no visit since {(TODAY - dt.timedelta(days=1200)).isoformat()} (36 months)"}


def test_derive_twice_changes_nothing_the_second_time(chain, people):
    stages_derive(chain=chain, today=TODAY)
    before = {name: stage_of(c) for name, c in people.items()}
    events = Interaction.objects.count()
    assert stages_derive(chain=chain, today=TODAY)["events"] == 0
    assert {name: stage_of(c) for name, c in people.items()} == before
    assert Interaction.objects.count() == events


def test_derive_never_moves_progress_back(chain, clinic_a):
    # a member by hand, with no fact behind it: derive keeps them a member
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a, stage="member")
    stages_derive(chain=chain, today=TODAY)
    assert stage_of(customer) == ("member", "member")


def test_the_job_moves_to_dormant_with_the_cause_and_is_idempotent(chain, clinic_a, catalogue):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(customer, clinic_a, 400)
    # when
    first = stages_job(today=TODAY)
    second = stages_job(today=TODAY)
    # then
    assert (first["dormant"], first["events"]) == (1, 1)
    assert (second["dormant"], second["lost"], second["events"]) == (0, 0, 0)
    assert stage_of(customer) == ("dormant", "treated")
    last_visit = (TODAY - dt.timedelta(days=400)).isoformat()
    assert stage_events(customer)[-1] == {"stage_from": "treated", "stage_to": "dormant",
                                          "cause": f"no visit since {last_visit} (12 months)"}


def test_dormant_then_lost_follow_the_chains_settings(chain, clinic_a, catalogue):
    LifecycleSettings.objects.create(chain=chain, dormant_after_months=6, lost_after_months=6)
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(customer, clinic_a, 250)  # ~8 months ago
    stages_job(today=TODAY)
    assert stage_of(customer)[0] == "dormant"
    # a year after that visit (6 + 6 months)
    stages_job(today=TODAY + dt.timedelta(days=200))
    assert stage_of(customer)[0] == "lost"
    assert stage_events(customer)[-1]["stage_from"] == "dormant"
    assert stage_events(customer)[-1]["cause"].endswith("(12 months)")


def test_a_lead_who_never_came_is_lost_after_the_lead_window_unless_contacted(chain, clinic_a, front_desk_a):
    old_lead = CustomerFactory(chain=chain, home_clinic=clinic_a)
    called = CustomerFactory(chain=chain, home_clinic=clinic_a)
    Customer.objects.filter(pk__in=[old_lead.pk, called.pk]).update(created_at=at(200))
    interaction_add(customer=called, kind="call", author=front_desk_a, occurred_at=at(30))
    new_lead = CustomerFactory(chain=chain, home_clinic=clinic_a)
    # when
    counts = stages_job(today=TODAY)
    # then
    assert counts["lost"] == 1
    assert [stage_of(c)[0] for c in (old_lead, called, new_lead)] == ["lost", "contacted", "lead"]
    assert stage_events(old_lead)[-1]["cause"] == "never came: no booking or contact for 180 days"


def test_a_recent_booking_keeps_a_long_absent_patient_out_of_dormant(chain, clinic_a, catalogue):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(customer, clinic_a, 500)
    book(customer, clinic_a, -7)  # booked next week
    stages_job(today=TODAY)
    assert stage_of(customer)[0] == "treated"


def test_a_dormant_patient_comes_back_to_the_reached_stage_on_arrival(chain, clinic_a, catalogue):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(customer, clinic_a, 400)
    MembershipFactory(customer=customer, status="expired", started_at=at(400))
    customer_stage_advance(customer=customer, to="member", cause="enrolled long ago")
    stages_job(today=TODAY)
    assert stage_of(customer) == ("dormant", "member")
    # when
    book(customer, clinic_a, 0, status="arrived")
    # then
    assert stage_of(customer) == ("member", "member")
    assert stage_events(customer)[-1]["stage_from"] == "dormant"


def test_derive_brings_back_a_dormant_customer_whose_facts_are_recent(chain, clinic_a, catalogue):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a, stage="dormant", stage_reached="treated")
    pay(customer, clinic_a, 10)  # an imported recent order (events did not revive: the order is a fact)
    Customer.objects.filter(pk=customer.pk).update(stage="dormant")
    stages_derive(chain=chain, today=TODAY)
    assert stage_of(customer) == ("treated", "treated")


def test_derive_keeps_a_customer_lost_by_hand_until_something_new_happens(chain, clinic_a, catalogue):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(customer, clinic_a, 30)
    customer_stage_advance(customer=customer, to="lost", cause="moved to another city")
    stages_derive(chain=chain, today=TODAY)
    assert stage_of(customer)[0] == "lost"
    book(customer, clinic_a, -2)  # books again: back on the event
    assert stage_of(customer) == ("treated", "treated")


def test_merged_customers_are_left_alone(chain, clinic_a, catalogue):
    survivor = CustomerFactory(chain=chain, home_clinic=clinic_a)
    tombstone = CustomerFactory(chain=chain, home_clinic=clinic_a, merged_into=survivor, mobile=None)
    Customer.objects.filter(pk=tombstone.pk).update(created_at=at(400))
    stages_derive(chain=chain, today=TODAY)
    assert stage_of(tombstone) == ("lead", "lead")


def test_the_jobs_run_every_chain_on_its_own_date(chain, clinic_a, catalogue):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    pay(customer, clinic_a, 30)
    counts = stages_derive_job(today=TODAY)
    assert counts["chains"] == 1 and counts["events"] == 0  # the order event already made them treated
    assert stages_job()["chains"] == 1


def test_months_before_clamps_to_the_end_of_the_month():
    assert months_before(dt.date(2026, 3, 31), 1) == dt.date(2026, 2, 28)
    assert months_before(dt.date(2026, 1, 15), 12) == dt.date(2025, 1, 15)
    assert months_before(dt.date(2026, 1, 15), 13) == dt.date(2024, 12, 15)


def test_side_update_is_a_handful_of_statements(chain, clinic_a, django_assert_max_num_queries):
    for _ in range(30):
        CustomerFactory(chain=chain, home_clinic=clinic_a)
    with django_assert_max_num_queries(8):
        stages_side_update(chain=chain, today=TODAY)


def test_a_registered_referral_fact_makes_referrers_in_derive(chain, clinic_a, catalogue):
    from django.db.models import Q

    from smileloop.lifecycle import services

    referrer = CustomerFactory(chain=chain, home_clinic=clinic_a, name="推荐人老王")
    pay(referrer, clinic_a, 30)
    services.referrer_fact_register(lambda chain_id: Q(name="推荐人老王"))
    try:
        stages_derive(chain=chain, today=TODAY)
    finally:
        services._REFERRER_FACTS.clear()
    assert stage_of(referrer) == ("referrer", "referrer")
    assert stage_events(referrer)[-1]["stage_from"] == "treated"
