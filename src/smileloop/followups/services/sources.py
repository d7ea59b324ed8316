"""Where each trigger's tasks come from: one candidate queryset per trigger, bounded to the run's window.

A source gets the window's anchor days (one per due day: due day − step delay, for today and the few
catch-up days) and returns `Candidates`: a queryset over the triggering rows (procedures, appointments,
plans, customers …) filtered to those anchor days, with the field paths the assignee rule needs, the
expressions of the task's anchor key and anchor time, and `conds` — one condition per anchor day, which the
run turns into the due time with a SQL CASE of constants. No date arithmetic happens in SQL, so the same
statement runs on SQLite and PostgreSQL, and every date filter is a plain range on an indexed column.
"""

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from django.db.models import (
    Case,
    CharField,
    DateTimeField,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, Concat, Greatest

from smileloop.customers.models import Customer
from smileloop.followups.enums import RECALL_DEFAULT_CATEGORIES, TaskStatus, Trigger
from smileloop.followups.models import FollowupTask, Playbook, PlaybookStep
from smileloop.giftcards.enums import CardStatus, ReminderRecipient
from smileloop.giftcards.models import GiftCardReminder
from smileloop.membership.enums import MembershipStatus
from smileloop.membership.models import Membership
from smileloop.visits.enums import AppointmentStatus, PlanStatus
from smileloop.visits.models import Appointment, Order, OrderLine, Procedure, TreatmentPlan

NEVER, ALWAYS = Q(pk__isnull=True), Q(pk__isnull=False)  # compilable inside CASE (an empty IN is not)
BOOKING_STATUSES = (AppointmentStatus.BOOKED, AppointmentStatus.ARRIVED, AppointmentStatus.COMPLETED)
ARRIVAL_STATUSES = (AppointmentStatus.ARRIVED, AppointmentStatus.COMPLETED)


@dataclass
class Window:
    """The run's days in the chain's time zone."""

    today: dt.date
    tz: ZoneInfo
    now: dt.datetime
    catchup_days: int
    clinic_ids: list[int] = field(default_factory=list)

    def start(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time.min, tzinfo=self.tz)

    def due_days(self) -> list[dt.date]:
        return [self.today - dt.timedelta(days=k) for k in range(self.catchup_days + 1)]


@dataclass
class Candidates:
    qs: QuerySet
    customer: object  # field path or expression of the customer id
    clinic: object
    consultant: object
    doctor: object | None
    anchor_key: object
    anchor_at: object
    conds: list  # one Q per anchor day, aligned with the `anchor_days` the source was given
    context: dict = field(default_factory=dict)


def _key(prefix: str, *parts) -> Concat:
    """"prefix:part1:part2" as SQL."""
    items: list = [Value(prefix)]
    for part in parts:
        items += [Value(":"), part]
    return Concat(*items, output_field=CharField())


def _id(path: str):
    return Cast(path, output_field=CharField())


def _day_case(conds: list, values: list, output_field) -> Case:
    return Case(*[When(c, then=Value(v, output_field=output_field)) for c, v in zip(conds, values, strict=True)],
                default=Value(None, output_field=output_field), output_field=output_field)


def _day_range(path: str, w: Window, days: list[dt.date]) -> list[Q]:
    return [Q(**{f"{path}__gte": w.start(d), f"{path}__lt": w.start(d + dt.timedelta(days=1))}) for d in days]


def _overall(path: str, w: Window, days: list[dt.date]) -> Q:
    return Q(**{f"{path}__gte": w.start(min(days)), f"{path}__lt": w.start(max(days) + dt.timedelta(days=1))})


def months_add(day: dt.date, months: int) -> dt.date:
    """Same day `months` later, clamped to the month's end (Aug 31 + 6 months = Feb 28/29)."""
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    for d in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, d)
        except ValueError:
            continue
    raise ValueError(day)


def months_sources(anchor: dt.date, months: int) -> list[dt.date]:
    """Every source day whose date `months` later is `anchor` (several at month ends, none on some days)."""
    back = months_add(anchor, -months)
    probe = [back + dt.timedelta(days=i) for i in range(-3, 4)]
    return [d for d in probe if months_add(d, months) == anchor]


