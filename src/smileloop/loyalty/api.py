"""Loyalty API (mounted at /api/loyalty by config/api.py): points, gift exchanges, wallet top-ups, refunds and
family transfers, service packages and entitlements.

Same conventions as customers/api.py: bearer-token auth, the caller's Scope (a customer outside it is a 404),
an Idempotency-Key on every write (a retry replays the first answer; the service key is derived from it, so
even a lost answer never writes twice), one error shape with field paths. Reads need customer.view, writes
customer.edit.
"""

import datetime as dt
from typing import Annotated, Literal

from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema
from pydantic import model_validator

from smileloop.clinics.api import clinic_for_write, permission_require, request_scope
from smileloop.clinics.enums import Perm
from smileloop.core.api import (
    ERROR_RESPONSES,
    Fen,
    Id,
    IdOrCode,
    InputSchema,
    PositiveFen,
    input_errors,
    local_time,
    referenced_by,
    render,
)
from smileloop.core.errors import FieldError, PermissionDenied, ValidationFailed
from smileloop.core.idempotency import IdempotencyKeyHeader, idempotent_response, service_key
from smileloop.core.scoping import Scope
from smileloop.customers.models import Customer
from smileloop.customers.selectors import customer_get
from smileloop.loyalty import selectors, services
from smileloop.loyalty.enums import RefundRule
from smileloop.loyalty.models import (
    EntitlementUse,
    GiftExchange,
    PackageCancellation,
    PackagePurchase,
    Topup,
    TopupRefund,
)
from smileloop.visits.enums import PaymentMethod
from smileloop.visits.models import OrderLine, ServiceItem

router = Router(tags=["loyalty"])

# --- input ---------------------------------------------------------------------------------------------------

class AwardIn(InputSchema):
    rule_code: str = Field(min_length=1, max_length=50, description="A fixed-points rule: referral, review, …")
    source: str = Field("", max_length=100, description="What earned it, e.g. referral:<customer id>")


class GiftExchangeIn(InputSchema):
    gift_id: Id
    quantity: int = Field(1, ge=1, le=100)


class TopupIn(InputSchema):
    amount_fen: PositiveFen
    method: str = Field(description="cash, wechat_pay, alipay, bank_card or other (not insurance, which pays for care "
                                    "given, never a prepaid balance)")
    clinic: IdOrCode | None = Field(None, description="Clinic id or code where the money was received")


class TopupRefundIn(InputSchema):
    """Exactly one of `amount_fen` and `"whole": true`, as the orders' and checkout's refunds: `{}` refunded all the
    principal left, so a client that dropped its amount by mistake gave back the whole top-up."""

    amount_fen: PositiveFen | None = Field(None, description='Principal to refund. Give this or `"whole": true`.')
    whole: bool = Field(False, description="true: refund all that is left of the principal. Give this or "
                                           "`amount_fen`.")

    @model_validator(mode="after")
    def _amount_or_whole(self):
        if self.amount_fen is not None and self.whole:
            message = 'give amount_fen or "whole": true, not both'
            raise input_errors("TopupRefundIn", [("amount_fen", message, self.amount_fen), ("whole", message, None)])
        if self.amount_fen is None and not self.whole:
            message = 'give amount_fen (the principal to refund) or "whole": true (all that is left of it)'
            raise input_errors("TopupRefundIn", [("amount_fen", message, None), ("whole", message, None)])
        return self


class TransferIn(InputSchema):
    to_customer_id: Id
    amount_fen: PositiveFen
    per_use_consent: bool = Field(False, description="The holder consented to this transfer (recorded)")
    consent_token: str = Field("", max_length=100)


class SalePaymentIn(InputSchema):
    method: str = Field(description="cash, wechat_pay, alipay, bank_card, insurance, other or wallet (stored value: "
                                    "the customer's own wallet, or the family wallet `wallet.holder_id` names)")
    amount_fen: PositiveFen


