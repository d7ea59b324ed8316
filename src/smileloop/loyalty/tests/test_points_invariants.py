"""Points against a plain-Python model: random sequences of earning on paid bills, referral and review awards (through
the API with a token and through the service), redeeming, gift exchanges, refunds of an earning bill (claw-back, also
of points already spent), time passing with the expiry job, and a customer merge. After every step the balance,
available / pending / expiring points and the open lots (in spend order) equal the model's, the ledger is append-only
(no transaction, entry or lot's terms changed or deleted) and `ledger_check` is clean; replays change nothing, a key
reused for another movement is refused, and bad input is a 4xx with a message that changes nothing.

The clock: `django.utils.timezone.now` is the machine's clock `T`, and every service that takes a moment is passed
`at=T` too, so pending periods, validity and expiry are exercised months ahead without waiting.

Rules documented in services/points.py and the loyalty README: a line earns floor(paid fen × rate × tier multiplier /
100); a refund after which `share` of the bill is refunded claws back round_half_up(earned × share) in all, less what
was clawed back or settled before, from the bill's own lot first, then the holder's spendable points, the rest (spent)
converted at the redeem rate, rounded up to the fen; lots are spent oldest expiry first (undated last)."""

import datetime as dt
import itertools
import json
import threading
import time
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from fractions import Fraction
from unittest import mock

import pytest
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.services import token_create
from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory, StaffFactory
from smileloop.core.dates import add_months, day_end
from smileloop.core.errors import Conflict, ValidationFailed
from smileloop.core.testing import race, writers_run
from smileloop.customers.enums import Stage
from smileloop.customers.services import customer_merge
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.ledger.enums import AccountKind, EntryReason
from smileloop.ledger.models import Account, Entry, LedgerTransaction, Lot
from smileloop.ledger.selectors import ledger_check
from smileloop.ledger.services import AccountClosed, accounts_lock, lots_expire
from smileloop.ledger.tests.concurrency import books_balance, postgres_only
from smileloop.loyalty.enums import EarnTrigger, SpecialPrice
from smileloop.loyalty.errors import InsufficientPoints
from smileloop.loyalty.selectors import points_available, points_summary
from smileloop.loyalty.services import (
    points_award,
    points_clawback_plan,
    points_clawback_post,
    points_earn_for_order,
    points_redeem,
    points_redeem_quote,
)
from smileloop.loyalty.tests.factories import EarnRuleFactory, GiftFactory, RedeemSettingsFactory, order_with
from smileloop.membership.tests.factories import MembershipFactory, PlanFactory, TierFactory
from smileloop.visits.enums import Category
from smileloop.visits.tests.factories import ServiceItemFactory

RATE = Decimal("1.50")  # points per yuan of the spend rule
MULTIPLIER = Decimal("1.25")  # customer 0's tier
REDEEM_RATE = 150  # points per yuan: a deduction is a multiple of 3 points (2 fen)
GIFT_PRICE = 300
PENDING = dt.timedelta(days=7)
_run = itertools.count()


@dataclass
class MLot:
    seq: int
    owner: int  # index into the machine's customers
    remaining: int
    earned_at: dt.datetime
    available_at: dt.datetime
    expires_at: dt.datetime | None

    def spend_key(self):
        return (self.expires_at is None, self.expires_at or self.earned_at, self.earned_at, self.seq)


@dataclass
class MEarn:
    tx_id: int
    lot_seq: int
    earned: int
    quarters: int = 0  # refunded share of the bill, in quarters
    clawed: int = 0
    settled: int = 0  # points the refunds settled in money (the caller's record, passed back as `settled`)


class PointsMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        n = next(_run)
        self.T = timezone.now().replace(microsecond=0)
        self.chain = ChainFactory()
        clinic_a, clinic_b = ClinicFactory(chain=self.chain), ClinicFactory(chain=self.chain)
        desk = StaffFactory(chain=self.chain, role=Role.FRONT_DESK, clinics=[clinic_a], user__username=f"h3desk{n}")
        self.admin_scope = scope_for_staff(StaffFactory(chain=self.chain, role=Role.CHAIN_ADMIN))
        self.token = token_create(username=desk.user.username)
        self.client = Client()
        self.customers = [CustomerFactory(chain=self.chain, home_clinic=clinic_a, stage=Stage.TREATED)
                          for _ in range(3)]
        self.other_clinic = CustomerFactory(chain=self.chain, home_clinic=clinic_b, stage=Stage.TREATED)
        tier = TierFactory(plan=PlanFactory(chain=self.chain), rank=1, points_multiplier=MULTIPLIER)
        MembershipFactory(customer=self.customers[0], tier=tier, started_at=self.T - dt.timedelta(days=30))
        EarnRuleFactory(chain=self.chain, code="spend", points_per_yuan=RATE, pending_days=7, validity_months=12)
        EarnRuleFactory(chain=self.chain, code="spend_special", points_per_yuan=Decimal(0),
                        special_price=SpecialPrice.SPECIAL)
        EarnRuleFactory(chain=self.chain, code="referral", trigger=EarnTrigger.REFERRAL, points_per_yuan=0,
                        points=1000, pending_days=0, validity_months=12)
        EarnRuleFactory(chain=self.chain, code="review", trigger=EarnTrigger.REVIEW, points_per_yuan=0, points=50,
                        pending_days=0, validity_months=None)
        RedeemSettingsFactory(chain=self.chain, points_per_yuan=REDEEM_RATE, max_share_bp=1000)
        self.regular = ServiceItemFactory(chain=self.chain, code=f"CL{n}", category=Category.CLEANING)
        self.special = ServiceItemFactory(chain=self.chain, code=f"SP{n}", category=Category.CLEANING,
                                          is_special_price=True)
        self.gift = GiftFactory(chain=self.chain, points_price=GIFT_PRICE, stock=1000)
        self.merged: set[int] = set()
        self.merged_into: dict[int, int] = {}
        self.lots: list[MLot] = []
        self.heirs: dict[int, int] = {}  # model lot seq → the lot a merge moved it into
        self.earns: list[MEarn] = []
        self.referrals: dict[int, tuple[int, dict]] = {}  # friend → (referrer, first answer)
        self.reviews: dict[str, int] = {}  # service key → customer
        self.redeems: dict[str, tuple[int, int, int]] = {}  # key → (customer, points, transaction id)
        self.seq = itertools.count()
        self.keys = itertools.count()
        self.snapshot = self._ledger_rows()

    # --- helpers ---------------------------------------------------------------------------------------------
    def live(self) -> list[int]:
        return [i for i in range(len(self.customers)) if i not in self.merged]

    def owner(self, i: int) -> int:
        while i in self.merged_into:
            i = self.merged_into[i]
        return i

    def heir(self, seq: int) -> int:
        while seq in self.heirs:
            seq = self.heirs[seq]
        return seq

    def lot(self, seq: int) -> MLot:
        return next(lot for lot in self.lots if lot.seq == seq)

    def spendable(self, i: int) -> list[MLot]:
        return sorted((lot for lot in self.lots if lot.owner == i and lot.remaining > 0 and lot.available_at <= self.T
                       and (lot.expires_at is None or lot.expires_at > self.T)), key=MLot.spend_key)

    def available(self, i: int) -> int:
        return sum(lot.remaining for lot in self.spendable(i))

    def take(self, i: int, amount: int, first: MLot | None = None) -> None:
        if first is not None:
            part = min(amount, first.remaining)
            first.remaining -= part
            amount -= part
        for lot in self.spendable(i):
            part = min(amount, lot.remaining)
            lot.remaining -= part
            amount -= part
        assert amount == 0

    def new_lot(self, i: int, amount: int, earned_at, available_at, expires_at) -> MLot:
        lot = MLot(next(self.seq), i, amount, earned_at, available_at, expires_at)
        self.lots.append(lot)
        return lot

    def api(self, method: str, url: str, body=None, *, key: str | None = None, **params):
        headers = {"Authorization": f"Bearer {self.token}"}
        if key:
            headers["Idempotency-Key"] = key
        if method == "get":
            return self.client.get(url, params, headers=headers)
        return self.client.post(url, data=json.dumps(body), content_type="application/json", headers=headers)

    def _ledger_rows(self):
        txs = {t[0]: t for t in LedgerTransaction.objects.filter(chain=self.chain).values_list(
            "id", "idempotency_key", "fingerprint", "reason", "source", "memo", "reverses_id", "reversed_share",
            "created_at")}
        entries = {e[0]: e for e in Entry.objects.filter(transaction__chain=self.chain).values_list(
            "id", "transaction_id", "account_id", "lot_id", "amount")}
        lots = {lot[0]: lot for lot in Lot.objects.filter(account__chain=self.chain).values_list(
            "id", "account_id", "amount", "earned_at", "available_at", "expires_at", "moved_from_id")}
        return txs, entries, lots

    def refused_4xx(self, response, status: int, code: str | None = None) -> None:
        assert response.status_code == status, response.content
        body = response.json()
        assert body.get("message"), body
        if code:
            assert body["code"] == code, body

    # --- earning on paid bills ---------------------------------------------------------------------------------
    @rule(i=st.integers(0, 2), lines=st.lists(st.tuples(st.integers(1, 300_000), st.booleans(),
                                                          st.sampled_from([None, 0, 1, 2])), min_size=1, max_size=3))
    def earn_on_a_paid_bill(self, i, lines):
        """lines: (amount fen, special price?, paid share: None = all in money, else quarters paid in money)."""
        if i not in self.merged:
            self.earn(i, lines)

    @initialize(amounts=st.lists(st.integers(20_000, 300_000), min_size=3, max_size=3))
    def each_customer_had_a_bill_eight_days_ago(self, amounts):
        for i, amount in enumerate(amounts):
            self.earn(i, [(amount, False, None)])
        self.T += PENDING + dt.timedelta(days=1)

    def earn(self, i, lines):
        customer = self.customers[i]
        order = order_with(customer, [(self.special if special else self.regular, amount)
                                      for amount, special, _ in lines])
        db_lines = list(order.lines.order_by("id"))
        paid = None
        if any(q is not None for _, _, q in lines):
            paid = {line.id: line.amount_fen if q is None else line.amount_fen * q // 4
                    for line, (_, _, q) in zip(db_lines, lines, strict=True)}
        tx = points_earn_for_order(order=order, paid_fen_by_line=paid, at=self.T)
        multiplier = MULTIPLIER if i == 0 else Decimal(1)
        expected = sum(int((Decimal(paid[line.id] if paid else amount) * RATE * multiplier / 100)
                           .to_integral_value(ROUND_FLOOR))
                       for line, (amount, special, _) in zip(db_lines, lines, strict=True) if not special)
        if expected == 0:
            assert tx is None
            return
        assert tx is not None and tx.idempotency_key == f"order:{order.id}:earn"
        lot = self.new_lot(i, expected, self.T, self.T + PENDING, day_end(add_months(self.T, 12)))
        self.earns.append(MEarn(tx.id, lot.seq, expected))
        # a replay (a retried checkout) returns the first movement and earns nothing more
        assert points_earn_for_order(order=order, paid_fen_by_line=paid, at=self.T).id == tx.id

    @rule(i=st.integers(0, 2), bad=st.sampled_from([-1, "1.5", "huge", "float", "bool"]))
    def earning_on_bad_paid_amounts_is_refused(self, i, bad):
        if i in self.merged:
            return
        order = order_with(self.customers[i], [(self.regular, 10_000)])
        line = order.lines.get()
        value = {-1: -1, "1.5": Decimal("1.5"), "huge": 10**15, "float": 100.0, "bool": True}[bad]
        with pytest.raises(ValidationFailed) as refused:
            points_earn_for_order(order=order, paid_fen_by_line={line.id: value}, at=self.T)
        assert refused.value.errors[0].field == f"paid_fen_by_line[{line.id}]"

    # --- referral and review awards -----------------------------------------------------------------------------
    @rule(i=st.integers(0, 2), friend=st.integers(0, 4))
    def referral_awarded_through_the_api(self, i, friend):
        """The referrer is rewarded once per referred friend: the award is keyed by the friend, so the same friend
        claimed again (a retry) is a replay, and claimed for another referrer is refused."""
        url = f"/api/loyalty/customers/{self.customers[i].id}/points/award"
        response = self.api("post", url, {"rule_code": "referral", "source": f"referral:friend{friend}"},
                            key=f"referral-friend-{friend}")
        if friend in self.referrals:
            referrer, first = self.referrals[friend]
            if referrer == i:
                assert response.status_code == 201 and response["Idempotent-Replayed"] == "true"
                assert response.json() == first
            else:
                self.refused_4xx(response, 409, "idempotency_key_reused")
            return
        if i in self.merged:  # a merged duplicate earns nothing
            assert 400 <= response.status_code < 500, response.content
            assert response.json().get("message")
            return
        assert response.status_code == 201, response.content
        self.new_lot(i, 1000, self.T, self.T, day_end(add_months(self.T, 12)))
        self.referrals[friend] = (i, response.json())
        assert response.json()["balance"] == sum(lot.remaining for lot in self.lots if lot.owner == i)

    @rule(i=st.integers(0, 2), review=st.integers(0, 3))
    def review_awarded_by_the_service(self, i, review):
        key = f"review:{review}"
        before = LedgerTransaction.objects.filter(chain=self.chain).count()
        if i in self.merged:  # a merged duplicate is written nothing, not even a replay of its own award
            with pytest.raises(AccountClosed) as refused:
                points_award(customer=self.customers[i], rule_code="review", key=key, at=self.T)
            assert refused.value.status == 409
        elif key in self.reviews and self.reviews[key] != i:
            with pytest.raises(Conflict) as refused:
                points_award(customer=self.customers[i], rule_code="review", key=key, at=self.T)
            assert refused.value.code == "idempotency_key_reused"
        elif key in self.reviews:
            points_award(customer=self.customers[i], rule_code="review", key=key, at=self.T)
        else:
            points_award(customer=self.customers[i], rule_code="review", key=key, at=self.T)
            self.new_lot(i, 50, self.T, self.T, None)
            self.reviews[key] = i
            before += 1
        assert LedgerTransaction.objects.filter(chain=self.chain).count() == before

    # --- spending ------------------------------------------------------------------------------------------------
    @rule(i=st.integers(0, 2), points=st.one_of(st.integers(1, 1500).map(lambda n: 3 * n),
                                                 st.sampled_from([0, -3, 1, 3 * 10**14])),
          replay=st.sampled_from([None, "same", "other"]), bill=st.integers(0, 2_000_000))
    def redeem(self, i, points, replay, bill):
        if i in self.merged:
            return
        key = f"bill-{next(self.keys)}"
        customer = self.customers[i]
        # the quote: at most 10% of the bill and what is available, rounded down to whole fen (3 points = 2 fen)
        fen = min(bill * 1000 // 10000, self.available(i) * 100 // REDEEM_RATE) // 2 * 2
        assert points_redeem_quote(customer=customer, bill_fen=bill) == (fen * REDEEM_RATE // 100, fen)
        if points <= 0 or points % 3:
            with pytest.raises(ValidationFailed) as refused:
                points_redeem(customer=customer, points=points, key=key, source="order:x")
            assert refused.value.errors[0].field == "points"
            return
        if points > self.available(i):
            with pytest.raises(InsufficientPoints):
                points_redeem(customer=customer, points=points, key=key, source="order:x")
            return
        tx = points_redeem(customer=customer, points=points, key=key, source="order:x")
        self.take(i, points)
        if replay == "same":
            assert points_redeem(customer=customer, points=points, key=key, source="order:x").id == tx.id
        elif replay == "other":
            with pytest.raises(Conflict) as refused:
                points_redeem(customer=customer, points=points + 3, key=key, source="order:x")
            assert refused.value.code == "idempotency_key_reused"

    @rule(i=st.integers(0, 2), quantity=st.integers(1, 3))
    def gift_exchange_through_the_api(self, i, quantity):
        if i in self.merged:
            return
        response = self.api("post", f"/api/loyalty/customers/{self.customers[i].id}/gift-exchanges",
                            {"gift_id": self.gift.id, "quantity": quantity}, key=f"gift-{next(self.keys)}")
        if GIFT_PRICE * quantity > self.available(i):
            self.refused_4xx(response, 422, "insufficient_points")
            return
        assert response.status_code == 201, response.content
        self.take(i, GIFT_PRICE * quantity)
        assert response.json()["points_available"] == self.available(i)

    # --- refunds of an earning bill -----------------------------------------------------------------------------
    @precondition(lambda self: self.earns)
    @rule(pick=st.integers(0, 100), quarters=st.integers(1, 4), replay=st.booleans())
    def refund_of_an_earning_bill_claws_back(self, pick, quarters, replay):
        self.refund(self.earns[pick % len(self.earns)], quarters, replay)

    @precondition(lambda self: self.earns)
    @rule(pick=st.integers(0, 100), quarters=st.integers(1, 4))
    def the_points_a_bill_earned_are_spent_then_it_is_refunded(self, pick, quarters):
        """The member spends all their spendable points (in whole fen), then the bill is refunded: what is left of its
        points is taken back, the rest is converted at the redeem rate, rounded up to the fen."""
        earn = self.earns[pick % len(self.earns)]
        holder = self.owner(self.lot(earn.lot_seq).owner)
        points = self.available(holder) // 3 * 3
        if points:
            points_redeem(customer=self.customers[holder], points=points, key=f"bill-{next(self.keys)}",
                          source="order:y")
            self.take(holder, points)
        self.refund(earn, quarters, replay=False)

    def refund(self, earn: MEarn, quarters: int, replay: bool) -> None:
        if earn.quarters == 4:
            return
        earn.quarters = min(4, earn.quarters + quarters)
        share = Fraction(earn.quarters, 4)
        tx = LedgerTransaction.objects.get(pk=earn.tx_id)
        with transaction.atomic():
            accounts_lock(Entry.objects.filter(transaction_id=tx.pk).values_list("account_id", flat=True))
            plan = points_clawback_plan(earn=tx, share=share, settled=earn.settled)
            posted = points_clawback_post(plan, key=f"refund-{earn.tx_id}-{earn.quarters}") if plan else None
        # the model: round_half_up(earned × share) due in all, less what was clawed back or settled before
        target = (2 * earn.earned * share.numerator + share.denominator) // (2 * share.denominator)
        due = max(0, target - earn.clawed - earn.settled)
        if not due:
            assert plan is None
            return
        holder = self.owner(self.lot(earn.lot_seq).owner)
        own = self.lot(self.heir(earn.lot_seq))
        assert own.owner == holder
        own_spendable = own in self.spendable(holder)
        takeable = own.remaining + self.available(holder) - (own.remaining if own_spendable else 0)
        points = min(due, takeable)
        shortfall = due - points
        assert (plan.earned, plan.clawed_before, plan.points, plan.shortfall_points) == (
            earn.earned, earn.clawed, points, shortfall)
        assert plan.shortfall_fen == -(-shortfall * 100 // REDEEM_RATE)  # rounded up to the fen
        if points:
            assert posted is not None and posted.reason == EntryReason.CLAWBACK
            self.take(holder, points, first=own)
            if replay:  # the same refund sent again takes nothing more
                again = points_clawback_post(plan, key=f"refund-{earn.tx_id}-{earn.quarters}")
                assert again.id == posted.id
        else:
            assert posted is None
        earn.clawed += points
        earn.settled += shortfall

    # --- time -----------------------------------------------------------------------------------------------------
    @rule(days=st.sampled_from([1, 6, 7, 8, 29, 31, 100, 200, 370]), expire=st.booleans())
    def time_passes(self, days, expire):
        self.T += dt.timedelta(days=days)
        if not expire:
            return
        due = [lot for lot in self.lots if lot.remaining > 0 and lot.expires_at is not None
               and lot.expires_at <= self.T]
        assert lots_expire(chain_id=self.chain.id, as_of=self.T) == len(due)
        for lot in due:
            lot.remaining = 0
        assert lots_expire(chain_id=self.chain.id, as_of=self.T) == 0  # the job run again: nothing more

    # --- merge ------------------------------------------------------------------------------------------------------
    @precondition(lambda self: not self.merged)
    @rule(survivor=st.integers(0, 1))
    def merge_the_duplicate(self, survivor):
        """Customer 2 is a duplicate of `survivor`: the balances add up, each lot carried on with its dates."""
        customer_merge(scope=self.admin_scope, survivor=self.customers[survivor], merged=self.customers[2],
                       reason="duplicate")
        for lot in [lot for lot in self.lots if lot.owner == 2 and lot.remaining > 0]:
            moved = self.new_lot(survivor, lot.remaining, lot.earned_at, lot.available_at, lot.expires_at)
            self.heirs[lot.seq] = moved.seq
            lot.remaining = 0
        for lot in self.lots:
            if lot.owner == 2:
                lot.owner = survivor
        self.merged.add(2)
        self.merged_into[2] = survivor

    # --- bad input through the API ---------------------------------------------------------------------------------
    @rule(case=st.sampled_from(["quantity0", "quantity-1", "quantity1.5", "quantity-huge", "gift-unknown",
                                "gift-text", "award-empty", "award-spend-rule", "award-unknown", "customer-unknown",
                                "other-clinic", "quote-negative", "quote-fraction"]))
    def bad_input_is_a_4xx_with_a_message(self, case):
        base = f"/api/loyalty/customers/{self.customers[0].id}"
        key = f"bad-{next(self.keys)}"
        gift = {"gift_id": self.gift.id}
        calls = {
            "quantity0": (f"{base}/gift-exchanges", gift | {"quantity": 0}, 422),
            "quantity-1": (f"{base}/gift-exchanges", gift | {"quantity": -1}, 422),
            "quantity1.5": (f"{base}/gift-exchanges", gift | {"quantity": 1.5}, 422),
            "quantity-huge": (f"{base}/gift-exchanges", gift | {"quantity": 10**12}, 422),
            "gift-unknown": (f"{base}/gift-exchanges", {"gift_id": 10**9}, 404),
            "gift-text": (f"{base}/gift-exchanges", {"gift_id": "toothbrush"}, 422),
            "award-empty": (f"{base}/points/award", {"rule_code": ""}, 422),
            "award-spend-rule": (f"{base}/points/award", {"rule_code": "spend"}, 422),
            "award-unknown": (f"{base}/points/award", {"rule_code": "nope"}, 422),
            "customer-unknown": ("/api/loyalty/customers/999999999/points/award", {"rule_code": "review"}, 404),
            "other-clinic": (f"/api/loyalty/customers/{self.other_clinic.id}/points/award", {"rule_code": "review"},
                             404),
        }
        if case.startswith("quote"):
            response = self.api("get", f"{base}/points/redeem-quote",
                                bill_fen="-1" if case == "quote-negative" else "1.5")
            self.refused_4xx(response, 422)
            return
        url, body, status = calls[case]
        self.refused_4xx(self.api("post", url, body, key=key), status)

    # --- invariants -------------------------------------------------------------------------------------------------
    @invariant()
    def points_equal_the_model(self):
        for i in self.live():
            customer = self.customers[i]
            mine = [lot for lot in self.lots if lot.owner == i and lot.remaining > 0]
            live = [lot for lot in mine if lot.expires_at is None or lot.expires_at > self.T]
            expected = {
                "balance": sum(lot.remaining for lot in mine),
                "available": sum(lot.remaining for lot in live if lot.available_at <= self.T),
                "pending": sum(lot.remaining for lot in live if lot.available_at > self.T),
                "expiring": sum(lot.remaining for lot in mine if lot.expires_at is not None
                                and self.T < lot.expires_at <= self.T + dt.timedelta(days=30)),
            }
            summary = points_summary(customer, at=self.T)
            assert {"balance": summary.balance, "available": summary.available, "pending": summary.pending,
                    "expiring": summary.expiring_soon} == expected, i
            assert points_available(customer, at=self.T) == expected["available"]
            # the open lots, in the order they are spent
            db_lots = Lot.objects.filter(account__customer=customer, account__closed_at__isnull=True,
                                         account__kind=AccountKind.POINTS, remaining__gt=0)
            db_order = sorted(db_lots, key=lambda lot: (lot.expires_at is None, lot.expires_at or lot.earned_at,
                                                        lot.earned_at, lot.id))
            assert [(lot.remaining, lot.available_at, lot.expires_at) for lot in db_order] == [
                (lot.remaining, lot.available_at, lot.expires_at) for lot in sorted(mine, key=MLot.spend_key)], i
        # what the API answers for the first customer
        body = self.api("get", f"/api/loyalty/customers/{self.customers[0].id}/points").json()
        summary = points_summary(self.customers[0], at=self.T)
        assert (body["balance"], body["available"], body["pending"], body["expiring_within_30_days"]) == (
            summary.balance, summary.available, summary.pending, summary.expiring_soon)
        # nothing of value left on the merged record's closed accounts
        for i in self.merged:
            assert not Account.objects.filter(customer=self.customers[i], balance__gt=0).exists()

    @invariant()
    def the_ledger_is_append_only_and_reconciles(self):
        txs, entries, lots = self._ledger_rows()
        old_txs, old_entries, old_lots = self.snapshot
        assert {k: txs.get(k) for k in old_txs} == old_txs
        assert {k: entries.get(k) for k in old_entries} == old_entries
        assert {k: lots.get(k) for k in old_lots} == old_lots
        self.snapshot = (txs, entries, lots)
        assert ledger_check(chain_id=self.chain.id) == []


@pytest.mark.django_db
def test_random_points_histories_match_the_model_and_keep_the_ledger_append_only():
    machine_clock: list[PointsMachine] = []
    real_now = timezone.now

    def clock():
        return machine_clock[-1].T if machine_clock else real_now()

    class Clocked(PointsMachine):
        def __init__(self):
            machine_clock.clear()
            super().__init__()
            machine_clock.append(self)

    with mock.patch("django.utils.timezone.now", clock):
        run_state_machine_as_test(Clocked, settings=settings(
            max_examples=15, stateful_step_count=25, deadline=None, derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]))


# --- a bill whose lines earned on different terms ------------------------------------------------------------------


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cleaning=st.integers(100, 99_999), exam=st.integers(100, 99_999), spend_share=st.integers(0, 4),
       steps=st.lists(st.integers(1, 7), min_size=1, max_size=7, unique=True).map(sorted))
@example(cleaning=300, exam=100, spend_share=4, steps=[1])  # 3 points spent, 1 pending: ⅐ back took 1 from nowhere
def test_partial_refunds_of_a_bill_earning_two_lots_claw_back_the_rounded_share_and_never_more(
        chain, clinic_a, rules, catalogue, now, cleaning, exam, spend_share, steps):
    """A bill whose cleaning earned an immediately spendable lot (a category rule) and whose exam earned a pending
    one: the member spends part of the first, then the bill is refunded in sevenths. After each refund the points taken
    back plus those settled in money are round_half_up(earned × share); the pending lot pays back for the spent one
    (README), so only what the member no longer holds at all is settled in money; the books reconcile."""
    from smileloop.loyalty.tests.conftest import patient

    EarnRule = type(rules["spend"])
    if not EarnRule.objects.filter(chain=chain, code="cleaning_now").exists():
        EarnRuleFactory(chain=chain, code="cleaning_now", category=Category.CLEANING, points_per_yuan=Decimal(1),
                        pending_days=0, validity_months=6)
    member = patient(chain, clinic_a, "多批积分")
    order = order_with(member, [(catalogue["CL01"], cleaning), (catalogue["EX01"], exam)])
    earn = points_earn_for_order(order=order, at=now)
    earned_now, earned_pending = cleaning // 100, exam // 100
    earned = earned_now + earned_pending
    assert Lot.objects.filter(account__customer=member).count() == 2
    spent = earned_now * spend_share // 4 // 3 * 3  # the default terms: 100 points a yuan, whole points
    if spent:
        points_redeem(customer=member, points=spent, key=f"spend-{member.id}", source="order:z")
    clawed = settled = 0
    for sevenths in steps:
        share = Fraction(sevenths, 7)
        with transaction.atomic():
            plan = points_clawback_plan(earn=earn, share=share, settled=settled)
            if plan is not None:
                points_clawback_post(plan, key=f"refund-{member.id}-{sevenths}")
        target = (2 * earned * sevenths + 7) // 14
        due = target - clawed - settled
        if due == 0:
            assert plan is None
            continue
        held = earned - spent - clawed
        assert (plan.points, plan.shortfall_points) == (min(due, held), due - min(due, held))
        clawed += plan.points
        settled += plan.shortfall_points
        assert clawed + settled == target
        summary = points_summary(member, at=now)
        assert summary.balance == earned - spent - clawed
        assert -sum(Entry.objects.filter(transaction__reverses=earn, account__kind=AccountKind.POINTS_ISSUED)
                    .values_list("amount", flat=True)) == -clawed
        for lot in Lot.objects.filter(account__customer=member):
            assert 0 <= lot.remaining <= lot.amount
        assert ledger_check(chain_id=chain.id) == []
    if steps[-1] == 7:  # refunded in full: nothing of the bill's points is left with the member
        assert clawed + settled == earned and points_summary(member, at=now).balance == 0


# --- PostgreSQL: concurrent writers -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_one_redeem_key_sent_at_once_with_two_amounts_redeems_once(chain, wang, rules, now):
    postgres_only()
    # given 1,000 points available
    points_award(customer=wang, rule_code="referral", key="r1", at=now - dt.timedelta(days=1))

    # when eight terminals send one deduction key at once, half for 300 points and half for 600
    def writer(i):
        points = 600 if i % 2 else 300
        try:
            return [(points, points_redeem(customer=wang, points=points, key="bill-1", source="order:1").pk)]
        except Conflict as exc:
            return [(points, exc.code)]

    outcomes, errors = writers_run(writer, 8)
    # then one deduction: the copies with its amount are answered with it, the others refused naming the key
    assert errors == []
    tx = LedgerTransaction.objects.get(reason=EntryReason.REDEEM)
    spent = 1000 - points_available(wang)
    assert spent in (300, 600)
    assert sorted(outcomes) == sorted([(spent, tx.pk)] * 4 + [(900 - spent, "idempotency_key_reused")] * 4)
    books_balance(chain)


@pytest.mark.django_db(transaction=True)
def test_a_copy_that_looked_up_its_key_before_the_first_committed_is_answered_with_the_first(chain, wang, rules, now):
    postgres_only()
    # given 1,000 points available
    points_award(customer=wang, rule_code="referral", key="r1", at=now - dt.timedelta(days=1))
    reached = threading.Event()

    def after_key_lookup(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "idempotency_key" in sql and LedgerTransaction._meta.db_table in sql and not reached.is_set():
            reached.set()  # the copy has looked its key up (and found nothing): the first lands now
            time.sleep(1.0)
        return result

    def copy():
        with connection.execute_wrapper(after_key_lookup):
            return points_redeem(customer=wang, points=600, key="bill-1", source="order:1")

    # when a copy of a 600-point deduction looks its key up just before the first send commits
    out = race(copy, lambda: points_redeem(customer=wang, points=600, key="bill-1", source="order:1"), reached)

    # then the copy is answered with the first deduction, not refused for the 400 points the first one left
    assert "first_error" not in out and "then_error" not in out, out
    assert out["first"].pk == out["then"].pk
    assert points_available(wang) == 400
    assert LedgerTransaction.objects.filter(reason=EntryReason.REDEEM).count() == 1
    books_balance(chain)


@pytest.mark.django_db(transaction=True)
def test_a_refund_racing_a_deduction_of_the_points_the_bill_earned_never_loses_a_point(chain, wang, rules, catalogue,
                                                                                      now):
    postgres_only()
    # given a 1,000-yuan bill eight days ago that earned 1,000 points, now spendable, and nothing else
    order = order_with(wang, [(catalogue["CL01"], 100_000)])
    tx = points_earn_for_order(order=order, at=now - dt.timedelta(days=8))
    assert points_available(wang) == 1000

    # when the bill is refunded in full while the member spends 900 of its points at another terminal
    def writer(i):
        if i == 0:
            try:
                points_redeem(customer=wang, points=900, key="spend", source="order:2")
                return [("spent", 900)]
            except InsufficientPoints:
                return [("spent", 0)]
        with transaction.atomic():
            accounts_lock(Entry.objects.filter(transaction_id=tx.pk).values_list("account_id", flat=True))
            plan = points_clawback_plan(earn=tx, share=Fraction(1))
            points_clawback_post(plan, key="refund")
        return [("clawed", plan.points), ("shortfall", plan.shortfall_points)]

    outcomes, errors = writers_run(writer, 2)
    # then either the spend came first (100 taken back, 900 settled in money) or the refund did (all 1,000 taken
    # back, the spend refused): every point is accounted for, none twice
    assert errors == []
    result = dict(outcomes)
    assert (result["spent"], result["clawed"], result["shortfall"]) in ((900, 100, 900), (0, 1000, 0))
    assert points_available(wang) == 0
    books_balance(chain)
