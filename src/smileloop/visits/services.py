"""Writes for appointments, orders, refunds, treatment plans and procedures (fed by a PMS/POS).

Each write validates everything first and raises ValidationFailed listing every bad field, so a
rejected write changes nothing. Re-sending a record with the same `external_id` updates it
(appointments, plans) or returns the original (orders, refunds, procedures: immutable facts).
"""

import datetime as dt
from collections.abc import Callable
from contextlib import contextmanager

from django.db import IntegrityError, transaction
from django.db.models import F, Max, Min
from django.utils import timezone
from django.utils.translation import gettext_noop

from smileloop.clinics.enums import Perm
from smileloop.clinics.models import Clinic, Staff
from smileloop.core.bounds import BIGINT_MAX, BOOKING_HORIZON, CLOCK_SKEW, MAX_PLAN_STEPS, record_time_errors
from smileloop.core.errors import Conflict, FieldError, PermissionDenied, ValidationFailed
from smileloop.core.money import money_split, refund_lines_split
from smileloop.core.scoping import Scope
from smileloop.core.sql import db_datetime
from smileloop.customers.enums import Stage
from smileloop.customers.models import Customer
from smileloop.customers.services import (
    ERASED_REFUSED,
    customer_lock_live,
    customer_stage_advance,
    customer_visit_stats_apply,
    customers_lock,
    customers_refuse_erased,
    interaction_add,
)
from smileloop.customers.timeline import timeline_format
from smileloop.visits.enums import (
    TENDER_METHODS,
    AppointmentStatus,
    OrderStatus,
    PaymentMethod,
    PlanStatus,
    StepStatus,
)
from smileloop.visits.models import (
    Appointment,
    Order,
    OrderLine,
    Payment,
    PlanStep,
    Procedure,
    Refund,
    RefundLine,
    ServiceItem,
    TreatmentPlan,
)

_VISIT_STATUSES = {AppointmentStatus.ARRIVED, AppointmentStatus.COMPLETED}
_MISSED_STATUSES = (AppointmentStatus.NO_SHOW, AppointmentStatus.CANCELLED)
_BOOKABLE_STATUSES = {AppointmentStatus.BOOKED, AppointmentStatus.CANCELLED}
_REFUND_METHODS = [m for m in PaymentMethod.values if m not in TENDER_METHODS]  # money: what refund_record gives back
MAX_APPOINTMENT = dt.timedelta(hours=24)


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The start of the local `day` and of the next, aware."""
    return (timezone.make_aware(dt.datetime.combine(day, dt.time.min)),
            timezone.make_aware(dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min)))


def _local_day(at: dt.datetime) -> tuple:
    """The bounds of `at`'s local day, as plain-SQL parameters."""
    start, end = _day_bounds(timezone.localdate(at))
    return db_datetime(start), db_datetime(end)


def _visit_day_counted(*, customer_id: int, at: dt.datetime, order_id: int | None = None,
                       appointment_id: int | None = None) -> tuple[str, list]:
    """The SQL condition under which a visit on `at`'s day is counted already, for `customer_visit_stats_apply`.

    visit_count = the patient's arrived or completed appointments, plus the days with a paid bill and no such
    appointment (a walk-in who pays at the desk came in; a POS history imported without appointments is not
    "0 visits"). So a bill counts unless that day has a visit appointment or another bill; an appointment counts
    unless that day's visit was counted by a bill alone (a bill and no other visit appointment)."""
    start, end = _local_day(at)
    visit = (f"EXISTS (SELECT 1 FROM {Appointment._meta.db_table} WHERE customer_id = %s AND status IN (%s, %s) "
             f"AND start_at >= %s AND start_at < %s AND id <> %s)")
    visit_params = [customer_id, AppointmentStatus.ARRIVED, AppointmentStatus.COMPLETED, start, end,
                    appointment_id or 0]
    bill = (f"EXISTS (SELECT 1 FROM {Order._meta.db_table} WHERE customer_id = %s AND ordered_at >= %s "
            f"AND ordered_at < %s AND id <> %s)")
    bill_params = [customer_id, start, end, order_id or 0]
    if order_id is not None:
        return f"({visit} OR {bill})", [*visit_params, *bill_params]
    return f"({bill} AND NOT {visit})", [*bill_params, *visit_params]


def _visit_days_count(customer_id: int, days: set[dt.date]) -> int:
    """What the local `days` add to visit_count by the rule above: each day's arrived or completed appointments, or 1
    for a day with a bill and no such appointment."""
    counted = 0
    for day in days:
        start, end = _day_bounds(day)
        visits = Appointment.objects.filter(customer_id=customer_id, status__in=_VISIT_STATUSES, start_at__gte=start,
                                            start_at__lt=end).count()
        counted += visits or int(Order.objects.filter(customer_id=customer_id, ordered_at__gte=start,
                                                      ordered_at__lt=end).exists())
    return counted


def _visit_span_refresh(customer_id: int) -> None:
    """first/last_visit_at read again from the rows they are kept from (visit appointments' start, bills' time), for
    a visit corrected away or moved: kept by min/max as visits arrive, they could only move outwards, so a
    mistaken "arrived" next month stayed the patient's last visit after the PMS took it back."""
    visits = Appointment.objects.filter(customer_id=customer_id, status__in=_VISIT_STATUSES).aggregate(
        first=Min("start_at"), last=Max("start_at"))
    bills = Order.objects.filter(customer_id=customer_id).aggregate(first=Min("ordered_at"), last=Max("ordered_at"))
    firsts = [at for at in (visits["first"], bills["first"]) if at is not None]
    lasts = [at for at in (visits["last"], bills["last"]) if at is not None]
    Customer.objects.filter(pk=customer_id).update(first_visit_at=min(firsts, default=None),
                                                  last_visit_at=max(lasts, default=None))


