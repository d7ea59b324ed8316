"""Cancelling a package purchase: its entitlements end for every covered person and period, what was used stays
used (the grants and uses are kept; the cancellation is a fact of its own), and the money goes back as refunds of
the purchase's bill, one per payment method, so revenue and the holder's spend go down as for any refund.

The refund follows a rule the staff member picks (`RefundRule`, computed by `selectors.package_cancel_quote`); they
may refund less, never more, and always say why. Locks, in the order a checkout takes them: the holder's row, then
the purchase's. A redemption locks the purchase too (its grants are read joined to it FOR UPDATE), so a redemption
and a cancellation at the same moment are one before the other: the redemption counts as used, or is refused.
"""

import datetime as dt
from fractions import Fraction

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from smileloop.clinics.models import Staff
from smileloop.core.errors import Conflict, FieldError, ValidationFailed
from smileloop.core.money import allocate, fen_to_yuan
from smileloop.customers.enums import InteractionKind
from smileloop.customers.services import customers_lock, interaction_add
from smileloop.customers.timeline import timeline_format
from smileloop.ledger.models import Entry, LedgerTransaction
from smileloop.ledger.selectors import transaction_size
from smileloop.ledger.services import accounts_lock, ledger_reverse
from smileloop.loyalty._common import key_check, now_or
from smileloop.loyalty.enums import PurchaseStatus, RefundRule
from smileloop.loyalty.errors import ClawbackExceedsRefund, PackageNotActive
from smileloop.loyalty.models import PackageCancellation, PackagePurchase
from smileloop.loyalty.selectors import CancelQuote, package_cancel_quote
from smileloop.loyalty.services.packages import package_wallet_key
from smileloop.loyalty.services.points import (
    points_clawback_plan,
    points_clawback_post,
    points_earned_for_order,
)
from smileloop.membership.services import membership_evaluate
from smileloop.visits.enums import VALUE_TENDERS, PaymentMethod
from smileloop.visits.models import Order, Refund
from smileloop.visits.services import refund_record

# Timeline sentences of the holder (stored in English, shown translated: registered in apps.py).
CANCELLED = gettext_noop("package %(package)s cancelled, %(refund_fen)s fen refunded: %(reason)s")
CANCELLED_NO_BILL = gettext_noop("package %(package)s cancelled, sold without a bill here, nothing refunded: "
                                 "%(reason)s")
TIMELINE_TEMPLATES = (CANCELLED, CANCELLED_NO_BILL)
# As pages show the first (the label gives yuan, so the unit shown is ¥).
CANCELLED_SHOWN = gettext_noop("package %(package)s cancelled, ¥%(refund_fen)s refunded: %(reason)s")

CANCEL_ENDPOINT = "POST /api/loyalty/packages/{id}/cancel"


def _refund_parts(quote: CancelQuote, amount: int, method: str, wallet_cap: int) -> list[tuple[str, int]]:
    """Back to the methods that paid the bill in proportion to what each may still give back (a bill recorded
    without its payments: `other`), or by the method staff chose. The part paid from stored value goes back into
    the wallet whatever the method chosen: paid out as money, the bonus share of it would become cash (and its
    principal would leave without the top-up refund's rules). So a chosen method takes what the bill's other
    payments may still give back, the wallet the rest, up to `wallet_cap` (what the bill took from the wallet: 0 when
    its stored-value part was never taken from the wallet here, which the chosen method then gives instead)."""
    if method == PaymentMethod.WALLET:
        return [(method, amount)]
    if method:
        others = sum(part for paid_by, part in quote.payments if paid_by != PaymentMethod.WALLET)
        to_wallet = min(wallet_cap, max(0, amount - others))
        return [(PaymentMethod.WALLET, to_wallet), (method, amount - to_wallet)]
    if not quote.payments:
        return [(PaymentMethod.OTHER, amount)]
    methods, weights = zip(*quote.payments, strict=True)
    return list(zip(methods, allocate(amount, list(weights)), strict=True))


def _not_active(purchase: PackagePurchase, at: dt.datetime) -> PackageNotActive | None:
    if purchase.status == PurchaseStatus.CANCELLED:
        return PackageNotActive(f"package purchase {purchase.pk} is cancelled already", field="purchase_id")
    if purchase.status != PurchaseStatus.ACTIVE or purchase.period_end <= at:
        until = timezone.localdate(purchase.period_end).isoformat()
        return PackageNotActive(f"package purchase {purchase.pk} ended with its period on {until}: nothing is left "
                                "to cancel", field="purchase_id")
    return None


