"""`smileloop bench ledger`: posting throughput through the service layer vs. the raw SQL doing the same
(lock both accounts, insert the transaction and two entries, take from a lot, update two balances), with
1 and 8 concurrent writers; and `ledger check` time over a synthetic ledger of N entries.

Runs against the configured database (use a scratch PostgreSQL database: it writes a bench chain).
"""

import random
import threading
import time
import uuid

from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone

from smileloop.clinics.models import Chain
from smileloop.customers.models import Customer
from smileloop.ledger.enums import AccountKind, EntryReason
from smileloop.ledger.models import Account, Entry, LedgerTransaction, Lot
from smileloop.ledger.selectors import ledger_check
from smileloop.ledger.services import LotTerms, Posting, account_for, ledger_post, system_account


def _setup(accounts: int) -> tuple[Chain, list[int], int]:
    chain = Chain.objects.create(name=f"bench-ledger-{uuid.uuid4().hex[:6]}")
    customers = Customer.objects.bulk_create([Customer(chain=chain, name=f"bench{i}") for i in range(accounts)])
    issued = system_account(chain_id=chain.id, kind=AccountKind.POINTS_ISSUED)
    ids = []
    for c in customers:
        acc = account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=c)
        ledger_post(chain_id=chain.id, key=f"seed:{acc.id}", reason=EntryReason.EARN,
                    postings=[Posting(acc, 10_000_000, terms=LotTerms()), Posting(issued, -10_000_000)])
        ids.append(acc.id)
    return chain, ids, system_account(chain_id=chain.id, kind=AccountKind.POINTS_REDEEMED).id


def _service_post(chain_id, account_id, sink_id, key):
    ledger_post(chain_id=chain_id, key=key, reason=EntryReason.REDEEM,
                postings=[Posting(Account(id=account_id, chain_id=chain_id, unit="points", kind="points"), -1),
                          Posting(Account(id=sink_id, chain_id=chain_id, unit="points", kind="points_redeemed"), 1)])


def _raw_post(chain_id, account_id, sink_id, key):
    a, e, t, lot = (Account._meta.db_table, Entry._meta.db_table, LedgerTransaction._meta.db_table,
                    Lot._meta.db_table)
    lock = " FOR UPDATE" if connection.vendor == "postgresql" else ""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(f"SELECT id FROM {a} WHERE id IN (%s, %s) ORDER BY id{lock}", [min(account_id, sink_id),
                                                                                     max(account_id, sink_id)])
        cur.execute(f"SELECT id FROM {lot} WHERE account_id = %s AND remaining > 0 ORDER BY expires_at, id LIMIT 1",
                    [account_id])
        lot_id = cur.fetchone()[0]
        cur.execute(f"INSERT INTO {t} (chain_id, idempotency_key, fingerprint, reason, source, memo, reversed_share, "
                    f"created_at) VALUES (%s, %s, '', 'redeem', '', '', '', %s) RETURNING id",
                    [chain_id, key, connection.ops.adapt_datetimefield_value(timezone.now())])
        tx_id = cur.fetchone()[0]
        cur.execute(f"INSERT INTO {e} (transaction_id, account_id, lot_id, amount) VALUES (%s, %s, %s, -1), "
                    f"(%s, %s, NULL, 1)", [tx_id, account_id, lot_id, tx_id, sink_id])
        cur.execute(f"UPDATE {lot} SET remaining = remaining - 1 WHERE id = %s", [lot_id])
        cur.execute(f"UPDATE {a} SET balance = balance - 1 WHERE id = %s", [account_id])
        cur.execute(f"UPDATE {a} SET balance = balance + 1 WHERE id = %s", [sink_id])


