"""Writes on single tasks: open a complaint, complete a task, reassign (departed staff, or by a director), and the rule
of who may work a task (`task_may_work`), which the pages, the API and `followup_complete` share."""

import datetime as dt

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Subquery
from django.utils import timezone
from django.utils.translation import gettext_noop

from smileloop.clinics.enums import CHAIN_ROLES, Perm
from smileloop.clinics.models import Clinic, Staff
from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.audit import audit_record
from smileloop.core.errors import Conflict, FieldError, NotFound, PermissionDenied, ValidationFailed
from smileloop.core.scoping import Scope
from smileloop.customers.enums import InteractionKind, Stage
from smileloop.customers.models import Customer
from smileloop.customers.services import (
    ERASED_REFUSED,
    customer_stage_advance,
    customers_lock,
    interaction_add,
)
from smileloop.customers.timeline import timeline_format
from smileloop.followups.enums import AssigneeRule, ContactChannel, Outcome, TaskStatus, Trigger
from smileloop.followups.models import MERGED_DUPLICATE, FollowupTask, PlaybookStep
from smileloop.followups.selectors import task_queryset, tasks_unheld
from smileloop.followups.services.assign import StaffDirectory
from smileloop.followups.services.playbooks import complaint_playbook

# Stored in English, shown translated (customers.timeline; registered in apps.py).
TASK_OUTCOME = gettext_noop("follow-up task %(task)s: %(outcome)s")
TASK_DONE = gettext_noop("%(playbook)s: %(outcome)s")
TASK_DONE_NOTE = gettext_noop("%(playbook)s: %(outcome)s — %(note)s")
# Who holds a task, on the patient's timeline (the audit log has the same with ids): staff reading the 360 page see
# who took a call over or was given it, without the audit trail's permission.
TASK_TAKEN_OVER = gettext_noop('follow-up task "%(playbook)s" taken over by %(name)s')
TASK_REASSIGNED = gettext_noop('follow-up task "%(playbook)s" reassigned from %(from_name)s to %(to_name)s')
TASK_ASSIGNED = gettext_noop('follow-up task "%(playbook)s" assigned to %(to_name)s')  # it had no assignee


def task_done_text(*, playbook: str, outcome: str, note: str = "") -> str:
    """The timeline entry of a completed task: the playbook's name, the outcome's code (shown as its label) and
    the staff member's note."""
    return timeline_format(TASK_DONE_NOTE if note else TASK_DONE, playbook=playbook, outcome=outcome, note=note)

COMPLAINT_DUE = dt.timedelta(hours=24)
COMPLAINT_NOTE_REQUIRED = gettext_noop("is required for a complaint: what did the patient complain about?")
NOTE_LIMIT = 2000
CHANNEL_KIND = {
    ContactChannel.CALL: InteractionKind.CALL, ContactChannel.WECHAT: InteractionKind.CHAT,
    ContactChannel.WECOM: InteractionKind.CHAT, ContactChannel.SMS: InteractionKind.SMS,
    ContactChannel.VISIT: InteractionKind.VISIT,
}
# Outcomes that show the patient was contacted: they move a lead to "contacted" (a booked outcome alone never
# creates an appointment; the booking itself moves the stage further when the PMS records it).
CONTACT_OUTCOMES = {Outcome.REACHED, Outcome.BOOKED, Outcome.DECLINED, Outcome.COMPLAINT}
UNREACHED_OUTCOMES = {Outcome.NO_ANSWER, Outcome.WRONG_NUMBER}


# --- who works a task ------------------------------------------------------------------------------------------

TASK_NOT_YOURS = "task_not_yours"  # the PermissionDenied code of a colleague's task


def task_unheld_reason(task: FollowupTask) -> str | None:
    """Why nobody active in the task's clinic holds it, or None when someone does (the rule: selectors.tasks_unheld).
    Remembered on the task for its assignee and clinic: the pages and followup_complete ask more than once."""
    key = (task.assignee_id, task.clinic_id)
    known = getattr(task, "_unheld", None)
    if known is None or known[0] != key:
        known = task._unheld = (key, tasks_unheld([task])[0])
    return known[1]


