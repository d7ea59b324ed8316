import datetime as dt

import pytest
from django.utils import translation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from smileloop.core.models import AuditEvent
from smileloop.customers.enums import InteractionKind, Stage
from smileloop.customers.models import Interaction
from smileloop.customers.services import customer_merge
from smileloop.customers.templatetags.customers_ui import interaction_text
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.enums import AssigneeRule, Outcome, TaskStatus, Trigger
from smileloop.followups.models import FollowupTask, PlaybookStep
from smileloop.followups.script import script_render
from smileloop.followups.services import (
    followup_complete,
    followup_reassign,
    followups_reassign_for_departed,
    followups_reassign_inactive,
    playbook_step_remove,
    playbook_step_save,
    playbook_update,
    playbooks_install_defaults,
    task_may_work,
)
from smileloop.followups.services.assign import StaffDirectory
from smileloop.followups.services.generate import followups_generate
from smileloop.followups.tests.factories import ProcedureFactory, local

pytestmark = pytest.mark.django_db


@pytest.fixture
def implant_task(chain, clinic_a, playbooks, items, doctor_a, today):
    customer = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a)
    ProcedureFactory(customer=customer, item=items["IM01"], doctor=doctor_a, performed_on=today - dt.timedelta(days=1))
    followups_generate(chain=chain, today=today)
    return FollowupTask.objects.get(playbook=playbooks["postop_implant"])


@pytest.fixture
def lead_task(chain, clinic_a, playbooks, consultant_a, today):
    lead = CustomerFactory(chain=chain, home_clinic=clinic_a, consultant=consultant_a,
                           first_touch_at=local(today - dt.timedelta(days=1)))
    followups_generate(chain=chain, today=today)
    return FollowupTask.objects.get(customer=lead, playbook=playbooks["lead_never_came"])


# --- completing ------------------------------------------------------------------------------------------

def test_completing_writes_the_outcome_to_the_timeline_and_moves_a_lead_to_contacted(lead_task, consultant_a):
    # when
    task = followup_complete(task=lead_task, outcome=Outcome.REACHED, note="下周再联系", actor=consultant_a)
    # then
    assert (task.status, task.outcome, task.note, task.completed_by_id) == ("done", "reached", "下周再联系",
                                                                           consultant_a.id)
    entry = Interaction.objects.get(customer=task.customer, data__followup_task_id=task.id)
    assert entry.kind == InteractionKind.CHAT  # the day-1 lead step is a WeCom message
    assert entry.author_id == consultant_a.id
    assert entry.text == "未到店线索回访: reached — 下周再联系"  # stored in English: the outcome as its code
    with translation.override("zh-hans"):
        assert interaction_text(entry) == "未到店线索回访：已联系上 — 下周再联系"
    with translation.override("en"):
        assert interaction_text(entry) == "未到店线索回访: Reached — 下周再联系"
    task.customer.refresh_from_db()
    assert task.customer.stage == Stage.CONTACTED


def test_no_answer_is_a_note_on_the_timeline_and_does_not_move_the_stage(lead_task, consultant_a):
    followup_complete(task=lead_task, outcome=Outcome.NO_ANSWER, note="", actor=consultant_a)
    lead_task.customer.refresh_from_db()
    assert lead_task.customer.stage == Stage.LEAD
    assert Interaction.objects.get(data__followup_task_id=lead_task.id).kind == InteractionKind.NOTE


def test_completing_twice_with_the_same_outcome_changes_nothing(implant_task, doctor_a):
    first = followup_complete(task=implant_task, outcome=Outcome.REACHED, note="恢复良好", actor=doctor_a)
    again = followup_complete(task=implant_task, outcome=Outcome.REACHED, note="恢复良好", actor=doctor_a)
    assert again.completed_at == first.completed_at
    assert Interaction.objects.filter(data__followup_task_id=implant_task.id).count() == 1


def test_completing_with_another_outcome_is_a_conflict(implant_task, doctor_a):
    followup_complete(task=implant_task, outcome=Outcome.REACHED, note="", actor=doctor_a)
    with pytest.raises(Conflict):
        followup_complete(task=implant_task, outcome=Outcome.DECLINED, note="", actor=doctor_a)
    implant_task.refresh_from_db()
    assert implant_task.outcome == Outcome.REACHED


def test_a_task_closed_by_its_goal_cannot_be_completed(implant_task, doctor_a):
    FollowupTask.objects.filter(pk=implant_task.pk).update(status=TaskStatus.CLOSED, closed_reason="goal:arrival")
    with pytest.raises(Conflict) as exc:
        followup_complete(task=implant_task, outcome=Outcome.REACHED, note="", actor=doctor_a)
    assert exc.value.code == "task_closed"
    assert not Interaction.objects.filter(data__followup_task_id=implant_task.id).exists()


