"""Pricing a bill: gathers the facts (catalogue, entitlements, the member discount, codes, points quote, wallet)
and calls the pure `checkout.pricing.price`. Writes nothing."""

import datetime as dt
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from django.utils import timezone

from smileloop.checkout.errors import ConsentMissing
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
    price,
)
from smileloop.clinics.models import Clinic
from smileloop.core.bounds import BIGINT_MAX
from smileloop.core.errors import DomainError, FieldError, ValidationFailed
from smileloop.core.scoping import Scope
from smileloop.core.sql import in_clause, select_models, select_rows
from smileloop.customers.models import Customer
from smileloop.customers.normalize import name_masked
from smileloop.customers.selectors import name_for
from smileloop.giftcards import selectors as giftcard_selectors
from smileloop.giftcards import services as giftcard_services
from smileloop.giftcards.errors import ExcludedItem, Expired, OtherCustomers
from smileloop.giftcards.models import GiftCard, Voucher
from smileloop.ledger.services import InsufficientBalance, available_balance
from smileloop.loyalty import selectors as loyalty_selectors
from smileloop.loyalty import services as loyalty_services
from smileloop.membership.enums import DiscountSource
from smileloop.membership.models import Membership
from smileloop.membership.selectors import (
    family_bindings_of,
    member_discount_and_own,
    own_membership,
    wallet_share_allowed,
)
from smileloop.visits.enums import TENDER_METHODS, PaymentMethod
from smileloop.visits.models import ServiceItem

TENDER_METHOD = {"giftcard": PaymentMethod.GIFT_CARD, "voucher": PaymentMethod.VOUCHER,
                 "points": PaymentMethod.POINTS, "wallet": PaymentMethod.WALLET}
CASH_METHODS = [m for m in PaymentMethod.values if m not in TENDER_METHODS]


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
    facts: tuple = ()  # what the amounts depend on beyond balances (see _facts); pay reuses the bill if unchanged
    own_membership: Membership | None = None  # the customer's own active membership, read with the discount

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


TOOTH_MAX_LENGTH = 32  # visits.OrderLine.tooth


def _items(chain_id: int, lines: list[dict]) -> tuple[list[tuple[ServiceItem, int]], dict[int, ServiceItem]]:
    # a code with a NUL is no item's (and PostgreSQL refuses it in a query)
    codes = [str(line.get("item_code", "")) for line in lines if line.get("item_code")
             and "\x00" not in str(line["item_code"])]
    ids = [line.get("item_id") for line in lines if line.get("item_id") and not line.get("item_code")]
    # anything else is "not in the catalogue" (a number past the key column's range failed the query: a 500)
    ids = [i for i in ids if isinstance(i, int) and not isinstance(i, bool) and 0 < i <= BIGINT_MAX]
    codes_in, code_params = in_clause("t0.code", codes)
    ids_in, id_params = in_clause("t0.id", ids)
    found = select_models(ServiceItem, f"t0.chain_id = %s AND t0.is_active AND ({codes_in} OR {ids_in})",
                          [chain_id, *code_params, *id_params])
    by_code, by_id = {i.code: i for i in found}, {i.id: i for i in found}
    out, errors = [], []
    if not lines:
        errors.append(FieldError("lines", "a bill needs at least one line"))
    for i, line in enumerate(lines):
        item = by_code.get(str(line.get("item_code"))) if line.get("item_code") else by_id.get(line.get("item_id"))
        qty = line.get("quantity", 1)
        tooth = line.get("tooth") or ""
        # Stored as OrderLine.tooth (32 characters): a longer one was cut without a word, and a NUL was a 500 on
        # PostgreSQL when the bill was paid.
        if not isinstance(tooth, str) or len(tooth) > TOOTH_MAX_LENGTH:
            errors.append(FieldError(f"lines[{i}].tooth", f"must be at most {TOOTH_MAX_LENGTH} characters",
                                     str(tooth)[:50]))
        elif "\x00" in tooth:
            errors.append(FieldError(f"lines[{i}].tooth", "Null characters are not allowed.", ""))
        if item is None:
            errors.append(FieldError(f"lines[{i}].item_code", "is not in the service catalogue",
                                     str(line.get("item_code") or line.get("item_id"))))
        elif not isinstance(qty, int) or isinstance(qty, bool) or qty < 1 or qty > 99:
            errors.append(FieldError(f"lines[{i}].quantity", "must be a whole number from 1 to 99", str(qty)))
        else:
            out.append((item, qty))
    if not errors and out:
        # A package's "billed as" item is the package's sale: billed here it would take the money and grant nothing.
        items_in, item_params = in_clause("item_code", sorted({item.code for item, _ in out}))
        sold_as = dict(select_rows(f"SELECT item_code, name FROM loyalty_package WHERE chain_id = %s AND {items_in}",
                                   [chain_id, *item_params]))
        for i, (item, _) in enumerate(out):
            if item.code in sold_as:
                errors.append(FieldError(f"lines[{i}].item_code", f"is how the package {sold_as[item.code]} is "
                                         "billed: sell the package on the patient's loyalty card", item.code))
    if errors:
        raise ValidationFailed(errors)
    return out, by_id


