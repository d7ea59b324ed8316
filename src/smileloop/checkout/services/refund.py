"""Refunds, proportional over the tenders, with the earned-points clawback (see the package docstring)."""

from collections import Counter
from fractions import Fraction

from django.apps import apps
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from smileloop.checkout import labels
from smileloop.checkout.errors import ClawbackExceedsRefund
from smileloop.checkout.models import (
    MovementRole,
    RefundMovement,
    RefundSettlement,
    Settlement,
    SettlementMovement,
)
from smileloop.checkout.services.pay import _membership_evaluate, replay_check, request_hash
from smileloop.checkout.services.price import TENDER_METHOD
from smileloop.clinics.models import Staff
from smileloop.core.errors import FieldError, ValidationFailed
from smileloop.core.idempotency import service_key_check
from smileloop.core.money import allocate, fen_to_yuan, money_split, refund_lines_split
from smileloop.customers.services import customers_lock
from smileloop.giftcards import services as giftcard_services
from smileloop.giftcards.models import GiftCard, Voucher
from smileloop.ledger.models import Entry
from smileloop.ledger.selectors import transaction_size
from smileloop.ledger.services import accounts_lock, ledger_reverse
from smileloop.loyalty import services as loyalty_services
from smileloop.visits.enums import TENDER_METHODS, PaymentMethod
from smileloop.visits.models import Order
from smileloop.visits.services import refund_record

# --- by method -----------------------------------------------------------------------------------------


def refund_split(*, order: Order, money_fen: int, tenders: list[tuple[str, int]], withheld_fen: int
                 ) -> list[tuple[str, int]]:
    """[(payment method, fen)] a checkout refund gave back, adding up to the refund, each method once, in the
    order the bill's payments were recorded (money methods first, as pay records them), methods that paid nothing
    last.

    - The money given back (`money_fen`: the cash part less the clawback withheld) is split over the bill's money
      methods in proportion to what each has left (what it paid less what refunds recorded to it), by `allocate`
      (largest remainder, ties to the method paid first): repeated partial refunds never give a method more than
      it paid, and the one that gives back the rest leaves each exactly its payment less any clawback withheld.
      Should the methods have less left than the money (rows written before refunds were recorded by method), the
      excess goes in proportion to what each paid; a bill with no money payment gives it back as `other`.
    - Each tender (wallet, points, gift card, voucher) goes back under its own method (`tenders`).
    - The clawback withheld (`withheld_fen`: points the bill earned and the member had already spent, kept from the
      cash) is recorded under `points`: it was not money given back, so no money method counts it, and the bill
      is still refunded by that much (its lines in full), as before."""
    paid: dict[str, int] = {}
    for method, fen in order.payments.order_by("id").values_list("method", "amount_fen"):
        paid[method] = paid.get(method, 0) + fen
    money = {m: fen for m, fen in paid.items() if m not in TENDER_METHODS}
    parts: dict[str, int] = dict.fromkeys(paid, 0)
    if money_fen and not money:
        parts[PaymentMethod.OTHER] = money_fen
    elif money_fen:
        refunded: dict[str, int] = {}
        for method, fen in order.refunds.filter(method__in=list(money)).values_list("method", "amount_fen"):
            refunded[method] = refunded.get(method, 0) + fen
        for method, fen in money_split(money_fen, money, refunded).items():
            parts[method] += fen
    for method, fen in tenders:
        parts[method] = parts.get(method, 0) + fen
    if withheld_fen:
        parts[PaymentMethod.POINTS] = parts.get(PaymentMethod.POINTS, 0) + withheld_fen
    return [(method, fen) for method, fen in parts.items() if fen]


# --- refund --------------------------------------------------------------------------------------------


