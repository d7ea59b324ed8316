"""The daily run: create the tasks due (set-based), and close open tasks whose goal happened.

`followups_generate` issues one `INSERT … SELECT … ON CONFLICT DO NOTHING` per active playbook step (two for
gift-card reminders: giver and holder). The SELECT is an ORM queryset (the trigger's source, see
`sources.py`) with every column of the task computed in SQL: the assignee as a CASE over the chain's active
staff (`assign.py`), the due and SLA times as CASEs of constants per due day, the script context as a JSON
object. It runs the same on PostgreSQL and SQLite (3.24+). Idempotency has two layers: a NOT EXISTS on the
task's own key skips rows made by an earlier run, and the unique constraint (customer, playbook, step,
anchor_key) with ON CONFLICT DO NOTHING settles any race.

The window is today plus `catchup_days` days back: a run missed yesterday is made good today (the task is
then already overdue), but an anchor older than the window never creates a task — switching a playbook on
does not flood the inbox with years of stale follow-ups.
"""

import datetime as dt
import time
from collections import Counter
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import (
    Case,
    CharField,
    DateTimeField,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    Value,
    When,
)
from django.utils import timezone

from smileloop.clinics.models import Chain, Clinic
from smileloop.core.sql import json_object
from smileloop.customers.models import Customer
from smileloop.customers.selectors import without_erased
from smileloop.customers.services import customers_erasures_wait
from smileloop.followups.enums import Goal, Outcome, TaskStatus, Trigger
from smileloop.followups.models import LAPSED, FollowupTask, Playbook, PlaybookStep
from smileloop.followups.services.assign import StaffDirectory
from smileloop.followups.services.sources import (
    ARRIVAL_STATUSES,
    BOOKING_STATUSES,
    SOURCES,
    Candidates,
    Window,
)
from smileloop.visits.models import Appointment

CATCHUP_DAYS = 3
DUE_TIME = dt.time(18, 0)  # a task is due by the end of its working day
WORK_START = dt.time(9, 0)  # the SLA clock starts when the day's work starts (or at creation, if later)
# Outcomes after which the later steps of the same anchor are not created (the patient said no, or the
# number is wrong); a task closed by its goal stops them too.
STOP_OUTCOMES = (Outcome.DECLINED, Outcome.WRONG_NUMBER)
COLUMNS = ("chain_id", "clinic_id", "customer_id", "playbook_id", "step_id", "anchor_key", "anchor_at", "doctor_id",
           "assignee_id", "due_at", "sla_due_at", "status", "outcome", "note", "context", "closed_reason",
           "created_at", "updated_at")