# --- the sources -------------------------------------------------------------------------------------------

def lead_created(pb: Playbook, w: Window, days: list[dt.date]) -> list[Candidates]:
    """Leads who never came, counted from when the lead arrived (first touch, else creation)."""
    qs = (Customer.objects.filter(chain_id=pb.chain_id, merged_into__isnull=True, first_visit_at__isnull=True)
          .annotate(lead_at=Coalesce("first_touch_at", "created_at")))
    conds = _day_range("lead_at", w, days)
    return [Candidates(qs=qs.filter(_overall("lead_at", w, days)), customer="id", clinic="home_clinic_id",
                       consultant="consultant_id", doctor=None, anchor_key=_key("lead", _id("id")),
                       anchor_at=F("lead_at"), conds=conds)]


def plan_unfinished(pb: Playbook, w: Window, days: list[dt.date]) -> list[Candidates]:
    """Open plans whose last activity (the patient's last visit, else the planning) is N days old and that
    have no appointment ahead; the anchor day is the day the N days ran out."""
    n = pb.param("days_without_appointment")
    sources = [d - dt.timedelta(days=n) for d in days]
    qs = (TreatmentPlan.objects
          .filter(chain_id=pb.chain_id, status=PlanStatus.ACTIVE, steps_done__lt=F("steps_total"), **_live_kw())
          .annotate(last_at=Greatest(Coalesce("customer__last_visit_at", "planned_at"), "planned_at")))
    conds = _day_range("last_at", w, sources)
    anchor_at = _day_case(conds, [w.start(d) for d in days], DateTimeField())
    qs = qs.filter(_overall("last_at", w, sources)).filter(
        ~Exists(Appointment.objects.filter(customer_id=OuterRef("customer_id"), status=AppointmentStatus.BOOKED,
                                           start_at__gte=w.now)))
    key = _key("plan", _id("id"), _day_case(conds, [d.isoformat() for d in days], CharField()))
    return [Candidates(qs=qs, customer="customer_id", clinic="clinic_id", consultant="customer__consultant_id",
                       doctor="doctor_id", anchor_key=key, anchor_at=anchor_at, conds=conds,
                       context={"procedure": F("title"),
                                "days_since_base": _day_case(conds, [d.isoformat() for d in sources], CharField())})]


