"""Demo follow-ups for the demo chain: the built-in playbooks, five weeks of worked history for the team
board, and a realistic inbox on day one — tasks due today for every playbook.

1. History: the daily run is replayed for the past five weeks (five runs, each with a week of catch-up),
   without the "goal already reached" filter, so the goal closer then closes what it would have closed;
   the rest is worked set-based (one UPDATE: ~90% done with a spread of outcomes, the others left open and
   overdue), and each outcome is written to the timeline (one bulk insert).
2. Today: where the seeded data has no event that makes a playbook due today (no-shows happen today, the
   seed's history ends yesterday), a handful of realistic events are added through the owning services
   (an appointment missed this morning, a lead from yesterday, an implant yesterday …).
3. The daily run for today (goal closer, then generation), and two satisfaction calls of yesterday that
   turned into complaints (through `followup_complete`, which opens the director's complaint task).

Deterministic for a (chain, today) pair and idempotent: a second load adds nothing.
"""

import datetime as dt
import random
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import (
    Case,
    CharField,
    Count,
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    Value,
    When,
)
from django.db.models.functions import Mod
from django.db.models.lookups import In, LessThan

from smileloop.clinics.enums import Role
from smileloop.clinics.models import Chain, Clinic, Staff
from smileloop.customers.enums import InteractionKind
from smileloop.customers.models import Customer, Interaction
from smileloop.followups.enums import (
    TRIGGER_PARAM_DEFAULTS,
    ContactChannel,
    Goal,
    Outcome,
    TaskStatus,
    Trigger,
)
from smileloop.followups.models import FollowupTask, Playbook, PlaybookStep
from smileloop.followups.services import (
    followup_complete,
    followups_close_by_goal,
    followups_generate,
    followups_lapse,
    playbooks_install_defaults,
)
from smileloop.followups.services.sources import BOOKING_STATUSES, months_add
from smileloop.followups.services.tasks import task_done_text
from smileloop.visits.enums import AppointmentStatus, Category
from smileloop.visits.models import Appointment, Order, ServiceItem

HISTORY_RUNS = (1, 8, 15, 22, 29)  # days back; each run catches up 6 more days: five weeks in all
HANDFUL = 3
NOTES = {
    Outcome.REACHED: ["已发送优惠信息", "表示会考虑", "下个月再联系", ""],
    Outcome.NO_ANSWER: ["未接通，稍后再打", "关机", ""],
    Outcome.WRONG_NUMBER: ["空号"],
    Outcome.BOOKED: ["已约下周复诊", "已约周六上午", "已预约洁牙"],
    Outcome.DECLINED: ["暂时不需要", "最近太忙，以后再说"],
}
# What a reached patient said depends on why they were called: a recall is not asked about a wound.
REACHED_NOTES = {
    "postop_implant": ["恢复良好，无不适", "已提醒注意事项", "已发送术后护理说明", "略有肿胀，已嘱冰敷", ""],
    "postop_extraction": ["恢复良好，无不适", "已提醒注意事项", "出血已止", ""],
    "ortho_checkin": ["牙套佩戴正常", "已提醒按时复诊", ""],
    "consult_not_converted": ["说要和家人商量后再定", "在比较几家诊所的方案", "已发送治疗方案和价格", "顾虑费用，已介绍分期", ""],
    "satisfaction": ["患者表示满意", "对医生很满意", "反映候诊时间有点长", ""],
    "member_birthday": ["已送上生日祝福", "礼品已准备，下次到店领取", ""],
    "giftcard_reminder": ["已提醒尽快使用", ""],
}
OUTCOME_KIND = {ContactChannel.CALL: InteractionKind.CALL, ContactChannel.WECHAT: InteractionKind.CHAT,
                ContactChannel.WECOM: InteractionKind.CHAT, ContactChannel.SMS: InteractionKind.SMS,
                ContactChannel.VISIT: InteractionKind.VISIT}


def _tz(chain: Chain) -> ZoneInfo:
    return ZoneInfo(chain.time_zone or "Asia/Shanghai")