def test_an_unknown_outcome_is_refused(implant_task, doctor_a):
    with pytest.raises(ValidationFailed) as exc:
        followup_complete(task=implant_task, outcome="happy", note="", actor=doctor_a)
    assert exc.value.errors[0].field == "outcome"


def test_a_complaint_outcome_opens_a_complaint_task_for_the_director(implant_task, doctor_a, director_a):
    followup_complete(task=implant_task, outcome=Outcome.COMPLAINT, note="术后很痛，没人解释", actor=doctor_a)
    complaint = FollowupTask.objects.get(playbook__trigger=Trigger.COMPLAINT)
    assert (complaint.customer_id, complaint.assignee_id, complaint.anchor_key) == (
        implant_task.customer_id, director_a.id, f"task:{implant_task.id}")
    assert (complaint.brief, complaint.note) == ("术后很痛，没人解释", "")
    # when the director completes it, the complaint's words stay beside the outcome's note
    followup_complete(task=complaint, outcome=Outcome.REACHED, note="已致电致歉", actor=director_a)
    complaint.refresh_from_db()
    assert (complaint.brief, complaint.note) == ("术后很痛，没人解释", "已致电致歉")


def test_a_complaint_without_a_note_is_refused_and_changes_nothing(implant_task, doctor_a):
    # when: "complaint" with no words: the director's task would not say what to fix
    with pytest.raises(ValidationFailed) as exc:
        followup_complete(task=implant_task, outcome=Outcome.COMPLAINT, note="  ", actor=doctor_a)
    # then
    assert [(e.field, e.message) for e in exc.value.errors] == [
        ("note", "is required for a complaint: what did the patient complain about?")]
    implant_task.refresh_from_db()
    assert (implant_task.status, implant_task.outcome) == (TaskStatus.OPEN, "")
    assert not FollowupTask.objects.filter(playbook__trigger=Trigger.COMPLAINT).exists()
    assert not Interaction.objects.filter(data__followup_task_id=implant_task.id).exists()


# --- who works a task ----------------------------------------------------------------------------------------

def _assign(task, staff):
    FollowupTask.objects.filter(pk=task.pk).update(assignee=staff)
    task.refresh_from_db()
    return task


def test_the_assignee_completes_their_own_task(implant_task, doctor_a, assistant_a):
    task = _assign(implant_task, assistant_a)
    done = followup_complete(task=task, outcome=Outcome.REACHED, note="", actor=assistant_a,
                             scope=scope_for_staff(assistant_a))
    assert (done.status, done.assignee_id, done.completed_by_id) == (TaskStatus.DONE, assistant_a.id, assistant_a.id)
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("role", [Role.DOCTOR, Role.FRONT_DESK, Role.MEMBER_OPS, Role.MARKETING])
def test_a_colleague_without_the_board_permission_cannot_complete_anothers_task_and_nothing_changes(
        implant_task, chain, clinic_a, assistant_a, role):
    # given the assistant's task and a colleague of the same clinic (member operations and marketing see the chain)
    task = _assign(implant_task, assistant_a)
    colleague = StaffFactory(chain=chain, role=role, clinics=[clinic_a])
    # when: with the request's scope (pages, API) or without (the actor's own)
    for scope in (scope_for_staff(colleague), None):
        with pytest.raises(PermissionDenied) as exc:
            followup_complete(task=task, outcome=Outcome.REACHED, note="我替她打了", actor=colleague, scope=scope)
        assert exc.value.code == "task_not_yours"
    # then
    task.refresh_from_db()
    assert (task.status, task.outcome, task.note, task.completed_by_id, task.assignee_id) == (
        TaskStatus.OPEN, "", "", None, assistant_a.id)
    assert not Interaction.objects.filter(data__followup_task_id=task.id).exists()


def test_a_colleague_is_refused_even_for_the_outcome_already_recorded(implant_task, chain, clinic_a, assistant_a):
    task = _assign(implant_task, assistant_a)
    followup_complete(task=task, outcome=Outcome.REACHED, note="", actor=assistant_a)
    colleague = StaffFactory(chain=chain, role=Role.FRONT_DESK, clinics=[clinic_a])
    with pytest.raises(PermissionDenied):
        followup_complete(task=task, outcome=Outcome.REACHED, note="", actor=colleague)
    task.refresh_from_db()
    assert task.completed_by_id == assistant_a.id