def consulted_not_treated(pb: Playbook, w: Window, days: list[dt.date]) -> list[Candidates]:
    """Came (an arrived or completed appointment) and not treated since, `days_after_visit` (3) days after that visit,
    with nothing after it: no later appointment booked, kept or seen. The anchor day is the day the N days ran out
    (a booking from then on is the goal); the key names the visit day, one task per patient and visit day.

    Treated means a bill whose money was not all given back (amount above refunds) dated on or after the visit's day
    (the orders import's bills count by their dates too): a free exam written on the POS at 0 is no treatment, a bill
    refunded in full is a sale undone. What was paid before that day does not count: a patient treated years ago
    who comes for a new consultation and leaves without treatment is called like a new one. Spend an import recorded
    without its bills (`lifetime_spend_fen` beyond them) has no day; it is read as history from before the visit
    (such loads bring a clinic's past), so it does not stop the call either. A later visit or booking is the
    conversion call's own business: only the latest visit anchors.

    A patient in treatment is no consultation that failed to convert: not one with an open treatment plan (steps
    left; the unfinished-treatment playbook follows them) unless `skip_open_plan` is off, nor one whose visit came
    within `aftercare_days` (90; 0: no such skip) of a surgical procedure (a post-operative check, the post-operative
    playbook's business). Both are conditions of the statement, as the rest: no loop over patients."""
    n = pb.param("days_after_visit")
    sources = [d - dt.timedelta(days=n) for d in days]
    qs = Appointment.objects.filter(chain_id=pb.chain_id, status__in=ARRIVAL_STATUSES, **_live_kw())
    if w.clinic_ids:  # the (clinic, start_at) index, as _appointments
        qs = qs.filter(clinic_id__in=w.clinic_ids)
    conds = _day_range("start_at", w, sources)
    later = Appointment.objects.filter(customer_id=OuterRef("customer_id"), status__in=BOOKING_STATUSES,
                                       start_at__gt=OuterRef("start_at"))
    # Not paid since the row's own visit day (one condition per source day, as recall's nothing_since: a constant
    # bound, read from the order_customer_spend index).
    unpaid_since = Q(*[cond & ~Exists(Order.objects.filter(customer_id=OuterRef("customer_id"),
                                                           amount_fen__gt=F("refunded_fen"),
                                                           ordered_at__gte=w.start(s)))
                       for s, cond in zip(sources, conds, strict=True)], _connector=Q.OR)
    qs = qs.filter(_overall("start_at", w, sources)).filter(~Exists(later), unpaid_since)
    if pb.flag("skip_open_plan"):
        qs = qs.filter(~Exists(TreatmentPlan.objects.filter(customer_id=OuterRef("customer_id"),
                                                            status=PlanStatus.ACTIVE, steps_done__lt=F("steps_total"))))
    # A visit within `aftercare_days` after surgery (an extraction, an implant) is a post-operative check; 0: no skip.
    aftercare_days = pb.param("aftercare_days")
    if aftercare_days > 0:
        qs = qs.filter(~Q(*[cond & Exists(Procedure.objects.filter(
            customer_id=OuterRef("customer_id"), item__is_surgical=True,
            performed_on__range=(s - dt.timedelta(days=aftercare_days), s)))
            for s, cond in zip(sources, conds, strict=True)], _connector=Q.OR))
    visit_day = _day_case(conds, [d.isoformat() for d in sources], CharField())
    return [Candidates(qs=qs, customer="customer_id", clinic="clinic_id", consultant="customer__consultant_id",
                       doctor="doctor_id", anchor_key=_key("consult", visit_day),
                       anchor_at=_day_case(conds, [w.start(d) for d in days], DateTimeField()), conds=conds,
                       context={"procedure": Coalesce(F("service_item__name"), Value("")),
                                "days_since_base": visit_day})]


def _live_kw() -> dict:
    return {"customer__merged_into__isnull": True}


def procedure(pb: Playbook, w: Window, days: list[dt.date]) -> list[Candidates]:
    """Post-operative: procedures of a category performed on the anchor day (with `latest_only`, only the
    patient's latest procedure of that category counts: a new visit restarts the series). One task per patient
    and day, anchored on the day's first such procedure: three implants and a bone graft in one operation are one
    call to make, not four."""
    category = pb.trigger_params.get("category")
    qs = Procedure.objects.filter(chain_id=pb.chain_id, item__category=category, performed_on__in=days, **_live_kw())
    earlier_same_day = Procedure.objects.filter(customer_id=OuterRef("customer_id"), item__category=category,
                                                performed_on=OuterRef("performed_on"), id__lt=OuterRef("id"))
    qs = qs.filter(~Exists(earlier_same_day))
    if pb.trigger_params.get("latest_only"):  # the latest day's: the first of that day is the one kept below
        later = Procedure.objects.filter(customer_id=OuterRef("customer_id"), item__category=category,
                                         performed_on__gt=OuterRef("performed_on"))
        qs = qs.filter(~Exists(later))
    conds = [Q(performed_on=d) for d in days]
    return [Candidates(qs=qs, customer="customer_id", clinic="clinic_id", consultant="customer__consultant_id",
                       doctor="doctor_id", anchor_key=_key("procedure", _id("id")),
                       anchor_at=_day_case(conds, [w.start(d) for d in days], DateTimeField()), conds=conds,
                       context={"procedure": F("item__name"), "tooth": F("tooth")})]


def _appointments(pb: Playbook, w: Window, days: list[dt.date], status: str, prefix: str, per_day: bool):
    qs = Appointment.objects.filter(chain_id=pb.chain_id, status=status, **_live_kw())
    if w.clinic_ids:  # lets PostgreSQL range-scan the (clinic, start_at) index once per clinic
        qs = qs.filter(clinic_id__in=w.clinic_ids)
    conds = _day_range("start_at", w, days)
    qs = qs.filter(_overall("start_at", w, days))
    key = (_key(prefix, _day_case(conds, [d.isoformat() for d in days], CharField())) if per_day
           else _key(prefix, _id("id")))
    return [Candidates(qs=qs, customer="customer_id", clinic="clinic_id", consultant="customer__consultant_id",
                       doctor="doctor_id", anchor_key=key, anchor_at=F("start_at"), conds=conds,
                       context={"appointment_id": F("id"),
                                "procedure": Coalesce(F("service_item__name"), Value(""))})]


