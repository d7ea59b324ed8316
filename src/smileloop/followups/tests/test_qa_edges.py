"""QA edges of the playbook editor and of working tasks: bad input names its field and writes nothing, refused writes
change nothing, edits while the daily run has made tasks keep old tasks coherent and the next run idempotent."""

import datetime as dt
import json

import pytest
from django.conf import settings
from django.urls import reverse

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.services import token_create
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.enums import TaskStatus
from smileloop.followups.models import FollowupTask, Playbook, PlaybookStep
from smileloop.followups.services import complaint_task_open, followups_generate
from smileloop.followups.tests.factories import TZ, ProcedureFactory, later_today

pytestmark = pytest.mark.django_db


def login(client, staff):
    client.force_login(staff.user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def snapshot(pb):
    pb.refresh_from_db()
    steps = list(PlaybookStep.objects.filter(playbook=pb).order_by("id").values())
    return (pb.name, pb.description, pb.goal, pb.is_active, pb.trigger_params, steps)


def step_post(step, **over):
    prefix = f"s{step.pk}" if step else "new"
    data = {"delay_days": "1", "assignee_rule": "front_desk", "channel": "call", "sla_hours": "24",
            "lapse_days": "", "script": "{name}您好"}
    data.update(over)
    return {f"{prefix}-{k}": v for k, v in data.items()}


@pytest.fixture
def implant(chain, clinic_a, playbooks, items, doctor_a, today):
    customer = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a, mobile="+8613800138001")
    ProcedureFactory(customer=customer, item=items["IM01"], doctor=doctor_a, performed_on=today - dt.timedelta(days=1))
    followups_generate(chain=chain, today=today)
    return FollowupTask.objects.get(playbook=playbooks["postop_implant"])


# --- the playbook editor: bad input ------------------------------------------------------------------------

@pytest.mark.parametrize("name, error", [
    ("", "This field is required."),
    ("   ", "This field is required."),
    ("a\x00b", "Null characters are not allowed."),
    ("长" * 101, "Ensure this value has at most 100 characters (it has 101)."),
    ("复查\n提醒", "must not contain control characters"),
    ("\x1b[31m复查\x1b[0m", "must not contain control characters"),
    ("复查\x07", "must not contain control characters"),
])
def test_a_bad_playbook_name_is_refused_at_its_field_and_nothing_changes(client, chain_admin, playbooks, name, error):
    pb = playbooks["recall"]
    before = snapshot(pb)
    response = login(client, chain_admin).post(reverse("followups:playbook_edit", args=[pb.id]), {
        "name": name, "goal": "appointment_booked", "months": "6", "categories": ["cleaning"]})
    assert response.status_code == 422
    assert response.context["form"].errors["name"] == [error]
    assert snapshot(pb) == before


@pytest.mark.parametrize("field, value, error", [
    ("delay_days", "-1", "must be between 0 and 730"),
    ("delay_days", "731", "must be between 0 and 730"),
    ("delay_days", "99999999999999999999999999", "must be between 0 and 730"),
    ("delay_days", "1.5", "must be a whole number between 0 and 730"),
    ("delay_days", "", "This field is required."),
    ("sla_hours", "0", "must be between 1 and 720"),
    ("sla_hours", "-24", "must be between 1 and 720"),
    ("lapse_days", "-1", "must be between 1 and 365"),
    ("script", "", "This field is required."),
    ("script", "  \n ", "This field is required."),
    ("script", "你好\x00", "Null characters are not allowed."),
    ("script", "{name}\x1b[2J您好", "must not contain control characters"),
    ("script", "{name}\x7f", "must not contain control characters"),
    ("script", "{name}{phone}", "unknown variables: {phone} (allowed: {name}, {doctor}, {procedure}, {when}, "
                                "{days_since}, {clinic}, {date}, {survey_link})"),
    ("assignee_rule", "boss", "Select a valid choice. boss is not one of the available choices."),
])
def test_a_bad_step_is_refused_at_its_field_when_added_or_edited_and_nothing_changes(client, chain_admin, playbooks,
                                                                                    field, value, error):
    pb = playbooks["postop_extraction"]
    step = pb.steps.filter(is_active=True).order_by("seq").first()
    before = snapshot(pb)
    client = login(client, chain_admin)
    added = client.post(reverse("followups:step_add", args=[pb.id]), step_post(None, **{field: value}))
    edited = client.post(reverse("followups:step_edit", args=[pb.id, step.id]), step_post(step, **{field: value}))
    assert (added.status_code, edited.status_code) == (422, 422)
    assert added.context["new_step_form"].errors[field] == [error]
    row_form = dict((s.pk, f) for s, f in edited.context["steps"])[step.pk]
    assert row_form.errors[field] == [error]
    assert snapshot(pb) == before


