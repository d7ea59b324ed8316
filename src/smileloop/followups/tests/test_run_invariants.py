"""Invariants of the daily follow-up run under time travel: random small patient histories, the run over a sequence
of days in any order (skipped, repeated, backwards), and the properties that must hold whatever the order."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smileloop.clinics.enums import Role
from smileloop.clinics.models import Staff
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.customers.models import Customer
from smileloop.customers.privacy import customer_erase
from smileloop.customers.services import customer_merge
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.enums import Goal, TaskStatus
from smileloop.followups.models import LAPSED, MERGED_DUPLICATE, FollowupTask, Playbook, PlaybookStep
from smileloop.followups.services.generate import followups_close_by_goal, followups_generate
from smileloop.followups.services.sources import ARRIVAL_STATUSES, BOOKING_STATUSES, months_add
from smileloop.followups.tasks import followups_job
from smileloop.followups.tests.factories import ProcedureFactory
from smileloop.visits.enums import PlanStatus
from smileloop.visits.models import Appointment, TreatmentPlan
from smileloop.visits.services import appointment_upsert, order_record

pytestmark = pytest.mark.django_db

SH = ZoneInfo("Asia/Shanghai")
# Facts are records of what happened: the histories lie a month back, the runs' days just after them.
BASE = timezone.localdate() - dt.timedelta(days=40)
# Playbooks the random histories feed (the others stay switched off to keep the run small).
USED = ("lead_never_came", "unfinished_treatment", "postop_implant", "postop_extraction", "satisfaction", "recall",
        "dormant", "no_show")
KINDS = ("implant", "extraction", "visit", "no_show", "booked", "cleaning", "old_visit", "lead", "plan")
# Local hours around UTC midnight (07:xx and 08:xx in Shanghai) and the local day's edges.
HOURS = (0, 7, 8, 10, 23)


def local(day: dt.date, hour: int = 10, minute: int = 30) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=SH)


def day(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


@pytest.fixture
def staff(chain, clinic_a, clinic_b, director_a, chain_admin, front_desk_a, front_desk_b, consultant_a, doctor_a,
          assistant_a):
    # someone who left: never an assignee
    StaffFactory(chain=chain, role=Role.FRONT_DESK, clinics=[clinic_b], is_active=False)
    return {"doctor": doctor_a, "consultant": consultant_a, "admin": chain_admin}


@pytest.fixture
def used_playbooks(chain, playbooks):
    Playbook.objects.exclude(code__in=USED).update(is_active=False)
    # steps beyond the runs' twelve days never match: off, for speed
    PlaybookStep.objects.filter(playbook__chain=chain, delay_days__gt=7).update(is_active=False)
    return {code: p for code, p in playbooks.items() if code in USED}


def _keys() -> set[tuple]:
    return set(FollowupTask.objects.values_list("customer_id", "playbook_id", "step_id", "anchor_key"))


def _fact(kind: str, customer: Customer, on: dt.date, hour: int, items, staff) -> None:
    clinic = customer.home_clinic
    if kind in ("implant", "extraction"):
        ProcedureFactory(customer=customer, clinic=clinic, doctor=staff["doctor"], performed_on=on,
                         item=items["IM01" if kind == "implant" else "EXT1"])
    elif kind in ("visit", "no_show", "booked"):
        start = local(on + (day(5) if kind == "booked" else day(0)), hour)
        status = {"visit": "completed", "no_show": "no_show", "booked": "booked"}[kind]
        appointment_upsert(customer=customer, clinic=clinic, start_at=start, end_at=start + dt.timedelta(minutes=30),
                           status=status, doctor=staff["doctor"])
    elif kind in ("cleaning", "old_visit"):
        when = local(months_add(on, -6 if kind == "cleaning" else -12), hour)
        order_record(customer=customer, clinic=clinic, ordered_at=when,
                     lines=[{"item_code": "CL01" if kind == "cleaning" else "FI01"}], payments=[])
    elif kind == "lead":
        Customer.objects.filter(pk=customer.pk).update(first_touch_at=local(on, hour))
    elif kind == "plan":
        TreatmentPlan.objects.create(chain=customer.chain, clinic=clinic, customer=customer, doctor=staff["doctor"],
                                     title="根管治疗", status=PlanStatus.ACTIVE, steps_total=3, steps_done=1,
                                     planned_at=local(on - day(14), hour))


def _history(chain, clinics, items, staff, facts, merge, erase) -> list[Customer]:
    people = [CustomerFactory(chain=chain, home_clinic=clinics[i % 2], consultant=staff["consultant"],
                              created_at=local(BASE - day(200))) for i in range(3)]
    for who, kind, offset, hour in facts:
        _fact(kind, people[who], BASE + day(offset), hour, items, staff)
    admin = scope_for_staff(staff["admin"])
    if merge:  # the third record turns out to be the first patient
        customer_merge(scope=admin, survivor=people[0], merged=people[2], actor=staff["admin"], reason="same person")
    if erase:
        customer_erase(scope=admin, customer=people[1], actor=staff["admin"], reason="本人申请", forfeit=True)
    return people


def _anchor_day(task: FollowupTask) -> dt.date:
    """The local day a task's step counts its delay from."""
    if task.playbook.code == "dormant":  # anchored on the last visit; due the day after its first anniversary
        return months_add(task.anchor_at.astimezone(SH).date(), 12) + day(1)
    return task.anchor_at.astimezone(SH).date()