@transaction.atomic
def package_cancel(*, purchase: PackagePurchase, key: str, reason: str, rule: str = RefundRule.LIST_PRICE,
                   amount_fen: int | None = None, method: str | None = None, actor: Staff | None = None,
                   at: dt.datetime | None = None) -> PackageCancellation:
    """End `purchase` now and refund its bill: `amount_fen` (0 ≤ amount ≤ what `rule` gives), by default what the
    rule gives; by `method`, by default back to the methods that paid. A purchase sold without a bill here (its POS
    recorded the order) is cancelled refunding nothing: the rule's amount is kept as what to refund at the POS.
    Idempotent on `key`. Refused, changing nothing: 422 naming the field, 409 `package_not_active`."""
    key = key_check(key)
    customers_lock(purchase.holder_id)
    # Then the accounts a wallet refund posts to, before the purchase's row, in the order a checkout takes them: a
    # family member paying from the holder's wallet locks those accounts, then the purchase (redeeming an
    # entitlement of it); taken the other way round, the two deadlocked.
    spend = _wallet_spend_of(purchase)
    # The points the bill earned too (their clawback posts to the holder's points account and POINTS_ISSUED).
    earn = (points_earned_for_order(chain_id=purchase.chain_id, order_id=purchase.order_id) if purchase.order_id
            else None)
    txs = [tx.pk for tx in (spend, earn) if tx is not None]
    if txs:
        accounts_lock(Entry.objects.filter(transaction_id__in=txs).values_list("account_id", flat=True))
    # The purchase's row, plainly (FOR UPDATE may not reach the nullable side of an outer join to the bill).
    purchase = PackagePurchase.objects.select_for_update().get(pk=purchase.pk)
    existing = PackageCancellation.objects.filter(chain_id=purchase.chain_id, key=key).first()
    if existing is not None:
        # A replay is the same request: a changed rule, amount or method under the key (Back, edit, submit) would
        # be answered "cancelled" while what was asked did not happen.
        if (existing.purchase_id != purchase.pk or rule != existing.rule or (method or "") != existing.method
                or (amount_fen is not None and amount_fen != existing.refund_fen)):
            raise Conflict(f"idempotency key {key!r} was already used for another cancellation",
                           code="idempotency_key_reused", field="key")
        return existing
    at = now_or(at)
    errors: list[FieldError] = []
    reason = " ".join(str(reason or "").split())
    if not reason:
        errors.append(FieldError("reason", "say why the package is cancelled"))
    elif len(reason) > 255:
        errors.append(FieldError("reason", "must be at most 255 characters", reason[:60]))
    if rule not in RefundRule.values:
        errors.append(FieldError("rule", f"must be one of {', '.join(RefundRule.values)}", str(rule)))
    method = method or ""
    refund_methods = [m for m in PaymentMethod.values if m not in VALUE_TENDERS]  # money, or back to the wallet
    if method and method not in refund_methods:
        errors.append(FieldError("method", f"must be one of {', '.join(refund_methods)}", str(method)))
    if errors:
        raise ValidationFailed(errors)
    if refused := _not_active(purchase, at):
        raise refused
    quote = package_cancel_quote(purchase)
    computed = quote.by_rule[rule]
    if quote.order_id is None:
        if amount_fen:
            errors.append(FieldError("amount_fen", "this package was sold without a bill here: refund it where it "
                                     "was paid (the POS that recorded its order)", str(amount_fen)))
        amount_fen = 0
    elif amount_fen is None:
        amount_fen = computed
    elif not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or not 0 <= amount_fen <= computed:
        errors.append(FieldError("amount_fen", f"must be between 0 and {computed} fen (the refund by the rule)",
                                 str(amount_fen)))
    wallet_cap = min(transaction_size(spend), dict(quote.payments).get(PaymentMethod.WALLET, 0)) if spend else 0
    if method == PaymentMethod.WALLET and amount_fen:
        paid = transaction_size(spend) if spend else 0
        if amount_fen > paid:
            errors.append(FieldError("method", f"stored value can take back at most what this bill took from the "
                                     f"wallet, {paid} fen: choose another way to give the money back", method))
    parts = _refund_parts(quote, amount_fen, method, wallet_cap) if amount_fen and not errors else []
    to_wallet = sum(part for paid_by, part in parts if paid_by == PaymentMethod.WALLET)
    if to_wallet and spend is None:
        # A sale recorded as paid from stored value before package sales took it from the wallet: the wallet never
        # paid it, so giving it back there would create stored value.
        errors.append(FieldError("method", f"this bill records {to_wallet} fen paid from stored value that was never "
                                 "taken from the wallet here: choose the method to give it back by", method))
    if errors:
        raise ValidationFailed(errors)
    order = Order.objects.get(pk=quote.order_id) if quote.order_id else None
    # The points the bill earned go back in proportion to what is refunded, as a checkout refund takes them back:
    # those already spent are withheld, at the redeem rate, from the money this refund gives back (not from the
    # stored value, which goes back to the wallet whole); refused when that money is too little.
    clawback = (points_clawback_plan(earn=earn, share=Fraction(order.refunded_fen + amount_fen, order.amount_fen))
                if earn is not None and amount_fen and order.amount_fen else None)
    if clawback is not None and clawback.shortfall_fen:
        money = sum(part for paid_by, part in parts if paid_by != PaymentMethod.WALLET)
        if clawback.shortfall_fen > money:
            raise ClawbackExceedsRefund(
                f"{clawback.shortfall_points} of the points this package's bill earned were already used; they are "
                f"worth {fen_to_yuan(clawback.shortfall_fen)} yuan, more than the {fen_to_yuan(money)} yuan this "
                "refund gives back other than to stored value", field="amount_fen")
    wallet_holder_id = _wallet_holder_of(spend) if spend is not None else None
    cancellation = PackageCancellation.objects.create(
        chain_id=purchase.chain_id, key=key, purchase=purchase, rule=rule, computed_fen=computed,
        refund_fen=amount_fen, used_value_fen=quote.used_value_fen, units_granted=quote.units_granted,
        units_used=quote.units_used, method=method, reason=reason, actor=actor, created_at=at,
        detail={"grants": [{"grant_id": g.id, "customer_id": g.customer_id, "label": g.label, "quantity": g.quantity,
                            "used": used} for g, used in quote.grant_rows],
                "uses": [{"use_id": u.use_id, "customer_id": u.customer_id, "item_code": u.item_code,
                          "value_fen": u.value_fen} for u in quote.used],
                "by_rule": dict(quote.by_rule),
                "clawback": clawback.as_dict() if clawback is not None else None,
                "wallet": ({"holder_id": wallet_holder_id, "spend_transaction_id": spend.pk,
                            "returned_fen": to_wallet} if spend is not None else None)})
    PackagePurchase.objects.filter(pk=purchase.pk).update(status=PurchaseStatus.CANCELLED)
    purchase.status = PurchaseStatus.CANCELLED
    if clawback is not None:
        points_clawback_post(clawback, key=f"package_cancel:{cancellation.pk}:earn", actor=actor)
    if amount_fen:
        refunds = []
        for part_method, part in parts:
            if part and part_method == PaymentMethod.WALLET:
                # Back into the wallet that paid it (the holder's own, or the family wallet of the card holder they
                # are bound to: package_sell), principal and bonus to the lots they came from. One cancellation per
                # purchase: the share is of this part.
                ledger_reverse(original=spend, key=f"package_cancel:{cancellation.pk}", actor=actor, reason="refund",
                               upto=Fraction(part, transaction_size(spend)))
            if part:
                refund, _ = refund_record(order=order, amount_fen=part, reason=reason, method=part_method,
                                          external_id=f"package-cancel:{cancellation.pk}:{part_method}",
                                          refunded_at=at, actor=actor, owner=True)
                refunds.append(refund)
        cancellation.refunds.set(refunds)
        # The refund lowered the holder's spend: re-evaluated as after a checkout refund (a tier reached with the
        # package's bill is left again where the tier allows downgrades).
        membership_evaluate(customer=purchase.holder, actor=actor, as_of=at)
    package = purchase.package
    text = (timeline_format(CANCELLED, package=package.name, refund_fen=amount_fen, reason=reason) if order
            else timeline_format(CANCELLED_NO_BILL, package=package.name, reason=reason))
    interaction_add(customer=purchase.holder, kind=InteractionKind.SYSTEM, text=text, author=actor,
                    clinic=order.clinic if order else purchase.holder.home_clinic, occurred_at=at)
    return cancellation


