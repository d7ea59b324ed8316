"""Checkout API (mounted at /api/checkout): price (no writes), pay and refund. Token auth, the caller's scope
(a customer outside it is a 404), Perm.VISIT_EDIT, Idempotency-Key on writes, one error shape."""

from typing import Annotated, Any

from django.http import HttpRequest, HttpResponse
from ninja import Field, Router, Schema
from pydantic import ValidationError, WithJsonSchema, WrapValidator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from smileloop.checkout.selectors import settlement_get
from smileloop.checkout.services import checkout_pay, checkout_price, checkout_refund
from smileloop.clinics.api import clinic_for_write, permission_require, request_scope
from smileloop.clinics.enums import Perm
from smileloop.core.api import (
    ERROR_RESPONSES,
    ClinicRef,
    Fen,
    Id,
    IdOrCode,
    InputSchema,
    Points,
    PositiveFen,
    clinic_ref,
    input_errors,
    referenced_by,
    render,
)
from smileloop.core.bounds import MAX_BILL_LINES, MAX_FEN, MAX_POINTS
from smileloop.core.errors import FieldError, ValidationFailed
from smileloop.core.idempotency import IdempotencyKeyHeader, idempotent_response, service_key
from smileloop.customers.selectors import customer_get

router = Router(tags=["checkout"])


def _number_or_max(value: Any, handler) -> Any:
    """"max", or the number the annotated type validates, refused with ONE error at the field's own path (a union
    would report each of its branches under pydantic's internal names: "points.function-before[…]")."""
    if value == "max":
        return value
    try:
        return handler(value)
    except ValidationError as exc:
        raise PydanticCustomError("number_or_max", '{reason}, or "max"', {"reason": exc.errors()[0]["msg"]}) from None


def _or_max(number_type, minimum: int, maximum: int):
    schema = {"anyOf": [{"type": "integer", "minimum": minimum, "maximum": maximum}, {"const": "max"}]}
    return Annotated[number_type, WrapValidator(_number_or_max), WithJsonSchema(schema)]


FenOrMax = _or_max(Fen, 0, MAX_FEN)
PointsOrMax = _or_max(Points, 0, MAX_POINTS)


class LineIn(InputSchema):
    item_code: str = Field(min_length=1, max_length=32)
    quantity: int = Field(1, ge=1, le=99)


WALLET_AMOUNT_REQUIRED = 'is required: the amount to take from the wallet in fen, or "max" for as much as it can pay'


class WalletIn(InputSchema):
    """Stored value to pay with. `amount_fen` is required, a number of fen or "max": it once defaulted to "max", so
    `"wallet": {}` (or a holder alone) spent all the stored value the bill could take without anyone asking for it."""

    holder_id: Id | None = Field(None, description="The family wallet's holder (default: the customer)")
    amount_fen: FenOrMax = Field(description='Required: how much stored value to use, in fen, or "max" for as much '
                                             'as the wallet can pay (at most what is still owed)')
    per_use_consent: bool = False

    @model_validator(mode="wrap")
    @classmethod
    def _amount_required(cls, value: Any, handler) -> Any:
        """A missing amount says what to send, not pydantic's bare "Field required"."""
        try:
            return handler(value)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            if not any(e["type"] == "missing" and e["loc"] == ("amount_fen",) for e in errors):
                raise
            raise ValidationError.from_exception_data(cls.__name__, [
                InitErrorDetails(type=PydanticCustomError("missing", WALLET_AMOUNT_REQUIRED)
                                 if e["type"] == "missing" and e["loc"] == ("amount_fen",)
                                 else PydanticCustomError(e["type"], e["msg"]), loc=e["loc"], input=e["input"])
                for e in errors]) from None


class PriceIn(InputSchema):
    customer_id: Id
    clinic: IdOrCode
    lines: list[LineIn] = Field(min_length=1, max_length=MAX_BILL_LINES)
    vouchers: list[str] = []
    gift_cards: list[str] = []
    points: PointsOrMax = 0
    wallet: WalletIn | None = None


class CheckoutPaymentIn(InputSchema):
    method: str
    amount_fen: Fen