def visit_completed(pb: Playbook, w: Window, days: list[dt.date]) -> list[Candidates]:
    """Satisfaction: each completed visit (one task per patient and visit day, however many appointments)."""
    return _appointments(pb, w, days, AppointmentStatus.COMPLETED, "visit", per_day=True)


def no_show(pb: Playbook, w: Window, days: list[dt.date]) -> list[Candidates]:
    return _appointments(pb, w, days, AppointmentStatus.NO_SHOW, "appt", per_day=False)


# A billed cleaning or exam took place unless its money was all given back; one billed at 0 (a package's or a free
# one) took place too: only a refund of money can say it did not.
_LINE_NOT_REFUNDED = Q(refunded_fen__lt=F("amount_fen")) | Q(amount_fen=0)


def recall(pb: Playbook, w: Window, days: list[dt.date]) -> list[Candidates]:
    """Cleaning/exam due `months` after the patient's latest one, anchored on the due day.

    "The latest one" is a billed line (the POS records every cleaning) or a procedure record of those
    categories, and nothing of the kind since that day (a line refunded in full counts as neither; one task per
    patient and due day: anchor key "recall:<due day>", so a cleaning recorded both ways still makes one task)."""
    months = pb.param("months")
    categories = list(pb.trigger_params.get("categories") or RECALL_DEFAULT_CATEGORIES)
    per_day = [months_sources(d, months) for d in days]
    all_sources = sorted({s for group in per_day for s in group})
    if not all_sources:
        return []

    def nothing_since(customer: str, source_conds: list[Q]) -> Q:
        """Nothing of the kind after the row's own source day (not after the window's latest: a catch-up run must
        not make an exam's recall that a cleaning two days later replaced, which the daily run never made)."""
        return Q(*[cond & ~Exists(Procedure.objects.filter(customer_id=OuterRef(customer),
                                                           item__category__in=categories, performed_on__gt=s))
                   & ~Exists(OrderLine.objects.filter(_LINE_NOT_REFUNDED, order__customer_id=OuterRef(customer),
                                                      item__category__in=categories,
                                                      order__ordered_at__gte=w.start(s + dt.timedelta(days=1))))
                   for s, cond in zip(all_sources, source_conds, strict=True)], _connector=Q.OR)

    due_key = [d.isoformat() for d in days]
    out = []
    # procedures of the categories
    conds = [Q(performed_on__in=group) if group else NEVER for group in per_day]
    source_conds = [Q(performed_on=s) for s in all_sources]
    qs = (Procedure.objects.filter(chain_id=pb.chain_id, item__category__in=categories, performed_on__in=all_sources,
                                   **_live_kw()).filter(nothing_since("customer_id", source_conds)))
    out.append(Candidates(
        qs=qs, customer="customer_id", clinic="clinic_id", consultant="customer__consultant_id", doctor="doctor_id",
        anchor_key=_key("recall", _day_case(conds, due_key, CharField())),
        anchor_at=_day_case(conds, [w.start(d) for d in days], DateTimeField()), conds=conds,
        context={"procedure": F("item__name"),
                 "days_since_base": _day_case(source_conds, [s.isoformat() for s in all_sources], CharField())}))
    # billed lines of the categories (not refunded)
    conds = [Q(*[_day_range("order__ordered_at", w, [s])[0] for s in group], _connector=Q.OR) if group else NEVER
             for group in per_day]
    source_conds = _day_range("order__ordered_at", w, all_sources)
    qs = (OrderLine.objects.filter(_LINE_NOT_REFUNDED, order__chain_id=pb.chain_id, item__category__in=categories,
                                   order__customer__merged_into__isnull=True)
          .filter(_overall("order__ordered_at", w, all_sources))
          .filter(nothing_since("order__customer_id", source_conds)))
    if w.clinic_ids:
        qs = qs.filter(order__clinic_id__in=w.clinic_ids)
    out.append(Candidates(
        qs=qs, customer="order__customer_id", clinic="order__clinic_id", consultant="order__customer__consultant_id",
        doctor=None, anchor_key=_key("recall", _day_case(conds, due_key, CharField())),
        anchor_at=_day_case(conds, [w.start(d) for d in days], DateTimeField()), conds=conds,
        context={"procedure": F("item__name"),
                 "days_since_base": _day_case(source_conds, [s.isoformat() for s in all_sources], CharField())}))
    return out


