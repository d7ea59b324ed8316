"""Posting to the ledger. `ledger_post_many` is the only function that writes entries; `ledger_post` posts
one transaction through it.

Concurrency: accounts are locked with SELECT … FOR UPDATE in id order (no deadlocks between two
postings) on PostgreSQL; SQLite serialises writers (transactions start IMMEDIATE). Balances change
only through UPDATE … SET balance = balance + delta statements, and the database refuses a
negative holder balance (and a negative lot), so even a bug here cannot overdraw an account.

Batches: `ledger_post_many` posts the movements of one business event (the tenders and earned points of a
bill) as separate transactions — each balanced, with its own idempotency key and fingerprint, replayed on its
own — in one database transaction: every account locked at once (id order), one idempotency look-up, one
INSERT of the transactions and one of the entries, one balance UPDATE. Lots are taken and credited request
by request in the given order, exactly as consecutive `ledger_post` calls would (a later request sees what an
earlier one took), so the result is the same as posting them one by one; all or nothing.
"""

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from fractions import Fraction

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_noop

from smileloop.clinics.models import Staff
from smileloop.core.errors import Conflict, DomainError, FieldError, ValidationFailed
from smileloop.core.sql import db_datetime, in_clause, select_model, select_models, select_rows
from smileloop.customers.models import Customer
from smileloop.ledger.enums import (
    HOLDER_KINDS,
    SYSTEM_KINDS,
    AccountKind,
    EntryReason,
    expiry_account_kind,
    unit_of,
)
from smileloop.ledger.memos import REVERSES
from smileloop.ledger.models import Account, Entry, LedgerTransaction, Lot


class InsufficientBalance(DomainError):
    code = "insufficient_balance"
    status = 422


@dataclass(frozen=True)
class LotTerms:
    """Terms of a new lot: when it was earned, becomes spendable and expires, and (a merge) the lot it carries on."""

    earned_at: dt.datetime | None = None
    available_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    moved_from: int | None = None


@dataclass
class Posting:
    """One side of a movement. amount > 0 credits the account, < 0 debits it.

    Debits of holder accounts take the exact `take` lot amounts first (lot id → amount, whether the
    lot is available or not: expiry, merge, clawback), then the oldest-expiring available lots.
    Credits put amounts back into `restore` lots (reversal of a debit), then create one lot with
    `terms` — or several with `split_terms` (a transfer keeps each lot's dates).
    """

    account: Account
    amount: int
    terms: LotTerms = field(default_factory=LotTerms)
    take: dict[int, int] = field(default_factory=dict)
    restore: dict[int, int] = field(default_factory=dict)
    split_terms: list[tuple[int, LotTerms]] = field(default_factory=list)  # credit as several lots (transfers)


def account_for(*, chain_id: int, kind: str, customer: Customer | int | None = None, code: str | None = None) -> Account:
    """The open account of this kind for a customer or code (created on first use), or the chain's system account."""
    customer_id = customer if isinstance(customer, int) or customer is None else customer.id
    if kind in SYSTEM_KINDS:
        customer_id, code = None, None
    lookup = {"chain_id": chain_id, "kind": kind, "customer_id": customer_id, "code": code}
    if code is None:
        lookup["closed_at"] = None
    where, params = ["t0.chain_id = %s", "t0.kind = %s"], [chain_id, kind]
    for column, value in (("customer_id", customer_id), ("code", code)):
        where.append(f"t0.{column} IS NULL" if value is None else f"t0.{column} = %s")
        params += [] if value is None else [value]
    if code is None:
        where.append("t0.closed_at IS NULL")
    account = select_model(Account, " AND ".join(where), params)
    if account:
        return account
    if customer_id is None and code is None:
        _system_accounts_create(chain_id)
        return Account.objects.get(**lookup)
    if customer_id is not None:
        _customer_merged_refuse(customer_id)
    try:
        with transaction.atomic():
            return Account.objects.create(chain_id=chain_id, kind=kind, unit=unit_of(kind), customer_id=customer_id,
                                          code=code)
    except IntegrityError:
        return Account.objects.get(**lookup)


def _system_accounts_create(chain_id: int) -> None:
    """Create every system account of a chain that is missing, in ONE statement, in kind order. Created one by
    one on first use, two concurrent transactions could each hold one new row of the unique index and wait for
    the other's (a deadlock seen between two first checkouts); one ordered INSERT … ON CONFLICT DO NOTHING makes
    the second simply wait for the first to commit."""
    Account.objects.bulk_create([Account(chain_id=chain_id, kind=kind, unit=unit_of(kind)) for kind in
                                 sorted(SYSTEM_KINDS)], ignore_conflicts=True)


def system_account(*, chain_id: int, kind: str) -> Account:
    if kind not in SYSTEM_KINDS:
        raise ValueError(f"{kind} is not a system account kind")
    return account_for(chain_id=chain_id, kind=kind)


def accounts_for(*, chain_id: int, customer: Customer | int | None = None, kinds=(), system_kinds=()
                 ) -> dict[str, Account]:
    """`account_for` of several kinds at once: the customer's open accounts of `kinds` and the chain's system
    accounts of `system_kinds`, by kind, in one query (each missing one is created as account_for does)."""
    customer_id = customer if isinstance(customer, int) or customer is None else customer.id
    kinds = [k for k in kinds if k not in SYSTEM_KINDS] if customer_id is not None else []
    system_kinds = list(system_kinds) + [k for k in kinds if k in SYSTEM_KINDS]
    if not kinds and not system_kinds:
        return {}
    system_in, params = in_clause("t0.kind", system_kinds)
    wanted = f"(t0.customer_id IS NULL AND {system_in})"
    if kinds:
        kinds_in, kind_params = in_clause("t0.kind", kinds)
        wanted += f" OR (t0.customer_id = %s AND {kinds_in})"
        params += [customer_id, *kind_params]
    found = {a.kind: a for a in select_models(
        Account, f"t0.chain_id = %s AND t0.code IS NULL AND t0.closed_at IS NULL AND ({wanted})", [chain_id, *params])}
    for kind in [*kinds, *system_kinds]:
        if kind not in found:
            found[kind] = account_for(chain_id=chain_id, kind=kind,
                                      customer=None if kind in SYSTEM_KINDS else customer_id)
    return found