def _throughput(func, chain_id, ids, sink_id, writers: int, seconds: float) -> float:
    counts = [0] * writers
    stop = time.perf_counter() + seconds
    barrier = threading.Barrier(writers)

    def run(w):
        rng = random.Random(w)
        barrier.wait()
        try:
            while time.perf_counter() < stop:
                func(chain_id, rng.choice(ids), sink_id, f"{func.__name__}:{w}:{counts[w]}:{uuid.uuid4().hex[:8]}")
                counts[w] += 1
        finally:
            connections.close_all()

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(w,)) for w in range(writers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sum(counts) / (time.perf_counter() - started)


def _replication_role(cur, role: str) -> bool:
    """SET session_replication_role (superuser only); whether it was set."""
    try:
        cur.execute(f"SET session_replication_role = {role}")
        return True
    except DatabaseError:
        return False


def synthetic_entries(*, chain: Chain, entries: int, accounts: int = 100_000) -> None:
    """Fill the ledger with `entries` balanced entries (PostgreSQL: generate_series, in SQL)."""
    if connection.vendor != "postgresql":
        raise RuntimeError("the synthetic 10M-entry ledger is generated on PostgreSQL")
    a, e, t, lot, c = (Account._meta.db_table, Entry._meta.db_table, LedgerTransaction._meta.db_table,
                       Lot._meta.db_table, Customer._meta.db_table)
    pairs = entries // 2
    sink = system_account(chain_id=chain.id, kind=AccountKind.POINTS_ISSUED)
    with connection.cursor() as cur:
        # The rows are consistent by construction; skip the foreign-key triggers while they are written (as the
        # seed's --bulk does), or the 5M-row INSERTs queue 10M trigger events and take over ten minutes.
        replica = _replication_role(cur, "replica")
        try:
            cur.execute(f"SELECT COALESCE(MAX(id), 0) FROM {c}")
            base = cur.fetchone()[0]
            cur.execute(f"INSERT INTO {c} (id, chain_id, name, mobile_tail, gender, address, community, stage, notes, "
                        "first_touch_channel, first_touch_campaign, last_touch_channel, last_touch_campaign, visit_count, "
                        "lifetime_spend_fen, created_at, updated_at) "
                        f"SELECT {base} + g, %s, 'synthetic', '', 'U', '', '', 'lead', '', '', '', '', '', 0, 0, now(), now() "
                        f"FROM generate_series(1, %s) g", [chain.id, accounts])
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{c}', 'id'), (SELECT MAX(id) FROM {c}))")
            cur.execute(f"INSERT INTO {a} (chain_id, kind, unit, customer_id, balance, created_at) "
                        f"SELECT %s, 'points', 'points', {base} + g, 0, now() FROM generate_series(1, %s) g "
                        f"RETURNING id", [chain.id, accounts])
            ids = [r[0] for r in cur.fetchall()]
            lo, hi = min(ids), max(ids)
            cur.execute(f"INSERT INTO {lot} (account_id, amount, remaining, earned_at, available_at) "
                        f"SELECT id, 0, 0, now(), now() FROM {a} WHERE id BETWEEN %s AND %s", [lo, hi])
            cur.execute(f"SELECT COALESCE(MAX(id), 0) FROM {t}")
            tbase = cur.fetchone()[0]
            cur.execute(f"INSERT INTO {t} (id, chain_id, idempotency_key, fingerprint, reason, source, memo, reversed_share, "
                        f"created_at) SELECT {tbase} + g, %s, 'syn:' || ({tbase} + g), '', 'earn', '', '', '', now() "
                        f"FROM generate_series(1, %s) g", [chain.id, pairs])
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT MAX(id) FROM {t}))")
            cur.execute(f"INSERT INTO {e} (transaction_id, account_id, amount) "
                        f"SELECT {tbase} + g, {lo} + (g %% {len(ids)}), 10 FROM generate_series(1, %s) g", [pairs])
            cur.execute(f"INSERT INTO {e} (transaction_id, account_id, amount) "
                        f"SELECT {tbase} + g, %s, -10 FROM generate_series(1, %s) g", [sink.id, pairs])
            cur.execute(f"UPDATE {a} acc SET balance = s.total FROM (SELECT account_id, SUM(amount) total FROM {e} "
                        f"WHERE transaction_id > {tbase} GROUP BY account_id) s WHERE s.account_id = acc.id AND acc.id "
                        f"BETWEEN %s AND %s", [lo, hi])
            cur.execute(f"UPDATE {a} SET balance = balance - %s WHERE id = %s", [pairs * 10, sink.id])
            cur.execute(f"UPDATE {lot} l SET amount = acc.balance, remaining = acc.balance FROM {a} acc "
                        f"WHERE acc.id = l.account_id AND acc.id BETWEEN %s AND %s", [lo, hi])
        finally:
            if replica:
                _replication_role(cur, "origin")
        cur.execute(f"ANALYZE {e}; ANALYZE {a}; ANALYZE {lot}; ANALYZE {t}")


def run(*, seconds: float = 10, accounts: int = 200, check_entries: int = 0, out=print) -> dict:
    results: dict = {"database": f"{connection.vendor} {'.'.join(map(str, connection.Database.sqlite_version_info)) if connection.vendor == 'sqlite' else connection.cursor().connection.info.server_version}"}
    chain, ids, sink = _setup(accounts)
    for writers in (1, 8):
        service = _throughput(_service_post, chain.id, ids, sink, writers, seconds)
        raw = _throughput(_raw_post, chain.id, ids, sink, writers, seconds)
        results[f"writers_{writers}"] = {"service_per_s": round(service), "raw_per_s": round(raw),
                                         "ratio": round(service / raw, 3)}
        out(f"{writers} writer(s): service {service:,.0f}/s, raw SQL {raw:,.0f}/s, ratio {service / raw:.0%}")
    problems = ledger_check(chain_id=chain.id)
    out(f"ledger check after the run: {'OK' if not problems else problems[:3]}")
    if check_entries:
        started = time.perf_counter()
        synthetic_entries(chain=chain, entries=check_entries)
        out(f"generated {check_entries:,} synthetic entries in {time.perf_counter() - started:.1f} s")
        with connection.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {Entry._meta.db_table}")
            total = cur.fetchone()[0]
        started = time.perf_counter()
        problems = ledger_check()
        elapsed = time.perf_counter() - started
        results["check"] = {"entries": total, "seconds": round(elapsed, 2), "problems": len(problems)}
        out(f"ledger check over {total:,} entries: {elapsed:.1f} s, {len(problems)} problem(s)")
    return results
