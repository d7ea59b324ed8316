"""Lifecycle service packages: selling (grants per covered person for one period), redeeming an entitlement
at a visit (against the order line), reversing a use on refund, and expiring what is unused at period end.

Entitlement counts are not money, so they are counted here, not in the ledger: a grant is a snapshot of the
package's entitlement for one person; uses are append-only and a refund adds a reversal row; remaining is
quantity − uses + reversals. Grants are locked (SELECT … FOR UPDATE, joined to their purchase, whose row is locked
too) before counting, so two front desks cannot both take the last cleaning, and a cancellation (which locks the
purchase: services/cancel.py) and a redemption are one after the other.
"""

import datetime as dt
from contextlib import contextmanager

from django.db import transaction
from django.db.models import Count, F, IntegerField, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.translation import gettext_noop

from smileloop.clinics.models import Clinic, Staff
from smileloop.core.errors import Conflict, DomainError, FieldError, NotFound, ValidationFailed
from smileloop.core.scoping import Scope
from smileloop.customers.models import Customer, HouseholdMember
from smileloop.customers.services import customers_erasures_wait, customers_lock_live, customers_refuse_erased
from smileloop.ledger.services import ledger_post_many
from smileloop.loyalty._common import add_months, age_on, day_end, key_check, now_or, stored_periods_check
from smileloop.loyalty.enums import PurchaseStatus, UseKind
from smileloop.loyalty.errors import (
    AgeLimit,
    AlreadyReversed,
    LoyaltyInputError,
    NoEntitlementLeft,
    NotCovered,
)
from smileloop.loyalty.models import (
    EntitlementGrant,
    EntitlementUse,
    Package,
    PackageCover,
    PackagePurchase,
)
from smileloop.loyalty.selectors import age_allows, grant_matches
from smileloop.loyalty.services.points import points_earn_request
from smileloop.loyalty.services.wallet import wallet_spend_request
from smileloop.membership.services import membership_evaluate
from smileloop.visits.enums import VALUE_TENDERS, PaymentMethod
from smileloop.visits.models import OrderLine, ServiceItem
from smileloop.visits.services import order_record

# The sale's refusals, in English for the API; the card's sell form shows them in Chinese (`message_display`: the fixed
# ones through the catalogue, those carrying a name or a number through `loyalty.messages.PATTERNS`).
NOT_OF_CHAIN = gettext_noop("is not a package of this chain")
NOT_ON_SALE = gettext_noop("is not on sale (inactive)")
NOBODY_COVERED = gettext_noop("name at least one person the package covers")
COVERED_ERASED = gettext_noop("is an erased record (personal information erased)")
NO_ENTITLEMENTS = gettext_noop("has no entitlements configured")
NO_BILLING_ITEM = gettext_noop("has no catalogue item to bill a sale as: set “billed as” in the package's settings")
NO_CLINIC = gettext_noop("name the clinic of this chain taking the payment")
VALUE_TENDER = gettext_noop("a package is paid in money or stored value (points, vouchers and gift cards pay at "
                            "checkout)")
WALLET_UNUSED = gettext_noop("names a family wallet to pay from, but no payment of the sale is by stored value "
                             "(method wallet)")
COVERED_MERGED = "{name} was merged into another record: cover the record kept"
NOT_IN_HOUSEHOLD = "{name} is not the holder or a member of the holder's household"
TOO_MANY_COVERED = "this package covers at most {count} people"
UNPAID = "add up to 0 fen but the package costs {price_fen} fen"
SALE_KEY_REUSED = "idempotency key {key!r} was already used for another sale"


def _household_ids(holder: Customer) -> set[int]:
    membership = HouseholdMember.objects.filter(customer_id=holder.pk).first()
    if membership is None:
        return {holder.pk}
    return set(HouseholdMember.objects.filter(household_id=membership.household_id)
               .values_list("customer_id", flat=True)) | {holder.pk}


