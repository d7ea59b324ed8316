"""Reads over loyalty: points and wallet balances, lots, entitlements left, configuration.

Functions that take a customer read off a customer the caller already obtained through a scoped selector
(customers.selectors.customer_get); lookups by id take the Scope first and raise NotFound outside it.
"""

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from smileloop.core.errors import NotFound
from smileloop.core.scoping import Scope
from smileloop.core.sql import db_datetime, in_clause, select_models, select_rows
from smileloop.customers.models import Customer
from smileloop.customers.selectors import customer_queryset
from smileloop.ledger.enums import AccountKind
from smileloop.ledger.models import Account, Entry, Lot
from smileloop.loyalty._common import age_on
from smileloop.loyalty.enums import EarnTrigger, PurchaseStatus, UseKind
from smileloop.loyalty.models import (
    EarnRule,
    EntitlementGrant,
    EntitlementUse,
    Gift,
    Package,
    PackagePurchase,
    Topup,
    TopupBonusRule,
)
from smileloop.membership.enums import MembershipStatus
from smileloop.membership.selectors import own_membership
from smileloop.visits.models import ServiceItem

EXPIRING_SOON = dt.timedelta(days=30)


def points_multiplier_for(customer: Customer, *, at: dt.datetime | None = None) -> Decimal:
    """The points multiplier of the customer's own membership tier in force; 1 without one. (Family members
    and friends share a holder's discount, not their multiplier.)"""
    return points_multiplier_of(own_membership(customer), at=at)


def points_multiplier_of(own, *, at: dt.datetime | None = None) -> Decimal:
    """`points_multiplier_for` from the customer's own active membership (with its tier) as the caller holds
    it (`membership.selectors.own_membership`), or None."""
    at = at or timezone.now()
    if own is None or own.status != MembershipStatus.ACTIVE or (own.expires_at is not None and own.expires_at <= at):
        return Decimal(1)
    return own.tier.points_multiplier


def spend_rules(*, chain_id: int) -> list[EarnRule]:
    """The chain's active earn rules on paid spend (none: an order earns nothing)."""
    return select_models(EarnRule, "t0.chain_id = %s AND t0.trigger = %s AND t0.is_active", [chain_id, EarnTrigger.SPEND],
                         tail="ORDER BY t0.trigger, t0.code")


def points_available(customer: Customer, *, at: dt.datetime | None = None) -> int:
    """Points the customer can spend now (available, unexpired lots of their open points account), in one
    query and without creating the account."""
    at = db_datetime(at or timezone.now())
    (total,), = select_rows(
        f"SELECT SUM(l.remaining) FROM {Lot._meta.db_table} l JOIN {Account._meta.db_table} a ON a.id = l.account_id "
        "WHERE a.chain_id = %s AND a.kind = %s AND a.customer_id = %s AND a.code IS NULL AND a.closed_at IS NULL "
        "AND l.remaining > 0 AND l.available_at <= %s AND (l.expires_at IS NULL OR l.expires_at > %s)",
        [customer.chain_id, AccountKind.POINTS, customer.pk, at, at])
    return int(total or 0)


_UNSET = object()
HOLDER_KINDS = (AccountKind.POINTS, AccountKind.WALLET_PRINCIPAL, AccountKind.WALLET_BONUS)


def _account(customer: Customer, kind: str) -> Account | None:
    return Account.objects.filter(chain_id=customer.chain_id, kind=kind, customer_id=customer.pk, code__isnull=True,
                                  closed_at__isnull=True).first()


def holder_accounts(customer: Customer) -> dict[str, Account]:
    """The customer's open points and wallet accounts by kind (absent until first used), in one query."""
    kinds, params = in_clause("t0.kind", [str(kind) for kind in HOLDER_KINDS])
    return {a.kind: a for a in select_models(
        Account, f"t0.chain_id = %s AND t0.customer_id = %s AND t0.code IS NULL AND t0.closed_at IS NULL AND {kinds}",
        [customer.chain_id, customer.pk, *params])}


@dataclass
class PointsSummary:
    balance: int
    available: int
    pending: int
    lots: list[Lot] = field(default_factory=list)
    expiring_soon: int = 0
    account: Account | None = None


