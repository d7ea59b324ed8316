"""The ledger's expiry job racing spends of the same account on PostgreSQL (threads behind a barrier, each on its own
connection): an expired lot is voided once, spends take only what is still valid, and the books reconcile. SQLite
serialises writers, so this runs on PostgreSQL only."""

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from smileloop.core.testing import writers_run
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.ledger.enums import AccountKind, EntryReason
from smileloop.ledger.models import LedgerTransaction, Lot
from smileloop.ledger.selectors import ledger_check
from smileloop.ledger.services import (
    InsufficientBalance,
    LotTerms,
    Posting,
    account_for,
    ledger_post,
    lots_expire,
    system_account,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_expiry_job_twice_and_six_spends_at_once_void_the_expired_lot_once_and_never_overdraw(chain, clinic_a):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers with row locks are exercised on PostgreSQL (SQLite serialises writers)")
    # given a bonus of 50.00 that expired yesterday and 100.00 that never expires
    now = timezone.now()
    holder = CustomerFactory(chain=chain, home_clinic=clinic_a)
    bonus = account_for(chain_id=chain.id, kind=AccountKind.WALLET_BONUS, customer=holder)
    promotion = system_account(chain_id=chain.id, kind=AccountKind.PROMOTION)
    sales = system_account(chain_id=chain.id, kind=AccountKind.SALES)
    month_ago = now - dt.timedelta(days=30)
    ledger_post(chain_id=chain.id, key="old", reason=EntryReason.TOPUP_BONUS, at=month_ago,
                postings=[Posting(bonus, 5000, terms=LotTerms(earned_at=month_ago, available_at=month_ago,
                                                              expires_at=now - dt.timedelta(days=1))),
                          Posting(promotion, -5000)])
    ledger_post(chain_id=chain.id, key="new", reason=EntryReason.TOPUP_BONUS,
                postings=[Posting(bonus, 10_000), Posting(promotion, -10_000)])

    # when the expiry job runs twice (by hand and on schedule) while six spends of 30.00 are made
    def writer(i):
        if i < 2:
            return [f"expired {lots_expire(chain_id=chain.id, as_of=now)}"]
        try:
            ledger_post(chain_id=chain.id, key=f"spend-{i}", reason=EntryReason.SPEND,
                        postings=[Posting(bonus, -3000), Posting(sales, 3000)])
            return ["spent"]
        except InsufficientBalance:
            return ["refused"]

    outcomes, errors = writers_run(writer, 8)
    # then the expired 50.00 is voided once, three spends fit in the valid 100.00, and 10.00 is left
    assert errors == []
    # (and the two runs together report the one lot once)
    assert sorted(outcomes) == sorted(["expired 0", "expired 1"] + ["spent"] * 3 + ["refused"] * 3)
    assert LedgerTransaction.objects.filter(reason=EntryReason.EXPIRE).count() == 1
    bonus.refresh_from_db()
    assert bonus.balance == 1000
    assert not Lot.objects.filter(remaining__lt=0).exists()
    assert ledger_check(chain_id=chain.id) == []
