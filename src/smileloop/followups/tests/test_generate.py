"""The daily run: each trigger creates the right tasks on the right day, for the right assignee, with the
script filled; never twice; goals close tasks."""

import datetime as dt

import pytest
from django.utils import timezone

from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.customers.enums import Stage
from smileloop.customers.models import Customer
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.enums import Outcome, TaskStatus
from smileloop.followups.models import FollowupTask
from smileloop.followups.script import tasks_scripts_fill
from smileloop.followups.services import followup_complete
from smileloop.followups.services.generate import followups_close_by_goal, followups_generate
from smileloop.followups.services.sources import months_add, months_sources
from smileloop.followups.tasks import followups_job
from smileloop.followups.tests.factories import AppointmentFactory, ProcedureFactory, local
from smileloop.lifecycle.services import stages_side_update
from smileloop.visits.enums import AppointmentStatus
from smileloop.visits.models import Order, OrderLine

pytestmark = pytest.mark.django_db


def days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


def tasks_of(playbook):
    return list(FollowupTask.objects.filter(playbook=playbook).select_related(
        "step", "customer", "clinic", "doctor").order_by("id"))


def script_of(task, today):
    tasks_scripts_fill([task], today=today)
    return task.script_text


# --- post-operative --------------------------------------------------------------------------------------

def test_implant_day_one_follow_up_goes_to_the_treating_doctor_with_the_script_filled(
        chain, clinic_a, playbooks, items, doctor_a, assistant_a, front_desk_a, today):
    # given an implant yesterday
    customer = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a)
    proc = ProcedureFactory(customer=customer, item=items["IM01"], doctor=doctor_a, performed_on=today - days(1))
    # when
    result = followups_generate(chain=chain, today=today)
    # then
    [task] = tasks_of(playbooks["postop_implant"])
    assert result["created"] == 1
    assert task.step.delay_days == 1
    assert task.assignee_id == assistant_a.id  # the assistant calls for the doctor
    assert task.doctor_id == doctor_a.id
    assert task.anchor_key == f"procedure:{proc.id}"
    assert task.clinic_id == clinic_a.id
    assert task.due_at == local(today, 18)
    assert task.status == TaskStatus.OPEN
    assert task.context["procedure"] == "种植体植入"
    text = script_of(task, today)
    assert text.startswith("王芳您好，我是张伟医生的助理。昨天的种植体植入术后感觉怎么样？")
    # worked late, the script names the day as the patient reads it then, not "yesterday"
    assert script_of(task, today + days(2)).startswith("王芳您好，我是张伟医生的助理。3天前的种植体植入术后")
    assert script_of(task, today + days(30)).startswith(
        f"王芳您好，我是张伟医生的助理。{(today - days(1)).month}月{(today - days(1)).day}日的种植体植入术后")
    assert "{" not in text


def test_several_procedures_of_one_operation_are_one_follow_up_call(
        chain, clinic_a, playbooks, items, doctor_a, assistant_a, today):
    # given three implants yesterday (one operation) and one more a day earlier, another patient's one yesterday
    customer = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a)
    first = ProcedureFactory(customer=customer, item=items["IM01"], doctor=doctor_a, performed_on=today - days(1),
                             tooth="36")
    for tooth in ("37", "46"):
        ProcedureFactory(customer=customer, item=items["IM01"], doctor=doctor_a, performed_on=today - days(1),
                         tooth=tooth)
    other = CustomerFactory(chain=chain, name="李娜", home_clinic=clinic_a)
    ProcedureFactory(customer=other, item=items["IM01"], doctor=doctor_a, performed_on=today - days(1))
    # when
    followups_generate(chain=chain, today=today)
    # then one day-one call per patient, anchored on the operation's first procedure
    tasks = tasks_of(playbooks["postop_implant"])
    assert sorted(t.customer.name for t in tasks if t.step.delay_days == 1) == ["李娜", "王芳"]
    assert next(t for t in tasks if t.customer_id == customer.id).anchor_key == f"procedure:{first.id}"


