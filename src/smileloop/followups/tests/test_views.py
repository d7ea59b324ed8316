import datetime as dt

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone, translation

from smileloop.core.models import AuditEvent
from smileloop.customers.models import Customer, Interaction
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.enums import TaskStatus
from smileloop.followups.models import FollowupTask, PlaybookStep
from smileloop.followups.services import complaint_task_open
from smileloop.followups.tests.factories import later_today

pytestmark = pytest.mark.django_db


def login(client, staff, lang: str = "en"):
    client.force_login(staff.user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    return client


def open_task(customer, clinic, key, *, assignee=None, due=None):
    task = complaint_task_open(customer=customer, clinic=clinic, brief="", anchor_key=key)
    FollowupTask.objects.filter(pk=task.pk).update(
        assignee=assignee or task.assignee, due_at=due or later_today(),
        created_at=timezone.now() - dt.timedelta(days=3))
    task.refresh_from_db()
    return task


@pytest.fixture
def tasks_ab(chain, clinic_a, clinic_b, front_desk_a, front_desk_b, playbooks):
    """Tasks of front desk A (one overdue, one due today, one next week), one of front desk B."""
    a1 = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a, mobile="+8613800138001")
    a2 = CustomerFactory(chain=chain, name="李娜", home_clinic=clinic_a)
    b1 = CustomerFactory(chain=chain, name="赵敏", home_clinic=clinic_b)
    now = timezone.now()
    return {
        "overdue": open_task(a1, clinic_a, "t:1", assignee=front_desk_a, due=now - dt.timedelta(days=2)),
        "today": open_task(a2, clinic_a, "t:2", assignee=front_desk_a, due=later_today()),
        "later": open_task(a2, clinic_a, "t:3", assignee=front_desk_a, due=now + dt.timedelta(days=7)),
        "b": open_task(b1, clinic_b, "t:4", assignee=front_desk_b, due=now),
    }


# --- inbox -------------------------------------------------------------------------------------------------

def test_inbox_lists_my_tasks_overdue_first_with_the_script_filled(client, front_desk_a, tasks_ab):
    response = login(client, front_desk_a).get(reverse("followups:inbox"))
    assert response.status_code == 200
    html = response.content.decode()
    assert html.index(f'id="task-{tasks_ab["overdue"].id}"') < html.index(f'id="task-{tasks_ab["today"].id}"')
    assert f'id="task-{tasks_ab["later"].id}"' not in html
    assert "王芳反馈了不满意：请在 24 小时内亲自致电了解情况并给出解决方案。" in html
    assert "fu-overdue" in html
    assert "138****8001" in html and "13800138001" not in html  # masked until the call


def test_a_front_desk_of_clinic_a_never_sees_clinic_b_tasks(client, front_desk_a, tasks_ab):
    client = login(client, front_desk_a)
    assert "赵敏" not in client.get(reverse("followups:inbox")).content.decode()
    assert client.get(reverse("followups:task", args=[tasks_ab["b"].id])).status_code == 404
    response = client.post(reverse("followups:complete", args=[tasks_ab["b"].id]), {"outcome": "reached"})
    assert response.status_code == 404
    tasks_ab["b"].refresh_from_db()
    assert tasks_ab["b"].status == TaskStatus.OPEN


def test_inbox_runs_a_fixed_number_of_queries(client, chain, clinic_a, front_desk_a, tasks_ab,
                                               django_assert_num_queries):
    client = login(client, front_desk_a)
    client.get(reverse("followups:inbox"))  # warm up (session, sites)
    with django_assert_num_queries(7) as few:
        client.get(reverse("followups:inbox"))
    for i in range(10):
        open_task(CustomerFactory(chain=chain, home_clinic=clinic_a), clinic_a, f"more:{i}", assignee=front_desk_a)
    with django_assert_num_queries(len(few.captured_queries)):
        response = client.get(reverse("followups:inbox"))
    assert response.content.decode().count('data-testid="task"') == 12


