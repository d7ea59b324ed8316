"""The pure arithmetic of a bill: no database, no clock. `checkout_price` gathers the facts (prices, the
member discount, entitlements, balances, points terms) and calls `price`.

Order of application, per the clinic's rules:
1. entitlements: a package entitlement makes `entitled_units` units of a line free;
2. member discount (one only: own tier, family card or friend; never on excluded categories or special-price
   items): per line, `round_half_up(base × bp / 10000)` of the units not covered by an entitlement;
   a line's net = list − entitlement − discount; the bill total is the sum of line nets;
3. vouchers (single use, in the order given): the first line it applies to (item, else category) with
   something left to pay; it pays min(its value, what the line still owes); the rest of its value is forfeited;
4. gift cards (in the order given): min(balance, what eligible lines still owe), spread over eligible lines;
5. points: at most the loyalty quote (balance and cap on the bill after discounts) and what is still owed, in
   whole redeem steps (the quote's);
6. wallet: the amount asked ("max" = all it can), at most what is still owed;
7. the remainder per line is cash (or another external method).

Rounding: everything is integer fen. An amount spread over lines (a gift card, points, wallet) uses the
largest-remainder method: each line gets the floor of its proportional share (weights = what the line still
owes), and the leftover fen go one each to the lines with the largest remainders, ties to the earlier line.
So each tender's parts sum exactly to the tender, no line is ever paid more than it owes, and
sum(line nets) = bill total = sum(tenders) always (tests/test_pricing.py proves it with hypothesis).
"""

import math
from dataclasses import dataclass, field

from smileloop.checkout import labels
from smileloop.core.money import allocate, yuan_grouped  # allocate: the split rule shared with visits

MAX = "max"


@dataclass(frozen=True)
class LineIn:
    item_id: int
    code: str
    name: str
    category: str
    special: bool
    unit_fen: int
    quantity: int = 1
    entitled_units: int = 0


@dataclass(frozen=True)
class DiscountIn:
    bp: int
    excluded_categories: frozenset
    exclude_special: bool
    label: str


@dataclass(frozen=True)
class VoucherIn:
    code: str
    balance_fen: int
    item_id: int | None
    category: str
    label: str


@dataclass(frozen=True)
class CardIn:
    code: str
    balance_fen: int
    excluded_categories: frozenset
    exclude_special: bool
    label: str


@dataclass(frozen=True)
class PointsIn:
    requested: int | str  # a number of points or "max"
    max_points: int  # the loyalty quote for this bill: at most this many points, worth max_fen
    max_fen: int


@dataclass(frozen=True)
class WalletIn:
    requested: int | str  # fen or "max"
    available_fen: int
    label: str


@dataclass
class Step:
    kind: str  # entitlement / discount
    label: str
    amount_fen: int


@dataclass
class PricedLine:
    index: int
    item_id: int
    code: str
    name: str
    category: str
    special: bool
    quantity: int
    unit_fen: int
    list_fen: int
    entitled_units: int
    entitlement_fen: int
    discount_fen: int
    net_fen: int
    steps: list[Step] = field(default_factory=list)
    paid: dict[str, int] = field(default_factory=dict)  # tender id → fen

    @property
    def reduction_fen(self) -> int:
        return self.entitlement_fen + self.discount_fen


@dataclass
class Tender:
    kind: str  # voucher / giftcard / points / wallet / cash
    ref: str  # the code for vouchers and gift cards
    label: str
    amount_fen: int
    per_line: list[int]
    points: int = 0
    balance_before_fen: int | None = None
    forfeited_fen: int = 0

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.ref}" if self.ref else self.kind


@dataclass
class Priced:
    lines: list[PricedLine]
    tenders: list[Tender]

    @property
    def list_total_fen(self) -> int:
        return sum(line.list_fen for line in self.lines)

    @property
    def total_fen(self) -> int:
        return sum(line.net_fen for line in self.lines)

    def tender(self, kind: str) -> list[Tender]:
        return [t for t in self.tenders if t.kind == kind]

    @property
    def cash_fen(self) -> int:
        return sum(t.amount_fen for t in self.tender("cash"))


class PricingError(Exception):
    """Raised by `price` with a stable code; checkout turns it into the typed domain error."""

    def __init__(self, code: str, message: str, field: str):
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


def round_half_up(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)


def yuan(fen: int) -> str:
    """Grouped as every page shows amounts (`core.money.yuan_grouped`): a tender's label said "账单 ¥2182.40" beside
    the bill's "¥2,182.40"."""
    return yuan_grouped(fen)


def _eligible(line: PricedLine, excluded: frozenset, exclude_special: bool) -> bool:
    return line.category not in excluded and not (exclude_special and line.special)