def run_now(*, today: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The moment of the run: now, or (for a run on another day: tests, demo, catch-up) that day's morning."""
    now = timezone.now()
    if timezone.localtime(now, tz).date() == today:
        return now
    return dt.datetime.combine(today, dt.time(8, 0), tzinfo=tz)


def _ref(value):
    return F(value) if isinstance(value, str) else value


def _goal_reached(goal: str, *, customer, anchor_at):
    """The condition "the goal happened after the anchor" for one task or candidate row (None: no goal)."""
    came = Customer.objects.filter(pk=customer, last_visit_at__gte=anchor_at)
    if goal in (Goal.APPOINTMENT_BOOKED, Goal.REBOOKED):
        strictly = "gt" if goal == Goal.REBOOKED else "gte"
        booked = Appointment.objects.filter(customer_id=customer, status__in=BOOKING_STATUSES,
                                            **{f"start_at__{strictly}": anchor_at})
        if goal == Goal.REBOOKED:
            came = Customer.objects.filter(pk=customer, last_visit_at__gt=anchor_at)
        return Exists(booked) | Exists(came)
    if goal == Goal.ARRIVAL:
        arrived = Appointment.objects.filter(customer_id=customer, status__in=ARRIVAL_STATUSES, start_at__gt=anchor_at)
        return Exists(Customer.objects.filter(pk=customer, last_visit_at__gt=anchor_at)) | Exists(arrived)
    return None


def _insert_select(qs) -> int:
    """INSERT INTO task (COLUMNS) <qs> ON CONFLICT DO NOTHING; returns the rows inserted."""
    aliases = [f"fu_{c}" for c in COLUMNS]
    qs = qs.order_by().values(*aliases)
    compiler = qs.query.get_compiler(connection=connection)
    sql, params = compiler.as_sql()
    selected = [alias for _expr, _sql, alias in compiler.select]
    if selected != aliases:  # the column order of the SELECT must match the INSERT's, or rows land wrong
        raise RuntimeError(f"unexpected select order {selected}")
    qn = connection.ops.quote_name
    table = qn(FollowupTask._meta.db_table)
    statement = f"INSERT INTO {table} ({', '.join(qn(c) for c in COLUMNS)}) {sql} ON CONFLICT DO NOTHING"
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return max(cursor.rowcount, 0)


ANALYZE_AFTER = 10_000  # tasks created in one run


def _step_insert(*, cand: Candidates, playbook: Playbook, step, w: Window, due_days: list[dt.date],
                 directory: StaffDirectory, exclude_reached_goals: bool = True) -> int:
    now = w.now
    due = [dt.datetime.combine(d, DUE_TIME, tzinfo=w.tz) for d in due_days]
    sla = [max(now, dt.datetime.combine(d, WORK_START, tzinfo=w.tz)) + dt.timedelta(hours=step.sla_hours)
           for d in due_days]

    def by_day(values):
        return Case(*[When(c, then=Value(v, output_field=DateTimeField())) for c, v in zip(cand.conds, values, strict=True)],
                    default=Value(None, output_field=DateTimeField()), output_field=DateTimeField())

    context = {"trigger": playbook.trigger, **cand.context}
    annotations = {
        "fu_chain_id": Value(playbook.chain_id, output_field=IntegerField()),
        "fu_clinic_id": _ref(cand.clinic),
        "fu_customer_id": _ref(cand.customer),
        "fu_playbook_id": Value(playbook.pk, output_field=IntegerField()),
        "fu_step_id": Value(step.pk, output_field=IntegerField()),
        "fu_anchor_key": cand.anchor_key,
        "fu_anchor_at": cand.anchor_at,
        "fu_doctor_id": _ref(cand.doctor) if cand.doctor else Value(None, output_field=IntegerField()),
        "fu_assignee_id": directory.expression(step.assignee_rule, clinic=cand.clinic, customer=cand.customer,
                                               consultant=cand.consultant, doctor=cand.doctor),
        "fu_due_at": by_day(due),
        "fu_sla_due_at": by_day(sla),
        "fu_status": Value(TaskStatus.OPEN.value, output_field=CharField()),
        "fu_outcome": Value("", output_field=CharField()),
        "fu_note": Value("", output_field=CharField()),
        "fu_context": json_object(**context),
        "fu_closed_reason": Value("", output_field=CharField()),
        "fu_created_at": Value(now, output_field=DateTimeField()),
        "fu_updated_at": Value(now, output_field=DateTimeField()),
    }
    qs = cand.qs.filter(Q(*cand.conds, _connector=Q.OR)).annotate(**annotations)
    done_before = FollowupTask.objects.filter(
        customer_id=OuterRef("fu_customer_id"), playbook_id=playbook.pk, anchor_key=OuterRef("fu_anchor_key"),
    ).filter(Q(step_id=step.pk) | Q(outcome__in=STOP_OUTCOMES) | Q(status=TaskStatus.CLOSED))
    qs = qs.filter(~Exists(done_before))
    # Nobody follows up a person whose personal information was erased (customers.privacy).
    qs = without_erased(qs, chain_id=playbook.chain_id, column="fu_customer_id")
    goal = _goal_reached(playbook.goal, customer=OuterRef("fu_customer_id"), anchor_at=OuterRef("fu_anchor_at"))
    if goal is not None and exclude_reached_goals:
        qs = qs.filter(~goal)
    return _insert_select(qs)


def _window(chain: Chain, today: dt.date | None, catchup_days: int) -> Window:
    tz = ZoneInfo(chain.time_zone or "Asia/Shanghai")
    today = today or timezone.localtime(timezone.now(), tz).date()
    clinic_ids = list(Clinic.objects.filter(chain=chain).values_list("id", flat=True))
    return Window(today=today, tz=tz, now=run_now(today=today, tz=tz), catchup_days=catchup_days,
                  clinic_ids=clinic_ids)


@transaction.atomic
def followups_generate(*, chain: Chain, today: dt.date | None = None, catchup_days: int = CATCHUP_DAYS,
                       exclude_reached_goals: bool = True, timings: dict | None = None) -> dict:
    """Create every task due in the window for the chain's active playbooks. Safe to run any number of times.

    `exclude_reached_goals=False` is for rebuilding history (the demo): tasks are made even where the goal has
    happened since, and `followups_close_by_goal` then closes them as it would have then. `timings`, if given,
    receives the seconds spent per playbook (the benchmark)."""
    w = _window(chain, today, catchup_days)
    directory = StaffDirectory.load(chain.pk)
    due_days = w.due_days()
    created: Counter = Counter()
    playbooks = (Playbook.objects.filter(chain=chain, is_active=True).exclude(trigger=Trigger.COMPLAINT)
                 .prefetch_related("steps").order_by("id"))
    for playbook in playbooks:
        source = SOURCES.get(playbook.trigger)
        if source is None:
            continue
        started = time.perf_counter()
        for step in sorted((s for s in playbook.steps.all() if s.is_active), key=lambda s: s.seq):
            anchor_days = [d - dt.timedelta(days=step.delay_days) for d in due_days]
            extra = {"step": step} if playbook.trigger == Trigger.SEGMENT else {}
            for cand in source(playbook, w, anchor_days, **extra):
                created[playbook.code] += _step_insert(cand=cand, playbook=playbook, step=step, w=w,
                                                       due_days=due_days, directory=directory,
                                                       exclude_reached_goals=exclude_reached_goals)
        if timings is not None:
            timings[playbook.code] = round(time.perf_counter() - started, 3)
    total = sum(created.values()) - _erased_meanwhile(playbook_ids=[p.pk for p in playbooks], now=w.now)
    if total >= ANALYZE_AFTER and connection.vendor == "postgresql":
        # A first run (or a new playbook) can multiply the table; fresh statistics keep the "no later step
        # after a declined outcome" anti-joins of the next run on the unique index instead of a nested scan.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(FollowupTask._meta.db_table)}")
    return {"created": total, "by_playbook": dict(created), "today": w.today.isoformat()}


def _erased_meanwhile(*, playbook_ids: list[int], now: dt.datetime) -> int:
    """Delete the tasks this run made for people erased while it ran: an INSERT read the patient before the erasure
    committed, and the erasure's hook (tasks.followups_erase_hook) could not see the uncommitted task, which stayed
    open with the birthday it copied. Erasures in progress are waited for first (customers_erasures_wait; one that
    starts later waits for this run and cancels the tasks itself): the DELETE, a later statement, sees them all."""
    if not playbook_ids:
        return 0
    # by playbook and status: the run's open tasks read from the index followup_task_goal
    made = FollowupTask.objects.filter(playbook_id__in=playbook_ids, status=TaskStatus.OPEN, created_at=now)
    customers_erasures_wait(made.values("customer_id"))
    return made.filter(customer__erased_at__isnull=False).delete()[0]


@transaction.atomic
def followups_lapse(*, chain: Chain, now: dt.datetime | None = None) -> int:
    """Cancel open tasks of steps that lapse (`PlaybookStep.lapse_days`) once that many days have passed since they
    were due: one UPDATE per such step. A lapsed task was not worked; the board counts it with the cancelled."""
    now = now or timezone.now()
    lapsed = 0
    for step_id, days in (PlaybookStep.objects.filter(playbook__chain=chain, lapse_days__isnull=False)
                          .values_list("id", "lapse_days")):
        lapsed += (FollowupTask.objects.filter(step_id=step_id, status=TaskStatus.OPEN,
                                               due_at__lt=now - dt.timedelta(days=days))
                   .update(status=TaskStatus.CANCELLED, closed_reason=LAPSED, updated_at=now))
    return lapsed


def followups_close_by_goal(*, chain: Chain, today: dt.date | None = None) -> dict:
    """Close open tasks whose playbook goal happened after the task's anchor: one UPDATE per goal."""
    now = timezone.now()
    closed: dict[str, int] = {}
    for goal in (Goal.APPOINTMENT_BOOKED, Goal.REBOOKED, Goal.ARRIVAL):
        playbook_ids = list(Playbook.objects.filter(chain=chain, goal=goal).values_list("id", flat=True))
        if not playbook_ids:
            continue
        reached = _goal_reached(goal, customer=OuterRef("customer_id"), anchor_at=OuterRef("anchor_at"))
        count = (FollowupTask.objects.filter(playbook_id__in=playbook_ids, status=TaskStatus.OPEN)
                 .filter(reached)
                 .update(status=TaskStatus.CLOSED, closed_reason=f"goal:{goal}", completed_at=now, updated_at=now))
        if count:
            closed[str(goal)] = count
    return {"closed": sum(closed.values()), "by_goal": closed}
