"""Two staff working one follow-up task, or editing one playbook, at the same moment, on PostgreSQL (threads behind a
barrier, each with its own connection): one outcome is recorded, the other write is refused with its reason (never a
500 from the database). SQLite serialises writers, so these run on PostgreSQL only."""

import json
import threading

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.services import token_create
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.core.models import AuditEvent
from smileloop.core.testing import held, postgresql_only, race, writers_run
from smileloop.customers.models import Interaction
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.models import FollowupTask, PlaybookStep
from smileloop.followups.services import complaint_task_open, followup_reassign, playbook_step_save
from smileloop.followups.tests.factories import later_today

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]



@pytest.fixture
def task(chain, clinic_a, front_desk_a, playbooks):
    customer = CustomerFactory(chain=chain, name="李娜", home_clinic=clinic_a, mobile="+8613800138002")
    task = complaint_task_open(customer=customer, clinic=clinic_a, brief="", anchor_key="qa:pg")
    FollowupTask.objects.filter(pk=task.pk).update(assignee=front_desk_a, due_at=later_today())
    return task


def _complete(task_id, outcome, *, token, key):
    return Client().post(f"/api/followups/tasks/{task_id}/complete", data=json.dumps({"outcome": outcome}),
                         content_type="application/json",
                         headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})


