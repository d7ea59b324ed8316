"""Invariants of the lifecycle stages: the set-based re-derivation agrees with the events applied in order, stages only
move back through the documented side states, the daily side-state move is idempotent with its boundaries on local
days, the funnel counts the customers table, and every stage change is one timeline event with its cause."""

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smileloop.clinics.selectors import scope_for_staff
from smileloop.customers.enums import STAGE_PROGRESS, STAGE_SIDE, Stage
from smileloop.customers.models import Customer, Interaction
from smileloop.customers.services import customer_stage_advance, interaction_add, stage_rank
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.lifecycle.selectors import funnel
from smileloop.lifecycle.services import months_before, stages_derive, stages_side_update
from smileloop.membership.models import Membership
from smileloop.membership.tests.factories import MembershipFactory
from smileloop.visits.models import Appointment
from smileloop.visits.services import appointment_upsert, order_record

pytestmark = pytest.mark.django_db

SH = ZoneInfo("Asia/Shanghai")
TODAY = timezone.localdate()
KINDS = ("contact", "booked", "arrived", "completed", "no_show", "cancelled", "paid", "enrolled", "lost_by_hand")


def local(day: dt.date, hour: int = 10, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=SH)


def stage_events(customer) -> list[dict]:
    return list(Interaction.objects.filter(customer=customer, kind="system", data__has_key="stage_to")
                .order_by("id").values_list("data", flat=True))


def _apply(kind: str, customer: Customer, when: dt.datetime, clinic, staff) -> None:
    """One fact, through the event its caller fires in production."""
    if kind == "contact":
        interaction_add(customer=customer, kind="call", text="回访", author=staff, occurred_at=when)
    elif kind in ("booked", "arrived", "completed", "no_show", "cancelled"):
        # A no-show or a cancellation is what became of a booking: every other one, the PMS sent the booking first;
        # the others come straight as missed, and must count as booked all the same (as stages_derive counts them).
        n = Appointment.objects.count()
        ext = f"A{n}"
        first = ["booked"] if kind in ("no_show", "cancelled") and n % 2 else []
        for status in first + [kind]:
            appointment_upsert(customer=customer, clinic=clinic, start_at=when, end_at=when + dt.timedelta(hours=1),
                               status=status, external_id=ext)
    elif kind == "paid":
        order_record(customer=customer, clinic=clinic, ordered_at=when, lines=[{"item_code": "EX01"}],
                     payments=[{"method": "cash", "amount_fen": 5000}])
    elif kind == "enrolled" and not Membership.objects.filter(customer=customer).exists():  # one per person
        MembershipFactory(customer=customer, started_at=when)
        customer_stage_advance(customer=customer.pk, to=Stage.MEMBER, cause="enrolled", at=when)
    elif kind == "lost_by_hand":
        # marked by staff now (customer_mark_lost), after whatever was recorded before
        customer_stage_advance(customer=customer.pk, to=Stage.LOST, cause="moved away")


def _state(customer) -> tuple[str, str]:
    return tuple(Customer.objects.values_list("stage", "stage_reached").get(pk=customer.pk))


def _check_timeline(customer) -> None:
    """Each change is one event, with a cause, and the events chain from lead to the current stage."""
    events = stage_events(customer)
    stage = "lead"
    for event in events:
        assert event["stage_from"] == stage, events
        assert event["stage_to"] != event["stage_from"], events
        assert event["cause"], events
        stage = event["stage_to"]
    assert stage == _state(customer)[0], events


def _check_move(before: tuple[str, str], after: tuple[str, str], kind: str) -> None:
    """Progress only moves up; back only through the documented side states."""
    (stage0, reached0), (stage1, reached1) = before, after
    assert stage_rank(reached1) >= stage_rank(reached0)
    if stage1 in STAGE_PROGRESS:
        assert stage1 == reached1
        if stage0 in STAGE_PROGRESS:
            assert stage_rank(stage1) >= stage_rank(stage0)
        else:  # back from a side state: only on a booking, arrival, payment or enrolment
            assert kind in ("booked", "arrived", "completed", "no_show", "cancelled", "paid", "enrolled"), (
                before, after, kind)  # a no-show or cancellation was booked first (_apply)
    if stage0 == Stage.LOST and stage1 == Stage.DORMANT:
        pytest.fail("lost is never left for dormant")