class PayIn(PriceIn):
    payments: list[CheckoutPaymentIn] = []
    external_id: str | None = Field(None, max_length=64)


class CheckoutRefundLineIn(InputSchema):
    line_id: Id
    quantity: int | None = Field(None, ge=1, le=99)
    amount_fen: PositiveFen | None = None


REFUND_CHOICE = 'give "lines" (the lines to refund) or "whole": true (everything not yet refunded)'


class CheckoutRefundIn(InputSchema):
    """Exactly one of `lines` (what to refund, at least one) and `"whole": true` (everything not yet refunded).
    `{}` refunded the whole bill: a client that dropped `lines` by mistake gave back everything."""

    lines: list[CheckoutRefundLineIn] | None = Field(
        None, min_length=1, description='The lines to refund (a partial refund). Give this or `"whole": true`.')
    whole: bool = Field(False, description='true: refund everything not yet refunded. Give this or `lines`.')
    reason: str = Field("", max_length=255)

    @model_validator(mode="after")
    def _lines_or_whole(self):
        if self.lines is not None and self.whole:
            raise input_errors("CheckoutRefundIn", [
                ("lines", 'give "lines" or "whole": true, not both', None),
                ("whole", 'give "lines" or "whole": true, not both', None)])
        if self.lines is None and not self.whole:
            raise input_errors("CheckoutRefundIn", [("lines", REFUND_CHOICE, None),
                                                    ("whole", REFUND_CHOICE, None)])
        return self


class CheckoutStepOut(Schema):
    kind: str
    label: str
    amount_fen: int


class LineOut(Schema):
    index: int
    code: str
    name: str
    quantity: int
    unit_fen: int
    list_fen: int
    entitlement_fen: int
    discount_fen: int
    net_fen: int
    steps: list[CheckoutStepOut]
    paid: dict[str, int]


class TenderOut(Schema):
    kind: str
    ref: str
    label: str
    amount_fen: int
    per_line: list[int]
    points: int
    balance_before_fen: int | None
    forfeited_fen: int


class PricedOut(Schema):
    customer_id: int
    clinic: ClinicRef = Field(description="The clinic of the bill, as every answer names a clinic")
    clinic_id: int = Field(description="The same clinic's id (kept for clients that read it)")
    list_total_fen: int
    total_fen: int
    cash_fen: int
    discount_source: str
    lines: list[LineOut]
    tenders: list[TenderOut]


class SettlementOrderLineOut(Schema):
    line_id: int = Field(description="What a refund names in `lines[].line_id`")
    item_code: str
    quantity: int
    units_refunded: int
    amount_fen: int
    refunded_fen: int


class CheckoutRefundOut(Schema):
    id: int
    settlement_id: int
    amount_fen: int
    cash_fen: int
    breakdown: dict = Field(description="The refund's lines, tenders and `by_method`: what went back by payment method")


class SettlementOut(Schema):
    id: int
    order_id: int
    total_fen: int
    cash_fen: int
    breakdown: PricedOut
    order_lines: list[SettlementOrderLineOut] = Field(description="The order's lines, in the breakdown's order")
    movements: list[dict]
    refunds: list[CheckoutRefundOut] = Field(default=[], description="Its refunds, oldest first")


def _inputs(request: HttpRequest, payload: PriceIn) -> dict:
    scope = request_scope(request)
    permission_require(scope, Perm.VISIT_EDIT)
    with referenced_by("body.customer_id"):
        customer = customer_get(scope, payload.customer_id)
    clinic = clinic_for_write(scope=scope, value=payload.clinic)
    wallet = None
    if payload.wallet is not None:
        with referenced_by("body.wallet.holder_id"):
            holder = customer_get(scope, payload.wallet.holder_id) if payload.wallet.holder_id else customer
        wallet = {"holder": holder, "amount_fen": payload.wallet.amount_fen,
                  "per_use_consent": payload.wallet.per_use_consent}
    return {"customer": customer, "clinic": clinic, "lines": [line.model_dump() for line in payload.lines],
            "vouchers": payload.vouchers, "gift_cards": payload.gift_cards, "points": payload.points, "wallet": wallet,
            "reader": scope}


