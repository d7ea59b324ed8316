"""Reads over surveys. Staff reads take the Scope first and see the surveys of their clinics (the clinic
of the visit); the public page reads one survey by its token, which is the patient's credential."""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import TruncMonth
from django.urls import reverse

from smileloop.clinics.enums import Perm
from smileloop.clinics.models import Chain
from smileloop.core.scoping import Scope
from smileloop.customers.models import Customer
from smileloop.surveys.enums import DETRACTOR_MAX, PROMOTER_MIN, NpsGroup
from smileloop.surveys.errors import SurveyNotFound
from smileloop.surveys.models import DEFAULT_EXPIRY_DAYS, Survey, SurveySettings
from smileloop.visits.enums import AppointmentStatus
from smileloop.visits.models import Appointment, Order

TOKEN_MAX_LENGTH = 32


def chain_tz(chain: Chain) -> ZoneInfo:
    return ZoneInfo(chain.time_zone or "Asia/Shanghai")


def survey_expiry_days(*, chain_id: int) -> int:
    """The chain's link lifetime (SurveySettings), 14 days when the chain has no settings row."""
    days = SurveySettings.objects.filter(chain_id=chain_id).values_list("expiry_days", flat=True).first()
    return days or DEFAULT_EXPIRY_DAYS


# --- the public link -----------------------------------------------------------------------------------

def survey_get_by_token(token: str, *, for_update: bool = False) -> Survey:
    """The survey behind a link. Any unknown or malformed token is the same SurveyNotFound (no oracle). The token is
    matched exactly: one padded with white space (/s/%20<token>/) is malformed, not a second address of the link."""
    token = token or ""
    if not token or len(token) > TOKEN_MAX_LENGTH or not (token.isascii() and token.isalnum()):
        raise SurveyNotFound("Survey not found")
    qs = Survey.objects.select_related("clinic", "doctor", "customer")
    if for_update:
        qs = qs.select_for_update(of=("self",))
    survey = qs.filter(token=token).first()
    if survey is None:
        raise SurveyNotFound("Survey not found")
    return survey


# --- visits that need a survey (system read for the daily job) -----------------------------------------

@dataclass(frozen=True)
class VisitRow:
    appointment_id: int
    clinic_id: int
    customer_id: int
    doctor_id: int | None
    visit_date: dt.date
    order_id: int | None