facts_st = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(-20, 900), st.sampled_from((0, 7, 8, 10, 23))),
                    min_size=0, max_size=5)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(facts=facts_st)
def test_stages_derive_agrees_with_the_events_applied_in_order(chain, clinic_a, front_desk_a, catalogue, facts):
    with transaction.atomic():
        customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
        Customer.objects.filter(pk=customer.pk).update(created_at=local(TODAY - dt.timedelta(days=1000)))
        # the events, oldest first (a booking's record is made when it is booked: its start is its time here)
        for kind, days_ago, hour in sorted(facts, key=lambda f: (-f[1], f[2])):
            if days_ago < 0 and kind not in ("booked", "cancelled"):
                continue  # only bookings lie ahead
            before = _state(customer)
            _apply(kind, customer, local(TODAY - dt.timedelta(days=days_ago), hour), clinic_a, front_desk_a)
            _check_move(before, _state(customer), kind)
        before = _state(customer)
        stages_side_update(chain=chain, today=TODAY)
        after = _state(customer)
        if after != before:
            assert after[0] in STAGE_SIDE and after[1] == before[1]
        _check_timeline(customer)
        # derive on top of the events' stages finds nothing to change
        events = Interaction.objects.count()
        assert stages_derive(chain=chain, today=TODAY)["events"] == 0, facts
        assert (_state(customer), Interaction.objects.count()) == (after, events), facts
        if any(kind == "lost_by_hand" for kind, _, _ in facts):
            transaction.set_rollback(True)
            return  # a stage set by hand is no fact: wiped, derive cannot know it
        # when the stages are wiped and re-derived from the facts alone
        Customer.objects.filter(pk=customer.pk).update(stage="lead", stage_reached="lead", stage_changed_at=None,
                                                       stage_prev="")
        Interaction.objects.filter(customer=customer, data__has_key="stage_to").delete()
        stages_derive(chain=chain, today=TODAY)
        # then the same stage, and its one event
        assert _state(customer) == after, facts
        _check_timeline(customer)
        # and a second derive or daily run changes nothing
        events = Interaction.objects.count()
        assert stages_derive(chain=chain, today=TODAY)["events"] == 0
        assert stages_side_update(chain=chain, today=TODAY)["events"] == 0
        assert (_state(customer), Interaction.objects.count()) == (after, events)
        transaction.set_rollback(True)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(facts=facts_st)
def test_each_event_moves_the_stage_by_the_rules_and_writes_one_event_per_change(chain, clinic_a, front_desk_a,
                                                                                 catalogue, facts):
    with transaction.atomic():
        customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
        for kind, days_ago, hour in sorted(facts, key=lambda f: (-f[1], f[2])):
            if days_ago < 0 and kind not in ("booked", "cancelled"):
                continue
            before, events = _state(customer), len(stage_events(customer))
            _apply(kind, customer, local(TODAY - dt.timedelta(days=days_ago), hour), clinic_a, front_desk_a)
            after = _state(customer)
            _check_move(before, after, kind)
            assert len(stage_events(customer)) == events + (after != before)
        _check_timeline(customer)
        transaction.set_rollback(True)


