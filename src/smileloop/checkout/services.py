"""Checkout: price a bill (`checkout_price`, no writes), pay it (`checkout_pay`, one transaction), refund it
(`checkout_refund`). The arithmetic lives in `pricing` (pure; its docstring states the order of application
and the rounding, see also docs/adr/0004-checkout-rounding.md).

Pay records the order (visits.order_record: member discount + entitlements as the line discount; payments:
the cash methods given, "wallet" for stored value and "other" for gift-card, voucher and points value, as
visits has no dedicated methods), posts every ledger movement (gift cards and vouchers to SALES, points
redeemed, wallet spent, entitlements used), earns points on what was paid in money and stored value, links
all of it to the order in a Settlement, and re-evaluates membership. Idempotent on `key`.

Refund: a refund of R fen is split over the tenders in proportion to what each has not yet given back
(largest remainder; the last refund gives back exactly what is left), and each movement is reversed
cumulatively (`ledger_reverse(upto=refunded so far / paid by it)`) so repeated partial refunds never drift.
Points earned are clawed back by the refunded share of the bill; entitlement uses of refunded units are
given back.
"""

import datetime as dt
from dataclasses import asdict, dataclass, field
from fractions import Fraction

from django.apps import apps
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from smileloop.checkout import loyalty_port
from smileloop.checkout.errors import ConsentMissing, PaymentsMismatch, PriceChanged
from smileloop.checkout.models import (
    MovementRole,
    RefundMovement,
    RefundSettlement,
    Settlement,
    SettlementMovement,
)
from smileloop.checkout.pricing import (
    MAX,
    CardIn,
    DiscountIn,
    LineIn,
    PointsIn,
    Priced,
    PricingError,
    VoucherIn,
    WalletIn,
    allocate,
    price,
)
from smileloop.clinics.models import Clinic, Staff
from smileloop.core.errors import DomainError, FieldError, ValidationFailed
from smileloop.customers.models import Customer
from smileloop.giftcards import selectors as giftcard_selectors
from smileloop.giftcards import services as giftcard_services
from smileloop.giftcards.errors import AlreadyUsed, ExcludedItem, Expired
from smileloop.giftcards.models import GiftCard, Voucher
from smileloop.ledger.services import InsufficientBalance, available_balance, ledger_reverse
from smileloop.membership.enums import DiscountSource
from smileloop.membership.selectors import member_discount_for, wallet_share_allowed
from smileloop.visits.enums import PaymentMethod
from smileloop.visits.models import Order, ServiceItem
from smileloop.visits.services import order_record, refund_record

TENDER_METHOD = {"giftcard": PaymentMethod.OTHER, "voucher": PaymentMethod.OTHER, "points": PaymentMethod.OTHER,
                 "wallet": PaymentMethod.WALLET}
CASH_METHODS = [m for m in PaymentMethod.values if m not in (PaymentMethod.WALLET,)]


@dataclass
class PricedBill:
    customer: Customer
    clinic: Clinic
    at: dt.datetime
    inputs: dict  # the checkout_price arguments (to re-price at pay time)
    priced: Priced
    items: dict[int, ServiceItem]
    cards: dict[str, GiftCard] = field(default_factory=dict)
    vouchers: dict[str, Voucher] = field(default_factory=dict)
    wallet_holder: Customer | None = None
    discount_source: str = ""

    @property
    def lines(self):
        return self.priced.lines

    @property
    def tenders(self):
        return self.priced.tenders

    @property
    def total_fen(self) -> int:
        return self.priced.total_fen

    @property
    def cash_fen(self) -> int:
        return self.priced.cash_fen

    def as_dict(self) -> dict:
        lines = []
        for line in self.priced.lines:
            data = asdict(line)
            data["steps"] = [asdict(s) for s in line.steps]
            lines.append(data)
        return {"customer_id": self.customer.pk, "clinic_id": self.clinic.pk, "at": self.at.isoformat(),
                "list_total_fen": self.priced.list_total_fen, "total_fen": self.total_fen, "cash_fen": self.cash_fen,
                "discount_source": self.discount_source, "lines": lines,
                "tenders": [{"kind": t.kind, "ref": t.ref, "label": t.label, "amount_fen": t.amount_fen,
                             "per_line": t.per_line, "points": t.points, "balance_before_fen": t.balance_before_fen,
                             "forfeited_fen": t.forfeited_fen} for t in self.priced.tenders]}

    def signature(self) -> list:
        return [(t.kind, t.ref, t.amount_fen, t.points, tuple(t.per_line)) for t in self.priced.tenders] + [
            (line.item_id, line.quantity, line.net_fen) for line in self.priced.lines]