@transaction.atomic
def package_sell(*, package: Package, holder: Customer, covered: list[Customer], key: str,
                 actor: Staff | None = None, at: dt.datetime | None = None, clinic: Clinic | None = None,
                 payments: list[dict] | None = None, wallet_holder: Customer | None = None,
                 per_use_consent: bool = False, reader: Scope | None = None) -> PackagePurchase:
    """Sell a package to `holder` for `covered` people (the holder and/or members of the holder's household):
    one period from `at` of the package's length, and one grant per entitlement per covered person (an
    age-limited entitlement only for those under the age at the start; the age is checked again at each use).
    Idempotent on `key`.

    `payments` ([{method, amount_fen}], adding up to the price): the sale is paid here, so it is recorded as a bill
    at `clinic` — one line of the package's catalogue item (`item_code`) at its price — and counts in revenue and
    the holder's spend like any bill, and earns points as a checkout bill of that money does (the chain's spend
    rules on the catalogue item, × the holder's own tier multiplier, pending days and validity; ledger key
    `order:{id}:earn`). None: paid elsewhere (a POS that records its own order; the demo's history).

    The `wallet` payment is taken from the holder's own wallet, or from `wallet_holder`'s: the family card holder
    the holder is bound to, by the check of a checkout's family wallet spend (`wallet_spend_request`: the holder's
    standing consent, or `per_use_consent` for this sale; recorded as a WalletShareUse). `reader`: the staff
    member's scope, through which a refusal names the two (masked outside it)."""
    key = key_check(key)
    family_wallet = wallet_holder if wallet_holder is not None and wallet_holder.pk != holder.pk else None
    people = list({c.pk: c for c in covered}.values())
    touched = {holder.pk, *(p.pk for p in people)}
    waited = touched | ({family_wallet.pk} if family_wallet is not None else set())
    if len(waited) > 1:
        # A family write: an erasure in progress of anyone it touches (the wallet's holder too, as checkout_pay) is
        # waited out first. The erasure locks its person, then their family: locking the family straight away, the
        # sale could hold the holder while the erasure held a covered person and waited for the holder.
        customers_erasures_wait(Customer.objects.filter(pk__in=waited).values("pk"))
    # The holder and the people covered, in id order, before anything is read: a double-submitted sale waits for its
    # first run and finds its purchase, instead of clashing on the unique key (a 500). Their state is read under the
    # lock: a holder merged away meanwhile is NotFound, a covered person merged away or erased is refused below
    # (read from the page, their purchase, covers and grants stayed on the tombstone, or a new package went to an
    # erased record); a replay's purchase moved to the survivor with the merge, answered as another sale anyway.
    locked, gone = customers_lock_live(*touched)
    if holder.pk in gone:
        raise NotFound("Customer not found")
    existing = PackagePurchase.objects.filter(chain_id=holder.chain_id, key=key).first()
    if existing:
        if existing.package_id != package.id or existing.holder_id != holder.id:
            raise Conflict(SALE_KEY_REUSED.format(key=key), code="idempotency_key_reused", field="key")
        return existing
    customers_refuse_erased(holder.pk, field="customer_id", locked=locked)
    if family_wallet is not None:
        customers_refuse_erased(family_wallet.pk, field="wallet.holder_id")
    errors = []
    if package.chain_id != holder.chain_id:
        errors.append(FieldError("package_id", NOT_OF_CHAIN, str(package.id)))
    elif not package.is_active:
        errors.append(FieldError("package_id", NOT_ON_SALE, str(package.id)))
    if not people:
        errors.append(FieldError("covered", NOBODY_COVERED))
    household = _household_ids(holder)
    seen = set()
    for i, person in enumerate(covered):  # indexed as given (covered[i] is the caller's i-th), each person once
        if person.pk in seen:
            continue
        seen.add(person.pk)
        if person.pk in locked and person.pk != holder.pk:
            errors.append(FieldError(f"covered[{i}]", COVERED_ERASED, str(person.pk)))
        elif person.pk in gone:
            # Refused, not moved to the survivor: the caller chose this record among the ones its reader may see (the
            # form's choices, the API's customer_get), and the survivor may be of a clinic outside them, cover them
            # already or be counted twice against max_covered; a write naming a record merged away is refused with
            # "use the surviving record" everywhere (enrolment, family cards, consents, the ledger's closed accounts).
            errors.append(FieldError(f"covered[{i}]", COVERED_MERGED.format(name=person.name), str(person.pk)))
        elif person.pk not in household:
            errors.append(FieldError(f"covered[{i}]", NOT_IN_HOUSEHOLD.format(name=person.name), str(person.pk)))
    if package.max_covered and len(people) > package.max_covered:
        errors.append(FieldError("covered", TOO_MANY_COVERED.format(count=package.max_covered), str(len(people))))
    entitlements = list(package.entitlements.all())
    if not entitlements:
        errors.append(FieldError("package_id", NO_ENTITLEMENTS, str(package.id)))
    if payments is not None:
        if not package.item_code:
            errors.append(FieldError("package_id", NO_BILLING_ITEM, str(package.id)))
        if clinic is None or clinic.chain_id != holder.chain_id:
            errors.append(FieldError("clinic", NO_CLINIC, str(getattr(clinic, "pk", ""))))
        if not payments and package.price_fen:
            # order_record takes an empty list as a bill recorded without its payments: the sale would be a bill of
            # the full price nobody paid, and its cancellation would refund that price (by `other`).
            errors.append(FieldError("payments", UNPAID.format(price_fen=package.price_fen), "0"))
        for i, p in enumerate(payments):
            # Points, vouchers and gift cards pay a checkout bill, which takes them from their accounts; a sale only
            # takes money or stored value, and would record value nobody gave.
            if isinstance(p, dict) and p.get("method") in VALUE_TENDERS:
                errors.append(FieldError(f"payments[{i}].method", VALUE_TENDER, str(p.get("method"))))
    if wallet_holder is not None and wallet_holder.pk != holder.pk and not any(
            isinstance(p, dict) and p.get("method") == PaymentMethod.WALLET for p in payments or ()):
        errors.append(FieldError("wallet.holder_id", WALLET_UNUSED, str(wallet_holder.pk)))
    if errors:
        raise ValidationFailed(errors)
    stored_periods_check(package, ["validity_months"], label=package.name, kind="package ",
                         field="package_id")
    at = now_or(at)
    purchase = PackagePurchase.objects.create(
        chain_id=holder.chain_id, key=key, package=package, holder=holder, price_fen=package.price_fen,
        period_start=at, period_end=day_end(add_months(at, package.validity_months)), actor=actor, created_at=at)
    PackageCover.objects.bulk_create([PackageCover(purchase=purchase, customer=p) for p in people])
    grants = []
    for person in people:
        age = age_on(person.birthday, timezone.localdate(at))
        for e in entitlements:
            if e.max_age is not None and (age is None or age >= e.max_age):
                continue
            grants.append(EntitlementGrant(purchase=purchase, customer=person, entitlement=e, label=e.label,
                                           category=e.category, item_code=e.item_code, quantity=e.quantity,
                                           max_age=e.max_age))
    EntitlementGrant.objects.bulk_create(grants)
    if payments is not None:
        # In this transaction: a payment refused (not adding up to the price, an unknown method, not enough stored
        # value) sells nothing. What the holder pays from stored value is taken from their wallet (the order alone
        # would only record it: the method names the wallet, the ledger is where its balance lives).
        from_wallet = sum(p.get("amount_fen") or 0 for p in payments
                          if isinstance(p, dict) and p.get("method") == PaymentMethod.WALLET)
        spend = None
        if from_wallet:  # checked now (consent, stored value): a refusal comes before the bill is recorded
            with _wallet_fields():
                spend = wallet_spend_request(payer=holder, holder=wallet_holder or holder, amount_fen=from_wallet,
                                             key=package_wallet_key(key), source=f"package {package.name}"[:100],
                                             actor=actor, per_use_consent=per_use_consent, reader=reader)
        order, _ = order_record(customer=holder, clinic=clinic, ordered_at=at, cashier=actor,
                                lines=[{"item_code": package.item_code, "quantity": 1,
                                        "unit_price_fen": package.price_fen}],
                                payments=payments, external_id=f"package:{purchase.pk}", notes=package.name)
        purchase.order = order
        purchase.save(update_fields=["order"])
        # Points as for a checkout bill of the same money: every payment of a sale is money or stored value (checkout
        # earns on both; never on points, gift-card or voucher value, which a sale does not take), with the tier the
        # holder had before this bill's re-evaluation below (as checkout). Posted with the wallet spend in one batch,
        # as a checkout bill posts its movements: its accounts (the chain's SALES and POINTS_ISSUED among them) are
        # locked at once in id order, never one after the other against a concurrent bill.
        earn = points_earn_request(order=order, actor=actor, at=at, lines=getattr(order, "lines_written", None))
        requests = [r for r in (spend.request if spend else None, earn) if r is not None]
        if requests:
            with _wallet_fields():
                posted = ledger_post_many(requests)
            if spend is not None:
                spend.recorded(posted[0])  # a family member's use of the holder's wallet, with its consent
        # The bill raised the holder's spend: a spend-based tier it reaches is theirs now, as after a checkout bill.
        membership_evaluate(customer=holder, actor=actor, as_of=at)
    return purchase


