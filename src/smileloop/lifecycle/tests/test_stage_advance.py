"""customers.services.customer_stage_advance and the events that call it (visits, orders, contacts, membership)."""

import datetime as dt

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smileloop.customers.enums import STAGE_PROGRESS, Stage
from smileloop.customers.models import Customer, Interaction
from smileloop.customers.services import customer_stage_advance, interaction_add, stage_rank
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.lifecycle.services import stages_derive
from smileloop.visits.services import appointment_upsert, order_record

AT = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


def stage_events(customer):
    return list(Interaction.objects.filter(customer=customer, kind="system", data__has_key="stage_to")
                .order_by("id").values_list("data", flat=True))


@pytest.fixture
def lead(chain, clinic_a):
    return CustomerFactory(chain=chain, home_clinic=clinic_a, name="王小明")


def test_a_lead_moves_up_and_the_change_is_one_timeline_event_with_its_cause(lead, front_desk_a):
    # when
    changed = customer_stage_advance(customer=lead.id, to=Stage.BOOKED, cause="appointment booked", at=AT,
                                     actor=front_desk_a)
    # then
    assert changed
    lead.refresh_from_db()
    assert (lead.stage, lead.stage_reached, lead.stage_prev, lead.stage_changed_at) == ("booked", "booked", "lead", AT)
    [event] = Interaction.objects.filter(customer=lead, kind="system")
    assert event.data == {"stage_from": "lead", "stage_to": "booked", "cause": "appointment booked"}
    assert event.text == "stage lead → booked: appointment booked"
    assert (event.author, event.occurred_at) == (front_desk_a, AT)


def test_the_stage_never_moves_back_and_an_unchanged_stage_writes_nothing(lead, django_assert_num_queries):
    customer_stage_advance(customer=lead, to=Stage.TREATED, cause="paid")
    # when: an arrival after treatment changes nothing, in one statement
    with django_assert_num_queries(1):
        changed = customer_stage_advance(customer=lead.id, to=Stage.ARRIVED, cause="arrived")
    # then
    assert not changed
    lead.refresh_from_db()
    assert lead.stage == "treated"
    assert len(stage_events(lead)) == 1


def test_a_passed_instance_is_refreshed_so_a_later_save_keeps_the_new_stage(lead):
    customer_stage_advance(customer=lead, to=Stage.MEMBER, cause="enrolled")
    assert (lead.stage, lead.stage_reached) == ("member", "member")
    lead.save()
    lead.refresh_from_db()
    assert lead.stage == "member"


def test_a_dormant_customer_comes_back_to_the_highest_stage_reached(lead):
    customer_stage_advance(customer=lead, to=Stage.MEMBER, cause="enrolled")
    customer_stage_advance(customer=lead, to=Stage.DORMANT, cause="no visit for 12 months")
    assert lead.stage == "dormant" and lead.stage_reached == "member"
    # when: a staff call does not bring them back, an arrival does
    assert not customer_stage_advance(customer=lead, to=Stage.CONTACTED, cause="call")
    assert customer_stage_advance(customer=lead, to=Stage.ARRIVED, cause="arrived")
    # then
    assert (lead.stage, lead.stage_reached) == ("member", "member")
    assert stage_events(lead)[-1] == {"stage_from": "dormant", "stage_to": "member", "cause": "arrived"}


def test_a_lost_lead_comes_back_on_a_booking_and_lost_is_not_left_for_dormant(lead):
    customer_stage_advance(customer=lead, to=Stage.LOST, cause="never came")
    assert not customer_stage_advance(customer=lead, to=Stage.DORMANT, cause="no visit")
    assert customer_stage_advance(customer=lead, to=Stage.BOOKED, cause="booked")
    assert (lead.stage, lead.stage_reached) == ("booked", "booked")


def test_an_unknown_stage_is_a_validation_error(lead):
    from smileloop.core.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        customer_stage_advance(customer=lead, to="patient", cause="old stage")


EVENTS = st.sampled_from([*STAGE_PROGRESS[1:], Stage.DORMANT, Stage.LOST])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(EVENTS, min_size=1, max_size=12))
def test_random_event_sequences_never_move_progress_backwards(chain, events):
    customer = CustomerFactory(chain=chain)
    reached = 0
    for to in events:
        changed = customer_stage_advance(customer=customer.id, to=to, cause="hypothesis")
        row = Customer.objects.values("stage", "stage_reached").get(pk=customer.id)
        # the highest stage reached never goes down …
        assert stage_rank(row["stage_reached"]) >= reached
        reached = stage_rank(row["stage_reached"])
        # … an active customer sits on it, and a side state is only left by a reviving event
        if row["stage"] in STAGE_PROGRESS:
            assert row["stage"] == row["stage_reached"]
        if to in STAGE_PROGRESS and changed:
            assert row["stage"] == STAGE_PROGRESS[max(reached, STAGE_PROGRESS.index(to))]
    assert len(stage_events(customer)) == sum(
        1 for e in Interaction.objects.filter(customer=customer, kind="system").values_list("data", flat=True)
        if e.get("stage_from") != e.get("stage_to"))