@pytest.mark.parametrize("lead", ["director_a", "chain_admin"])
def test_a_director_or_chain_admin_completes_a_colleagues_task_as_themselves(request, implant_task, assistant_a,
                                                                            lead):
    # given the assistant's task
    task = _assign(implant_task, assistant_a)
    boss = request.getfixturevalue(lead)
    # when the director (chain admin) records its outcome
    done = followup_complete(task=task, outcome=Outcome.REACHED, note="院长亲自回访", actor=boss,
                             scope=scope_for_staff(boss))
    # then it is done by them, still the assistant's task, and the timeline names them
    done.refresh_from_db()
    assert (done.status, done.completed_by_id, done.assignee_id) == (TaskStatus.DONE, boss.id, assistant_a.id)
    entry = Interaction.objects.get(data__followup_task_id=task.id)
    assert entry.author_id == boss.id


def test_a_director_of_another_clinic_cannot_complete(implant_task, chain, clinic_b, assistant_a):
    task = _assign(implant_task, assistant_a)
    other = StaffFactory(chain=chain, role=Role.CLINIC_DIRECTOR, clinics=[clinic_b])
    with pytest.raises(NotFound):
        followup_complete(task=task, outcome=Outcome.REACHED, note="", actor=other)
    task.refresh_from_db()
    assert task.status == TaskStatus.OPEN


def _leave(staff, how: str, *, to=None):
    """The staff member leaves the chain ("departed": deactivated) or moves to the clinic `to` ("moved")."""
    if how == "departed":
        staff.is_active = False
        staff.save(update_fields=["is_active"])
    else:
        staff.clinics.set([to])


@pytest.mark.parametrize("holder", ["unassigned", "departed", "moved"])
def test_a_task_nobody_active_in_its_clinic_holds_is_taken_over_by_whoever_completes_it(
        implant_task, chain, clinic_a, clinic_b, assistant_a, holder):
    # given a task without an assignee, or whose assignee has left or moved to clinic B (nobody has moved it yet)
    task = _assign(implant_task, None if holder == "unassigned" else assistant_a)
    if holder != "unassigned":
        _leave(assistant_a, holder, to=clinic_b)
    front_desk = StaffFactory(chain=chain, role=Role.FRONT_DESK, name="前台小吴", clinics=[clinic_a])
    # when a front desk of the clinic records its outcome
    followup_complete(task=task, outcome=Outcome.NO_ANSWER, note="", actor=front_desk,
                      scope=scope_for_staff(front_desk))
    # then they took it over: it is theirs, done by them, and the audit log says from whom and why
    task.refresh_from_db()
    assert (task.status, task.assignee_id, task.completed_by_id) == (TaskStatus.DONE, front_desk.id, front_desk.id)
    event = AuditEvent.objects.get(action="followup.take_over")
    assert (event.object_type, event.object_id, event.actor_id, event.clinic_id) == (
        "followup_task", str(task.id), front_desk.user_id, task.clinic_id)  # its director reads it
    assert event.detail == {"from": None if holder == "unassigned" else assistant_a.id, "to": front_desk.id,
                            "via": "complete", "why": holder}
    # and the patient's timeline says who took it over, before the outcome they recorded
    taken, outcome = Interaction.objects.filter(data__followup_task_id=task.id).order_by("id")
    assert (taken.kind, taken.author_id, taken.clinic_id, taken.customer_id) == (
        InteractionKind.SYSTEM, front_desk.id, clinic_a.id, task.customer_id)
    assert taken.text == 'follow-up task "种植术后回访" taken over by 前台小吴'
    assert taken.data == {"followup_task_id": task.id, "event": "take_over", "to": front_desk.id,
                          "from": None if holder == "unassigned" else assistant_a.id}
    assert taken.occurred_at == outcome.occurred_at == task.completed_at
    with translation.override("zh-hans"):
        assert interaction_text(taken) == "回访任务“种植术后回访”由前台小吴接手"


def test_the_take_over_is_on_the_timeline_selector_newest_first_under_the_outcome(implant_task, chain, clinic_a,
                                                                                   clinic_b, assistant_a):
    from smileloop.customers.selectors import interaction_list_for_customer

    task = _assign(implant_task, assistant_a)
    _leave(assistant_a, "moved", to=clinic_b)
    front_desk = StaffFactory(chain=chain, role=Role.FRONT_DESK, name="前台小吴", clinics=[clinic_a])
    followup_complete(task=task, outcome=Outcome.NO_ANSWER, note="关机", actor=front_desk,
                      scope=scope_for_staff(front_desk))
    entries = interaction_list_for_customer(task.customer)
    assert [(e.kind, e.text, e.author.name) for e in entries[:2]] == [
        (InteractionKind.NOTE, "种植术后回访: no_answer — 关机", "前台小吴"),
        (InteractionKind.SYSTEM, 'follow-up task "种植术后回访" taken over by 前台小吴', "前台小吴")]