class SaleWalletIn(InputSchema):
    holder_id: Id | None = Field(None, description="Whose wallet pays the `wallet` payment: a family card holder the "
                                                   "customer is bound to (default: the customer's own wallet)")
    per_use_consent: bool = Field(False, description="The family wallet's holder consented to this use (recorded); "
                                                     "not needed under a standing consent")


class PackageSellIn(InputSchema):
    package_id: Id
    covered_ids: list[Id] = Field(min_length=1, max_length=50,
                                  description="The holder and/or members of the holder's household")
    payments: list[SalePaymentIn] | None = Field(
        None, max_length=10,
        description="Paid here: the payments, adding up to the package's price. The sale is then recorded as a "
                    "bill (order_id) of one line of the package's catalogue item. Omitted: paid elsewhere (a POS "
                    "that records its own order).")
    clinic: IdOrCode | None = Field(None, description="Clinic id or code taking the payment (default: the "
                                                      "holder's clinic)")
    wallet: SaleWalletIn | None = Field(None, description="The stored value a `wallet` payment comes from, as at "
                                                          "checkout: another family member's wallet with their consent")


class PackageCancelIn(InputSchema):
    reason: str = Field(min_length=1, max_length=255, description="Why the package is cancelled (kept with it)")
    rule: Literal["list_price", "pro_rata"] = Field(
        RefundRule.LIST_PRICE.value,
        description="How the refund is computed: `list_price` (default) — the price less what was used, each unit at "
                    "the list price its visit's bill showed; `pro_rata` — the price times the unused share of the "
                    "units granted (for when the clinic is at fault). Never below 0 nor above what is left to "
                    "refund of the bill.")
    amount_fen: Fen | None = Field(None, description="Refund less than the rule gives (0 … the rule's amount); "
                                                     "default: the rule's amount")
    method: PaymentMethod | None = Field(None, description="Refund by this method; default: back to the methods "
                                                           "that paid the bill, in proportion. The part paid from "
                                                           "stored value goes back to the wallet whatever the method: "
                                                           "this one gives what the bill's other payments may.")


class EntitlementRedeemIn(InputSchema):
    item_code: str = Field(min_length=1, max_length=32)
    order_line_id: Id | None = None


# --- output --------------------------------------------------------------------------------------------------

class LotOut(Schema):
    id: int
    remaining: int
    earned_at: dt.datetime
    available_at: dt.datetime
    expires_at: dt.datetime | None


class PointsOut(Schema):
    customer_id: int
    balance: int
    available: int
    pending: int
    expiring_within_30_days: int
    lots: list[LotOut]


class QuoteOut(Schema):
    bill_fen: int
    points: int
    value_fen: int
    points_per_yuan: int
    max_share_bp: int


class GiftExchangeOut(Schema):
    id: int
    gift_id: int
    gift_name: str
    quantity: int
    points: int
    stock_left: int
    points_available: int


class WalletOut(Schema):
    customer_id: int
    principal_fen: int
    bonus_fen: int
    total_fen: int


class TopupOut(Schema):
    id: int
    customer_id: int
    amount_fen: int
    bonus_fen: int
    method: str
    refunded_fen: int
    bonus_forfeited_fen: int
    created_at: dt.datetime
    wallet: WalletOut


class TopupRefundOut(Schema):
    id: int
    topup_id: int
    amount_fen: int
    bonus_forfeited_fen: int
    wallet: WalletOut


class TransferOut(Schema):
    transaction_ids: list[int]
    from_wallet: WalletOut
    to_wallet: WalletOut


class EntitlementOut(Schema):
    grant_id: int
    purchase_id: int
    package_name: str
    label: str
    category: str
    item_code: str
    quantity: int
    used: int
    remaining: int
    max_age: int | None
    period_end: dt.datetime