# --- the events ------------------------------------------------------------------------------------------


def test_booking_then_arrival_then_payment_walk_the_stages(lead, clinic_a, catalogue):
    start = timezone.now() - dt.timedelta(days=2)  # an arrival and a payment are facts: in the past
    appointment_upsert(customer=lead, clinic=clinic_a, start_at=start, end_at=start + dt.timedelta(hours=1),
                       external_id="A1")
    lead.refresh_from_db()
    assert lead.stage == "booked"
    appointment_upsert(customer=lead, clinic=clinic_a, start_at=start, end_at=start + dt.timedelta(hours=1),
                       status="arrived", external_id="A1")
    lead.refresh_from_db()
    assert lead.stage == "arrived"
    order_record(customer=lead, clinic=clinic_a, ordered_at=start, lines=[{"item_code": "EX01"}],
                 payments=[{"method": "cash", "amount_fen": 5000}])
    lead.refresh_from_db()
    assert lead.stage == "treated"
    assert [e["stage_to"] for e in stage_events(lead)] == ["booked", "arrived", "treated"]
    assert "paid order #" in stage_events(lead)[-1]["cause"]


@pytest.mark.parametrize("status", ["no_show", "cancelled"])
def test_an_appointment_first_heard_of_as_missed_or_cancelled_was_still_booked_as_the_derivation_says(
        chain, clinic_a, status):
    # given two leads: the PMS sends one's appointment as booked then missed, the other's only as missed
    start = timezone.now() - dt.timedelta(days=2)
    twice, once = (CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(2))
    for customer, statuses in ((twice, ["booked", status]), (once, [status])):
        for s in statuses:
            appointment_upsert(customer=customer, clinic=clinic_a, start_at=start,
                               end_at=start + dt.timedelta(hours=1), status=s, external_id=f"A{customer.id}")
    # then both are booked, with one stage event each, and re-deriving from the facts agrees
    for customer in (twice, once):
        customer.refresh_from_db()
        assert customer.stage == "booked" and [e["stage_to"] for e in stage_events(customer)] == ["booked"]
    assert stages_derive(chain=chain, today=timezone.localdate())["events"] == 0
    # and a missed appointment already on file does not move anyone again when it is sent once more
    appointment_upsert(customer=once, clinic=clinic_a, start_at=start, end_at=start + dt.timedelta(hours=1),
                       status=status, external_id=f"A{once.id}")
    assert len(stage_events(once)) == 1


def test_a_paid_order_makes_a_lead_treated_at_once(lead, clinic_a, catalogue):
    order_record(customer=lead, clinic=clinic_a, ordered_at=AT, lines=[{"item_code": "EX01"}],
                 payments=[{"method": "cash", "amount_fen": 5000}])
    lead.refresh_from_db()
    assert (lead.stage, lead.stage_reached) == ("treated", "treated")


def test_a_staff_call_contacts_a_lead_but_a_patients_own_message_does_not(lead, front_desk_a):
    interaction_add(customer=lead, kind="chat", text="你好")  # the patient's own message: no author
    lead.refresh_from_db()
    assert lead.stage == "lead"
    interaction_add(customer=lead, kind="call", text="电话回访", author=front_desk_a)
    lead.refresh_from_db()
    assert lead.stage == "contacted"
    assert stage_events(lead)[0]["cause"] == f"call by {front_desk_a.name}"


def test_a_membership_enrolment_makes_the_customer_a_member(chain, clinic_a):
    from smileloop.membership.services import membership_enrol
    from smileloop.membership.tests.factories import PlanFactory, TierFactory

    plan = PlanFactory(chain=chain, kind="paid", fee_fen=89900)
    TierFactory(plan=plan, rank=1, name="年卡")
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a, stage="treated")
    # when
    membership_enrol(customer=customer, plan=plan)
    # then
    customer.refresh_from_db()
    assert (customer.stage, customer.stage_reached) == ("member", "member")
    assert "enrolled in" in stage_events(customer)[-1]["cause"]


def test_a_successful_referral_makes_a_referrer_and_a_referrer_stays_one(lead):
    customer_stage_advance(customer=lead, to=Stage.TREATED, cause="paid")
    assert customer_stage_advance(customer=lead.id, to=Stage.REFERRER, cause="referred 李四 who arrived")
    assert not customer_stage_advance(customer=lead.id, to=Stage.MEMBER, cause="enrolled")
    lead.refresh_from_db()
    assert (lead.stage, lead.stage_reached) == ("referrer", "referrer")