# Timeline sentences (stored in English, shown translated: customers.timeline; registered in apps.py).
VISIT_OF = gettext_noop("visit %(status)s: %(item)s")
VISIT = gettext_noop("visit %(status)s")
ARRIVED = gettext_noop("arrived at %(clinic)s on %(day)s")
BOOKED = gettext_noop("appointment booked at %(clinic)s for %(day)s")
PAID = gettext_noop("paid order #%(order)s at %(clinic)s on %(day)s")
TIMELINE_TEMPLATES = (VISIT_OF, VISIT, ARRIVED, BOOKED, PAID)
# How pages show the two visit sentences (the status is a label there: "Visit (Completed): 洁牙", not "visit Completed")
VISIT_OF_SHOWN = gettext_noop("Visit (%(status)s): %(item)s")
VISIT_SHOWN = gettext_noop("Visit (%(status)s)")


def _aware(value: dt.datetime, field: str, errors: list) -> dt.datetime | None:
    if value is None:
        errors.append(FieldError(field, "is required"))
        return None
    if timezone.is_naive(value):
        return timezone.make_aware(value)  # naive input means the chain's local time
    return value


def _items_by_code(chain_id: int, codes: list[str]) -> dict[str, ServiceItem]:
    return {i.code: i for i in ServiceItem.objects.filter(chain_id=chain_id, code__in=set(codes))}


def _check_clinic(customer: Customer, clinic: Clinic, errors: list) -> None:
    if clinic.chain_id != customer.chain_id:
        errors.append(FieldError("clinic", "is not a clinic of this chain", str(clinic.pk)))


def _external_id_lock(customer: Customer, external_id: str | None) -> None:
    """Records a PMS/POS names by external_id are looked up, then created: a retry sent with a new key while the first
    is in flight (two terminals, a client timeout) would find nothing twice and clash on the unique index (a 500).
    Locking the customer first makes the second wait and find the first's record."""
    if external_id:
        customers_lock(customer.pk)


def _new_record_check(customer: Customer, *, erased: bool | None = None) -> None:
    """A new appointment, bill, plan or procedure for an erased record is a 409 `erased` (customers_refuse_erased):
    a returning patient is a new record. What the PMS sends again about the record's earlier care (a booking's
    status, a plan's progress, a refund) is still taken. `erased`: already read under the row's lock (_visit_lock)."""
    if erased is None:
        customers_refuse_erased(customer.pk, field="customer_id")
    elif erased:
        raise Conflict(ERASED_REFUSED, code="erased", field="customer_id")


def _visit_lock(customer: Customer) -> bool:
    """A bill or visit appointment counts its day unless another is there (`_visit_day_counted`): two written at once
    each missed the other's uncommitted row and the day counted twice. The customer's row, locked first, makes the
    second wait and see the first (and covers `_external_id_lock`). Returns whether the record is erased (read
    under the lock, for _new_record_check). A record merged away meanwhile is NotFound: its new row stayed on the
    tombstone, out of sight, and so did a bill's spend."""
    return bool(customer_lock_live(customer.pk))


@contextmanager
def _created_once(what: str, external_id: str | None):
    """The same external_id sent at the same moment for another customer clashes on the unique index: the conflict a
    sequential request gets, not a 500."""
    if not external_id:
        yield
        return
    try:
        with transaction.atomic():
            yield
    except IntegrityError as exc:
        if "external" not in str(exc):
            raise
        raise Conflict(f"external_id belongs to {what} of another customer", code="external_id_conflict",
                       field="external_id") from exc


def _existing_writable(scope: Scope | None, existing, what: str) -> None:
    """A record an external_id names may be replayed or updated only by a caller who may write its clinic: the same
    id must not read or move another clinic's appointment, plan or procedure (`scope` None: an internal caller)."""
    if scope is not None and not scope.allows_clinic(existing.clinic_id):
        raise PermissionDenied(f"external_id names a {what} of a clinic outside your clinics", field="external_id")