@dataclass
class PostRequest:
    """One transaction to post: the arguments of `ledger_post`. `refusal` is the InsufficientBalance subclass
    raised (with `refusal_field`) when a holder account of this request lacks available funds, so a caller
    batching several requests still gets its own typed error (e.g. loyalty's InsufficientPoints)."""

    chain_id: int
    key: str
    reason: str
    postings: list[Posting]
    actor: Staff | None = None
    source: str = ""
    memo: str = ""
    at: dt.datetime | None = None
    reverses: LedgerTransaction | None = None
    reversed_share: str = ""
    refusal: type = None  # an InsufficientBalance subclass; None: InsufficientBalance
    refusal_field: str = "amount"
    refusal_label: str = ""  # "points" → "Not enough points: 5 available, 10 needed"


def _fingerprint(postings: list[Posting], reason: str) -> str:
    canon = sorted((p.account.id, p.amount) for p in postings)
    return hashlib.sha256(json.dumps([reason, canon]).encode()).hexdigest()


def _validate(chain_id: int, postings: list[Posting]) -> None:
    errors: list[FieldError] = []
    if not postings:
        errors.append(FieldError("postings", "a transaction needs at least two postings"))
    units = set()
    for i, p in enumerate(postings):
        if not isinstance(p.amount, int) or isinstance(p.amount, bool) or p.amount == 0:
            errors.append(FieldError(f"postings[{i}].amount", "must be a non-zero whole number", str(p.amount)))
        if p.account.chain_id != chain_id:
            errors.append(FieldError(f"postings[{i}].account", "belongs to another chain", str(p.account.id)))
        if p.account.closed_at is not None and p.amount > 0:
            errors.append(FieldError(f"postings[{i}].account", "is closed", str(p.account.id)))
        units.add(p.account.unit)
    if len(units) > 1:
        errors.append(FieldError("postings", "mixes units; post points and money as separate transactions"))
    if not errors and sum(p.amount for p in postings) != 0:
        errors.append(FieldError("postings", "do not balance (the amounts must sum to zero)"))
    if errors:
        raise ValidationFailed(errors)


def available_balance(account: Account, *, at: dt.datetime | None = None) -> int:
    """What can be spent now: lots that are available and not expired."""
    return available_balances([account], at=at)[account.id]


def available_balances(accounts: list[Account], *, at: dt.datetime | None = None) -> dict[int, int]:
    """`available_balance` of several accounts in one query: account id → what can be spent now."""
    at = db_datetime(at or timezone.now())
    accounts_in, params = in_clause("account_id", [a.id for a in accounts])
    rows = select_rows(f"SELECT account_id, SUM(remaining) FROM {Lot._meta.db_table} WHERE {accounts_in} "
                       "AND remaining > 0 AND available_at <= %s AND (expires_at IS NULL OR expires_at > %s) "
                       "GROUP BY account_id", [*params, at, at])
    return {a.id: 0 for a in accounts} | {account_id: int(s) for account_id, s in rows}


def _spendable_lots(account: Account, at: dt.datetime):
    return Lot.objects.filter(account=account, remaining__gt=0, available_at__lte=at).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=at))


def ledger_post(*, chain_id: int, key: str, reason: str, postings: list[Posting], actor: Staff | None = None,
                source: str = "", memo: str = "", at: dt.datetime | None = None,
                reverses: LedgerTransaction | None = None, reversed_share: str = "") -> LedgerTransaction:
    """Post one balanced transaction. Idempotent on `key`: a replay returns the first transaction and
    changes nothing; the same key with different postings is a Conflict. Raises InsufficientBalance
    (nothing written) when a holder account lacks available funds. The accounts passed in the postings are
    left holding their new balances."""
    return ledger_post_many([PostRequest(chain_id=chain_id, key=key, reason=reason, postings=postings, actor=actor,
                                         source=source, memo=memo, at=at, reverses=reverses,
                                         reversed_share=reversed_share)])[0]


@dataclass
class _Checked:
    request: PostRequest
    fingerprint: str
    at: dt.datetime


