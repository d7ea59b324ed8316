"""What the money paths' concurrency tests share (checkout, loyalty, gift cards): they run on PostgreSQL only, and end
by checking that the books balance."""

import pytest
from django.db import connection
from django.db.models import Sum

from smileloop.ledger.models import Account, Entry, Lot
from smileloop.ledger.selectors import ledger_check


def postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers with row locks are exercised on PostgreSQL (SQLite serialises writers)")


def books_balance(chain) -> None:
    """Every account's balance is the sum of its entries, a holder's also of its lots; no lot is negative; the
    ledger's own check is clean."""
    for account in Account.objects.filter(chain=chain):
        entries = Entry.objects.filter(account=account).aggregate(s=Sum("amount"))["s"] or 0
        assert account.balance == entries, account
        if account.customer_id or account.code:
            lots = Lot.objects.filter(account=account).aggregate(s=Sum("remaining"))["s"] or 0
            assert account.balance == lots >= 0, account
    assert not Lot.objects.filter(account__chain=chain, remaining__lt=0).exists()
    assert ledger_check(chain_id=chain.id) == []