def test_the_orthodontic_check_in_of_a_day_with_two_adjustments_is_one_task(
        chain, clinic_a, playbooks, items, doctor_a, today):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    for _ in range(2):
        ProcedureFactory(customer=customer, item=items["OR01"], doctor=doctor_a, performed_on=today - days(30))
    followups_generate(chain=chain, today=today)
    assert len(tasks_of(playbooks["ortho_checkin"])) == 1


def test_a_second_run_creates_nothing(chain, clinic_a, playbooks, items, doctor_a, today):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    ProcedureFactory(customer=customer, item=items["IM01"], doctor=doctor_a, performed_on=today - days(1))
    assert followups_generate(chain=chain, today=today)["created"] == 1
    # when
    again = followups_generate(chain=chain, today=today)
    # then
    assert again["created"] == 0
    assert FollowupTask.objects.count() == 1


def test_implant_steps_fall_on_days_1_3_7_30_and_90(chain, clinic_a, playbooks, items, doctor_a, today):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    ProcedureFactory(customer=customer, item=items["IM01"], doctor=doctor_a, performed_on=today)
    made = {}
    for offset in (0, 1, 2, 3, 4, 6, 7, 8, 29, 30, 31, 89, 90, 91):
        day = today + days(offset)
        made[offset] = followups_generate(chain=chain, today=day, catchup_days=0)["by_playbook"].get("postop_implant")
    assert [d for d, n in made.items() if n] == [1, 3, 7, 30, 90]
    assert sorted(FollowupTask.objects.filter(playbook=playbooks["postop_implant"])
                  .values_list("step__delay_days", flat=True)) == [1, 3, 7, 30, 90]


def test_a_missed_run_is_caught_up_as_overdue_but_old_anchors_never_create_tasks(
        chain, clinic_a, playbooks, items, doctor_a, today):
    # given an extraction 2 days ago (its day-1 task was due yesterday) and one 12 days ago
    recent = CustomerFactory(chain=chain, home_clinic=clinic_a)
    old = CustomerFactory(chain=chain, home_clinic=clinic_a)
    ProcedureFactory(customer=recent, item=items["EXT1"], doctor=doctor_a, performed_on=today - days(2))
    ProcedureFactory(customer=old, item=items["EXT1"], doctor=doctor_a, performed_on=today - days(12))
    # when
    followups_generate(chain=chain, today=today)
    # then: the recent one is created, due yesterday (overdue); nothing for the old one's day-1 and day-7
    [task] = tasks_of(playbooks["postop_extraction"])
    assert task.customer_id == recent.id
    assert task.due_at == local(today - days(1), 18)


def test_orthodontic_check_in_counts_from_the_latest_orthodontic_visit(
        chain, clinic_a, playbooks, items, doctor_a, today):
    came_back = CustomerFactory(chain=chain, home_clinic=clinic_a)
    stopped = CustomerFactory(chain=chain, home_clinic=clinic_a)
    ProcedureFactory(customer=came_back, item=items["OR01"], doctor=doctor_a, performed_on=today - days(30))
    ProcedureFactory(customer=came_back, item=items["OR01"], doctor=doctor_a, performed_on=today - days(12))
    ProcedureFactory(customer=stopped, item=items["OR01"], doctor=doctor_a, performed_on=today - days(60))
    followups_generate(chain=chain, today=today, catchup_days=0)
    [task] = tasks_of(playbooks["ortho_checkin"])
    assert task.customer_id == stopped.id
    assert task.step.delay_days == 60
    assert "距上次正畸复诊已60天" in script_of(task, today)


def test_doctor_or_assistant_falls_back_to_the_treating_doctor_without_an_assistant(
        chain, clinic_a, playbooks, items, doctor_a, front_desk_a, today):
    StaffFactory(chain=chain, role=Role.ASSISTANT, clinics=[clinic_a], is_active=False)
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    ProcedureFactory(customer=customer, item=items["IM01"], doctor=doctor_a, performed_on=today - days(1))
    followups_generate(chain=chain, today=today)
    [task] = tasks_of(playbooks["postop_implant"])
    assert task.assignee_id == doctor_a.id