def ledger_post_many(requests: list[PostRequest]) -> list[LedgerTransaction]:
    """Post several balanced transactions, all or nothing, with the result of calling `ledger_post` for each in
    order (see the module docstring): each is idempotent on its own key (a replay returns its first transaction;
    the same key with other postings is a Conflict), and a holder account lacking funds raises the request's
    `refusal` (InsufficientBalance by default) with nothing written. Returns the transactions in order."""
    checked: list[_Checked] = []
    seen: set[tuple[int, str]] = set()
    for r in requests:
        if r.reason not in EntryReason.values:
            raise ValidationFailed([FieldError("reason", f"must be one of {', '.join(EntryReason.values)}", r.reason)])
        if not r.key or len(r.key) > 200:
            raise ValidationFailed([FieldError("key", "an idempotency key of 1–200 characters is required", r.key)])
        if (r.chain_id, r.key) in seen:
            raise ValidationFailed([FieldError("key", "is used twice in one batch", r.key)])
        seen.add((r.chain_id, r.key))
        _validate(r.chain_id, r.postings)
        checked.append(_Checked(r, _fingerprint(r.postings, r.reason), r.at or timezone.now()))
    if not checked:
        return []
    try:
        return _post_many(checked)
    except IntegrityError as exc:
        # Either a concurrent twin with these keys committed first, or the database refused a negative
        # balance or lot: our savepoint is rolled back, so we can look again.
        existing = [_replay(c.request.chain_id, c.request.key, c.fingerprint) for c in checked]
        if all(existing):
            return existing
        constraint = integrity_constraint(exc)
        if constraint in _BALANCE_CONSTRAINTS:
            first = next((c.request for c in checked if c.request.refusal), checked[0].request)
            raise (first.refusal or InsufficientBalance)("Balance would go negative",
                                                         field=first.refusal_field) from exc
        if constraint == "ledger_unique_key" or any(existing):
            # another batch took some of these keys in the meantime: those keys now name other movements
            raise Conflict("an idempotency key of this movement was used by another one at the same moment",
                           code="idempotency_key_reused") from exc
        raise  # anything else is a fault, not the customer's balance: say so instead of "not enough"


_BALANCE_CONSTRAINTS = {"ledger_holder_balance_non_negative", "ledger_lot_remaining_valid"}
_CONSTRAINT_NAMES = _BALANCE_CONSTRAINTS | {"ledger_unique_key", "ledger_entry_non_zero"}


def integrity_constraint(exc: IntegrityError) -> str | None:
    """The constraint an IntegrityError names, or None: psycopg reports any (diag.constraint_name); of SQLite's
    message, which holds a CHECK's name and a UNIQUE's columns, the ledger's own are read."""
    diag = getattr(exc.__cause__, "diag", None)
    if diag is not None and diag.constraint_name:
        return diag.constraint_name
    text = str(exc)
    for name in _CONSTRAINT_NAMES:
        if name in text:
            return name
    if f"{LedgerTransaction._meta.db_table}.idempotency_key" in text:
        return "ledger_unique_key"
    return None


class _Tables:
    account = Account._meta.db_table
    tx = LedgerTransaction._meta.db_table
    lot = Lot._meta.db_table
    entry = Entry._meta.db_table


def _placeholders(n: int) -> str:
    return ", ".join(["%s"] * n)


def accounts_lock(account_ids) -> None:
    """Lock these accounts now, in id order, in one statement (inside the caller's transaction). For an operation
    that posts several transactions one after another (a checkout refund reverses each tender on its own): locking
    each one's accounts as it goes took the chain's shared accounts (SALES, POINTS_ISSUED) in an order a
    concurrent bill paying all at once did not, and the two deadlocked."""
    ids = sorted(set(account_ids))
    if not ids or not connection.features.has_select_for_update:
        return
    with connection.cursor() as cur:
        cur.execute(f"SELECT id FROM {_Tables.account} WHERE id IN ({_placeholders(len(ids))}) ORDER BY id FOR UPDATE",
                    ids)
        cur.fetchall()


