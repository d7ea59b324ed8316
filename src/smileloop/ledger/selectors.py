"""Reads over the ledger: balances, lots and the reconciliation (`ledger_check`)."""

import datetime as dt
from dataclasses import dataclass

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from smileloop.customers.models import Customer
from smileloop.ledger.enums import HOLDER_KINDS
from smileloop.ledger.models import Account, Entry, Lot


def accounts_for_customer(customer: Customer) -> QuerySet[Account]:
    return Account.objects.filter(customer=customer, code__isnull=True, closed_at__isnull=True).order_by("kind")


def lots_open(account: Account) -> QuerySet[Lot]:
    return account.lots.filter(remaining__gt=0).order_by("expires_at", "id")


def lots_expiring(account: Account, *, within: dt.timedelta, now: dt.datetime | None = None) -> QuerySet[Lot]:
    now = now or timezone.now()
    return lots_open(account).filter(expires_at__gt=now, expires_at__lte=now + within)


def entries_for_account(account: Account, *, limit: int = 100) -> QuerySet[Entry]:
    return account.entries.select_related("transaction", "lot").order_by("-id")[:limit]


def transaction_size(tx) -> int:
    """What a balanced transaction moved: the sum of its credits (its debits sum to the same)."""
    return sum(e.amount for e in tx.entries.all() if e.amount > 0)


def pending_balance(account: Account, *, at: dt.datetime | None = None) -> int:
    at = at or timezone.now()
    return sum(account.lots.filter(remaining__gt=0, available_at__gt=at).values_list("remaining", flat=True))


def expired_unprocessed(account: Account, *, at: dt.datetime | None = None) -> QuerySet[Lot]:
    at = at or timezone.now()
    return account.lots.filter(Q(remaining__gt=0), Q(expires_at__lte=at))


@dataclass
class Problem:
    kind: str
    detail: str


def ledger_check(*, chain_id: int | None = None) -> list[Problem]:
    """Reconcile in SQL (set-based; no Python loop over entries):
    1. every account's balance equals the sum of its entries;
    2. every holder account's balance equals the sum of its lots' remaining amounts;
    3. every transaction's entries sum to zero;
    4. for each unit, all accounts together sum to zero (holders' liabilities = system accounts' counterpart);
    5. no holder balance or lot is negative.
    """
    a, e, lot, tx = (Account._meta.db_table, Entry._meta.db_table, Lot._meta.db_table,
                     Entry._meta.get_field("transaction").related_model._meta.db_table)
    where_a = "WHERE a.chain_id = %s" if chain_id else ""
    params = [chain_id] if chain_id else []
    holder = ", ".join(f"'{k}'" for k in sorted(HOLDER_KINDS))
    checks = [
        ("balance_vs_entries",
         f"SELECT a.id, a.balance, COALESCE(s.total, 0) FROM {a} a LEFT JOIN "
         f"(SELECT e.account_id, SUM(e.amount) AS total FROM {e} e "
         + (f"JOIN {a} a2 ON a2.id = e.account_id WHERE a2.chain_id = %s " if chain_id else "")
         + f"GROUP BY e.account_id) s ON s.account_id = a.id "
         f"{where_a} {'AND' if where_a else 'WHERE'} a.balance <> COALESCE(s.total, 0)", params * 2),
        ("balance_vs_lots",
         f"SELECT a.id, a.balance, COALESCE(s.total, 0) FROM {a} a LEFT JOIN "
         f"(SELECT l.account_id, SUM(l.remaining) AS total FROM {lot} l "
         + (f"JOIN {a} a2 ON a2.id = l.account_id WHERE a2.chain_id = %s " if chain_id else "")
         + f"GROUP BY l.account_id) s ON s.account_id = a.id "
         f"WHERE a.kind IN ({holder}) {'AND a.chain_id = %s' if chain_id else ''} AND a.balance <> COALESCE(s.total, 0)",
         params * 2),
        ("unbalanced_transaction",
         f"SELECT e.transaction_id, SUM(e.amount), 0 FROM {e} e "
         + (f"JOIN {tx} t ON t.id = e.transaction_id WHERE t.chain_id = %s " if chain_id else "")
         + "GROUP BY e.transaction_id HAVING SUM(e.amount) <> 0", params),
        ("unit_total_not_zero",
         f"SELECT a.unit, SUM(a.balance), 0 FROM {a} a {where_a} GROUP BY a.unit HAVING SUM(a.balance) <> 0", params),
        ("negative_holder_balance",
         f"SELECT a.id, a.balance, 0 FROM {a} a WHERE a.kind IN ({holder}) AND a.balance < 0"
         + (" AND a.chain_id = %s" if chain_id else ""), params),
    ]
    problems: list[Problem] = []
    with connection.cursor() as cursor:
        for name, sql, args in checks:
            cursor.execute(sql, args)
            for row in cursor.fetchmany(100):
                problems.append(Problem(name, f"{row[0]}: {row[1]} ≠ {row[2]}"))
    return problems
