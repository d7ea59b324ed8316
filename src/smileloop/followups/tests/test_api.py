import json

import pytest

from smileloop.clinics.services import token_create
from smileloop.core.models import AuditEvent
from smileloop.customers.models import Interaction
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.models import FollowupTask
from smileloop.followups.services import complaint_task_open
from smileloop.followups.tests.factories import later_today

pytestmark = pytest.mark.django_db


def post(client, url, body, *, token, key="key-1"):
    headers = {"Authorization": f"Bearer {token}"}
    if key:
        headers["Idempotency-Key"] = key
    return client.post(url, data=json.dumps(body), content_type="application/json", headers=headers)


def get(client, url, *, token, **params):
    return client.get(url, params, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def tasks(chain, clinic_a, clinic_b, front_desk_a, front_desk_b, director_a, playbooks):
    a = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a, mobile="+8613800138001")
    b = CustomerFactory(chain=chain, name="赵敏", home_clinic=clinic_b)
    out = {}
    for name, customer, clinic, staff in (("a", a, clinic_a, front_desk_a), ("b", b, clinic_b, front_desk_b),
                                          ("director", a, clinic_a, director_a)):
        task = complaint_task_open(customer=customer, clinic=clinic, brief="", anchor_key=f"api:{name}")
        FollowupTask.objects.filter(pk=task.pk).update(assignee=staff, due_at=later_today())
        out[name] = task
    return out


def test_list_my_tasks_with_the_filled_script_and_a_masked_phone(client, front_desk_a, tasks):
    token = token_create(username=front_desk_a.user.username)
    response = get(client, "/api/followups/tasks", token=token)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    [item] = body["items"]
    assert item["id"] == tasks["a"].id
    assert item["mobile"] == "138****8001"
    assert item["script"].startswith("王芳反馈了不满意")
    assert item["playbook"] == "complaint"


def test_a_task_of_a_patient_without_a_phone_names_the_relative_to_call_masked(client, chain, clinic_a, front_desk_a,
                                                                              tasks):
    from smileloop.customers.models import Customer
    from smileloop.customers.services import household_member_add

    child = tasks["a"].customer
    Customer.objects.filter(pk=child.pk).update(mobile=None, mobile_tail="")
    father = CustomerFactory(chain=chain, name="李强", home_clinic=clinic_a, mobile="+8613700137007")
    household_member_add(head=father, member=child, relation="child")
    token = token_create(username=front_desk_a.user.username)
    [item] = get(client, "/api/followups/tasks", token=token).json()["items"]
    one = get(client, f"/api/followups/tasks/{tasks['a'].id}", token=token).json()
    assert item["mobile"] == "" and item["contact_via"] == one["contact_via"] == {
        "customer_id": father.id, "name": "李强", "mobile": "137****7007"}


def test_a_front_desk_cannot_list_a_clinics_tasks_nor_see_another_clinics_task(client, front_desk_a, tasks,
                                                                                 clinic_b):
    token = token_create(username=front_desk_a.user.username)
    assert get(client, "/api/followups/tasks", token=token, mine="false").status_code == 403
    assert get(client, f"/api/followups/tasks/{tasks['b'].id}", token=token).status_code == 404


def test_a_director_lists_the_clinics_tasks_but_not_another_clinics(client, director_a, tasks, clinic_a, clinic_b):
    token = token_create(username=director_a.user.username)
    body = get(client, "/api/followups/tasks", token=token, mine="false").json()
    assert sorted(i["id"] for i in body["items"]) == sorted([tasks["a"].id, tasks["director"].id])
    response = get(client, "/api/followups/tasks", token=token, mine="false", clinic=clinic_b.id)
    assert response.status_code == 403
    assert response.json()["errors"] == [{"field": "query.clinic", "message": f"Clinic {str(clinic_b.id)!r} is not "
                                                                            "one of your clinics; you may not see its "
                                                                            "data"}]
    assert get(client, "/api/followups/tasks", token=token, mine="false", status="nonsense").status_code == 422


