"""`smileloop bench checkout`: checkout_price + checkout_pay of a 5-line bill with a member discount, a gift
card, points and wallet, p50/p95 over N runs on the current database (target p95 ≤ 50 ms).

Reported per bill: wall-clock p50/p95, the process CPU time p50/p95 (`time.process_time`: steadier than wall
time on a shared machine) and the SQL statements sent by price and by pay (median; savepoints included),
counted by a cheap `connection.execute_wrapper` rather than the debug cursor, which would slow every query.

Everything runs inside one transaction that is rolled back at the end, so the current database is left as
it was (the runs themselves use savepoints, as checkout_pay's atomic block nests). On PostgreSQL the tables a
bill writes are VACUUMed before and after: a rolled-back run leaves ~200,000 dead rows behind, and where
autovacuum is off (as on the benchmark VM) each run measured the previous runs' debris — p95 39 ms on a
vacuumed database, 55 ms two runs later, for the same code."""

import statistics
import time
import uuid

from django.apps import apps
from django.db import connection, transaction

from smileloop.checkout.services import checkout_pay, checkout_price
from smileloop.clinics.models import Chain, Clinic
from smileloop.customers.models import Customer
from smileloop.giftcards.models import GiftCardProgramme
from smileloop.giftcards.services import friend_card_issue
from smileloop.ledger.enums import AccountKind, EntryReason
from smileloop.ledger.services import Posting, account_for, ledger_post, system_account
from smileloop.loyalty.services.wallet import wallet_topup
from smileloop.membership.models import Membership, MembershipPlan, Tier
from smileloop.visits.enums import Category
from smileloop.visits.models import ServiceItem

ITEMS = [("B-EX", "口腔检查", Category.EXAM, 5000), ("B-CL", "洁牙", Category.CLEANING, 30000),
         ("B-FI", "树脂补牙", Category.FILLING, 60000), ("B-WH", "美白", Category.WHITENING, 150000),
         ("B-OC", "电动牙刷", Category.ORAL_CARE_PRODUCT, 39900)]


class _Rollback(Exception):
    pass


def _setup(runs: int):
    from django.utils import timezone

    tag = uuid.uuid4().hex[:8]
    chain = Chain.objects.create(name=f"bench-checkout-{tag}")
    clinic = Clinic.objects.create(chain=chain, code=f"B{tag[:6]}", name="bench", city="上海")
    for code, name, cat, price in ITEMS:
        ServiceItem.objects.create(chain=chain, code=code, name=name, category=cat, list_price_fen=price)
    customer = Customer.objects.create(chain=chain, name="压测会员", home_clinic=clinic)
    giver = Customer.objects.create(chain=chain, name="压测赠卡人", home_clinic=clinic)
    plan = MembershipPlan.objects.create(chain=chain, name="bench", kind="spend_based")
    tier = Tier.objects.create(plan=plan, rank=1, name="家庭会员", discount_bp=1200)
    Membership.objects.create(chain=chain, customer=customer, plan=plan, tier=tier, started_at=timezone.now())
    programme = GiftCardProgramme.objects.create(chain=chain, code="bench", name="亲友储值卡", face_value_fen=20000,
                                                 limit_per_period=runs + 10)
    cards = [friend_card_issue(member=giver, programme=programme, trigger="bench", key=f"bench-card-{i}")
             for i in range(runs)]
    ledger_post(chain_id=chain.id, key="bench-points", reason=EntryReason.EARN, postings=[
        Posting(account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=customer), 10**12),
        Posting(system_account(chain_id=chain.id, kind=AccountKind.POINTS_ISSUED), -10**12)])
    wallet_topup(customer=customer, amount_fen=runs * 5000 + 1, method="cash", key="bench-topup")
    return customer, clinic, cards


class _Counter:
    """A connection.execute_wrapper that counts statements (executemany counts once)."""

    def __init__(self):
        self.n = 0

    def __call__(self, execute, sql, params, many, context):
        self.n += 1
        return execute(sql, params, many, context)


_WRITTEN_BY_A_BILL = ("ledger", "checkout", "visits", "giftcards", "loyalty", "membership", "customers", "clinics")


def _vacuum() -> None:
    """VACUUM ANALYZE the tables of the apps a bill writes (PostgreSQL, outside any transaction)."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return
    tables = sorted({m._meta.db_table for label in _WRITTEN_BY_A_BILL
                     for m in apps.get_app_config(label).get_models()})
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE " + ", ".join(connection.ops.quote_name(t) for t in tables))


def _pct(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[int(share * (len(ordered) - 1))]


def checkout_bench(*, runs: int = 200, log=print) -> dict:
    timings: list[float] = []
    cpu: list[float] = []
    price_queries: list[int] = []
    pay_queries: list[int] = []
    counter = _Counter()
    _vacuum()
    try:
        with transaction.atomic(), connection.execute_wrapper(counter):
            customer, clinic, cards = _setup(runs)
            lines = [{"item_code": code, "quantity": 1} for code, *_ in ITEMS]
            for i, card in enumerate(cards):
                counter.n = 0
                start, start_cpu = time.perf_counter(), time.process_time()
                bill = checkout_price(customer=customer, clinic=clinic, lines=lines, gift_cards=[card.code],
                                      points="max", wallet={"amount_fen": 5000})
                priced = counter.n
                checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}],
                             key=f"bench-pay-{i}")
                timings.append((time.perf_counter() - start) * 1000)
                cpu.append((time.process_time() - start_cpu) * 1000)
                price_queries.append(priced)
                pay_queries.append(counter.n - priced)
            raise _Rollback
    except _Rollback:
        pass
    _vacuum()
    timings.sort()
    result = {"runs": runs, "vendor": connection.vendor, "p50_ms": statistics.median(timings),
              "p95_ms": timings[int(0.95 * (len(timings) - 1))], "max_ms": timings[-1],
              "cpu_p50_ms": statistics.median(cpu), "cpu_p95_ms": _pct(cpu, 0.95),
              "price_queries": int(statistics.median(price_queries)), "pay_queries": int(statistics.median(pay_queries))}
    log(f"checkout_price + checkout_pay, 5 lines, member discount + gift card + points + wallet, "
        f"{runs} runs on {connection.vendor}: p50 {result['p50_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms "
        f"(target ≤ 50 ms), max {result['max_ms']:.1f} ms; CPU p50 {result['cpu_p50_ms']:.1f} ms, "
        f"p95 {result['cpu_p95_ms']:.1f} ms; SQL statements per bill: price {result['price_queries']}, "
        f"pay {result['pay_queries']}")
    return result