def test_a_take_over_that_cannot_be_written_on_the_timeline_changes_nothing(monkeypatch, implant_task, chain,
                                                                           clinic_a, clinic_b, assistant_a):
    from smileloop.followups.services import tasks as task_services

    # given the assistant moved to clinic B, and the timeline write fails
    task = _assign(implant_task, assistant_a)
    _leave(assistant_a, "moved", to=clinic_b)
    front_desk = StaffFactory(chain=chain, role=Role.FRONT_DESK, clinics=[clinic_a])

    def broken(**kwargs):
        raise RuntimeError("timeline down")

    monkeypatch.setattr(task_services, "interaction_add", broken)
    # when
    with pytest.raises(RuntimeError):
        followup_complete(task=task, outcome=Outcome.REACHED, note="", actor=front_desk,
                          scope=scope_for_staff(front_desk))
    # then one transaction: no take-over, no audit, no outcome
    task.refresh_from_db()
    assert (task.status, task.assignee_id, task.completed_by_id) == (TaskStatus.OPEN, assistant_a.id, None)
    assert not AuditEvent.objects.exists()
    assert not Interaction.objects.filter(data__followup_task_id=task.id).exists()


@pytest.mark.parametrize("holder", ["assistant_a", "chain_admin", "marketing"])
def test_an_assignee_still_at_the_tasks_clinic_or_of_a_chain_wide_role_holds_it(request, implant_task, chain,
                                                                                 clinic_a, clinic_b, holder):
    # given the assistant, now at clinics A and B, or a chain-wide role (no clinics of their own: they see all)
    staff = request.getfixturevalue(holder)
    if holder == "assistant_a":
        staff.clinics.set([clinic_a, clinic_b])
    task = _assign(implant_task, staff)
    colleague = StaffFactory(chain=chain, role=Role.FRONT_DESK, clinics=[clinic_a])
    # when a colleague of the clinic records its outcome
    with pytest.raises(PermissionDenied) as exc:
        followup_complete(task=task, outcome=Outcome.REACHED, note="", actor=colleague,
                          scope=scope_for_staff(colleague))
    # then refused as today, and nothing changed
    assert exc.value.code == "task_not_yours"
    task.refresh_from_db()
    assert (task.status, task.assignee_id, task.completed_by_id) == (TaskStatus.OPEN, staff.id, None)
    assert not AuditEvent.objects.exists()
    assert not Interaction.objects.filter(data__followup_task_id=task.id).exists()


def test_a_director_completing_a_task_whose_assignee_moved_takes_it_over(implant_task, clinic_b, assistant_a,
                                                                         director_a, director_scope):
    task = _assign(implant_task, assistant_a)
    _leave(assistant_a, "moved", to=clinic_b)
    followup_complete(task=task, outcome=Outcome.REACHED, note="", actor=director_a, scope=director_scope)
    task.refresh_from_db()
    assert (task.assignee_id, task.completed_by_id) == (director_a.id, director_a.id)
    assert AuditEvent.objects.get(action="followup.take_over").detail["why"] == "moved"


def test_task_may_work_follows_the_rule(implant_task, chain, clinic_a, assistant_a, director_a):
    task = _assign(implant_task, assistant_a)
    colleague = StaffFactory(chain=chain, role=Role.DOCTOR, clinics=[clinic_a])
    task = FollowupTask.objects.select_related("assignee").get(pk=task.pk)
    assert task_may_work(scope_for_staff(assistant_a), task)
    assert task_may_work(scope_for_staff(director_a), task)
    assert not task_may_work(scope_for_staff(colleague), task)
    task.assignee = None
    assert task_may_work(scope_for_staff(colleague), task)


def test_task_may_work_lets_a_colleague_take_over_once_the_assignee_moved_to_another_clinic(
        implant_task, chain, clinic_a, clinic_b, assistant_a, django_assert_num_queries):
    task = _assign(implant_task, assistant_a)
    colleague = scope_for_staff(StaffFactory(chain=chain, role=Role.DOCTOR, clinics=[clinic_a]))
    task = FollowupTask.objects.select_related("assignee").get(pk=task.pk)
    with django_assert_num_queries(1):  # the assistant's clinics, read once for the task
        assert not task_may_work(colleague, task)
        assert not task_may_work(colleague, task)
    # when the assistant moves to clinic B
    _leave(assistant_a, "moved", to=clinic_b)
    task = FollowupTask.objects.select_related("assignee").get(pk=task.pk)
    # then the clinic-A colleague may work it
    assert task_may_work(colleague, task)


