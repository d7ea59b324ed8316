"""Invariants of the pay → refund lifecycle (hypothesis), against a reference computed here, on SQLite and PostgreSQL.

A generated bill (several lines and quantities, the member discount, special-price items, package entitlements, a
voucher, a gift card, points, the own wallet with a top-up bonus, cash split over methods) is paid, then a generated
sequence of refunds runs on it: lines by quantity and by amount, whole refunds, replays of a key (same request: the
first result; another request: a conflict), refusals (over-refund, bad quantity, a refunded line) and points spent
elsewhere (so the clawback withholds money, or refuses). After every step:

- money: each refund's amount is what the reference says (a unit's share, the amount asked, what is left); it is
  spread over the tenders by largest remainder of what each has not yet given back; no tender gives back more than
  it paid, the refunds never more than the bill; the tenders of a refund add up to it;
- ledger: every account's balance is the sum of its entries, no holder balance or lot is negative; the card, the
  wallet (principal and bonus) and the points get back exactly their share; the earned points are clawed back as
  round_half_up(earned × refunded share) in total, taken back or settled in money at the redeem rate (rounded up);
- a refused step and a replay change nothing (row counts, balances, refund records);
- the customer's lifetime spend and visit count agree with the orders and refunds.
"""

import os
from fractions import Fraction

import pytest
from django.db import transaction
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from smileloop.checkout.errors import ClawbackExceedsRefund
from smileloop.checkout.models import RefundMovement, RefundSettlement, Settlement, SettlementMovement
from smileloop.checkout.services import checkout_pay, checkout_price, checkout_refund
from smileloop.checkout.tests.factories import SpendRuleFactory
from smileloop.core.errors import Conflict, ValidationFailed
from smileloop.customers.models import Customer
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.giftcards.enums import VoucherValueKind
from smileloop.giftcards.errors import ExcludedItem
from smileloop.giftcards.models import GiftCard, Voucher
from smileloop.giftcards.services import friend_card_issue, voucher_issue
from smileloop.giftcards.tests.factories import CampaignFactory, ProgrammeFactory
from smileloop.ledger.enums import AccountKind, EntryReason
from smileloop.ledger.models import Account, Entry, LedgerTransaction, Lot
from smileloop.ledger.selectors import ledger_check
from smileloop.ledger.services import (
    InsufficientBalance,
    Posting,
    account_for,
    available_balance,
    ledger_post,
    system_account,
)
from smileloop.loyalty.models import EntitlementUse, TopupBonusRule
from smileloop.loyalty.services import package_sell, points_redeem, redeem_terms_save, wallet_topup
from smileloop.loyalty.tests.factories import PackageEntitlementFactory, PackageFactory
from smileloop.membership.tests.factories import MembershipFactory
from smileloop.visits.models import Order, OrderLine, Refund, RefundLine

