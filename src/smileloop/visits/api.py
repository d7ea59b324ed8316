"""Ingestion API for a practice-management system or POS: appointments, orders, refunds, treatment
plans and their progress, procedures. Money is integer fen; naive times are the chain's local time
(Asia/Shanghai). Every write needs an Idempotency-Key (core.idempotency)."""

import datetime as dt
from typing import Annotated

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Field, Router, Schema
from pydantic import model_validator

from smileloop.clinics.api import clinic_for_write, permission_require, request_scope, staff_for_input
from smileloop.clinics.enums import Perm
from smileloop.core.api import (
    ERROR_RESPONSES,
    ClinicRef,
    Fen,
    Id,
    IdOrCode,
    InputSchema,
    IsoDate,
    IsoDateTime,
    PositiveFen,
    WholeNumber,
    clinic_ref,
    input_errors,
    referenced_by,
    render,
)
from smileloop.core.bounds import MAX_BILL_LINES, MAX_BILL_PAYMENTS, MAX_PLAN_STEPS, MAX_QUANTITY
from smileloop.core.errors import PermissionDenied
from smileloop.core.idempotency import IdempotencyKeyHeader, idempotent_response
from smileloop.core.scoping import Scope
from smileloop.customers.selectors import customer_get
from smileloop.visits.enums import AppointmentStatus, PaymentMethod, PlanStatus, StepStatus
from smileloop.visits.models import Appointment, Order, Procedure, Refund, TreatmentPlan
from smileloop.visits.selectors import order_get, plan_get, refund_parts
from smileloop.visits.services import (
    appointment_upsert,
    order_record,
    plan_record,
    plan_step_update,
    procedure_record,
    refund_record,
)

router = Router(tags=["visits"])

ClinicRefIn = Annotated[IdOrCode, Field(description="Clinic id or code")]
StaffRefIn = Annotated[IdOrCode | None, Field(description="Staff id or username")]
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY), WholeNumber]
Seq = Annotated[int, Field(ge=1, le=10_000, description="The step's number in the plan")]


# --- input ---------------------------------------------------------------------------------------------

class AppointmentIn(InputSchema):
    customer_id: Id
    clinic: ClinicRefIn
    doctor: StaffRefIn = None
    start_at: IsoDateTime
    end_at: IsoDateTime
    status: AppointmentStatus = AppointmentStatus.BOOKED
    service_code: str | None = None
    notes: str = ""
    external_id: str | None = Field(None, min_length=1, max_length=64,
                                    description="The PMS id; re-sending it updates the appointment")


class OrderLineIn(InputSchema):
    item_code: str = Field(min_length=1, max_length=32)
    quantity: Quantity = 1
    unit_price_fen: Fen | None = Field(None, description="Defaults to the catalogue's list price")
    discount_fen: Fen = 0
    tooth: str = Field("", max_length=32)


class PaymentIn(InputSchema):
    method: PaymentMethod
    amount_fen: PositiveFen


class OrderIn(InputSchema):
    """Payments must add up to the sum of line amounts (quantity × unit price − discount) exactly."""

    customer_id: Id
    clinic: ClinicRefIn
    ordered_at: IsoDateTime
    external_id: str | None = Field(None, min_length=1, max_length=64,
                                    description="The POS bill number; re-sending the same bill returns the first "
                                                "order, a changed one is a 409")
    # At most 50, as a checkout bill: core.bounds sizes MAX_FEN so that 50 lines × 10 000 units of it fit in a bigint;
    # 923 lines at the bounds overflowed the order's total (a 500 on both databases).
    lines: list[OrderLineIn] = Field(min_length=1, max_length=MAX_BILL_LINES)
    payments: list[PaymentIn] = Field([], max_length=MAX_BILL_PAYMENTS,
                                      description="How the bill was paid; they must add up to it. Leave out "
                                                  "when the POS does not report it: the bill still counts as paid")
    notes: str = ""


class RefundLineIn(InputSchema):
    line_id: Id
    amount_fen: PositiveFen


REFUND_CHOICES = ("amount_fen", "lines", "whole")