def test_an_over_long_script_or_description_is_refused_at_its_field_and_nothing_changes(client, chain_admin,
                                                                                       playbooks):
    pb = playbooks["postop_extraction"]
    step = pb.steps.filter(is_active=True).order_by("seq").first()
    before = snapshot(pb)
    client = login(client, chain_admin)
    added = client.post(reverse("followups:step_add", args=[pb.id]), step_post(None, script="您" * 2001))
    edited = client.post(reverse("followups:step_edit", args=[pb.id, step.id]), step_post(step, script="您" * 2001))
    assert (added.status_code, edited.status_code) == (422, 422)
    assert added.context["new_step_form"].errors["script"] == ["must be at most 2000 characters"]
    assert dict((s.pk, f) for s, f in edited.context["steps"])[step.pk].errors["script"] == [
        "must be at most 2000 characters"]
    response = client.post(reverse("followups:playbook_edit", args=[pb.id]), {
        "name": "拔牙", "description": "说明" * 1001, "goal": "none", "category": "extraction"})
    assert response.status_code == 422
    assert response.context["form"].errors["description"] == ["must be at most 2000 characters"]
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    zh = client.post(reverse("followups:step_add", args=[pb.id]), step_post(None, script="您" * 2001))
    assert zh.context["new_step_form"].errors["script"] == ["最多 2000 个字符"]
    assert snapshot(pb) == before
    # 2000 characters are fine
    assert client.post(reverse("followups:step_add", args=[pb.id]),
                       step_post(None, script="您" * 2000)).status_code == 302


def test_a_step_of_another_playbook_or_a_retired_one_is_a_404_and_nothing_changes(client, chain_admin, playbooks,
                                                                                  implant):
    ext, implant_pb = playbooks["postop_extraction"], playbooks["postop_implant"]
    other = implant_pb.steps.filter(is_active=True).first()
    client = login(client, chain_admin)
    before = snapshot(implant_pb)
    assert client.post(reverse("followups:step_edit", args=[ext.id, other.id]),
                       step_post(other, delay_days="5")).status_code == 404
    assert client.post(reverse("followups:step_remove", args=[ext.id, other.id])).status_code == 404
    assert snapshot(implant_pb) == before
    # a retired step (removed with tasks) can be neither edited nor removed again
    retired = implant.step
    assert client.post(reverse("followups:step_remove", args=[implant_pb.id, retired.id])).status_code == 302
    before = snapshot(implant_pb)
    assert client.post(reverse("followups:step_edit", args=[implant_pb.id, retired.id]),
                       step_post(retired, delay_days="5")).status_code == 404
    assert client.post(reverse("followups:step_remove", args=[implant_pb.id, retired.id])).status_code == 404
    assert snapshot(implant_pb) == before


def test_another_chains_playbook_is_a_404(client, chain_admin, playbooks):
    from smileloop.clinics.tests.factories import ChainFactory
    from smileloop.followups.services import playbooks_install_defaults

    other_chain = ChainFactory(name="别家")
    playbooks_install_defaults(chain=other_chain)
    pb = Playbook.objects.get(chain=other_chain, code="recall")
    step = pb.steps.filter(is_active=True).first()
    before = snapshot(pb)
    client = login(client, chain_admin)
    assert client.get(reverse("followups:playbook_edit", args=[pb.id])).status_code == 404
    assert client.post(reverse("followups:playbook_edit", args=[pb.id]), {"name": "x", "goal": "none"}).status_code == 404
    assert client.post(reverse("followups:playbook_toggle", args=[pb.id]), {"active": "0"}).status_code == 404
    assert client.post(reverse("followups:step_add", args=[pb.id]), step_post(None)).status_code == 404
    assert client.post(reverse("followups:step_remove", args=[pb.id, step.id])).status_code == 404
    assert snapshot(pb) == before


# --- who may edit playbooks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("role", [Role.CLINIC_DIRECTOR, Role.FRONT_DESK, Role.CONSULTANT, Role.MARKETING,
                                  Role.MEMBER_OPS])