def dormant(pb: Playbook, w: Window, days: list[dt.date]) -> list[Candidates]:
    """No visit for `months_without_visit` months (and nothing booked ahead); anchored on the last visit. Due the
    day after the mark, the day lifecycle's daily job moves the patient to dormant (last seen before the local
    midnight N months back), so the call and the dashboard's dormant count start together."""
    months = pb.param("months_without_visit")
    per_day = [months_sources(d - dt.timedelta(days=1), months) for d in days]
    all_sources = sorted({s for group in per_day for s in group})
    if not all_sources:
        return []
    conds = [Q(*[_day_range("last_visit_at", w, [s])[0] for s in group], _connector=Q.OR) if group else NEVER
             for group in per_day]
    source_conds = _day_range("last_visit_at", w, all_sources)
    qs = (Customer.objects.filter(chain_id=pb.chain_id, merged_into__isnull=True)
          .filter(_overall("last_visit_at", w, all_sources))
          .filter(~Exists(Appointment.objects.filter(customer_id=OuterRef("pk"), status=AppointmentStatus.BOOKED,
                                                     start_at__gte=w.now))))
    key = _key("dormant", _day_case(source_conds, [s.isoformat() for s in all_sources], CharField()))
    return [Candidates(qs=qs, customer="id", clinic="home_clinic_id", consultant="consultant_id", doctor=None,
                       anchor_key=key, anchor_at=F("last_visit_at"), conds=conds,
                       context={"days_since_base": _day_case(source_conds, [s.isoformat() for s in all_sources],
                                                             CharField())})]


def birthday_next_month(pb: Playbook, w: Window, days: list[dt.date]) -> list[Candidates]:
    """Member care: members (an active membership) with a birthday coming.

    Two modes: `days_before` (the default, 30) makes each member's task that many days before the birthday,
    which spreads the gift preparation over the month; `day_of_month` instead lists, on that day of each
    month, every member whose birthday falls in the next month (the articles' monthly list)."""
    base = Membership.objects.filter(chain_id=pb.chain_id, status=MembershipStatus.ACTIVE, **_live_kw())
    common = {"customer": "customer_id", "clinic": "customer__home_clinic_id", "consultant": "customer__consultant_id",
              "doctor": None}
    if "day_of_month" in pb.trigger_params:
        dom = int(pb.trigger_params["day_of_month"])
        hits = [(i, d) for i, d in enumerate(days) if d.day == dom]
        if not hits:
            return []
        i, day = hits[0]
        nxt = months_add(day.replace(day=1), 1)
        conds = [ALWAYS if j == i else NEVER for j in range(len(days))]
        return [Candidates(qs=base.filter(customer__birthday__month=nxt.month), **common,
                           anchor_key=_key("birthday", Value(f"{nxt:%Y-%m}")),
                           anchor_at=Value(w.start(day), output_field=DateTimeField()), conds=conds,
                           context={"birthday": F("customer__birthday"), "birthday_year": Value(nxt.year)})]
    ahead = pb.param("days_before")
    targets = [d + dt.timedelta(days=ahead) for d in days]
    conds = []
    for t in targets:
        cond = Q(customer__birthday__month=t.month, customer__birthday__day=t.day)
        if (t.month, t.day) == (2, 28) and not _leap(t.year):  # 29 February birthdays, in a common year
            cond |= Q(customer__birthday__month=2, customer__birthday__day=29)
        conds.append(cond)
    years = [str(t.year) for t in targets]
    return [Candidates(qs=base, **common, anchor_key=_key("birthday", _day_case(conds, years, CharField())),
                       anchor_at=_day_case(conds, [w.start(d) for d in days], DateTimeField()), conds=conds,
                       context={"birthday": F("customer__birthday"),
                                "birthday_year": _day_case(conds, years, CharField())})]


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def giftcard_reminder(pb: Playbook, w: Window, days: list[dt.date]) -> list[Candidates]:
    """Due gift-card reminders (giver and holder) of live cards, to the recipient's consultant/front desk."""
    out = []
    for recipient, person in ((ReminderRecipient.GIVER, "card__giver"), (ReminderRecipient.HOLDER, "card__holder")):
        qs = GiftCardReminder.objects.filter(
            card__chain_id=pb.chain_id, recipient=recipient, due_on__in=days, handled_at__isnull=True,
            cancelled_at__isnull=True, card__status=CardStatus.ACTIVE, **{f"{person}__isnull": False,
                                                                           f"{person}__merged_into__isnull": True})
        conds = [Q(due_on=d) for d in days]
        out.append(Candidates(
            qs=qs, customer=f"{person}_id", clinic=f"{person}__home_clinic_id", consultant=f"{person}__consultant_id",
            doctor=None, anchor_key=_key("giftcard-reminder", _id("id")),
            anchor_at=_day_case(conds, [w.start(d) for d in days], DateTimeField()), conds=conds,
            context={"card_code": F("card__code"), "recipient": Value(str(recipient)),
                     "expires_at": F("card__expires_at")}))
    return out