def _raise_pricing(exc: PricingError):
    if exc.code == "excluded_item":
        raise ExcludedItem(exc.message, field=exc.field)
    if exc.code == "insufficient_balance":
        raise InsufficientBalance(exc.message, field=exc.field)
    raise ValidationFailed([FieldError(exc.field, exc.message)])


def _items(chain_id: int, lines: list[dict]) -> tuple[list[tuple[ServiceItem, int]], dict[int, ServiceItem]]:
    codes = [str(line.get("item_code", "")) for line in lines if line.get("item_code")]
    ids = [line.get("item_id") for line in lines if line.get("item_id")]
    found = list(ServiceItem.objects.filter(chain_id=chain_id, is_active=True, code__in=codes)) + list(
        ServiceItem.objects.filter(chain_id=chain_id, is_active=True, id__in=ids))
    by_code, by_id = {i.code: i for i in found}, {i.id: i for i in found}
    out, errors = [], []
    if not lines:
        errors.append(FieldError("lines", "a bill needs at least one line"))
    for i, line in enumerate(lines):
        item = by_code.get(str(line.get("item_code"))) if line.get("item_code") else by_id.get(line.get("item_id"))
        qty = line.get("quantity", 1)
        if item is None:
            errors.append(FieldError(f"lines[{i}].item_code", "is not in the service catalogue",
                                     str(line.get("item_code") or line.get("item_id"))))
        elif not isinstance(qty, int) or isinstance(qty, bool) or qty < 1 or qty > 99:
            errors.append(FieldError(f"lines[{i}].quantity", "must be a whole number from 1 to 99", str(qty)))
        else:
            out.append((item, qty))
    if errors:
        raise ValidationFailed(errors)
    return out, by_id


def _discount_label(discount) -> str:
    if discount.source == DiscountSource.FAMILY:
        return f"家庭卡({discount.membership.customer.name}) {discount.tier.name}"
    if discount.source == DiscountSource.FRIEND:
        return f"亲友({discount.membership.customer.name}) {discount.tier.name}"
    return discount.tier.name