# --- leads, plans, recall, dormant ---------------------------------------------------------------------------

def test_lead_who_never_came_gets_calls_on_days_1_3_and_7_until_booked(
        chain, clinic_a, playbooks, consultant_a, front_desk_a, today):
    lead = CustomerFactory(chain=chain, name="李娜", home_clinic=clinic_a, consultant=consultant_a,
                           first_touch_at=local(today - days(1), 15))
    followups_generate(chain=chain, today=today)
    [first] = tasks_of(playbooks["lead_never_came"])
    assert (first.customer_id, first.step.delay_days, first.assignee_id) == (lead.id, 1, consultant_a.id)
    assert first.anchor_key == f"lead:{lead.id}"
    assert "李娜您好，我是静安门诊的顾问。您1天前咨询过我们" in script_of(first, today)
    # day 3: the second step
    followups_generate(chain=chain, today=today + days(2))
    assert len(tasks_of(playbooks["lead_never_came"])) == 2
    # the lead books: the open tasks close, and day 7 creates nothing
    AppointmentFactory(customer=lead, status=AppointmentStatus.BOOKED, start_at=local(today + days(9)))
    closed = followups_close_by_goal(chain=chain, today=today + days(3))
    assert closed["closed"] == 2
    assert set(FollowupTask.objects.values_list("status", "closed_reason")) == {("closed", "goal:appointment_booked")}
    assert followups_generate(chain=chain, today=today + days(6))["created"] == 0


def test_a_declined_outcome_stops_the_later_steps_of_the_same_lead(
        chain, clinic_a, playbooks, consultant_a, today):
    lead = CustomerFactory(chain=chain, home_clinic=clinic_a, consultant=consultant_a,
                           first_touch_at=local(today - days(1), 9))
    followups_generate(chain=chain, today=today)
    followup_complete(task=FollowupTask.objects.get(customer=lead), outcome=Outcome.DECLINED, note="不需要",
                      actor=consultant_a)
    assert followups_generate(chain=chain, today=today + days(2))["created"] == 0


def test_consultant_of_another_clinic_is_skipped_for_the_front_desk(
        chain, clinic_a, clinic_b, playbooks, front_desk_a, today):
    other = StaffFactory(chain=chain, role=Role.CONSULTANT, clinics=[clinic_b])
    lead = CustomerFactory(chain=chain, home_clinic=clinic_a, consultant=other, first_touch_at=local(today - days(1)))
    followups_generate(chain=chain, today=today)
    [task] = tasks_of(playbooks["lead_never_came"])
    assert (task.customer_id, task.assignee_id) == (lead.id, front_desk_a.id)


def test_unfinished_plan_without_a_booking_for_14_days_is_followed_up(
        chain, clinic_a, playbooks, consultant_a, doctor_a, today):
    from smileloop.membership.tests.factories import TreatmentPlanFactory

    waiting = CustomerFactory(chain=chain, name="赵敏", home_clinic=clinic_a, consultant=consultant_a,
                              last_visit_at=local(today - days(14)))
    booked = CustomerFactory(chain=chain, home_clinic=clinic_a, consultant=consultant_a,
                             last_visit_at=local(today - days(14)))
    for c in (waiting, booked):
        TreatmentPlanFactory(customer=c, doctor=doctor_a, title="种植修复", steps_total=4, steps_done=1,
                             planned_at=local(today - days(40)))
    AppointmentFactory(customer=booked, status=AppointmentStatus.BOOKED, start_at=timezone.now() + days(5))
    followups_generate(chain=chain, today=today, catchup_days=0)
    [task] = tasks_of(playbooks["unfinished_treatment"])
    assert (task.customer_id, task.assignee_id, task.doctor_id) == (waiting.id, consultant_a.id, doctor_a.id)
    assert task.anchor_key.endswith(f":{today.isoformat()}")
    assert "赵敏您好，您在静安门诊的种植修复还没有完成，距上次就诊已14天，张伟医生建议" in script_of(task, today)