class PurchaseOut(Schema):
    id: int
    package_id: int
    package_name: str
    holder_id: int
    covered_ids: list[int]
    price_fen: int
    period_start: dt.datetime
    period_end: dt.datetime
    order_id: int | None = Field(None, description="The sale's bill when it was paid here")


class PackageRefundOut(Schema):
    id: int
    method: str
    amount_fen: int


class PackageCancellationOut(Schema):
    id: int
    purchase_id: int
    status: str = Field(description="The purchase's status: cancelled")
    rule: str
    computed_fen: int = Field(description="What the rule gives (for a sale without a bill here: what to refund at "
                                          "the POS that recorded it)")
    refund_fen: int = Field(description="What was refunded on the sale's bill (0 without a bill)")
    used_value_fen: int = Field(description="What was used, at list price")
    units_granted: int
    units_used: int
    order_id: int | None = Field(description="The sale's bill, refunded by `refunds`; null: sold without a bill here")
    refunds: list[PackageRefundOut]
    wallet_holder_id: int | None = Field(None, description="Whose wallet the `wallet` refund went back to (the "
                                                           "holder's, or the family wallet that paid the sale)")
    points_clawed_back: int = Field(0, description="Points the bill earned, taken back in proportion to the refund")
    clawback_withheld_fen: int = Field(0, description="Points the bill earned but already spent, at the redeem rate: "
                                                      "withheld from the money the refunds give back, as at checkout")
    reason: str
    cancelled_at: dt.datetime


class EntitlementUseOut(Schema):
    id: int
    grant_id: int
    customer_id: int
    item_code: str
    order_line_id: int | None
    used_at: dt.datetime
    remaining: int


# --- helpers -------------------------------------------------------------------------------------------------


def _service_key(scope: Scope, key: str | None) -> str:
    return service_key(scope.user_id, key)


def _wallet(customer: Customer) -> dict:
    w = selectors.wallet_balance(customer)
    return {"customer_id": customer.id, "principal_fen": w.principal, "bonus_fen": w.bonus, "total_fen": w.total}


def _points(customer: Customer) -> dict:
    s = selectors.points_summary(customer)
    return {"customer_id": customer.id, "balance": s.balance, "available": s.available, "pending": s.pending,
            "expiring_within_30_days": s.expiring_soon,
            "lots": [{"id": lot.id, "remaining": lot.remaining, "earned_at": local_time(lot.earned_at),
                      "available_at": local_time(lot.available_at), "expires_at": local_time(lot.expires_at)}
                     for lot in s.lots]}


def _topup(topup: Topup) -> dict:
    return {"id": topup.id, "customer_id": topup.customer_id, "amount_fen": topup.amount_fen,
            "bonus_fen": topup.bonus_fen, "method": topup.method, "refunded_fen": topup.refunded_fen,
            "bonus_forfeited_fen": topup.bonus_forfeited_fen, "created_at": local_time(topup.created_at),
            "wallet": _wallet(topup.customer)}


def _item(scope: Scope, code: str) -> ServiceItem:
    item = ServiceItem.objects.filter(chain_id=scope.chain_id, code=code).first()
    if item is None:
        raise ValidationFailed([FieldError("item_code", "is not in the service catalogue", code)])
    return item


def _write(request, response, *, operation: str, key, permission: str, run):
    scope = request_scope(request)

    def guarded():
        permission_require(scope, permission)
        return run(scope)

    return idempotent_response(request, response, user_id=scope.user_id, key=key, operation=operation, run=guarded)


def _read(request, customer_id) -> Customer:
    scope = request_scope(request)
    permission_require(scope, Perm.CUSTOMER_VIEW)
    return customer_get(scope, customer_id)


# --- points --------------------------------------------------------------------------------------------------

@router.get("/customers/{int:customer_id}/points", response={200: PointsOut, **ERROR_RESPONSES},
            summary="Points balance and lots")
def points_get_endpoint(request: HttpRequest, customer_id: Id):
    """Balance, available now, pending, and the open lots with their expiry dates (oldest expiry first)."""
    return _points(_read(request, customer_id))


