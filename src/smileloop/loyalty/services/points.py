"""Points: earning (per yuan of paid spend, fixed awards), redeeming as a bill deduction and gift exchanges.

Every movement is one ledger transaction (holder account POINTS against POINTS_ISSUED / POINTS_REDEEMED),
idempotent on its key. Rounding: each order line earns floor(paid fen × rule rate × tier multiplier / 100)
points; a bill deduction uses whole fen only (points used = fen × points-per-yuan / 100, exact).
"""

import datetime as dt
import math
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from fractions import Fraction

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from smileloop.clinics.models import Staff
from smileloop.core.errors import Conflict, FieldError, ValidationFailed
from smileloop.core.sql import select_model
from smileloop.customers.models import Customer
from smileloop.customers.services import customers_lock, customers_refuse_erased
from smileloop.ledger.enums import AccountKind, EntryReason
from smileloop.ledger.models import Account, Entry, LedgerTransaction, Lot
from smileloop.ledger.services import (
    InsufficientBalance,
    LotTerms,
    Posting,
    PostRequest,
    account_for,
    accounts_for,
    available_balance,
    ledger_post,
    ledger_post_many,
    ledger_reverse,
    lot_heirs,
    system_account,
)
from smileloop.loyalty._common import add_months, day_end, key_check, now_or, stored_periods_check
from smileloop.loyalty.enums import EarnTrigger, SpecialPrice
from smileloop.loyalty.errors import InsufficientPoints, LoyaltyInputError, OutOfStock, RuleNotFound
from smileloop.loyalty.memos import POINTS_OFF, TIER_MULTIPLIER
from smileloop.loyalty.models import EarnRule, Gift, GiftExchange, RedeemSettings
from smileloop.loyalty.selectors import points_available, points_multiplier_for, spend_rules
from smileloop.visits.models import Order, OrderLine, ServiceItem


@dataclass(frozen=True)
class RedeemTerms:
    points_per_yuan: int  # 100 = 100 points are worth 1 yuan
    max_share_bp: int  # 1000 = at most 10% of a bill
    enabled: bool = True


DEFAULT_TERMS = RedeemTerms(points_per_yuan=100, max_share_bp=1000)


def lot_terms(rule: EarnRule, at: dt.datetime) -> LotTerms:
    stored_periods_check(rule, ["pending_days", "validity_months"], label=rule.name, kind="earn rule ",
                         field="rule_code")
    return LotTerms(earned_at=at, available_at=at + dt.timedelta(days=rule.pending_days),
                    expires_at=day_end(add_months(at, rule.validity_months)) if rule.validity_months else None)


def _specificity(rule: EarnRule, item: ServiceItem) -> int | None:
    """How well a spend rule matches an item (higher wins), or None when it does not apply."""
    if rule.category and rule.category != item.category:
        return None
    if rule.special_price == SpecialPrice.SPECIAL and not item.is_special_price:
        return None
    if rule.special_price == SpecialPrice.REGULAR and item.is_special_price:
        return None
    return (2 if rule.category else 0) + (1 if rule.special_price != SpecialPrice.ANY else 0)


def spend_rule_for(rules: list[EarnRule], item: ServiceItem) -> EarnRule | None:
    scored = [(s, -r.id, r) for r in rules if (s := _specificity(r, item)) is not None]
    return max(scored, key=lambda t: (t[0], t[1]))[2] if scored else None


@transaction.atomic
def points_earn_for_order(*, order: Order, paid_fen_by_line: dict[int, int] | None = None,
                          actor: Staff | None = None, at: dt.datetime | None = None,
                          lines: list[OrderLine] | None = None, rules: list[EarnRule] | None = None,
                          multiplier: Decimal | None = None) -> LedgerTransaction | None:
    """Credit the points an order earns, once (ledger key `order:{id}:earn`; a replay returns the first
    transaction, even if the rules changed since). Earns on what was actually paid in money or stored value
    per line — `paid_fen_by_line` (line id → fen) when the checkout passes it, else each line's amount — never
    on points, gift-card or voucher value. Lines with the same pending period and validity share one lot.
    Returns None when nothing is earned. `lines`, `rules`, `multiplier`: see `points_earn_request`."""
    existing = LedgerTransaction.objects.filter(chain_id=order.chain_id, idempotency_key=_earn_key(order)).first()
    if existing:
        return existing
    request = points_earn_request(order=order, paid_fen_by_line=paid_fen_by_line, actor=actor, at=at, lines=lines,
                                  rules=rules, multiplier=multiplier)
    return ledger_post_many([request])[0] if request is not None else None