# QA_EXAMPLES=400 searches longer; QA_NO_SHRINK=1 stops at the first failure (to check that a mutation is caught).
BOUNDED = settings(max_examples=int(os.environ.get("QA_EXAMPLES", 60)), deadline=None,
                   phases=[Phase.explicit, Phase.reuse, Phase.generate]
                   + ([] if os.environ.get("QA_NO_SHRINK") else [Phase.shrink]),
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
CODES = ["EX01", "CL01", "CL99", "FI01", "OC01"]
CLEANING = {"CL01", "CL99"}
HOLDER_KINDS = {AccountKind.POINTS, AccountKind.WALLET_PRINCIPAL, AccountKind.WALLET_BONUS, AccountKind.GIFT_CARD,
                AccountKind.VOUCHER}


def largest_remainder(amount: int, weights: list[int]) -> list[int]:
    """The ADR's split, written from its words: exact shares, floors, leftover fen to the largest fractional
    parts (ties: the earlier one)."""
    total = sum(weights)
    if total == 0:
        return [0] * len(weights)
    shares = [Fraction(amount * w, total) for w in weights]
    parts = [int(s) for s in shares]
    order = sorted(range(len(weights)), key=lambda i: (-(shares[i] - parts[i]), i))
    for i in order[:amount - sum(parts)]:
        parts[i] += 1
    return parts


def half_up(x: Fraction) -> int:
    return int(x + Fraction(1, 2)) if x >= 0 else -int(-x + Fraction(1, 2))


def snapshot(chain, customer):
    """Everything a refund could change."""
    return (
        [m.objects.count() for m in (LedgerTransaction, Entry, Lot, RefundSettlement, RefundMovement, Refund,
                                     RefundLine, EntitlementUse, Settlement, Order)],
        sorted(Account.objects.filter(chain=chain).values_list("id", "balance")),
        sorted(Lot.objects.values_list("id", "remaining")),
        sorted(SettlementMovement.objects.values_list("id", "refunded_fen", "reversed")),
        sorted((s.id, s.cash_refunded_fen, sorted(s.units_refunded.items())) for s in Settlement.objects.all()),
        sorted(OrderLine.objects.values_list("id", "refunded_fen")),
        sorted(Order.objects.values_list("id", "refunded_fen", "status")),
        list(Customer.objects.filter(pk=customer.pk).values_list("lifetime_spend_fen", "visit_count")),
        sorted(GiftCard.objects.values_list("id", "status")), sorted(Voucher.objects.values_list("id", "status")),
    )


def refund_item(kind: str):
    if kind == "qty":
        return st.tuples(st.just("qty"), st.integers(0, 5), st.sampled_from([-1, 0, 1, 1, 1, 1, 2, 3, 4, True]))
    kinds = ["part", "part", "part", "part", "all", "over", "zero", "true"]
    return st.tuples(st.just("amt"), st.integers(0, 5), st.sampled_from(kinds), st.integers(1, 999))


LINES = st.tuples(st.just("lines"), st.lists(st.one_of(refund_item("qty"), refund_item("amt")), min_size=1,
                                            max_size=2))
OPS = st.one_of(
    LINES, LINES, LINES,
    st.tuples(st.just("replay"), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("spend"), st.integers(1, 3000)),
)

BILLS = st.fixed_dictionaries({
    "lines": st.lists(st.tuples(st.sampled_from(CODES), st.integers(1, 3)), min_size=1, max_size=4),
    "member": st.booleans(),
    "entitled": st.sampled_from([0, 0, 1, 2, 4]),
    "points_seed": st.sampled_from([0, 500, 7_777, 200_000]),
    "points_ask": st.sampled_from([0, "max", 301]),
    "points_per_yuan": st.sampled_from([100, 150]),
    "earn_per_yuan": st.sampled_from([0, 1, 3]),
    "earn_pending_days": st.sampled_from([0, 7]),
    "topup": st.sampled_from([0, 3_333, 20_000, 100_000]),
    "topup_bonus": st.sampled_from([0, 1_001, 7_000]),
    "wallet_ask": st.sampled_from([None, "max", "max", 2_501]),
    "card_fen": st.sampled_from([0, 10_001, 60_000]),
    "voucher_fen": st.sampled_from([0, 5_000, 40_000]),
    "methods": st.sampled_from([["cash"], ["wechat_pay", "alipay"]]),
})


@pytest.mark.django_db
@BOUNDED
@given(bill=BILLS, ops=st.lists(OPS, min_size=1, max_size=6), finish=st.booleans())
def test_pay_then_refunds_keep_money_ledger_and_figures_consistent(chain, clinic_a, catalogue, tier, giver, bill, ops,
                                                                   finish):
    with transaction.atomic():  # then, maybe, the whole bill (what is left of it), its replays and a refused one
        Lifecycle(chain, clinic_a, catalogue, tier, giver, bill).run(
            ops + ([("whole",), ("replay", 99, True), ("replay", 99, False), ("whole",)] if finish else []))
        transaction.set_rollback(True)


class Lifecycle:
    def __init__(self, chain, clinic, catalogue, tier, giver, bill):
        self.chain, self.clinic, self.catalogue, self.bill = chain, clinic, catalogue, bill
        self.alice = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic)
        if bill["member"]:
            MembershipFactory(customer=self.alice, tier=tier)
        if bill["points_per_yuan"] != 100:
            redeem_terms_save(chain=chain, data={"points_per_yuan": bill["points_per_yuan"], "max_share_bp": 1000,
                                                 "is_enabled": True})
        if bill["earn_per_yuan"]:
            SpendRuleFactory(chain=chain, points_per_yuan=bill["earn_per_yuan"], pending_days=bill["earn_pending_days"])
        if bill["points_seed"]:
            ledger_post(chain_id=chain.id, key="seed-points", reason=EntryReason.EARN, postings=[
                Posting(self.account(AccountKind.POINTS), bill["points_seed"]),
                Posting(system_account(chain_id=chain.id, kind=AccountKind.POINTS_ISSUED), -bill["points_seed"])])
        if bill["topup"]:
            if bill["topup_bonus"]:
                # a valid rule (a bonus above its top-up is refused at top-up time): at most the top-up it rewards
                TopupBonusRule.objects.create(chain=chain, min_topup_fen=bill["topup"],
                                              bonus_fen=min(bill["topup_bonus"], bill["topup"]))
            wallet_topup(customer=self.alice, amount_fen=bill["topup"], method="cash", key="topup-1")
        if bill["entitled"]:
            package = PackageFactory(chain=chain, name="洁牙套餐", validity_months=12)
            PackageEntitlementFactory(package=package, label="洁牙", category="cleaning", quantity=bill["entitled"])
            package_sell(package=package, holder=self.alice, covered=[self.alice], key="sale-1")
        self.card = None
        if bill["card_fen"]:
            programme = ProgrammeFactory(chain=chain, code="ff", face_value_fen=bill["card_fen"])
            self.card = friend_card_issue(member=giver, programme=programme, trigger="t", key="card-1")
        self.voucher = None
        if bill["voucher_fen"] and any(code == "CL01" for code, _ in bill["lines"]):
            campaign = CampaignFactory(chain=chain, code="v", item=catalogue["CL01"],
                                       value_kind=VoucherValueKind.FACE, face_value_fen=bill["voucher_fen"])
            self.voucher = voucher_issue(campaign=campaign, customer=self.alice, key="voucher-1")
        self.keys: list[tuple[str, list | None]] = []  # successful refunds: key, request
        self.spent_elsewhere = 0

    def account(self, kind):
        return account_for(chain_id=self.chain.id, kind=kind, customer=self.alice)

    def balance(self, kind) -> int:
        return Account.objects.get(pk=self.account(kind).pk).balance

    # --- pay ---------------------------------------------------------------------------------------------------

    def pay(self):
        bill = self.bill
        self.before = {k: self.balance(k) for k in (AccountKind.POINTS, AccountKind.WALLET_PRINCIPAL,
                                                     AccountKind.WALLET_BONUS)}
        args = {"customer": self.alice, "clinic": self.clinic,
                "lines": [{"item_code": c, "quantity": q} for c, q in bill["lines"]],
                "gift_cards": [self.card.code] if self.card else [],
                "vouchers": [self.voucher.code] if self.voucher else [],
                "points": bill["points_ask"] if bill["points_seed"] else 0,
                "wallet": {"amount_fen": bill["wallet_ask"]} if bill["wallet_ask"] and bill["topup"] else None}
        for _attempt in range(3):
            try:
                priced = checkout_price(**args)
                break
            except ExcludedItem:  # the card pays no line of this bill (special price, excluded), the voucher's is free
                args.update(gift_cards=[], vouchers=[])
                self.card = self.voucher = None
            except InsufficientBalance:  # more points asked than the cap allows
                args.update(points="max")
        cash, methods = priced.cash_fen, bill["methods"]
        payments = [{"method": methods[0], "amount_fen": cash // 2 if len(methods) > 1 else cash}]
        payments += [{"method": methods[1], "amount_fen": cash - cash // 2}] if len(methods) > 1 else []
        self.settlement = checkout_pay(priced=priced, payments=payments, key="pay-1")
        # a replay returns the bill; another bill on its key is a conflict; neither writes anything
        before = snapshot(self.chain, self.alice)
        assert checkout_pay(priced=args, payments=payments, key="pay-1").pk == self.settlement.pk
        other = dict(args, lines=args["lines"] + [{"item_code": "EX01"}])
        with pytest.raises(Conflict) as caught:
            checkout_pay(priced=other, payments=[{"method": "cash", "amount_fen": cash + 5000}], key="pay-1")
        assert caught.value.code == "idempotency_key_reused"
        assert snapshot(self.chain, self.alice) == before
        self.reference_after_pay(priced)

    def reference_after_pay(self, priced):
        s, bill = self.settlement, self.bill
        order = s.order
        self.order_lines = list(order.lines.order_by("id"))
        # the bill adds up: lines = tenders = order, every amount integer fen
        assert order.amount_fen == s.total_fen == sum(ol.amount_fen for ol in self.order_lines)
        assert s.total_fen == s.cash_fen + sum(m.value_fen for m in s.movements.all())
        # entitlements: the package's cleanings, consumed in line order
        left, self.entitled = bill["entitled"], []
        for code, qty in bill["lines"]:
            n = min(left, qty) if code in CLEANING else 0
            left -= n
            self.entitled.append(n)
        ent = [s.movements.filter(role="entitlement", order_line=ol).count() for ol in self.order_lines]
        assert ent == self.entitled
        for (code, qty), ol, e in zip(bill["lines"], self.order_lines, self.entitled, strict=True):
            unit = self.catalogue[code].list_price_fen
            assert (ol.quantity, ol.unit_price_fen) == (qty, unit)
            discounted = bill["member"] and code != "CL99" and code != "OC01"  # special price; excluded category
            assert ol.amount_fen == (qty - e) * unit - (half_up(Fraction((qty - e) * unit * 1200, 10000))
                                                        if discounted else 0)
        self.lines = [{"amount": ol.amount_fen, "qty": ol.quantity, "ent": e, "refunded": 0, "done": 0}
                      for ol, e in zip(self.order_lines, self.entitled, strict=True)]
        self.valued = list(s.movements.filter(value_fen__gt=0).order_by("id"))
        self.paid = [m.value_fen for m in self.valued] + [s.cash_fen]
        self.back = [0] * len(self.paid)  # refunded so far per tender (the last: cash)
        earn = s.movements.filter(role="earn").first()
        self.earn_tx = earn.transaction if earn else None
        self.earned = earn.points if earn else 0
        if bill["earn_per_yuan"] and any(ol.amount_fen for ol in self.order_lines):
            # per line: what it paid in money and stored value, whole yuan × the rule, rounded down
            expected = sum((line.paid.get("cash", 0) + line.paid.get("wallet", 0)) * bill["earn_per_yuan"] // 100
                           for line in priced.lines)
            assert self.earned == expected
        self.shortfall = 0
        self.withheld = 0
        self.refunded = 0
        self.check()

    # --- the reference of one refund ---------------------------------------------------------------------------

    def expect(self, request):
        """→ (amounts per line index, units per line index) or None when the request must be refused."""
        lines = [dict(line) for line in self.lines]
        amounts, units = {}, {}
        if request is None:
            for i, line in enumerate(lines):
                if line["amount"] - line["refunded"]:
                    amounts[i] = line["amount"] - line["refunded"]
                if line["qty"] - line["done"]:
                    units[i] = line["qty"] - line["done"]
            return (amounts, units) if amounts or units else None
        for item in request:
            i = item["i"]
            line = lines[i]
            left = line["amount"] - line["refunded"]
            if "quantity" in item:
                q = item["quantity"]
                if type(q) is not int or not 1 <= q <= line["qty"] - line["done"]:
                    return None
                paid_units = line["qty"] - line["ent"]
                paid_before = max(0, line["done"] - line["ent"])
                paid_after = max(0, line["done"] + q - line["ent"])
                # each paid unit an equal share of the line (rounded down), the last one what is left
                amount = left if paid_after == paid_units else min(left, line["amount"] * (paid_after - paid_before)
                                                                   // paid_units)
                line["done"] += q
                units[i] = units.get(i, 0) + q
            else:
                amount = item["amount_fen"]
                if type(amount) is not int or not 1 <= amount <= left:
                    return None
                if amount == left:
                    units[i] = units.get(i, 0) + line["qty"] - line["done"]
                    line["done"] = line["qty"]
            line["refunded"] += amount
            if amount:
                amounts[i] = amounts.get(i, 0) + amount
        return (amounts, units) if amounts or any(units.values()) else None

    def request_of(self, op):
        request = []
        left = {i: line["amount"] - line["refunded"] for i, line in enumerate(self.lines)}
        for item in op[1]:
            i = item[1] % len(self.lines)
            if item[0] == "qty":
                request.append({"i": i, "quantity": item[2]})
            else:
                kind, k = item[2], item[3]
                amount = {"part": max(1, left[i] * k // 1000), "all": left[i], "over": left[i] + 1, "zero": 0,
                          "true": True}[kind]
                left[i] -= amount if type(amount) is int and 0 < amount <= left[i] else 0
                request.append({"i": i, "amount_fen": amount})
        return request

    def api_lines(self, request):
        return None if request is None else [
            {"line_id": self.order_lines[r["i"]].id} | {k: v for k, v in r.items() if k != "i"} for r in request]

    # --- steps -------------------------------------------------------------------------------------------------

    def run(self, ops):
        self.pay()
        for n, op in enumerate(ops):
            if op[0] == "spend":
                self.spend(op[1])
            elif op[0] == "replay":
                self.replay(op[1], op[2])
            else:
                self.refund(f"r{n}", None if op[0] == "whole" else self.request_of(op))
            self.check()

    def spend(self, points):
        points = min(points, available_balance(self.account(AccountKind.POINTS)))  # not the pending earned ones
        if self.bill["points_per_yuan"] == 150:
            points -= points % 3  # whole fen
        if points > 0:
            points_redeem(customer=self.alice, points=points, key=f"elsewhere-{self.spent_elsewhere}",
                          source="gift")
            self.spent_elsewhere += points

    def replay(self, j, same):
        if not self.keys:
            return
        key, request = self.keys[j % len(self.keys)]
        first = RefundSettlement.objects.get(chain=self.chain, key=key)
        before = snapshot(self.chain, self.alice)
        if same:  # the same bill and lines: the first refund, nothing written
            assert checkout_refund(settlement=self.settlement, lines=self.api_lines(request), key=key).pk == first.pk
        else:  # another request on the key: the whole bill for a line refund, or one line for a whole one
            other = [{"i": 0, "amount_fen": 1}] if request is None else None
            with pytest.raises(Conflict) as caught:
                checkout_refund(settlement=self.settlement, lines=self.api_lines(other), key=key)
            assert caught.value.code == "idempotency_key_reused"
        assert snapshot(self.chain, self.alice) == before

    def refund(self, key, request):
        expected = self.expect(request)
        before = snapshot(self.chain, self.alice)
        if expected is None:
            event("refused")
            with pytest.raises(ValidationFailed):
                checkout_refund(settlement=self.settlement, lines=self.api_lines(request), key=key)
            assert snapshot(self.chain, self.alice) == before
            return
        amounts, units = expected
        total = sum(amounts.values())
        remaining = [p - b for p, b in zip(self.paid, self.back, strict=True)]
        parts = largest_remainder(total, remaining)
        # the clawback the README states: round_half_up(earned × share) in all, as far as the account holds them once
        # this refund's redeemed points are back (the reversal returns floor(redeemed × cumulative share) in all)
        coming = sum(m.points * (back + part) // paid - self.returned(m, AccountKind.POINTS)
                     for m, part, paid, back in zip(self.valued, parts, self.paid, self.back, strict=False)
                     if m.role == "points" and part)
        shortfall = withheld = taken = 0
        if self.earned and self.refunded + total:
            due = half_up(Fraction(self.earned * (self.refunded + total), self.settlement.total_fen))
            due -= self.clawed() + self.shortfall
            due = max(due, 0)
            taken = min(due, self.balance(AccountKind.POINTS) + coming)
            shortfall = due - taken
            withheld = -(-shortfall * 100 // self.bill["points_per_yuan"])
        if withheld > parts[-1]:
            event("clawback refused")
            with pytest.raises(ClawbackExceedsRefund):
                checkout_refund(settlement=self.settlement, lines=self.api_lines(request), key=key)
            assert snapshot(self.chain, self.alice) == before
            return
        points_before = self.balance(AccountKind.POINTS)
        clawed_before = self.clawed()
        result = checkout_refund(settlement=self.settlement, lines=self.api_lines(request), key=key)
        self.keys.append((key, request))
        event("refunded" + (" whole" if request is None else "") + (" withheld" if withheld else "")
              + (" taken" if taken else "") + (" all" if self.refunded + total == self.settlement.total_fen else ""))
        # the amount, the lines and the tenders
        assert result.amount_fen == total
        assert {line["line_id"]: line["amount_fen"] for line in result.breakdown["lines"]} == {
            self.order_lines[i].id: a for i, a in amounts.items()}
        tenders = result.breakdown["tenders"]
        assert sum(t["amount_fen"] for t in tenders) == total
        got = {(t["kind"], t["ref"]): t["amount_fen"] for t in tenders if t["kind"] in
               ("giftcard", "voucher", "points", "wallet")}
        assert got == {(m.role, m.ref): p for m, p in zip(self.valued, parts, strict=False) if p}
        assert result.cash_fen == parts[-1] - withheld
        assert result.breakdown["clawback_fen"] == withheld
        assert self.clawed() - clawed_before == taken
        assert points_before - self.balance(AccountKind.POINTS) == taken - self.points_returned_now(result)
        self.back = [b + p for b, p in zip(self.back, parts, strict=True)]
        self.refunded += total
        self.shortfall += shortfall
        self.withheld += withheld
        for i, a in amounts.items():
            self.lines[i]["refunded"] += a
        for i, u in units.items():
            self.lines[i]["done"] += u

    def clawed(self) -> int:
        if self.earn_tx is None:
            return 0
        return -sum(Entry.objects.filter(transaction__reverses=self.earn_tx, account__kind=AccountKind.POINTS)
                    .values_list("amount", flat=True))

    def points_returned_now(self, result) -> int:
        txs = [rm.transaction_id for rm in result.movements.all() if rm.movement.role == "points" and rm.transaction_id]
        return sum(Entry.objects.filter(transaction_id__in=txs, account__kind=AccountKind.POINTS)
                   .values_list("amount", flat=True))

    def returned(self, m: SettlementMovement, kind) -> int:
        """What the reversals of movement `m` gave back to the customer's account of `kind`."""
        return sum(Entry.objects.filter(transaction__reverses=m.transaction, account=self.account(kind))
                   .values_list("amount", flat=True))

    # --- invariants after every step ---------------------------------------------------------------------------

    def check(self):
        s = Settlement.objects.get(pk=self.settlement.pk)
        order = Order.objects.get(pk=s.order_id)
        movements = {m.id: m for m in s.movements.all()}
        # money: per tender never more than it paid; the bill never more than paid; integers
        for m, paid, back in zip(self.valued, self.paid, self.back, strict=False):
            assert movements[m.id].refunded_fen == back <= paid
        assert s.cash_refunded_fen == self.back[-1] <= s.cash_fen
        assert order.refunded_fen == self.refunded == sum(self.back) <= order.amount_fen
        assert sum(r.amount_fen for r in RefundSettlement.objects.filter(settlement=s)) == self.refunded
        assert sum(r.cash_fen for r in RefundSettlement.objects.filter(settlement=s)) == self.back[-1] - self.withheld
        assert order.status == ("paid" if not self.refunded else
                                "refunded" if self.refunded == order.amount_fen else "partially_refunded")
        for ol, line in zip(OrderLine.objects.filter(order=order).order_by("id"), self.lines, strict=True):
            assert ol.refunded_fen == line["refunded"] <= ol.amount_fen
            assert s.units_refunded.get(str(ol.id), 0) == line["done"]
        # by method (refund_split): each tender under its method, the clawback withheld under points, the money
        # given back over the money methods, none more than it paid; every refund's lines add up to it
        refunds = Refund.objects.filter(order=order)
        recorded = {}
        for method, fen in refunds.values_list("method", "amount_fen"):
            recorded[method] = recorded.get(method, 0) + fen
        role_method = {"giftcard": "gift_card", "voucher": "voucher", "points": "points", "wallet": "wallet"}
        expected = {}
        for m, back in zip(self.valued, self.back, strict=False):
            expected[role_method[m.role]] = expected.get(role_method[m.role], 0) + back
        expected["points"] = expected.get("points", 0) + self.withheld
        paid_by = dict(order.payments.values_list("method", "amount_fen"))
        money = {k: v for k, v in recorded.items() if k not in role_method.values()}
        assert {k: v for k, v in recorded.items() if k in role_method.values()} == {
            k: v for k, v in expected.items() if v}
        assert sum(money.values()) == self.back[-1] - self.withheld
        assert all(v <= paid_by.get(k, 0) for k, v in money.items()), (money, paid_by)
        if self.refunded == order.amount_fen and not self.withheld:
            assert money == {k: v for k, v in paid_by.items() if k not in role_method.values()}
        for r in refunds:
            assert sum(r.lines.values_list("amount_fen", flat=True)) == r.amount_fen
        # entitlements: refunded units give back the package's units first
        for ol, line in zip(self.order_lines, self.lines, strict=True):
            uses = [m for m in movements.values() if m.role == "entitlement" and m.order_line_id == ol.id]
            assert sum(m.reversed for m in uses) == min(line["done"], line["ent"])
            assert EntitlementUse.objects.filter(order_line=ol, kind="reversal").count() == min(line["done"],
                                                                                                 line["ent"])
        # ledger: balances are the sum of entries, never negative
        assert ledger_check(chain_id=self.chain.id) == []
        for account in Account.objects.filter(chain=self.chain):
            assert account.balance == sum(Entry.objects.filter(account=account).values_list("amount", flat=True))
            if account.kind in HOLDER_KINDS:
                assert account.balance >= 0, account.kind
        assert not Lot.objects.filter(remaining__lt=0).exists()
        # each stored-value movement gives back exactly its refunded share, split as it was taken
        for m, paid, back in zip(self.valued, self.paid, self.back, strict=False):
            share = Fraction(back, paid)
            if m.role == "wallet":
                principal = self.returned(m, AccountKind.WALLET_PRINCIPAL)
                bonus = self.returned(m, AccountKind.WALLET_BONUS)
                assert principal + bonus == back
                spent_p = -sum(Entry.objects.filter(transaction=m.transaction, account=self.account(
                    AccountKind.WALLET_PRINCIPAL)).values_list("amount", flat=True))
                assert abs(principal - spent_p * share) < 1
            elif m.role == "points":
                assert abs(self.returned(m, AccountKind.POINTS) - m.points * share) < 1
                assert back < paid or self.returned(m, AccountKind.POINTS) == m.points
            elif m.role == "giftcard":
                card = GiftCard.objects.select_related("account").get(code=m.ref)
                assert card.account.balance == self.bill["card_fen"] - paid + back
            elif m.role == "voucher":  # its whole value was taken (the part the line did not need forfeited)
                voucher = Voucher.objects.select_related("account").get(code=m.ref)
                assert abs(voucher.account.balance - self.bill["voucher_fen"] * share) < 1
                assert voucher.status == ("issued" if back == paid else "redeemed")
        if self.refunded == order.amount_fen and self.bill["topup"]:
            assert self.balance(AccountKind.WALLET_PRINCIPAL) == self.before[AccountKind.WALLET_PRINCIPAL]
            assert self.balance(AccountKind.WALLET_BONUS) == self.before[AccountKind.WALLET_BONUS]
        # points earned: round_half_up(earned × refunded share) back in all, taken or settled in money
        if self.earned:
            due = half_up(Fraction(self.earned * self.refunded, order.amount_fen))
            assert self.clawed() + self.shortfall == due
        # the points account is what it was, less what was redeemed and spent, plus returns and what was earned
        redeemed = sum(m.points for m in self.valued if m.role == "points")
        returned = sum(self.returned(m, AccountKind.POINTS) for m in self.valued if m.role == "points")
        assert self.balance(AccountKind.POINTS) == (self.before[AccountKind.POINTS] - redeemed + returned + self.earned
                                                    - self.clawed() - self.spent_elsewhere)
        # the customer's figures follow the orders and refunds
        customer = Customer.objects.get(pk=self.alice.pk)
        assert customer.lifetime_spend_fen == sum(o.amount_fen - o.refunded_fen
                                                  for o in Order.objects.filter(customer=self.alice))
        assert customer.visit_count == 1


@pytest.mark.parametrize("line", [{"quantity": True}, {"amount_fen": True}])
def test_a_refund_line_with_a_boolean_quantity_or_amount_is_refused_and_changes_nothing(
        chain, clinic_a, catalogue, alice, line):
    # True is an int to Python: it was read as 1 unit (or 1 fen) and refunded, where pricing refuses it by name
    priced = checkout_price(customer=alice, clinic=clinic_a, lines=[{"item_code": "EX01", "quantity": 2}])
    settlement = checkout_pay(priced=priced, payments=[{"method": "cash", "amount_fen": priced.cash_fen}], key="p")
    before = snapshot(chain, alice)
    with pytest.raises(ValidationFailed) as refused:
        checkout_refund(settlement=settlement, lines=[{"line_id": settlement.order.lines.get().id, **line}], key="r")
    assert [e.field for e in refused.value.errors] == [f"lines[0].{next(iter(line))}"]
    assert snapshot(chain, alice) == before


def test_points_paying_an_odd_fen_left_at_150_points_per_yuan_are_whole_steps_and_the_bill_pays(
        chain, clinic_a, catalogue, giver):
    # given 150 points per yuan (3 points = 2 fen) and a gift card leaving 0.01 of a check-up (50.00) to pay
    redeem_terms_save(chain=chain, data={"points_per_yuan": 150, "max_share_bp": 1000, "is_enabled": True})
    bob = CustomerFactory(chain=chain, name="李雷", home_clinic=clinic_a)
    ledger_post(chain_id=chain.id, key="seed", reason=EntryReason.EARN, postings=[
        Posting(account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=bob), 3000),
        Posting(system_account(chain_id=chain.id, kind=AccountKind.POINTS_ISSUED), -3000)])
    card = friend_card_issue(member=giver, programme=ProgrammeFactory(chain=chain, face_value_fen=4999),
                             trigger="t", key="card")
    # when the rest is to be paid with as many points as possible
    priced = checkout_price(customer=bob, clinic=clinic_a, lines=[{"item_code": "EX01"}], gift_cards=[card.code],
                            points="max")
    # then points pay whole steps only (1.5 points for 0.01 cannot be redeemed): the odd fen is paid in cash, and
    # the bill priced is the bill paid (it was a 422 on points at pay: 2 points, not a multiple of 3)
    assert [(t.kind, t.amount_fen, t.points) for t in priced.tenders] == [("giftcard", 4999, 0), ("cash", 1, 0)]
    settlement = checkout_pay(priced=priced, payments=[{"method": "cash", "amount_fen": 1}], key="pay")
    assert settlement.total_fen == 5000 and ledger_check(chain_id=chain.id) == []