# --- the daily side-state move ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("days_before_cutoff", "minute_of_day", "dormant"), [
    (0, 30, False),  # the cutoff day itself, 00:30 Shanghai (16:30 UTC the day before): 12 months not yet over
    (1, 23 * 60 + 30, True),  # the day before, 23:30 Shanghai (15:30 UTC): over
    (1, 7 * 60 + 59, True),
])
def test_dormant_starts_on_the_local_day_twelve_months_after_the_last_visit(chain, clinic_a, catalogue,
                                                                           days_before_cutoff, minute_of_day, dormant):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    visit_day = months_before(TODAY, 12) - dt.timedelta(days=days_before_cutoff)
    order_record(customer=customer, clinic=clinic_a,
                 ordered_at=local(visit_day, minute_of_day // 60, minute_of_day % 60),
                 lines=[{"item_code": "EX01"}], payments=[])
    first = stages_side_update(chain=chain, today=TODAY)
    second = stages_side_update(chain=chain, today=TODAY)
    assert _state(customer) == (("dormant" if dormant else "treated"), "treated")
    assert (first["dormant"], first["events"]) == ((1, 1) if dormant else (0, 0))
    assert (second["dormant"], second["lost"], second["events"]) == (0, 0, 0)
    if dormant:
        assert stage_events(customer)[-1]["cause"] == f"no visit since {visit_day.isoformat()} (12 months)"


@pytest.mark.parametrize(("days_before_cutoff", "lost"), [(0, False), (1, True)])
def test_lost_starts_thirty_six_months_after_the_last_visit_and_a_lead_after_180_days(chain, clinic_a, catalogue,
                                                                                     days_before_cutoff, lost):
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    order_record(customer=patient, clinic=clinic_a, lines=[{"item_code": "EX01"}], payments=[],
                 ordered_at=local(months_before(TODAY, 36) - dt.timedelta(days=days_before_cutoff), 0, 30))
    lead = CustomerFactory(chain=chain, home_clinic=clinic_a)
    Customer.objects.filter(pk=lead.pk).update(
        created_at=local(TODAY - dt.timedelta(days=180 + days_before_cutoff), 0, 30))
    stages_side_update(chain=chain, today=TODAY)
    assert _state(patient)[0] == ("lost" if lost else "dormant")
    assert _state(lead)[0] == ("lost" if lost else "lead")
    assert stages_side_update(chain=chain, today=TODAY)["events"] == 0


# --- the funnel ------------------------------------------------------------------------------------------------

people_st = st.lists(st.tuples(st.sampled_from(STAGE_PROGRESS + STAGE_SIDE), st.sampled_from(STAGE_PROGRESS),
                               st.booleans(), st.sampled_from(("douyin", "meituan", ""))), min_size=0, max_size=8)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(people=people_st, merged=st.booleans())
def test_the_funnel_counts_the_customers_table_by_stage_clinic_and_source(chain, clinic_a, clinic_b, director_a,
                                                                          chain_admin, people, merged):
    with transaction.atomic():
        made = [CustomerFactory(chain=chain, home_clinic=clinic_a if in_a else clinic_b, stage=stage,
                                stage_reached=reached if stage in STAGE_SIDE else stage, first_touch_channel=source)
                for stage, reached, in_a, source in people]
        if merged and made:
            Customer.objects.filter(pk=made[0].pk).update(merged_into=CustomerFactory(chain=chain, home_clinic=clinic_a))
        for staff, clinics in ((chain_admin, [clinic_a.pk, clinic_b.pk]), (director_a, [clinic_a.pk])):
            for source in (None, "douyin"):
                live = Customer.objects.filter(chain=chain, merged_into__isnull=True, home_clinic_id__in=clinics)
                if source:
                    live = live.filter(first_touch_channel=source)
                expected = Counter((c.stage, c.stage_reached, c.home_clinic_id, c.first_touch_channel) for c in live)
                result = funnel(scope_for_staff(staff), source=source)
                assert Counter({(r.stage, r.stage_reached, r.clinic_id, r.source): r.count
                                for r in result.rows}) == expected
                assert result.total == live.count()
                by_stage = Counter(live.values_list("stage", flat=True))
                assert {s.stage: s.current for s in result.stages if s.current} == dict(by_stage)
                for step in result.stages:
                    if step.reached is not None:
                        rank = STAGE_PROGRESS.index(step.stage)
                        assert step.reached == sum(1 for c in live if stage_rank(c.stage_reached) >= rank)
        transaction.set_rollback(True)


def test_derive_leaves_a_lost_lead_who_was_called_as_the_call_did(chain, clinic_a, front_desk_a):
    # given a lead marked lost, then called by staff (a contact alone brings nobody back, nor counts as reached)
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    customer_stage_advance(customer=customer.pk, to=Stage.LOST, cause="moved away")
    interaction_add(customer=customer, kind="call", text="回访", author=front_desk_a)
    assert _state(customer) == ("lost", "lead")
    events = Interaction.objects.count()
    # when
    stages_derive(chain=chain, today=TODAY)
    # then derive agrees with the events: nothing changes
    assert _state(customer) == ("lost", "lead")
    assert Interaction.objects.count() == events