def test_a_reassignment_is_audited_with_who_moved_it_from_whom_to_whom(implant_task, director_a, director_scope,
                                                                        assistant_a, doctor_a):
    task = _assign(implant_task, assistant_a)
    followup_reassign(scope=director_scope, task=task, assignee=doctor_a)
    event = AuditEvent.objects.get(action="followup.reassign")
    assert (event.object_id, event.actor_id, event.detail, event.clinic_id) == (
        str(task.id), director_a.user_id, {"from": assistant_a.id, "to": doctor_a.id}, task.clinic_id)
    # the same assignee again moves nothing and records nothing
    followup_reassign(scope=director_scope, task=task, assignee=doctor_a)
    assert AuditEvent.objects.filter(action="followup.reassign").count() == 1


def test_a_reassignment_is_written_on_the_patients_timeline_by_the_director(implant_task, clinic_a, director_a,
                                                                            director_scope, assistant_a, doctor_a):
    # given the assistant's task
    task = _assign(implant_task, assistant_a)
    # when the director gives it to the doctor, and again (nothing moves)
    followup_reassign(scope=director_scope, task=task, assignee=doctor_a)
    followup_reassign(scope=director_scope, task=task, assignee=doctor_a)
    # then one entry, the director its author
    [entry] = Interaction.objects.filter(customer=task.customer, kind=InteractionKind.SYSTEM,
                                         data__followup_task_id=task.id)
    assert (entry.author_id, entry.clinic_id, entry.text) == (
        director_a.id, clinic_a.id, 'follow-up task "种植术后回访" reassigned from 助理小刘 to 张伟')
    assert entry.data == {"followup_task_id": task.id, "event": "reassign", "from": assistant_a.id,
                          "to": doctor_a.id}
    with translation.override("zh-hans"):
        assert interaction_text(entry) == "回访任务“种植术后回访”由助理小刘改派给张伟"
    with translation.override("en"):
        assert interaction_text(entry) == 'follow-up task "种植术后回访" reassigned from 助理小刘 to 张伟'


def test_assigning_an_unassigned_task_says_to_whom_on_the_timeline(implant_task, director_scope, doctor_a):
    task = _assign(implant_task, None)
    followup_reassign(scope=director_scope, task=task, assignee=doctor_a)
    entry = Interaction.objects.get(data__followup_task_id=task.id, data__event="reassign")
    assert entry.text == 'follow-up task "种植术后回访" assigned to 张伟'
    with translation.override("zh-hans"):
        assert interaction_text(entry) == "回访任务“种植术后回访”已指派给张伟"


def test_a_refused_reassignment_writes_nothing_on_the_timeline(implant_task, director_scope, assistant_a,
                                                               front_desk_b):
    task = _assign(implant_task, assistant_a)
    with pytest.raises(ValidationFailed):
        followup_reassign(scope=director_scope, task=task, assignee=front_desk_b)
    task.refresh_from_db()
    assert task.assignee_id == assistant_a.id
    assert not Interaction.objects.filter(data__followup_task_id=task.id).exists()
    assert not AuditEvent.objects.exists()


def test_a_colleague_without_the_board_permission_cannot_reassign(implant_task, chain, clinic_a, assistant_a):
    task = _assign(implant_task, assistant_a)
    colleague = StaffFactory(chain=chain, role=Role.FRONT_DESK, clinics=[clinic_a])
    with pytest.raises(PermissionDenied):
        followup_reassign(scope=scope_for_staff(colleague), task=task, assignee=colleague)
    task.refresh_from_db()
    assert task.assignee_id == assistant_a.id
    assert not AuditEvent.objects.exists()


# --- assignment --------------------------------------------------------------------------------------------

def test_departed_staff_tasks_move_to_the_next_assignee_of_the_rule(assistant_a, consultant_a, front_desk_a,
                                                                     implant_task, doctor_a, lead_task):
    # given the assistant and the consultant leave
    assert (implant_task.assignee_id, lead_task.assignee_id) == (assistant_a.id, consultant_a.id)
    for staff in (assistant_a, consultant_a):
        staff.is_active = False
        staff.save(update_fields=["is_active"])
    # when
    moved = followups_reassign_for_departed(staff=assistant_a) + followups_reassign_for_departed(staff=consultant_a)
    # then: the implant call goes to the treating doctor, the lead to the front desk
    assert moved == 2
    implant_task.refresh_from_db()
    lead_task.refresh_from_db()
    assert implant_task.assignee_id == doctor_a.id
    assert lead_task.assignee_id == front_desk_a.id