def _wallet_holder_of(spend: LedgerTransaction) -> int | None:
    """Whose wallet a spend took from (the sale's holder, or the family card holder who paid for them)."""
    return (Entry.objects.filter(transaction_id=spend.pk, account__customer__isnull=False)
            .values_list("account__customer_id", flat=True).first())


def _wallet_spend_of(purchase: PackagePurchase) -> LedgerTransaction | None:
    """The wallet spend that paid part of the purchase's bill, if it was paid from stored value."""
    return LedgerTransaction.objects.filter(chain_id=purchase.chain_id,
                                            idempotency_key=f"wallet_spend:{package_wallet_key(purchase.key)}").first()


def package_order_refund_where(order: Order) -> str | None:
    """Where to refund the bill of a package (visits.refund_owner_register). While the package is in force: by
    cancelling it, which ends its entitlements too; a refund recorded on the bill alone would leave them redeemable.
    A bill paid partly from stored value, always: the orders API records a refund by a method and moves no stored
    value, so its stored-value part would go out as cash (or, named `wallet`, nowhere); only the cancellation gives
    it back to the wallet. Otherwise, once the package is cancelled or over, its bill is an ordinary one."""
    purchase = PackagePurchase.objects.filter(order_id=order.pk).first()
    if purchase is None:
        return None
    if purchase.status == PurchaseStatus.ACTIVE and purchase.period_end > timezone.now():
        return (f"order {order.pk} is the bill of package purchase {purchase.pk}, which is still in force: cancel the "
                f"package instead ({CANCEL_ENDPOINT.format(id=purchase.pk)}, or “Cancel package” on the patient's "
                "loyalty card), which refunds this bill and ends its entitlements")
    if _wallet_spend_of(purchase) is not None:
        return (f"order {order.pk} is the bill of package purchase {purchase.pk}, paid partly from stored value, which "
                "can only go back into the wallet: such a bill is refunded by cancelling the package while it is in "
                f"force ({CANCEL_ENDPOINT.format(id=purchase.pk)}), not on the bill")
    return None