def test_the_task_list_takes_a_clinic_by_code_as_the_other_lists_do(client, director_a, tasks, clinic_a, clinic_b):
    # given
    token = token_create(username=director_a.user.username)
    # when
    by_code = get(client, "/api/followups/tasks", token=token, mine="false", clinic=clinic_a.code)
    by_id = get(client, "/api/followups/tasks", token=token, mine="false", clinic=clinic_a.id)
    unknown = get(client, "/api/followups/tasks", token=token, mine="false", clinic="NOPE")
    other = get(client, "/api/followups/tasks", token=token, mine="false", clinic=clinic_b.code)
    # then
    assert by_code.status_code == 200
    assert sorted(i["id"] for i in by_code.json()["items"]) == sorted([tasks["a"].id, tasks["director"].id])
    assert by_code.json() == by_id.json()
    assert unknown.status_code == 422
    assert unknown.json()["errors"] == [{"field": "query.clinic", "value": "NOPE",
                                         "message": "is not an active clinic of this chain (use its id or code)"}]
    assert other.status_code == 403


def test_a_due_window_that_ends_before_it_starts_is_422_on_due_to(client, front_desk_a, tasks):
    # given
    token = token_create(username=front_desk_a.user.username)
    # when: swapped bounds, the end given in the chain's time and the start with an offset
    swapped = get(client, "/api/followups/tasks", token=token, due_from="2026-03-02T00:00:00+08:00",
                  due_to="2026-03-01T00:00:00")
    window = get(client, "/api/followups/tasks", token=token, due_from="2026-03-01T00:00:00+08:00",
                 due_to="2026-03-02T00:00:00+08:00")
    # then
    assert swapped.status_code == 422
    assert [e["field"] for e in swapped.json()["errors"]] == ["query.due_to"]
    assert swapped.json()["errors"][0]["message"] == "must be after due_from"
    assert window.status_code == 200


def test_complete_a_task_is_idempotent_on_the_key(client, front_desk_a, tasks):
    token = token_create(username=front_desk_a.user.username)
    url = f"/api/followups/tasks/{tasks['a'].id}/complete"
    first = post(client, url, {"outcome": "reached", "note": "已致歉"}, token=token, key="k-1")
    again = post(client, url, {"outcome": "reached", "note": "已致歉"}, token=token, key="k-1")
    assert first.status_code == again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert first.json()["status"] == "done"
    assert Interaction.objects.filter(data__followup_task_id=tasks["a"].id).count() == 1


def test_complete_with_a_bad_outcome_is_a_field_error(client, front_desk_a, tasks):
    token = token_create(username=front_desk_a.user.username)
    response = post(client, f"/api/followups/tasks/{tasks['a'].id}/complete", {"outcome": "great"}, token=token)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.outcome"


def test_completing_with_another_outcome_is_a_409(client, front_desk_a, tasks):
    token = token_create(username=front_desk_a.user.username)
    url = f"/api/followups/tasks/{tasks['a'].id}/complete"
    post(client, url, {"outcome": "reached"}, token=token, key="k-1")
    response = post(client, url, {"outcome": "declined"}, token=token, key="k-2")
    assert response.status_code == 409
    assert response.json()["code"] == "task_completed"


def test_another_clinics_task_cannot_be_completed(client, front_desk_a, tasks):
    token = token_create(username=front_desk_a.user.username)
    response = post(client, f"/api/followups/tasks/{tasks['b'].id}/complete", {"outcome": "reached"}, token=token)
    assert response.status_code == 404
    tasks["b"].refresh_from_db()
    assert tasks["b"].status == "open"


def test_list_playbooks(client, front_desk_a, playbooks):
    token = token_create(username=front_desk_a.user.username)
    body = get(client, "/api/followups/playbooks", token=token).json()
    implant = next(p for p in body if p["code"] == "postop_implant")
    assert [s["delay_days"] for s in implant["steps"]] == [1, 3, 7, 30, 90]
    assert implant["trigger_params"] == {"category": "implant"}


def test_a_task_names_its_clinic_as_every_answer_does_with_its_id_kept(client, front_desk_a, tasks, clinic_a):
    token = token_create(username=front_desk_a.user.username)
    # when
    listed = get(client, "/api/followups/tasks", token=token).json()["items"][0]
    one = get(client, f"/api/followups/tasks/{tasks['a'].id}", token=token).json()
    done = post(client, f"/api/followups/tasks/{tasks['a'].id}/complete", {"outcome": "reached"}, token=token).json()
    # then: the customers and visits answers' {id, code, name}, and the id as before
    clinic = {"id": clinic_a.id, "code": clinic_a.code, "name": clinic_a.name}
    assert [(t["clinic"], t["clinic_id"]) for t in (listed, one, done)] == [(clinic, clinic_a.id)] * 3