def test_recall_is_due_six_months_after_the_latest_cleaning(chain, clinic_a, playbooks, items, front_desk_a, today):
    due = CustomerFactory(chain=chain, home_clinic=clinic_a)
    cleaned_again = CustomerFactory(chain=chain, home_clinic=clinic_a)
    six_months_ago = months_add(today, -6)
    ProcedureFactory(customer=due, item=items["CL01"], performed_on=six_months_ago)
    ProcedureFactory(customer=cleaned_again, item=items["CL01"], performed_on=six_months_ago)
    ProcedureFactory(customer=cleaned_again, item=items["EX01"], performed_on=today - days(20))
    followups_generate(chain=chain, today=today, catchup_days=0)
    [task] = tasks_of(playbooks["recall"])
    assert (task.customer_id, task.assignee_id) == (due.id, front_desk_a.id)
    assert task.context["procedure"] == "洁牙"


def _billed(customer, clinic, item, day: dt.date, *, amount_fen: int, refunded_fen: int = 0) -> Order:
    order = Order.objects.create(chain=customer.chain, clinic=clinic, customer=customer, ordered_at=local(day),
                                 list_total_fen=amount_fen, amount_fen=amount_fen, refunded_fen=refunded_fen)
    OrderLine.objects.create(order=order, item=item, quantity=1, unit_price_fen=amount_fen, amount_fen=amount_fen,
                             refunded_fen=refunded_fen)
    return order


def test_a_cleaning_refunded_in_full_neither_starts_nor_blocks_a_recall_but_one_billed_at_zero_does_both(
        chain, clinic_a, playbooks, items, today):
    six_months_ago = months_add(today, -6)
    # given: a paid cleaning six months ago, then a later one refunded in full (it did not take place)
    refunded_later = CustomerFactory(chain=chain, home_clinic=clinic_a)
    _billed(refunded_later, clinic_a, items["CL01"], six_months_ago, amount_fen=9_900)
    _billed(refunded_later, clinic_a, items["CL01"], today - days(30), amount_fen=9_900, refunded_fen=9_900)
    # a package's cleaning billed at 0 six months ago (it took place) ...
    package = CustomerFactory(chain=chain, home_clinic=clinic_a)
    _billed(package, clinic_a, items["CL01"], six_months_ago, amount_fen=0)
    # ... and a paid cleaning six months ago with a package's one since
    covered_since = CustomerFactory(chain=chain, home_clinic=clinic_a)
    _billed(covered_since, clinic_a, items["CL01"], six_months_ago, amount_fen=9_900)
    _billed(covered_since, clinic_a, items["CL01"], today - days(30), amount_fen=0)
    # and one whose only cleaning was refunded: nothing is due
    never = CustomerFactory(chain=chain, home_clinic=clinic_a)
    _billed(never, clinic_a, items["CL01"], six_months_ago, amount_fen=9_900, refunded_fen=9_900)
    # when
    followups_generate(chain=chain, today=today, catchup_days=0)
    # then
    assert sorted(t.customer_id for t in tasks_of(playbooks["recall"])) == sorted([refunded_later.id, package.id])


def test_dormant_patient_is_woken_after_12_months_and_closed_by_an_arrival(
        chain, clinic_a, playbooks, consultant_a, today):
    # given a last visit 12 months and a day ago, and one exactly 12 months ago (dormant only from tomorrow)
    sleeper = CustomerFactory(chain=chain, home_clinic=clinic_a, consultant=consultant_a,
                              last_visit_at=local(months_add(today, -12) - days(1), 11), visit_count=3)
    CustomerFactory(chain=chain, home_clinic=clinic_a, consultant=consultant_a,
                    last_visit_at=local(months_add(today, -12), 9), visit_count=2)
    followups_generate(chain=chain, today=today, catchup_days=0)
    [task] = tasks_of(playbooks["dormant"])
    assert (task.customer_id, task.assignee_id) == (sleeper.id, consultant_a.id)
    # the patient comes back
    type(sleeper).objects.filter(pk=sleeper.pk).update(last_visit_at=local(today + days(3)))
    assert followups_close_by_goal(chain=chain)["closed"] == 1
    task.refresh_from_db()
    assert (task.status, task.closed_reason) == (TaskStatus.CLOSED, "goal:arrival")