def points_summary(customer: Customer, *, at: dt.datetime | None = None, account=_UNSET) -> PointsSummary:
    """Balance (everything held), available (spendable now), pending (not yet available), open lots with their
    dates (oldest expiry first), and what expires within 30 days. Expired-but-unprocessed lots count as
    neither available nor pending. `account`: the points account (or None) when the caller holds it."""
    at = at or timezone.now()
    account = _account(customer, AccountKind.POINTS) if account is _UNSET else account
    if account is None:
        return PointsSummary(0, 0, 0)
    lots = select_models(Lot, "t0.account_id = %s AND t0.remaining > 0", [account.pk],
                         tail="ORDER BY t0.expires_at, t0.id")
    live = [lot for lot in lots if lot.expires_at is None or lot.expires_at > at]
    for lot in lots:
        lot.is_pending = lot.available_at > at
        lot.is_expiring_soon = lot.expires_at is not None and at < lot.expires_at <= at + EXPIRING_SOON
        lot.is_expired = lot.expires_at is not None and lot.expires_at <= at
    return PointsSummary(
        balance=account.balance,
        available=sum(lot.remaining for lot in live if lot.available_at <= at),
        pending=sum(lot.remaining for lot in live if lot.available_at > at),
        lots=lots, expiring_soon=sum(lot.remaining for lot in lots if lot.is_expiring_soon), account=account)


@dataclass(frozen=True)
class WalletBalance:
    principal: int
    bonus: int

    @property
    def total(self) -> int:
        return self.principal + self.bonus


def wallet_balance(customer: Customer, *, accounts: dict[str, Account] | None = None) -> WalletBalance:
    """Stored value held by the customer, principal and bonus (fen). `accounts`: `holder_accounts(customer)`
    when the caller holds them."""
    if accounts is not None:
        rows = {kind: a.balance for kind, a in accounts.items()}
    else:
        rows = dict(select_rows(
            f"SELECT kind, balance FROM {Account._meta.db_table} WHERE chain_id = %s AND customer_id = %s "
            "AND code IS NULL AND closed_at IS NULL AND kind IN (%s, %s)",
            [customer.chain_id, customer.pk, AccountKind.WALLET_PRINCIPAL, AccountKind.WALLET_BONUS]))
    return WalletBalance(principal=rows.get(AccountKind.WALLET_PRINCIPAL, 0), bonus=rows.get(AccountKind.WALLET_BONUS, 0))


def ledger_history(customer: Customer, *, limit: int = 20) -> list[Entry]:
    """The customer's latest entries over points and wallet accounts, newest first."""
    return select_models(Entry, "t2.customer_id = %s AND t2.code IS NULL", [customer.pk],
                         related=["transaction", "account", "lot"],
                         tail=f"ORDER BY t1.created_at DESC, t0.id DESC LIMIT {int(limit)}")


def topups_for(customer: Customer, *, limit: int = 10) -> list[Topup]:
    return list(Topup.objects.filter(customer_id=customer.pk).order_by("-created_at", "-id")[:limit])


def topup_get(scope: Scope, topup_id) -> Topup:
    try:
        topup_id = int(topup_id)
    except (TypeError, ValueError):
        raise NotFound("Top-up not found")
    topup = Topup.objects.filter(pk=topup_id, customer__in=customer_queryset(scope)).select_related("customer").first()
    if topup is None:
        raise NotFound("Top-up not found")
    return topup


def topup_total_fen(*, customer: Customer) -> int:
    """Cumulative top-up principal net of refunds (membership's stored-value plans read it)."""
    rows = Topup.objects.filter(customer_id=customer.pk).values_list("amount_fen", "refunded_fen")
    return sum(amount - refunded for amount, refunded in rows)


# --- entitlements ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntitlementBalance:
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
    period_start: dt.datetime
    period_end: dt.datetime