def task_unheld(task: FollowupTask) -> bool:
    """Nobody active in the task's clinic holds it (`task_unheld_reason`): anyone who works tasks there may take it
    over."""
    return task_unheld_reason(task) is not None


def task_may_work(scope: Scope, task: FollowupTask) -> bool:
    """Whether the staff member may work the task (record its outcome, call the patient in its name). The one rule of
    the pages, the API and followup_complete:

    - its assignee (Perm.TASK_WORK: "work one's own follow-up tasks");
    - whoever may reassign it (Perm.TASK_BOARD: clinic directors in their clinics, chain admins): the completion is
      recorded as theirs (`completed_by`, the timeline's author) and the task stays its assignee's;
    - anyone with Perm.TASK_WORK when nobody active in its clinic holds it (`task_unheld`: unassigned, its assignee
      left or moved to another clinic): completing it takes it over.

    Not a colleague's task: a director reassigns it first. `task` is one the scope sees (the selectors' tasks are),
    its assignee loaded (they are): no query, but for another's task of a clinic held by clinic staff one (are they
    still at the task's clinic?)."""
    if not scope.can(Perm.TASK_WORK):
        return False
    if task.assignee_id == scope.staff_id or scope.can(Perm.TASK_BOARD):
        return True
    return task_unheld(task)


def task_work_check(scope: Scope, task: FollowupTask) -> None:
    """PermissionDenied unless `task_may_work`; a colleague's task with the code `task_not_yours`."""
    if not scope.can(Perm.TASK_WORK):
        raise PermissionDenied("Your role may not work follow-up tasks")
    if not task_may_work(scope, task):
        raise PermissionDenied("This task is assigned to another staff member: only its assignee, or a clinic director "
                               "or chain admin (permission task.board), may work it; ask a director to reassign it",
                               code=TASK_NOT_YOURS)


def _lock(tasks, task_id: int) -> bool:
    """Lock the task's row (False: `tasks` has no such task), to be read afterwards. Not in one query with its
    related rows: when another writer changed the row first, PostgreSQL re-reads only the locked table and an outer
    join's rows came back blank (an assignee None whose id is set), which crashed the loser of a race."""
    return bool(list(tasks.select_for_update(of=("self",)).filter(pk=task_id).values_list("pk", flat=True)))


def _login(*, user_id: int | None):
    return get_user_model().objects.filter(pk=user_id).first() if user_id else None


@transaction.atomic
def complaint_task_open(*, customer: Customer, clinic: Clinic | None, brief: str, anchor_key: str,
                        due_at: dt.datetime | None = None, context: dict | None = None) -> FollowupTask:
    """Open a complaint task for the clinic director (fallback: chain admin), due within 24 hours. `brief`: what
    the complaint is, kept on the task when it is completed (a stored sentence is shown translated).

    Idempotent on `anchor_key` (e.g. "survey:81"): the same key returns the task already opened, unchanged.
    The built-in complaint playbook is used even when deactivated: a complaint is never dropped.
    """
    anchor_key = (anchor_key or "").strip()
    if not anchor_key or len(anchor_key) > 64:
        raise ValidationFailed([FieldError("anchor_key", "is required (at most 64 characters)", anchor_key)])
    playbook = complaint_playbook(chain_id=customer.chain_id)
    existing = FollowupTask.objects.filter(customer=customer, playbook=playbook, anchor_key=anchor_key).first()
    if existing:
        return existing
    step = playbook.steps.filter(is_active=True).order_by("seq").first()
    if step is None:  # every step removed in the editor: bring a director step back rather than lose it
        step = PlaybookStep.objects.create(playbook=playbook, seq=1, assignee_rule=AssigneeRule.CLINIC_DIRECTOR,
                                           channel=ContactChannel.CALL, script="{name}", sla_hours=24)
    clinic_id = clinic.pk if clinic else customer.home_clinic_id
    now = timezone.now()
    directory = StaffDirectory.load(customer.chain_id)
    task = FollowupTask(
        chain_id=customer.chain_id, clinic_id=clinic_id, customer=customer, playbook=playbook, step=step,
        anchor_key=anchor_key, anchor_at=now,
        assignee_id=directory.resolve(step.assignee_rule, clinic_id=clinic_id, customer_id=customer.pk,
                                      consultant_id=customer.consultant_id),
        due_at=due_at or now + COMPLAINT_DUE, sla_due_at=now + dt.timedelta(hours=step.sla_hours),
        brief=(brief or "")[:NOTE_LIMIT], context=dict(context or {}), created_at=now, updated_at=now)
    try:
        with transaction.atomic():
            task.save(force_insert=True)
    except IntegrityError:  # opened concurrently with the same key
        return FollowupTask.objects.get(customer=customer, playbook=playbook, step=step, anchor_key=anchor_key)
    return task