def test_the_dormant_call_falls_due_on_the_day_lifecycle_moves_the_patient_to_dormant(
        chain, clinic_a, playbooks, consultant_a, today):
    # given patients last seen on each day around the 12-month mark, 29 February's year included
    marks = [months_add(today, -12) + days(k) for k in range(-2, 4)] + [dt.date(2024, 2, 28), dt.date(2024, 2, 29)]
    people = {CustomerFactory(chain=chain, home_clinic=clinic_a, consultant=consultant_a, stage=Stage.TREATED,
                              stage_reached=Stage.TREATED, last_visit_at=local(mark, 11), visit_count=1).id: mark
              for mark in marks}
    called, dormant = {}, {}
    # when both daily jobs run on each day from before the first mark's anniversary to after the last one's
    for run_day in [dt.date(2025, 2, 26) + days(i) for i in range(5)] + [today + days(i) for i in range(-3, 5)]:
        followups_generate(chain=chain, today=run_day, catchup_days=0)
        stages_side_update(chain=chain, today=run_day)
        for task in tasks_of(playbooks["dormant"]):
            called.setdefault(task.customer_id, run_day)
        for pk in Customer.objects.filter(pk__in=people, stage=Stage.DORMANT).values_list("pk", flat=True):
            dormant.setdefault(pk, run_day)
    # then each patient's call falls due the day their stage turns dormant: the day after the 12-month mark
    assert called == dormant == {pk: months_add(mark, 12) + days(1) for pk, mark in people.items()}


# --- appointments ---------------------------------------------------------------------------------------------

def test_satisfaction_follow_up_the_day_after_a_completed_visit_once_per_visit_day(
        chain, clinic_a, playbooks, front_desk_a, doctor_a, today):
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    a1 = AppointmentFactory(customer=patient, doctor=doctor_a, start_at=local(today - days(1), 9))
    AppointmentFactory(customer=patient, doctor=doctor_a, start_at=local(today - days(1), 14))
    followups_generate(chain=chain, today=today, catchup_days=0)
    [task] = tasks_of(playbooks["satisfaction"])
    assert task.assignee_id == front_desk_a.id
    assert task.anchor_key == f"visit:{(today - days(1)).isoformat()}"
    assert task.context["appointment_id"] in (a1.id, a1.id + 1)


def test_no_show_is_followed_up_the_same_day_and_closed_by_rebooking(
        chain, clinic_a, playbooks, front_desk_a, today):
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    missed = AppointmentFactory(customer=patient, status=AppointmentStatus.NO_SHOW, start_at=local(today, 9))
    followups_generate(chain=chain, today=today)
    [task] = tasks_of(playbooks["no_show"])
    assert (task.anchor_key, task.assignee_id, task.due_at) == (f"appt:{missed.id}", front_desk_a.id, local(today, 18))
    assert followups_close_by_goal(chain=chain)["closed"] == 0
    AppointmentFactory(customer=patient, status=AppointmentStatus.BOOKED, start_at=local(today + days(4), 9))
    assert followups_close_by_goal(chain=chain)["closed"] == 1


# --- members, gift cards, segments -----------------------------------------------------------------------------