class RefundIn(InputSchema):
    """Exactly one of `amount_fen`, `lines` and `"whole": true`. `{}` refunded everything not yet refunded: a client
    that dropped its amount or lines by mistake gave back the whole bill."""

    amount_fen: PositiveFen | None = Field(None, description='How much to refund, spread over the lines. Give this, '
                                                             '`lines` or `"whole": true`.')
    lines: list[RefundLineIn] | None = Field(None, min_length=1, description='How much of each line to refund. Give '
                                                                             'this, `amount_fen` or `"whole": true`.')
    whole: bool = Field(False, description='true: refund everything not yet refunded. Give this, `amount_fen` or '
                                           '`lines`.')
    reason: str = Field("", max_length=255)
    method: PaymentMethod | None = Field(
        None, description="How the money goes back. A bill with payments recorded by method is refunded only to a "
                          "method that paid it, at most what that method paid less what was refunded to it (a 422 on "
                          "`method` or `amount_fen` says what is left to each); left out, the one method with "
                          "something left, or, with several, split over them in proportion to what each has left "
                          "(one refund per method: the answer's `by_method`). A bill recorded without payments: any "
                          "money method, `other` when left out.")
    external_id: str | None = Field(None, min_length=1, max_length=64)
    refunded_at: IsoDateTime | None = None

    @model_validator(mode="after")
    def _one_choice(self):
        given = {"amount_fen": self.amount_fen is not None, "lines": self.lines is not None, "whole": self.whole}
        chosen = [name for name in REFUND_CHOICES if given[name]]
        if len(chosen) > 1:
            message = f"give one of amount_fen, lines and \"whole\": true, not {' and '.join(chosen)}"
            raise input_errors("RefundIn", [(name, message, self.amount_fen if name == "amount_fen" else None)
                                            for name in chosen])
        if not chosen:
            message = ('give amount_fen (an amount), lines (how much of each line) or "whole": true (everything '
                       'not yet refunded)')
            raise input_errors("RefundIn", [(name, message, None) for name in REFUND_CHOICES])
        return self


class PlanStepIn(InputSchema):
    seq: Seq
    item_code: str = Field(min_length=1, max_length=32)
    tooth: str = Field("", max_length=32)
    status: StepStatus = StepStatus.PLANNED
    done_at: IsoDateTime | None = None


class PlanIn(InputSchema):
    customer_id: Id
    clinic: ClinicRefIn
    title: str = Field(min_length=1, max_length=100)
    external_id: str | None = Field(None, min_length=1, max_length=64,
                                    description="The PMS plan id; re-sending it replaces the plan's steps")
    doctor: StaffRefIn = None
    steps: list[PlanStepIn] = Field(min_length=1, max_length=MAX_PLAN_STEPS)
    status: PlanStatus | None = None
    planned_at: IsoDateTime | None = None


class StepProgressIn(InputSchema):
    status: StepStatus
    done_at: IsoDateTime | None = None


class ProcedureIn(InputSchema):
    customer_id: Id
    clinic: ClinicRefIn
    item_code: str = Field(min_length=1, max_length=32)
    performed_on: IsoDate
    doctor: StaffRefIn = None
    tooth: str = Field("", max_length=32)
    notes: str = ""
    external_id: str | None = Field(None, min_length=1, max_length=64)


# --- output --------------------------------------------------------------------------------------------

class StaffRef(Schema):
    id: int
    name: str


class AppointmentOut(Schema):
    id: int
    customer_id: int
    clinic: ClinicRef
    doctor: StaffRef | None
    service_code: str | None
    start_at: dt.datetime
    end_at: dt.datetime
    status: str
    notes: str
    external_id: str | None


class OrderLineOut(Schema):
    id: int
    item_code: str
    item_name: str
    quantity: int
    unit_price_fen: int
    discount_fen: int
    amount_fen: int
    refunded_fen: int
    tooth: str


class PaymentOut(Schema):
    method: str
    amount_fen: int


class OrderOut(Schema):
    id: int
    customer_id: int
    clinic: ClinicRef
    external_id: str | None
    ordered_at: dt.datetime
    list_total_fen: int
    discount_fen: int
    amount_fen: int
    refunded_fen: int
    status: str
    lines: list[OrderLineOut]
    payments: list[PaymentOut]


class RefundLineOut(Schema):
    line_id: int
    amount_fen: int


class RefundPartOut(Schema):
    id: int
    method: str
    amount_fen: int
    lines: list[RefundLineOut]


