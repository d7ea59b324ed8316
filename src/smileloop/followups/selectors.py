"""Reads over follow-up tasks and playbooks. Every function takes the staff member's Scope first.

Visibility: chain roles see the chain's tasks; clinic roles see the tasks of their clinics plus any task
assigned to them. A task outside that is a 404, like a customer outside the scope.
"""

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from smileloop.clinics.enums import CHAIN_ROLES, Perm
from smileloop.clinics.models import Chain, Staff
from smileloop.core.errors import NotFound, PermissionDenied
from smileloop.core.scoping import Scope
from smileloop.core.sql import in_clause, select_models, select_rows
from smileloop.customers.models import Customer
from smileloop.customers.selectors import guardians_for
from smileloop.followups.enums import TaskStatus, Trigger
from smileloop.followups.models import FollowupTask, Playbook
from smileloop.followups.script import tasks_scripts_fill

BOARD_PERIODS = (1, 7, 30)


def chain_tz(chain_id: int) -> ZoneInfo:
    tz = Chain.objects.filter(pk=chain_id).values_list("time_zone", flat=True).first()
    return ZoneInfo(tz or "Asia/Shanghai")


def local_today(scope: Scope) -> dt.date:
    return timezone.localtime(timezone.now(), chain_tz(scope.chain_id)).date()


def task_queryset(scope: Scope) -> QuerySet[FollowupTask]:
    """Tasks of the scope's clinics; for a clinic's staff also the tasks of no clinic assigned to them, of a patient
    of no clinic or of one of theirs. A task of another clinic is not theirs to see even when it is still assigned to
    them (assignees are staff of the task's clinic: one who moved to another clinic leaves their tasks behind, which
the clinic's staff may take over: services.task_unheld)."""
    qs = FollowupTask.objects.filter(chain_id=scope.chain_id)
    if scope.clinic_ids is not None:
        qs = qs.filter(Q(clinic_id__in=scope.clinic_ids) | Q(
            Q(customer__home_clinic_id__isnull=True) | Q(customer__home_clinic_id__in=scope.clinic_ids),
            clinic_id__isnull=True, assignee_id=scope.staff_id))
    return qs


_RELATED = ("customer", "clinic", "doctor", "assignee", "step", "playbook", "completed_by")  # a task's rows shown


def _with_related(qs: QuerySet[FollowupTask]) -> QuerySet[FollowupTask]:
    return qs.select_related(*_RELATED)


def task_get(scope: Scope, task_id) -> FollowupTask:
    try:
        task_id = int(task_id)
    except (TypeError, ValueError):
        raise NotFound("Task not found")
    task = _with_related(task_queryset(scope)).filter(pk=task_id).first()
    if task is None:
        raise NotFound("Task not found")
    return task


def scripts_fill(scope: Scope, tasks: list[FollowupTask], *, today: dt.date | None = None) -> list[FollowupTask]:
    tz = chain_tz(scope.chain_id)
    guardians_fill(scope, tasks)  # first: a script called through a relative greets them
    tasks_scripts_fill(tasks, today=today or timezone.localtime(timezone.now(), tz).date(), tz=str(tz))
    return tasks


def guardians_fill(scope: Scope, tasks: list[FollowupTask]) -> list[FollowupTask]:
    """`task.guardian`: for a patient without a phone (a child), the relative to call instead, or None (one read
    for all the tasks; customers.selectors.guardians_for)."""
    guardians = guardians_for(scope, [t.customer_id for t in tasks if not t.customer.mobile])
    for task in tasks:
        task.guardian = guardians.get(task.customer_id)
    return tasks


def task_overdue(task: FollowupTask, *, now: dt.datetime, day_start: dt.datetime) -> bool:
    """Open and late: due before today, or past its SLA. A task due at 10:00 today is not late at 15:00 while its
    SLA still runs (the board counts overdue by the SLA too)."""
    return task.is_open and (task.due_at < day_start or task.sla_due_at < now)