def test_member_birthday_care_comes_30_days_ahead_for_members_only(chain, clinic_a, playbooks, consultant_a, today):
    from smileloop.membership.tests.factories import MembershipFactory, TierFactory

    birthday = today + days(30)
    member = CustomerFactory(chain=chain, name="周杰", home_clinic=clinic_a, consultant=consultant_a,
                             birthday=birthday.replace(year=1985))
    not_member = CustomerFactory(chain=chain, home_clinic=clinic_a, birthday=birthday.replace(year=1990))
    MembershipFactory(customer=member, tier=TierFactory(plan__chain=chain))
    followups_generate(chain=chain, today=today, catchup_days=0)
    [task] = tasks_of(playbooks["member_birthday"])
    assert (task.customer_id, task.assignee_id, task.anchor_key) == (member.id, consultant_a.id,
                                                                     f"birthday:{birthday.year}")
    assert f"周杰的生日在{birthday.year}年{birthday.month}月{birthday.day}日" in script_of(task, today)
    assert not FollowupTask.objects.filter(customer=not_member).exists()
    assert not followups_generate(chain=chain, today=today + days(1))["by_playbook"].get("member_birthday")


def test_a_29_february_birthday_in_a_common_year_is_dated_28_february_in_the_script(chain, clinic_a, playbooks,
                                                                                   consultant_a):
    """The task of a 29 February birthday comes 30 days before 28 February in a common year; its script named the
    day that does not exist (2027-02-29)."""
    from smileloop.membership.tests.factories import MembershipFactory, TierFactory

    member = CustomerFactory(chain=chain, name="林晓", home_clinic=clinic_a, consultant=consultant_a,
                             birthday=dt.date(2008, 2, 29))
    MembershipFactory(customer=member, tier=TierFactory(plan__chain=chain))
    today = dt.date(2027, 2, 28) - days(30)
    followups_generate(chain=chain, today=today, catchup_days=0)
    [task] = tasks_of(playbooks["member_birthday"])
    assert task.anchor_key.endswith("birthday:2027")
    script = script_of(task, today)
    assert "林晓的生日在2027年2月28日" in script and "2月29日" not in script
    # in a leap year the birthday is the 29th
    FollowupTask.objects.all().delete()
    followups_generate(chain=chain, today=dt.date(2028, 2, 29) - days(30), catchup_days=0)
    [task] = tasks_of(playbooks["member_birthday"])
    assert "林晓的生日在2028年2月29日" in script_of(task, dt.date(2028, 1, 30))


def test_member_birthdays_of_next_month_can_be_listed_on_a_day_of_the_month(chain, clinic_a, playbooks,
                                                                            consultant_a):
    from smileloop.followups.services import playbook_update
    from smileloop.membership.tests.factories import MembershipFactory, TierFactory

    playbook_update(playbook=playbooks["member_birthday"], data={"trigger_params": {"day_of_month": 1}})
    first = dt.date(2026, 11, 1)
    member = CustomerFactory(chain=chain, home_clinic=clinic_a, consultant=consultant_a, birthday=dt.date(1985, 12, 24))
    MembershipFactory(customer=member, tier=TierFactory(plan__chain=chain))
    assert followups_generate(chain=chain, today=first - days(1), catchup_days=0)["created"] == 0
    followups_generate(chain=chain, today=first, catchup_days=0)
    [task] = tasks_of(playbooks["member_birthday"])
    assert (task.customer_id, task.anchor_key) == (member.id, "birthday:2026-12")
    assert "生日在2026年12月24日" in script_of(task, first)


def test_gift_card_reminders_become_tasks_for_the_givers_consultant(chain, clinic_a, playbooks, consultant_a, today):
    from smileloop.giftcards.services import friend_card_issue
    from smileloop.giftcards.tests.factories import ProgrammeFactory

    giver = CustomerFactory(chain=chain, home_clinic=clinic_a, consultant=consultant_a)
    programme = ProgrammeFactory(chain=chain, reminder_days=[7, 30])
    card = friend_card_issue(member=giver, programme=programme, trigger="test", key="k1", actor=None,
                             as_of=local(today - days(7), 10))
    followups_generate(chain=chain, today=today, catchup_days=0)
    [task] = tasks_of(playbooks["giftcard_reminder"])
    assert (task.customer_id, task.assignee_id) == (giver.id, consultant_a.id)
    assert task.context["card_code"] == card.code
    assert task.context["recipient"] == "giver"
    expiry = card.expires_at.astimezone(local(today).tzinfo).date()
    assert f"将于{expiry.year}年{expiry.month}月{expiry.day}日到期" in script_of(task, today)