def checkout_price(*, customer: Customer, clinic: Clinic, lines: list[dict], vouchers: list[str] = (),
                   gift_cards: list[str] = (), points: int | str = 0, wallet: dict | None = None,
                   at: dt.datetime | None = None) -> PricedBill:
    """Price a bill without writing anything. `lines`: [{"item_code" (or "item_id"), "quantity"}]; `points`: a
    number of points or "max"; `wallet`: {"holder": Customer (default the customer), "amount_fen": int or "max",
    "per_use_consent": bool}. Raises the typed errors (wrong_code, expired, excluded_item, already_used,
    insufficient_balance, consent_missing) before anything could be written."""
    at = at or timezone.now()
    if clinic.chain_id != customer.chain_id:
        raise ValidationFailed([FieldError("clinic", "is not a clinic of the customer's chain", str(clinic.pk))])
    inputs = {"customer": customer, "clinic": clinic, "lines": [dict(line) for line in lines],
              "vouchers": list(vouchers), "gift_cards": list(gift_cards), "points": points,
              "wallet": dict(wallet) if wallet else None, "at": at}
    resolved, items = _items(customer.chain_id, lines)
    line_ins, entitled_left = [], {}
    for item, qty in resolved:
        units = 0
        if loyalty_port.available("entitlements_available"):
            if item.id not in entitled_left:
                balances = loyalty_port.call("entitlements_available", customer=customer, item=item, at=at)
                entitled_left[item.id] = sum(getattr(b, "remaining", 0) for b in balances)
            units = min(qty, entitled_left[item.id])
            entitled_left[item.id] -= units
        line_ins.append(LineIn(item.id, item.code, item.name, item.category, item.is_special_price, item.list_price_fen,
                               qty, units))
    member = member_discount_for(customer, at=at)
    discount = (DiscountIn(member.discount_bp, frozenset(member.excluded_categories), member.exclude_special_price,
                           _discount_label(member)) if member else None)
    voucher_ins, voucher_rows = [], {}
    for i, code in enumerate(vouchers):
        voucher = giftcard_selectors.voucher_get_by_code(chain_id=customer.chain_id, code=code)
        giftcard_services.voucher_check(voucher, at)
        if voucher.customer_id and voucher.customer_id != customer.pk:
            raise AlreadyUsed(f"voucher {voucher.code} belongs to another customer", field=f"vouchers[{i}]")
        voucher_rows[voucher.code] = voucher
        c = voucher.campaign
        voucher_ins.append(VoucherIn(voucher.code, available_balance(voucher.account, at=at), c.item_id,
                                     c.category, c.name))
    card_ins, card_rows = [], {}
    for i, code in enumerate(gift_cards):
        card = giftcard_selectors.giftcard_get_by_code(chain_id=customer.chain_id, code=code)
        if card.status == "expired" or giftcard_selectors.card_is_expired(card, at):
            raise Expired(f"gift card {card.code} expired on {timezone.localdate(card.expires_at)}",
                          field=f"gift_cards[{i}]")
        card_rows[card.code] = card
        card_ins.append(CardIn(card.code, giftcard_selectors.giftcard_balance(card, at=at),
                               frozenset(card.excluded_categories), card.exclude_special_price, card.programme.name))
    bill_after = sum(li.unit_fen * (li.quantity - li.entitled_units) for li in line_ins)  # upper bound for the quote
    points_in = None
    if points:
        if points != MAX and (not isinstance(points, int) or isinstance(points, bool) or points < 0):
            raise ValidationFailed([FieldError("points", 'must be a whole number of points or "max"', str(points))])
        # the cap applies to the bill after discounts: price once without tenders to know it
        bill_after = price(lines=line_ins, discount=discount).total_fen if line_ins else 0
        max_points, max_fen = loyalty_port.call("points_redeem_quote", customer=customer, bill_fen=bill_after)
        points_in = PointsIn(points, max_points, max_fen)
    wallet_in, holder = None, None
    if wallet:
        holder = wallet.get("holder") or customer
        if holder.pk != customer.pk:
            mode = wallet_share_allowed(holder, customer, at=at)
            if mode is None and not wallet.get("per_use_consent"):
                raise ConsentMissing(f"{holder.name} has not consented to {customer.name} paying from the family "
                                     "wallet: record the holder's consent (standing, or for this use)",
                                     field="wallet.per_use_consent")
        balance = loyalty_port.call("wallet_balance", customer=holder)
        amount = wallet.get("amount_fen", MAX)
        label = "储值卡" if holder.pk == customer.pk else f"家庭储值卡({holder.name})"
        wallet_in = WalletIn(amount, balance.principal + balance.bonus, label)
    try:
        priced = price(lines=line_ins, discount=discount, vouchers=voucher_ins, cards=card_ins, points=points_in,
                       wallet=wallet_in)
    except PricingError as exc:
        _raise_pricing(exc)
    return PricedBill(customer=customer, clinic=clinic, at=at, inputs=inputs, priced=priced, items=items,
                      cards=card_rows, vouchers=voucher_rows, wallet_holder=holder,
                      discount_source=member.source if member else "")


# --- pay -----------------------------------------------------------------------------------------------


def _returned(result) -> list:
    if result is None:
        return []
    return list(result) if isinstance(result, (list, tuple)) else [result]