def inbox_list(scope: Scope, *, today: dt.date | None = None, limit: int = 200) -> list[FollowupTask]:
    """My open tasks due by the end of today, and any opened today (a complaint due within 24 hours shows at
    once): overdue first (earliest due first), then the rest; scripts filled. One query (plus one per
    registered script-context provider that applies)."""
    tz = chain_tz(scope.chain_id)
    today = today or timezone.localtime(timezone.now(), tz).date()
    end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    start = dt.datetime.combine(today, dt.time.min, tzinfo=tz)
    qs = (_with_related(task_queryset(scope))
          .filter(Q(due_at__lt=end) | Q(created_at__gte=start), assignee_id=scope.staff_id, status=TaskStatus.OPEN)
          .order_by("due_at", "id"))
    tasks = list(qs[:limit])
    now = timezone.now()
    for task in tasks:
        task.is_overdue = task_overdue(task, now=now, day_start=start)
    guardians_fill(scope, tasks)
    tasks_scripts_fill(tasks, today=today, tz=str(tz))  # not scripts_fill: the chain's time zone is read already
    return tasks


def inbox_done_today(scope: Scope, *, today: dt.date | None = None) -> int:
    tz = chain_tz(scope.chain_id)
    today = today or timezone.localtime(timezone.now(), tz).date()
    start = dt.datetime.combine(today, dt.time.min, tzinfo=tz)
    return task_queryset(scope).filter(completed_by_id=scope.staff_id, completed_at__gte=start).count()


def _chain_aware(scope: Scope, moment: dt.datetime) -> dt.datetime:
    """A naive bound (the API's `due_from=2026-04-01T00:00:00`) is the chain's wall-clock time. Handed to the ORM
    naive, Django read it in the server's zone with a RuntimeWarning on every request."""
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, chain_tz(scope.chain_id))


def task_list(scope: Scope, *, mine: bool = False, clinic_id: int | None = None, status: str = "",
              due_from: dt.datetime | None = None, due_to: dt.datetime | None = None,
              customer_id: int | None = None) -> QuerySet[FollowupTask]:
    """Tasks for lists and the API, newest due first; `clinic_id` outside the scope is refused."""
    qs = _with_related(task_queryset(scope))
    if mine:
        qs = qs.filter(assignee_id=scope.staff_id)
    elif not scope.can(Perm.TASK_BOARD):
        # Without the board permission a staff member lists only their own tasks.
        qs = qs.filter(assignee_id=scope.staff_id)
    if clinic_id is not None:
        if not scope.allows_clinic(clinic_id):
            raise NotFound("Clinic not found")
        qs = qs.filter(clinic_id=clinic_id)
    if status:
        qs = qs.filter(status=status)
    if due_from is not None:
        qs = qs.filter(due_at__gte=_chain_aware(scope, due_from))
    if due_to is not None:
        qs = qs.filter(due_at__lt=_chain_aware(scope, due_to))
    if customer_id is not None:
        qs = qs.filter(customer_id=customer_id)
    return qs.order_by("due_at", "id")