def _goal_met(task: FollowupTask) -> bool:
    """The playbook's goal, from the facts, in Python (the reference for the SQL goal closer)."""
    goal, at = task.playbook.goal, task.anchor_at
    customer = Customer.objects.get(pk=task.customer_id)
    appointments = Appointment.objects.filter(customer_id=task.customer_id)
    if goal == Goal.APPOINTMENT_BOOKED:
        return (any(a.start_at >= at for a in appointments if a.status in BOOKING_STATUSES)
                or bool(customer.last_visit_at and customer.last_visit_at >= at))
    if goal == Goal.REBOOKED:
        return (any(a.start_at > at for a in appointments if a.status in BOOKING_STATUSES)
                or bool(customer.last_visit_at and customer.last_visit_at > at))
    if goal == Goal.ARRIVAL:
        return (any(a.start_at > at for a in appointments if a.status in ARRIVAL_STATUSES)
                or bool(customer.last_visit_at and customer.last_visit_at > at))
    return False


def _check_tasks() -> None:
    """What holds for every task, whichever days ran in whichever order."""
    active = {s.pk: s for s in Staff.objects.filter(is_active=True).prefetch_related("clinics")}
    for task in FollowupTask.objects.select_related("customer", "playbook", "step"):
        person = task.customer
        assert person.merged_into_id is None or task.status != TaskStatus.OPEN, task
        assert person.erased_at is None or task.status != TaskStatus.OPEN, task
        # due on the step's day after the anchor's local day, at the end of the working day
        due = task.due_at.astimezone(SH)
        assert due.date() == _anchor_day(task) + day(task.step.delay_days), (task, task.anchor_at, due)
        assert due.time() == dt.time(18, 0)
        if task.anchor_key.startswith("visit:"):  # the visit's local day names the anchor
            assert task.anchor_key == f"visit:{task.anchor_at.astimezone(SH).date().isoformat()}"
        # an active staff member who works at the task's clinic, or the chain admin (the documented last resort)
        who = active.get(task.assignee_id)
        assert who is not None, task
        assert who.role == Role.CHAIN_ADMIN or task.clinic_id in {c.pk for c in who.clinics.all()}, task


def _check_goals() -> None:
    for task in FollowupTask.objects.select_related("playbook").filter(playbook__goal__in=[
            Goal.APPOINTMENT_BOOKED, Goal.REBOOKED, Goal.ARRIVAL]):
        if task.status == TaskStatus.OPEN:
            assert not _goal_met(task), task
        elif task.closed_reason.startswith("goal:"):
            assert _goal_met(task), task


facts_st = st.lists(st.tuples(st.integers(0, 2), st.sampled_from(KINDS), st.integers(-6, 0), st.sampled_from(HOURS)),
                    min_size=1, max_size=5)
days_st = st.lists(st.integers(-1, 7), min_size=1, max_size=3)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(facts=facts_st, order=days_st, merge=st.booleans(), erase=st.booleans())
def test_any_order_of_days_makes_a_subset_of_the_daily_runs_tasks_and_each_day_is_idempotent(
        chain, clinic_a, clinic_b, items, staff, used_playbooks, facts, order, merge, erase):
    with transaction.atomic():
        _history(chain, [clinic_a, clinic_b], items, staff, facts, merge, erase)
        # the reference: every day from BASE - 4 to BASE + 7 in order (a run makes good the 3 days before it:
        # three runs cover the twelve days exactly as twelve daily runs would)
        for offset in (-1, 3, 7):
            followups_generate(chain=chain, today=BASE + day(offset))
        _check_tasks()
        reference = _keys()
        FollowupTask.objects.all().delete()
        # when: the days of `order`, skipped, repeated or backwards, each run twice
        for offset in order:
            followups_generate(chain=chain, today=BASE + day(offset))
            assert followups_generate(chain=chain, today=BASE + day(offset))["created"] == 0
        # then
        _check_tasks()
        assert _keys() <= reference
        # and the goal closer closes exactly the tasks whose goal happened
        followups_close_by_goal(chain=chain)
        _check_goals()
        transaction.set_rollback(True)


def test_the_whole_job_run_twice_the_same_day_creates_and_closes_nothing(chain, clinic_a, clinic_b, items, staff,
                                                                        used_playbooks):
    facts = [(0, "implant", -1, 8), (0, "visit", -1, 7), (1, "no_show", 0, 23), (1, "lead", -3, 0),
             (2, "cleaning", -2, 7), (2, "extraction", -7, 10), (2, "booked", -4, 10)]
    _history(chain, [clinic_a, clinic_b], items, staff, facts, merge=False, erase=False)
    first = followups_job(today=BASE)
    second = followups_job(today=BASE)
    assert first["created"] > 0
    assert (second["created"], second["closed"], second["lapsed"]) == (0, 0, 0)
    _check_tasks()