@router.post("/customers/{int:customer_id}/points/award", response={201: PointsOut, **ERROR_RESPONSES},
             summary="Award a fixed-points rule")
def points_award_endpoint(request: HttpRequest, customer_id: Id, payload: AwardIn, response: HttpResponse,
                          idempotency_key: IdempotencyKeyHeader = None):
    """Referral, event check-in, review, profile completion: the rule's points, with its pending period and
    validity. An unknown or inactive rule is a 422 `unknown_rule`."""
    def run(scope):
        customer = customer_get(scope, customer_id)
        services.points_award(customer=customer, rule_code=payload.rule_code, key=_service_key(scope, idempotency_key),
                              actor=request.staff, source=payload.source)
        return 201, render(PointsOut, _points(customer))

    return _write(request, response, operation="loyalty.points_award", key=idempotency_key,
                  permission=Perm.CUSTOMER_EDIT, run=run)


@router.get("/customers/{int:customer_id}/points/redeem-quote", response={200: QuoteOut, **ERROR_RESPONSES},
            summary="How many points may pay part of a bill")
def points_quote_endpoint(request: HttpRequest, customer_id: Id,
                          bill_fen: Annotated[Fen, Query(description="The bill in fen")]):
    customer = _read(request, customer_id)
    points, fen = services.points_redeem_quote(customer=customer, bill_fen=bill_fen)
    terms = services.points_redeem_terms(chain_id=customer.chain_id)
    return {"bill_fen": bill_fen, "points": points, "value_fen": fen, "points_per_yuan": terms.points_per_yuan,
            "max_share_bp": terms.max_share_bp}


@router.post("/customers/{int:customer_id}/gift-exchanges", response={201: GiftExchangeOut, **ERROR_RESPONSES},
             summary="Exchange points for a gift")
def gift_exchange_endpoint(request: HttpRequest, customer_id: Id, payload: GiftExchangeIn, response: HttpResponse,
                           idempotency_key: IdempotencyKeyHeader = None):
    """Refused with nothing changed: 422 `insufficient_points` or `gift_inactive` (no longer offered), 409
    `out_of_stock`, 404 for an unknown gift."""
    def run(scope):
        customer = customer_get(scope, customer_id)
        with referenced_by("body.gift_id"):
            gift = selectors.gift_get(scope, payload.gift_id)
        exchange: GiftExchange = services.gift_exchange(customer=customer, gift=gift, quantity=payload.quantity,
                                                        key=_service_key(scope, idempotency_key), actor=request.staff)
        gift.refresh_from_db(fields=["stock"])
        return 201, render(GiftExchangeOut, {
            "id": exchange.id, "gift_id": gift.id, "gift_name": gift.name, "quantity": exchange.quantity,
            "points": exchange.points, "stock_left": gift.stock,
            "points_available": selectors.points_summary(customer).available})

    return _write(request, response, operation="loyalty.gift_exchange", key=idempotency_key,
                  permission=Perm.CUSTOMER_EDIT, run=run)


# --- wallet --------------------------------------------------------------------------------------------------

@router.get("/customers/{int:customer_id}/wallet", response={200: WalletOut, **ERROR_RESPONSES},
            summary="Stored-value balance")
def wallet_get_endpoint(request: HttpRequest, customer_id: Id):
    return _wallet(_read(request, customer_id))


@router.post("/customers/{int:customer_id}/wallet/topups", response={201: TopupOut, **ERROR_RESPONSES},
             summary="Top up stored value")