def _earn_key(order: Order) -> str:
    return f"order:{order.id}:earn"


def points_earn_request(*, order: Order, paid_fen_by_line: dict[int, int] | None = None,
                        actor: Staff | None = None, at: dt.datetime | None = None,
                        lines: list[OrderLine] | None = None, rules: list[EarnRule] | None = None,
                        multiplier: Decimal | None = None, accounts: dict[str, Account] | None = None,
                        ) -> PostRequest | None:
    """The ledger movement `points_earn_for_order` posts, without posting it: checkout posts it together with
    the bill's other movements (ledger_post_many), and it is replayed by its key like any posting. Takes what
    the caller already holds instead of reading it again: `lines` (the order's lines, with their items),
    `rules` (`selectors.spend_rules`), `multiplier` (`selectors.points_multiplier_of` of the customer's own
    membership), `accounts` (the customer's POINTS and the chain's POINTS_ISSUED, ledger `accounts_for`).
    None when nothing is earned."""
    at = now_or(at)
    lines = list(order.lines.select_related("item").order_by("id")) if lines is None else lines
    if paid_fen_by_line is not None:
        ids = {line.id: line for line in lines}
        errors = [FieldError(f"paid_fen_by_line[{k}]", "is not a line of this order, or not a whole number of fen "
                             "between 0 and the line's amount", str(v))
                  for k, v in paid_fen_by_line.items()
                  if k not in ids or not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= ids[k].amount_fen]
        if errors:
            raise ValidationFailed(errors)
    rules = spend_rules(chain_id=order.chain_id) if rules is None else rules
    by_terms: dict[LotTerms, int] = {}
    for line in lines:
        paid = paid_fen_by_line.get(line.id, 0) if paid_fen_by_line is not None else line.amount_fen
        rule = spend_rule_for(rules, line.item) if rules else None
        if rule is None or paid <= 0:
            continue
        if multiplier is None:
            multiplier = points_multiplier_for(order.customer, at=at)
        points = int((Decimal(paid) * rule.points_per_yuan * multiplier / 100).to_integral_value(ROUND_FLOOR))
        if points > 0:
            terms = lot_terms(rule, at)
            by_terms[terms] = by_terms.get(terms, 0) + points
    if not by_terms:
        return None
    if accounts is None:
        accounts = accounts_for(chain_id=order.chain_id, customer=order.customer_id, kinds=[AccountKind.POINTS],
                                system_kinds=[AccountKind.POINTS_ISSUED])
    total = sum(by_terms.values())
    postings = [Posting(accounts[AccountKind.POINTS], points, terms=terms) for terms, points in by_terms.items()]
    return PostRequest(chain_id=order.chain_id, key=_earn_key(order), reason=EntryReason.EARN, actor=actor, at=at,
                       source=f"order:{order.id}", memo=TIER_MULTIPLIER % {"multiplier": f"{multiplier.normalize():f}"},
                       postings=[*postings, Posting(accounts[AccountKind.POINTS_ISSUED], -total)])


def points_earned_for_order(*, chain_id: int, order_id: int) -> LedgerTransaction | None:
    """The points an order earned (`points_earn_for_order`, ledger key `order:{id}:earn`), or None."""
    return LedgerTransaction.objects.filter(chain_id=chain_id, idempotency_key=f"order:{order_id}:earn").first()


@dataclass(frozen=True)
class Clawback:
    """What a refund of an order takes back of the points it earned (`points_clawback_plan`): `points` from the
    points account, and `shortfall_points` the member already spent, worth `shortfall_fen` at the redeem rate."""

    earn: LedgerTransaction
    earned: int
    clawed_before: int
    points: int
    shortfall_points: int
    shortfall_fen: int

    def as_dict(self) -> dict:
        return {"earn_transaction_id": self.earn.pk, "points": self.points,
                "shortfall_points": self.shortfall_points, "shortfall_fen": self.shortfall_fen}