def test_the_daily_run_moves_the_tasks_of_staff_who_moved_to_another_clinic(chain, clinic_a, clinic_b, assistant_a,
                                                                            implant_task, lead_task, doctor_a,
                                                                            chain_admin):
    # given the assistant holding the implant call now works at clinic B only, and a chain admin holds the lead call
    assistant_a.clinics.set([clinic_b])
    _assign(lead_task, chain_admin)
    assert implant_task.assignee_id == assistant_a.id and lead_task.clinic_id == clinic_a.id
    # when
    assert followups_reassign_inactive(chain_id=chain.id) == 1
    # then the implant call goes to the treating doctor, as for a departed assistant; a chain role keeps theirs
    assert FollowupTask.objects.get(pk=implant_task.pk).assignee_id == doctor_a.id
    assert FollowupTask.objects.get(pk=lead_task.pk).assignee_id == chain_admin.id
    # and once the assistant works at clinic A again, nothing of theirs moves
    assistant_a.clinics.set([clinic_a, clinic_b])
    FollowupTask.objects.filter(pk=implant_task.pk).update(assignee=assistant_a)
    assert followups_reassign_inactive(chain_id=chain.id) == 0
    assert FollowupTask.objects.get(pk=implant_task.pk).assignee_id == assistant_a.id


def test_reassigning_an_active_staff_member_is_refused(implant_task, doctor_a):
    with pytest.raises(ValidationFailed):
        followups_reassign_for_departed(staff=doctor_a)


def test_a_director_reassigns_within_their_clinic_only(implant_task, director_a, assistant_a, front_desk_b,
                                                       director_scope):
    followup_reassign(scope=director_scope, task=implant_task, assignee=assistant_a)
    implant_task.refresh_from_db()
    assert implant_task.assignee_id == assistant_a.id
    with pytest.raises(ValidationFailed):
        followup_reassign(scope=director_scope, task=implant_task, assignee=front_desk_b)


def test_a_director_of_another_clinic_cannot_reassign(implant_task, chain, clinic_b, assistant_a):
    other = StaffFactory(chain=chain, role=Role.CLINIC_DIRECTOR, clinics=[clinic_b])
    with pytest.raises(NotFound):
        followup_reassign(scope=scope_for_staff(other), task=implant_task, assignee=assistant_a)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule=st.sampled_from(AssigneeRule.values), customer_id=st.integers(1, 10_000),
       with_consultant=st.booleans(), with_doctor=st.booleans())
def test_the_sql_assignee_always_equals_the_python_one(chain, clinic_a, consultant_a, doctor_a, assistant_a,
                                                       front_desk_a, director_a, rule, customer_id,
                                                       with_consultant, with_doctor):
    from django.db.models import IntegerField, Value

    from smileloop.clinics.models import Clinic

    directory = StaffDirectory.load(chain.id)
    consultant = consultant_a.id if with_consultant else None
    doctor = doctor_a.id if with_doctor else None
    expr = directory.expression(rule, clinic=Value(clinic_a.id, output_field=IntegerField()),
                                customer=Value(customer_id, output_field=IntegerField()),
                                consultant=Value(consultant, output_field=IntegerField()),
                                doctor=Value(doctor, output_field=IntegerField()))
    in_sql = Clinic.objects.filter(pk=clinic_a.pk).annotate(a=expr).values_list("a", flat=True).get()
    assert in_sql == directory.resolve(rule, clinic_id=clinic_a.id, customer_id=customer_id,
                                       consultant_id=consultant, doctor_id=doctor)


# --- merges ---------------------------------------------------------------------------------------------------

def test_merging_two_records_with_the_same_task_keeps_one_open(chain, clinic_a, playbooks, front_desk_a, chain_admin,
                                                               admin_scope, today):
    from smileloop.followups.tests.factories import AppointmentFactory
    from smileloop.visits.enums import AppointmentStatus

    a = CustomerFactory(chain=chain, home_clinic=clinic_a)
    b = CustomerFactory(chain=chain, home_clinic=clinic_a)
    for c in (a, b):
        AppointmentFactory(customer=c, status=AppointmentStatus.COMPLETED, start_at=local(today - dt.timedelta(days=1)))
    followups_generate(chain=chain, today=today)
    customer_merge(scope=admin_scope, survivor=a, merged=b, actor=chain_admin, reason="same person")
    tasks = FollowupTask.objects.filter(customer=a, playbook=playbooks["satisfaction"])
    assert sorted(tasks.values_list("status", flat=True)) == ["cancelled", "open"]


# --- the editor ----------------------------------------------------------------------------------------------