def test_recording_an_outcome_with_htmx_returns_the_updated_row(client, front_desk_a, tasks_ab):
    task = tasks_ab["today"]
    response = login(client, front_desk_a).post(reverse("followups:complete", args=[task.id]),
                                                 {"outcome": "booked", "note": "约了周六"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="task-{task.id}"' in html and "Booked" in html and "约了周六" in html
    task.refresh_from_db()
    assert (task.status, task.outcome, task.completed_by_id) == ("done", "booked", front_desk_a.id)
    assert Interaction.objects.filter(data__followup_task_id=task.id).count() == 1


def test_a_complaint_without_a_note_is_refused_next_to_the_note_in_chinese(client, front_desk_a, tasks_ab):
    task = tasks_ab["today"]
    response = login(client, front_desk_a, "zh-hans").post(reverse("followups:complete", args=[task.id]),
                                                            {"outcome": "complaint", "note": ""}, HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert "记录投诉时必须填写：患者投诉的是什么？" in response.content.decode()
    task.refresh_from_db()
    assert task.status == TaskStatus.OPEN
    assert not Interaction.objects.filter(data__followup_task_id=task.id).exists()


def test_the_refused_note_is_tied_to_its_field_and_announced(client, front_desk_a, tasks_ab):
    task = tasks_ab["today"]
    response = login(client, front_desk_a, "zh-hans").post(reverse("followups:complete", args=[task.id]),
                                                            {"outcome": "complaint", "note": ""}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    note = html[html.index(f'id="note-{task.id}"'):]
    note = note[:note.index(">")]
    assert f'aria-invalid="true" aria-describedby="note-{task.id}-error"' in note
    error = html[html.index(f'<div id="note-{task.id}-error" role="alert">'):]
    assert "记录投诉时必须填写：患者投诉的是什么？" in error[:error.index("</div>")]


def test_completing_a_closed_task_shows_a_clear_error(client, front_desk_a, tasks_ab):
    task = tasks_ab["today"]
    FollowupTask.objects.filter(pk=task.pk).update(status=TaskStatus.CLOSED, closed_reason="goal:appointment_booked")
    response = login(client, front_desk_a).post(reverse("followups:complete", args=[task.id]),
                                                 {"outcome": "reached"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert "This task is Closed (goal reached) and can no longer be changed." in response.content.decode()
    assert not Interaction.objects.filter(data__followup_task_id=task.id).exists()


def test_the_task_page_says_in_words_what_triggered_it_and_why_it_closed(client, front_desk_a, tasks_ab):
    task = tasks_ab["today"]
    FollowupTask.objects.filter(pk=task.pk).update(status=TaskStatus.CLOSED, closed_reason="goal:rebooked",
                                                   anchor_key="procedure:77", context={"procedure": "种植体植入",
                                                                                       "tooth": "36"})
    with translation.override("zh-hans"):
        html = login(client, front_desk_a, "zh-hans").get(reverse("followups:task", args=[task.id])).content.decode()
        trigger = str(task.playbook.get_trigger_display())
    facts = html[html.index('data-testid="task-facts"'):html.index("</dl>")]
    assert f'<dd data-testid="anchor">{trigger} · 种植体植入，36 号牙 · ' in facts
    assert "procedure:77" not in html
    assert "目标达成：" in facts and "goal:" not in facts
    FollowupTask.objects.filter(pk=task.pk).update(status=TaskStatus.CANCELLED, closed_reason="merged duplicate")
    with translation.override("zh-hans"):
        html = client.get(reverse("followups:task", args=[task.id])).content.decode()
    assert "合并重复" in html and "merged duplicate" not in html
    FollowupTask.objects.filter(pk=task.pk).update(closed_reason="lapsed: not worked in time")
    with translation.override("zh-hans"):
        html = client.get(reverse("followups:task", args=[task.id])).content.decode()
    assert "已失效：未及时跟进" in html


@pytest.mark.parametrize(("key", "context", "words"), [
    ("recall:2026-11-20", {"procedure": "洁牙"}, "洁牙 due"),
    ("recall:2026-11-20", {}, "a check-up due"),
    ("plan:9:2026-11-20", {"procedure": "正畸"}, "unfinished treatment plan “正畸”"),
    ("visit:2026-11-20", {}, "a completed visit"),
    ("appt:77", {"procedure": "补牙"}, "a missed appointment · 补牙"),
    ("dormant:2025-11-20", {}, "the last visit"),
    ("lead:5", {}, "became a lead"),
    ("survey:3~m9", {}, "a satisfaction survey answer"),
    ("something:new", {}, "something:new"),
])
def test_the_task_page_names_each_kind_of_trigger(client, front_desk_a, tasks_ab, key, context, words):
    task = tasks_ab["today"]
    FollowupTask.objects.filter(pk=task.pk).update(anchor_key=key, context=context)
    html = login(client, front_desk_a).get(reverse("followups:task", args=[task.id])).content.decode()
    anchor = html[html.index('data-testid="anchor">'):]
    assert anchor[:anchor.index("</dd>")].split(" · ", 1)[1].startswith(words)


def test_an_escalated_complaint_links_to_the_task_it_came_from(client, front_desk_a, tasks_ab):
    first, task = tasks_ab["overdue"], tasks_ab["today"]
    FollowupTask.objects.filter(pk=task.pk).update(anchor_key=f"task:{first.id}")
    html = login(client, front_desk_a).get(reverse("followups:task", args=[task.id])).content.decode()
    url = reverse("followups:task", args=[first.id])
    assert f'<a href="{url}">escalated from task #{first.id}</a>' in html


def test_call_reveals_the_number_as_a_tel_link_and_audits_it(client, front_desk_a, tasks_ab):
    task = tasks_ab["overdue"]
    response = login(client, front_desk_a).post(reverse("followups:call", args=[task.id]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert 'href="tel:+8613800138001"' in response.content.decode()
    event = AuditEvent.objects.get(action="phone.reveal")
    assert event.object_id == str(task.customer_id)
    assert event.reason == f"follow-up task #{task.id} ({task.playbook.name})"


def test_a_call_from_the_chinese_workspace_is_audited_with_a_chinese_reason(client, front_desk_a, tasks_ab):
    # the audit log read "follow-up task #12 (术后回访)" to a director on the Chinese page
    task = tasks_ab["overdue"]
    login(client, front_desk_a, "zh-hans").post(reverse("followups:call", args=[task.id]), HTTP_HX_REQUEST="true")
    assert AuditEvent.objects.get(action="phone.reveal").reason == f"回访任务 #{task.id}（{task.playbook.name}）"


def test_a_closed_task_reveals_no_number_and_says_why(client, front_desk_a, tasks_ab):
    # given: the task was completed (its row offers no call button any more)
    task = tasks_ab["overdue"]
    FollowupTask.objects.filter(pk=task.pk).update(status=TaskStatus.DONE, outcome="reached")
    # when: the reveal is posted anyway (a stale page, a replayed request)
    response = login(client, front_desk_a).post(reverse("followups:call", args=[task.id]), HTTP_HX_REQUEST="true")
    # then: no number, no audit row naming a task that no longer needs a call
    assert response.status_code == 422
    html = response.content.decode()
    assert "This task is Done and can no longer be changed." in html and "tel:" not in html
    assert not AuditEvent.objects.exists()


def test_a_child_without_a_phone_is_called_through_a_parent_in_scope(client, chain, clinic_a, clinic_b, front_desk_a,
                                                                     tasks_ab):
    # given the patient of a task is a child with no phone; the mother (head) is a patient of clinic B, the
    # father of clinic A
    from smileloop.customers.services import household_member_add

    child = tasks_ab["today"].customer
    Customer.objects.filter(pk=child.pk).update(mobile=None, mobile_tail="")
    mother = CustomerFactory(chain=chain, name="周敏", home_clinic=clinic_b, mobile="+8613900139009")
    father = CustomerFactory(chain=chain, name="李强", home_clinic=clinic_a, mobile="+8613700137007")
    household_member_add(head=mother, member=child, relation="child")
    household_member_add(head=mother, member=father, relation="spouse")
    task = tasks_ab["today"]
    # when the inbox is shown and the call is made
    inbox = login(client, front_desk_a).get(reverse("followups:inbox")).text
    row = inbox[inbox.index(f'id="task-{task.id}"'):]
    row = row[:row.index("</li>")]
    response = client.post(reverse("followups:call", args=[task.id]), HTTP_HX_REQUEST="true")
    # then the father (in the clinic's scope) is offered masked, not the mother of clinic B, and the call reveals his
    # number, audited on him and naming the child
    assert "no phone of their own; via 李强" in row and "137****7007" in row
    assert "周敏" not in row and "139****9009" not in row and "13700137007" not in row
    assert 'href="tel:+8613700137007"' in response.text and "via 李强" in response.text
    event = AuditEvent.objects.get(action="phone.reveal")
    assert event.object_id == str(father.id) and child.name in event.reason and f"#{task.id}" in event.reason


def test_the_script_of_a_child_called_through_a_parent_greets_the_parent(client, chain, clinic_a, front_desk_a,
                                                                         tasks_ab):
    # given a child of nine without a phone, a father with one, and a step whose script greets the patient
    from smileloop.customers.services import household_member_add

    task = tasks_ab["today"]
    child = task.customer
    Customer.objects.filter(pk=child.pk).update(mobile=None, mobile_tail="",
                                                birthday=timezone.localdate() - dt.timedelta(days=9 * 365))
    father = CustomerFactory(chain=chain, name="李强", home_clinic=clinic_a, mobile="+8613700137007")
    household_member_add(head=father, member=child, relation="child")
    PlaybookStep.objects.filter(pk=task.step_id).update(script="{name}您好，{name}的复查该约了。")
    # when the inbox and the task page are shown
    inbox = login(client, front_desk_a).get(reverse("followups:inbox")).text
    page = client.get(reverse("followups:task", args=[task.id])).text
    # then the greeting addresses the parent on the line, the rest still names the child
    for html in (inbox, page):
        assert f"{child.name}家长您好，{child.name}的复查该约了。" in html
    # and once the child has a number of their own, the script greets the child again
    Customer.objects.filter(pk=child.pk).update(mobile="+8613600136006", mobile_tail="6006")
    assert f"{child.name}您好，{child.name}的复查该约了。" in client.get(reverse("followups:inbox")).text


def test_a_child_without_a_phone_or_a_relative_in_scope_shows_no_number(client, chain, clinic_b, front_desk_a,
                                                                        tasks_ab):
    from smileloop.customers.services import household_member_add

    child = tasks_ab["today"].customer
    Customer.objects.filter(pk=child.pk).update(mobile=None, mobile_tail="")
    mother = CustomerFactory(chain=chain, name="周敏", home_clinic=clinic_b, mobile="+8613900139009")
    household_member_add(head=mother, member=child, relation="child")
    inbox = login(client, front_desk_a).get(reverse("followups:inbox")).text
    row = inbox[inbox.index(f'id="task-{tasks_ab["today"].id}"'):]
    row = row[:row.index("</li>")]
    assert 'data-testid="guardian"' not in row and "9009" not in row and "周敏" not in row
    # and the row says how to make the task callable
    link = reverse("customers:detail", args=[child.id]) + "#family"
    assert f'data-testid="no-contact" href="{link}"' in row


def test_a_role_without_phone_access_cannot_reveal(client, chain, clinic_a, tasks_ab):
    from smileloop.clinics.enums import Role
    from smileloop.clinics.tests.factories import StaffFactory

    assistant = StaffFactory(chain=chain, role=Role.ASSISTANT, clinics=[clinic_a])
    FollowupTask.objects.filter(pk=tasks_ab["today"].pk).update(assignee=assistant)
    response = login(client, assistant).post(reverse("followups:call", args=[tasks_ab["today"].id]))
    assert response.status_code == 403
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("lang, words", [("en", ["My tasks today", "Copy script", "Record outcome"]),
                                         ("zh-hans", ["今天的任务", "复制话术", "记录结果"])])
def test_inbox_renders_in_english_and_chinese(client, front_desk_a, tasks_ab, lang, words):
    html = login(client, front_desk_a, lang).get(reverse("followups:inbox")).content.decode()
    for word in words:
        assert word in html


# --- a colleague's task --------------------------------------------------------------------------------------

@pytest.fixture
def colleague_a(chain, clinic_a):
    """A second front desk of clinic A: sees front desk A's tasks (they are of the clinic), may not work them."""
    from smileloop.clinics.enums import Role
    from smileloop.clinics.tests.factories import StaffFactory

    return StaffFactory(chain=chain, role=Role.FRONT_DESK, name="前台小孙", clinics=[clinic_a],
                        user__username="frontdesk_a2")


def test_a_colleagues_task_page_offers_no_call_and_no_outcome_and_says_whose_it_is(client, front_desk_a, colleague_a,
                                                                                 director_a, tasks_ab):
    task = tasks_ab["overdue"]
    complete, call = reverse("followups:complete", args=[task.id]), reverse("followups:call", args=[task.id])
    # when the colleague opens front desk A's task
    html = login(client, colleague_a).get(reverse("followups:task", args=[task.id])).content.decode()
    # then the script is there to read, but no button they could not use
    assert "王芳反馈了不满意" in html
    assert complete not in html and call not in html and "Record outcome" not in html
    assert "Assigned to 前台小王: only they, a clinic director or a chain admin can record its outcome." in html
    # while the assignee and the director get both
    for staff in (front_desk_a, director_a):
        html = login(client, staff).get(reverse("followups:task", args=[task.id])).content.decode()
        assert complete in html and call in html and 'data-testid="not-yours"' not in html


def test_a_colleague_recording_an_outcome_is_refused_in_words_and_nothing_changes(client, colleague_a, tasks_ab):
    task = tasks_ab["today"]
    client = login(client, colleague_a, "zh-hans")
    url = reverse("followups:complete", args=[task.id])
    # when posted from a stale page or by hand, as a page and as htmx
    page = client.post(url, {"outcome": "reached", "note": "我替她打了"})
    fragment = client.post(url, {"outcome": "reached", "note": "我替她打了"}, HTTP_HX_REQUEST="true")
    # then a 403 page, and a row htmx swaps in (422), each saying why
    words = "此任务已分配给前台小王：只有本人、院长或总部管理员可以记录结果。如需接手，请让院长将任务改派给您。"
    assert page.status_code == 403 and words in page.content.decode()
    assert fragment.status_code == 422 and words in fragment.content.decode()
    task.refresh_from_db()
    assert (task.status, task.note, task.completed_by_id) == (TaskStatus.OPEN, "", None)
    assert not Interaction.objects.filter(data__followup_task_id=task.id).exists()


def test_a_colleague_cannot_reveal_the_number_in_the_name_of_anothers_task(client, colleague_a, tasks_ab):
    task = tasks_ab["overdue"]
    response = login(client, colleague_a).post(reverse("followups:call", args=[task.id]), HTTP_HX_REQUEST="true")
    assert response.status_code == 403
    assert "13800138001" not in response.content.decode()
    assert not AuditEvent.objects.exists()


def test_a_director_records_the_outcome_of_a_front_desks_task_as_done_by_the_director(client, director_a,
                                                                                     front_desk_a, tasks_ab):
    task = tasks_ab["today"]
    response = login(client, director_a).post(reverse("followups:complete", args=[task.id]),
                                              {"outcome": "reached", "note": "院长回访"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert director_a.name in response.content.decode()
    task.refresh_from_db()
    assert (task.status, task.completed_by_id, task.assignee_id) == (TaskStatus.DONE, director_a.id, front_desk_a.id)
    assert Interaction.objects.get(data__followup_task_id=task.id).author_id == director_a.id


def test_an_unassigned_task_offers_its_outcome_to_a_colleague_who_then_takes_it_over(client, colleague_a, tasks_ab):
    task = tasks_ab["today"]
    FollowupTask.objects.filter(pk=task.pk).update(assignee=None)
    client = login(client, colleague_a)
    html = client.get(reverse("followups:task", args=[task.id])).content.decode()
    assert reverse("followups:complete", args=[task.id]) in html
    response = client.post(reverse("followups:complete", args=[task.id]), {"outcome": "no_answer"})
    assert response.status_code == 302
    task.refresh_from_db()
    assert (task.status, task.assignee_id, task.completed_by_id) == (TaskStatus.DONE, colleague_a.id, colleague_a.id)
    assert AuditEvent.objects.filter(action="followup.take_over", object_id=str(task.id)).exists()


@pytest.mark.parametrize("htmx", [False, True])
def test_a_task_whose_assignee_moved_to_another_clinic_is_taken_over_by_a_colleague_of_the_clinic(
        client, clinic_b, front_desk_a, colleague_a, tasks_ab, htmx):
    # given front desk A's task, and front desk A now works at clinic B only
    task = tasks_ab["today"]
    front_desk_a.clinics.set([clinic_b])
    client = login(client, colleague_a, "zh-hans")
    complete = reverse("followups:complete", args=[task.id])
    # then the colleague's page offers its outcome and says recording it makes the task theirs
    html = client.get(reverse("followups:task", args=[task.id])).content.decode()
    assert complete in html and 'data-testid="not-yours"' not in html
    assert "本门诊目前没有在职员工负责此任务：记录结果后，任务将转由您负责。" in html
    # when they record it (a page, or htmx)
    response = client.post(complete, {"outcome": "no_answer"}, **({"HTTP_HX_REQUEST": "true"} if htmx else {}))
    # then they took it over, audited, and the patient's 360 timeline says so
    assert response.status_code == (200 if htmx else 302)
    task.refresh_from_db()
    assert (task.status, task.assignee_id, task.completed_by_id) == (TaskStatus.DONE, colleague_a.id, colleague_a.id)
    event = AuditEvent.objects.get(action="followup.take_over", object_id=str(task.id))
    assert (event.actor_id, event.detail["from"], event.detail["why"]) == (colleague_a.user_id, front_desk_a.id,
                                                                           "moved")
    html = client.get(reverse("customers:detail", args=[task.customer_id])).content.decode()
    assert "回访任务“投诉处理”由前台小孙接手" in html


@pytest.mark.parametrize("htmx", [False, True])
def test_an_assignee_still_at_the_clinic_keeps_their_task_and_a_colleague_is_refused(client, clinic_a, clinic_b,
                                                                                    front_desk_a, colleague_a,
                                                                                    tasks_ab, htmx):
    # given front desk A now works at clinics A and B
    task = tasks_ab["today"]
    front_desk_a.clinics.set([clinic_a, clinic_b])
    client = login(client, colleague_a)
    html = client.get(reverse("followups:task", args=[task.id])).content.decode()
    assert 'data-testid="not-yours"' in html and 'data-testid="take-over"' not in html
    # when the colleague posts an outcome anyway
    response = client.post(reverse("followups:complete", args=[task.id]), {"outcome": "reached"},
                           **({"HTTP_HX_REQUEST": "true"} if htmx else {}))
    # then refused as before, and nothing changed
    assert response.status_code == (422 if htmx else 403)
    task.refresh_from_db()
    assert (task.status, task.assignee_id, task.completed_by_id) == (TaskStatus.OPEN, front_desk_a.id, None)
    assert not AuditEvent.objects.exists()
    assert not Interaction.objects.filter(data__followup_task_id=task.id).exists()


# --- board -------------------------------------------------------------------------------------------------

def test_board_counts_completion_and_overdue_per_staff_in_the_directors_clinics(client, director_a, front_desk_a,
                                                                                 tasks_ab):
    from smileloop.followups.services import followup_complete

    followup_complete(task=tasks_ab["today"], outcome="reached", note="", actor=front_desk_a)
    FollowupTask.objects.filter(pk=tasks_ab["overdue"].pk).update(sla_due_at=timezone.now() - dt.timedelta(hours=1))
    response = login(client, director_a).get(reverse("followups:board"), {"days": 7})
    assert response.status_code == 200
    board = response.context["board"]
    [row] = board.by_staff
    assert (row.label, row.total, row.done, row.overdue, row.rate) == (front_desk_a.name, 2, 1, 1, 50)
    assert "赵敏" not in response.content.decode()
    assert board.totals.total == 2


def test_board_needs_the_board_permission(client, front_desk_a, tasks_ab):
    assert login(client, front_desk_a).get(reverse("followups:board")).status_code == 403


@pytest.mark.parametrize("lang, word", [("en", "Follow-up team board"), ("zh-hans", "回访团队看板")])
def test_board_renders_in_english_and_chinese(client, director_a, tasks_ab, lang, word):
    html = login(client, director_a, lang).get(reverse("followups:board"), {"days": 30}).content.decode()
    assert word in html
    assert 'id="fu-board-data"' in html
    assert "<script>" not in html  # data as json_script only, no inline code


def test_director_reassigns_a_task_from_its_page(client, director_a, chain, clinic_a, tasks_ab):
    from smileloop.clinics.enums import Role
    from smileloop.clinics.tests.factories import StaffFactory

    colleague = StaffFactory(chain=chain, role=Role.FRONT_DESK, clinics=[clinic_a])
    task = tasks_ab["today"]
    response = login(client, director_a, "zh-hans").post(reverse("followups:reassign", args=[task.id]),
                                                         {"assignee": colleague.id})
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.assignee_id == colleague.id
    # the patient's 360 timeline says who moved it, from whom to whom
    html = client.get(reverse("customers:detail", args=[task.customer_id])).content.decode()
    assert f"回访任务“投诉处理”由前台小王改派给{colleague.name}" in html
    assert AuditEvent.objects.filter(action="followup.reassign", object_id=str(task.id)).count() == 1


def test_reassigning_to_staff_of_another_clinic_is_refused_in_words_and_changes_nothing(client, director_a, chain,
                                                                                       clinic_b, tasks_ab):
    from smileloop.clinics.enums import Role
    from smileloop.clinics.tests.factories import StaffFactory

    stranger = StaffFactory(chain=chain, role=Role.FRONT_DESK, clinics=[clinic_b])
    task = tasks_ab["today"]
    before = task.assignee_id
    response = login(client, director_a, "zh-hans").post(reverse("followups:reassign", args=[task.id]),
                                                         {"assignee": stranger.id})
    assert response.status_code == 422
    assert "请从列表中选择员工" in response.content.decode()
    task.refresh_from_db()
    assert task.assignee_id == before


# --- playbook editor ----------------------------------------------------------------------------------------

def test_playbook_editor_needs_the_manage_permission(client, director_a, playbooks):
    assert login(client, director_a).get(reverse("followups:playbooks")).status_code == 403


@pytest.mark.parametrize("lang, word", [("en", "Follow-up playbooks"), ("zh-hans", "回访方案")])
def test_playbook_pages_render_in_english_and_chinese(client, chain_admin, playbooks, lang, word):
    client = login(client, chain_admin, lang)
    assert word in client.get(reverse("followups:playbooks")).content.decode()
    html = client.get(reverse("followups:playbook_edit", args=[playbooks["recall"].id])).content.decode()
    assert "洁牙/检查复购提醒" in html
    # a label and its value are joined the reader's way: "Trigger: Recall" but "触发条件：复购提醒", never "触发条件: "
    separator = "：" if lang == "zh-hans" else ": "
    assert f'{"触发条件" if lang == "zh-hans" else "Trigger"}{separator}' in html
    assert "触发条件: " not in html and "话术变量: " not in html


def test_editor_shows_unknown_script_variables_next_to_the_field(client, chain_admin, playbooks):
    step = playbooks["recall"].steps.get(seq=1)
    response = login(client, chain_admin).post(
        reverse("followups:step_edit", args=[playbooks["recall"].id, step.id]),
        {f"s{step.id}-delay_days": "0", f"s{step.id}-assignee_rule": "front_desk", f"s{step.id}-channel": "call",
         f"s{step.id}-sla_hours": "24", f"s{step.id}-script": "{name}您好 {coupon}"})
    assert response.status_code == 422
    assert "unknown variables: {coupon}" in response.content.decode()
    step.refresh_from_db()
    assert "{coupon}" not in step.script


def test_editor_says_which_script_variables_are_unknown_in_chinese(client, chain_admin, playbooks):
    step = playbooks["recall"].steps.get(seq=1)
    response = login(client, chain_admin, "zh-hans").post(
        reverse("followups:step_edit", args=[playbooks["recall"].id, step.id]),
        {f"s{step.id}-delay_days": "0", f"s{step.id}-assignee_rule": "front_desk", f"s{step.id}-channel": "call",
         f"s{step.id}-sla_hours": "24", f"s{step.id}-script": "{name}您好 {coupon}"})
    assert response.status_code == 422
    html = response.content.decode()
    assert "未知变量：{coupon}（可用：{name}、{doctor}" in html and "unknown variables" not in html


def test_editor_saves_trigger_parameters_and_steps(client, chain_admin, playbooks):
    pb = playbooks["recall"]
    client = login(client, chain_admin)
    response = client.post(reverse("followups:playbook_edit", args=[pb.id]), {
        "name": "复查提醒", "goal": "appointment_booked", "is_active": "on", "months": "12",
        "categories": ["cleaning"]})
    assert response.status_code == 302
    pb.refresh_from_db()
    assert (pb.name, pb.trigger_params) == ("复查提醒", {"months": 12, "categories": ["cleaning"]})
    response = client.post(reverse("followups:step_add", args=[pb.id]), {
        "new-delay_days": "30", "new-assignee_rule": "consultant", "new-channel": "sms", "new-sla_hours": "48",
        "new-script": "{name}您好，{days_since}天没来了", "new-lapse_days": "10"})
    assert response.status_code == 302
    assert PlaybookStep.objects.filter(playbook=pb, is_active=True).count() == 3
    added = PlaybookStep.objects.get(playbook=pb, is_active=True, seq=3)
    assert added.lapse_days == 10
    # the editor shows it, and a bad value is named at the field and changes nothing
    assert f'name="s{added.id}-lapse_days" value="10"' in client.get(
        reverse("followups:playbook_edit", args=[pb.id])).text
    response = client.post(reverse("followups:step_edit", args=[pb.id, added.id]), {
        f"s{added.id}-delay_days": "30", f"s{added.id}-assignee_rule": "consultant", f"s{added.id}-channel": "sms",
        f"s{added.id}-sla_hours": "48", f"s{added.id}-script": "{name}", f"s{added.id}-lapse_days": "0"})
    assert response.status_code == 422
    assert response.context["steps"][-1][1].errors["lapse_days"] == ["must be between 1 and 365"]
    added.refresh_from_db()
    assert (added.lapse_days, added.script) == (10, "{name}您好，{days_since}天没来了")


def test_editor_rejects_bad_trigger_parameters_per_field(client, chain_admin, playbooks):
    pb = playbooks["dormant"]
    response = login(client, chain_admin).post(reverse("followups:playbook_edit", args=[pb.id]), {
        "name": "x", "goal": "arrival", "months_without_visit": "0"})
    assert response.status_code == 422
    assert response.context["form"].errors["months_without_visit"] == ["must be between 1 and 60"]


def test_deactivating_a_playbook(client, chain_admin, playbooks):
    pb = playbooks["no_show"]
    login(client, chain_admin).post(reverse("followups:playbook_toggle", args=[pb.id]))
    pb.refresh_from_db()
    assert pb.is_active is False


def test_a_double_click_on_deactivate_leaves_the_playbook_deactivated(client, chain_admin, playbooks):
    # given: the list's button for an active playbook says which state it asks for
    pb = playbooks["no_show"]
    login(client, chain_admin)
    page = client.get(reverse("followups:playbooks")).content.decode()
    assert f'action="{reverse("followups:playbook_toggle", args=[pb.id])}"' in page
    assert 'name="active" value="0"' in page
    # when: the form is sent twice (a double click)
    for _ in range(2):
        response = client.post(reverse("followups:playbook_toggle", args=[pb.id]), {"active": "0"})
        assert response.status_code == 302
    # then: still deactivated, and both answers say so
    pb.refresh_from_db()
    assert pb.is_active is False
    shown = [str(m) for m in client.get(reverse("followups:playbooks")).context["messages"]]
    assert shown == ["Playbook deactivated.", "Playbook deactivated."]


def test_a_playbook_toggle_returns_to_a_page_of_this_site_only(client, chain_admin, playbooks):
    pb = playbooks["no_show"]
    login(client, chain_admin)
    inside = client.post(reverse("followups:playbook_toggle", args=[pb.id]), {"next": "/followups/?x=1"})
    assert inside.status_code == 302 and inside["Location"] == "/followups/?x=1"
    for forged in ("https://evil.example/", "//evil.example/", "not a url"):
        response = client.post(reverse("followups:playbook_toggle", args=[pb.id]), {"next": forged})
        assert response.status_code == 302 and response["Location"] == reverse("followups:playbooks")


# --- the 360 section ---------------------------------------------------------------------------------------

def test_a_task_opened_today_shows_in_the_inbox_even_if_due_tomorrow(client, chain, clinic_a, front_desk_a, tasks_ab):
    task = complaint_task_open(customer=CustomerFactory(chain=chain, home_clinic=clinic_a), clinic=clinic_a, brief="",
                               anchor_key="new:1")
    FollowupTask.objects.filter(pk=task.pk).update(assignee=front_desk_a)
    html = login(client, front_desk_a).get(reverse("followups:inbox")).content.decode()
    assert f'id="task-{task.id}"' in html
    assert f'id="task-{tasks_ab["later"].id}"' not in html


def test_customer_page_shows_the_patients_tasks(client, front_desk_a, tasks_ab):
    task = tasks_ab["later"]
    html = login(client, front_desk_a).get(reverse("customers:detail", args=[task.customer_id])).content.decode()
    assert 'data-testid="followups"' in html
    assert reverse("followups:task", args=[task.id]) in html


def test_the_360_section_lists_open_tasks_by_due_date_and_finished_ones_newest_first(
        django_assert_num_queries, chain, clinic_a, clinic_b, front_desk_a, tasks_ab):
    from smileloop.clinics.selectors import scope_for_staff
    from smileloop.followups.selectors import tasks_for_customer

    customer = tasks_ab["today"].customer
    now = timezone.now()
    first = open_task(customer, clinic_a, "t:5", assignee=front_desk_a, due=now + dt.timedelta(days=1))
    old_done = open_task(customer, clinic_a, "t:6", assignee=front_desk_a)
    new_done = open_task(customer, clinic_a, "t:7", assignee=front_desk_a)
    FollowupTask.objects.filter(pk=old_done.pk).update(status=TaskStatus.DONE, updated_at=now - dt.timedelta(days=2))
    FollowupTask.objects.filter(pk=new_done.pk).update(status=TaskStatus.CLOSED, updated_at=now - dt.timedelta(days=1))
    other_clinic = open_task(customer, clinic_b, "t:8")  # not theirs: another clinic, assigned to someone else
    scope = scope_for_staff(front_desk_a)

    section = tasks_for_customer(scope, customer)
    assert [t.id for t in section["open"]] == [tasks_ab["today"].id, first.id, tasks_ab["later"].id]
    assert [t.id for t in section["recent"]] == [new_done.id, old_done.id]
    assert other_clinic.id not in {t.id for t in section["open"] + section["recent"]}
    assert section["open"][0].customer.name == customer.name  # related rows come joined
    assert all(t.script_text for t in section["open"])  # the call script is filled for open tasks
    assert len(tasks_for_customer(scope, customer, limit=1)["open"]) == 1

    nobody = CustomerFactory(chain=chain, home_clinic=clinic_a)
    with django_assert_num_queries(1):  # a patient without tasks: one join-free query
        assert tasks_for_customer(scope, nobody) == {"open": [], "recent": []}


def test_the_360_section_says_when_an_open_tasks_assignee_left_or_moved(client, chain, clinic_a, clinic_b,
                                                                       director_a, front_desk_a, chain_admin):
    from smileloop.clinics.enums import Role
    from smileloop.clinics.tests.factories import StaffFactory

    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    gone = StaffFactory(chain=chain, role=Role.ASSISTANT, clinics=[clinic_a], is_active=False)
    moved = StaffFactory(chain=chain, role=Role.ASSISTANT, clinics=[clinic_b])
    tasks = [open_task(customer, clinic_a, f"u:{i}", assignee=who)
             for i, who in enumerate([front_desk_a, gone, moved, chain_admin])]
    html = login(client, director_a).get(reverse("customers:detail", args=[customer.id])).content.decode()
    section = html[html.index('data-testid="followups"'):]
    rows = {task.id: section[section.index(reverse("followups:task", args=[task.id])):] for task in tasks}
    marks = [row[:row.index("</li>")].count('data-testid="unheld"') for row in rows.values()]
    assert marks == [0, 1, 1, 0]
    assert "has left" in rows[tasks[1].id][:rows[tasks[1].id].index("</li>")]
    assert "now at another clinic" in rows[tasks[2].id][:rows[tasks[2].id].index("</li>")]


def test_a_segment_an_active_playbook_is_triggered_by_is_not_deleted_until_the_playbook_lets_go(client, chain,
                                                                                                chain_admin):
    from smileloop.followups.enums import Goal, Trigger
    from smileloop.followups.models import Playbook
    from smileloop.segments.models import Segment
    from smileloop.segments.tests.factories import SegmentFactory

    # given a saved segment that triggers an active playbook
    segment = SegmentFactory(chain=chain, name="静安新村",
                             rule={"all": [{"field": "community", "op": "eq", "value": "静安新村"}]})
    playbook = Playbook.objects.create(chain=chain, code="seg", name="小区回访", trigger=Trigger.SEGMENT,
                                       trigger_params={"segment_id": segment.id}, goal=Goal.NONE)
    client = login(client, chain_admin, "zh-hans")
    # when it is deleted, then it is not, and the page says what uses it
    response = client.post(reverse("segments:delete", args=[segment.id]), follow=True)
    assert "分群“静安新村”未删除：回访方案“小区回访”正在使用它" in response.content.decode()
    assert Segment.objects.get(pk=segment.pk).is_active
    # when the playbook is deactivated, the segment can go
    playbook.is_active = False
    playbook.save(update_fields=["is_active"])
    client.post(reverse("segments:delete", args=[segment.id]))
    assert not Segment.objects.get(pk=segment.pk).is_active


def test_a_playbook_of_the_chains_own_is_created_inactive_with_its_triggers_parameters(client, chain, chain_admin):
    from smileloop.followups.models import Playbook

    client = login(client, chain_admin, "zh-hans")
    # the list offers it; choosing a trigger shows that trigger's parameters
    assert reverse("followups:playbook_new") in client.get(reverse("followups:playbooks")).content.decode()
    page = client.get(reverse("followups:playbook_new"), {"trigger": "recall"}).content.decode()
    assert 'name="months"' in page and 'name="categories"' in page and 'name="days_before"' not in page
    # when it is saved
    response = client.post(reverse("followups:playbook_new"), {
        "trigger": "recall", "name": "种植复查提醒", "goal": "none", "months": "12", "categories": ["implant"]})
    # then it exists, inactive, with its parameters, and opens in the editor
    playbook = Playbook.objects.get(name="种植复查提醒")
    assert response.status_code == 302
    assert response["Location"] == reverse("followups:playbook_edit", args=[playbook.id])
    assert (playbook.chain_id, playbook.trigger, playbook.is_active) == (chain.id, "recall", False)
    assert playbook.trigger_params == {"months": 12, "categories": ["implant"]}
    assert not playbook.is_builtin and playbook.code.startswith("custom-")


def test_a_new_playbook_with_bad_input_or_a_trigger_of_its_own_kind_is_refused_and_nothing_is_created(
        client, chain, chain_admin, director_a):
    from smileloop.followups.models import Playbook

    before = Playbook.objects.count()
    client = login(client, chain_admin, "zh-hans")
    no_name = client.post(reverse("followups:playbook_new"), {"trigger": "recall", "name": "", "goal": "none",
                                                              "months": "-3"})
    assert no_name.status_code == 422
    complaint = client.post(reverse("followups:playbook_new"), {"trigger": "complaint", "name": "x", "goal": "none"})
    assert complaint.status_code == 422 and "请选择列表中的一个触发条件" in complaint.content.decode()
    assert Playbook.objects.count() == before
    # and a role without the playbook permission cannot open the page
    assert login(client, director_a).get(reverse("followups:playbook_new")).status_code == 403


def test_the_new_playbook_form_submitted_twice_makes_one_playbook_and_a_bad_key_is_refused_with_a_message(
        client, chain, chain_admin):
    import re

    from smileloop.followups.models import Playbook

    client = login(client, chain_admin, "zh-hans")
    page = client.get(reverse("followups:playbook_new"), {"trigger": "recall"}).content.decode()
    key = re.search(r'name="key" value="([0-9a-f]+)"', page).group(1)
    body = {"trigger": "recall", "name": "洁牙半年提醒", "goal": "none", "months": "6", "categories": ["cleaning"],
            "key": key}
    # when the same form is sent twice (a double click; the first answer lost)
    first = client.post(reverse("followups:playbook_new"), body)
    second = client.post(reverse("followups:playbook_new"), body)
    # then one playbook, and both answers open it
    playbook = Playbook.objects.get(name="洁牙半年提醒")
    assert first["Location"] == second["Location"] == reverse("followups:playbook_edit", args=[playbook.id])
    assert playbook.code == f"custom-{key}"
    # the same key for another trigger, or a key no page makes: refused, said so, nothing created
    before = Playbook.objects.count()
    other = client.post(reverse("followups:playbook_new"), {**body, "trigger": "birthday_next_month", "name": "生日"})
    forged = client.post(reverse("followups:playbook_new"), {**body, "name": "另一个", "key": "x' OR 1=1"})
    assert other.status_code == forged.status_code == 422
    assert "此表单已用于另一个触发条件的回访方案" in other.content.decode()
    assert "此表单的标识无效" in forged.content.decode()
    assert Playbook.objects.count() == before


def test_a_new_chain_installs_the_built_in_playbooks_from_the_empty_list(client, chain, chain_admin):
    # given: a chain set up today, before any daily run, so its playbook list is empty
    from smileloop.followups.defaults import DEFAULT_PLAYBOOKS
    from smileloop.followups.models import Playbook

    login(client, chain_admin)
    page = client.get(reverse("followups:playbooks")).content.decode()
    assert 'data-testid="playbooks-install"' in page
    # when
    response = client.post(reverse("followups:playbooks_install"))
    # then: every built-in one, active, once however often it is pressed; the button is gone
    assert response.status_code == 302 and response["Location"] == reverse("followups:playbooks")
    assert Playbook.objects.filter(chain=chain, is_builtin=True, is_active=True).count() == len(DEFAULT_PLAYBOOKS)
    client.post(reverse("followups:playbooks_install"))
    assert Playbook.objects.filter(chain=chain).count() == len(DEFAULT_PLAYBOOKS)
    assert 'data-testid="playbooks-install"' not in client.get(reverse("followups:playbooks")).content.decode()


def test_installing_the_built_in_playbooks_needs_the_manage_permission(client, chain, director_a):
    from smileloop.followups.models import Playbook

    login(client, director_a)
    assert client.post(reverse("followups:playbooks_install")).status_code == 403
    assert not Playbook.objects.filter(chain=chain).exists()


def test_a_playbook_toggle_asking_for_no_known_state_changes_nothing(client, chain_admin, playbooks):
    # given: an active playbook
    pb = playbooks["no_show"]
    login(client, chain_admin)
    # when: a hand-made post asks for a state that is neither "0" nor "1"
    for garbage in ("a\x00b", "yes", "2", "１"):
        response = client.post(reverse("followups:playbook_toggle", args=[pb.id]), {"active": garbage})
        # then: refused, and the playbook is still active (a garbage value is no "toggle")
        assert response.status_code == 400 and b"switched on (1) or off (0)" in response.content
        pb.refresh_from_db()
        assert pb.is_active is True