@transaction.atomic
def _post_many(checked: list[_Checked]) -> list[LedgerTransaction]:
    """The hot path, in plain SQL (the ORM's per-query compilation cost more than the database work — see
    docs/benchmarks.md): lock, idempotency look-up, transactions, lots, entries, balances."""
    ids = sorted({p.account.id for c in checked for p in c.request.postings})
    lock = " FOR UPDATE OF a" if connection.features.has_select_for_update else ""
    results: list[LedgerTransaction | None] = [None] * len(checked)
    with connection.cursor() as cur:
        # An account of a record merged away counts as closed even if it is open: one opened at the instant of the
        # merge (after the merge closed the record's accounts, before it committed) would otherwise take credits.
        cur.execute(f"SELECT a.id, a.kind, a.balance, a.closed_at, c.merged_into_id FROM {_Tables.account} a "
                    f"LEFT JOIN {Customer._meta.db_table} c ON c.id = a.customer_id "
                    f"WHERE a.id IN ({_placeholders(len(ids))}) ORDER BY a.id{lock}", ids)
        rows = cur.fetchall()
        locked = {row[0]: (row[1], row[2]) for row in rows}
        closed = {row[0] for row in rows if row[3] is not None or row[4] is not None}
        if len(locked) != len(ids):
            raise ValidationFailed([FieldError("postings", "names an account that does not exist")])
        existing: dict[tuple[int, str], tuple[int, str]] = {}
        for chain_id in sorted({c.request.chain_id for c in checked}):
            keys = [c.request.key for c in checked if c.request.chain_id == chain_id]
            cur.execute(f"SELECT idempotency_key, id, fingerprint FROM {_Tables.tx} WHERE chain_id = %s "
                        f"AND idempotency_key IN ({_placeholders(len(keys))})", [chain_id, *keys])
            existing.update({(chain_id, key): (tx_id, fp) for key, tx_id, fp in cur.fetchall()})
        fresh: list[int] = []
        for i, c in enumerate(checked):
            row = existing.get((c.request.chain_id, c.request.key))
            if row is None:
                fresh.append(i)
            elif row[1] != c.fingerprint:
                raise Conflict(f"idempotency key {c.request.key!r} was already used for a different movement",
                               code="idempotency_key_reused")
        if len(fresh) < len(checked):  # replays (a twin committed while we waited for the locks, or a plain replay)
            found = LedgerTransaction.objects.in_bulk([row[0] for row in existing.values()])
            for i, c in enumerate(checked):
                row = existing.get((c.request.chain_id, c.request.key))
                if row is not None:
                    results[i] = found[row[0]]
        if not fresh:
            _balances_set(checked, locked, {})
            return results
        if closed:
            _closed_credits_refuse([checked[i] for i in fresh], closed)
        adapt = connection.ops.adapt_datetimefield_value
        values = []
        for i in fresh:
            r = checked[i].request
            values += [r.chain_id, r.key, checked[i].fingerprint, r.reason, r.actor.id if r.actor else None,
                       r.source[:100], r.memo[:255], r.reverses.id if r.reverses else None, r.reversed_share,
                       adapt(checked[i].at)]
        cur.execute(f"INSERT INTO {_Tables.tx} (chain_id, idempotency_key, fingerprint, reason, actor_id, source, "
                    f"memo, reverses_id, reversed_share, created_at) VALUES "
                    + ", ".join([f"({_placeholders(10)})"] * len(fresh)) + " RETURNING id, chain_id, idempotency_key",
                    values)
        tx_ids = {(chain_id, key): tx_id for tx_id, chain_id, key in cur.fetchall()}
        entries: list[tuple[int, int, int | None, int]] = []  # (transaction, account, lot, amount)
        deltas: dict[int, int] = {}
        prefetched = _spendable_lots_prefetch(cur, [checked[i] for i in fresh], locked)
        taken: dict[int, int] = {}  # lot → amount taken from a prefetched lot, written in one UPDATE below
        for i in fresh:
            c = checked[i]
            r = c.request
            tx_id = tx_ids[(r.chain_id, r.key)]
            at_db = adapt(c.at)
            refusal = r.refusal or InsufficientBalance
            for p in r.postings:
                account_id = p.account.id
                deltas[account_id] = deltas.get(account_id, 0) + p.amount
                if locked[account_id][0] not in HOLDER_KINDS:
                    parts = [(None, p.amount)]
                elif p.amount < 0 and account_id in prefetched:
                    parts = _take_lots(prefetched[account_id], p.account, -p.amount, taken, refusal,
                                       r.refusal_field, r.refusal_label)
                elif p.amount < 0:
                    parts = _debit_lots(cur, p.account, -p.amount, p.take, at_db, refusal, r.refusal_field,
                                        r.refusal_label)
                else:
                    parts = _credit_lots(cur, account_id, p, c.at)
                entries += [(tx_id, account_id, lot_id, amount) for lot_id, amount in parts]
            results[i] = _transaction(tx_id, c)
        _add_many(cur, _Tables.lot, "remaining", {lot_id: -amount for lot_id, amount in taken.items()})
        cur.execute(f"INSERT INTO {_Tables.entry} (transaction_id, account_id, lot_id, amount) VALUES "
                    + ", ".join(["(%s, %s, %s, %s)"] * len(entries)), [v for entry in entries for v in entry])
        _add_many(cur, _Tables.account, "balance", {account_id: delta for account_id, delta in deltas.items() if delta})
    _balances_set(checked, locked, deltas)
    return results


class AccountClosed(Conflict):
    code = "account_closed"


ACCOUNT_CLOSED = gettext_noop("This customer's record was merged into another and nothing was written: write it to "
                              "the surviving record")


def _closed_credits_refuse(fresh: list[_Checked], closed: set[int]) -> None:
    """A new credit to an account closed by a customer merge is refused, read under the lock: the caller found the
    account open, a merge moved its balance to the survivor and closed it while this posting waited for the lock, and
    the credit would have stayed on the closed account, out of everyone's reach. (A replay of a credit posted before
    the merge is still answered: it is not fresh.)"""
    for c in fresh:
        if any(p.amount > 0 and p.account.id in closed for p in c.request.postings):
            raise AccountClosed(ACCOUNT_CLOSED, field="customer")


def _customer_merged_refuse(customer_id: int) -> None:
    """No new account for a merged record (a tombstone): whatever is posted to it would stay out of everyone's reach,
    as a merge moved the record's balances to the survivor and closed its accounts."""
    if Customer.objects.filter(pk=customer_id, merged_into__isnull=False).exists():
        raise AccountClosed(ACCOUNT_CLOSED, field="customer")


def _balances_set(checked: list[_Checked], locked: dict[int, tuple[str, int]], deltas: dict[int, int]) -> None:
    """The callers' account objects now hold the balances just written (the lock read the current ones)."""
    for c in checked:
        for p in c.request.postings:
            p.account.balance = locked[p.account.id][1] + deltas.get(p.account.id, 0)


def _add_many(cur, table: str, column: str, deltas: dict[int, int]) -> None:
    """`column = column + delta` for each row id, in one statement (the CHECK constraints still apply per row)."""
    if len(deltas) == 1:
        (row_id, delta), = deltas.items()
        cur.execute(f"UPDATE {table} SET {column} = {column} + %s WHERE id = %s", [delta, row_id])
    elif deltas:
        cases = " ".join(["WHEN %s THEN CAST(%s AS BIGINT)"] * len(deltas))
        cur.execute(f"UPDATE {table} SET {column} = {column} + CASE id {cases} END "
                    f"WHERE id IN ({_placeholders(len(deltas))})",
                    [v for item in deltas.items() for v in item] + list(deltas))


_SPEND_ORDER = "CASE WHEN expires_at IS NULL THEN 1 ELSE 0 END, expires_at, earned_at, id"  # oldest expiry first