_WALLET_FIELDS = {"holder_id": "wallet.holder_id", "per_use_consent": "wallet.per_use_consent",
                  "amount_fen": "payments"}


@contextmanager
def _wallet_fields():
    """A refusal of the sale's wallet spend (the checks of a checkout's own or family wallet spend: consent, binding,
    stored value) names the sale's fields: `wallet.holder_id`, `wallet.per_use_consent`, `payments`."""
    try:
        yield
    except DomainError as exc:
        exc.field = _WALLET_FIELDS.get(exc.field, exc.field)
        raise


def package_wallet_key(sale_key: str) -> str:
    """The wallet spend of a package sale paid from stored value (ledger key `wallet_spend:` + this): its
    cancellation gives that part back to the wallet by reversing it."""
    return f"package:{sale_key}"


def _remaining(grant_ids: list[int]) -> dict[int, int]:
    rows = (EntitlementGrant.objects.filter(id__in=grant_ids)
            .annotate(n_used=Count("uses", filter=Q(uses__kind=UseKind.USE)),
                      n_rev=Count("uses", filter=Q(uses__kind=UseKind.REVERSAL)))
            .values_list("id", "quantity", "n_used", "n_rev"))
    return {gid: qty - used + rev for gid, qty, used, rev in rows}


@transaction.atomic
def entitlement_redeem(*, customer: Customer, item: ServiceItem, order_line: OrderLine | None = None, key: str,
                       actor: Staff | None = None, at: dt.datetime | None = None) -> EntitlementUse:
    """Use one of the customer's entitlements for `item` (matched by item code, else category), the one whose
    period ends first, recorded against the order line. Idempotent on `key`. Refused, changing nothing, when
    nothing is left this period (`no_entitlement`) or the person is past the entitlement's age limit
    (`age_limit`)."""
    key = key_check(key)
    existing = EntitlementUse.objects.filter(chain_id=customer.chain_id, key=key).first()
    if existing:
        if existing.customer_id != customer.pk or existing.item_id != item.pk or existing.kind != UseKind.USE:
            raise Conflict(f"idempotency key {key!r} was already used for another redemption",
                           code="idempotency_key_reused", field="key")
        return existing
    customers_refuse_erased(customer.pk, field="customer_id")
    if item.chain_id != customer.chain_id:
        raise LoyaltyInputError("This item belongs to another chain", code="invalid", field="item_code")
    if order_line is not None and order_line.order.customer_id != customer.pk:
        raise LoyaltyInputError("This order line is not on the customer's order", code="invalid",
                                field="order_line_id")
    at = now_or(at)
    grants = list(EntitlementGrant.objects.select_for_update()
                  .filter(customer_id=customer.pk, expired_at__isnull=True, purchase__status=PurchaseStatus.ACTIVE,
                          purchase__period_start__lte=at, purchase__period_end__gt=at)
                  .select_related("purchase").order_by("purchase__period_end", "id"))
    matching = [g for g in grants if grant_matches(g, item)]
    if not matching:
        raise NotCovered(f"{customer.name} has no package entitlement for {item.name} in the current period",
                         field="item_code")
    allowed = [g for g in matching if age_allows(g, customer, at)]
    if not allowed:
        limit = min(g.max_age for g in matching if g.max_age is not None)
        raise AgeLimit(f"{item.name} from the package is only for people under {limit}; {customer.name} is not "
                       "(or has no birthday recorded)", field="item_code")
    left = _remaining([g.id for g in allowed])
    grant = next((g for g in allowed if left[g.id] > 0), None)
    if grant is None:
        used = sum(g.quantity for g in allowed)
        until = timezone.localdate(allowed[0].purchase.period_end)  # the local day (UTC is the day before 08:00)
        raise NoEntitlementLeft(f"{customer.name} has used all {used} × {allowed[0].label} of this period "
                                f"(until {until.isoformat()})", field="item_code")
    return EntitlementUse.objects.create(chain_id=customer.chain_id, key=key, grant=grant, customer=customer, item=item,
                                         order_line=order_line, kind=UseKind.USE, actor=actor, used_at=at)