def _grants(customer: Customer, at: dt.datetime) -> QuerySet[EntitlementGrant]:
    return (EntitlementGrant.objects.filter(customer_id=customer.pk, expired_at__isnull=True,
                                            purchase__status=PurchaseStatus.ACTIVE, purchase__period_start__lte=at,
                                            purchase__period_end__gt=at)
            .select_related("purchase__package")
            .annotate(n_used=Count("uses", filter=Q(uses__kind=UseKind.USE)),
                      n_reversed=Count("uses", filter=Q(uses__kind=UseKind.REVERSAL)))
            .order_by("purchase__period_end", "id"))


def _balance(grant: EntitlementGrant) -> EntitlementBalance:
    used = grant.n_used - grant.n_reversed
    p = grant.purchase
    # Two records of one person, both covered, each used the grant: merged, their uses fold onto one grant and can
    # exceed its quantity (used shows that); nothing is left, not a negative number of cleanings.
    return EntitlementBalance(grant.id, p.id, p.package.name, grant.label, grant.category, grant.item_code,
                              grant.quantity, used, max(grant.quantity - used, 0), grant.max_age, p.period_start,
                              p.period_end)


def grant_matches(grant: EntitlementGrant, item: ServiceItem) -> bool:
    return (grant.item_code and grant.item_code == item.code) or (not grant.item_code and grant.category == item.category)


def age_allows(grant: EntitlementGrant, customer: Customer, at: dt.datetime) -> bool:
    if grant.max_age is None:
        return True
    age = age_on(customer.birthday, timezone.localdate(at))
    return age is not None and age < grant.max_age


def entitlements_available(*, customer: Customer, item: ServiceItem, at: dt.datetime | None = None,
                           ) -> list[EntitlementBalance]:
    """What is left for this person in the current period for this item (by item code or category, within the
    age limit), earliest period end first; only balances with something left."""
    at = at or timezone.now()
    out = []
    for grant in _grants(customer, at):
        if grant_matches(grant, item) and age_allows(grant, customer, at):
            balance = _balance(grant)
            if balance.remaining > 0:
                out.append(balance)
    return out


@dataclass(frozen=True)
class EntitlementLeft:
    """What checkout needs of a grant with something left: which items it covers, how many units, for whom."""

    grant_id: int
    item_code: str
    category: str
    remaining: int
    max_age: int | None


def entitlements_left(customer_id: int, *, at: dt.datetime) -> list[EntitlementLeft]:
    """The grants of the customer's current periods with units left, in the order they are consumed (earliest
    period end first): `entitlements_for_customer` reduced to what pricing a bill needs, in one plain statement
    (checkout prices every bill with it; the ORM version costs more to build than to run)."""
    qn = connection.ops.quote_name
    grant, purchase, use = (qn(m._meta.db_table) for m in (EntitlementGrant, PackagePurchase, EntitlementUse))
    at_db = db_datetime(at)
    rows = select_rows(
        f"SELECT g.id, g.item_code, g.category, g.quantity - COALESCE(SUM(CASE WHEN u.kind = %s THEN 1 "
        f"WHEN u.kind = %s THEN -1 ELSE 0 END), 0), g.max_age "
        f"FROM {grant} g JOIN {purchase} p ON p.id = g.purchase_id LEFT JOIN {use} u ON u.grant_id = g.id "
        f"WHERE g.customer_id = %s AND g.expired_at IS NULL AND p.status = %s AND p.period_start <= %s "
        f"AND p.period_end > %s GROUP BY g.id, g.item_code, g.category, g.quantity, g.max_age, p.period_end "
        f"ORDER BY p.period_end, g.id",
        [UseKind.USE, UseKind.REVERSAL, customer_id, PurchaseStatus.ACTIVE, at_db, at_db])
    return [EntitlementLeft(*row) for row in rows if row[3] > 0]


def entitlements_for_customer(customer: Customer, *, at: dt.datetime | None = None) -> list[EntitlementBalance]:
    """Every entitlement of the customer's current periods, with what is used and left (the 360 page)."""
    return [_balance(g) for g in _grants(customer, at or timezone.now())]


def purchases_for(customer: Customer, *, limit: int = 10) -> list[PackagePurchase]:
    """Packages the customer holds or is covered by, newest first."""
    return list(PackagePurchase.objects.filter(Q(holder_id=customer.pk) | Q(covers__customer_id=customer.pk))
                .distinct().select_related("package", "holder").prefetch_related("covers__customer")
                .order_by("-period_start", "-id")[:limit])