@contextmanager
def _code_field(path: str):
    """A code's refusal (unknown, expired, used) names where the bill holds it ("vouchers[1]"), not the look-up's
    own argument ("code"), so the cashier and the API client know which of their codes is wrong."""
    try:
        yield
    except DomainError as exc:
        if exc.field in (None, "code", path.partition("[")[0]):
            exc.field = path
        raise


def _family_bound(holder: Customer, member: Customer) -> bool:
    """Whether `member` is bound to the family card of `holder` (only then can the holder's wallet be shared)."""
    membership = own_membership(holder)
    return membership is not None and family_bindings_of(membership).filter(member_id=member.pk).exists()


def _age_on(birthday: dt.date | None, day: dt.date) -> int | None:
    if birthday is None:
        return None
    return day.year - birthday.year - ((day.month, day.day) < (birthday.month, birthday.day))


def _entitled_units(customer: Customer, resolved: list[tuple[ServiceItem, int]], at: dt.datetime) -> list[int]:
    """Units of each line an entitlement pays for, from ONE read of the customer's current-period entitlements
    with units left (loyalty's `entitlements_left`), matched here as loyalty matches them (item code, else category;
    within the age limit). Grants are consumed in loyalty's order (earliest period end first) across lines."""
    balances = loyalty_selectors.entitlements_left(customer.pk, at=at)
    if not balances:
        return [0] * len(resolved)
    age = _age_on(customer.birthday, timezone.localdate(at))
    left = {b.grant_id: b.remaining for b in balances
            if b.max_age is None or (age is not None and age < b.max_age)}
    units = []
    for item, qty in resolved:
        n = 0
        for b in balances:
            if n == qty:
                break
            if b.grant_id in left and ((b.item_code and b.item_code == item.code)
                                       or (not b.item_code and b.category == item.category)):
                take = min(qty - n, left[b.grant_id])
                left[b.grant_id] -= take
                n += take
        units.append(n)
    return units


def _discount_label(discount) -> str:
    # A bill's labels are stored with its settlement and read by anyone who sees the customer's bills: the family
    # card holder or the friend's member they name, maybe of another clinic, is named masked (张*) for everyone.
    if discount.source == DiscountSource.FAMILY:
        return f"family card of {name_masked(discount.membership.customer.name)}, {discount.tier.name}"
    if discount.source == DiscountSource.FRIEND:
        return f"friend of {name_masked(discount.membership.customer.name)}, {discount.tier.name}"
    return discount.tier.name  # checkout.labels: DISCOUNT_FAMILY, DISCOUNT_FRIEND, DISCOUNT