def visits_without_survey(*, chain: Chain, since: dt.date, until: dt.date) -> list[VisitRow]:
    """Completed appointments with a local visit date in [since, until] and no survey yet (the day's first, when a
    patient had several that day, and none for a day already asked about), each with the same
    patient's first same-day order at the same clinic (if any). Two indexed range queries (the window's
    visits, then their patients' orders of the window); the local dates are worked out in Python for these
    rows only, so no per-row SQL date function runs over anyone's order history.

    A visit is a completed appointment. A paid order without an appointment (an oral-care product bought
    at the desk, a top-up) is not a visit: the demo seed and the PMS feed record every treatment visit as
    an appointment, and the appointment is what makes "one survey per visit" a unique key.
    """
    tz = chain_tz(chain)
    start = dt.datetime.combine(since, dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    visits = (Appointment.objects
              .filter(chain_id=chain.id, status=AppointmentStatus.COMPLETED, start_at__gte=start, start_at__lt=end,
                      customer__merged_into__isnull=True, customer__erased_at__isnull=True)
              .filter(~Exists(Survey.objects.filter(appointment_id=OuterRef("pk")))))
    rows = list(visits.order_by("start_at", "id")
                .values_list("id", "clinic_id", "customer_id", "doctor_id", "start_at"))
    if not rows:
        return []
    orders: dict[tuple[int, int, dt.date], int] = {}
    for order_id, customer_id, clinic_id, ordered_at in (
            Order.objects.filter(chain_id=chain.id, ordered_at__gte=start, ordered_at__lt=end,
                                 customer_id__in=visits.values("customer_id"))
            .order_by("-ordered_at", "-id").values_list("id", "customer_id", "clinic_id", "ordered_at")):
        orders[(customer_id, clinic_id, ordered_at.astimezone(tz).date())] = order_id  # the earliest wins
    # One survey per patient and day: a cleaning and a filling booked as two appointments are one visit to rate.
    asked = set(Survey.objects.filter(chain_id=chain.id, visit_date__gte=since, visit_date__lte=until)
                .values_list("customer_id", "visit_date"))
    out = []
    for appointment_id, clinic_id, customer_id, doctor_id, start_at in rows:
        day = start_at.astimezone(tz).date()
        if (customer_id, day) in asked:
            continue
        asked.add((customer_id, day))
        out.append(VisitRow(appointment_id, clinic_id, customer_id, doctor_id, day,
                            orders.get((customer_id, clinic_id, day))))
    return out


# --- staff reads ---------------------------------------------------------------------------------------

def survey_queryset(scope: Scope) -> QuerySet[Survey]:
    """Surveys of the scope's clinics (chain roles: the whole chain)."""
    qs = Survey.objects.filter(chain_id=scope.chain_id)
    if scope.clinic_ids is not None:
        qs = qs.filter(clinic_id__in=scope.clinic_ids)
    return qs


def survey_get(scope: Scope, survey_id) -> Survey:
    """NotFound for ids outside the scope, indistinguishable from missing ones."""
    try:
        survey_id = int(survey_id)
    except (TypeError, ValueError):
        raise SurveyNotFound("Survey not found")
    survey = survey_queryset(scope).select_related("clinic", "doctor", "customer").filter(pk=survey_id).first()
    if survey is None:
        raise SurveyNotFound("Survey not found")
    return survey


def survey_list(scope: Scope, *, clinic_id: int | None = None, answered: bool | None = None,
                since: dt.date | None = None, until: dt.date | None = None) -> QuerySet[Survey]:
    """Newest visits first; `since`/`until` filter the visit date."""
    qs = survey_queryset(scope).select_related("clinic", "doctor", "customer")
    if clinic_id is not None:
        qs = qs.filter(clinic_id=clinic_id)
    if answered is not None:
        qs = qs.filter(answered_at__isnull=not answered)
    if since is not None:
        qs = qs.filter(visit_date__gte=since)
    if until is not None:
        qs = qs.filter(visit_date__lte=until)
    return qs.order_by("-visit_date", "-id")


def survey_latest_answers(scope: Scope, *, clinic_id: int | None = None, since: dt.date | None = None,
                          until: dt.date | None = None, limit: int = 20) -> list[Survey]:
    qs = survey_list(scope, clinic_id=clinic_id, answered=True, since=since, until=until)
    return list(qs.order_by("-answered_at", "-id")[:limit])


def surveys_for_customer(scope: Scope, customer: Customer, *, limit: int = 20) -> list[Survey]:
    return list(survey_queryset(scope).filter(customer=customer).select_related("clinic", "doctor")
                .order_by("-visit_date", "-id")[:limit])


# --- NPS -----------------------------------------------------------------------------------------------

def round_1(numerator: int, denominator: int) -> Decimal:
    """numerator / denominator to one decimal, half away from zero, in integer arithmetic (no float drift):
    NPS 100·(1−0)/3 = 33.3, 100·2/3 = 66.7, −100/6 = −16.7."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    sign = -1 if numerator < 0 else 1
    tenths = (2 * 10 * abs(numerator) + denominator) // (2 * denominator)
    return Decimal(sign * tenths).scaleb(-1)


@dataclass(frozen=True)
class NpsRow:
    """One group's answers. NPS = %promoters − %detractors = 100·(P − D)/N, exact as a Fraction."""

    key: object
    label: str
    responses: int
    promoters: int
    passives: int
    detractors: int
    score_sum: int

    @property
    def nps_exact(self) -> Fraction:
        return Fraction(100 * (self.promoters - self.detractors), self.responses)

    @property
    def nps(self) -> Decimal:
        """Rounded to one decimal, half away from zero."""
        return round_1(100 * (self.promoters - self.detractors), self.responses)

    @property
    def average(self) -> Decimal:
        return round_1(self.score_sum, self.responses)

    def share(self, part: int) -> Decimal:
        return round_1(100 * part, self.responses)

    @property
    def promoter_pct(self) -> Decimal:
        return self.share(self.promoters)

    @property
    def passive_pct(self) -> Decimal:
        return self.share(self.passives)

    @property
    def detractor_pct(self) -> Decimal:
        return self.share(self.detractors)


def _answered(scope: Scope, *, since, until, clinic_id) -> QuerySet[Survey]:
    qs = survey_queryset(scope).filter(answered_at__isnull=False)
    if clinic_id is not None:
        qs = qs.filter(clinic_id=clinic_id)
    if since is not None:
        qs = qs.filter(visit_date__gte=since)
    if until is not None:
        qs = qs.filter(visit_date__lte=until)
    return qs


def nps(scope: Scope, *, group_by: str, since: dt.date | None = None, until: dt.date | None = None,
        clinic_id: int | None = None) -> list[NpsRow]:
    """NPS per clinic, doctor or month of the visit date (one GROUP BY query). Only answered surveys count;
    `since`/`until` bound the visit date (inclusive). Ordered by clinic id, doctor id (no doctor last) or month
    (oldest first): stable on every database, unlike name collations."""
    qs = _answered(scope, since=since, until=until, clinic_id=clinic_id)
    if group_by == NpsGroup.CLINIC:
        keys, order = ("clinic_id", "clinic__name"), ("clinic_id",)
    elif group_by == NpsGroup.DOCTOR:
        keys, order = ("doctor_id", "doctor__name"), (F("doctor_id").asc(nulls_last=True),)
    elif group_by == NpsGroup.MONTH:
        qs = qs.annotate(month=TruncMonth("visit_date"))
        keys, order = ("month",), ("month",)
    else:
        raise ValueError(f"group_by must be one of {', '.join(NpsGroup.values)}")
    rows = (qs.order_by().values(*keys)
            .annotate(responses=Count("id"),
                      promoters=Count("id", filter=Q(score__gte=PROMOTER_MIN)),
                      detractors=Count("id", filter=Q(score__lte=DETRACTOR_MAX)),
                      score_sum=Sum("score"))
            .order_by(*order))
    out = []
    for row in rows:
        if group_by == NpsGroup.MONTH:
            month = row["month"]
            if isinstance(month, dt.datetime):
                month = month.date()
            key, label = month, month.strftime("%Y-%m")
        else:
            key, label = row[keys[0]], row[keys[1]] or ""
        out.append(NpsRow(key=key, label=label, responses=row["responses"], promoters=row["promoters"],
                          passives=row["responses"] - row["promoters"] - row["detractors"],
                          detractors=row["detractors"], score_sum=row["score_sum"] or 0))
    return out


@dataclass(frozen=True)
class SurveyTotals:
    created: int
    sent: int
    opened: int
    answered: int
    detractors: int

    @property
    def response_rate(self) -> Decimal | None:
        """Answered ÷ sent, in percent (opening or answering a link marks it sent, so answered ≤ sent)."""
        return round_1(100 * self.answered, self.sent) if self.sent else None


def survey_totals(scope: Scope, *, since: dt.date | None = None, until: dt.date | None = None,
                  clinic_id: int | None = None) -> SurveyTotals:
    """Funnel counts over the visit dates in [since, until] (one aggregate query)."""
    qs = survey_queryset(scope)
    if clinic_id is not None:
        qs = qs.filter(clinic_id=clinic_id)
    if since is not None:
        qs = qs.filter(visit_date__gte=since)
    if until is not None:
        qs = qs.filter(visit_date__lte=until)
    data = qs.aggregate(created=Count("id"), sent=Count("id", filter=Q(sent_at__isnull=False)),
                        opened=Count("id", filter=Q(opened_at__isnull=False)),
                        answered=Count("id", filter=Q(answered_at__isnull=False)),
                        detractors=Count("id", filter=Q(score__lte=DETRACTOR_MAX)))
    return SurveyTotals(**data)


def surveys_section(scope: Scope, customer: Customer) -> dict | None:
    """The 360 page's section loader (customers.sections): None for roles without survey.view."""
    if not scope.can(Perm.SURVEY_VIEW):
        return None
    return {"items": surveys_for_customer(scope, customer)}


def survey_links_for_tasks(tasks) -> dict[int, str]:
    """{survey_link} of follow-up scripts: the public link of the survey of each task's visit (one query).

    Registered with followups' context providers (followups sits below surveys and cannot read them)."""
    by_appointment: dict[int, list[int]] = {}
    for task in tasks:
        appointment_id = (task.context or {}).get("appointment_id")
        if appointment_id:
            by_appointment.setdefault(int(appointment_id), []).append(task.id)
    if not by_appointment:
        return {}
    links: dict[int, str] = {}
    for appointment_id, token in Survey.objects.filter(appointment_id__in=by_appointment).values_list(
            "appointment_id", "token"):
        url = settings.PUBLIC_BASE_URL + reverse("surveys:answer", args=[token])
        for task_id in by_appointment[appointment_id]:
            links[task_id] = url
    return links
