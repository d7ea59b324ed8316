import datetime as dt

import pytest
from django.utils import timezone

from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.enums import TaskStatus, Trigger
from smileloop.followups.models import FollowupTask
from smileloop.followups.services import complaint_task_open

pytestmark = pytest.mark.django_db


def test_complaint_task_goes_to_the_clinic_director_due_within_24_hours(chain, clinic_a, director_a, front_desk_a):
    # given
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    before = timezone.now()
    # when
    task = complaint_task_open(customer=customer, clinic=clinic_a, brief="score 3: waited an hour",
                               anchor_key="survey:1", context={"score": 3})
    # then
    assert task.assignee_id == director_a.id
    assert task.playbook.trigger == Trigger.COMPLAINT
    assert task.status == TaskStatus.OPEN
    assert before + dt.timedelta(hours=23) < task.due_at <= timezone.now() + dt.timedelta(hours=24)
    assert task.sla_due_at <= timezone.now() + dt.timedelta(hours=24)
    assert (task.brief, task.note) == ("score 3: waited an hour", "")
    assert task.context == {"score": 3}


def test_complaint_task_open_is_idempotent_on_the_anchor_key(chain, clinic_a, director_a):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    first = complaint_task_open(customer=customer, clinic=clinic_a, brief="a", anchor_key="survey:7")
    again = complaint_task_open(customer=customer, clinic=clinic_a, brief="b", anchor_key="survey:7")
    assert again.pk == first.pk
    assert FollowupTask.objects.count() == 1
    assert FollowupTask.objects.get().brief == "a"


def test_complaint_without_a_director_falls_back_to_the_chain_admin(chain, clinic_a, chain_admin):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    StaffFactory(chain=chain, role=Role.CLINIC_DIRECTOR, clinics=[clinic_a], is_active=False)
    task = complaint_task_open(customer=customer, clinic=clinic_a, brief="", anchor_key="survey:2")
    assert task.assignee_id == chain_admin.id