def _page(staff) -> Client:
    client = Client()
    client.force_login(staff.user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def _while_held(first, then, *, hold: float = 0.5):
    """`first()` writes in a transaction kept open `hold` seconds after `then()` has started on another connection:
    `then` meets the row `first` changed, locked, and goes on once `first` commits (the race made certain)."""
    reached = threading.Event()
    return race(held(first, reached, hold=hold), then, reached, atomic=False)


def _done_entries(task):
    return Interaction.objects.filter(data__followup_task_id=task.pk, data__outcome__isnull=False).count()


def test_the_assignee_and_a_director_recording_different_outcomes_at_once_record_one(task, front_desk_a, director_a):
    tokens = [token_create(username=front_desk_a.user.username), token_create(username=director_a.user.username)]
    outcomes = ["reached", "no_answer"]

    def writer(i):
        return [_complete(task.pk, outcomes[i], token=tokens[i], key=f"k-{i}")]

    results, errors = writers_run(writer, 2)
    assert errors == []
    assert sorted(r.status_code for r in results) == [200, 409]
    [won] = [r.json() for r in results if r.status_code == 200]
    task.refresh_from_db()
    assert (task.status, task.outcome) == ("done", won["outcome"])
    assert _done_entries(task) == 1


def test_the_same_outcome_recorded_twice_at_once_is_one_outcome_on_the_timeline(task, front_desk_a, director_a):
    tokens = [token_create(username=front_desk_a.user.username), token_create(username=director_a.user.username)]

    def writer(i):
        return [_complete(task.pk, "reached", token=tokens[i], key=f"k-{i}")]

    results, errors = writers_run(writer, 2)
    assert errors == []
    assert [r.status_code for r in results] == [200, 200]
    task.refresh_from_db()
    assert (task.status, task.outcome) == ("done", "reached")
    assert _done_entries(task) == 1


def test_a_director_reassigning_while_the_assignee_completes_leaves_one_coherent_story(task, chain, clinic_a,
                                                                                       front_desk_a, director_a):
    colleague = StaffFactory(chain=chain, role=Role.FRONT_DESK, clinics=[clinic_a])

    def writer(i):
        if i == 0:
            return [("complete", _page(front_desk_a).post(reverse("followups:complete", args=[task.pk]),
                                                          {"outcome": "reached"}).status_code)]
        return [("reassign", _page(director_a).post(reverse("followups:reassign", args=[task.pk]),
                                                    {"assignee": colleague.pk}).status_code)]

    results, errors = writers_run(writer, 2)
    assert errors == []
    codes = dict(results)
    task.refresh_from_db()
    reassigned = AuditEvent.objects.filter(action="followup.reassign", object_id=str(task.pk)).count()
    if codes["complete"] == 302:  # completed first: the director is told it is closed
        assert codes["reassign"] == 422
        assert (task.status, task.assignee_id, reassigned) == ("done", front_desk_a.pk, 0)
    else:  # reassigned first: the former assignee's outcome is refused as a colleague's task
        assert (codes["complete"], codes["reassign"]) == (403, 302)
        assert (task.status, task.assignee_id, reassigned) == ("open", colleague.pk, 1)


def test_two_directors_reassigning_at_once_end_on_the_last_with_both_moves_audited(task, chain, clinic_a, director_a,
                                                                                   chain_admin):
    to = [StaffFactory(chain=chain, role=Role.FRONT_DESK, clinics=[clinic_a]) for _ in range(2)]
    actors = [director_a, chain_admin]

    def writer(i):
        return [_page(actors[i]).post(reverse("followups:reassign", args=[task.pk]), {"assignee": to[i].pk}).status_code]

    results, errors = writers_run(writer, 2)
    assert errors == [] and results == [302, 302]
    task.refresh_from_db()
    moves = list(AuditEvent.objects.filter(action="followup.reassign", object_id=str(task.pk)).order_by("id"))
    assert len(moves) == 2
    assert moves[1].detail["from"] == moves[0].detail["to"]  # the second saw the first's move, not a stale assignee
    assert task.assignee_id == moves[1].detail["to"]


def test_two_admins_adding_a_step_at_once_get_two_steps_in_order(chain_admin, chain, playbooks):
    pb = playbooks["postop_extraction"]
    other_admin = StaffFactory(chain=chain, role=Role.CHAIN_ADMIN)
    admins = [chain_admin, other_admin]

    def writer(i):
        return [_page(admins[i]).post(reverse("followups:step_add", args=[pb.pk]), {
            "new-delay_days": str(10 + i), "new-assignee_rule": "front_desk", "new-channel": "call",
            "new-sla_hours": "24", "new-script": f"{{name}}您好 {i}"}).status_code]

    results, errors = writers_run(writer, 2)
    assert errors == [] and results == [302, 302]
    seqs = list(PlaybookStep.objects.filter(playbook=pb, is_active=True).order_by("seq").values_list("seq", flat=True))
    assert seqs == [1, 2, 3, 4]


def test_removing_a_step_while_its_task_is_completed_never_cancels_a_done_task(task, front_desk_a, chain_admin):
    def writer(i):
        if i == 0:
            return [("complete", _page(front_desk_a).post(reverse("followups:complete", args=[task.pk]),
                                                          {"outcome": "reached"}).status_code)]
        return [("remove", _page(chain_admin).post(reverse("followups:step_remove",
                                                           args=[task.playbook_id, task.step_id])).status_code)]

    results, errors = writers_run(writer, 2)
    assert errors == []
    codes = dict(results)
    assert codes["remove"] == 302
    task.refresh_from_db()
    if codes["complete"] == 302:
        assert (task.status, task.outcome, task.closed_reason) == ("done", "reached", "")
    else:
        assert codes["complete"] == 422
        assert (task.status, task.outcome, task.closed_reason) == ("cancelled", "", "step removed")


# The same races made certain: the second writer arrives while the first holds the row.

def test_the_former_assignee_recording_an_outcome_while_a_director_reassigns_is_refused_not_a_500(
        task, chain, clinic_a, front_desk_a, director_a):
    colleague = StaffFactory(chain=chain, role=Role.FRONT_DESK, clinics=[clinic_a])
    out = _while_held(
        lambda: followup_reassign(scope=scope_for_staff(director_a), task=task, assignee=colleague),
        lambda: _page(front_desk_a).post(reverse("followups:complete", args=[task.pk]), {"outcome": "reached"}))
    assert "first_error" not in out and "then_error" not in out, out
    assert out["then"].status_code == 403
    task.refresh_from_db()
    assert (task.status, task.outcome, task.assignee_id) == ("open", "", colleague.pk)
    assert _done_entries(task) == 0


def test_a_reassignment_arriving_while_another_is_written_moves_from_the_new_assignee(task, chain, clinic_a,
                                                                                      front_desk_a, director_a,
                                                                                      chain_admin):
    to = [StaffFactory(chain=chain, role=Role.FRONT_DESK, clinics=[clinic_a]) for _ in range(2)]
    out = _while_held(
        lambda: followup_reassign(scope=scope_for_staff(director_a), task=task, assignee=to[0]),
        lambda: _page(chain_admin).post(reverse("followups:reassign", args=[task.pk]), {"assignee": to[1].pk}))
    assert "first_error" not in out and "then_error" not in out, out
    assert out["then"].status_code == 302
    task.refresh_from_db()
    moves = list(AuditEvent.objects.filter(action="followup.reassign", object_id=str(task.pk)).order_by("id"))
    assert [(m.detail["from"], m.detail["to"]) for m in moves] == [(front_desk_a.pk, to[0].pk), (to[0].pk, to[1].pk)]
    assert task.assignee_id == to[1].pk


def test_a_step_added_while_another_is_being_added_goes_after_it(chain_admin, playbooks):
    pb = playbooks["postop_extraction"]
    data = {"delay_days": "10", "assignee_rule": "front_desk", "channel": "call", "sla_hours": "24",
            "script": "{name}您好"}
    out = _while_held(
        lambda: playbook_step_save(playbook=pb, data=data),
        lambda: _page(chain_admin).post(reverse("followups:step_add", args=[pb.pk]),
                                        {f"new-{k}": v for k, v in data.items()}))
    assert "first_error" not in out and "then_error" not in out, out
    assert out["then"].status_code == 302
    seqs = list(PlaybookStep.objects.filter(playbook=pb, is_active=True).order_by("seq").values_list("seq", flat=True))
    assert seqs == [1, 2, 3, 4]