def _at(today: dt.date, tz: ZoneInfo, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(today, dt.time(hour), tzinfo=tz) + dt.timedelta(minutes=minute)


# --- 1. history ---------------------------------------------------------------------------------------------

def _history(chain: Chain, today: dt.date) -> dict:
    tz = _tz(chain)
    start = _at(today, tz, 0)
    created = 0
    for back in HISTORY_RUNS:
        created += followups_generate(chain=chain, today=today - dt.timedelta(days=back), catchup_days=6,
                                      exclude_reached_goals=False)["created"]
    closed = followups_close_by_goal(chain=chain)["closed"]
    past = FollowupTask.objects.filter(chain_id=chain.id, due_at__lt=start)
    past.filter(status=TaskStatus.CLOSED, completed_at__gte=start).update(completed_at=F("due_at"))
    # Work the rest: by id, 1 in 12 stays open (overdue); in the last three days half are still open.
    recent = _at(today - dt.timedelta(days=3), tz, 0)
    bucket = Mod(F("id"), 24)

    def among(*values):
        return In(bucket, list(values))

    booking = list(Playbook.objects.filter(chain=chain).exclude(goal=Goal.NONE).values_list("id", flat=True))
    outcome = Case(
        When(among(1, 2, 3), then=Value(Outcome.NO_ANSWER.value)),
        When(among(4), then=Value(Outcome.WRONG_NUMBER.value)),
        When(among(5, 6), then=Value(Outcome.DECLINED.value)),
        When(among(7, 8, 9, 10, 11) & Q(playbook_id__in=booking), then=Value(Outcome.BOOKED.value)),
        default=Value(Outcome.REACHED.value), output_field=CharField())
    hours_early = Case(*[When(among(k), then=Value(dt.timedelta(hours=k % 7))) for k in range(24)],
                       default=Value(dt.timedelta(0)), output_field=DurationField())
    todo = (past.filter(status=TaskStatus.OPEN).exclude(among(0, 12))
            .exclude(Q(due_at__gte=recent) & LessThan(bucket, 12)))
    ids = list(todo.values_list("id", flat=True))
    worked = 0
    for i in range(0, len(ids), 2000):
        worked += FollowupTask.objects.filter(pk__in=ids[i:i + 2000]).update(
            status=TaskStatus.DONE, outcome=outcome, completed_by=F("assignee"), updated_at=F("due_at"),
            completed_at=ExpressionWrapper(F("due_at") - hours_early, output_field=DateTimeField()))
    _timeline(chain, ids)
    # A replayed week of catch-up starts the SLA clock at the replay; a daily run would have started it on the
    # due day (09:00): put it there.
    for step_id, sla_hours in (PlaybookStep.objects.filter(playbook__chain=chain)
                               .values_list("id", "sla_hours")):
        past.filter(step_id=step_id).update(sla_due_at=ExpressionWrapper(
            F("due_at") + Value(dt.timedelta(hours=sla_hours - 9)), output_field=DateTimeField()))
    return {"history_tasks": created, "history_closed_by_goal": closed, "history_done": worked}


def _logins_take_over(chain: Chain) -> int:
    """Each demo login (a staff member who can sign in) takes over the tasks of one seeded colleague of the
    same role and clinic (the one with most open tasks), so every login sees a realistic inbox and history."""
    open_by = dict(FollowupTask.objects.filter(chain_id=chain.id, status=TaskStatus.OPEN)
                   .values("assignee_id").annotate(n=Count("id")).values_list("assignee_id", "n"))
    moved = 0
    staff = list(Staff.objects.filter(chain=chain, is_active=True).select_related("user")
                 .prefetch_related("clinics").order_by("id"))
    for login in staff:
        clinics = {c.id for c in login.clinics.all()}
        if not clinics or not login.user.has_usable_password():
            continue
        colleagues = [s for s in staff if s.role == login.role and not s.user.has_usable_password()
                      and clinics & {c.id for c in s.clinics.all()}]
        if not colleagues:
            continue
        colleague = max(colleagues, key=lambda s: (open_by.get(s.id, 0), -s.id))
        moved += FollowupTask.objects.filter(chain_id=chain.id, assignee=colleague).update(assignee=login)
        FollowupTask.objects.filter(chain_id=chain.id, completed_by=colleague).update(completed_by=login)
    return moved


def _timeline(chain: Chain, ids: list[int]) -> None:
    """Each worked task's outcome on the patient's timeline (what followup_complete writes), in bulk."""
    rng = random.Random(f"followups-notes:{chain.name}")
    rows = (FollowupTask.objects.filter(pk__in=ids, status=TaskStatus.DONE)
            .values_list("id", "customer_id", "clinic_id", "completed_by_id", "completed_at", "outcome",
                         "playbook__name", "playbook__code", "step__channel").order_by("id"))
    batch = []
    for task_id, customer_id, clinic_id, staff_id, at, outcome, name, code, channel in rows.iterator(chunk_size=2000):
        notes = REACHED_NOTES.get(code) if outcome == Outcome.REACHED else None
        note = rng.choice(notes or NOTES[Outcome(outcome)])
        kind = (InteractionKind.NOTE if outcome in (Outcome.NO_ANSWER, Outcome.WRONG_NUMBER)
                else OUTCOME_KIND.get(channel, InteractionKind.NOTE))
        text = task_done_text(playbook=name, outcome=outcome, note=note)
        batch.append(Interaction(customer_id=customer_id, kind=kind, author_id=staff_id, clinic_id=clinic_id,
                                 occurred_at=at, text=text,
                                 data={"followup_task_id": task_id, "playbook": code, "outcome": outcome,
                                       "channel": channel}))
        if len(batch) >= 2000:
            Interaction.objects.bulk_create(batch)
            batch = []
    Interaction.objects.bulk_create(batch)


# --- 2. today's events, where the seed has none --------------------------------------------------------------

def _due_today(chain: Chain, today: dt.date) -> set[str]:
    tz = _tz(chain)
    return set(FollowupTask.objects.filter(chain_id=chain.id, due_at__gte=_at(today, tz, 0),
                                           due_at__lt=_at(today + dt.timedelta(days=1), tz, 0))
               .values("playbook__code").annotate(n=Count("id")).values_list("playbook__code", flat=True))


def _patients(chain: Chain, rng: random.Random, n: int, *conditions, **filters) -> list[Customer]:
    qs = (Customer.objects.filter(*conditions, chain=chain, merged_into__isnull=True, home_clinic__isnull=False,
                                  **filters)
          .select_related("home_clinic").order_by("id"))
    ids = list(qs.values_list("id", flat=True)[:400])
    picked = rng.sample(ids, min(n, len(ids)))
    return list(qs.filter(pk__in=picked))


def _doctor(customer: Customer) -> Staff | None:
    return Staff.objects.filter(clinics=customer.home_clinic, role=Role.DOCTOR, is_active=True).order_by("id").first()


def _item(chain: Chain, category: str) -> ServiceItem | None:
    return ServiceItem.objects.filter(chain=chain, category=category, is_active=True).order_by("id").first()


def _events(chain: Chain, today: dt.date, missing: set[str], rng: random.Random) -> dict[str, int]:
    from smileloop.customers.services import customer_upsert
    from smileloop.visits.services import appointment_upsert, plan_record, procedure_record

    tz = _tz(chain)
    added: dict[str, int] = {}
    playbooks = {p.code: p for p in Playbook.objects.filter(chain=chain, is_active=True).prefetch_related("steps")}

    def first_delay(code: str) -> int:
        steps = [s for s in playbooks[code].steps.all() if s.is_active] if code in playbooks else []
        return min((s.delay_days for s in steps), default=0)

    if "no_show" in missing:  # patients who missed an appointment this morning
        # Not ones the seed has booked again for later (or seen since): the playbook's goal, "rebooked", would be
        # reached already and the run would make them no task.
        morning = _at(today, tz, 0)
        rebooked = Appointment.objects.filter(customer_id=OuterRef("pk"), status__in=BOOKING_STATUSES,
                                              start_at__gte=morning)
        for i, c in enumerate(_patients(chain, rng, HANDFUL, ~Q(Exists(rebooked)), visit_count__gt=0,
                                        last_visit_at__lt=morning)):
            start = _at(today, tz, 9, 30 * i)
            appointment_upsert(customer=c, clinic=c.home_clinic, start_at=start, end_at=start + dt.timedelta(minutes=30),
                               status=AppointmentStatus.NO_SHOW, doctor=_doctor(c),
                               external_id=f"demo-fu-noshow-{today:%Y%m%d}-{c.id}")
        added["no_show"] = HANDFUL
    if "satisfaction" in missing:  # visits completed yesterday
        day = today - dt.timedelta(days=first_delay("satisfaction"))
        for i, c in enumerate(_patients(chain, rng, HANDFUL, visit_count__gt=0)):
            start = _at(day, tz, 14, 30 * i)
            appointment_upsert(customer=c, clinic=c.home_clinic, start_at=start, end_at=start + dt.timedelta(minutes=30),
                               status=AppointmentStatus.COMPLETED, doctor=_doctor(c),
                               external_id=f"demo-fu-visit-{day:%Y%m%d}-{c.id}")
        added["satisfaction"] = HANDFUL
    for code, category in (("postop_implant", Category.IMPLANT), ("postop_extraction", Category.EXTRACTION),
                           ("ortho_checkin", Category.ORTHODONTICS)):
        item = _item(chain, category)
        if code in missing and item is not None:
            day = today - dt.timedelta(days=first_delay(code))
            for c in _patients(chain, rng, HANDFUL, visit_count__gt=0):
                procedure_record(customer=c, clinic=c.home_clinic, item_code=item.code, performed_on=day,
                                 doctor=_doctor(c), external_id=f"demo-fu-{code}-{day:%Y%m%d}-{c.id}")
            added[code] = HANDFUL
    clinics = list(Clinic.objects.filter(chain=chain, is_active=True).order_by("id").values_list("id", flat=True))
    if "lead_never_came" in missing and clinics:  # leads who came in yesterday from Douyin and the website
        for i in range(HANDFUL):
            customer, _created = customer_upsert(
                chain=chain, source="demo",
                data={"name": rng.choice(["林晓", "郑雨", "何静", "孙悦", "马丽"]) + str(i + 1),
                      "mobile": f"1370{today:%m%d}{i:03d}", "source": rng.choice(["douyin", "website", "wecom"]),
                      "home_clinic": rng.choice(clinics)})
            yesterday = _at(today - dt.timedelta(days=first_delay("lead_never_came")), tz, 15, 10 * i)
            Customer.objects.filter(pk=customer.pk, first_visit_at__isnull=True).update(
                first_touch_at=yesterday, created_at=yesterday)
        added["lead_never_came"] = HANDFUL
    if "unfinished_treatment" in missing:  # a plan started 14 days ago, nothing booked since
        n = int(playbooks["unfinished_treatment"].trigger_params.get("days_without_appointment", 14)) \
            if "unfinished_treatment" in playbooks else 14
        day = today - dt.timedelta(days=n + first_delay("unfinished_treatment"))
        implant, crown = _item(chain, Category.IMPLANT), _item(chain, Category.PROSTHODONTICS)
        if implant is not None:
            for c in _patients(chain, rng, HANDFUL, visit_count__gt=0, last_visit_at__lt=_at(day, tz, 0),
                               treatment_plans__isnull=True):
                at = _at(day, tz, 10)
                appointment_upsert(customer=c, clinic=c.home_clinic, start_at=at, end_at=at + dt.timedelta(hours=1),
                                   status=AppointmentStatus.COMPLETED, doctor=_doctor(c),
                                   external_id=f"demo-fu-plan-visit-{day:%Y%m%d}-{c.id}")
                plan_record(customer=c, clinic=c.home_clinic, title="种植修复（1颗）", planned_at=at, doctor=_doctor(c),
                            external_id=f"demo-fu-plan-{day:%Y%m%d}-{c.id}",
                            steps=[{"seq": 1, "item_code": implant.code, "status": "done"},
                                   {"seq": 2, "item_code": (crown or implant).code, "status": "planned"}])
            added["unfinished_treatment"] = HANDFUL
    code = "consult_not_converted"
    if code in missing:  # leads who came for a free consultation days ago, went home to think and booked nothing
        n = playbooks[code].param("days_after_visit") if code in playbooks else TRIGGER_PARAM_DEFAULTS["days_after_visit"]
        day = today - dt.timedelta(days=n + first_delay(code))
        free = (ServiceItem.objects.filter(chain=chain, category=Category.EXAM, list_price_fen=0, is_active=True)
                .order_by("code").values_list("code", flat=True).first())
        anything = Q(Exists(Appointment.objects.filter(customer_id=OuterRef("pk")))) | Q(Exists(
            Order.objects.filter(customer_id=OuterRef("pk"))))
        adults = ~Q(birthday__gt=dt.date(today.year - 18, 1, 1))
        for i, c in enumerate(_patients(chain, rng, HANDFUL, ~anything, adults, first_visit_at__isnull=True,
                                        lifetime_spend_fen=0)):
            at = _at(day, tz, 10, 30 * i)
            appointment_upsert(customer=c, clinic=c.home_clinic, start_at=at, end_at=at + dt.timedelta(minutes=30),
                               status=AppointmentStatus.COMPLETED, doctor=_doctor(c), service_code=free,
                               external_id=f"demo-fu-consult-{day:%Y%m%d}-{c.id}")
        added[code] = HANDFUL
    if "recall" in missing:  # a cleaning six months ago, none since
        months = int(playbooks["recall"].trigger_params.get("months", 6)) if "recall" in playbooks else 6
        day = months_add(today, -months)
        cleaning = _item(chain, Category.CLEANING)
        if cleaning is not None:
            for c in _patients(chain, rng, HANDFUL, visit_count__gt=0, last_visit_at__lt=_at(day, tz, 0)):
                procedure_record(customer=c, clinic=c.home_clinic, item_code=cleaning.code, performed_on=day,
                                 doctor=_doctor(c), external_id=f"demo-fu-recall-{day:%Y%m%d}-{c.id}")
            added["recall"] = HANDFUL
    if "dormant" in missing:  # their last visit was a year before yesterday: they turn dormant today
        months = (int(playbooks["dormant"].trigger_params.get("months_without_visit", 12))
                  if "dormant" in playbooks else 12)
        day = months_add(today - dt.timedelta(days=1), -months)
        for c in _patients(chain, rng, HANDFUL, visit_count__gt=0, last_visit_at__lt=_at(day, tz, 0)):
            at = _at(day, tz, 11)
            appointment_upsert(customer=c, clinic=c.home_clinic, start_at=at, end_at=at + dt.timedelta(minutes=30),
                               status=AppointmentStatus.COMPLETED, doctor=_doctor(c),
                               external_id=f"demo-fu-dormant-{day:%Y%m%d}-{c.id}")
        added["dormant"] = HANDFUL
    if "member_birthday" in missing:
        added["member_birthday"] = _birthdays(chain, today, rng, playbooks.get("member_birthday"))
    if "giftcard_reminder" in missing:
        added["giftcard_reminder"] = _friend_cards(chain, today, rng)
    return added


def _birthdays(chain: Chain, today: dt.date, rng: random.Random, playbook) -> int:
    """Members whose birthday is `days_before` days ahead: the demo's members get their real birthdays moved
    there (a handful), since the seed's birthdays rarely land on one given day."""
    from smileloop.membership.enums import MembershipStatus
    from smileloop.membership.models import Membership

    if playbook is None or "day_of_month" in playbook.trigger_params:
        return 0
    target = today + dt.timedelta(days=int(playbook.trigger_params.get("days_before", 30)))
    ids = list(Membership.objects.filter(chain=chain, status=MembershipStatus.ACTIVE,
                                         customer__merged_into__isnull=True)
               .order_by("id").values_list("customer_id", flat=True)[:200])
    picked = rng.sample(ids, min(HANDFUL, len(ids)))
    for customer_id in picked:
        born = Customer.objects.filter(pk=customer_id).values_list("birthday", flat=True).first()
        year = born.year if born else rng.randint(1965, 1995)
        Customer.objects.filter(pk=customer_id).update(birthday=_safe_date(year, target.month, target.day))
    return len(picked)


def _safe_date(year: int, month: int, day: int) -> dt.date:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return dt.date(year, month, 28)


def _friend_cards(chain: Chain, today: dt.date, rng: random.Random) -> int:
    """A friends-and-family card given a week ago (its day-7 reminders are due today)."""
    from smileloop.giftcards.enums import ProgrammeKind
    from smileloop.giftcards.errors import GiftCardError
    from smileloop.giftcards.models import GiftCard, GiftCardProgramme
    from smileloop.giftcards.services import friend_card_issue
    from smileloop.membership.enums import MembershipStatus
    from smileloop.membership.models import Membership

    programme = (GiftCardProgramme.objects.filter(chain=chain, kind=ProgrammeKind.FRIEND_CARD, is_active=True)
                 .order_by("id").first())
    if programme is None:
        return 0
    days = sorted(d for d in (programme.reminder_days or []) if d > 0)
    if not days:
        return 0
    given = set(GiftCard.objects.filter(chain=chain).values_list("giver_id", flat=True))
    members = [m for m in Membership.objects.filter(chain=chain, status=MembershipStatus.ACTIVE)
               .order_by("id").values_list("customer_id", flat=True)[:200] if m not in given]
    issued = 0
    at = _at(today - dt.timedelta(days=days[0]), _tz(chain), 11)
    for customer_id in rng.sample(members, min(2, len(members))):
        try:
            friend_card_issue(member=Customer.objects.get(pk=customer_id), programme=programme,
                              trigger="院长决定：感谢老会员", key=f"demo:followups:card:{customer_id}", as_of=at)
            issued += 1
        except GiftCardError:
            continue
    return issued


# --- 3. today's run and a couple of complaints ---------------------------------------------------------------

def _complaints(chain: Chain, today: dt.date, rng: random.Random) -> int:
    tz = _tz(chain)
    yesterday_sat = (FollowupTask.objects.filter(chain_id=chain.id, playbook__trigger=Trigger.VISIT_COMPLETED,
                                                 status=TaskStatus.OPEN, due_at__lt=_at(today, tz, 0))
                     .order_by("id").values_list("id", flat=True)[:50])
    picked = rng.sample(list(yesterday_sat), min(2, len(yesterday_sat)))
    opened = 0
    for task in FollowupTask.objects.filter(pk__in=picked).select_related("assignee"):
        followup_complete(task=task, outcome=Outcome.COMPLAINT, actor=task.assignee,
                          note=rng.choice(["等待时间太长，约好的时间等了四十分钟", "收费和说好的不一样，没有提前说明"]))
        opened += 1
    FollowupTask.objects.filter(chain_id=chain.id, playbook__trigger=Trigger.COMPLAINT, status=TaskStatus.OPEN,
                                anchor_key__startswith="task:", due_at__gt=_at(today, tz, 18)).update(
        due_at=_at(today, tz, 18))
    return opened


def demo_load(*, chain: Chain, today: dt.date) -> dict:
    rng = random.Random(f"followups:{chain.name}:{today.isoformat()}")
    installed = playbooks_install_defaults(chain=chain)["created"]
    if FollowupTask.objects.filter(chain_id=chain.id).exists():
        return {"installed": installed, "loaded": False}
    with transaction.atomic():
        history = _history(chain, today)
    followups_close_by_goal(chain=chain)
    lapsed = followups_lapse(chain=chain, now=_at(today, _tz(chain), 8))  # as this morning's daily run would
    first = followups_generate(chain=chain, today=today)
    codes = {p.code for p in Playbook.objects.filter(chain=chain, is_active=True).exclude(trigger=Trigger.COMPLAINT)}
    missing = codes - _due_today(chain, today)
    added = _events(chain, today, missing, rng) if missing else {}
    second = followups_generate(chain=chain, today=today) if added else {"created": 0}
    complaints = _complaints(chain, today, rng)
    taken_over = _logins_take_over(chain)
    still_missing = sorted(codes - _due_today(chain, today))
    return {"installed": installed, "loaded": True, **history, "lapsed": lapsed,
            "created_today": first["created"] + second["created"],
            "events_added": added, "complaints": complaints, "login_tasks": taken_over, "playbooks_without_tasks_today": still_missing,
            "open_tasks": FollowupTask.objects.filter(chain_id=chain.id, status=TaskStatus.OPEN).count()}