@transaction.atomic
def followup_complete(*, task: FollowupTask, outcome: str, note: str = "", actor: Staff | None,
                      scope: Scope | None = None) -> FollowupTask:
    """Record the outcome, write it to the timeline, move the stage; a complaint opens a complaint task.

    Completing again with the same outcome returns the task unchanged (a double click, a retried request);
    another outcome, or a task closed by its goal or cancelled, is a Conflict and changes nothing.

    Who may: `task_may_work`, checked on the locked row against `scope` (the pages and the API pass the request's),
    else the actor's own; only a system write (no actor: the demo's) is not checked. A task outside the scope is
    NotFound, a colleague's task PermissionDenied (code `task_not_yours`); either changes nothing. Completing an
    open task nobody active held takes it over: the actor becomes its assignee (audit: followup.take_over).
    """
    if outcome not in Outcome.values:
        raise ValidationFailed([FieldError("outcome", f"must be one of {', '.join(Outcome.values)}", str(outcome))])
    note = (note or "").strip()
    if len(note) > NOTE_LIMIT:
        raise ValidationFailed([FieldError("note", f"must be at most {NOTE_LIMIT} characters", note[:50])])
    if scope is None and actor is not None:
        scope = scope_for_staff(actor)
    tasks = FollowupTask.objects if scope is None else task_queryset(scope)
    # The patient's row before the task's, the order an erasure takes them in (customers.privacy locks the person,
    # then its hook cancels their tasks): the other order deadlocked with it. The patient is read after the lock.
    customers_lock(task.customer_id)
    if not _lock(tasks, task.pk):
        raise NotFound("Task not found")
    task = (FollowupTask.objects.select_related("customer", "playbook", "step", "clinic", "assignee")
            .get(pk=task.pk))
    if scope is not None:
        task_work_check(scope, task)
    if task.status == TaskStatus.DONE:
        if task.outcome == outcome:
            return task
        raise Conflict(f"This task was already completed with the outcome {task.outcome}", code="task_completed",
                       field="outcome")
    if task.status != TaskStatus.OPEN:
        raise Conflict(f"This task is {task.status} and can no longer be completed"
                       + (f" ({task.closed_reason})" if task.closed_reason else ""), code="task_closed")
    if task.customer.erased_at is not None:  # nothing new is written about a person whose data was erased
        raise Conflict(ERASED_REFUSED, code="erased")
    if outcome == Outcome.COMPLAINT and not note:
        # The note becomes the director's complaint task's brief: without it that task says nothing to act on.
        raise ValidationFailed([FieldError("note", COMPLAINT_NOTE_REQUIRED, note)])
    now = timezone.now()
    fields = ["status", "outcome", "note", "completed_at", "completed_by", "updated_at"]
    unheld = task_unheld_reason(task) if actor is not None and task.assignee_id != actor.pk else None
    if unheld:
        _take_over(task=task, actor=actor, why=unheld, at=now)
        fields.append("assignee")
    task.status, task.outcome, task.note = TaskStatus.DONE, outcome, note
    task.completed_at, task.completed_by, task.updated_at = now, actor, now
    task.save(update_fields=fields)
    text = task_done_text(playbook=task.playbook.name, outcome=outcome, note=note)
    # An attempt that did not reach the patient is a note, not a call or chat: the timeline must not show a
    # contact that never happened (and customers.interaction_add moves a lead to "contacted" on a staff contact).
    kind = (InteractionKind.NOTE if outcome in UNREACHED_OUTCOMES
            else CHANNEL_KIND.get(task.step.channel, InteractionKind.NOTE))
    interaction_add(customer=task.customer, kind=kind,
                    text=text, author=actor, clinic=task.clinic, occurred_at=now,
                    data={"followup_task_id": task.pk, "playbook": task.playbook.code, "outcome": outcome,
                          "channel": task.step.channel})
    if outcome in CONTACT_OUTCOMES:
        customer_stage_advance(customer=task.customer, to=Stage.CONTACTED, cause=timeline_format(TASK_OUTCOME, task=task.pk, outcome=outcome),
                               at=now, actor=actor)
    if outcome == Outcome.COMPLAINT:
        complaint_task_open(customer=task.customer, clinic=task.clinic, brief=note, anchor_key=f"task:{task.pk}",
                            context={"source_task": task.pk})
    return task