def checkout_price(*, customer: Customer, clinic: Clinic, lines: list[dict], vouchers: list[str] = (),
                   gift_cards: list[str] = (), points: int | str = 0, wallet: dict | None = None,
                   at: dt.datetime | None = None, reader: Scope | None = None) -> PricedBill:
    """Price a bill without writing anything. `lines`: [{"item_code" (or "item_id"), "quantity"}]; `points`: a
    number of points or "max"; `wallet`: {"holder": Customer (default the customer), "amount_fen": int or "max"
    (required), "per_use_consent": bool}. Raises the typed errors (wrong_code, expired, excluded_item, already_used,
    other_customers, insufficient_balance, consent_missing) before anything could be written. `reader`: the staff
    member's scope; a refusal names a family wallet holder outside it (or with no reader) masked, 张*; the bill's
    labels name other patients masked for every reader (they are stored with the settlement)."""
    at = at or timezone.now()
    if clinic.chain_id != customer.chain_id:
        raise ValidationFailed([FieldError("clinic", "is not a clinic of the customer's chain", str(clinic.pk))])
    inputs = {"customer": customer, "clinic": clinic, "lines": [dict(line) for line in lines],
              "vouchers": list(vouchers), "gift_cards": list(gift_cards), "points": points,
              "wallet": dict(wallet) if wallet else None, "at": at, "reader": reader}
    resolved, items = _items(customer.chain_id, lines)
    units = _entitled_units(customer, resolved, at)
    line_ins = [LineIn(item.id, item.code, item.name, item.category, item.is_special_price, item.list_price_fen, qty, n)
                for (item, qty), n in zip(resolved, units, strict=True)]
    member, own = member_discount_and_own(customer, at=at)
    discount = (DiscountIn(member.discount_bp, frozenset(member.excluded_categories), member.exclude_special_price,
                           _discount_label(member)) if member else None)
    voucher_ins, voucher_rows = [], {}
    for i, code in enumerate(vouchers):
        with _code_field(f"vouchers[{i}]"):
            voucher = giftcard_selectors.voucher_get_by_code(chain_id=customer.chain_id, code=code)
            giftcard_services.voucher_check(voucher, at)
        if voucher.customer_id and voucher.customer_id != customer.pk:
            raise OtherCustomers(f"voucher {voucher.code} belongs to another customer", field=f"vouchers[{i}]")
        voucher_rows[voucher.code] = voucher
        c = voucher.campaign
        voucher_ins.append(VoucherIn(voucher.code, available_balance(voucher.account, at=at), c.item_id,
                                     c.category, c.name))
    card_ins, card_rows = [], {}
    for i, code in enumerate(gift_cards):
        with _code_field(f"gift_cards[{i}]"):
            card = giftcard_selectors.giftcard_for_payment(chain_id=customer.chain_id, code=code, at=at)
        if card.status == "expired" or giftcard_selectors.card_is_expired(card, at):
            raise Expired(f"gift card {card.code} expired on {timezone.localdate(card.expires_at)}",
                          field=f"gift_cards[{i}]")
        card_rows[card.code] = card
        card_ins.append(CardIn(card.code, card.balance_now, frozenset(card.excluded_categories),
                               card.exclude_special_price, card.programme.name))
    bill_after = sum(li.unit_fen * (li.quantity - li.entitled_units) for li in line_ins)  # upper bound for the quote
    points_in, terms = None, None
    if points:
        if points != MAX and (not isinstance(points, int) or isinstance(points, bool) or points < 0):
            raise ValidationFailed([FieldError("points", 'must be a whole number of points or "max"', str(points))])
        # the cap applies to the bill after discounts: price once without tenders to know it
        bill_after = price(lines=line_ins, discount=discount).total_fen if line_ins else 0
        terms = loyalty_services.points_redeem_terms(chain_id=customer.chain_id)
        max_points, max_fen = loyalty_services.points_redeem_quote(customer=customer, bill_fen=bill_after, terms=terms)
        points_in = PointsIn(points, max_points, max_fen)
    wallet_in, holder = None, None
    if wallet:
        if wallet.get("amount_fen") is None:  # no default: "max" by default spent the whole wallet unasked
            raise ValidationFailed([FieldError("wallet.amount_fen", 'is required: the amount to take from the wallet '
                                               'in fen, or "max" for as much as it can pay')])
        holder = wallet.get("holder") or customer
        if holder.pk != customer.pk:
            mode = wallet_share_allowed(holder, customer, at=at)
            if mode is None and not _family_bound(holder, customer):  # a consent for this use cannot make them family
                raise ConsentMissing(f"{name_for(reader, customer)} is not a family member bound to "
                                     f"{name_for(reader, holder)}'s card, so the wallet cannot be shared",
                                     field="wallet.holder_id")
            if mode is None and not wallet.get("per_use_consent"):
                raise ConsentMissing(f"{name_for(reader, holder)} has not consented to {customer.name} paying from the family "
                                     "wallet: record the holder's consent (standing, or for this use)",
                                     field="wallet.per_use_consent")
        balance = loyalty_selectors.wallet_balance(holder)
        amount = wallet["amount_fen"]
        label = "wallet" if holder.pk == customer.pk else f"family wallet of {name_masked(holder.name)}"
        wallet_in = WalletIn(amount, balance.principal + balance.bonus, label)
    try:
        priced = price(lines=line_ins, discount=discount, vouchers=voucher_ins, cards=card_ins, points=points_in,
                       wallet=wallet_in)
    except PricingError as exc:
        _raise_pricing(exc)
    return PricedBill(customer=customer, clinic=clinic, at=at, inputs=inputs, priced=priced, items=items,
                      cards=card_rows, vouchers=voucher_rows, wallet_holder=holder,
                      discount_source=member.source if member else "", own_membership=own,
                      facts=_facts(resolved, member, terms))


def _facts(resolved: list, member, terms) -> tuple:
    """The inputs of a price that no ledger write re-checks: catalogue rows, the member discount and (when points
    are used) the redeem terms. Balances, lots, card and voucher status and expiry, wallet consent and entitlements
    are re-checked by the services pay calls, under row locks, and refuse (nothing written) if they no longer
    allow the bill."""
    items = tuple(sorted({(i.id, i.list_price_fen, i.category, i.is_special_price, i.is_active) for i, _q in resolved}))
    discount = ((member.source, member.membership.pk, member.tier.pk, member.discount_bp,
                 tuple(sorted(member.excluded_categories)), member.exclude_special_price) if member else None)
    return items, discount, terms