def purchases_held(customer: Customer, *, limit: int = 5) -> list[PackagePurchase]:
    """The packages the customer holds (bought), newest first, with their package and bill: one query (the 360
    page)."""
    return list(PackagePurchase.objects.filter(holder_id=customer.pk).select_related("package", "order")
                .order_by("-period_start", "-id")[:limit])


def purchase_get(scope: Scope, purchase_id) -> PackagePurchase:
    """A package purchase whose holder the staff member may see (else NotFound, as for a missing one)."""
    return _get(PackagePurchase.objects.filter(holder__in=customer_queryset(scope))
                .select_related("package", "holder", "order"), purchase_id, "Package purchase not found")


@dataclass(frozen=True)
class UsedUnit:
    """One entitlement unit used (and not given back) under a purchase, with the value a cancellation counts."""

    use_id: int
    grant_id: int
    customer_id: int
    customer_name: str
    label: str
    item_code: str
    item_name: str
    used_at: dt.datetime
    value_fen: int


@dataclass(frozen=True)
class CancelQuote:
    """What cancelling a purchase now would refund (loyalty README, "Cancelling a package").

    `used`: every unit used and not given back, valued at the list price its visit's bill showed (else the
    catalogue's). `by_rule`: the refund each rule gives — list price: the price less that value; pro rata: the price
    times the unused share of the units granted (half a fen up) — never below zero, never more than is left to
    refund of the bill (`refundable_fen`). Without a bill (`order_id` None) nothing can be refunded here."""

    purchase_id: int
    price_fen: int
    order_id: int | None
    grants: list[EntitlementGrant]
    refundable_fen: int
    units_granted: int
    units_used: int
    used: list[UsedUnit]
    payments: list[tuple[str, int]]  # the bill's payments by method, what each may still give back
    by_rule: dict[str, int]

    @property
    def used_value_fen(self) -> int:
        return sum(u.value_fen for u in self.used)

    @property
    def grant_rows(self) -> list[tuple[EntitlementGrant, int]]:
        """Each covered person's entitlement with the units used of it."""
        used: dict[int, int] = {}
        for u in self.used:
            used[u.grant_id] = used.get(u.grant_id, 0) + 1
        return [(g, used.get(g.id, 0)) for g in self.grants]


def package_cancel_quote(purchase: PackagePurchase) -> CancelQuote:
    """Read off a purchase the caller obtained through `purchase_get` (or holds under its lock)."""
    from smileloop.loyalty.enums import RefundRule

    grants = list(EntitlementGrant.objects.filter(purchase_id=purchase.pk).select_related("customer").order_by("id"))
    granted = sum(g.quantity for g in grants)
    uses = list(EntitlementUse.objects.filter(grant__purchase_id=purchase.pk, kind=UseKind.USE, reversal__isnull=True)
                .select_related("grant", "customer", "item", "order_line").order_by("used_at", "id"))
    used = [UsedUnit(u.id, u.grant_id, u.customer_id, u.customer.name, u.grant.label, u.item.code, u.item.name, u.used_at,
                     u.order_line.unit_price_fen if u.order_line_id else u.item.list_price_fen) for u in uses]
    order = purchase.order if purchase.order_id else None
    refundable = order.amount_fen - order.refunded_fen if order else 0
    price = purchase.price_fen
    unused = max(0, granted - len(used))
    by_rule = {
        RefundRule.LIST_PRICE: max(0, price - sum(u.value_fen for u in used)),
        RefundRule.PRO_RATA: (2 * price * unused + granted) // (2 * granted) if granted else 0,
    }
    payments = []
    if order:
        paid: dict[str, int] = {}
        for method, amount in order.payments.values_list("method", "amount_fen").order_by("id"):
            paid[method] = paid.get(method, 0) + amount
        for method, amount in order.refunds.values_list("method", "amount_fen"):  # given back before, by method
            if method in paid:
                paid[method] = max(0, paid[method] - amount)
        payments = [(method, amount) for method, amount in paid.items() if amount]
    return CancelQuote(purchase.pk, price, purchase.order_id, grants, refundable, granted, len(used), used, payments,
                       {rule: min(amount, refundable) if order else amount for rule, amount in by_rule.items()})