@transaction.atomic
def appointment_upsert(*, customer: Customer, clinic: Clinic, start_at: dt.datetime, end_at: dt.datetime,
                       status: str = AppointmentStatus.BOOKED, doctor: Staff | None = None,
                       service_code: str | None = None, notes: str = "", external_id: str | None = None,
                       actor: Staff | None = None, scope: Scope | None = None) -> tuple[Appointment, bool]:
    errors: list[FieldError] = []
    _check_clinic(customer, clinic, errors)
    start_at, end_at = _aware(start_at, "start_at", errors), _aware(end_at, "end_at", errors)
    # A visit that happened (arrived, completed, no-show) is a fact; a booked or cancelled one may lie ahead.
    errors += record_time_errors("start_at", start_at, ahead=BOOKING_HORIZON if status in _BOOKABLE_STATUSES
                                 else CLOCK_SKEW)
    if start_at and end_at and end_at <= start_at:
        errors.append(FieldError("end_at", "must be after start_at", str(end_at)))
    elif start_at and end_at and end_at - start_at > MAX_APPOINTMENT:
        errors.append(FieldError("end_at", "must be within 24 hours after start_at", str(end_at)))
    if status not in AppointmentStatus.values:
        errors.append(FieldError("status", f"must be one of {', '.join(AppointmentStatus.values)}", status))
    item = None
    if service_code:
        item = _items_by_code(customer.chain_id, [service_code]).get(service_code)
        if item is None:
            errors.append(FieldError("service_code", "is not in the service catalogue", service_code))
    if doctor is not None and doctor.chain_id != customer.chain_id:
        errors.append(FieldError("doctor", "is not a staff member of this chain", str(doctor.pk)))
    if errors:
        raise ValidationFailed(errors)
    appointment = None
    erased = _visit_lock(customer)
    if external_id:
        appointment = Appointment.objects.select_for_update().filter(chain_id=customer.chain_id,
                                                                     external_id=external_id).first()
        if appointment and appointment.customer_id != customer.id:
            raise Conflict("external_id belongs to an appointment of another customer", code="external_id_conflict",
                           field="external_id")
        if appointment:
            _existing_writable(scope, appointment, "appointment")
    created = appointment is None
    if created:
        _new_record_check(customer, erased=erased)
    was_visit = bool(appointment and appointment.status in _VISIT_STATUSES)
    was_booked = bool(appointment and appointment.status == AppointmentStatus.BOOKED)
    # A visit that is no longer one (arrived → booked, a PMS correcting itself) or moves changes what its days count
    # and the first/last visit: it was counted once and never taken back, so arrived → booked → arrived counted it
    # twice. Resending a visit unchanged (arrived → completed) reads nothing again.
    corrected = was_visit and (status not in _VISIT_STATUSES or start_at != appointment.start_at)
    recount_days = ({timezone.localdate(appointment.start_at)} | ({timezone.localdate(start_at)} if status
                    in _VISIT_STATUSES else set())) if corrected else set()
    counted_before = _visit_days_count(customer.id, recount_days)
    appointment = appointment or Appointment(chain_id=customer.chain_id, customer=customer, external_id=external_id)
    appointment.clinic, appointment.start_at, appointment.end_at = clinic, start_at, end_at
    appointment.status, appointment.doctor, appointment.service_item = status, doctor, item
    # What the erasure blanked (visits_erase_hook) stays blank: the PMS's next sync of the booking wrote it back.
    # `erased` read under the lock: an erasure committed while this waited is not on the `customer` given.
    appointment.notes = "" if customer.erased_at or erased else (notes or "")
    with _created_once("an appointment", external_id if created else None):
        appointment.save()
    if recount_days:
        customer_visit_stats_apply(customer_id=customer.id,
                                   visit_delta=_visit_days_count(customer.id, recount_days) - counted_before)
        _visit_span_refresh(customer.id)
    if status in _VISIT_STATUSES and not was_visit:
        customer_visit_stats_apply(customer_id=customer.id, visit_at=start_at, count_visit_unless=_visit_day_counted(
            customer_id=customer.id, at=start_at, appointment_id=appointment.id))
        interaction_add(customer=customer, kind="visit", clinic=clinic, author=actor, occurred_at=start_at,
                        text=timeline_format(VISIT_OF, status=status, item=item.name) if item
                        else timeline_format(VISIT, status=status))
        # A booking first heard of now is something new however long ago it took place (stages_derive counts a
        # booking made since); a known one turned into a visit counts from the day of the visit.
        customer_stage_advance(customer=customer, to=Stage.ARRIVED, actor=actor, at=start_at,
                               event_at=None if created else start_at,
                               cause=timeline_format(ARRIVED, clinic=clinic.name, day=timezone.localdate(start_at)))
    elif (status == AppointmentStatus.BOOKED and not was_booked) or (created and status in _MISSED_STATUSES):
        # First heard of as missed or cancelled, it was still booked: a PMS that sends only an appointment's last
        # status must not leave the patient a lead where one that sent "booked" first made them booked. A known one
        # booked again (cancelled → booked) is a booking of the day it was made, as stages_derive reads it: one made
        # before a patient was marked lost does not bring them back (the next night's run set them lost again).
        customer_stage_advance(customer=customer, to=Stage.BOOKED, actor=actor,
                               event_at=None if created else appointment.created_at,
                               cause=timeline_format(BOOKED, clinic=clinic.name, day=timezone.localdate(start_at)))
    return appointment, created


def _line_values(chain_id: int, lines: list[dict], errors: list, items: dict[str, ServiceItem] | None = None
                 ) -> list[tuple[ServiceItem, int, int, int, int, str]]:
    if not lines:
        errors.append(FieldError("lines", "an order needs at least one line"))
        return []
    codes = [str(line.get("item_code", "")) for line in lines]
    if items is None or any(code not in items or items[code].chain_id != chain_id for code in codes):
        items = _items_by_code(chain_id, codes)
    out = []
    for i, line in enumerate(lines):
        code = str(line.get("item_code", ""))
        item = items.get(code)
        if item is None:
            errors.append(FieldError(f"lines[{i}].item_code", "is not in the service catalogue", code))
            continue
        qty = line.get("quantity", 1)
        unit = line.get("unit_price_fen", item.list_price_fen)
        discount = line.get("discount_fen", 0) or 0
        if not isinstance(qty, int) or qty < 1:
            errors.append(FieldError(f"lines[{i}].quantity", "must be a whole number ≥ 1", str(qty)))
            continue
        if not isinstance(unit, int) or unit < 0:
            errors.append(FieldError(f"lines[{i}].unit_price_fen", "must be a whole number of fen ≥ 0", str(unit)))
            continue
        if not isinstance(discount, int) or discount < 0 or discount > qty * unit:
            errors.append(FieldError(f"lines[{i}].discount_fen", "must be between 0 and the line's list total",
                                     str(discount)))
            continue
        out.append((item, qty, unit, discount, qty * unit - discount, str(line.get("tooth", "") or "")[:32]))
    return out


