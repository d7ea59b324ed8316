"""Paying a priced bill in one transaction (see the package docstring)."""

import datetime as dt

from django.db import transaction
from django.utils import timezone

from smileloop.checkout.errors import PaymentsMismatch, PriceChanged
from smileloop.checkout.models import (
    MovementRole,
    Settlement,
    SettlementMovement,
)
from smileloop.checkout.pricing import (
    allocate,
)
from smileloop.checkout.services.price import CASH_METHODS, TENDER_METHOD, PricedBill, _facts, checkout_price
from smileloop.clinics.models import Staff
from smileloop.core.errors import FieldError, ValidationFailed
from smileloop.customers.models import Customer
from smileloop.giftcards import services as giftcard_services
from smileloop.giftcards.errors import LimitReached, NotFriendCardBenefit
from smileloop.giftcards.models import GiftCard
from smileloop.loyalty import services as loyalty_services
from smileloop.membership import services as membership_services
from smileloop.membership.selectors import member_discount_for
from smileloop.visits.models import ServiceItem
from smileloop.visits.services import order_record

# --- pay -----------------------------------------------------------------------------------------------

REUSE_SECONDS = 600


def _reusable(bill: PricedBill) -> bool:
    """Pay reuses a bill priced less than REUSE_SECONDS ago when its facts still hold (5 small reads instead of
    a full price: the ledger writes re-check every balance). Otherwise pay re-prices and compares."""
    if not bill.facts or (timezone.now() - bill.at).total_seconds() > REUSE_SECONDS:
        return False
    ids = [line.item_id for line in bill.lines]
    items = ServiceItem.objects.filter(id__in=ids)
    resolved = [(i, 0) for i in items]
    member = member_discount_for(bill.customer)
    return _facts(resolved, member, bill.customer.chain_id if bill.facts[2] is not None else None) == bill.facts


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
    if isinstance(priced, PricedBill) and _reusable(priced):
        bill = priced
    else:
        bill = checkout_price(**inputs)
        if isinstance(priced, PricedBill) and priced.signature() != bill.signature():
            raise PriceChanged("Balances changed since the bill was priced: price it again", field="priced")
    _payments_check(payments, bill.cash_fen)
    at = timezone.now()
    order, _created = order_record(
        customer=customer, clinic=bill.clinic, ordered_at=at, external_id=external_id, cashier=actor,
        lines=[{"item_code": line.code, "quantity": line.quantity, "unit_price_fen": line.unit_fen,
                "discount_fen": line.reduction_fen, "tooth": str(bill.inputs["lines"][line.index].get("tooth") or "")}
               for line in bill.lines],
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
            tx = loyalty_services.points_redeem(customer=customer, points=t.points, key=f"{base}:points",
                                   source=source, actor=actor)
            add(MovementRole.POINTS, tx, value_fen=t.amount_fen, points=t.points)
        elif t.kind == "wallet":
            wallet = bill.inputs["wallet"] or {}
            txs = _returned(loyalty_services.wallet_spend(
                payer=customer, holder=bill.wallet_holder, amount_fen=t.amount_fen, key=f"{base}:wallet",
                source=source, actor=actor, per_use_consent=bool(wallet.get("per_use_consent"))))
            parts = [t.amount_fen] if len(txs) == 1 else allocate(t.amount_fen, [_tx_size(tx) for tx in txs])
            for tx, part in zip(txs, parts, strict=True):
                add(MovementRole.WALLET, tx, value_fen=part)
    for line, order_line in zip(bill.lines, order_lines, strict=True):
        for unit in range(line.entitled_units):
            use = loyalty_services.entitlement_redeem(customer=customer, item=bill.items[line.item_id],
                                    order_line=order_line, key=f"{base}:ent:{line.index}:{unit}", actor=actor)
            add(MovementRole.ENTITLEMENT, None, order_line=order_line, entitlement_use_model=use._meta.label,
                entitlement_use_id=use.pk)
    paid = {ol.id: line.paid.get("cash", 0) + line.paid.get("wallet", 0) for line, ol in zip(bill.lines, order_lines,
                                                                                              strict=True)}
    earned = loyalty_services.points_earn_for_order(order=order, paid_fen_by_line=paid, actor=actor, at=at)
    for tx in _returned(earned):
        add(MovementRole.EARN, tx, points=_tx_size(tx))
    SettlementMovement.objects.bulk_create(movements)
    _membership_evaluate(customer, actor)
    _benefits_reveal_and_issue(customer, actor=actor, at=at)
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
    membership_services.membership_evaluate(customer=customer, actor=actor)


def _benefits_reveal_and_issue(customer: Customer, *, actor: Staff | None, at: dt.datetime) -> list[GiftCard]:
    """After a payment: reveal the hidden benefits whose trigger fired (membership.benefits_reveal_due) and issue
    the friends-and-family card of each newly revealed `issue_friend_card` benefit. Idempotent: a reveal happens
    once per membership and the card's issue key is the reveal's id. A card the programme's period limit
    refuses (LimitReached), or a chain without a card programme (NotFriendCardBenefit), does not stop the
    payment: the reveal stays in the member's history and staff can issue the card by hand."""
    cards = []
    for reveal in membership_services.benefits_reveal_due(customer=customer, as_of=at):
        if reveal.benefit.action_code != giftcard_services.FRIEND_CARD_ACTION:
            continue
        try:
            cards.append(giftcard_services.friend_card_issue_for_benefit(
                membership=reveal.membership, benefit=reveal.benefit, key=f"benefit-reveal:{reveal.id}",
                actor=actor, as_of=at))
        except (LimitReached, NotFriendCardBenefit):
            continue
    return cards