def _take_over(*, task: FollowupTask, actor: Staff, why: str, at: dt.datetime) -> None:
    """`actor` becomes the assignee of a task nobody active in its clinic held (`why`: task_unheld_reason): audited
    (followup.take_over) and on the patient's timeline, in the caller's transaction. The caller saves the task."""
    audit_record(actor=_login(user_id=actor.user_id), action="followup.take_over", object_type="followup_task",
                 object_id=task.pk, detail={"from": task.assignee_id, "to": actor.pk, "via": "complete", "why": why},
                 clinic_id=task.clinic_id)
    interaction_add(customer=task.customer, kind=InteractionKind.SYSTEM, author=actor, clinic=task.clinic,
                    occurred_at=at, text=timeline_format(TASK_TAKEN_OVER, playbook=task.playbook.name, name=actor.name),
                    data={"followup_task_id": task.pk, "event": "take_over", "from": task.assignee_id, "to": actor.pk})
    task.assignee = actor


@transaction.atomic
def followups_reassign_for_departed(*, staff: Staff) -> int:
    """Move a departed (inactive) staff member's open tasks to the next assignee of each task's rule.

    Set-based: one UPDATE per assignee rule, the new assignee a SQL CASE over the chain's active staff."""
    if staff.is_active:
        raise ValidationFailed([FieldError("staff", "is still active: deactivate the staff member first",
                                           str(staff.pk))])
    return _reassign_by_rule(staff, FollowupTask.objects.filter(chain_id=staff.chain_id, assignee=staff,
                                                                 status=TaskStatus.OPEN))


@transaction.atomic
def followups_reassign_for_moved(*, staff: Staff) -> int:
    """Move an active staff member's open tasks of clinics they no longer work at (`task_unheld_reason` "moved":
    nobody there would see them) to the next assignee of each task's rule, among the chain's other staff. A
    chain-wide role holds tasks of every clinic: nothing moves."""
    if staff.role in CHAIN_ROLES:
        return 0
    return _reassign_by_rule(staff, FollowupTask.objects.filter(
        chain_id=staff.chain_id, assignee=staff, status=TaskStatus.OPEN, clinic__isnull=False).exclude(
        clinic_id__in=staff.clinics.values("pk")))


def _reassign_by_rule(staff: Staff, open_tasks) -> int:
    """Each of `open_tasks` (all `staff`'s) to the next assignee of its step's rule, `staff` excluded: one UPDATE
    per rule (and 5,000 tasks), the new assignee a SQL CASE over the chain's active staff."""
    directory = StaffDirectory.load(staff.chain_id, exclude={staff.pk})
    moved = 0
    rules = set(open_tasks.values_list("step__assignee_rule", flat=True).distinct())
    for rule in rules:
        # The customer's consultant is read through a subquery: an UPDATE cannot join.
        consultant = Subquery(Customer.objects.filter(pk=OuterRef("customer_id")).values("consultant_id")[:1])
        expr = directory.expression(rule, clinic="clinic_id", customer="customer_id", consultant=consultant,
                                    doctor="doctor_id")
        ids = list(open_tasks.filter(step__assignee_rule=rule).values_list("pk", flat=True))
        for i in range(0, len(ids), 5000):
            moved += FollowupTask.objects.filter(pk__in=ids[i:i + 5000]).update(assignee_id=expr,
                                                                                 updated_at=timezone.now())
    return moved