def test_a_completion_with_a_misspelt_field_is_a_422_and_completes_nothing(client, front_desk_a, tasks):
    token = token_create(username=front_desk_a.user.username)
    # when the note is sent as "notes"
    response = post(client, f"/api/followups/tasks/{tasks['a'].id}/complete", {"outcome": "reached", "notes": "已致歉"},
                    token=token)
    # then
    assert response.status_code == 422
    assert response.json()["errors"] == [{
        "field": "body.notes", "value": "已致歉",
        "message": "is not a field of this endpoint (did you mean 'note'?); its fields here are: outcome, note"}]
    tasks["a"].refresh_from_db()
    assert tasks["a"].status == "open"


def test_a_colleagues_task_cannot_be_completed_and_nothing_changes(client, front_desk_a, tasks):
    # given the director's own task in front desk A's clinic (front desk A sees it: it is of their clinic)
    token = token_create(username=front_desk_a.user.username)
    assert get(client, f"/api/followups/tasks/{tasks['director'].id}", token=token).status_code == 200
    # when front desk A records its outcome
    response = post(client, f"/api/followups/tasks/{tasks['director'].id}/complete",
                    {"outcome": "reached", "note": "替院长打了"}, token=token)
    # then
    assert response.status_code == 403
    assert response.json()["code"] == "task_not_yours"
    task = FollowupTask.objects.get(pk=tasks["director"].id)
    assert (task.status, task.note, task.completed_by_id) == ("open", "", None)
    assert not Interaction.objects.filter(data__followup_task_id=task.id).exists()


def test_a_director_completes_a_front_desks_task_recorded_as_done_by_the_director(client, director_a, front_desk_a,
                                                                                   tasks):
    token = token_create(username=director_a.user.username)
    response = post(client, f"/api/followups/tasks/{tasks['a'].id}/complete", {"outcome": "reached"}, token=token)
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["completed_by_id"], body["assignee_id"]) == ("done", director_a.id, front_desk_a.id)
    assert Interaction.objects.get(data__followup_task_id=tasks["a"].id).author_id == director_a.id


def test_an_unassigned_task_is_taken_over_by_the_one_who_completes_it(client, front_desk_a, tasks):
    FollowupTask.objects.filter(pk=tasks["director"].id).update(assignee=None)
    token = token_create(username=front_desk_a.user.username)
    response = post(client, f"/api/followups/tasks/{tasks['director'].id}/complete", {"outcome": "no_answer"},
                    token=token)
    assert response.status_code == 200
    assert (response.json()["assignee_id"], response.json()["completed_by_id"]) == (front_desk_a.id, front_desk_a.id)


def test_a_task_whose_assignee_moved_to_another_clinic_is_taken_over_by_a_colleague_of_the_clinic(
        client, clinic_b, front_desk_a, director_a, tasks):
    # given the director's task in clinic A, and the director now runs clinic B only
    director_a.clinics.set([clinic_b])
    task_id = tasks["director"].id
    token = token_create(username=front_desk_a.user.username)
    # when front desk A records its outcome
    response = post(client, f"/api/followups/tasks/{task_id}/complete", {"outcome": "no_answer"}, token=token)
    # then they took it over: audited, and on the patient's timeline
    assert response.status_code == 200
    assert (response.json()["assignee_id"], response.json()["completed_by_id"]) == (front_desk_a.id, front_desk_a.id)
    event = AuditEvent.objects.get(action="followup.take_over", object_id=str(task_id))
    assert event.detail == {"from": director_a.id, "to": front_desk_a.id, "via": "complete", "why": "moved"}
    entry = Interaction.objects.get(data__followup_task_id=task_id, data__event="take_over")
    assert (entry.kind, entry.author_id, entry.text) == ("system", front_desk_a.id,
                                                         'follow-up task "投诉处理" taken over by 前台小王')


def test_an_assignee_still_at_the_clinic_keeps_their_task_and_a_colleague_gets_task_not_yours(
        client, clinic_a, clinic_b, front_desk_a, director_a, tasks):
    # given the director now runs clinics A and B
    director_a.clinics.set([clinic_a, clinic_b])
    token = token_create(username=front_desk_a.user.username)
    response = post(client, f"/api/followups/tasks/{tasks['director'].id}/complete", {"outcome": "reached"},
                    token=token)
    assert response.status_code == 403
    assert response.json()["code"] == "task_not_yours"
    task = FollowupTask.objects.get(pk=tasks["director"].id)
    assert (task.status, task.assignee_id, task.completed_by_id) == ("open", director_a.id, None)
    assert not AuditEvent.objects.exclude(action="api_token.create").exists()
    assert not Interaction.objects.filter(data__followup_task_id=task.id).exists()