class RefundOut(Schema):
    """The refund as asked for. Left without a method, a bill paid by several money methods is refunded over them
    in proportion to what each has left, recorded as one refund per method: `by_method` lists them (one entry
    when the refund went back one way); `id` is the first's, and `amount_fen` and `lines` are the whole refund's."""

    id: int = Field(description="The refund recorded (the first of `by_method`, which carries the external_id)")
    order_id: int
    external_id: str | None
    amount_fen: int = Field(description="The whole refund (the sum of `by_method`)")
    method: str = Field(description="How the money went back; `other` when it went back by several methods, "
                                    "as `by_method` says")
    reason: str
    refunded_at: dt.datetime
    lines: list[RefundLineOut] = Field(description="What the whole refund took off each line")
    by_method: list[RefundPartOut] = Field(description="One refund per method the money went back by, each with "
                                                       "its lines (they add up to its amount; each line's, to what "
                                                       "the whole refund took off it), in the order the bill was "
                                                       "paid")
    order_refunded_fen: int
    order_status: str


class PlanStepOut(Schema):
    seq: int
    item_code: str
    item_name: str
    tooth: str
    status: str
    done_at: dt.datetime | None


class PlanOut(Schema):
    id: int
    customer_id: int
    clinic: ClinicRef
    doctor: StaffRef | None
    title: str
    status: str
    external_id: str | None
    planned_at: dt.datetime
    completed_at: dt.datetime | None
    steps_total: int
    steps_done: int
    progress_percent: int
    estimated_fen: int
    steps: list[PlanStepOut]


class ProcedureOut(Schema):
    id: int
    customer_id: int
    clinic: ClinicRef
    item_code: str
    item_name: str
    performed_on: dt.date
    doctor: StaffRef | None
    tooth: str
    notes: str
    external_id: str | None


# --- rendering -----------------------------------------------------------------------------------------

def _local(value: dt.datetime | None) -> dt.datetime | None:
    return timezone.localtime(value) if value else None


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """Naive input is the chain's local time (the services do the same for their required times)."""
    return timezone.make_aware(value) if value is not None and timezone.is_naive(value) else value


def _staff(staff) -> dict | None:
    return {"id": staff.id, "name": staff.name} if staff else None


def _appointment(a: Appointment) -> dict:
    return {"id": a.id, "customer_id": a.customer_id, "clinic": clinic_ref(a.clinic), "doctor": _staff(a.doctor),
            "service_code": a.service_item.code if a.service_item else None, "start_at": _local(a.start_at),
            "end_at": _local(a.end_at), "status": a.status, "notes": a.notes, "external_id": a.external_id}


def _order(o: Order) -> dict:
    return {
        "id": o.id, "customer_id": o.customer_id, "clinic": clinic_ref(o.clinic), "external_id": o.external_id,
        "ordered_at": _local(o.ordered_at), "list_total_fen": o.list_total_fen, "discount_fen": o.discount_fen,
        "amount_fen": o.amount_fen, "refunded_fen": o.refunded_fen, "status": o.status,
        "lines": [{"id": ln.id, "item_code": ln.item.code, "item_name": ln.item.name, "quantity": ln.quantity,
                   "unit_price_fen": ln.unit_price_fen, "discount_fen": ln.discount_fen, "amount_fen": ln.amount_fen,
                   "refunded_fen": ln.refunded_fen, "tooth": ln.tooth}
                  for ln in o.lines.select_related("item").order_by("id")],
        "payments": [{"method": p.method, "amount_fen": p.amount_fen} for p in o.payments.order_by("id")],
    }


def _refund(r: Refund) -> dict:
    order = r.order  # the instance refund_record updated (or, on a replay by external_id, loaded)
    parts = refund_parts(r)
    lines: dict[int, int] = {}
    for part in parts:
        for rl in part.lines.all():
            lines[rl.order_line_id] = lines.get(rl.order_line_id, 0) + rl.amount_fen
    return {"id": parts[0].id, "order_id": r.order_id, "external_id": parts[0].external_id,
            "amount_fen": sum(part.amount_fen for part in parts),
            "method": parts[0].method if len(parts) == 1 else PaymentMethod.OTHER, "reason": r.reason,
            "refunded_at": _local(r.refunded_at),
            "lines": [{"line_id": k, "amount_fen": v} for k, v in sorted(lines.items())],
            "by_method": [{"id": part.id, "method": part.method, "amount_fen": part.amount_fen,
                           "lines": [{"line_id": rl.order_line_id, "amount_fen": rl.amount_fen}
                                     for rl in part.lines.all()]} for part in parts],
            "order_refunded_fen": order.refunded_fen, "order_status": order.status}