def test_unknown_script_variables_are_named_in_the_error(playbooks):
    with pytest.raises(ValidationFailed) as exc:
        playbook_step_save(playbook=playbooks["recall"], data={
            "delay_days": 0, "assignee_rule": "front_desk", "channel": "call", "sla_hours": 24,
            "script": "{name}您好，{nmae}，{phone}"})
    [error] = exc.value.errors
    assert error.field == "script"
    assert "{nmae}" in error.message and "{phone}" in error.message and "{name}" not in error.message.split("(")[0]


def test_step_fields_are_checked_one_by_one(playbooks):
    with pytest.raises(ValidationFailed) as exc:
        playbook_step_save(playbook=playbooks["recall"], data={
            "delay_days": "-3", "assignee_rule": "boss", "channel": "pigeon", "sla_hours": "0", "script": ""})
    assert sorted(e.field for e in exc.value.errors) == ["assignee_rule", "channel", "delay_days", "script",
                                                         "sla_hours"]
    assert PlaybookStep.objects.filter(playbook=playbooks["recall"]).count() == 2


def test_trigger_parameters_are_validated(playbooks):
    with pytest.raises(ValidationFailed) as exc:
        playbook_update(playbook=playbooks["recall"], data={"trigger_params": {"months": "half a year",
                                                                               "categories": ["cleaning", "spa"],
                                                                               "colour": "red"}})
    fields = {e.field: e.message for e in exc.value.errors}
    assert set(fields) == {"trigger_params.months", "trigger_params.categories", "trigger_params.colour"}
    assert "spa" in fields["trigger_params.categories"]
    playbooks["recall"].refresh_from_db()
    assert playbooks["recall"].trigger_params == {"months": 6, "categories": ["cleaning", "exam"]}


def test_a_segment_playbook_needs_a_segment_of_the_chain(chain):
    from smileloop.followups.models import Playbook

    pb = Playbook.objects.create(chain=chain, code="s", name="s", trigger=Trigger.SEGMENT, trigger_params={})
    with pytest.raises(ValidationFailed) as exc:
        playbook_update(playbook=pb, data={"trigger_params": {"segment_id": 999}})
    assert exc.value.errors[0].field == "trigger_params.segment_id"


def test_removing_a_step_with_tasks_retires_it_and_cancels_its_open_tasks(implant_task):
    step = implant_task.step
    playbook_step_remove(step=step)
    step.refresh_from_db()
    implant_task.refresh_from_db()
    assert step.is_active is False
    assert implant_task.status == TaskStatus.CANCELLED


def test_a_day_one_call_lapses_three_days_after_it_was_due_and_other_tasks_stay_open(implant_task, lead_task):
    # given the implant's day-one call (lapses after 3 days) and a lead's call (never lapses), both due today
    from smileloop.followups.services import followups_lapse

    due = implant_task.due_at
    assert implant_task.step.lapse_days == 3 and lead_task.step.lapse_days is None
    FollowupTask.objects.filter(pk=lead_task.pk).update(due_at=due)
    # when the daily run looks three days on, then just over
    assert followups_lapse(chain=implant_task.chain, now=due + dt.timedelta(days=3)) == 0
    lapsed = followups_lapse(chain=implant_task.chain, now=due + dt.timedelta(days=3, minutes=1))
    # then only the day-one call is cancelled, as lapsed; running again changes nothing
    implant_task.refresh_from_db()
    lead_task.refresh_from_db()
    assert lapsed == 1
    assert (implant_task.status, implant_task.closed_reason) == (TaskStatus.CANCELLED, "lapsed: not worked in time")
    assert lead_task.status == TaskStatus.OPEN
    assert followups_lapse(chain=implant_task.chain, now=due + dt.timedelta(days=30)) == 0


def test_a_worked_task_never_lapses(implant_task, doctor_a):
    from smileloop.followups.services import followups_lapse

    followup_complete(task=implant_task, outcome="reached", note="", actor=doctor_a)  # its assignee
    assert followups_lapse(chain=implant_task.chain, now=implant_task.due_at + dt.timedelta(days=30)) == 0
    implant_task.refresh_from_db()
    assert implant_task.status == TaskStatus.DONE


@pytest.mark.parametrize(("value", "stored", "error"), [
    ("", None, None), (None, None, None), ("7", 7, None), (14, 14, None),
    ("0", None, "must be between 1 and 365"), ("366", None, "must be between 1 and 365"),
    ("a week", None, "must be a whole number between 1 and 365"),
])
def test_a_steps_lapse_is_blank_or_a_number_of_days(playbooks, value, stored, error):
    data = {"delay_days": 3, "assignee_rule": "consultant", "channel": "sms", "sla_hours": 48, "script": "{name}",
            "lapse_days": value}
    if error:
        with pytest.raises(ValidationFailed) as exc:
            playbook_step_save(playbook=playbooks["no_show"], data=data)
        assert [(e.field, e.message) for e in exc.value.errors] == [("lapse_days", error)]
        assert PlaybookStep.objects.filter(playbook=playbooks["no_show"]).count() == 1
    else:
        assert playbook_step_save(playbook=playbooks["no_show"], data=data).lapse_days == stored