def price(*, lines: list[LineIn], discount: DiscountIn | None = None, vouchers: list[VoucherIn] = (),
          cards: list[CardIn] = (), points: PointsIn | None = None, wallet: WalletIn | None = None) -> Priced:
    if not lines:
        raise PricingError("invalid", "a bill needs at least one line", "lines")
    priced: list[PricedLine] = []
    for i, line in enumerate(lines):
        list_fen = line.unit_fen * line.quantity
        units = min(line.entitled_units, line.quantity)
        ent = line.unit_fen * units
        out = PricedLine(i, line.item_id, line.code, line.name, line.category, line.special, line.quantity,
                         line.unit_fen, list_fen, units, ent, 0, 0)
        if units:
            out.steps.append(Step("entitlement", labels.ENTITLEMENT % {"units": units, "item": line.name}, ent))
        if discount and discount.bp and _eligible(out, discount.excluded_categories, discount.exclude_special):
            out.discount_fen = round_half_up((list_fen - ent) * discount.bp, 10000)
            if out.discount_fen:
                out.steps.append(Step("discount", labels.DISCOUNT % {"tier": discount.label,
                                                                     "off": labels.off_text(discount.bp)},
                                      out.discount_fen))
        out.net_fen = list_fen - ent - out.discount_fen
        priced.append(out)
    due = [line.net_fen for line in priced]
    tenders: list[Tender] = []

    def pay(tender: Tender) -> None:
        for i, part in enumerate(tender.per_line):
            due[i] -= part
            if part:
                priced[i].paid[tender.id] = priced[i].paid.get(tender.id, 0) + part
        tenders.append(tender)

    seen: set[str] = set()
    for v in vouchers:
        if v.code in seen:
            raise PricingError("invalid", f"voucher {v.code} is entered twice", "vouchers")
        seen.add(v.code)
        target = next((line for line in priced if (line.item_id == v.item_id if v.item_id else line.category == v.category)
                       and due[line.index] > 0), None)
        if target is None:
            raise PricingError("excluded_item", f"voucher {v.code} ({v.label}) applies to no line of this bill",
                               "vouchers")
        used = min(v.balance_fen, due[target.index])
        per_line = [used if line is target else 0 for line in priced]
        pay(Tender("voucher", v.code, labels.VOUCHER % {"name": v.label, "code": v.code, "used": yuan(used)}, used,
                   per_line,
                   balance_before_fen=v.balance_fen, forfeited_fen=v.balance_fen - used))
    for c in cards:
        if c.code in seen:
            raise PricingError("invalid", f"gift card {c.code} is entered twice", "gift_cards")
        seen.add(c.code)
        if c.balance_fen <= 0:
            raise PricingError("insufficient_balance", f"gift card {c.code} has no balance left", "gift_cards")
        eligible = [_eligible(line, c.excluded_categories, c.exclude_special) for line in priced]
        if not any(eligible):
            raise PricingError("excluded_item", f"gift card {c.code} ({c.label}) cannot pay for any line of this "
                                                "bill (special-price items and excluded categories)", "gift_cards")
        weights = [due[i] if eligible[i] else 0 for i in range(len(priced))]
        used = min(c.balance_fen, sum(weights))
        pay(Tender("giftcard", c.code, labels.GIFT_CARD % {"name": c.label, "code": c.code, "before": yuan(c.balance_fen),
                                                           "used": yuan(used), "left": yuan(c.balance_fen - used)},
                   used, allocate(used, weights),
                   balance_before_fen=c.balance_fen))
    bill_after_discounts = sum(line.net_fen for line in priced)
    if points is not None and points.requested not in (0, None) and (points.max_fen > 0 or points.requested != MAX):
        if points.max_fen <= 0:
            raise PricingError("insufficient_balance", f"{points.requested} points asked, none usable on this bill",
                               "points")
        limit = min(points.max_fen, sum(due))
        if points.requested == MAX:
            fen = limit
        else:
            if points.requested < 0 or points.requested > points.max_points:
                raise PricingError("insufficient_balance", f"{points.requested} points asked, at most "
                                   f"{points.max_points} usable on this bill", "points")
            fen = min(limit, points.requested * points.max_fen // points.max_points)
        # whole redeem steps only (150 points per yuan: 3 points = 2 fen), as the quote is: 1 fen left to pay was
        # 2 points, which the redeem refuses at pay (not a multiple of 3) after the price showed them
        fen -= fen % (points.max_fen // math.gcd(points.max_points, points.max_fen))
        if fen > 0:
            used_points = -(-fen * points.max_points // points.max_fen)  # the quote's rate, rounded up
            pay(Tender("points", "", labels.POINTS % {"points": used_points, "yuan": yuan(fen), "cap": yuan(points.max_fen),
                                                      "bill": yuan(bill_after_discounts)}, fen, allocate(fen, list(due)),
                       points=used_points))
    if wallet is not None:
        owed = sum(due)
        if wallet.requested == MAX:
            fen = min(wallet.available_fen, owed)
        else:
            if wallet.requested < 0:
                raise PricingError("invalid", "the wallet amount must be ≥ 0", "wallet.amount_fen")
            if wallet.requested > wallet.available_fen:
                raise PricingError("insufficient_balance", f"{wallet.label}: {yuan(wallet.available_fen)} available, "
                                   f"{yuan(wallet.requested)} asked", "wallet.amount_fen")
            fen = min(wallet.requested, owed)
        if fen > 0:
            pay(Tender("wallet", "", f"{wallet.label} {yuan(fen)}", fen, allocate(fen, list(due)),  # labels.WALLET
                       balance_before_fen=wallet.available_fen))
    cash = list(due)
    pay(Tender("cash", "", labels.CASH % {"yuan": yuan(sum(cash))}, sum(cash), cash))
    return Priced(priced, tenders)