@transaction.atomic
def checkout_pay(*, priced: "PricedBill | dict", payments: list[dict], key: str, actor: Staff | None = None,
                 external_id: str | None = None) -> Settlement:
    """Pay a priced bill in one transaction (see the module docstring). `priced` is a PricedBill or the
    checkout_price arguments; the bill is re-priced inside the transaction and a different result is a 409
    `price_changed`. `payments` ([{"method", "amount_fen"}]) cover the cash remainder exactly. Idempotent on
    `key`: a replay returns the first settlement. Any refusal leaves nothing written."""
    inputs = priced.inputs if isinstance(priced, PricedBill) else dict(priced)
    customer: Customer = inputs["customer"]
    if not key or len(key) > 150:
        raise ValidationFailed([FieldError("key", "an idempotency key of 1–150 characters is required", key)])
    existing = Settlement.objects.filter(chain_id=customer.chain_id, key=key).first()
    if existing is not None:
        return existing
    Customer.objects.select_for_update().filter(pk=customer.pk).first()  # one checkout per customer at a time
    bill = checkout_price(**inputs)
    if isinstance(priced, PricedBill) and priced.signature() != bill.signature():
        raise PriceChanged("Balances changed since the bill was priced: price it again", field="priced")
    _payments_check(payments, bill.cash_fen)
    at = bill.at
    order, _created = order_record(
        customer=customer, clinic=bill.clinic, ordered_at=at, external_id=external_id, cashier=actor,
        lines=[{"item_code": line.code, "quantity": line.quantity, "unit_price_fen": line.unit_fen,
                "discount_fen": line.reduction_fen} for line in bill.lines],
        payments=[{"method": p["method"], "amount_fen": p["amount_fen"]} for p in payments if p["amount_fen"]]
        + [{"method": TENDER_METHOD[t.kind], "amount_fen": t.amount_fen} for t in bill.tenders
           if t.kind != "cash" and t.amount_fen > 0])
    order_lines = list(order.lines.order_by("id"))
    settlement = Settlement.objects.create(chain_id=customer.chain_id, key=key, customer=customer, clinic=bill.clinic,
                                           order=order, total_fen=bill.total_fen, cash_fen=bill.cash_fen,
                                           breakdown=bill.as_dict(), actor=actor, created_at=at)
    source, base = f"order:{order.id}", f"checkout:{key}"
    movements: list[SettlementMovement] = []

    def add(role, tx=None, **kw):
        movements.append(SettlementMovement(settlement=settlement, role=role, transaction=tx, **kw))

    for t in bill.tenders:
        if t.amount_fen <= 0 or t.kind == "cash":
            continue
        if t.kind == "voucher":
            tx = giftcard_services.voucher_redeem(voucher=bill.vouchers[t.ref], used_fen=t.amount_fen,
                                                  key=f"{base}:voucher:{t.ref}", source=source, actor=actor, at=at)
            add(MovementRole.VOUCHER, tx, ref=t.ref, value_fen=t.amount_fen)
        elif t.kind == "giftcard":
            card = bill.cards[t.ref]
            giftcard_services.giftcard_holder_note(card=card, customer=customer, at=at, actor=actor)
            tx = giftcard_services.giftcard_spend(card=card, amount_fen=t.amount_fen, key=f"{base}:giftcard:{t.ref}",
                                                  source=source, actor=actor, at=at)
            add(MovementRole.GIFTCARD, tx, ref=t.ref, value_fen=t.amount_fen)
        elif t.kind == "points":
            tx = loyalty_port.call("points_redeem", customer=customer, points=t.points, key=f"{base}:points",
                                   source=source, actor=actor)
            add(MovementRole.POINTS, tx, value_fen=t.amount_fen, points=t.points)
        elif t.kind == "wallet":
            wallet = bill.inputs["wallet"] or {}
            txs = _returned(loyalty_port.call(
                "wallet_spend", payer=customer, holder=bill.wallet_holder, amount_fen=t.amount_fen, key=f"{base}:wallet",
                source=source, actor=actor, per_use_consent=bool(wallet.get("per_use_consent"))))
            parts = allocate(t.amount_fen, [_tx_size(tx) for tx in txs])
            for tx, part in zip(txs, parts, strict=True):
                add(MovementRole.WALLET, tx, value_fen=part)
    for line, order_line in zip(bill.lines, order_lines, strict=True):
        for unit in range(line.entitled_units):
            use = loyalty_port.call("entitlement_redeem", customer=customer, item=bill.items[line.item_id],
                                    order_line=order_line, key=f"{base}:ent:{line.index}:{unit}", actor=actor)
            add(MovementRole.ENTITLEMENT, None, order_line=order_line, entitlement_use_model=use._meta.label,
                entitlement_use_id=use.pk)
    paid = {ol.id: line.paid.get("cash", 0) + line.paid.get("wallet", 0) for line, ol in zip(bill.lines, order_lines,
                                                                                              strict=True)}
    if loyalty_port.available("points_earn_for_order"):
        for tx in _returned(loyalty_port.call("points_earn_for_order", order=order, paid_fen_by_line=paid, actor=actor)):
            add(MovementRole.EARN, tx, points=_tx_size(tx))
    SettlementMovement.objects.bulk_create(movements)
    _membership_evaluate(customer, actor)
    return settlement


def _tx_size(tx) -> int:
    """The size of a movement: the sum of its credits."""
    return sum(e.amount for e in tx.entries.all() if e.amount > 0)