def points_clawback_plan(*, earn: LedgerTransaction, share: Fraction, settled: int = 0) -> Clawback | None:
    """The clawback of a refund after which `share` (cumulative) of the order is given back, for checkout's refunds
    and package cancellations alike: round_half_up(earned × share) points are due in all, less what reversals of
    `earn` already took back (read off the ledger, whichever path made them) and `settled` (points earlier refunds
    settled in money, which only the caller's records know). They are taken from the points account as far as it
    holds them (a merged holder's: the survivor's; the order's own lots first, even while pending, then the holder's
    other spendable lots); the rest, already spent, is converted at the chain's redeem rate at this refund, not the
    rate when they were earned or spent (README, "Which redeem rate values a shortfall"; rounded up to the fen)
    for the caller to withhold from the money it gives back. None when nothing is due. Post it with
    `points_clawback_post` under `accounts_lock`; planned before the lock (to refuse before writing anything), a
    concurrent spend can leave less than planned, and the reversal then refuses (InsufficientBalance)."""
    credits = [e for e in earn.entries.select_related("account", "account__customer") if e.amount > 0]
    earned = sum(e.amount for e in credits)
    if not credits or share <= 0:
        return None
    clawed_before = -sum(Entry.objects.filter(transaction__reverses=earn, account__kind=AccountKind.POINTS)
                         .values_list("amount", flat=True))
    target = (2 * earned * share.numerator + share.denominator) // (2 * share.denominator)
    due = max(0, target - clawed_before - settled)
    if not due:
        return None
    account = credits[0].account
    lot_ids = [e.lot_id for e in credits if e.lot_id]
    if account.closed_at is not None:  # the holder was merged: ledger_reverse takes from the survivor's account,
        customer = account.customer    # out of the lots the merge moved the earned ones into first
        while customer.merged_into_id:
            customer = customer.merged_into
        account = account_for(chain_id=earn.chain_id, kind=AccountKind.POINTS, customer=customer)
        lot_ids = list(lot_heirs(lot_ids).values())
    now = timezone.now()
    own_lots = list(Lot.objects.filter(id__in=lot_ids, account_id=account.pk, remaining__gt=0))
    spendable_own = sum(lot.remaining for lot in own_lots
                        if lot.available_at <= now and (lot.expires_at is None or lot.expires_at > now))
    available = sum(lot.remaining for lot in own_lots) + available_balance(account, at=now) - spendable_own
    points = min(due, available)
    shortfall = due - points
    terms = points_redeem_terms(chain_id=earn.chain_id)
    return Clawback(earn, earned, clawed_before, points, shortfall, -(-shortfall * 100 // terms.points_per_yuan))


def points_clawback_post(plan: Clawback, *, key: str, actor: Staff | None = None) -> LedgerTransaction | None:
    """Take back `plan.points` of the order's earned points (ledger_reverse of the earn, reason clawback), cumulative
    like every reversal (`upto` = what the ledger took back before + plan.points, of what was earned). Idempotent on
    `key`; None when the plan takes nothing back."""
    if not plan.points:
        return None
    return ledger_reverse(original=plan.earn, key=key, upto=Fraction(plan.clawed_before + plan.points, plan.earned),
                          actor=actor, reason=EntryReason.CLAWBACK)


@transaction.atomic
def points_award(*, customer: Customer, rule_code: str, key: str, actor: Staff | None = None, source: str = "",
                 at: dt.datetime | None = None) -> LedgerTransaction:
    """Award a fixed-amount rule's points (referral, event check-in, review, profile completion). Idempotent on
    `key` (ledger key `award:{key}`), so one referral or review is paid once. The tier multiplier applies to
    spend only."""
    key = key_check(key)
    locked = customers_lock(customer.pk)
    if not LedgerTransaction.objects.filter(chain_id=customer.chain_id, idempotency_key=f"award:{key}").exists():
        customers_refuse_erased(customer.pk, field="customer_id", locked=locked)  # a replay answers as before the erasure
    # Codes are told apart whatever their case (saved lower case since; "Referral" is "referral"): a rule saved
    # before as "Referral" is found by "referral". Of a pair saved before that (both kept), the exact code wins.
    rule = min(EarnRule.objects.filter(chain_id=customer.chain_id, code__iexact=rule_code, is_active=True)
               .exclude(trigger=EarnTrigger.SPEND), key=lambda r: (r.code != rule_code, r.pk), default=None)
    if rule is None:
        raise RuleNotFound(f"No active fixed-points rule with the code {rule_code!r}", field="rule_code")
    if rule.points <= 0:
        raise LoyaltyInputError(f"The rule {rule.name} awards no points", code="invalid", field="rule_code")
    at = now_or(at)
    account = account_for(chain_id=customer.chain_id, kind=AccountKind.POINTS, customer=customer)
    issued = system_account(chain_id=customer.chain_id, kind=AccountKind.POINTS_ISSUED)
    return ledger_post(chain_id=customer.chain_id, key=f"award:{key}", reason=EntryReason.EARN, actor=actor, at=at,
                       source=(source or f"{rule.trigger}:{rule.code}")[:100], memo=rule.name,
                       postings=[Posting(account, rule.points, terms=lot_terms(rule, at)), Posting(issued, -rule.points)])


def points_redeem_terms(*, chain_id: int) -> RedeemTerms:
    """The chain's redeem terms (the DOMAIN.md defaults, 100 points = 1 yuan up to 10% of a bill, until set)."""
    row = select_model(RedeemSettings, "t0.chain_id = %s", [chain_id])
    if row is None:
        return DEFAULT_TERMS
    return RedeemTerms(points_per_yuan=row.points_per_yuan, max_share_bp=row.max_share_bp, enabled=row.is_enabled)


def _available_points(customer: Customer) -> int:
    account = account_for(chain_id=customer.chain_id, kind=AccountKind.POINTS, customer=customer)
    return available_balance(account)


def redeem_step(terms: RedeemTerms) -> tuple[int, int]:
    """(points, fen) of the smallest whole-fen deduction: 100 points per yuan → (1 point, 1 fen); 150 points per
    yuan → (3 points, 2 fen). A deduction is always a whole multiple of it, so points and fen stay exact."""
    g = math.gcd(terms.points_per_yuan, 100)
    return terms.points_per_yuan // g, 100 // g


def points_redeem_quote(*, customer: Customer, bill_fen: int, terms: RedeemTerms | None = None) -> tuple[int, int]:
    """(points usable, their value in fen) on a bill: the smaller of the cap (bill × max share, rounded down to
    the fen) and the customer's available points, rounded down to whole fen (points = fen × rate / 100).
    `terms`: the chain's `points_redeem_terms` when the caller holds them."""
    if not isinstance(bill_fen, int) or bill_fen < 0:
        raise ValidationFailed([FieldError("bill_fen", "must be a whole number of fen ≥ 0", str(bill_fen))])
    terms = terms or points_redeem_terms(chain_id=customer.chain_id)
    if not terms.enabled:
        return 0, 0
    step_points, step_fen = redeem_step(terms)
    cap_fen = bill_fen * terms.max_share_bp // 10000
    fen = min(cap_fen, points_available(customer) * 100 // terms.points_per_yuan)
    fen -= fen % step_fen
    return fen * terms.points_per_yuan // 100, fen


@transaction.atomic
def points_redeem(*, customer: Customer, points: int, key: str, source: str,
                  actor: Staff | None = None) -> LedgerTransaction:
    """Use points as a bill deduction (debit POINTS, credit POINTS_REDEEMED; oldest-expiring lots first).
    `points` must be worth whole fen at the chain's rate (a multiple of redeem_step); the caller (checkout) applies the cap through
    points_redeem_quote. Idempotent on `key` (ledger key `redeem:{key}`); a refund is ledger_reverse."""
    request = points_redeem_request(customer=customer, points=points, key=key, source=source, actor=actor)
    return _post_points_debit(request)


def points_redeem_request(*, customer: Customer, points: int, key: str, source: str, actor: Staff | None = None,
                          terms: RedeemTerms | None = None, accounts: dict[str, Account] | None = None,
                          at: dt.datetime | None = None) -> PostRequest:
    """The ledger movement of `points_redeem`, checked but not posted (checkout posts it with the bill's other
    movements; the ledger refuses it under the account lock with InsufficientPoints when the points are no
    longer there). `terms` (`points_redeem_terms`) and `accounts` (the customer's POINTS and the chain's
    POINTS_REDEEMED, ledger `accounts_for`): what the caller already holds; read here otherwise. `at`: the moment
    of the movement (default: when it is posted)."""
    key = key_check(key)
    terms = terms or points_redeem_terms(chain_id=customer.chain_id)
    if not terms.enabled:
        raise LoyaltyInputError("Redeeming points is switched off for this chain", code="redeem_disabled",
                                field="points")
    step_points, _ = redeem_step(terms)
    if not isinstance(points, int) or isinstance(points, bool) or points <= 0 or points % step_points:
        raise ValidationFailed([FieldError("points", f"must be a positive multiple of {step_points} (whole fen only)",
                                           str(points))])
    if accounts is None:
        accounts = accounts_for(chain_id=customer.chain_id, customer=customer, kinds=[AccountKind.POINTS],
                                system_kinds=[AccountKind.POINTS_REDEEMED])
    request = _points_debit_request(customer, points, accounts, key=f"redeem:{key}", reason=EntryReason.REDEEM,
                                    source=source, actor=actor,
                                    memo=POINTS_OFF % {"off_fen": points * 100 // terms.points_per_yuan})
    request.at = at
    return request


def _points_debit_request(customer: Customer, points: int, accounts: dict[str, Account], *, key: str, reason: str,
                          source: str, actor, memo: str) -> PostRequest:
    return PostRequest(chain_id=customer.chain_id, key=key, reason=reason, actor=actor, source=source[:100],
                       memo=memo, postings=[Posting(accounts[AccountKind.POINTS], -points),
                                            Posting(accounts[AccountKind.POINTS_REDEEMED], points)],
                       refusal=InsufficientPoints, refusal_field="points", refusal_label="points")


def _debit_points(customer: Customer, points: int, *, key: str, reason: str, source: str, actor, memo: str):
    accounts = accounts_for(chain_id=customer.chain_id, customer=customer, kinds=[AccountKind.POINTS],
                            system_kinds=[AccountKind.POINTS_REDEEMED])
    return _post_points_debit(_points_debit_request(customer, points, accounts, key=key, reason=reason, source=source,
                                                    actor=actor, memo=memo))


def _post_points_debit(request: PostRequest) -> LedgerTransaction:
    """Post a points debit. The ledger refuses one the available points do not cover (InsufficientPoints, "Not
    enough points: N available, M needed") under the account lock, after its key look-up: checked here first, a copy
    whose key look-up came just before the first send committed was refused for the points that send had taken."""
    try:
        return ledger_post_many([request])[0]
    except InsufficientPoints:
        raise
    except InsufficientBalance as exc:
        raise InsufficientPoints(exc.message, field="points")


@transaction.atomic
def gift_exchange(*, customer: Customer, gift: Gift, quantity: int = 1, key: str,
                  actor: Staff | None = None) -> GiftExchange:
    """Exchange points for gifts from the catalogue. The stock is taken with one conditional UPDATE (never
    below zero, safe under concurrency), then the points are debited; any refusal (out of stock, not enough
    points) rolls both back. Idempotent on `key`: the customer's row is locked before the key is looked up (as a
    top-up's is), so a copy sent at the same moment (a double click) waits for the first and returns its exchange;
    looked up first, both took stock and the second met the first's ledger transaction as an IntegrityError."""
    key = key_check(key)
    locked = customers_lock(customer.pk)
    existing = GiftExchange.objects.filter(chain_id=customer.chain_id, key=key).first()
    if existing:
        if (existing.customer_id, existing.gift_id, existing.quantity) != (customer.id, gift.id, quantity):
            raise Conflict(f"idempotency key {key!r} was already used for another exchange",
                           code="idempotency_key_reused", field="key")
        return existing
    customers_refuse_erased(customer.pk, field="customer_id", locked=locked)
    if gift.chain_id != customer.chain_id:
        raise LoyaltyInputError("This gift belongs to another chain", code="invalid", field="gift_id")
    if not gift.is_active:
        raise LoyaltyInputError(f"{gift.name} is no longer offered in the gift catalogue", code="gift_inactive",
                                field="gift_id")
    if not isinstance(quantity, int) or isinstance(quantity, bool) or not 1 <= quantity <= 100:
        raise ValidationFailed([FieldError("quantity", "must be a whole number from 1 to 100", str(quantity))])
    points = gift.points_price * quantity
    available = _available_points(customer)
    if available < points:
        raise InsufficientPoints(f"Not enough points for {quantity} × {gift.name}: {available} available, "
                                 f"{points} needed", field="quantity")
    taken = Gift.objects.filter(pk=gift.pk, is_active=True, stock__gte=quantity).update(stock=F("stock") - quantity)
    if not taken:
        left = Gift.objects.filter(pk=gift.pk).values_list("stock", flat=True).first() or 0
        raise OutOfStock(f"{gift.name} is out of stock ({left} left, {quantity} asked)", field="quantity")
    tx = _debit_points(customer, points, key=f"gift:{key}", reason=EntryReason.REDEEM, source=f"gift:{gift.id}",
                       actor=actor, memo=f"{quantity} × {gift.name}")
    return GiftExchange.objects.create(chain_id=customer.chain_id, key=key, customer=customer, gift=gift,
                                       quantity=quantity, points=points, transaction=tx, actor=actor,
                                       created_at=tx.created_at)