def followups_reassign_inactive(*, chain_id: int) -> int:
    """The daily safety net: open tasks still assigned to anyone deactivated, or to someone who moved to other
    clinics (the task's clinic no longer theirs), move on (staff are deactivated and moved in the clinics app, which
    cannot call up into this one)."""
    open_tasks = FollowupTask.objects.filter(chain_id=chain_id, status=TaskStatus.OPEN)
    gone = Staff.objects.filter(chain_id=chain_id, is_active=False, pk__in=open_tasks.values("assignee_id"))
    moved_away = open_tasks.filter(clinic__isnull=False, assignee__is_active=True).exclude(
        assignee__role__in=CHAIN_ROLES).exclude(
        Exists(Staff.clinics.through.objects.filter(staff_id=OuterRef("assignee_id"), clinic_id=OuterRef("clinic_id"))))
    movers = Staff.objects.filter(pk__in=moved_away.values("assignee_id"))
    return (sum(followups_reassign_for_departed(staff=staff) for staff in gone)
            + sum(followups_reassign_for_moved(staff=staff) for staff in movers))


@transaction.atomic
def followup_reassign(*, scope: Scope, task: FollowupTask, assignee: Staff) -> FollowupTask:
    """A director moves an open task of their clinics to an active staff member of the task's clinic; the move is
    audited (followup.reassign: from, to), so the task's history says who moved it, and written on the patient's
    timeline with the director as its author."""
    if not scope.can(Perm.TASK_BOARD):
        raise PermissionDenied("Your role may not reassign follow-up tasks")
    if task.chain_id != scope.chain_id or not scope.allows_clinic(task.clinic_id):
        raise NotFound("Task not found")
    customers_lock(task.customer_id)  # the patient's row first, as followup_complete (an erasure's order)
    _lock(FollowupTask.objects, task.pk)
    locked = FollowupTask.objects.select_related("assignee", "customer", "playbook", "clinic").get(pk=task.pk)
    if locked.status != TaskStatus.OPEN:
        raise Conflict(f"This task is {locked.status} and can no longer be reassigned", code="task_closed")
    ok = (assignee.chain_id == task.chain_id and assignee.is_active
          and (task.clinic_id is None or assignee.clinics.filter(pk=task.clinic_id).exists()))
    if not ok:
        raise ValidationFailed([FieldError("assignee", "must be an active staff member of the task's clinic",
                                           str(assignee.pk))])
    if locked.assignee_id == assignee.pk:
        task.assignee = assignee
        return task
    now = timezone.now()
    audit_record(actor=_login(user_id=scope.user_id), action="followup.reassign", object_type="followup_task",
                 object_id=task.pk, detail={"from": locked.assignee_id, "to": assignee.pk}, clinic_id=task.clinic_id)
    FollowupTask.objects.filter(pk=task.pk).update(assignee=assignee, updated_at=now)
    text = (timeline_format(TASK_REASSIGNED, playbook=locked.playbook.name, from_name=locked.assignee.name,
                            to_name=assignee.name) if locked.assignee_id
            else timeline_format(TASK_ASSIGNED, playbook=locked.playbook.name, to_name=assignee.name))
    interaction_add(customer=locked.customer, kind=InteractionKind.SYSTEM, text=text, clinic=locked.clinic,
                    author=Staff.objects.filter(pk=scope.staff_id).first(), occurred_at=now,
                    data={"followup_task_id": task.pk, "event": "reassign", "from": locked.assignee_id,
                          "to": assignee.pk})
    task.assignee = assignee
    return task