@transaction.atomic
def entitlement_use_reverse(*, use: EntitlementUse, key: str, actor: Staff | None = None) -> EntitlementUse:
    """Give a use back (the visit's line was refunded): an appended reversal row. Once per use; idempotent on
    `key`. A use reversed after its period ended gives back nothing spendable (the grant is expired)."""
    key = key_check(key)
    # A real row lock first (`.count()` would drop FOR UPDATE): a concurrent reversal of this use waits, then finds
    # this one (its replay, or AlreadyReversed) instead of failing on the unique `reverses`. The purchase's row is
    # locked with the grant's (joined), as a redemption locks it: a cancellation counting what was used waits for it.
    list(EntitlementGrant.objects.select_for_update().filter(pk=use.grant_id)
         .values_list("pk", "purchase__status"))
    existing = EntitlementUse.objects.filter(chain_id=use.chain_id, key=key).first()
    if existing:
        if existing.reverses_id != use.id:
            raise Conflict(f"idempotency key {key!r} was already used for another reversal",
                           code="idempotency_key_reused", field="key")
        return existing
    if use.kind != UseKind.USE:
        raise LoyaltyInputError("Only a use can be reversed", code="invalid", field="use_id")
    if EntitlementUse.objects.filter(reverses=use).exists():
        raise AlreadyReversed("This use was already reversed", field="use_id")
    return EntitlementUse.objects.create(chain_id=use.chain_id, key=key, grant_id=use.grant_id,
                                         customer_id=use.customer_id, item_id=use.item_id, order_line_id=use.order_line_id,
                                         kind=UseKind.REVERSAL, reverses=use, actor=actor, used_at=now_or(None))