def _order_resent_differs(order: Order, *, clinic: Clinic, ordered_at, lines: list[dict], payments: list[dict]
                          ) -> str | None:
    """What a bill sent again under its external_id changes, or None for the same bill (a retry with a new key: two
    terminals, a client timeout, a PMS re-syncing). Compared as sent, not validated again, so a retry still answers
    after the catalogue changed; a line without a unit price is taken at the price recorded. A changed bill was
    answered with the first one (200), the change lost without a word."""
    if clinic.pk != order.clinic_id:
        return "clinic"
    if isinstance(ordered_at, dt.datetime) and timezone.is_naive(ordered_at):
        ordered_at = timezone.make_aware(ordered_at)
    if ordered_at != order.ordered_at:
        return "ordered_at"
    recorded = [(ln.item.code, ln.quantity, ln.unit_price_fen, ln.discount_fen, ln.tooth)
                for ln in order.lines.select_related("item").order_by("pk")]
    sent = [(str(ln.get("item_code", "")), ln.get("quantity", 1), ln.get("unit_price_fen", rec[2]),
             ln.get("discount_fen", 0) or 0, str(ln.get("tooth", "") or "")[:32])
            for ln, rec in zip(lines or [], recorded, strict=False)]
    if len(lines or []) != len(recorded) or sent != recorded:
        return "lines"
    paid = sorted((p.method, p.amount_fen) for p in order.payments.all())
    if sorted((str(p.get("method")), p.get("amount_fen")) for p in payments or []) != paid:
        return "payments"
    return None


@transaction.atomic
def order_record(*, customer: Customer, clinic: Clinic, ordered_at: dt.datetime, lines: list[dict],
                 payments: list[dict], external_id: str | None = None, cashier: Staff | None = None,
                 notes: str = "", items: dict[str, ServiceItem] | None = None, scope: Scope | None = None,
                 customer_locked: bool = False) -> tuple[Order, bool]:
    """Record a paid POS bill. Payments, when given, must add up to the bill exactly; a bill without them is
    paid by means the POS did not report (as an imported bill). Idempotent on external_id.

    `items`: the catalogue rows by code when the caller has just read them (checkout), to spare the read. A new
    order carries `lines_written`, its OrderLine rows with ids and items, in line order (a replayed one does
    not: read `order.lines`). `customer_locked`: the caller holds the customer's row lock and has refused an erased
    record under it (checkout_pay), so neither is done twice."""
    # checkout_pay holds the row's lock already and refused an erased record under it
    erased = False if customer_locked else _visit_lock(customer)
    if external_id:
        existing = Order.objects.filter(chain_id=customer.chain_id, external_id=external_id).first()
        if existing:
            if existing.customer_id != customer.id:
                raise Conflict("external_id belongs to an order of another customer", code="external_id_conflict",
                               field="external_id")
            _existing_writable(scope, existing, "order")
            differs = _order_resent_differs(existing, clinic=clinic, ordered_at=ordered_at, lines=lines,
                                            payments=payments)
            if differs:
                raise Conflict(f"external_id already names a recorded bill with other {differs}; a recorded bill "
                               "is not changed: record a refund, then the corrected bill under a new external_id",
                               code="external_id_conflict", field="external_id")
            return existing, False
    _new_record_check(customer, erased=erased)
    errors: list[FieldError] = []
    _check_clinic(customer, clinic, errors)
    ordered_at = _aware(ordered_at, "ordered_at", errors)
    errors += record_time_errors("ordered_at", ordered_at)
    values = _line_values(customer.chain_id, lines, errors, items)
    total = sum(v[4] for v in values)
    if customer.lifetime_spend_fen + total > BIGINT_MAX:  # bills at the bounds: the 19th overflowed it (a 500)
        errors.append(FieldError("lines", f"would take the patient's lifetime spend past {BIGINT_MAX} fen, the most "
                                          "it can hold", str(total)))
    pay_total = 0
    for i, p in enumerate(payments or []):
        if p.get("method") not in PaymentMethod.values:
            errors.append(FieldError(f"payments[{i}].method", f"must be one of {', '.join(PaymentMethod.values)}",
                                     str(p.get("method"))))
        amount = p.get("amount_fen")
        if not isinstance(amount, int) or amount <= 0:
            errors.append(FieldError(f"payments[{i}].amount_fen", "must be a whole number of fen > 0", str(amount)))
        else:
            pay_total += amount
    if not errors and payments and pay_total != total:
        errors.append(FieldError("payments", f"add up to {pay_total} fen but the bill is {total} fen", str(pay_total)))
    if errors:
        raise ValidationFailed(errors)
    with _created_once("an order", external_id):
        order = Order.objects.create(
            chain_id=customer.chain_id, clinic=clinic, customer=customer, external_id=external_id,
            ordered_at=ordered_at, list_total_fen=sum(v[1] * v[2] for v in values),
            discount_fen=sum(v[3] for v in values), amount_fen=total, cashier=cashier, notes=notes,
        )
    order.lines_written = OrderLine.objects.bulk_create([
        OrderLine(order=order, item=item, quantity=qty, unit_price_fen=unit, discount_fen=disc, amount_fen=amount,
                  tooth=tooth)
        for item, qty, unit, disc, amount, tooth in values
    ])
    Payment.objects.bulk_create([
        Payment(order=order, method=p["method"], amount_fen=p["amount_fen"], paid_at=ordered_at) for p in payments or []
    ])
    customer_visit_stats_apply(customer_id=customer.id, visit_at=ordered_at, spend_delta_fen=total,
                               count_visit_unless=_visit_day_counted(customer_id=customer.id, at=ordered_at,
                                                                     order_id=order.id))
    customer_stage_advance(customer=customer, to=Stage.TREATED, actor=cashier, at=ordered_at, event_at=ordered_at,
                           cause=timeline_format(PAID, order=order.id, clinic=clinic.name,
                                                 day=timezone.localdate(ordered_at)))
    return order, True


# An app above this one that settles orders itself (checkout: wallet, points, gift cards, vouchers, packages) names
# the orders it owns: a refund recorded here would give their value back as money and leave those tenders spent.
_REFUND_OWNERS: list[Callable[[Order], str | None]] = []


def refund_owner_register(owner: Callable[[Order], str | None]) -> None:
    """`owner(order)`: a sentence saying where to refund an order that app settled, else None."""
    _REFUND_OWNERS.append(owner)


# Orders whose refund here is money going back on staff's own decision, not a POS correcting a bill (the bill of a
# service package once it is no longer in force): only a caller with Perm.PAYMENT_REFUND records it.
_REFUND_DECISIONS: list[Callable[[Order], str | None]] = []