def _spendable_lots_prefetch(cur, fresh: list[_Checked], locked: dict) -> dict[int, list[list[int]]]:
    """The spendable lots (oldest expiry first, as [id, remaining]) of every holder account that this batch only
    debits from its available lots — no credit, no `take` — all at one moment: one query per moment instead of one
    per debit. Other accounts' debits read their lots when they come (a credit earlier in the batch must be seen)."""
    adapt = connection.ops.adapt_datetimefield_value
    moments: dict[int, set] = {}
    excluded: set[int] = set()
    for c in fresh:
        for p in c.request.postings:
            if locked[p.account.id][0] not in HOLDER_KINDS:
                continue
            if p.amount > 0 or p.take:
                excluded.add(p.account.id)
            else:
                moments.setdefault(p.account.id, set()).add(adapt(c.at))
    by_moment: dict = {}
    for account_id, at_dbs in moments.items():
        if account_id not in excluded and len(at_dbs) == 1:
            by_moment.setdefault(next(iter(at_dbs)), []).append(account_id)
    lots: dict[int, list[list[int]]] = {}
    for at_db, account_ids in by_moment.items():
        cur.execute(f"SELECT id, account_id, remaining FROM {_Tables.lot} "
                    f"WHERE account_id IN ({_placeholders(len(account_ids))}) AND remaining > 0 "
                    f"AND available_at <= %s AND (expires_at IS NULL OR expires_at > %s) "
                    f"ORDER BY account_id, {_SPEND_ORDER}", [*account_ids, at_db, at_db])
        for account_id in account_ids:
            lots[account_id] = []
        for lot_id, account_id, remaining in cur.fetchall():
            lots[account_id].append([lot_id, remaining])
    return lots


def _take_lots(lots: list[list[int]], account: Account, amount: int, taken: dict[int, int], refusal, field: str,
               label: str) -> list[tuple[int, int]]:
    """`_debit_lots` over lots already read (`_spendable_lots_prefetch`): take the oldest-expiring first, in
    memory; the caller writes `taken` once. Returns the (lot, −amount) parts."""
    available = sum(remaining for _, remaining in lots)
    if available < amount:
        what = (f"Not enough {label}" if label else
                f"Insufficient {AccountKind(account.kind).label if account.kind in AccountKind.values else 'balance'}")
        raise refusal(f"{what}: {available} available, {amount} needed", field=field)
    parts, left = [], amount
    for lot in lots:
        if not left:
            break
        part = min(left, lot[1])
        if part:
            lot[1] -= part
            taken[lot[0]] = taken.get(lot[0], 0) + part
            parts.append((lot[0], -part))
            left -= part
    return parts


def _transaction(tx_id: int, c: _Checked) -> LedgerTransaction:
    r = c.request
    tx = LedgerTransaction(id=tx_id, chain_id=r.chain_id, idempotency_key=r.key, fingerprint=c.fingerprint,
                           reason=r.reason, actor_id=r.actor.id if r.actor else None, source=r.source[:100],
                           memo=r.memo[:255], reverses_id=r.reverses.id if r.reverses else None,
                           reversed_share=r.reversed_share, created_at=c.at)
    tx._state.adding, tx._state.db = False, "default"
    return tx


def _replay(chain_id: int, key: str, fingerprint: str) -> LedgerTransaction | None:
    tx = LedgerTransaction.objects.filter(chain_id=chain_id, idempotency_key=key).first()
    if tx is None:
        return None
    if tx.fingerprint != fingerprint:
        raise Conflict(f"idempotency key {key!r} was already used for a different movement",
                       code="idempotency_key_reused")
    return tx


def _debit_lots(cur, account: Account, amount: int, take: dict[int, int], at_db, refusal=InsufficientBalance,
                field: str = "amount", label: str = "") -> list[tuple[int, int]]:
    """Take `take` exactly, then the oldest-expiring available lots (expiry first, undated last).
    Returns the (lot, −amount) parts."""
    entries = []
    if take:
        if sum(take.values()) > amount:
            raise ValidationFailed([FieldError("postings", "takes more from lots than the debit")])
        for lot_id, part in take.items():
            cur.execute(f"UPDATE {_Tables.lot} SET remaining = remaining - %s "
                        f"WHERE id = %s AND account_id = %s AND remaining >= %s", [part, lot_id, account.id, part])
            if cur.rowcount != 1:
                raise refusal("A lot has less left than the amount to take", field=field)
            entries.append((lot_id, -part))
        amount -= sum(take.values())
    if not amount:
        return entries
    cur.execute(f"SELECT id, remaining FROM {_Tables.lot} WHERE account_id = %s AND remaining > 0 "
                f"AND available_at <= %s AND (expires_at IS NULL OR expires_at > %s) ORDER BY {_SPEND_ORDER}",
                [account.id, at_db, at_db])
    lots = [(lot_id, remaining) for lot_id, remaining in cur.fetchall() if lot_id not in take]
    available = sum(remaining for _, remaining in lots)
    if available < amount:
        what = (f"Not enough {label}" if label else
                f"Insufficient {AccountKind(account.kind).label if account.kind in AccountKind.values else 'balance'}")
        raise refusal(f"{what}: {available} available, {amount} needed", field=field)
    left = amount
    for lot_id, remaining in lots:
        if not left:
            break
        part = min(left, remaining)
        cur.execute(f"UPDATE {_Tables.lot} SET remaining = remaining - %s WHERE id = %s", [part, lot_id])
        entries.append((lot_id, -part))
        left -= part
    return entries