def package_bill_refund_decision(order: Order) -> str | None:
    """Why refunding an order through the orders API is a director's decision (visits.refund_decision_register): it
    is the bill of a service package. While the package is in force, or when stored value paid part of it, that refund
    is refused anyway (`package_order_refund_where`); once the package is over or cancelled, money going back for it
    needs `payment.refund`, as its cancellation does."""
    purchase_id = PackagePurchase.objects.filter(order_id=order.pk).values_list("id", flat=True).first()
    if purchase_id is None:
        return None
    return (f"order {order.pk} is the bill of package purchase {purchase_id}: money going back for a package is a "
            "clinic director's decision")


def package_bill_refund_follow(order: Order, refund: Refund, actor: Staff | None) -> None:
    """A refund of a package's bill recorded through the orders API (visits.refund_follower_register; allowed once
    the package is over or cancelled, with `payment.refund`) takes back the points the bill earned in proportion,
    as a cancellation does. That path gives money back by a method and cannot withhold points already spent, so
    when the member spent them it is refused (409), nothing written: refund that much less."""
    if not PackagePurchase.objects.filter(order_id=order.pk).exists():
        return
    earn = points_earned_for_order(chain_id=order.chain_id, order_id=order.pk)
    if earn is None or not order.amount_fen:
        return
    accounts_lock(Entry.objects.filter(transaction_id=earn.pk).values_list("account_id", flat=True))
    # Points an earlier cancellation settled in money (withheld from its refund) are not due again.
    settled = sum((c.detail.get("clawback") or {}).get("shortfall_points", 0)
                  for c in PackageCancellation.objects.filter(purchase__order_id=order.pk))
    clawback = points_clawback_plan(earn=earn, share=Fraction(order.refunded_fen, order.amount_fen), settled=settled)
    if clawback is None:
        return
    if clawback.shortfall_fen:
        raise Conflict(f"{clawback.shortfall_points} of the points this package's bill earned were already used "
                       f"(worth {fen_to_yuan(clawback.shortfall_fen)} yuan); a refund through the orders API cannot "
                       "withhold them: refund that much less", code="clawback_exceeds_refund", field="amount_fen")
    points_clawback_post(clawback, key=f"order_refund:{refund.pk}:earn", actor=actor)