def refund_decision_register(check: Callable[[Order], str | None]) -> None:
    """`check(order)`: a sentence saying why refunding this order is a director's decision (it then needs
    `payment.refund`), else None."""
    _REFUND_DECISIONS.append(check)


# What an app above this one moves with a refund recorded here on staff's request (not by the order's owner): the
# points a package's bill earned go back in proportion to the money.
_REFUND_FOLLOWERS: list[Callable[[Order, Refund, Staff | None], None]] = []


def refund_follower_register(follow: Callable[[Order, Refund, Staff | None], None]) -> None:
    """`follow(order, refund, actor)`: runs in the refund's transaction after it is written (the order's
    `refunded_fen` already includes it); raising refuses the refund, nothing written."""
    _REFUND_FOLLOWERS.append(follow)


def _refund_permission_check(order: Order, scope: Scope) -> None:
    if scope.can(Perm.PAYMENT_REFUND):
        return
    for check in _REFUND_DECISIONS:
        why = check(order)
        if why:
            raise PermissionDenied(f"{why}; refunding it needs the permission {Perm.PAYMENT_REFUND!r} (clinic "
                                   f"directors, chain admins), which your role ({scope.role or 'none'}) lacks",
                                   field="order_id")


@transaction.atomic
def refund_record(*, order: Order, amount_fen: int | None = None, lines: list[dict] | None = None,
                  reason: str = "", method: str | None = None, external_id: str | None = None,
                  refunded_at: dt.datetime | None = None, actor: Staff | None = None,
                  owner: bool = False, scope: Scope | None = None) -> tuple[Refund, bool]:
    """Refund a whole bill (no amount, no lines), an amount, or given lines (an empty list is refused, not read as
    the whole bill). Never more than was paid. An order an owner claims (refund_owner_register) is refused unless
    its owner records the refund (`owner=True`). `scope`: the caller's, when staff ask (the orders API): an order a
    decision check names (refund_decision_register) is then refused (403) without `payment.refund`; None: an
    internal caller that checked its own permission.

    `method`: how the money goes back. An order with payments recorded by method is refunded only to a method that
    paid it, at most what that method paid less what was refunded to it (`_refund_methods_left`), else refused
    naming what is left to each. Left out: the one method with something left; with several, the refund is split
    over them in proportion to what each has left (`_refund_split_by_method`, the rule of checkout's refunds), one
    Refund per method, their lines splitting the refunded lines exactly (`core.money.refund_lines_split`), all in
    this transaction: the first is returned (it carries the external_id), the others point at it (`split_of`;
    `selectors.refund_parts` reads them all). More than those methods have left is refused, naming what is left to
    each. With none left, `other`, unattributed, within what the bill has left, as before. An order without recorded
    payments (an imported bill) takes any money method, `other` when left out. Owners (`owner=True`) split by tender
    themselves and are not checked here."""
    order = Order.objects.select_for_update().get(pk=order.pk)
    if external_id:
        existing = Refund.objects.filter(order=order, external_id=external_id).first()
        if existing:
            return existing, False
    if not owner:
        for claim in _REFUND_OWNERS:
            where = claim(order)
            if where:
                raise Conflict(where, code="refund_elsewhere", field="order_id")
        if scope is not None:
            _refund_permission_check(order, scope)
    errors: list[FieldError] = []
    order_lines = {line.id: line for line in order.lines.order_by("id")}
    per_line: dict[int, int] = {}
    whole = False
    if lines is not None and not lines:  # an empty list is no choice: read as "no lines", it refunded the whole bill
        errors.append(FieldError("lines", "must name at least one line (leave lines out to refund an amount or the "
                                          "whole bill)"))
    elif lines:
        for i, line in enumerate(lines):
            ol = order_lines.get(line.get("line_id"))
            amount = line.get("amount_fen")
            if ol is None:
                errors.append(FieldError(f"lines[{i}].line_id", "is not a line of this order", str(line.get("line_id"))))
            elif not isinstance(amount, int) or amount <= 0 or amount > ol.amount_fen - ol.refunded_fen - per_line.get(ol.id, 0):
                # what is left of the line after the refunds and this request's earlier lines of it
                left = ol.amount_fen - ol.refunded_fen - per_line.get(ol.id, 0)
                errors.append(FieldError(f"lines[{i}].amount_fen",
                                         f"must be between 1 and {left} fen (what is left to refund of line "
                                         f"{ol.id})" if left else f"line {ol.id} has nothing left to refund",
                                         str(amount)))
            else:
                per_line[ol.id] = per_line.get(ol.id, 0) + amount
        amount_fen = sum(per_line.values())
    else:
        refundable = order.amount_fen - order.refunded_fen
        whole = amount_fen is None
        if whole:
            amount_fen = refundable
        if whole and refundable <= 0:  # not "amount_fen must be between 1 and 0": the client sent no amount
            errors.append(FieldError("whole", f"nothing is left to refund (refunded {order.refunded_fen} of "
                                              f"{order.amount_fen} fen)", "true"))
        elif not isinstance(amount_fen, int) or amount_fen <= 0 or amount_fen > refundable:
            errors.append(FieldError("amount_fen", f"must be between 1 and {refundable} fen (what is left to refund)",
                                     str(amount_fen)))
        else:
            # Spread over lines in order, so every line keeps refunded ≤ amount.
            left = amount_fen
            for ol in order_lines.values():
                take = min(left, ol.amount_fen - ol.refunded_fen)
                if take:
                    per_line[ol.id] = take
                    left -= take
    amount_ok = not errors  # the amount is within what is left of the bill (else that is the error to fix first)
    left_by_method = None if owner else _refund_methods_left(order)
    split = None  # [(method, fen)]: a refund naming no method, over the several money methods with something left
    if method is None:
        # Left out: the one method with something left; with several, split over them in proportion to what each has
        # left (`_refund_split_by_method`); with none (or no recorded payments), unattributed (`other`, within what
        # the bill has left, as before). POS clients that never sent a method keep working.
        open_methods = [m for m, left in (left_by_method or {}).items() if left > 0]
        method = open_methods[0] if len(open_methods) == 1 else PaymentMethod.OTHER
        if len(open_methods) > 1:
            open_left = sum(left_by_method[m] for m in open_methods)
            if amount_ok and amount_fen > open_left:
                errors.append(FieldError("lines" if lines else "whole" if whole else "amount_fen",
                                         f"the methods that paid this bill have {open_left} fen left to refund (what "
                                         f"they paid less what was refunded to them), less than {amount_fen} fen; "
                                         "left by method: " + _methods_left_text(left_by_method), str(amount_fen)))
            elif amount_ok:
                split = _refund_split_by_method(order, amount_fen)
        if len(open_methods) != 1:
            left_by_method = None
    if method not in PaymentMethod.values:
        errors.append(FieldError("method", f"must be one of {', '.join(PaymentMethod.values)}", method))
    elif not owner and method in TENDER_METHODS:
        # Nothing here credits a wallet, points, a card or a voucher: "refunded to points" was money given back nowhere.
        errors.append(FieldError("method", f"must be one of {', '.join(_REFUND_METHODS)} (stored value, gift cards, "
                                           "vouchers and points go back through their own refund)", method))
    elif left_by_method is not None and method not in left_by_method:
        # A bill paid in cash refunded "to WeChat Pay" sent money out by a way it never came in.
        errors.append(FieldError("method", "this bill was not paid by " + method + ": refund to a method that paid "
                                           "it (" + _methods_left_text(left_by_method) + ")", method))
    elif left_by_method is not None and amount_ok and amount_fen > left_by_method[method]:
        errors.append(FieldError("lines" if lines else "whole" if whole else "amount_fen",
                                 f"{method} has {left_by_method[method]} fen left to refund (what it paid less what "
                                 f"was refunded to it), less than {amount_fen} fen; left by method: "
                                 + _methods_left_text(left_by_method), str(amount_fen)))
    if refunded_at is not None:
        found = record_time_errors("refunded_at", refunded_at)
        if not found and refunded_at < order.ordered_at:
            found = [FieldError("refunded_at", "is before the order was paid", str(refunded_at))]
        errors += found
    if errors:
        raise ValidationFailed(errors)
    refunded_at = refunded_at or timezone.now()
    refund = None
    for part_method, part_lines in refund_lines_split(per_line, split or [(method, amount_fen)]):
        # One row per method, the first carrying the external_id and the others pointing at it (`split_of`).
        part = Refund.objects.create(order=order, external_id=None if refund else external_id,
                                     amount_fen=sum(part_lines.values()), method=part_method, reason=reason[:255],
                                     refunded_at=refunded_at, actor=actor, split_of=refund)
        RefundLine.objects.bulk_create([RefundLine(refund=part, order_line_id=k, amount_fen=v)
                                        for k, v in part_lines.items()])
        refund = refund or part
    for line_id, amount in per_line.items():
        OrderLine.objects.filter(pk=line_id).update(refunded_fen=F("refunded_fen") + amount)
    order.refunded_fen += amount_fen
    order.status = OrderStatus.REFUNDED if order.refunded_fen == order.amount_fen else OrderStatus.PARTIALLY_REFUNDED
    order.save(update_fields=["refunded_fen", "status", "updated_at"])
    customer_visit_stats_apply(customer_id=order.customer_id, spend_delta_fen=-amount_fen)
    if not owner:
        for follow in _REFUND_FOLLOWERS:
            follow(order, refund, actor)
    return refund, True