def test_only_a_chain_admin_edits_playbooks_every_refused_write_changes_nothing(client, chain, clinic_a, playbooks,
                                                                               role):
    staff = StaffFactory(chain=chain, role=role, clinics=[clinic_a])
    pb = playbooks["postop_extraction"]
    step = pb.steps.filter(is_active=True).first()
    before = snapshot(pb)
    count = Playbook.objects.count()
    client = login(client, staff)
    posts = [
        (reverse("followups:playbook_edit", args=[pb.id]), {"name": "改名", "goal": "none", "category": "extraction"}),
        (reverse("followups:playbook_toggle", args=[pb.id]), {"active": "0"}),
        (reverse("followups:step_add", args=[pb.id]), step_post(None)),
        (reverse("followups:step_edit", args=[pb.id, step.id]), step_post(step, delay_days="9")),
        (reverse("followups:step_remove", args=[pb.id, step.id]), {}),
        (reverse("followups:playbook_new") + "?trigger=no_show", {"trigger": "no_show", "name": "x", "goal": "none"}),
        (reverse("followups:playbooks_install"), {}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    assert snapshot(pb) == before
    assert Playbook.objects.count() == count


# --- editing while the daily run has made tasks ------------------------------------------------------------

def test_editing_a_step_keeps_its_tasks_and_a_second_run_after_the_edit_creates_nothing(client, chain, chain_admin,
                                                                                        playbooks, implant, today):
    step = implant.step
    client = login(client, chain_admin)
    # the day-one call becomes a day-two call by a consultant, with a new script
    response = client.post(reverse("followups:step_edit", args=[implant.playbook_id, step.id]), step_post(
        step, delay_days="2", assignee_rule="consultant", script="{name}您好，术后第二天回访"))
    assert response.status_code == 302
    assert followups_generate(chain=chain, today=today)["created"] == 0
    assert followups_generate(chain=chain, today=today + dt.timedelta(days=1))["created"] == 0
    implant.refresh_from_db()
    assert (implant.status, implant.step_id, implant.due_at.astimezone(TZ).date()) == ("open", step.id, today)
    assert FollowupTask.objects.filter(playbook=implant.playbook, step=step).count() == 1


def test_removing_a_step_with_an_open_task_cancels_it_and_no_run_brings_it_back(client, chain, chain_admin, playbooks,
                                                                               implant, today):
    client = login(client, chain_admin)
    response = client.post(reverse("followups:step_remove", args=[implant.playbook_id, implant.step_id]))
    assert response.status_code == 302
    implant.refresh_from_db()
    assert (implant.status, implant.closed_reason) == ("cancelled", "step removed")
    assert followups_generate(chain=chain, today=today)["created"] == 0
    # the cancelled task can no longer be worked
    assert login(client, implant.assignee).post(reverse("followups:complete", args=[implant.id]),
                                                {"outcome": "reached"}).status_code == 422
    implant.refresh_from_db()
    assert implant.status == "cancelled" and implant.outcome == ""


def test_disabling_a_playbook_keeps_its_open_tasks_workable_and_the_run_adds_none(client, chain, chain_admin, items,
                                                                                 doctor_a, clinic_a, playbooks,
                                                                                 implant, today):
    client = login(client, chain_admin)
    assert client.post(reverse("followups:playbook_toggle", args=[implant.playbook_id]),
                       {"active": "0"}).status_code == 302
    other = CustomerFactory(chain=chain, home_clinic=clinic_a)
    ProcedureFactory(customer=other, item=items["IM01"], doctor=doctor_a, performed_on=today - dt.timedelta(days=1))
    assert followups_generate(chain=chain, today=today)["created"] == 0
    implant.refresh_from_db()
    assert implant.status == "open"
    assert login(client, doctor_a).post(reverse("followups:complete", args=[implant.id]),
                                        {"outcome": "reached"}).status_code == 302
    implant.refresh_from_db()
    assert implant.status == "done"


def test_adding_a_step_to_a_playbook_with_tasks_then_running_twice_is_idempotent(client, chain, chain_admin, playbooks,
                                                                                implant, today):
    pb = implant.playbook
    response = login(client, chain_admin).post(reverse("followups:step_add", args=[pb.id]),
                                               step_post(None, delay_days="1", script="{name}您好，加一通"))
    assert response.status_code == 302
    first = followups_generate(chain=chain, today=today)["created"]
    assert first == 1
    assert followups_generate(chain=chain, today=today)["created"] == 0
    seqs = list(PlaybookStep.objects.filter(playbook=pb, is_active=True).values_list("seq", flat=True))
    assert len(seqs) == len(set(seqs))


# --- working tasks ------------------------------------------------------------------------------------------

@pytest.fixture
def task_a(chain, clinic_a, front_desk_a, playbooks):
    customer = CustomerFactory(chain=chain, name="李娜", home_clinic=clinic_a, mobile="+8613800138002")
    task = complaint_task_open(customer=customer, clinic=clinic_a, brief="", anchor_key="qa:1")
    FollowupTask.objects.filter(pk=task.pk).update(assignee=front_desk_a, due_at=later_today())
    task.refresh_from_db()
    return task


def task_state(task):
    task.refresh_from_db()
    return (task.status, task.outcome, task.note, task.assignee_id, task.completed_by_id, task.completed_at)


@pytest.mark.parametrize("note, error", [
    ("x\x00y", "Null characters are not allowed."),
    ("长" * 2001, "Ensure this value has at most 2000 characters (it has 2001)."),
])
def test_a_bad_outcome_note_on_the_page_is_refused_at_its_field(client, front_desk_a, task_a, note, error):
    before = task_state(task_a)
    response = login(client, front_desk_a).post(reverse("followups:complete", args=[task_a.id]),
                                                {"outcome": "reached", "note": note})
    assert response.status_code == 422
    assert response.context["outcome_form"].errors["note"] == [error]
    assert task_state(task_a) == before


@pytest.mark.parametrize("htmx", [False, True])
def test_an_unknown_outcome_posted_to_a_closed_task_says_the_task_is_closed(client, front_desk_a, task_a, htmx):
    task_a.status = TaskStatus.CANCELLED
    task_a.save(update_fields=["status"])
    before = task_state(task_a)
    response = login(client, front_desk_a).post(reverse("followups:complete", args=[task_a.id]),
                                                {"outcome": "bogus"}, **({"HTTP_HX_REQUEST": "true"} if htmx else {}))
    assert response.status_code == 422
    assert "This task is Cancelled and can no longer be changed." in response.content.decode()
    assert task_state(task_a) == before


def test_a_note_of_spaces_is_stored_empty_and_control_characters_are_kept_as_typed(client, front_desk_a, task_a):
    response = login(client, front_desk_a).post(reverse("followups:complete", args=[task_a.id]),
                                                {"outcome": "reached", "note": "   "})
    assert response.status_code == 302
    task_a.refresh_from_db()
    assert (task_a.status, task_a.note) == ("done", "")


def api_post(client, url, body, *, token, key):
    return client.post(url, data=json.dumps(body), content_type="application/json",
                       headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})


@pytest.mark.parametrize("note", ["x\x00y", "长" * 2001])
def test_a_bad_outcome_note_in_the_api_is_a_422_on_the_note_and_changes_nothing(client, front_desk_a, task_a, note):
    before = task_state(task_a)
    token = token_create(username=front_desk_a.user.username)
    response = api_post(client, f"/api/followups/tasks/{task_a.id}/complete", {"outcome": "reached", "note": note},
                        token=token, key="k-note")
    assert response.status_code == 422
    assert "note" in json.dumps(response.json())
    assert task_state(task_a) == before


def test_a_task_of_an_erased_patient_cannot_be_completed(client, chain, director_a, front_desk_a, task_a):
    from smileloop.customers.privacy import customer_erase

    customer_erase(scope=scope_for_staff(director_a), customer=task_a.customer, actor=director_a,
                   reason="患者要求注销")
    before = task_state(task_a)
    assert before[0] == "cancelled"
    token = token_create(username=front_desk_a.user.username)
    response = api_post(client, f"/api/followups/tasks/{task_a.id}/complete", {"outcome": "reached"},
                        token=token, key="k-erased")
    assert response.status_code == 409
    assert login(client, front_desk_a).post(reverse("followups:complete", args=[task_a.id]),
                                            {"outcome": "reached"}).status_code == 422
    assert task_state(task_a) == before


def test_a_task_of_a_merged_record_moves_to_the_survivor_and_is_worked_there(client, chain, clinic_a, director_a,
                                                                            front_desk_a, task_a):
    from smileloop.customers.services import customer_merge

    survivor = CustomerFactory(chain=chain, name="李娜", home_clinic=clinic_a, mobile="+8613800138003")
    customer_merge(scope=scope_for_staff(director_a), survivor=survivor, merged=task_a.customer, actor=director_a)
    task_a.refresh_from_db()
    assert task_a.customer_id == survivor.id and task_a.status == "open"
    response = login(client, front_desk_a).post(reverse("followups:complete", args=[task_a.id]),
                                                {"outcome": "reached", "note": "已联系"})
    assert response.status_code == 302
    task_a.refresh_from_db()
    assert (task_a.status, task_a.customer_id) == ("done", survivor.id)


def test_a_directors_reassignment_of_a_closed_or_other_clinics_task_changes_nothing(client, chain, clinic_a, clinic_b,
                                                                                    director_a, front_desk_a,
                                                                                    front_desk_b, task_a):
    other = complaint_task_open(customer=CustomerFactory(chain=chain, home_clinic=clinic_b), clinic=clinic_b,
                                brief="", anchor_key="qa:b")
    client = login(client, director_a)
    before_other = task_state(other)
    assert client.post(reverse("followups:reassign", args=[other.id]),
                       {"assignee": front_desk_b.id}).status_code == 404
    assert task_state(other) == before_other
    # staff of another clinic, an unknown id and a departed colleague are refused at the field
    gone = StaffFactory(chain=chain, role=Role.FRONT_DESK, clinics=[clinic_a], is_active=False)
    before = task_state(task_a)
    for value in (front_desk_b.id, 999999, "abc", gone.id, ""):
        response = client.post(reverse("followups:reassign", args=[task_a.id]), {"assignee": value})
        assert response.status_code == 422, value
        assert response.context["reassign_form"].errors["assignee"], value
    assert task_state(task_a) == before
    # a completed task is not reassigned
    login(client, front_desk_a).post(reverse("followups:complete", args=[task_a.id]), {"outcome": "reached"})
    colleague = StaffFactory(chain=chain, role=Role.FRONT_DESK, clinics=[clinic_a])
    before = task_state(task_a)
    response = login(client, director_a).post(reverse("followups:reassign", args=[task_a.id]),
                                              {"assignee": colleague.id})
    assert response.status_code == 422
    assert task_state(task_a) == before


def test_roles_without_the_board_cannot_reassign_and_nothing_changes(client, chain, clinic_a, front_desk_a, marketing,
                                                                     task_a):
    colleague = StaffFactory(chain=chain, role=Role.FRONT_DESK, clinics=[clinic_a])
    before = task_state(task_a)
    for staff in (front_desk_a, marketing, colleague):
        assert login(client, staff).post(reverse("followups:reassign", args=[task_a.id]),
                                         {"assignee": colleague.id}).status_code == 403
    # marketing sees the chain's tasks but works only its own
    token = token_create(username=marketing.user.username)
    assert api_post(client, f"/api/followups/tasks/{task_a.id}/complete", {"outcome": "reached"}, token=token,
                    key="k-mkt").status_code == 403
    assert task_state(task_a) == before


# --- due dates at the Shanghai day's edges, bad dates -------------------------------------------------------

def test_the_due_window_reads_naive_bounds_as_shanghai_time_at_the_days_edges(client, chain, clinic_a, front_desk_a,
                                                                              task_a):
    day = dt.date(2026, 11, 20)
    edge = {
        "before": dt.datetime(2026, 11, 19, 23, 59, 59, tzinfo=TZ),
        "first": dt.datetime(2026, 11, 20, 0, 0, tzinfo=TZ),
        "last": dt.datetime(2026, 11, 20, 23, 59, 59, tzinfo=TZ),
        "next": dt.datetime(2026, 11, 21, 0, 0, tzinfo=TZ),
    }
    ids = {}
    for i, (name, due) in enumerate(edge.items()):
        t = complaint_task_open(customer=task_a.customer, clinic=clinic_a, brief="", anchor_key=f"edge:{i}")
        FollowupTask.objects.filter(pk=t.pk).update(assignee=front_desk_a, due_at=due)
        ids[t.pk] = name
    token = token_create(username=front_desk_a.user.username)
    for params in ({"due_from": f"{day}T00:00:00", "due_to": f"{day + dt.timedelta(days=1)}T00:00:00"},
                   {"due_from": f"{day}T00:00:00+08:00", "due_to": f"{day}T16:00:00Z"}):
        body = client.get("/api/followups/tasks", params, headers={"Authorization": f"Bearer {token}"}).json()
        assert sorted(ids[i["id"]] for i in body["items"] if i["id"] in ids) == ["first", "last"], params


@pytest.mark.parametrize("value", ["2026-02-30T00:00:00", "tomorrow", "1764547200", "2026-11-20T25:00:00",
                                   "0001-01-01T00:00:00"])
def test_a_bad_due_date_is_a_422_naming_the_parameter(client, front_desk_a, task_a, value):
    token = token_create(username=front_desk_a.user.username)
    response = client.get("/api/followups/tasks", {"due_from": value}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 422
    assert "due_from" in json.dumps(response.json())


@pytest.mark.parametrize("reason, error", [
    ("回访\x00", "Null characters are not allowed."),
    ("长" * 201, "Ensure this value has at most 200 characters (it has 201)."),
])
@pytest.mark.parametrize("htmx", [False, True])
def test_a_bad_typed_call_reason_is_refused_and_reveals_nothing(client, front_desk_a, task_a, reason, error, htmx):
    from smileloop.core.models import AuditEvent

    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    response = login(client, front_desk_a).post(reverse("followups:call", args=[task_a.id]), {"reason": reason},
                                                **headers)
    assert response.status_code == 422
    html = response.content.decode()
    assert error in html
    assert "13800138002" not in html and "tel:" not in html
    assert not AuditEvent.objects.filter(action="phone.reveal").exists()


def test_control_characters_are_refused_in_chinese_and_line_breaks_in_a_script_or_description_are_kept(
        client, chain_admin, playbooks):
    pb = playbooks["postop_extraction"]
    client = login(client, chain_admin)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    before = snapshot(pb)
    response = client.post(reverse("followups:playbook_edit", args=[pb.id]), {
        "name": "拔牙\t回访", "description": "说明\x07", "goal": "none", "category": "extraction"})
    assert response.status_code == 422
    assert response.context["form"].errors["name"] == ["不能包含控制字符（不可见字符）"]
    assert response.context["form"].errors["description"] == ["不能包含控制字符（不可见字符）"]
    assert snapshot(pb) == before
    assert client.post(reverse("followups:playbook_edit", args=[pb.id]), {
        "name": "拔牙回访", "description": "第一行\r\n第二行\t缩进", "goal": "none",
        "category": "extraction"}).status_code == 302
    assert client.post(reverse("followups:step_add", args=[pb.id]),
                       step_post(None, script="{name}您好，\r\n\t请问伤口还疼吗？")).status_code == 302
    pb.refresh_from_db()
    assert pb.description == "第一行\r\n第二行\t缩进"
    assert pb.steps.filter(is_active=True).order_by("seq").last().script == "{name}您好，\r\n\t请问伤口还疼吗？"


def test_the_inbox_day_is_the_shanghai_day_from_midnight_to_midnight(chain, clinic_a, front_desk_a, task_a):
    from smileloop.followups.selectors import inbox_list

    day = dt.date(2026, 11, 20)
    dues = {
        "yesterday_last": dt.datetime(2026, 11, 19, 23, 59, 59, tzinfo=TZ),  # 15:59:59 UTC: still due, and overdue
        "today_first": dt.datetime(2026, 11, 20, 0, 0, tzinfo=TZ),  # 16:00 UTC the day before
        "today_last": dt.datetime(2026, 11, 20, 23, 59, 59, tzinfo=TZ),
        "tomorrow_first": dt.datetime(2026, 11, 21, 0, 0, tzinfo=TZ),  # still 20 November in UTC
    }
    names = {}
    for i, (name, due) in enumerate(dues.items()):
        t = complaint_task_open(customer=task_a.customer, clinic=clinic_a, brief="", anchor_key=f"day:{i}")
        FollowupTask.objects.filter(pk=t.pk).update(assignee=front_desk_a, due_at=due,
                                                    created_at=dt.datetime(2026, 11, 1, tzinfo=TZ))
        names[t.pk] = name
    FollowupTask.objects.filter(pk=task_a.pk).update(status=TaskStatus.CANCELLED)
    tasks = inbox_list(scope_for_staff(front_desk_a), today=day)
    assert [names[t.pk] for t in tasks] == ["yesterday_last", "today_first", "today_last"]
    assert [t.is_overdue for t in tasks][0] is True
