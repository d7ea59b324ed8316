"""Follow-ups API (mounted at /api/followups): list tasks (mine, or a clinic's), complete a task, list
playbooks. Token auth, scope, permissions, Idempotency-Key on writes, one error shape."""

import datetime as dt
from typing import Annotated

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Field, Query, Router, Schema

from smileloop.clinics.api import clinic_for_filter, permission_require, request_scope
from smileloop.clinics.enums import Perm
from smileloop.core.api import (
    ERROR_RESPONSES,
    ClinicRef,
    Id,
    InputSchema,
    IsoDateTime,
    Offset,
    clinic_ref,
    render,
)
from smileloop.core.errors import FieldError, ValidationFailed
from smileloop.core.idempotency import IdempotencyKeyHeader, idempotent_response
from smileloop.customers.normalize import phone_mask
from smileloop.followups import selectors, services
from smileloop.followups.enums import Outcome, TaskStatus

router = Router(tags=["followups"])


class ContactOut(Schema):
    """The relative to call for a patient without a phone (a child), one the caller may see."""

    customer_id: int
    name: str
    mobile: str  # masked


class TaskOut(Schema):
    id: int
    playbook: str
    playbook_name: str
    step: int
    channel: str
    customer_id: int
    customer_name: str
    mobile: str  # masked
    contact_via: ContactOut | None
    clinic: ClinicRef | None = Field(description="The clinic whose task it is, as every answer names a clinic; null "
                                                  "for a task of no clinic")
    clinic_id: int | None = Field(description="The same clinic's id (kept for clients that read it)")
    assignee_id: int | None
    anchor_key: str
    anchor_at: dt.datetime
    due_at: dt.datetime
    sla_due_at: dt.datetime
    status: str
    outcome: str
    brief: str  # why the task was opened (a complaint's words), English when the system wrote it
    note: str
    script: str
    completed_at: dt.datetime | None
    completed_by_id: int | None


class TaskPage(Schema):
    count: int
    limit: int
    offset: int
    items: list[TaskOut]


class CompleteIn(InputSchema):
    outcome: Outcome
    note: str = Field("", max_length=2000)


class PlaybookStepOut(Schema):
    seq: int
    delay_days: int
    assignee_rule: str
    channel: str
    script: str
    sla_hours: int
    lapse_days: int | None


class PlaybookOut(Schema):
    id: int
    code: str
    name: str
    trigger: str
    trigger_params: dict
    goal: str
    is_active: bool
    is_builtin: bool
    steps: list[PlaybookStepOut]


def _contact_via(task) -> dict | None:
    guardian = getattr(task, "guardian", None)
    if guardian is None or task.customer.mobile:
        return None
    return {"customer_id": guardian.pk, "name": guardian.name, "mobile": phone_mask(guardian.mobile)}


def _task(task) -> dict:
    return {
        "id": task.pk, "playbook": task.playbook.code, "playbook_name": task.playbook.name, "step": task.step.seq,
        "channel": task.step.channel, "customer_id": task.customer_id, "customer_name": task.customer.name,
        "mobile": phone_mask(task.customer.mobile), "contact_via": _contact_via(task),
        "clinic": clinic_ref(task.clinic), "clinic_id": task.clinic_id, "assignee_id": task.assignee_id,
        "anchor_key": task.anchor_key, "anchor_at": timezone.localtime(task.anchor_at),
        "due_at": timezone.localtime(task.due_at), "sla_due_at": timezone.localtime(task.sla_due_at),
        "status": task.status, "outcome": task.outcome, "brief": task.brief, "note": task.note, "script": getattr(task, "script_text", ""),
        "completed_at": timezone.localtime(task.completed_at) if task.completed_at else None,
        "completed_by_id": task.completed_by_id,
    }


def _aware(value: dt.datetime) -> dt.datetime:
    return value if timezone.is_aware(value) else timezone.make_aware(value)


@router.get("/tasks", response={200: TaskPage, **ERROR_RESPONSES}, summary="List follow-up tasks")
def task_list_endpoint(
    request: HttpRequest,
    mine: bool = Query(True, description="Only my tasks; false lists the tasks of my clinics (needs task.board)"),
    clinic: str | None = Query(None, description="Clinic id or code (within your clinics)"),
    status: TaskStatus | None = None,
    due_from: Annotated[IsoDateTime | None, Query(description="Due at or after (ISO 8601)")] = None,
    due_to: Annotated[IsoDateTime | None, Query(description="Due before (ISO 8601); after due_from")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
):
    scope = request_scope(request)
    permission_require(scope, Perm.TASK_WORK)
    if not mine:
        permission_require(scope, Perm.TASK_BOARD)
    # an empty window answered an empty list, as if nothing were due (naive times are the chain's, as in the filter)
    if due_from and due_to and _aware(due_to) <= _aware(due_from):
        raise ValidationFailed([FieldError("due_to", "must be after due_from", due_to.isoformat())])
    clinic_id = clinic_for_filter(scope=scope, value=clinic).id if clinic else None
    qs = selectors.task_list(scope, mine=mine, clinic_id=clinic_id, status=status or "", due_from=due_from,
                             due_to=due_to)
    tasks = list(qs[offset:offset + limit])
    selectors.scripts_fill(scope, tasks)
    return {"count": qs.count(), "limit": limit, "offset": offset, "items": [_task(t) for t in tasks]}


@router.get("/tasks/{int:task_id}", response={200: TaskOut, **ERROR_RESPONSES}, summary="One follow-up task")
def task_get_endpoint(request: HttpRequest, task_id: Id):
    scope = request_scope(request)
    permission_require(scope, Perm.TASK_WORK)
    task = selectors.task_get(scope, task_id)
    selectors.scripts_fill(scope, [task])
    return _task(task)


@router.post("/tasks/{int:task_id}/complete", response={200: TaskOut, **ERROR_RESPONSES},
             summary="Record a task's outcome (idempotent for the same outcome)",
             description="Its assignee records it; so may a clinic director or chain admin (task.board) for any task "
                         "of their clinics, and anyone for a task nobody active in its clinic holds (unassigned, or "
                         "its assignee has left or now works at other clinics), which they take over (audited, and "
                         "on the patient's timeline). A colleague's task is a 403 with the code "
                         "`task_not_yours` and changes nothing.")
def task_complete_endpoint(request: HttpRequest, task_id: Id, payload: CompleteIn, response: HttpResponse,
                           idempotency_key: IdempotencyKeyHeader = None):
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.TASK_WORK)
        task = selectors.task_get(scope, task_id)
        services.followup_complete(task=task, outcome=payload.outcome, note=payload.note, actor=request.staff,
                                   scope=scope)
        task = selectors.task_get(scope, task_id)
        selectors.scripts_fill(scope, [task])
        return 200, render(TaskOut, _task(task))

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="followups.complete", run=write)


@router.get("/playbooks", response={200: list[PlaybookOut], **ERROR_RESPONSES}, summary="List playbooks")
def playbook_list_endpoint(request: HttpRequest):
    scope = request_scope(request)
    permission_require(scope, Perm.TASK_WORK)
    return [{"id": p.pk, "code": p.code, "name": p.name, "trigger": p.trigger, "trigger_params": p.trigger_params,
             "goal": p.goal, "is_active": p.is_active, "is_builtin": p.is_builtin,
             "steps": [{"seq": s.seq, "delay_days": s.delay_days, "assignee_rule": s.assignee_rule,
                        "channel": s.channel, "script": s.script, "sla_hours": s.sla_hours,
                        "lapse_days": s.lapse_days}
                       for s in p.steps.all() if s.is_active]}
            for p in selectors.playbook_list(scope)]