# --- plain scenarios -------------------------------------------------------------------------------------------

def test_a_visit_early_in_the_morning_is_anchored_on_its_local_day(chain, clinic_a, items, staff, used_playbooks):
    # given a visit at 07:30 Shanghai time: 23:30 UTC the day before
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    _fact("visit", patient, BASE, 7, items, staff)
    # when
    followups_generate(chain=chain, today=BASE + day(1))
    # then the satisfaction call is for that local day's visit, due the next local day
    [task] = FollowupTask.objects.filter(playbook=used_playbooks["satisfaction"])
    assert task.anchor_key == f"visit:{BASE.isoformat()}"
    assert task.due_at == local(BASE + day(1), 18, 0)


def test_a_recall_is_made_once_whether_the_run_went_daily_or_caught_up(chain, clinic_a, items, staff,
                                                                       used_playbooks):
    # given an exam and, two days later, a cleaning, six months ago (one patient, one recall due)
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    order_record(customer=patient, clinic=clinic_a, ordered_at=local(months_add(BASE, -6)),
                 lines=[{"item_code": "EX01"}], payments=[])
    order_record(customer=patient, clinic=clinic_a, ordered_at=local(months_add(BASE + day(2), -6)),
                 lines=[{"item_code": "CL01"}], payments=[])
    recall = used_playbooks["recall"]
    # when the runs went daily
    for offset in range(0, 3):
        followups_generate(chain=chain, today=BASE + day(offset))
    daily = sorted(FollowupTask.objects.filter(playbook=recall).values_list("anchor_key", flat=True))
    FollowupTask.objects.all().delete()
    # or two days were missed and made good on the third
    followups_generate(chain=chain, today=BASE + day(2))
    caught_up = sorted(FollowupTask.objects.filter(playbook=recall).values_list("anchor_key", flat=True))
    # then one recall, due six months after the latest of the two
    assert daily == caught_up == [f"recall:{(BASE + day(2)).isoformat()}"]


def test_a_merge_leaves_the_survivor_one_open_lead_call(chain, clinic_a, items, staff, used_playbooks):
    # given one person entered twice as a lead, each record with its day-one call
    first = CustomerFactory(chain=chain, home_clinic=clinic_a, first_touch_at=local(BASE - day(1)))
    second = CustomerFactory(chain=chain, home_clinic=clinic_a, first_touch_at=local(BASE - day(1), 15))
    followups_generate(chain=chain, today=BASE)
    lead = used_playbooks["lead_never_came"]
    assert FollowupTask.objects.filter(playbook=lead, status=TaskStatus.OPEN).count() == 2
    # when
    customer_merge(scope=scope_for_staff(staff["admin"]), survivor=first, merged=second, actor=staff["admin"],
                   reason="same person")
    # then one open call of the step for the survivor; the other kept, cancelled as the merged duplicate
    tasks = FollowupTask.objects.filter(customer=first, playbook=lead)
    assert sorted(tasks.values_list("status", flat=True)) == ["cancelled", "open"]
    assert tasks.get(status=TaskStatus.CANCELLED).closed_reason == MERGED_DUPLICATE
    # and later runs do not bring a second one back
    followups_generate(chain=chain, today=BASE + day(2))
    followups_generate(chain=chain, today=BASE + day(3))
    open_steps = list(FollowupTask.objects.filter(customer=first, playbook=lead, status=TaskStatus.OPEN)
                      .values_list("step_id", flat=True))
    assert len(open_steps) == len(set(open_steps))


def test_the_documented_steps_lapse_after_their_days_and_the_others_stay_open(chain, clinic_a, items, staff,
                                                                             used_playbooks):
    # given an implant and a completed visit on BASE: the day-one calls are due on BASE + 1
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    _fact("implant", patient, BASE, 10, items, staff)
    _fact("visit", patient, BASE, 10, items, staff)
    followups_job(today=BASE + day(1))
    followups_job(today=BASE + day(3))  # the day-three call

    def open_steps():
        return sorted(FollowupTask.objects.filter(status=TaskStatus.OPEN).values_list("playbook__code",
                                                                                        "step__delay_days"))

    # when the run of the third day after the due day passes, the implant's day-one call lapses (3 days)
    followups_job(today=BASE + day(4))
    assert ("postop_implant", 1) in open_steps()
    followups_job(today=BASE + day(5))
    assert ("postop_implant", 1) not in open_steps()
    assert ("satisfaction", 1) in open_steps() and ("postop_implant", 3) in open_steps()
    # and the satisfaction call after 7 days
    followups_job(today=BASE + day(8))
    assert ("satisfaction", 1) in open_steps()
    followups_job(today=BASE + day(9))
    assert ("satisfaction", 1) not in open_steps()
    assert ("postop_implant", 3) in open_steps()  # no lapse_days: open until worked
    lapsed = FollowupTask.objects.filter(status=TaskStatus.CANCELLED)
    assert sorted(lapsed.values_list("playbook__code", flat=True)) == ["postop_implant", "satisfaction"]
    assert set(lapsed.values_list("closed_reason", flat=True)) == {LAPSED}