def _refund_methods_paid(order: Order) -> tuple[dict[str, int], dict[str, int]]:
    """({method: what it paid}, in the order the bill was paid; {method: what refunds recorded to it})."""
    paid: dict[str, int] = {}
    for payment_method, amount in order.payments.order_by("id").values_list("method", "amount_fen"):
        paid[payment_method] = paid.get(payment_method, 0) + amount
    refunded: dict[str, int] = {}
    for refund_method, amount in order.refunds.values_list("method", "amount_fen"):
        refunded[refund_method] = refunded.get(refund_method, 0) + amount
    return paid, refunded


def _refund_methods_left(order: Order) -> dict[str, int] | None:
    """{money method: what it paid less what was refunded to it, never below 0}, in the order the bill was paid;
    None for a bill without recorded payments (imported: paid by means the POS did not report). Stored value,
    cards, vouchers and points that paid part of a bill are not here: nothing refunded by `refund_record` gives them
    back. The bill's total left to refund still caps every refund (an owner's refund may have gone to a method that
    did not pay, e.g. a package's cancellation by the method staff chose)."""
    paid, refunded = _refund_methods_paid(order)
    if not paid:
        return None
    total_left = order.amount_fen - order.refunded_fen
    return {m: max(0, min(amount - refunded.get(m, 0), total_left)) for m, amount in paid.items()
            if m not in TENDER_METHODS}


def _refund_split_by_method(order: Order, amount_fen: int) -> list[tuple[str, int]]:
    """[(money method, fen)] a refund naming no method gives back, adding up to `amount_fen` (at most what the
    bill's money methods have left): in proportion to what each has left, largest remainder, ties to the method paid
    first (`core.money.money_split`, the rule checkout's refunds follow), methods given nothing left out. So
    repeated partial refunds never give a method more than it has left, and the one that gives back the rest leaves
    each exactly what it paid refunded."""
    paid, refunded = _refund_methods_paid(order)
    money = {m: fen for m, fen in paid.items() if m not in TENDER_METHODS}
    return [(m, fen) for m, fen in money_split(amount_fen, money, refunded).items() if fen]