def test_segment_playbook_creates_one_task_per_customer_in_the_segment(chain, clinic_a, front_desk_a, today):
    from smileloop.followups.defaults import DEFAULT_PLAYBOOKS  # noqa: F401  (built-ins are not needed here)
    from smileloop.followups.enums import AssigneeRule, ContactChannel, Goal, Trigger
    from smileloop.followups.models import Playbook, PlaybookStep
    from smileloop.segments.tests.factories import SegmentFactory

    seg = SegmentFactory(chain=chain, rule={"all": [{"field": "community", "op": "eq", "value": "静安新村"}]})
    inside = CustomerFactory(chain=chain, home_clinic=clinic_a, community="静安新村")
    CustomerFactory(chain=chain, home_clinic=clinic_a, community="别处")
    pb = Playbook.objects.create(chain=chain, code="seg", name="小区回访", trigger=Trigger.SEGMENT,
                                 trigger_params={"segment_id": seg.id}, goal=Goal.NONE)
    PlaybookStep.objects.create(playbook=pb, seq=1, delay_days=0, assignee_rule=AssigneeRule.FRONT_DESK,
                                channel=ContactChannel.WECHAT, script="{name}您好")
    PlaybookStep.objects.create(playbook=pb, seq=2, delay_days=7, assignee_rule=AssigneeRule.FRONT_DESK,
                                channel=ContactChannel.CALL, script="{name}您好")
    followups_generate(chain=chain, today=today)
    assert list(FollowupTask.objects.values_list("customer_id", "step__seq")) == [(inside.id, 1)]
    followups_generate(chain=chain, today=today + days(1))
    assert FollowupTask.objects.count() == 1  # once per customer and playbook
    followups_generate(chain=chain, today=today + days(7))
    assert sorted(FollowupTask.objects.values_list("customer_id", "step__seq")) == [(inside.id, 1), (inside.id, 2)]


def test_the_job_installs_playbooks_and_is_idempotent(chain, clinic_a, items, doctor_a, today):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    ProcedureFactory(customer=customer, item=items["IM01"], doctor=doctor_a, performed_on=today - days(1))
    first = followups_job(today=today)
    assert first["created"] == 1 and first["installed"] == 13
    assert followups_job(today=today) == {"chains": 1, "created": 0, "closed": 0, "lapsed": 0, "installed": 0,
                                          "reassigned": 0}
    # a doctor leaves: the next run moves their open tasks on
    doctor_a.is_active = False
    doctor_a.save(update_fields=["is_active"])
    assert followups_job(today=today)["reassigned"] == 1
    assert FollowupTask.objects.get().assignee_id != doctor_a.id
    # left unworked, the day-one call lapses on the fourth morning after it was due (and the day-3 call is made)
    assert followups_job(today=today + days(3))["lapsed"] == 0
    assert followups_job(today=today + days(4))["lapsed"] == 1
    assert FollowupTask.objects.get(step__seq=1).status == TaskStatus.CANCELLED


def test_inactive_playbooks_create_nothing(chain, clinic_a, playbooks, items, doctor_a, today):
    playbooks["postop_implant"].is_active = False
    playbooks["postop_implant"].save(update_fields=["is_active"])
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    ProcedureFactory(customer=customer, item=items["IM01"], doctor=doctor_a, performed_on=today - days(1))
    assert followups_generate(chain=chain, today=today)["created"] == 0


def test_months_sources_inverts_months_add_at_month_ends():
    # every source day maps to exactly one due day
    start = dt.date(2025, 1, 1)
    seen = {}
    for i in range(730):
        anchor = start + days(i)
        for source in months_sources(anchor, 6):
            assert source not in seen
            seen[source] = anchor
            assert months_add(source, 6) == anchor
    assert months_sources(dt.date(2026, 8, 31), 6) == []
    assert months_sources(dt.date(2026, 8, 28), 6) == [dt.date(2026, 2, 28)]