@transaction.atomic
def entitlements_expire(*, as_of: dt.datetime | None = None, chain_id: int | None = None) -> int:
    """Expire every purchase whose period ended by `as_of`: its grants record the unused quantity and the time
    (two set-based UPDATEs, no Python loop over rows). Idempotent. Returns the number of purchases expired."""
    as_of = now_or(as_of)
    due = PackagePurchase.objects.filter(status=PurchaseStatus.ACTIVE, period_end__lte=as_of)
    if chain_id is not None:
        due = due.filter(chain_id=chain_id)
    ids = list(due.values_list("id", flat=True))
    if not ids:
        return 0

    def count(kind):
        return Coalesce(Subquery(EntitlementUse.objects.filter(grant_id=OuterRef("pk"), kind=kind)
                                 .values("grant_id").annotate(n=Count("id")).values("n"),
                                 output_field=IntegerField()), Value(0))

    EntitlementGrant.objects.filter(purchase_id__in=ids, expired_at__isnull=True).update(
        expired_at=as_of, expired_quantity=Greatest(Value(0), F("quantity") - count(UseKind.USE) + count(UseKind.REVERSAL)))
    return PackagePurchase.objects.filter(id__in=ids, status=PurchaseStatus.ACTIVE).update(
        status=PurchaseStatus.EXPIRED, expired_at=as_of)