def _methods_left_text(left_by_method: dict[str, int]) -> str:
    return (", ".join(f"{m} {left} fen left" for m, left in left_by_method.items())
            or "it was paid by no money method: its stored value, card, voucher or points part goes back through its "
               "own refund")


@transaction.atomic
def plan_record(*, customer: Customer, clinic: Clinic, title: str, steps: list[dict],
                planned_at: dt.datetime | None = None, doctor: Staff | None = None, external_id: str | None = None,
                status: str | None = None, scope: Scope | None = None) -> tuple[TreatmentPlan, bool]:
    """Create or replace a treatment plan and its steps' status. Steps: {seq, item_code, tooth, status, done_at}."""
    errors: list[FieldError] = []
    _check_clinic(customer, clinic, errors)
    title = " ".join(str(title or "").split())
    if not title or len(title) > 100:
        errors.append(FieldError("title", "must be 1–100 characters", title))
    errors += record_time_errors("planned_at", planned_at)
    if not steps:
        errors.append(FieldError("steps", "a plan needs at least one step"))
    elif len(steps) > MAX_PLAN_STEPS:
        raise ValidationFailed([FieldError("steps", f"a plan has at most {MAX_PLAN_STEPS} steps", str(len(steps)))])
    items = _items_by_code(customer.chain_id, [str(s.get("item_code", "")) for s in steps or []])
    seqs = set()
    for i, step in enumerate(steps or []):
        if str(step.get("item_code", "")) not in items:
            errors.append(FieldError(f"steps[{i}].item_code", "is not in the service catalogue",
                                     str(step.get("item_code", ""))))
        seq = step.get("seq", i + 1)
        if not isinstance(seq, int) or seq < 1 or seq in seqs:
            errors.append(FieldError(f"steps[{i}].seq", "must be a unique whole number ≥ 1", str(seq)))
        seqs.add(seq)
        step_status = step.get("status", StepStatus.PLANNED)
        if step_status not in StepStatus.values:
            errors.append(FieldError(f"steps[{i}].status", f"must be one of {', '.join(StepStatus.values)}",
                                     str(step.get("status"))))
        errors += _done_at_errors(f"steps[{i}].done_at", step_status, step.get("done_at"))
    if status is not None and status not in PlanStatus.values:
        errors.append(FieldError("status", f"must be one of {', '.join(PlanStatus.values)}", status))
    elif status == PlanStatus.COMPLETED and any(
            step.get("status", StepStatus.PLANNED) not in _FINISHED_STEPS for step in steps or []):
        errors.append(FieldError("status", "completed needs every step done or cancelled", status))
    if errors:
        raise ValidationFailed(errors)
    plan = None
    _external_id_lock(customer, external_id)
    if external_id:
        plan = TreatmentPlan.objects.select_for_update().filter(chain_id=customer.chain_id,
                                                                external_id=external_id).first()
        if plan and plan.customer_id != customer.id:
            raise Conflict("external_id belongs to a plan of another customer", code="external_id_conflict",
                           field="external_id")
        if plan:
            _existing_writable(scope, plan, "treatment plan")
    created = plan is None
    if created:
        _new_record_check(customer)
    plan = plan or TreatmentPlan(chain_id=customer.chain_id, customer=customer, external_id=external_id,
                                 planned_at=planned_at or timezone.now())
    plan.clinic, plan.title, plan.doctor = clinic, title, doctor
    plan.planned_at = planned_at or plan.planned_at  # re-sent, the plan is this body: its date too
    plan.steps_total = plan.steps_done = 0
    with _created_once("a plan", external_id if created else None):
        plan.save()
    existing = {s.seq: s for s in plan.steps.all()}
    now = timezone.now()
    keep = []
    for i, step in enumerate(steps):
        seq = step.get("seq", i + 1)
        obj = existing.get(seq) or PlanStep(plan=plan, seq=seq)
        obj.item = items[str(step["item_code"])]
        obj.tooth = str(step.get("tooth", "") or "")[:32]
        new_status = step.get("status", StepStatus.PLANNED)
        if new_status == StepStatus.DONE:  # the day the PMS gives wins (a correction); a re-send without one keeps it
            obj.done_at = step.get("done_at") or (obj.done_at if obj.status == StepStatus.DONE else now)
        else:
            obj.done_at = None
        obj.status = new_status
        obj.save()
        keep.append(obj.id)
    plan.steps.exclude(id__in=keep).delete()
    _plan_recount(plan, status)
    return plan, created


_FINISHED_STEPS = {StepStatus.DONE, StepStatus.CANCELLED}


def _done_at_errors(field: str, status: str, done_at: dt.datetime | None) -> list[FieldError]:
    """done_at is when a done step was done: not for a step that is not done, and not in the future."""
    if done_at is None:
        return []
    if status != StepStatus.DONE:
        return [FieldError(field, "is only for a step whose status is done", str(done_at))]
    return record_time_errors(field, done_at)


def _plan_recount(plan: TreatmentPlan, status: str | None = None) -> None:
    steps = list(plan.steps.select_related("item"))  # estimated_fen reads their items: one query, not one a step
    counted = [s for s in steps if s.status != StepStatus.CANCELLED]
    plan.steps_total = len(counted)
    plan.steps_done = sum(1 for s in counted if s.status == StepStatus.DONE)
    plan.estimated_fen = sum(s.item.list_price_fen for s in counted)
    if status:
        plan.status = status
    elif plan.status != PlanStatus.ABANDONED:
        plan.status = PlanStatus.COMPLETED if plan.steps_total and plan.steps_done == plan.steps_total else PlanStatus.ACTIVE
    # Completed when its last step was done, not when the PMS told us (a plan sent in 2026 whose steps were all done in
    # 2024 was "completed" in 2026: a plan finished before a membership began then revealed its benefits).
    plan.completed_at = (plan.completed_at or max((s.done_at for s in counted if s.done_at), default=timezone.now())
                         ) if plan.status == PlanStatus.COMPLETED else None
    plan.save(update_fields=["steps_total", "steps_done", "estimated_fen", "status", "completed_at", "updated_at"])