def segment(pb: Playbook, w: Window, days: list[dt.date], *, step: PlaybookStep | None = None) -> list[Candidates]:
    """Customers in a saved segment. The first step is due the day a customer is first found in the segment
    (its delay is not used; once per customer and playbook); later steps count their delay from that day."""
    first = pb.steps.filter(is_active=True).order_by("seq").first()
    if step is not None and first is not None and step.pk != first.pk:
        qs = FollowupTask.objects.filter(playbook=pb, step=first, **_live_kw()).exclude(status=TaskStatus.CANCELLED)
        conds = _day_range("anchor_at", w, days)
        return [Candidates(qs=qs.filter(_overall("anchor_at", w, days)), customer="customer_id", clinic="clinic_id",
                           consultant="customer__consultant_id", doctor=None, anchor_key=F("anchor_key"),
                           anchor_at=F("anchor_at"), conds=conds)]
    from smileloop.segments.models import Segment
    from smileloop.segments.selectors import segment_customers

    seg = Segment.objects.filter(pk=pb.trigger_params.get("segment_id"), chain_id=pb.chain_id, is_active=True).first()
    if seg is None:
        return []
    members = segment_customers(pb.chain_id, seg, today=w.today).values("pk")
    qs = Customer.objects.filter(chain_id=pb.chain_id, merged_into__isnull=True, pk__in=members)
    conds = [ALWAYS if d == w.today else NEVER for d in days]
    return [Candidates(qs=qs, customer="id", clinic="home_clinic_id", consultant="consultant_id", doctor=None,
                       anchor_key=Value(f"segment:{seg.pk}", output_field=CharField()),
                       anchor_at=Value(w.start(w.today), output_field=DateTimeField()), conds=conds)]


def segment_check(segment_id: int, *, chain_id: int) -> str | None:
    """Why a segment id cannot be used by a playbook (None when it can)."""
    from smileloop.segments.models import Segment

    if not Segment.objects.filter(pk=segment_id, chain_id=chain_id, is_active=True).exists():
        return "no such segment in this chain"
    return None


SOURCES = {
    Trigger.LEAD_CREATED: lead_created,
    Trigger.PLAN_UNFINISHED: plan_unfinished,
    Trigger.PROCEDURE: procedure,
    Trigger.VISIT_COMPLETED: visit_completed,
    Trigger.RECALL: recall,
    Trigger.DORMANT: dormant,
    Trigger.NO_SHOW: no_show,
    Trigger.BIRTHDAY_NEXT_MONTH: birthday_next_month,
    Trigger.GIFTCARD_REMINDER: giftcard_reminder,
    Trigger.SEGMENT: segment,
    Trigger.CONSULTED_NOT_TREATED: consulted_not_treated,
}