def _plan(p: TreatmentPlan) -> dict:
    return {
        "id": p.id, "customer_id": p.customer_id, "clinic": clinic_ref(p.clinic), "doctor": _staff(p.doctor),
        "title": p.title, "status": p.status, "external_id": p.external_id, "planned_at": _local(p.planned_at),
        "completed_at": _local(p.completed_at), "steps_total": p.steps_total, "steps_done": p.steps_done,
        "progress_percent": p.progress_percent, "estimated_fen": p.estimated_fen,
        "steps": [{"seq": s.seq, "item_code": s.item.code, "item_name": s.item.name, "tooth": s.tooth,
                   "status": s.status, "done_at": _local(s.done_at)}
                  for s in p.steps.select_related("item").order_by("seq")],
    }


def _procedure(p: Procedure) -> dict:
    return {"id": p.id, "customer_id": p.customer_id, "clinic": clinic_ref(p.clinic), "item_code": p.item.code,
            "item_name": p.item.name, "performed_on": p.performed_on, "doctor": _staff(p.doctor),
            "tooth": p.tooth, "notes": p.notes, "external_id": p.external_id}


def _clinic_writable(scope: Scope, clinic_id: int, what: str) -> None:
    if not scope.allows_clinic(clinic_id):
        raise PermissionDenied(f"This {what} belongs to a clinic outside your clinics; you may not change it")


# --- endpoints -----------------------------------------------------------------------------------------

@router.post("/appointments", response={200: AppointmentOut, 201: AppointmentOut, **ERROR_RESPONSES},
             summary="Create or update an appointment (upsert by external_id)")
def appointment_upsert_endpoint(request: HttpRequest, payload: AppointmentIn, response: HttpResponse,
                                idempotency_key: IdempotencyKeyHeader = None):
    """201 when created; 200 when an appointment with this external_id exists (it is updated to this body: send it
    again when the PMS changes the time, doctor or status). Without an external_id every call creates one. 409
    `external_id_conflict` when the external_id names another customer's appointment; 422 names the field (`end_at`
    not after `start_at`, a start too far ahead or in the past for its status, an unknown clinic or doctor)."""
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.VISIT_EDIT)
        with referenced_by("body.customer_id"):
            customer = customer_get(scope, payload.customer_id)
        appointment, created = appointment_upsert(
            customer=customer, clinic=clinic_for_write(scope=scope, value=payload.clinic),
            doctor=staff_for_input(scope=scope, value=payload.doctor, field="doctor"),
            start_at=payload.start_at, end_at=payload.end_at, status=payload.status,
            service_code=payload.service_code, notes=payload.notes, external_id=payload.external_id,
            actor=request.staff, scope=scope)
        return (201 if created else 200), render(AppointmentOut, _appointment(appointment))

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="visits.appointment_upsert", run=write)


@router.post("/orders", response={200: OrderOut, 201: OrderOut, **ERROR_RESPONSES},
             summary="Record a POS order (bill) with its lines and payments")
def order_record_endpoint(request: HttpRequest, payload: OrderIn, response: HttpResponse,
                          idempotency_key: IdempotencyKeyHeader = None):
    """201 when recorded; 200 with the first order when the same bill was recorded before under its external_id
    (a retry with a new key). 409 `external_id_conflict` when that external_id names a bill with another clinic,
    time, lines or payments (a recorded bill is not changed: record a refund, then the corrected bill under a new
    external_id), or another customer's bill."""
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.VISIT_EDIT)
        with referenced_by("body.customer_id"):
            customer = customer_get(scope, payload.customer_id)
        order, created = order_record(
            customer=customer, clinic=clinic_for_write(scope=scope, value=payload.clinic),
            ordered_at=payload.ordered_at, lines=[ln.model_dump(exclude_none=True) for ln in payload.lines],
            payments=[p.model_dump() for p in payload.payments], external_id=payload.external_id,
            cashier=request.staff, notes=payload.notes, scope=scope)
        return (201 if created else 200), render(OrderOut, _order(order))

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="visits.order_record", run=write)


@router.post("/orders/{int:order_id}/refunds", response={200: RefundOut, 201: RefundOut, **ERROR_RESPONSES},
             summary="Record a refund of an order")