def _credit_lots(cur, account_id: int, p: Posting, at) -> list[tuple[int, int]]:
    """Put amounts back into `restore` lots, then create the new lot(s). Returns the (lot, amount) parts."""
    entries, left = [], p.amount
    for lot_id, amount in p.restore.items():
        cur.execute(f"UPDATE {_Tables.lot} SET remaining = remaining + %s WHERE id = %s AND account_id = %s",
                    [amount, lot_id, account_id])
        entries.append((lot_id, amount))
        left -= amount
    splits = p.split_terms or ([(left, p.terms)] if left else [])
    if sum(amount for amount, _ in splits) != left:
        raise ValidationFailed([FieldError("postings", "split lots do not add up to the credit")])
    adapt = connection.ops.adapt_datetimefield_value
    for amount, terms in splits:
        cur.execute(f"INSERT INTO {_Tables.lot} (account_id, amount, remaining, earned_at, available_at, expires_at, "
                    f"moved_from_id) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    [account_id, amount, amount, adapt(terms.earned_at or at), adapt(terms.available_at or at),
                     adapt(terms.expires_at), terms.moved_from])
        entries.append((cur.fetchone()[0], amount))
    return entries


def ledger_transfer(*, from_account: Account, to_account: Account, amount: int, key: str,
                    reason: str = EntryReason.TRANSFER, actor: Staff | None = None, source: str = "",
                    memo: str = "") -> LedgerTransaction:
    """Move value between two holder accounts of one kind; the moved lots keep their expiry dates."""
    if from_account.kind != to_account.kind or from_account.kind not in HOLDER_KINDS:
        raise ValidationFailed([FieldError("to_account", "must be a holder account of the same kind")])
    return _transfer(from_account, to_account, amount, key, reason, actor, source, memo)


@transaction.atomic
def _transfer(from_account, to_account, amount, key, reason, actor, source, memo):
    # Rows fetched, not counted: Django drops FOR UPDATE from a count(), which would lock nothing.
    list(Account.objects.select_for_update().filter(id__in=sorted([from_account.id, to_account.id]))
         .order_by("id").values_list("id", flat=True))
    existing = LedgerTransaction.objects.filter(chain_id=from_account.chain_id, idempotency_key=key).first()
    if existing:
        return _replay(from_account.chain_id, key, existing.fingerprint)
    at = timezone.now()
    lots = list(_spendable_lots(from_account, at).order_by(F("expires_at").asc(nulls_last=True), "earned_at", "id"))
    splits, take, left = [], {}, amount
    for lot in lots:
        if not left:
            break
        part = min(left, lot.remaining)
        splits.append((part, LotTerms(lot.earned_at, lot.available_at, lot.expires_at)))
        take[lot.id] = part
        left -= part
    if left:
        raise InsufficientBalance(f"Insufficient balance to transfer: {amount - left} available, {amount} needed",
                                  field="amount")
    return ledger_post(chain_id=from_account.chain_id, key=key, reason=reason, actor=actor, source=source, memo=memo,
                       postings=[Posting(from_account, -amount, take=take),
                                 Posting(to_account, amount, split_terms=splits)], at=at)


@transaction.atomic
def ledger_reverse(*, original: LedgerTransaction, key: str, upto: Fraction = Fraction(1),
                   reason: str = EntryReason.REVERSAL, actor: Staff | None = None,
                   memo: str = "") -> LedgerTransaction | None:
    """Reverse a transaction so that, after this call, `upto` of it (cumulative, 0 < upto ≤ 1) is undone.

    Partial refunds pass the refunded share of the bill so far (e.g. 1/3, then 1): each step reverses
    what the cumulative target adds, so rounding never drifts and a full refund undoes exactly
    everything. Amounts round to whole units with the largest-remainder method (the reversal still
    balances). Debited lots get their amounts back (expiry unchanged); credited lots are taken back
    first. Returns None when the step rounds to nothing. Idempotent on `key`.
    """
    upto = Fraction(upto)
    if not (0 < upto <= 1):
        raise ValidationFailed([FieldError("upto", "must be a share between 0 and 1", str(upto))])
    # Idempotent on `key`, as every posting is: the same reversal sent again returns the first transaction (it was
    # refused as "less than already reversed"); the key used for another reversal is a conflict.
    existing = LedgerTransaction.objects.filter(chain_id=original.chain_id, idempotency_key=key).first()
    if existing is not None:
        if existing.reverses_id != original.id or existing.reversed_share != f"{upto.numerator}/{upto.denominator}":
            raise Conflict(f"idempotency key {key!r} was already used for a different movement",
                           code="idempotency_key_reused")
        return existing
    entries = list(original.entries.select_related("account").order_by("id"))
    target = _round_balanced([(e.id, -e.amount * upto.numerator, upto.denominator) for e in entries])
    already = _reversed_per_entry(original, entries)
    if upto <= _last_share(original):
        raise ValidationFailed([FieldError("upto", "is less than what was already reversed", str(upto))])
    moved = [e.lot_id for e in entries if e.lot_id and e.account.closed_at is not None and e.account.kind in HOLDER_KINDS]
    heirs = lot_heirs(moved) if moved else {}
    lots_left = dict(Lot.objects.filter(id__in=[e.lot_id for e in entries if e.lot_id] + list(heirs.values()))
                     .values_list("id", "remaining"))
    takes = _credited_lots_take(entries, {e.id: target[e.id] - already[e.id] for e in entries}, lots_left, heirs)
    postings: list[Posting] = []
    for e in entries:
        amount = target[e.id] - already[e.id]
        if amount == 0:
            continue
        if e.account.closed_at is not None and e.account.kind in HOLDER_KINDS:
            # The holder was merged into another customer: the reversal lands on the survivor's account,
            # taking back from the lot the merge moved the credit into, or giving back with the original lot's dates.
            successor = _successor_account(e.account)
            if amount < 0:
                postings.append(Posting(successor, amount, take=takes.get(e.id, {})))
                continue
            lot = Lot.objects.filter(pk=e.lot_id).first()
            terms = LotTerms(lot.earned_at, lot.available_at, lot.expires_at) if lot else LotTerms()
            postings.append(Posting(successor, amount, terms=terms))
            continue
        if e.account.kind in HOLDER_KINDS and e.lot_id:
            if amount > 0:
                postings.append(Posting(e.account, amount, restore={e.lot_id: amount}))
            else:
                postings.append(Posting(e.account, amount, take=takes.get(e.id, {})))
        else:
            postings.append(Posting(e.account, amount))
    if not postings:
        return None
    return ledger_post(chain_id=original.chain_id, key=key, reason=reason, postings=_merge_same_account(postings),
                       actor=actor, source=original.source, memo=memo or REVERSES % {"transaction": original.id},
                       reverses=original, reversed_share=f"{upto.numerator}/{upto.denominator}")