# --- configuration ---------------------------------------------------------------------------------------


def earn_rule_list(scope: Scope) -> QuerySet[EarnRule]:
    return EarnRule.objects.filter(chain_id=scope.chain_id).order_by("trigger", "category", "code")


def earn_rule_get(scope: Scope, rule_id) -> EarnRule:
    return _get(EarnRule.objects.filter(chain_id=scope.chain_id), rule_id, "Earn rule not found")


def bonus_rule_list(scope: Scope) -> QuerySet[TopupBonusRule]:
    return TopupBonusRule.objects.filter(chain_id=scope.chain_id).order_by("min_topup_fen")


def membership_bonus_rules(customer: Customer, *, at: dt.datetime | None = None
                           ) -> tuple[str, str, list[dict]] | None:
    """("tier" or "plan", its name, its top-up bonus rules) of the customer's own membership in force at `at`: the
    tier's when it has rules, else the plan's. None when neither has rules (or no membership is in force): then the
    chain's TopupBonusRule rows apply. The wallet's top-up and the card's schedule read this one rule."""
    membership = own_membership(customer)
    if membership is None or (membership.expires_at is not None and membership.expires_at <= (at or timezone.now())):
        return None
    if membership.tier.topup_bonus_rules:
        return "tier", membership.tier.name, membership.tier.topup_bonus_rules
    if membership.plan.topup_bonus_rules:
        return "plan", membership.plan.name, membership.plan.topup_bonus_rules
    return None


@dataclass(frozen=True)
class BonusSchedule:
    """The top-up bonus a top-up of this customer would earn now, for the staff who take it: the member's own tier's
    or plan's rules replace the chain's (`wallet_topup`), which the card must say, or the front desk promises the
    chain's offer. `steps`: (minimum top-up, bonus, refused) in fen, ascending; the highest step reached pays, steps
    do not add up; a chain rule paying more than its minimum (saved before that check) is `refused` at top-up."""

    source: str  # "tier", "plan" or "chain"
    name: str  # the tier's or plan's name; "" for the chain's rules
    steps: tuple[tuple[int, int, bool], ...]


def topup_bonus_schedule(customer: Customer, *, at: dt.datetime | None = None) -> BonusSchedule:
    own = membership_bonus_rules(customer, at=at)
    if own is not None:
        source, name, rules = own
        steps = sorted((r["min_topup_fen"], r["bonus_fen"], False) for r in rules)
        return BonusSchedule(source, name, tuple(steps))
    rules = TopupBonusRule.objects.filter(chain_id=customer.chain_id, is_active=True).order_by("min_topup_fen")
    return BonusSchedule("chain", "", tuple((r.min_topup_fen, r.bonus_fen, r.bonus_exceeds_minimum) for r in rules))


def bonus_rule_get(scope: Scope, rule_id) -> TopupBonusRule:
    return _get(TopupBonusRule.objects.filter(chain_id=scope.chain_id), rule_id, "Bonus rule not found")


def gift_list(scope: Scope, *, active_only: bool = False) -> QuerySet[Gift]:
    qs = Gift.objects.filter(chain_id=scope.chain_id)
    return (qs.filter(is_active=True) if active_only else qs).order_by("points_price", "name")


def gift_get(scope: Scope, gift_id) -> Gift:
    return _get(Gift.objects.filter(chain_id=scope.chain_id), gift_id, "Gift not found")


def package_list(scope: Scope, *, active_only: bool = False) -> QuerySet[Package]:
    qs = Package.objects.filter(chain_id=scope.chain_id).prefetch_related("entitlements")
    return (qs.filter(is_active=True) if active_only else qs).order_by("name")


def package_get(scope: Scope, package_id) -> Package:
    return _get(Package.objects.filter(chain_id=scope.chain_id), package_id, "Package not found")


def _get(qs, pk, message: str):
    try:
        obj = qs.filter(pk=int(pk)).first()
    except (TypeError, ValueError):
        obj = None
    if obj is None:
        raise NotFound(message)
    return obj