def refund_record_endpoint(request: HttpRequest, order_id: Id, payload: RefundIn, response: HttpResponse,
                           idempotency_key: IdempotencyKeyHeader = None):
    """Exactly one of `amount_fen`, `lines` and `"whole": true` (neither or two is a 422 naming them: `{}` no longer
    refunds everything). Never more than what is left to refund (422). A bill whose payments were recorded by method
    is refunded only to a method that paid it and at most what that method has left (422 on `method` or
    `amount_fen`, naming what is left to each method). Without `method`, a bill paid by several money methods is
    refunded over them in proportion to what each has left, one refund per method, each taking an exact share of
    the lines: `by_method` lists them, `amount_fen` and `lines` are the whole refund's and `method` is `other`.
    200 with the first answer for a known external_id. An order
    paid at checkout is refunded on its settlement (`POST /api/checkout/settlements/{id}/refund`), which gives back
    the wallet, points, cards and vouchers it used: here it is a 409 `refund_elsewhere`. So is the bill of a service
    package still in force: it is refunded by cancelling the package (`POST /api/loyalty/packages/{id}/cancel`),
    which ends its entitlements too. The bill of a package no longer in force (ended or cancelled) is refunded here
    only with `payment.refund` (clinic directors, chain admins): money going back for a package is their decision,
    a 403 for other roles."""
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.VISIT_EDIT)
        order = order_get(scope, order_id)
        _clinic_writable(scope, order.clinic_id, "order")
        refund, created = refund_record(
            order=order, amount_fen=payload.amount_fen,
            lines=[ln.model_dump() for ln in payload.lines] if payload.lines else None, reason=payload.reason,
            method=payload.method, external_id=payload.external_id, refunded_at=_aware(payload.refunded_at),
            actor=request.staff, scope=scope)
        return (201 if created else 200), render(RefundOut, _refund(refund))

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="visits.refund_record", run=write)


@router.post("/treatment-plans", response={200: PlanOut, 201: PlanOut, **ERROR_RESPONSES},
             summary="Record a treatment plan (upsert by external_id)")
def plan_record_endpoint(request: HttpRequest, payload: PlanIn, response: HttpResponse,
                         idempotency_key: IdempotencyKeyHeader = None):
    """201 when created; 200 when a plan with this external_id exists (its title and steps are replaced by this
    body). Without an external_id every call creates one. 409 `external_id_conflict` when the external_id names
    another customer's plan; 422 names the field (`steps[1].item_code` not in the catalogue, a duplicate `seq`)."""
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.HEALTH_EDIT)
        with referenced_by("body.customer_id"):
            customer = customer_get(scope, payload.customer_id)
        steps = [{**s.model_dump(exclude_none=True), "done_at": _aware(s.done_at)} for s in payload.steps]
        plan, created = plan_record(
            customer=customer, clinic=clinic_for_write(scope=scope, value=payload.clinic), title=payload.title,
            steps=steps, planned_at=_aware(payload.planned_at),
            doctor=staff_for_input(scope=scope, value=payload.doctor, field="doctor"),
            external_id=payload.external_id, status=payload.status, scope=scope)
        return (201 if created else 200), render(PlanOut, _plan(plan))

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="visits.plan_record", run=write)


@router.post("/treatment-plans/{int:plan_id}/steps/{int:seq}", response={200: PlanOut, **ERROR_RESPONSES},
             summary="Record progress of one plan step")
def plan_step_update_endpoint(request: HttpRequest, plan_id: Id, seq: Seq, payload: StepProgressIn,
                              response: HttpResponse, idempotency_key: IdempotencyKeyHeader = None):
    """Returns the whole plan with its recounted progress."""
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.HEALTH_EDIT)
        plan = plan_get(scope, plan_id)
        _clinic_writable(scope, plan.clinic_id, "treatment plan")
        plan_step_update(plan=plan, seq=seq, status=payload.status, done_at=_aware(payload.done_at))
        return 200, render(PlanOut, _plan(plan))

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="visits.plan_step_update", run=write)


@router.post("/procedures", response={200: ProcedureOut, 201: ProcedureOut, **ERROR_RESPONSES},
             summary="Record a procedure performed")
def procedure_record_endpoint(request: HttpRequest, payload: ProcedureIn, response: HttpResponse,
                              idempotency_key: IdempotencyKeyHeader = None):
    """201 when recorded; 200 with the first record when the same procedure was recorded before under its
    external_id (its notes aside). 409 `external_id_conflict` when that external_id names a procedure with another
    clinic, item, day, doctor or tooth, or another customer's."""
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.HEALTH_EDIT)
        with referenced_by("body.customer_id"):
            customer = customer_get(scope, payload.customer_id)
        procedure, created = procedure_record(
            customer=customer, clinic=clinic_for_write(scope=scope, value=payload.clinic),
            item_code=payload.item_code, performed_on=payload.performed_on,
            doctor=staff_for_input(scope=scope, value=payload.doctor, field="doctor"), tooth=payload.tooth,
            notes=payload.notes, external_id=payload.external_id, scope=scope)
        return (201 if created else 200), render(ProcedureOut, _procedure(procedure))

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="visits.procedure_record", run=write)