def _settlement(settlement) -> dict:
    """The settlement with its order's lines: a partial refund names them by id, which the breakdown (priced before
    the order existed) does not carry."""
    return {"id": settlement.id, "order_id": settlement.order_id, "total_fen": settlement.total_fen,
            "cash_fen": settlement.cash_fen,
            "breakdown": {**settlement.breakdown, "clinic": clinic_ref(settlement.clinic)},  # stored without it
            "order_lines": [{"line_id": ol.id, "item_code": ol.item.code, "quantity": ol.quantity,
                             "units_refunded": settlement.units_refunded.get(str(ol.id), 0),
                             "amount_fen": ol.amount_fen, "refunded_fen": ol.refunded_fen}
                            for ol in settlement.order.lines.select_related("item").order_by("id")],
            "movements": [{"role": m.role, "ref": m.ref, "transaction_id": m.transaction_id, "value_fen": m.value_fen,
                           "points": m.points, "order_line_id": m.order_line_id}
                          for m in settlement.movements.order_by("id")],
            "refunds": [_refund(r) for r in settlement.refunds.order_by("id")]}


def _refund(refund) -> dict:
    return {"id": refund.id, "settlement_id": refund.settlement_id, "amount_fen": refund.amount_fen,
            "cash_fen": refund.cash_fen, "breakdown": refund.breakdown}


@router.post("/price", response={200: PricedOut, **ERROR_RESPONSES}, summary="Price a bill (writes nothing)")
def price_endpoint(request: HttpRequest, payload: PriceIn):
    inputs = _inputs(request, payload)
    return {**checkout_price(**inputs).as_dict(), "clinic": clinic_ref(inputs["clinic"])}


@router.post("/pay", response={201: SettlementOut, **ERROR_RESPONSES}, summary="Pay a bill")
def pay_endpoint(request: HttpRequest, payload: PayIn, response: HttpResponse,
                 idempotency_key: IdempotencyKeyHeader = None):
    scope = request_scope(request)

    def write():
        inputs = _inputs(request, payload)
        settlement = checkout_pay(priced=inputs, payments=[p.model_dump() for p in payload.payments],
                                  key=service_key(scope.user_id, idempotency_key), actor=request.staff,
                                  external_id=payload.external_id)
        return 201, render(SettlementOut, _settlement(settlement))

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="checkout.pay", run=write)


@router.post("/settlements/{int:settlement_id}/refund", response={201: CheckoutRefundOut, **ERROR_RESPONSES},
             summary="Refund a paid bill, whole or some lines")
def refund_endpoint(request: HttpRequest, settlement_id: Id, payload: CheckoutRefundIn, response: HttpResponse,
                    idempotency_key: IdempotencyKeyHeader = None):
    """`{"whole": true}` refunds everything not yet refunded; `{"lines": [...]}` the lines named. Neither or both,
    nothing left to refund, an empty `lines`, or a body that is not a JSON object is a 422 and refunds nothing."""
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.VISIT_EDIT)
        settlement = settlement_get(scope, settlement_id)
        lines = None
        if payload.lines is not None:
            lines = [{k: v for k, v in line.model_dump().items() if v is not None} for line in payload.lines]
        try:
            refund = checkout_refund(settlement=settlement, lines=lines, key=service_key(scope.user_id, idempotency_key),
                                     actor=request.staff, reason=payload.reason)
        except ValidationFailed as exc:
            if not payload.whole:
                raise
            # "nothing left to refund" is about the field the client sent: `whole`, not the `lines` it left out
            raise ValidationFailed([FieldError("whole" if e.field == "lines" else e.field, e.message, e.value)
                                    for e in exc.errors]) from None
        return 201, render(CheckoutRefundOut, _refund(refund))

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="checkout.refund", run=write)


@router.get("/settlements/{int:settlement_id}", response={200: SettlementOut, **ERROR_RESPONSES},
            summary="One settlement")
def settlement_endpoint(request: HttpRequest, settlement_id: Id):
    scope = request_scope(request)
    permission_require(scope, Perm.CUSTOMER_VIEW)
    return _settlement(settlement_get(scope, settlement_id))