def test_the_lapse_migration_applies_exactly_the_built_in_lapses():
    import importlib

    from smileloop.followups.defaults import DEFAULT_PLAYBOOKS, LAPSE_DAYS

    migration = importlib.import_module("smileloop.followups.migrations.0004_step_lapse_days")
    assert migration.LAPSE_DAYS == LAPSE_DAYS
    lapsing = {(p["code"], s["seq"]): s["lapse_days"] for p in DEFAULT_PLAYBOOKS for s in p.get("steps", [])
               if s["lapse_days"]}
    assert lapsing == LAPSE_DAYS


def test_adding_a_step_puts_it_last(playbooks):
    step = playbook_step_save(playbook=playbooks["no_show"], data={
        "delay_days": 3, "assignee_rule": "consultant", "channel": "sms", "sla_hours": 48, "script": "{name}"})
    assert step.seq == 2


def test_installing_defaults_twice_keeps_edits(chain, playbooks):
    playbook_update(playbook=playbooks["dormant"], data={"name": "沉睡唤醒（改）"})
    assert playbooks_install_defaults(chain=chain)["created"] == 0
    playbooks["dormant"].refresh_from_db()
    assert playbooks["dormant"].name == "沉睡唤醒（改）"


@pytest.mark.parametrize(("late", "chinese", "english"), [
    (0, "今天", "today"), (1, "昨天", "yesterday"), (2, "前天", "2 days ago"), (6, "6天前", "6 days ago"),
    (7, "11月13日", "on 13 November 2026"), (400, "2025年10月16日", "on 16 October 2025"),
])
def test_when_names_the_anchor_day_in_the_scripts_language(late, chinese, english):
    from smileloop.followups.script import when_words

    day = dt.date(2026, 11, 20) - dt.timedelta(days=late)
    assert when_words(day, dt.date(2026, 11, 20), chinese=True) == chinese
    assert when_words(day, dt.date(2026, 11, 20), chinese=False) == english


def test_the_default_scripts_migration_rewrites_exactly_the_installed_wording():
    import importlib

    from smileloop.followups.defaults import DEFAULT_PLAYBOOKS

    renamed = importlib.import_module("smileloop.followups.migrations.0003_step_script_when").RENAMED
    scripts = {step["script"] for playbook in DEFAULT_PLAYBOOKS for step in playbook.get("steps", [])}
    assert {new for _old, new in renamed} <= scripts
    assert all(old.replace("昨天", "{when}", 1) == new for old, new in renamed)
    assert not any("昨天" in script for script in scripts)


def test_script_rendering_fills_known_values_and_marks_missing_ones():
    assert script_render("{name}您好，{doctor}医生：{survey_link}", {"name": "王芳", "doctor": "张伟"}) == \
        "王芳您好，张伟医生：—"
    assert script_render("a { b", {}) == "a { b"


def test_date_reads_as_a_date_in_the_scripts_language_not_as_iso():
    # {date} rendered 2027-03-05 beside {when}'s 3月5日 in the same Chinese script
    from smileloop.followups.script import _Values

    values = _Values({"name": "王芳", "date": dt.date(2027, 3, 5)})
    assert script_render("{name}您好，您的亲友储值卡将于{date}到期。", values) == "王芳您好，您的亲友储值卡将于2027年3月5日到期。"
    assert script_render("Hello {name}, your card expires on {date}.", values) == \
        "Hello 王芳, your card expires on 5 March 2027."


def test_a_script_called_through_a_relative_greets_the_relative_and_still_names_the_patient_elsewhere():
    from smileloop.followups.script import _Values

    values = _Values({"name": "石子轩", "clinic": "静安门诊"})
    values.via_relative_minor = True
    assert script_render("{name}您好，提醒{name}明天到{clinic}复诊。", values) == \
        "石子轩家长您好，提醒石子轩明天到静安门诊复诊。"
    assert script_render("{name}反馈了不满意：请致电。", values) == "石子轩反馈了不满意：请致电。"
    assert script_render("Hello {name}, {name} is due.", values) == "Hello 石子轩's parent, 石子轩 is due."
    values.via_relative_minor = False  # an adult without a phone of their own: the family answers
    assert script_render("{name} 您好", values) == "石子轩家属 您好"
    values.via_relative_minor = None  # the patient's own phone
    assert script_render("{name}您好", values) == "石子轩您好"