def wallet_topup_endpoint(request: HttpRequest, customer_id: Id, payload: TopupIn, response: HttpResponse,
                          idempotency_key: IdempotencyKeyHeader = None):
    """Principal plus the bonus of the best matching top-up bonus rule. 409 `bonus_rule_invalid` when that rule
    gives more than the minimum top-up it rewards (saved before the settings refused it): nothing is topped up until
    staff correct or deactivate it."""
    def run(scope):
        customer = customer_get(scope, customer_id)
        clinic = clinic_for_write(scope=scope, value=payload.clinic) if payload.clinic not in (None, "") else None
        topup = services.wallet_topup(customer=customer, amount_fen=payload.amount_fen, method=payload.method,
                                      key=_service_key(scope, idempotency_key), actor=request.staff,
                                      clinic=clinic or customer.home_clinic)
        return 201, render(TopupOut, _topup(topup))

    return _write(request, response, operation="loyalty.topup", key=idempotency_key, permission=Perm.CUSTOMER_EDIT,
                  run=run)


@router.post("/topups/{int:topup_id}/refunds", response={201: TopupRefundOut, **ERROR_RESPONSES},
             summary="Refund a top-up's principal (the matching bonus is forfeited)")
def wallet_topup_refund_endpoint(request: HttpRequest, topup_id: Id, payload: TopupRefundIn,
                                 response: HttpResponse, idempotency_key: IdempotencyKeyHeader = None):
    """`{"amount_fen": …}` refunds that much principal, `{"whole": true}` all that is left of it; neither or both is
    a 422 naming both (`{}` no longer refunds everything). 409 `principal_spent` when the wallet no longer holds that
    much principal; nothing changes."""
    def run(scope):
        topup = selectors.topup_get(scope, topup_id)
        refund: TopupRefund = services.wallet_topup_refund(topup=topup, amount_fen=payload.amount_fen,
                                                           key=_service_key(scope, idempotency_key),
                                                           actor=request.staff)
        return 201, render(TopupRefundOut, {"id": refund.id, "topup_id": topup.id, "amount_fen": refund.amount_fen,
                                            "bonus_forfeited_fen": refund.bonus_forfeited_fen,
                                            "wallet": _wallet(topup.customer)})

    return _write(request, response, operation="loyalty.topup_refund", key=idempotency_key,
                  permission=Perm.CUSTOMER_EDIT, run=run)


@router.post("/customers/{int:customer_id}/wallet/transfers", response={201: TransferOut, **ERROR_RESPONSES},
             summary="Transfer stored value within a family card")
def wallet_transfer_endpoint(request: HttpRequest, customer_id: Id, payload: TransferIn, response: HttpResponse,
                             idempotency_key: IdempotencyKeyHeader = None):
    """Between a card holder and a bound family member, with the holder's wallet-share consent (422
    `consent_missing` otherwise). Lots keep their dates."""
    def run(scope):
        source = customer_get(scope, customer_id)
        with referenced_by("body.to_customer_id"):
            target = customer_get(scope, payload.to_customer_id)
        txs = services.wallet_transfer(from_customer=source, to_customer=target, amount_fen=payload.amount_fen,
                                       key=_service_key(scope, idempotency_key), actor=request.staff,
                                       per_use_consent=payload.per_use_consent, consent_token=payload.consent_token,
                                       reader=scope)
        return 201, render(TransferOut, {"transaction_ids": [t.id for t in txs], "from_wallet": _wallet(source),
                                         "to_wallet": _wallet(target)})

    return _write(request, response, operation="loyalty.transfer", key=idempotency_key,
                  permission=Perm.CUSTOMER_EDIT, run=run)


# --- packages ------------------------------------------------------------------------------------------------

def _purchase(p: PackagePurchase) -> dict:
    return {"id": p.id, "package_id": p.package_id, "package_name": p.package.name, "holder_id": p.holder_id,
            "covered_ids": sorted(p.covers.values_list("customer_id", flat=True)), "price_fen": p.price_fen,
            "period_start": local_time(p.period_start), "period_end": local_time(p.period_end), "order_id": p.order_id}