def _refund_lines(settlement: Settlement, order: Order, lines: list[dict] | None,
                  movements: list[SettlementMovement]) -> tuple[dict, dict]:
    """→ ({order line id: fen to refund}, {order line id: units refunded now}).

    Units refunded by quantity give back the line's entitled units first (their entitlement uses are reversed in
    that order), then its paid units, each paid unit an equal share of what the line was paid: two cleanings, one
    paid and one from a package, refunded one at a time give back the package's cleaning, then the money, never
    half of each."""
    order_lines = {ol.id: ol for ol in order.lines.all()}
    entitled = Counter(m.order_line_id for m in movements if m.role == MovementRole.ENTITLEMENT)
    amounts, units = {}, {}
    if lines is None:
        for ol in order_lines.values():
            if ol.amount_fen - ol.refunded_fen:
                amounts[ol.id] = ol.amount_fen - ol.refunded_fen
            units[ol.id] = ol.quantity - settlement.units_refunded.get(str(ol.id), 0)
    errors = []
    for i, line in enumerate(lines or ()):
        ol = order_lines.get(line.get("line_id"))
        if ol is None:
            errors.append(FieldError(f"lines[{i}].line_id", "is not a line of this bill", str(line.get("line_id"))))
            continue
        if "quantity" in line and "amount_fen" in line:  # which one the client meant is anyone's guess
            errors.append(FieldError(f"lines[{i}]", "give quantity or amount_fen, not both"))
            continue
        left = ol.amount_fen - ol.refunded_fen - amounts.get(ol.id, 0)
        done = settlement.units_refunded.get(str(ol.id), 0) + units.get(ol.id, 0)
        if "quantity" in line:
            q = line["quantity"]
            if not isinstance(q, int) or isinstance(q, bool) or q < 1 or done + q > ol.quantity:
                errors.append(FieldError(f"lines[{i}].quantity", f"must be between 1 and {ol.quantity - done}", str(q)))
                continue
            e = entitled.get(ol.id, 0)
            paid_units, paid_done = ol.quantity - e, max(0, done - e)
            paid_now = max(0, done + q - e) - paid_done
            amount = (left if paid_done + paid_now == paid_units
                      else min(left, ol.amount_fen * paid_now // paid_units))
            units[ol.id] = units.get(ol.id, 0) + q
        else:
            amount = line.get("amount_fen")
            if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1 or amount > left:
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


def settled_order_refund_where(order: Order) -> str | None:
    """Where to refund an order checkout paid (visits.refund_owner_register): on its settlement, which gives back
    each tender that paid it; a refund recorded on the order alone would repay points, wallet and card value as
    money and leave them spent."""
    settlement_id = Settlement.objects.filter(order_id=order.pk).values_list("id", flat=True).first()
    if settlement_id is None:
        return None
    return (f"order {order.pk} was paid at checkout (settlement {settlement_id}): refund it there "
            f"(POST /api/checkout/settlements/{settlement_id}/refund, or its receipt page), which gives back the "
            "wallet, points, gift cards and vouchers it used")


@transaction.atomic
def checkout_refund(*, settlement: Settlement, lines: list[dict] | None = None, key: str, actor: Staff | None = None,
                    reason: str = "") -> RefundSettlement:
    """Refund the whole bill (lines=None) or lines ([{"line_id", "quantity"}] or [{"line_id", "amount_fen"}]),
    giving back every tender in proportion (module docstring). Idempotent on `key`.

    Locks as a bill does (docs/architecture.md, "Locks, in one order"): the customer's row first, FOR NO KEY UPDATE,
    then the settlement's own row. Locking the settlement joined to its customer took the customer FOR UPDATE, which
    blocks the foreign-key checks (KEY SHARE) of a family member's bill that records its use of this customer's
    wallet while holding the wallet's account: that bill and this refund, waiting for the wallet, deadlocked."""
    service_key_check(key)  # refused when empty or too long; used as given
    customers_lock(Settlement.objects.filter(pk=settlement.pk).values_list("customer_id", flat=True).get())
    settlement = (Settlement.objects.select_for_update(of=("self",)).select_related("order", "customer")
                  .get(pk=settlement.pk))
    customers_lock(settlement.customer_id)  # the same row, unless a merge moved the bill meanwhile
    # The replay check comes after the bill's lock (as pay's does): a double-submitted refund form waits for its
    # first run and returns it, instead of finding "nothing left to refund" or clashing on the key.
    existing = RefundSettlement.objects.filter(chain_id=settlement.chain_id, key=key).first()
    # Which bill and which of its lines (not how much of them: the staff page asks for "what is left of" a line,
    # which its first submit changes, so a double click would not look like a replay of itself).
    digest = request_hash({"settlement": settlement.pk,
                           "lines": None if lines is None else sorted({str(line.get("line_id")) for line in lines})})
    if existing is not None:
        replay_check(existing, digest, key, "refund")
        return existing
    order = settlement.order
    movements = list(settlement.movements.select_related("transaction").order_by("id"))
    amounts, units = _refund_lines(settlement, order, lines, movements)
    total = sum(amounts.values())
    at = timezone.now()
    valued = [m for m in movements if m.value_fen > 0]
    remaining = [m.value_fen - m.refunded_fen for m in valued] + [settlement.cash_fen - settlement.cash_refunded_fen]
    parts = allocate(total, remaining)
    cash = parts[-1]
    share = Fraction(order.refunded_fen + total, order.amount_fen) if order.amount_fen else Fraction(0)
    earn = next((m for m in movements if m.role == MovementRole.EARN and m.transaction_id and m.points > 0), None)
    clawing = earn is not None and share > 0
    # Every account this refund will post to, locked at once in id order as a bill's pay locks its own: reversed one
    # tender at a time, the shared accounts were taken in another order and a concurrent pay deadlocked with it.
    reversed_tx = [m.transaction_id for m, part in zip(valued, parts[:-1], strict=True) if part and m.transaction_id]
    reversed_tx += [earn.transaction_id] if clawing else []
    accounts_lock(Entry.objects.filter(transaction_id__in=reversed_tx).values_list("account_id", flat=True))
    if total:  # the bill's row, where its refunds were always taken (before the tenders' rows)
        Order.objects.select_for_update().filter(pk=order.pk).values_list("id", flat=True).get()
    rows, tenders = [], []
    tender_parts: list[tuple[str, int]] = []  # (payment method, fen) of each tender given back
    base = f"refund:{key}"
    for m, part in zip(valued, parts[:-1], strict=True):
        if not part:
            continue
        cumulative = m.refunded_fen + part
        upto = Fraction(cumulative, m.value_fen)
        tx = _reverse_movement(m, key=f"{base}:{m.id}", upto=upto, actor=actor)
        SettlementMovement.objects.filter(pk=m.pk).update(refunded_fen=F("refunded_fen") + part)
        rows.append(RefundMovement(movement=m, transaction=tx, amount_fen=part))
        tender_parts.append((TENDER_METHOD[m.role], part))
        tenders.append({"kind": m.role, "ref": m.ref, "amount_fen": part,
                        "points": transaction_size(tx) if (tx is not None and m.role == MovementRole.POINTS) else 0})
    # The clawback is planned once the tenders are back, under the lock: points this refund returns (redeemed on the
    # bill) pay for earned points already spent before any money is withheld. Refused, the transaction rolls back
    # everything above.
    clawback = (loyalty_services.points_clawback_plan(earn=earn.transaction, share=share,
                                                      settled=_shortfall_settled(settlement)) if clawing else None)
    withheld_fen = clawback.shortfall_fen if clawback else 0
    if withheld_fen > cash:
        raise ClawbackExceedsRefund(
            f"{clawback.shortfall_points} of the points this bill earned were already used; they are worth "
            f"{fen_to_yuan(withheld_fen)} yuan, more than the {fen_to_yuan(cash)} yuan this refund gives back in cash",
            field="lines")
    refunds, by_method = [], []
    if total:
        # What went back, by method (`refund_split`): one visits.Refund per method, its lines a share of the lines'.
        by_method = refund_split(order=order, money_fen=cash - withheld_fen, tenders=tender_parts,
                                 withheld_fen=withheld_fen)
        for method, per_line in refund_lines_split(amounts, by_method):
            refund, _ = refund_record(order=order, lines=[{"line_id": k, "amount_fen": v} for k, v in per_line.items()],
                                      reason=reason, method=method, refunded_at=at, actor=actor, owner=True)
            refunds.append(refund)
    if cash:
        Settlement.objects.filter(pk=settlement.pk).update(cash_refunded_fen=F("cash_refunded_fen") + cash)
        tenders.append({"kind": "cash", "ref": "", "amount_fen": cash - withheld_fen, "points": 0})
    if clawing:  # an "earn" tender on every refund of a bill that earned, the points taken back (if any) negative
        points, shortfall = (clawback.points, clawback.shortfall_points) if clawback else (0, 0)
        tx = (loyalty_services.points_clawback_post(clawback, key=f"{base}:{earn.id}", actor=actor)
              if clawback else None)
        if tx is not None:
            rows.append(RefundMovement(movement=earn, transaction=tx, amount_fen=0))
        tenders.append({"kind": "earn", "ref": "", "amount_fen": 0, "points": -points, "shortfall_points": shortfall})
        if withheld_fen:
            tenders.append({"kind": "clawback", "ref": "", "amount_fen": withheld_fen, "points": shortfall,
                            "label": labels.CLAWBACK % {"yuan": fen_to_yuan(withheld_fen)}})
    reversed_uses = []
    for line_id, n in units.items():
        uses = [m for m in movements if m.role == MovementRole.ENTITLEMENT and m.order_line_id == line_id
                and not m.reversed][:n]
        for m in uses:
            use = apps.get_model(m.entitlement_use_model).objects.get(pk=m.entitlement_use_id)
            loyalty_services.entitlement_use_reverse(use=use, key=f"{base}:{m.id}", actor=actor)
            SettlementMovement.objects.filter(pk=m.pk).update(reversed=True)
            rows.append(RefundMovement(movement=m, amount_fen=0))
            reversed_uses.append(m.id)
    units_refunded = dict(settlement.units_refunded)
    for line_id, n in units.items():
        units_refunded[str(line_id)] = units_refunded.get(str(line_id), 0) + n
    Settlement.objects.filter(pk=settlement.pk).update(units_refunded=units_refunded)
    refund_settlement = RefundSettlement.objects.create(
        chain_id=settlement.chain_id, key=key, settlement=settlement, refund=refunds[0] if refunds else None,
        amount_fen=total,
        cash_fen=cash - withheld_fen,
        reason=reason[:255], actor=actor, created_at=at, request_hash=digest,
        breakdown={"amount_fen": total, "clawback_fen": withheld_fen, "lines": [{"line_id": k, "amount_fen": v, "units": units.get(k, 0)}
                                                  for k, v in amounts.items()],
                   "tenders": tenders, "entitlements_reversed": len(reversed_uses),
                   "by_method": [{"method": method, "amount_fen": fen} for method, fen in by_method]})
    if refunds:
        refund_settlement.order_refunds.set(refunds)
    for row in rows:
        row.refund = refund_settlement
    RefundMovement.objects.bulk_create(rows)
    _membership_evaluate(settlement.customer, actor)
    return refund_settlement


def _shortfall_settled(settlement: Settlement) -> int:
    """Points of the bill's earn that earlier refunds settled in money (their "earn" tenders' `shortfall_points`):
    `points_clawback_plan` does not ask for them again. The points they took back it reads off the ledger (the
    reversals of the earn), so they are not added here: counted twice, a later refund would claw back too few."""
    return sum(int(t.get("shortfall_points", 0)) for previous in settlement.refunds.all()
               for t in previous.breakdown.get("tenders", []) if t.get("kind") == "earn")


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