def _credited_lots_take(entries: list[Entry], amounts: dict[int, int], lots_left: dict[int, int],
                        heirs: dict[int, int]) -> dict[int, dict]:
    """The lots each credit's take-back comes from (entry id → {lot id: amount}): first the very lot the credit
    created, then the other lots this transaction credited on the same account (a bill whose lines earned on
    different terms made one lot each: a pending one may pay back for a spent one, though nothing else may spend
    it yet), and only then, in ledger_post, the holder's other spendable lots. Without the second step a bill with
    a spent lot and a pending one could not be refunded. A credit to a holder since merged is looked for in the
    lot the merge moved it into (`heirs`, from `lot_heirs`), on the survivor's account. `lots_left` is updated.
    Every lot the transaction credited may pay back, also one whose own credit takes nothing back in this step: the
    rounding of a partial reversal can put the whole step on a spent lot's credit (1 of 3 + 1 points, ¼ back: the 3's
    credit takes the point), and the pending lot must then pay it."""
    sources = [e for e in entries if e.lot_id and e.amount > 0 and e.account.kind in HOLDER_KINDS]
    credits = [e for e in sources if amounts[e.id] < 0]
    home = {e.id: heirs.get(e.lot_id, e.lot_id) if e.account.closed_at is not None else e.lot_id for e in sources}
    takes: dict[int, dict] = {}
    short: dict[int, int] = {}
    for e in credits:
        lot_id = home[e.id]
        part = min(-amounts[e.id], lots_left.get(lot_id, 0))
        lots_left[lot_id] = lots_left.get(lot_id, 0) - part
        takes[e.id] = {lot_id: part} if part else {}
        short[e.id] = -amounts[e.id] - part
    for e in credits:
        for other in sources:
            if not short[e.id]:
                break
            if other.account_id != e.account_id or home[other.id] == home[e.id]:
                continue
            part = min(short[e.id], lots_left.get(home[other.id], 0))
            if part:
                lots_left[home[other.id]] -= part
                takes[e.id][home[other.id]] = takes[e.id].get(home[other.id], 0) + part
                short[e.id] -= part
    return takes


def lot_heirs(lot_ids: list[int]) -> dict[int, int]:
    """Where each of these lots lives on after merges (lot id → the lot a merge moved what was left of it into,
    followed through later merges; itself when never moved). Merges are rare: one query per merge in the chain."""
    heirs = {lot_id: lot_id for lot_id in lot_ids}
    frontier = set(lot_ids)
    while frontier:
        moved = dict(Lot.objects.filter(moved_from_id__in=frontier).values_list("moved_from_id", "id"))
        for lot_id, heir in heirs.items():
            if heir in moved:
                heirs[lot_id] = moved[heir]
        frontier = set(moved.values())
    return heirs


def _successor_account(account: Account) -> Account:
    customer = account.customer
    while customer is not None and customer.merged_into_id:
        customer = customer.merged_into
    if customer is None:
        raise ValidationFailed([FieldError("account", "is closed and has no successor", str(account.id))])
    return account_for(chain_id=account.chain_id, kind=account.kind, customer=customer)


def _last_share(original: LedgerTransaction) -> Fraction:
    shares = original.reversals.exclude(reversed_share="").values_list("reversed_share", flat=True)
    return max((Fraction(s) for s in shares), default=Fraction(0))


def _reversed_per_entry(original: LedgerTransaction, entries: list[Entry]) -> dict[int, int]:
    """What earlier reversals already undid, per original entry. Every reversal brings the cumulative
    total to the rounded target of its share, so the last share says it all (whatever accounts the
    reversals landed on, e.g. a merged customer's successor)."""
    shares = [Fraction(s) for s in original.reversals.exclude(reversed_share="").values_list("reversed_share", flat=True)]
    if not shares:
        return {e.id: 0 for e in entries}
    done = max(shares)
    return _round_balanced([(e.id, -e.amount * done.numerator, done.denominator) for e in entries])


def _round_balanced(parts: list[tuple[int, int, int]]) -> dict[int, int]:
    """Round each numerator/denominator toward zero, then hand the leftover units to the largest remainders,
    so the rounded parts still sum to the exact (integer) total."""
    floors, remainders = {}, []
    for key, num, den in parts:
        q = abs(num) // den
        floors[key] = q if num >= 0 else -q
        remainders.append((abs(num) % den, key, 1 if num >= 0 else -1))
    total_exact = sum(num for _, num, _ in parts) // parts[0][2] if parts else 0
    leftover = total_exact - sum(floors.values())
    for _rem, key, sign in sorted(remainders, key=lambda r: -r[0]):
        if leftover == 0:
            break
        if (leftover > 0 and sign > 0) or (leftover < 0 and sign < 0):
            floors[key] += sign
            leftover -= sign
    return floors


