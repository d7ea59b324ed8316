"""Property-based (stateful) test: random sequences of earn / spend / refund / expire / transfer / merge
never break the ledger's invariants, and every refused movement changes nothing."""

import datetime as dt
import itertools
from fractions import Fraction

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory, StaffFactory
from smileloop.customers.services import customer_merge
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.ledger.enums import AccountKind, EntryReason
from smileloop.ledger.models import LedgerTransaction
from smileloop.ledger.selectors import ledger_check
from smileloop.ledger.services import (
    InsufficientBalance,
    LotTerms,
    Posting,
    PostRequest,
    account_for,
    available_balance,
    ledger_post,
    ledger_post_many,
    ledger_reverse,
    ledger_transfer,
    lots_expire,
    system_account,
)

_keys = itertools.count()


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.chain = ChainFactory()
        clinic = ClinicFactory(chain=self.chain)
        self.scope = scope_for_staff(StaffFactory(chain=self.chain, role=Role.CHAIN_ADMIN))
        self.customers = [CustomerFactory(chain=self.chain, home_clinic=clinic) for _ in range(3)]
        self.now = timezone.now()
        self.spends: list[tuple[LedgerTransaction, int]] = []  # (transaction, thirds already refunded)

    def points(self, i):
        customer = self.customers[i % len(self.customers)]
        return account_for(chain_id=self.chain.id, kind=AccountKind.POINTS, customer=customer)

    def balances(self):
        return [self.points(i).balance for i in range(len(self.customers))]

    @rule(i=st.integers(0, 2), amount=st.integers(1, 500), days=st.one_of(st.none(), st.integers(1, 60)))
    def earn(self, i, amount, days):
        i %= len(self.customers)
        before = self.balances()
        expires = self.now + dt.timedelta(days=days) if days else None
        ledger_post(chain_id=self.chain.id, key=f"earn{next(_keys)}", reason=EntryReason.EARN, at=self.now, postings=[
            Posting(self.points(i), amount, terms=LotTerms(expires_at=expires)),
            Posting(system_account(chain_id=self.chain.id, kind=AccountKind.POINTS_ISSUED), -amount)])
        after = self.balances()
        assert after[i] == before[i] + amount

    @rule(i=st.integers(0, 2), amount=st.integers(1, 800))
    def spend(self, i, amount):
        i %= len(self.customers)
        before = self.balances()
        available = available_balance(self.points(i), at=self.now)
        try:
            tx = ledger_post(chain_id=self.chain.id, key=f"spend{next(_keys)}", reason=EntryReason.REDEEM, at=self.now,
                             postings=[Posting(self.points(i), -amount),
                                       Posting(system_account(chain_id=self.chain.id,
                                                              kind=AccountKind.POINTS_REDEEMED), amount)])
        except InsufficientBalance:
            assert amount > available
            assert self.balances() == before
            return
        assert amount <= available
        self.spends.append((tx, 0))
        assert self.balances()[i] == before[i] - amount

    @rule(i=st.integers(0, 2), spend=st.integers(1, 800), j=st.integers(0, 2), earn=st.integers(1, 500),
          replay=st.booleans())
    def bill(self, i, spend, j, earn, replay):
        """A batch as checkout posts it: spend one customer's points, then credit points (to the same customer
        or another), two transactions in one ledger_post_many — all or nothing, replayable as a whole."""
        i, j = i % len(self.customers), j % len(self.customers)
        before = self.balances()
        available = available_balance(self.points(i), at=self.now)
        key = next(_keys)
        requests = [
            PostRequest(chain_id=self.chain.id, key=f"bill{key}:spend", reason=EntryReason.REDEEM, at=self.now,
                        postings=[Posting(self.points(i), -spend),
                                  Posting(system_account(chain_id=self.chain.id, kind=AccountKind.POINTS_REDEEMED),
                                          spend)]),
            PostRequest(chain_id=self.chain.id, key=f"bill{key}:earn", reason=EntryReason.EARN, at=self.now,
                        postings=[Posting(self.points(j), earn),
                                  Posting(system_account(chain_id=self.chain.id, kind=AccountKind.POINTS_ISSUED),
                                          -earn)])]
        try:
            spent, _earned = ledger_post_many(requests)
        except InsufficientBalance:
            assert spend > available
            assert self.balances() == before  # the earn was not written either
            return
        assert spend <= available
        self.spends.append((spent, 0))
        expected = list(before)
        expected[i] -= spend
        expected[j] += earn
        assert self.balances() == expected
        if replay:
            count = LedgerTransaction.objects.count()
            assert [t.id for t in ledger_post_many(requests)] == [t.id for t in (spent, _earned)]
            assert LedgerTransaction.objects.count() == count and self.balances() == expected

    @precondition(lambda self: self.spends)
    @rule(pick=st.integers(0, 1000))
    def refund_a_third(self, pick):
        index = pick % len(self.spends)
        tx, thirds = self.spends[index]
        if thirds == 3:
            return
        ledger_reverse(original=tx, key=f"refund{next(_keys)}", upto=Fraction(thirds + 1, 3),
                       reason=EntryReason.REFUND)
        self.spends[index] = (tx, thirds + 1)
        if thirds + 1 == 3:
            # fully refunded: the spend and its reversals cancel out exactly on every system account, and
            # the holder got everything back (on the survivor's account if the holder was merged meanwhile)
            net: dict[tuple, int] = {}
            for t in [tx, *tx.reversals.all()]:
                for account_id, customer_id, amount in t.entries.values_list("account_id", "account__customer_id",
                                                                             "amount"):
                    k = ("holder",) if customer_id else ("system", account_id)
                    net[k] = net.get(k, 0) + amount
            assert set(net.values()) == {0}

    @rule(days=st.integers(1, 40))
    def time_passes_and_lots_expire(self, days):
        self.now += dt.timedelta(days=days)
        lots_expire(chain_id=self.chain.id, as_of=self.now)

    @rule(src=st.integers(0, 2), dst=st.integers(0, 2), amount=st.integers(1, 300))
    def transfer(self, src, dst, amount):
        src, dst = src % len(self.customers), dst % len(self.customers)
        if src == dst:
            return
        total = sum(self.balances())
        try:
            ledger_transfer(from_account=self.points(src), to_account=self.points(dst), amount=amount,
                            key=f"transfer{next(_keys)}")
        except InsufficientBalance:
            pass
        assert sum(self.balances()) == total

    @precondition(lambda self: len(self.customers) > 1)
    @rule()
    def merge_last_into_first(self):
        total = sum(self.balances())
        merged = self.customers.pop()
        customer_merge(scope=self.scope, survivor=self.customers[0], merged=merged)
        assert sum(self.balances()) == total

    @invariant()
    def books_reconcile(self):
        assert ledger_check(chain_id=self.chain.id) == []
        assert all(b >= 0 for b in self.balances())


@pytest.mark.django_db
def test_random_sequences_keep_the_ledger_reconciled():
    run_state_machine_as_test(LedgerMachine, settings=settings(
        max_examples=20, stateful_step_count=20, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]))