def _entitlement(e) -> dict:
    return {"grant_id": e.grant_id, "purchase_id": e.purchase_id, "package_name": e.package_name, "label": e.label,
            "category": e.category, "item_code": e.item_code, "quantity": e.quantity, "used": e.used,
            "remaining": e.remaining, "max_age": e.max_age, "period_end": local_time(e.period_end)}


@router.post("/customers/{int:customer_id}/packages", response={201: PurchaseOut, **ERROR_RESPONSES},
             summary="Sell a service package")
def package_sell_endpoint(request: HttpRequest, customer_id: Id, payload: PackageSellIn, response: HttpResponse,
                          idempotency_key: IdempotencyKeyHeader = None):
    """The customer is the holder; covered persons must be the holder or members of the holder's household
    (422 per `covered[i]` otherwise). A sale with `payments` is a bill: it earns points as a checkout bill does. A
    `wallet` payment comes from the customer's stored value, or from the family wallet of the card holder the customer
    is bound to (`wallet.holder_id`) with that holder's consent, as at checkout: standing, or `wallet.per_use_consent`
    (422 `consent_missing` naming `body.wallet.per_use_consent`, or `body.wallet.holder_id` for someone the customer
    is not bound to; nothing is sold)."""
    def run(scope):
        holder = customer_get(scope, customer_id)
        with referenced_by("body.package_id"):
            package = selectors.package_get(scope, payload.package_id)
        covered = []
        for i, cid in enumerate(payload.covered_ids):
            with referenced_by(f"body.covered_ids[{i}]"):
                covered.append(customer_get(scope, cid))
        clinic = clinic_for_write(scope=scope, value=payload.clinic) if payload.clinic not in (None, "") else None
        payments = None if payload.payments is None else [p.model_dump() for p in payload.payments]
        wallet_holder = None
        if payload.wallet is not None and payload.wallet.holder_id is not None:
            with referenced_by("body.wallet.holder_id"):
                wallet_holder = customer_get(scope, payload.wallet.holder_id)
        purchase = services.package_sell(package=package, holder=holder, covered=covered,
                                         key=_service_key(scope, idempotency_key), actor=request.staff,
                                         clinic=clinic or holder.home_clinic, payments=payments,
                                         wallet_holder=wallet_holder,
                                         per_use_consent=bool(payload.wallet and payload.wallet.per_use_consent),
                                         reader=scope)
        return 201, render(PurchaseOut, _purchase(purchase))

    return _write(request, response, operation="loyalty.package_sell", key=idempotency_key,
                  permission=Perm.CUSTOMER_EDIT, run=run)


@router.get("/customers/{int:customer_id}/entitlements", response={200: list[EntitlementOut], **ERROR_RESPONSES},
            summary="Package entitlements left this period")
def entitlements_endpoint(request: HttpRequest, customer_id: Id,
                          item_code: str = Query("", description="Only what this item may use")):
    customer = _read(request, customer_id)
    if item_code:
        rows = _entitlements_for_item(request_scope(request), customer, item_code)
    else:
        rows = selectors.entitlements_for_customer(customer)
    return [_entitlement(e) for e in rows]


def _entitlements_for_item(scope: Scope, customer: Customer, item_code: str):
    return selectors.entitlements_available(customer=customer, item=_item(scope, item_code))


@router.post("/customers/{int:customer_id}/entitlements/redeem", response={201: EntitlementUseOut, **ERROR_RESPONSES},
             summary="Use a package entitlement at a visit")