def _merge_same_account(postings: list[Posting]) -> list[Posting]:
    merged: dict[tuple[int, bool], Posting] = {}
    for p in postings:
        k = (p.account.id, p.amount > 0)
        if k in merged:
            m = merged[k]
            m.amount += p.amount
            for lot_id, amount in p.take.items():
                m.take[lot_id] = m.take.get(lot_id, 0) + amount
            for lot_id, amount in p.restore.items():
                m.restore[lot_id] = m.restore.get(lot_id, 0) + amount
        else:
            merged[k] = Posting(p.account, p.amount, take=dict(p.take), restore=dict(p.restore))
    return list(merged.values())


def lots_expire(*, chain_id: int, as_of: dt.datetime | None = None) -> int:
    """Expire every lot past its date: one transaction per account, each lot debited against the
    breakage (or points-expired) account. Idempotent per account and `as_of`. Returns lots expired."""
    as_of = as_of or timezone.now()
    rows = (Lot.objects.filter(account__chain_id=chain_id, remaining__gt=0, expires_at__lte=as_of)
            .values_list("account_id", "id", "remaining").order_by("account_id", "id"))
    by_account: dict[int, dict[int, int]] = {}
    for account_id, lot_id, remaining in rows.iterator(chunk_size=5000):
        by_account.setdefault(account_id, {})[lot_id] = remaining
    count = 0
    accounts = Account.objects.in_bulk(list(by_account))
    for account_id, lots in by_account.items():
        count += _expire_account(accounts[account_id], lots, as_of)
    return count


@transaction.atomic
def _expire_account(account: Account, lots: dict[int, int], as_of: dt.datetime) -> int:
    """The account and its sink are locked together, in id order, before its lots are read again: the account alone
    first, then the sink when posting, took them against the id order whenever the account is younger than the
    sink (a gift card issued after the chain's system accounts), and deadlocked with gift cards' own expiry
    (`giftcards_expire`) voiding the same card in id order."""
    sink = system_account(chain_id=account.chain_id, kind=expiry_account_kind(account.kind))
    accounts_lock([account.id, sink.id])
    fresh = dict(Lot.objects.filter(id__in=list(lots), remaining__gt=0).values_list("id", "remaining"))
    if not fresh:
        return 0  # a concurrent run expired them while this one waited for the lock: not counted twice
    total = sum(fresh.values())
    ledger_post(chain_id=account.chain_id, key=f"expire:{account.id}:{min(fresh)}:{as_of.isoformat()}",
                reason=EntryReason.EXPIRE, source=f"expiry:{timezone.localdate(as_of).isoformat()}", at=as_of,
                postings=[Posting(account, -total, take=fresh), Posting(sink, total)])
    return len(fresh)


def accounts_merge(*, survivor: Customer, merged: Customer) -> None:
    """Merge hook: the merged customer's balances move to the survivor's accounts, each lot into a new lot keeping
    its dates and naming the lot it carries on (`lot_heirs`); emptied accounts are closed. Runs inside
    customer_merge's transaction."""
    accounts = list(Account.objects.filter(customer=merged, code__isnull=True, closed_at__isnull=True).order_by("id"))
    targets = {a.kind: a for a in Account.objects.filter(customer=survivor, code__isnull=True, closed_at__isnull=True,
                                                          kind__in=[a.kind for a in accounts])}
    # Locked (in id order, with the survivor's) before their balances and lots are read: read first, a posting that
    # committed in between (an award at another terminal) was left on the closed account, or its lot made the move
    # take more than the balance read and the merge failed. A posting waiting for these locks meanwhile finds the
    # account closed (ledger_post refuses a credit to it) once the merge commits.
    accounts_lock([a.id for a in accounts] + [t.id for t in targets.values()])
    for account in Account.objects.filter(pk__in=[a.id for a in accounts]).order_by("id"):  # read under the lock
        target = targets.get(account.kind)
        if target is None:
            continue  # the generic merge re-points this account to the survivor
        if account.balance:
            held = list(Lot.objects.filter(account=account, remaining__gt=0).order_by("id"))
            splits = [(lot.remaining, LotTerms(lot.earned_at, lot.available_at, lot.expires_at, moved_from=lot.id))
                      for lot in held]
            ledger_post(chain_id=account.chain_id, key=f"merge:{merged.id}:{account.id}", reason=EntryReason.MERGE,
                        source=f"merge:{merged.id}->{survivor.id}",
                        postings=[Posting(account, -account.balance, take={lot.id: lot.remaining for lot in held}),
                                  Posting(target, account.balance, split_terms=splits)])
        Account.objects.filter(pk=account.pk).update(closed_at=timezone.now())



def erase_obligations(customer: Customer) -> list:
    """What the clinic still owes a person whose personal information is to be erased (customers.privacy): the money
    on their stored-value wallet (the principal they paid in). Points and the top-up bonus were never money of theirs
    and are left on the anonymous record with the erasure."""
    from smileloop.core.money import fen_to_yuan
    from smileloop.customers.privacy import Obligation

    total = sum(Account.objects.filter(customer=customer, kind=AccountKind.WALLET_PRINCIPAL, balance__gt=0)
                .values_list("balance", flat=True))
    return [Obligation("wallet", f"stored value ¥{fen_to_yuan(total)}", total)] if total else []


__all__ = ["AccountKind", "EntryReason", "InsufficientBalance", "LotTerms", "PostRequest", "Posting", "account_for",
           "accounts_for", "available_balance", "available_balances", "ledger_post", "ledger_post_many",
           "ledger_reverse", "ledger_transfer", "lot_heirs", "lots_expire", "system_account"]