# Triggers whose anchor is the person (at most one open task of a step per patient), not one event of theirs (an
# operation, a no-show, a plan: two of them are two calls).
PERSON_TRIGGERS = (Trigger.LEAD_CREATED, Trigger.RECALL, Trigger.DORMANT, Trigger.BIRTHDAY_NEXT_MONTH, Trigger.SEGMENT,
                   Trigger.CONSULTED_NOT_TREATED)


def followups_merge_hook(*, survivor: Customer, merged: Customer) -> None:
    """Before a merge moves the merged record's tasks onto the survivor: a task for an anchor the survivor
    already has a task for (same playbook and step) would break "never twice"; it keeps its history under a
    suffixed anchor key, and is cancelled if still open (the survivor's twin is the one to work). So is an open task
    of a PERSON_TRIGGERS playbook's step the survivor has an open task of, whatever its anchor."""
    from django.db.models import Exists, Value
    from django.db.models.functions import Concat, Left

    twins = FollowupTask.objects.filter(customer=survivor, playbook_id=OuterRef("playbook_id"),
                                        step_id=OuterRef("step_id"), anchor_key=OuterRef("anchor_key"))
    dupes = FollowupTask.objects.filter(customer=merged).filter(Exists(twins))
    now = timezone.now()
    suffix = f"~m{merged.pk}"
    dupes.filter(status=TaskStatus.OPEN).update(status=TaskStatus.CANCELLED, closed_reason=MERGED_DUPLICATE,
                                                updated_at=now)
    # A trigger about the person, not one event of theirs (lead:<record id>, recall:<day>, dormant:<day> …), keys the
    # two records' tasks apart: the survivor would get two open calls of one step to one patient. The merged one's goes.
    open_twins = FollowupTask.objects.filter(customer=survivor, status=TaskStatus.OPEN,
                                             playbook_id=OuterRef("playbook_id"), step_id=OuterRef("step_id"))
    FollowupTask.objects.filter(customer=merged, status=TaskStatus.OPEN, playbook__trigger__in=PERSON_TRIGGERS).filter(
        Exists(open_twins)).update(status=TaskStatus.CANCELLED, closed_reason=MERGED_DUPLICATE, updated_at=now)
    FollowupTask.objects.filter(pk__in=list(dupes.values_list("pk", flat=True))).update(
        anchor_key=Concat(Left("anchor_key", 64 - len(suffix)), Value(suffix)), updated_at=now)


# Script values a task copies from the person when it is made (sources.py, surveys' complaint task): their birthday,
# and a detractor's comment in their own words. An erasure takes them out of the task's context.
ERASED_CONTEXT_KEYS = ("birthday", "comment")


def followups_erase_hook(*, customer: Customer, actor: Staff | None = None) -> dict:
    """Before a person's personal information is erased (customers.privacy): their open tasks are cancelled (nobody
    calls them again; the daily run skips erased people, generate.py) and what staff wrote on any of their tasks
    (the brief, the outcome's note) is blanked, and so are the personal values the task copied into its script
    context (ERASED_CONTEXT_KEYS). Outcomes and dates stay."""
    from smileloop.followups.models import CUSTOMER_ERASED

    now = timezone.now()
    tasks = FollowupTask.objects.filter(customer=customer)
    cancelled = tasks.filter(status=TaskStatus.OPEN).update(status=TaskStatus.CANCELLED, closed_reason=CUSTOMER_ERASED,
                                                            updated_at=now)
    tasks.exclude(brief="", note="").update(brief="", note="", updated_at=now)
    copied = [task for task in tasks.only("id", "context")
              if isinstance(task.context, dict) and any(key in task.context for key in ERASED_CONTEXT_KEYS)]
    for task in copied:
        task.context = {k: v for k, v in task.context.items() if k not in ERASED_CONTEXT_KEYS}
    FollowupTask.objects.bulk_update(copied, ["context"])
    return {"followups_cancelled": cancelled}
