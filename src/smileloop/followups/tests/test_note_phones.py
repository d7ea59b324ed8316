"""A follow-up's outcome note (and a complaint's brief, which may be one) is free text staff type: a number in it ("家长改号 139…") is masked on the task page to
a reader whose role may not see phones, as the patient's phone is, and shown in full to one that may."""

import pytest
from django.urls import reverse

from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.models import FollowupTask
from smileloop.followups.services import complaint_task_open, followup_complete

pytestmark = pytest.mark.django_db


def test_a_number_in_the_outcome_note_is_masked_for_a_doctor_and_shown_to_the_front_desk(
        client, chain, clinic_a, front_desk_a, doctor_a, playbooks):
    # given a complaint whose brief quotes a relative's number, which the front desk completed with a parent's new
    # number in the note
    customer = CustomerFactory(chain=chain, name="王小明", home_clinic=clinic_a)
    task = complaint_task_open(customer=customer, clinic=clinic_a, brief="请回电女儿 13800138000",
                               anchor_key="t:1")
    FollowupTask.objects.filter(pk=task.pk).update(assignee=front_desk_a)
    task.refresh_from_db()
    followup_complete(task=task, outcome="reached", note="家长改号 139 1111 2222，20230105 复诊", actor=front_desk_a)
    url = reverse("followups:task", args=[task.id])

    # when each reads the task
    client.force_login(doctor_a.user)
    doctor_page = client.get(url).content.decode()
    client.force_login(front_desk_a.user)
    desk_page = client.get(url).content.decode()

    # then
    assert "— 家长改号 139****2222，20230105 复诊" in doctor_page and "139 1111 2222" not in doctor_page
    assert "— 家长改号 139 1111 2222，20230105 复诊" in desk_page
    assert "请回电女儿 138****8000" in doctor_page and "13800138000" not in doctor_page
    assert "请回电女儿 13800138000" in desk_page
    task.refresh_from_db()
    assert task.note == "家长改号 139 1111 2222，20230105 复诊"
