"""Eight writers spend from one wallet at once on PostgreSQL: row locks allow no double spend."""

import pytest
from django.db import connection

from smileloop.core.testing import writers_run
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.ledger.enums import AccountKind, EntryReason
from smileloop.ledger.models import LedgerTransaction
from smileloop.ledger.selectors import ledger_check
from smileloop.ledger.services import (
    InsufficientBalance,
    Posting,
    account_for,
    ledger_post,
    ledger_transfer,
    system_account,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_eight_concurrent_spends_never_overdraw_one_wallet(chain, clinic_a):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers with row locks are exercised on PostgreSQL")
    # given a wallet holding 1,000.00 yuan
    holder = CustomerFactory(chain=chain, home_clinic=clinic_a)
    wallet = account_for(chain_id=chain.id, kind=AccountKind.WALLET_PRINCIPAL, customer=holder)
    cash = system_account(chain_id=chain.id, kind=AccountKind.CASH_IN)
    sales = system_account(chain_id=chain.id, kind=AccountKind.SALES)
    ledger_post(chain_id=chain.id, key="topup", reason=EntryReason.TOPUP,
                postings=[Posting(wallet, 100000), Posting(cash, -100000)])
    def writer(i):
        outcomes = []
        for round_ in range(3):
            try:
                ledger_post(chain_id=chain.id, key=f"spend:{i}:{round_}", reason=EntryReason.SPEND,
                            postings=[Posting(wallet, -15000), Posting(sales, 15000)])
                outcomes.append("ok")
            except InsufficientBalance:
                outcomes.append("refused")
        return outcomes

    # when 8 writers try 24 spends of 150.00
    outcomes, errors = writers_run(writer, 8)
    # then exactly six fit, the balance is 100.00 and the books reconcile
    assert errors == []
    assert outcomes.count("ok") == 6 and outcomes.count("refused") == 18
    wallet.refresh_from_db()
    assert wallet.balance == 10000
    assert LedgerTransaction.objects.filter(reason=EntryReason.SPEND).count() == 6
    assert ledger_check(chain_id=chain.id) == []


def test_concurrent_transfers_of_the_whole_balance_move_it_once(chain, clinic_a):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers with row locks are exercised on PostgreSQL")
    # given a wallet holding 300.00 yuan in three lots
    holder = CustomerFactory(chain=chain, home_clinic=clinic_a)
    targets = [CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(6)]
    wallet = account_for(chain_id=chain.id, kind=AccountKind.WALLET_PRINCIPAL, customer=holder)
    cash = system_account(chain_id=chain.id, kind=AccountKind.CASH_IN)
    for n in range(3):
        ledger_post(chain_id=chain.id, key=f"topup:{n}", reason=EntryReason.TOPUP,
                    postings=[Posting(wallet, 10000), Posting(cash, -10000)])

    def writer(i):
        target = account_for(chain_id=chain.id, kind=AccountKind.WALLET_PRINCIPAL, customer=targets[i])
        try:
            ledger_transfer(from_account=wallet, to_account=target, amount=30000, key=f"move:{i}")
            return ["ok"]
        except InsufficientBalance:
            return ["refused"]

    # when six transfers of the whole balance run at once
    outcomes, errors = writers_run(writer, 6)
    # then one moves it, the others find nothing left, and the books reconcile
    assert errors == []
    assert sorted(outcomes) == ["ok"] + ["refused"] * 5
    wallet.refresh_from_db()
    assert wallet.balance == 0
    assert ledger_check(chain_id=chain.id) == []