def tasks_for_customer(scope: Scope, customer: Customer, *, limit: int = 10) -> dict:
    """The 360 section: the patient's open tasks and the latest finished ones. Plain SQL (core.sql) with the
    rules of task_queryset and the joins of _with_related: compiling the two seven-join querysets cost more than
    the rest of the section on every 360 page.

    The ids of both lists come first from one join-free query; the eight-table join, whose planning alone took
    6–7 ms in PostgreSQL, runs once and only for a patient who has tasks (most have none)."""
    where, params = "t0.chain_id = %s AND t0.customer_id = %s", [scope.chain_id, customer.pk]
    if scope.clinic_ids is not None:
        clinics_in, clinic_params = in_clause("t0.clinic_id", sorted(scope.clinic_ids))
        if customer.home_clinic_id is None or customer.home_clinic_id in scope.clinic_ids:
            where += f" AND ({clinics_in} OR (t0.clinic_id IS NULL AND t0.assignee_id = %s))"
            params += [*clinic_params, scope.staff_id]
        else:
            where += f" AND {clinics_in}"
            params += clinic_params
    table, n = connection.ops.quote_name(FollowupTask._meta.db_table), int(limit)
    ids = [row[0] for row in select_rows(
        f"SELECT id FROM (SELECT t0.id FROM {table} t0 WHERE {where} AND t0.status = %s "
        f"ORDER BY t0.due_at, t0.id LIMIT {n}) a UNION ALL "
        f"SELECT id FROM (SELECT t0.id FROM {table} t0 WHERE {where} AND t0.status <> %s "
        f"ORDER BY t0.updated_at DESC, t0.id DESC LIMIT {n}) b",
        [*params, TaskStatus.OPEN, *params, TaskStatus.OPEN])]
    if not ids:
        return {"open": [], "recent": []}
    ids_in, ids_params = in_clause("t0.id", ids)
    tasks = select_models(FollowupTask, ids_in, ids_params, related=_RELATED)
    open_tasks = sorted((t for t in tasks if t.status == TaskStatus.OPEN), key=lambda t: (t.due_at, t.id))
    recent = sorted((t for t in tasks if t.status != TaskStatus.OPEN), key=lambda t: (t.updated_at, t.id),
                    reverse=True)
    if open_tasks:
        scripts_fill(scope, open_tasks)
        for task, reason in zip(open_tasks, tasks_unheld(open_tasks), strict=True):
            task.unheld = reason  # the section says why a colleague may take it over
    return {"open": open_tasks, "recent": recent}


def tasks_unheld(tasks: list[FollowupTask]) -> list[str | None]:
    """Why nobody active in each task's clinic holds it, or None when someone does:

    - "unassigned";
    - "departed": its assignee is inactive (the daily run moves such tasks on, followups_reassign_inactive);
    - "moved": its assignee works at other clinics now (the task's clinic is no longer among theirs), so
      `task_queryset` no longer shows it to them (the daily run moves such tasks on too, followups_reassign_for_moved).

    A chain-wide role (CHAIN_ROLES: chain admin, member operations, marketing) holds a task of any clinic, and an
    active assignee one of no clinic. The assignees loaded; one query for the lot (their clinics), none when no
    clinic role holds one."""
    held = {(t.assignee_id, t.clinic_id) for t in tasks if t.assignee_id and t.assignee.is_active and t.clinic_id
            and t.assignee.role not in CHAIN_ROLES}
    at = set(Staff.clinics.through.objects.filter(
        staff_id__in={s for s, _c in held}, clinic_id__in={c for _s, c in held}).values_list(
        "staff_id", "clinic_id")) if held else set()
    return ["unassigned" if t.assignee_id is None else "departed" if not t.assignee.is_active
            else "moved" if (t.assignee_id, t.clinic_id) in held and (t.assignee_id, t.clinic_id) not in at
            else None for t in tasks]


# --- the team board ----------------------------------------------------------------------------------------

@dataclass
class BoardRow:
    key: int | str | None
    label: str
    total: int = 0
    done: int = 0
    closed: int = 0
    open: int = 0
    overdue: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return self.done + self.closed

    @property
    def rate(self) -> int | None:
        """Completion rate in whole percent: done or closed by goal ÷ due in the period (cancelled left out)."""
        return round(100 * self.finished / self.total) if self.total else None


@dataclass
class Board:
    days: int
    since: dt.date
    until: dt.date
    totals: BoardRow
    by_staff: list[BoardRow]
    by_playbook: list[BoardRow]
    clinic_id: int | None = None


def _counts():
    return {
        "total": Count("id"),
        "done": Count("id", filter=Q(status=TaskStatus.DONE)),
        "closed": Count("id", filter=Q(status=TaskStatus.CLOSED)),
        "open": Count("id", filter=Q(status=TaskStatus.OPEN)),
        "overdue": Count("id", filter=Q(status=TaskStatus.OPEN, sla_due_at__lt=timezone.now())),
    }


