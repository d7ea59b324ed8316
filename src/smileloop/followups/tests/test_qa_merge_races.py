"""A follow-up task completed or reassigned while another desk merges its patient's record away (PostgreSQL).

The page read the task (and its patient id) before the merge committed; the merge moves the task to the survivor.
The outcome locks the stale patient id (it waits for the merge), then reads the task afresh under the task's
lock: its timeline entry and its stage move are the survivor's, never the tombstone's (regression tests)."""

import datetime as dt

import pytest

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.core.errors import DomainError
from smileloop.core.testing import postgresql_only
from smileloop.customers.enums import Stage
from smileloop.customers.models import Customer, Interaction
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.customers.tests.test_qa_merge_across_apps_postgres import merge_while
from smileloop.followups.enums import Outcome
from smileloop.followups.models import FollowupTask
from smileloop.followups.services import followup_complete, followup_reassign
from smileloop.followups.services.generate import followups_generate
from smileloop.followups.tests.factories import local

pytestmark = [postgresql_only, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def lead_task(chain, clinic_a, playbooks, consultant_a, today):
    lead = CustomerFactory(chain=chain, home_clinic=clinic_a, consultant=consultant_a, name="王芳",
                           first_touch_at=local(today - dt.timedelta(days=1)))
    followups_generate(chain=chain, today=today)
    return FollowupTask.objects.get(customer=lead, playbook=playbooks["lead_never_came"])


@pytest.fixture
def survivor(chain, clinic_a):
    return CustomerFactory(chain=chain, home_clinic=clinic_a, name="王芳", stage=Stage.LEAD)


def _nothing_on_the_tombstone(merged_id: int, since: int):
    assert not Interaction.objects.filter(customer_id=merged_id, pk__gt=since).exists()
    assert Customer.objects.get(pk=merged_id).stage == Stage.LEAD  # no stage move on the tombstone


def test_an_outcome_recorded_while_the_patient_is_merged_is_never_left_on_the_tombstone(lead_task, survivor,
                                                                                        consultant_a, chain_admin):
    merged = lead_task.customer
    since = Interaction.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    outcome = merge_while(survivor, merged, chain_admin, lambda stale: followup_complete(
        task=FollowupTask.objects.get(pk=lead_task.pk), outcome=Outcome.REACHED, note="下周再联系",
        actor=consultant_a))
    _nothing_on_the_tombstone(merged.pk, since)
    if not isinstance(outcome, DomainError):
        assert outcome.customer_id == survivor.pk
        assert Interaction.objects.filter(customer=survivor, data__followup_task_id=lead_task.pk).exists()
        assert Customer.objects.get(pk=survivor.pk).stage == Stage.CONTACTED


def test_a_task_reassigned_while_the_patient_is_merged_is_never_noted_on_the_tombstone(lead_task, survivor, chain,
                                                                                       clinic_a, director_a,
                                                                                       chain_admin):
    merged = lead_task.customer
    colleague = StaffFactory(chain=chain, role=Role.FRONT_DESK, clinics=[clinic_a])
    since = Interaction.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    outcome = merge_while(survivor, merged, chain_admin, lambda stale: followup_reassign(
        scope=scope_for_staff(director_a), task=FollowupTask.objects.get(pk=lead_task.pk), assignee=colleague))
    _nothing_on_the_tombstone(merged.pk, since)
    if not isinstance(outcome, DomainError):
        assert Interaction.objects.filter(customer=survivor, data__followup_task_id=lead_task.pk).exists()