@transaction.atomic
def plan_step_update(*, plan: TreatmentPlan, seq: int, status: str, done_at: dt.datetime | None = None) -> PlanStep:
    if status not in StepStatus.values:
        raise ValidationFailed([FieldError("status", f"must be one of {', '.join(StepStatus.values)}", status)])
    if errors := _done_at_errors("done_at", status, done_at):
        raise ValidationFailed(errors)
    # The plan's row first, as plan_record takes it before its steps: two steps recorded at once each counted the
    # steps without the other's (6 done, steps_done 2), and a plan re-sent meanwhile deadlocked with the step.
    plan.refresh_from_db(from_queryset=TreatmentPlan.objects.select_for_update())
    step = plan.steps.select_for_update().filter(seq=seq).first()
    if step is None:
        raise ValidationFailed([FieldError("seq", "is not a step of this plan", str(seq))])
    if status != StepStatus.DONE:
        step.done_at = None
    elif done_at or step.status != StepStatus.DONE:  # a step already done, sent done again, keeps its day
        step.done_at = done_at or timezone.now()
    step.status = status
    step.save(update_fields=["status", "done_at"])
    _plan_recount(plan)
    return step


def visits_merge_hook(*, survivor: Customer, merged: Customer) -> None:
    """Registered with customers.services.merge_hook_register; runs before customer_merge adds the merged record's
    visit count to the survivor's. Each record counted a day with a bill and no visit appointment of its own
    (`_visit_day_counted`); for one person such a day counts once, and not at all beside the other record's
    appointment that day. The days the two counts share are taken off the merged record's count, so the sum is the
    count of the rows the survivor ends up with."""
    def days(customer_id: int) -> tuple[set, set]:
        visits = {timezone.localdate(at) for at in Appointment.objects.filter(
            customer_id=customer_id, status__in=_VISIT_STATUSES).values_list("start_at", flat=True)}
        bills = {timezone.localdate(at) for at in Order.objects.filter(customer_id=customer_id)
                 .values_list("ordered_at", flat=True)}
        return visits, bills

    (s_visits, s_bills), (m_visits, m_bills) = days(survivor.pk), days(merged.pk)
    twice = (len(s_bills - s_visits) + len(m_bills - m_visits)
             - len((s_bills | m_bills) - (s_visits | m_visits)))
    if twice:
        customer_visit_stats_apply(customer_id=merged.pk, visit_delta=-twice)


def visits_erase_hook(*, customer: Customer, actor: Staff | None = None) -> dict:
    """customers.privacy erase hook: what staff or the PMS wrote on the person's appointments (a booking's notes:
    "张三要求女医生", a call-back number) is blanked; the bookings, their times and statuses stay, as they count the
    person's visits. Bills, plans and procedures are accounting and medical records, kept as written."""
    return {"appointment_notes": Appointment.objects.filter(customer=customer).exclude(notes="").update(notes="")}


@transaction.atomic
def procedure_record(*, customer: Customer, clinic: Clinic, item_code: str, performed_on: dt.date,
                     doctor: Staff | None = None, tooth: str = "", notes: str = "",
                     external_id: str | None = None, scope: Scope | None = None) -> tuple[Procedure, bool]:
    _external_id_lock(customer, external_id)
    if external_id:
        existing = Procedure.objects.filter(chain_id=customer.chain_id, external_id=external_id).first()
        if existing:
            if existing.customer_id != customer.id:
                raise Conflict("external_id belongs to a procedure of another customer",
                               code="external_id_conflict", field="external_id")
            _existing_writable(scope, existing, "procedure")
            sent = {"clinic": clinic.pk, "item_code": item_code, "performed_on": performed_on,
                    "doctor": doctor.pk if doctor else None, "tooth": tooth[:32]}
            recorded = {"clinic": existing.clinic_id, "item_code": existing.item.code,
                        "performed_on": existing.performed_on, "doctor": existing.doctor_id, "tooth": existing.tooth}
            differs = [name for name in sent if sent[name] != recorded[name]]
            if differs:  # as a bill sent again changed (order_record): answered with the first, the change was lost
                raise Conflict(f"external_id already names a recorded procedure with another {', '.join(differs)}",
                               code="external_id_conflict", field="external_id")
            return existing, False
    _new_record_check(customer)
    errors: list[FieldError] = []
    _check_clinic(customer, clinic, errors)
    item = _items_by_code(customer.chain_id, [item_code]).get(item_code)
    if item is None:
        errors.append(FieldError("item_code", "is not in the service catalogue", item_code))
    if performed_on is None:
        errors.append(FieldError("performed_on", "is required"))
    else:
        errors += record_time_errors("performed_on", performed_on)
    if errors:
        raise ValidationFailed(errors)
    with _created_once("a procedure", external_id):
        proc = Procedure.objects.create(chain_id=customer.chain_id, clinic=clinic, customer=customer, item=item,
                                        doctor=doctor, performed_on=performed_on, tooth=tooth[:32], notes=notes,
                                        external_id=external_id)
    return proc, True


@transaction.atomic
def service_item_upsert(*, chain_id: int, code: str, name: str, category: str, list_price_fen: int,
                        is_special_price: bool = False, is_surgical: bool = False) -> ServiceItem:
    item, _ = ServiceItem.objects.update_or_create(
        chain_id=chain_id, code=code,
        defaults={"name": name, "category": category, "list_price_fen": list_price_fen,
                  "is_special_price": is_special_price, "is_surgical": is_surgical},
    )
    return item
