"""Follow-ups and erased people (customers.privacy.customer_erase): nobody is tasked, called or written about once
their personal information is erased, even when the erasure lands while the daily run or an outcome is being written.
The races run on PostgreSQL only (threads, each with its own connection); SQLite serialises writers."""

import datetime as dt
import threading

import pytest
from django.db import transaction

from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.errors import Conflict
from smileloop.core.testing import paused, postgresql_only, race
from smileloop.customers.models import Customer, Interaction
from smileloop.customers.privacy import customer_erase
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.enums import Outcome, TaskStatus
from smileloop.followups.models import FollowupTask
from smileloop.followups.services import followup_complete, followup_reassign
from smileloop.followups.services import generate as generate_module
from smileloop.followups.services import tasks as tasks_module
from smileloop.followups.services.generate import followups_generate
from smileloop.followups.tests.factories import local


@pytest.mark.django_db(transaction=True)
@postgresql_only
def test_a_member_erased_while_the_daily_run_writes_is_left_with_no_task_nor_their_birthday(
        chain, clinic_a, director_a, playbooks, consultant_a, today, monkeypatch):
    """The run read the member before the erasure committed: its task (a birthday call, the birthday copied into
    the script) was invisible to the erasure's hook, and stayed open on the consultant's board after both committed."""
    from smileloop.membership.tests.factories import MembershipFactory, TierFactory

    birthday = today + dt.timedelta(days=30)
    member = CustomerFactory(chain=chain, name="周杰", home_clinic=clinic_a, consultant=consultant_a,
                             birthday=birthday.replace(year=1985))
    MembershipFactory(customer=member, tier=TierFactory(plan__chain=chain))
    reached = threading.Event()
    monkeypatch.setattr(generate_module, "_insert_select",  # paused after the first call that wrote
                        paused(generate_module._insert_select, reached, when=bool))

    def erase():
        return customer_erase(scope=scope_for_staff(director_a), customer=Customer.objects.get(pk=member.pk),
                              actor=director_a, reason="本人申请", forfeit=True)

    out = race(lambda: followups_generate(chain=chain, today=today, catchup_days=0), erase, reached)
    assert "first_error" not in out and "then_error" not in out, out
    member.refresh_from_db()
    assert member.erased_at is not None
    assert not FollowupTask.objects.filter(customer=member, status=TaskStatus.OPEN).exists()
    assert not FollowupTask.objects.filter(customer=member, context__has_key="birthday").exists()


@pytest.mark.django_db(transaction=True)
@postgresql_only
def test_an_outcome_recorded_while_the_patient_is_erased_is_not_a_500_and_leaves_no_note(
        chain, clinic_a, director_a, front_desk_a, playbooks, consultant_a, today, monkeypatch):
    """Completing locked the task and then wrote the timeline (which waits for the patient's row) while the erasure
    held the patient's row and waited for the task: a deadlock, a 500 for one of the two."""
    lead = CustomerFactory(chain=chain, name="李娜", home_clinic=clinic_a, consultant=consultant_a,
                           first_touch_at=local(dt.date.today() - dt.timedelta(days=1), 15))
    followups_generate(chain=chain, catchup_days=0)
    task = FollowupTask.objects.get(customer=lead)
    reached = threading.Event()
    monkeypatch.setattr(tasks_module, "task_done_text",  # paused after the first call that wrote
                        paused(tasks_module.task_done_text, reached, when=bool))

    def complete():
        return followup_complete(task=task, outcome=Outcome.REACHED, note="李娜说下周来洁牙", actor=consultant_a)

    def erase():
        return customer_erase(scope=scope_for_staff(director_a), customer=Customer.objects.get(pk=lead.pk),
                              actor=director_a, reason="本人申请")

    out = race(complete, erase, reached)
    assert "then_error" not in out, out  # the erasure always goes through
    if "first_error" in out:  # the erasure came first: the outcome is refused with its reason, never a deadlock
        assert getattr(out["first_error"], "code", None) in ("erased", "task_closed"), out
    task.refresh_from_db()
    assert task.note == ""
    assert not Interaction.objects.filter(customer=lead, text__contains="洁牙").exists()


@pytest.mark.django_db(transaction=True)
@postgresql_only
def test_a_task_reassigned_while_the_patient_is_erased_is_not_a_deadlock(
        chain, clinic_a, director_a, front_desk_a, playbooks, consultant_a, monkeypatch):
    """Reassigning locked the task, then wrote the patient's timeline, while the erasure held the patient and waited
    for the task: a deadlock."""
    lead = CustomerFactory(chain=chain, name="李娜", home_clinic=clinic_a, consultant=consultant_a,
                           first_touch_at=local(dt.date.today() - dt.timedelta(days=1), 15))
    followups_generate(chain=chain, catchup_days=0)
    task = FollowupTask.objects.get(customer=lead)
    reached = threading.Event()
    monkeypatch.setattr(tasks_module, "audit_record",  # paused after the first call that wrote
                        paused(tasks_module.audit_record, reached, when=bool))

    def reassign():
        with transaction.atomic():
            return followup_reassign(scope=scope_for_staff(director_a), task=task, assignee=front_desk_a)

    def erase():
        return customer_erase(scope=scope_for_staff(director_a), customer=Customer.objects.get(pk=lead.pk),
                              actor=director_a, reason="本人申请")

    out = race(reassign, erase, reached)
    assert "first_error" not in out and "then_error" not in out, out
    task.refresh_from_db()
    assert (task.status, task.assignee_id) == (TaskStatus.CANCELLED, front_desk_a.pk)


@pytest.mark.django_db
def test_an_open_task_left_on_an_erased_record_takes_no_outcome_nor_note(chain, clinic_a, consultant_a, playbooks):
    """An open task of an erased person (one a run made while the erasure committed, before the fix) is refused,
    and nothing is written: not the note, not the timeline, not a stage."""
    lead = CustomerFactory(chain=chain, name="李娜", home_clinic=clinic_a, consultant=consultant_a,
                           first_touch_at=local(dt.date.today() - dt.timedelta(days=1), 15))
    followups_generate(chain=chain, catchup_days=0)
    task = FollowupTask.objects.get(customer=lead)
    Customer.objects.filter(pk=lead.pk).update(erased_at=task.created_at, name="已注销客户")
    entries = Interaction.objects.filter(customer=lead).count()
    with pytest.raises(Conflict) as refused:
        followup_complete(task=task, outcome=Outcome.COMPLAINT, note="李娜投诉了医生", actor=consultant_a)
    assert refused.value.code == "erased"
    task.refresh_from_db()
    assert (task.status, task.note) == (TaskStatus.OPEN, "")
    assert Interaction.objects.filter(customer=lead).count() == entries
    assert not FollowupTask.objects.filter(customer=lead).exclude(pk=task.pk).exists()  # no complaint task either