def entitlement_redeem_endpoint(request: HttpRequest, customer_id: Id, payload: EntitlementRedeemIn,
                                response: HttpResponse, idempotency_key: IdempotencyKeyHeader = None):
    """409 `no_entitlement` when nothing is left this period, 422 `age_limit` / `not_covered`; nothing changes."""
    def run(scope):
        customer = customer_get(scope, customer_id)
        item = _item(scope, payload.item_code)
        line = None
        if payload.order_line_id is not None:
            line = OrderLine.objects.select_related("order").filter(pk=payload.order_line_id,
                                                                    order__customer_id=customer.id).first()
            if line is None:
                raise ValidationFailed([FieldError("order_line_id", "is not a line of this customer's orders",
                                                   str(payload.order_line_id))])
        use: EntitlementUse = services.entitlement_redeem(customer=customer, item=item, order_line=line,
                                                          key=_service_key(scope, idempotency_key),
                                                          actor=request.staff)
        left = next((e.remaining for e in selectors.entitlements_for_customer(customer) if e.grant_id == use.grant_id), 0)
        return 201, render(EntitlementUseOut, {"id": use.id, "grant_id": use.grant_id, "customer_id": customer.id,
                                               "item_code": item.code, "order_line_id": use.order_line_id,
                                               "used_at": local_time(use.used_at), "remaining": left})

    return _write(request, response, operation="loyalty.entitlement_redeem", key=idempotency_key,
                  permission=Perm.CUSTOMER_EDIT, run=run)


def _cancellation(c: PackageCancellation) -> dict:
    return {"id": c.id, "purchase_id": c.purchase_id, "status": c.purchase.status, "rule": c.rule,
            "computed_fen": c.computed_fen, "refund_fen": c.refund_fen, "used_value_fen": c.used_value_fen,
            "units_granted": c.units_granted, "units_used": c.units_used, "order_id": c.purchase.order_id,
            "refunds": [{"id": r.id, "method": r.method, "amount_fen": r.amount_fen}
                        for r in c.refunds.order_by("id")],
            "wallet_holder_id": (c.detail.get("wallet") or {}).get("holder_id"),
            "points_clawed_back": (c.detail.get("clawback") or {}).get("points", 0),
            "clawback_withheld_fen": (c.detail.get("clawback") or {}).get("shortfall_fen", 0),
            "reason": c.reason, "cancelled_at": local_time(c.created_at)}


@router.post("/packages/{int:purchase_id}/cancel", response={201: PackageCancellationOut, **ERROR_RESPONSES},
             summary="Cancel a service package and refund its bill")
def package_cancel_endpoint(request: HttpRequest, purchase_id: Id, payload: PackageCancelIn, response: HttpResponse,
                            idempotency_key: IdempotencyKeyHeader = None):
    """Ends the purchase: no entitlement of it can be redeemed any more, for any covered person; what was used stays
    used. Its bill is refunded by the rule (or less), as refunds of the bill by payment method, so revenue and the
    holder's spend go down. A purchase sold without a bill here (the POS recorded its order) is cancelled refunding
    nothing (`computed_fen` says what to refund at the POS).

    Needs `payment.refund` (clinic directors, chain admins): 403 without it, and for a bill of a clinic outside the
    caller's clinics; 404 for a purchase whose holder is outside the caller's scope. 409 `package_not_active` when it
    is cancelled already or its period ended; 422 naming `body.reason`, `body.amount_fen` (above the rule's amount,
    or any amount for a sale without a bill) or `body.method`. Nothing changes on a refusal. A refund of the bill
    through `POST /api/orders/{id}/refunds` while the package is in force is a 409 `refund_elsewhere` naming this
    endpoint."""
    def run(scope):
        purchase = selectors.purchase_get(scope, purchase_id)
        if purchase.order_id and not scope.allows_clinic(purchase.order.clinic_id):
            raise PermissionDenied("the package's bill belongs to a clinic outside your clinics", field="purchase_id")
        cancellation = services.package_cancel(
            purchase=purchase, key=_service_key(scope, idempotency_key), reason=payload.reason, rule=payload.rule,
            amount_fen=payload.amount_fen, method=payload.method.value if payload.method else None,
            actor=request.staff)
        return 201, render(PackageCancellationOut, _cancellation(cancellation))

    return _write(request, response, operation="loyalty.package_cancel", key=idempotency_key,
                  permission=Perm.PAYMENT_REFUND, run=run)