def board(scope: Scope, *, days: int = 7, clinic_id: int | None = None, today: dt.date | None = None) -> Board:
    """Completion and overdue counts of the tasks due in the last `days` days, per staff member and per
    playbook, within the director's clinics. Three aggregate queries plus the names."""
    if not scope.can(Perm.TASK_BOARD):
        raise PermissionDenied("Your role may not see the team board")
    if days not in BOARD_PERIODS:
        days = 7
    tz = chain_tz(scope.chain_id)
    today = today or timezone.localtime(timezone.now(), tz).date()
    since = today - dt.timedelta(days=days - 1)
    qs = FollowupTask.objects.filter(chain_id=scope.chain_id).exclude(status=TaskStatus.CANCELLED).filter(
        due_at__gte=dt.datetime.combine(since, dt.time.min, tzinfo=tz),
        due_at__lt=dt.datetime.combine(today + dt.timedelta(days=1), dt.time.min, tzinfo=tz))
    if scope.clinic_ids is not None:
        qs = qs.filter(clinic_id__in=scope.clinic_ids)
    if clinic_id is not None:
        if not scope.allows_clinic(clinic_id):
            raise NotFound("Clinic not found")
        qs = qs.filter(clinic_id=clinic_id)
    totals = BoardRow(key=None, label="", **qs.aggregate(**_counts()))
    staff_rows = list(qs.values("assignee_id").annotate(**_counts()).order_by("assignee_id"))
    names = dict(Staff.objects.filter(pk__in=[r["assignee_id"] for r in staff_rows if r["assignee_id"]])
                 .values_list("id", "name"))
    by_staff = [BoardRow(key=r.pop("assignee_id"), label="", **r) for r in staff_rows]
    for row in by_staff:
        row.label = names.get(row.key, "") if row.key else ""
    by_staff.sort(key=lambda r: (-r.overdue, -(r.total - r.finished), r.label))
    pb_rows = list(qs.values("playbook_id").annotate(**_counts()).order_by("playbook_id"))
    pb_names = dict(Playbook.objects.filter(pk__in=[r["playbook_id"] for r in pb_rows]).values_list("id", "name"))
    by_playbook = [BoardRow(key=r.pop("playbook_id"), label="", **r) for r in pb_rows]
    for row in by_playbook:
        row.label = pb_names.get(row.key, "")
    by_playbook.sort(key=lambda r: (-r.total, r.label))
    return Board(days=days, since=since, until=today, totals=totals, by_staff=by_staff, by_playbook=by_playbook,
                 clinic_id=clinic_id)


def board_reassign_candidates(scope: Scope) -> QuerySet[Staff]:
    """Active staff of the director's clinics (chain roles: the chain) a task can be moved to."""
    qs = Staff.objects.filter(chain_id=scope.chain_id, is_active=True)
    if scope.clinic_ids is not None:
        qs = qs.filter(clinics__in=scope.clinic_ids).distinct()
    return qs.order_by("name", "id")


# --- playbooks ---------------------------------------------------------------------------------------------

def playbook_list(scope: Scope) -> QuerySet[Playbook]:
    return Playbook.objects.filter(chain_id=scope.chain_id).prefetch_related("steps").order_by("id")


def playbook_visit_offset(playbook: Playbook) -> int | None:
    """For a playbook whose steps count from a day N days after a visit (consulted, not treated: `days_after_visit`),
    that N, so the list and the editor can show each step as the day after the visit the patient is called (3, 7,
    14, as the built-in's description says) rather than its delay after the trigger day (+0, +4, +11); else None."""
    if playbook.trigger != Trigger.CONSULTED_NOT_TREATED:
        return None
    return playbook.param("days_after_visit")


def playbook_get(scope: Scope, playbook_id) -> Playbook:
    try:
        playbook_id = int(playbook_id)
    except (TypeError, ValueError):
        raise NotFound("Playbook not found")
    playbook = Playbook.objects.filter(chain_id=scope.chain_id, pk=playbook_id).first()
    if playbook is None:
        raise NotFound("Playbook not found")
    return playbook


def customer_section(scope: Scope, customer: Customer) -> dict | None:
    """Loader of the 360 page's follow-ups section (registered in apps.py)."""
    if not scope.can(Perm.TASK_WORK):
        return None
    return tasks_for_customer(scope, customer)