def _payments_check(payments: list[dict], cash_fen: int) -> None:
    errors, total = [], 0
    for i, p in enumerate(payments or []):
        amount = p.get("amount_fen")
        if p.get("method") not in CASH_METHODS:
            errors.append(FieldError(f"payments[{i}].method", f"must be one of {', '.join(CASH_METHODS)}",
                                     str(p.get("method"))))
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            errors.append(FieldError(f"payments[{i}].amount_fen", "must be a whole number of fen ≥ 0", str(amount)))
        else:
            total += amount
    if errors:
        raise ValidationFailed(errors)
    if total != cash_fen:
        raise PaymentsMismatch(f"payments add up to {total} fen but {cash_fen} fen are due", field="payments")


def _membership_evaluate(customer: Customer, actor: Staff | None) -> None:
    from smileloop.membership import services as membership_services

    evaluate = getattr(membership_services, "membership_evaluate", None)
    if evaluate is not None:
        evaluate(customer=customer, actor=actor)


# --- refund --------------------------------------------------------------------------------------------


def _refund_lines(settlement: Settlement, order: Order, lines: list[dict] | None) -> tuple[dict, dict]:
    """→ ({order line id: fen to refund}, {order line id: units refunded now})."""
    order_lines = {ol.id: ol for ol in order.lines.all()}
    amounts, units = {}, {}
    if lines is None:
        for ol in order_lines.values():
            if ol.amount_fen - ol.refunded_fen:
                amounts[ol.id] = ol.amount_fen - ol.refunded_fen
            units[ol.id] = ol.quantity - settlement.units_refunded.get(str(ol.id), 0)
        return amounts, units
    errors = []
    for i, line in enumerate(lines):
        ol = order_lines.get(line.get("line_id"))
        if ol is None:
            errors.append(FieldError(f"lines[{i}].line_id", "is not a line of this bill", str(line.get("line_id"))))
            continue
        left = ol.amount_fen - ol.refunded_fen - amounts.get(ol.id, 0)
        done = settlement.units_refunded.get(str(ol.id), 0) + units.get(ol.id, 0)
        if "quantity" in line:
            q = line["quantity"]
            if not isinstance(q, int) or q < 1 or done + q > ol.quantity:
                errors.append(FieldError(f"lines[{i}].quantity", f"must be between 1 and {ol.quantity - done}", str(q)))
                continue
            amount = left if done + q == ol.quantity else min(left, ol.amount_fen * q // ol.quantity)
            units[ol.id] = units.get(ol.id, 0) + q
        else:
            amount = line.get("amount_fen")
            if not isinstance(amount, int) or amount < 1 or amount > left:
                errors.append(FieldError(f"lines[{i}].amount_fen", f"must be between 1 and {left} fen", str(amount)))
                continue
            if amount == left:
                units[ol.id] = ol.quantity - done
        if amount:
            amounts[ol.id] = amounts.get(ol.id, 0) + amount
    if errors:
        raise ValidationFailed(errors)
    if not amounts and not any(units.values()):
        raise ValidationFailed([FieldError("lines", "nothing left to refund")])
    return amounts, units


@transaction.atomic
def checkout_refund(*, settlement: Settlement, lines: list[dict] | None = None, key: str, actor: Staff | None = None,
                    reason: str = "") -> RefundSettlement:
    """Refund the whole bill (lines=None) or lines ([{"line_id", "quantity"}] or [{"line_id", "amount_fen"}]),
    giving back every tender in proportion (module docstring). Idempotent on `key`."""
    existing = RefundSettlement.objects.filter(chain_id=settlement.chain_id, key=key).first()
    if existing is not None:
        return existing
    settlement = Settlement.objects.select_for_update().select_related("order", "customer").get(pk=settlement.pk)
    order = settlement.order
    amounts, units = _refund_lines(settlement, order, lines)
    total = sum(amounts.values())
    at = timezone.now()
    refund = None
    if total:
        methods = [p.method for p in order.payments.all() if p.method not in (PaymentMethod.WALLET, PaymentMethod.OTHER)]
        refund, _ = refund_record(order=order, lines=[{"line_id": k, "amount_fen": v} for k, v in amounts.items()],
                                  reason=reason, method=methods[0] if methods else PaymentMethod.OTHER,
                                  refunded_at=at, actor=actor)
        order.refresh_from_db(fields=["refunded_fen", "amount_fen"])
    movements = list(settlement.movements.select_related("transaction").order_by("id"))
    valued = [m for m in movements if m.value_fen > 0]
    remaining = [m.value_fen - m.refunded_fen for m in valued] + [settlement.cash_fen - settlement.cash_refunded_fen]
    parts = allocate(total, remaining)
    rows, tenders = [], []
    base = f"refund:{key}"
    for m, part in zip(valued, parts[:-1], strict=True):
        if not part:
            continue
        cumulative = m.refunded_fen + part
        upto = Fraction(cumulative, m.value_fen)
        tx = _reverse_movement(m, key=f"{base}:{m.id}", upto=upto, actor=actor)
        SettlementMovement.objects.filter(pk=m.pk).update(refunded_fen=F("refunded_fen") + part)
        rows.append(RefundMovement(movement=m, transaction=tx, amount_fen=part))
        tenders.append({"kind": m.role, "ref": m.ref, "amount_fen": part,
                        "points": _tx_size(tx) if (tx is not None and m.role == MovementRole.POINTS) else 0})
    cash = parts[-1]
    if cash:
        Settlement.objects.filter(pk=settlement.pk).update(cash_refunded_fen=F("cash_refunded_fen") + cash)
        tenders.append({"kind": "cash", "ref": "", "amount_fen": cash, "points": 0})
    if order.amount_fen:
        share = Fraction(order.refunded_fen, order.amount_fen)
        for m in movements:
            if m.role == MovementRole.EARN and share > 0:
                tx = ledger_reverse(original=m.transaction, key=f"{base}:{m.id}", upto=share, actor=actor,
                                    reason="clawback")
                if tx is not None:
                    rows.append(RefundMovement(movement=m, transaction=tx, amount_fen=0))
                    tenders.append({"kind": "earn", "ref": "", "amount_fen": 0, "points": -_tx_size(tx)})
    reversed_uses = []
    for line_id, n in units.items():
        uses = [m for m in movements if m.role == MovementRole.ENTITLEMENT and m.order_line_id == line_id
                and not m.reversed][:n]
        for m in uses:
            use = apps.get_model(m.entitlement_use_model).objects.get(pk=m.entitlement_use_id)
            loyalty_port.call("entitlement_use_reverse", use=use, key=f"{base}:{m.id}", actor=actor)
            SettlementMovement.objects.filter(pk=m.pk).update(reversed=True)
            rows.append(RefundMovement(movement=m, amount_fen=0))
            reversed_uses.append(m.id)
    units_refunded = dict(settlement.units_refunded)
    for line_id, n in units.items():
        units_refunded[str(line_id)] = units_refunded.get(str(line_id), 0) + n
    Settlement.objects.filter(pk=settlement.pk).update(units_refunded=units_refunded)
    refund_settlement = RefundSettlement.objects.create(
        chain_id=settlement.chain_id, key=key, settlement=settlement, refund=refund, amount_fen=total, cash_fen=cash,
        reason=reason[:255], actor=actor, created_at=at,
        breakdown={"amount_fen": total, "lines": [{"line_id": k, "amount_fen": v, "units": units.get(k, 0)}
                                                  for k, v in amounts.items()],
                   "tenders": tenders, "entitlements_reversed": len(reversed_uses)})
    for row in rows:
        row.refund = refund_settlement
    RefundMovement.objects.bulk_create(rows)
    _membership_evaluate(settlement.customer, actor)
    return refund_settlement


def _reverse_movement(m: SettlementMovement, *, key: str, upto: Fraction, actor: Staff | None):
    if m.role == MovementRole.GIFTCARD:
        card = GiftCard.objects.select_related("account").get(chain_id=m.settlement.chain_id, code=m.ref)
        return giftcard_services.giftcard_spend_reverse(card=card, original=m.transaction, key=key, upto=upto,
                                                        actor=actor)
    if m.role == MovementRole.VOUCHER:
        voucher = Voucher.objects.get(chain_id=m.settlement.chain_id, code=m.ref)
        return giftcard_services.voucher_redeem_reverse(voucher=voucher, original=m.transaction, key=key, upto=upto,
                                                        actor=actor)
    return ledger_reverse(original=m.transaction, key=key, upto=upto, actor=actor, reason="refund")


__all__ = ["DomainError", "PricedBill", "checkout_pay", "checkout_price", "checkout_refund"]
