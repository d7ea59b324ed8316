"""Writes of the demo app: seed a synthetic chain (`chain_seed`) and the demo chain with logins (`demo_create`).

`chain_seed` is deterministic for a (seed, today) pair: the same arguments give the same people,
phones and bills whatever ids the database hands out. Rows are generated and written in chunks of
`chunk_size` customers with their whole history, so memory stays flat from 200 to 1,000,000
customers. Each chunk commits on its own: an interrupted seed leaves whole customers, never half
of one. The seed is meant for an empty or demo database; it assigns primary keys itself (from
max(id) + 1), so nothing else may insert into the same tables while it runs.
"""

import datetime as dt
import math
import multiprocessing as mp
import os
import random
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.db import connection, connections, transaction
from django.utils import timezone

from smileloop.checkout.services import checkout_pay, checkout_price
from smileloop.clinics.enums import Role
from smileloop.clinics.models import Chain, Clinic, Staff
from smileloop.clinics.services import staff_create
from smileloop.core.bounds import EARLIEST_RECORD_DATE
from smileloop.customers.enums import Channel, IdentityKind, InteractionKind, Relation
from smileloop.customers.models import Customer, HouseholdMember, Interaction
from smileloop.customers.services import customer_upsert, household_member_add
from smileloop.demo import data
from smileloop.demo.generate import (
    COLUMNS,
    ClinicCtx,
    Ids,
    Item,
    PoolGenerator,
    community_ring,
)
from smileloop.demo.load import Loader, columns_check
from smileloop.followups import demo as followups_demo
from smileloop.followups.enums import TaskStatus
from smileloop.followups.models import FollowupTask, Playbook
from smileloop.giftcards.enums import ProgrammeKind, VoucherValueKind
from smileloop.giftcards.models import GiftCard, GiftCardProgramme, Voucher, VoucherCampaign
from smileloop.giftcards.services import (
    FRIEND_CARD_ACTION,
    friend_card_issue_for_benefit,
    giftcard_holder_register,
    voucher_issue,
)
from smileloop.ledger.enums import AccountKind
from smileloop.ledger.models import Account
from smileloop.lifecycle import demo as lifecycle_demo
from smileloop.loyalty.models import PackagePurchase
from smileloop.loyalty.services import loyalty_demo_programme
from smileloop.membership.enums import BenefitTrigger, MembershipStatus, PlanKind
from smileloop.membership.models import Benefit, Membership, Tier
from smileloop.membership.services import benefit_reveal, benefits_reveal_due, membership_demo_programme
from smileloop.segments import demo as segments_demo
from smileloop.segments.models import Segment
from smileloop.segments.tasks import rule_tags_job
from smileloop.surveys import demo as surveys_demo
from smileloop.surveys.models import Survey
from smileloop.tagging import demo as tagging_demo
from smileloop.tagging.models import CustomerTag
from smileloop.visits.enums import AppointmentStatus, Category, PaymentMethod
from smileloop.visits.models import Appointment, ServiceItem

DEMO_CHAIN_NAME = "笑齿口腔（演示）"
DEMO_PASSWORD = "smileloop-demo"
DEMO_SEED = 20261123
# The demo chain's orders per customer over its 3 years: the archetypes' own visit rates (a regular 3 times a
# year, a child's fluoride every few months, ortho monthly), so a 360 page reads like a real patient's. The scale
# seed's 10 (issue 2's 1M customers / 10M orders) would make regulars visit every three weeks.
DEMO_ORDERS_PER_CUSTOMER = 3.0
DEMO_LOGINS = [  # (username, role, clinic index or None, superuser)
    ("admin", Role.CHAIN_ADMIN, None, True),
    ("frontdesk", Role.FRONT_DESK, 0, False),
    ("consultant", Role.CONSULTANT, 0, False),
    ("doctor", Role.DOCTOR, 0, False),
    ("assistant", Role.ASSISTANT, 0, False),
    ("director", Role.CLINIC_DIRECTOR, 0, False),
    ("memberops", Role.MEMBER_OPS, None, False),
    ("marketing", Role.MARKETING, None, False),
]
_PILOT = 4000


@dataclass
class SeedReport:
    chain: Chain
    customers: int
    seconds: float
    rows: dict[str, int] = field(default_factory=dict)
    visit_rate: float = 1.0
    finish_seconds: float = 0.0  # index rebuild, sequences and ANALYZE after the rows are in
    workers: int = 1  # processes that generated and wrote the chunks


@dataclass
class DemoReport:
    chain: Chain
    created: bool
    logins: list[tuple[str, str, str]]  # (username, role label, clinic name)
    skipped: list[str] = field(default_factory=list)
    seed: SeedReport | None = None
    loaded: dict[str, int] = field(default_factory=dict)  # what the programmes hold: members, wallets, …
    programmes: dict[str, dict] = field(default_factory=dict)  # what each demo programme wrote (empty on a replay)


def _staff_name(rng: random.Random) -> str:
    surname = rng.choices([s for s, _ in data.SURNAMES[:40]], [w for _, w in data.SURNAMES[:40]])[0]
    return surname + rng.choice(data.STAFF_GIVEN) + (rng.choice(data.STAFF_GIVEN) if rng.random() < 0.6 else "")


def _setup(*, rng: random.Random, chain_name: str, clinics: int, customers: int):
    """The chain, its clinics, catalogue and staff, through the ORM (a few hundred rows at most)."""
    chain = Chain.objects.create(name=chain_name, time_zone="Asia/Shanghai")
    items = {}
    for code, name, category, price, special, surgical in data.CATALOGUE:
        obj = ServiceItem.objects.create(chain=chain, code=code, name=name, category=category, list_price_fen=price,
                                         is_special_price=special, is_surgical=surgical)
        items[code] = Item(obj.id, code, name, category, price, special, surgical)
    hours = {day: ["09:00", "20:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    per_clinic = max(1, customers // max(1, clinics))
    doctors = min(15, max(2, math.ceil(per_clinic / 5000)))
    chain_staff: dict[str, list[int]] = {}
    for role, count in ((Role.CHAIN_ADMIN, 1), (Role.MEMBER_OPS, 2), (Role.MARKETING, 2)):
        chain_staff[role] = [
            staff_create(chain=chain, username=f"c{chain.id}-{role}{n}", name=_staff_name(rng), role=role).id
            for n in range(1, count + 1)
        ]
    contexts, site_uses = [], {}
    for k in range(clinics):
        prefix, city, district, street, lat, lng = data.CLINIC_SITES[k % len(data.CLINIC_SITES)]
        site_uses[prefix] = site_uses.get(prefix, 0) + 1
        lap = k // len(data.CLINIC_SITES)
        if lap:  # more clinics than sites: a second branch a few km away
            lat, lng = lat + 0.03 * math.sin(lap), lng + 0.03 * math.cos(lap)
        code = f"{prefix}{site_uses[prefix]:02d}"
        name = f"{city}{district.removesuffix('区').removesuffix('新')}{'' if not lap else f'{lap + 1}部'}门诊"
        area = {"上海": "021", "北京": "010", "杭州": "0571", "苏州": "0512", "南京": "025", "深圳": "0755",
                "广州": "020", "成都": "028", "武汉": "027", "重庆": "023", "西安": "029", "长沙": "0731",
                "天津": "022", "宁波": "0574", "厦门": "0592"}[city]
        clinic = Clinic.objects.create(
            chain=chain, code=code, name=name, city=city,
            address=f"{city}市{district}{street}{rng.randint(1, 1500)}号{rng.randint(1, 5)}楼",
            latitude=f"{lat:.6f}", longitude=f"{lng:.6f}", opening_hours=hours,
            phone=f"{area}-{rng.randint(5000_0000, 8999_9999)}")
        by_role: dict[str, list[int]] = {}
        for role, count in ((Role.CLINIC_DIRECTOR, 1), (Role.FRONT_DESK, 2), (Role.CONSULTANT, 2),
                            (Role.DOCTOR, doctors), (Role.ASSISTANT, doctors)):
            by_role[role] = [
                staff_create(chain=chain, username=f"c{chain.id}-{code.lower()}-{role}{n}", name=_staff_name(rng),
                             role=role, clinics=[clinic]).id
                for n in range(1, count + 1)
            ]
        communities = community_ring(rng, lat, lng, min(300, 40 + per_clinic // 1500))
        contexts.append(ClinicCtx(
            id=clinic.id, code=code, city=city, district=district, lat=lat, lng=lng, communities=communities,
            doctors=by_role[Role.DOCTOR], front_desk=by_role[Role.FRONT_DESK], consultants=by_role[Role.CONSULTANT],
            assistants=by_role[Role.ASSISTANT], marketing=chain_staff[Role.MARKETING]))
    return chain, contexts, items, [i for ids in chain_staff.values() for i in ids]


def _visit_rate(*, seed: int, target: float, make, size: int) -> tuple[float, dict[str, int]]:
    """The recurring-visit multiplier that gives `target` orders per customer on average, and the rows per
    table the last pilot made at it (the seed sizes its blocks of keys from them).

    Orders grow roughly linearly with the multiplier (plans and first visits are the intercept):
    pilot runs of a separate generator and two secant steps find it to within a few per cent.
    Deterministic: the pilots have their own seed. `_Steer` corrects the pilot's sampling error
    on the way.
    """
    last: dict[str, int] = {}

    def average(rate: float) -> float:
        rows = make(seed=seed ^ 0x5EED, rate=rate).chunk(size)
        last.clear()
        last.update((table, len(batch)) for table, batch in rows.items())
        return last.get("visits_order", 0) / size

    r1, r2 = 1.0, 2.0
    a1, a2 = average(r1), average(r2)
    for _ in range(2):
        if a2 == a1:
            break
        r1, a1, r2 = r2, a2, min(20.0, max(0.02, r2 + (target - a2) * (r2 - r1) / (a2 - a1)))
        a2 = average(r2)
    return r2, dict(last)


def _key_blocks(*, pilot_rows: dict[str, int], pilot_size: int, chunk_size: int) -> dict[str, int]:
    """Primary keys reserved per chunk and table, so that every chunk knows its keys before the chunks
    before it are generated: exactly chunk_size customers (customer ids stay dense), and for every other
    table three times the pilot's rows per customer plus one per customer — a 5,000-customer chunk sits
    within a few per cent of the mean, so a block never fills (`_chunk_write` checks). The other tables'
    ids have gaps between chunks; nothing reads meaning into them."""
    return {table: chunk_size if table == "customers_customer"
            else math.ceil(3 * pilot_rows.get(table, 0) * chunk_size / max(1, pilot_size)) + chunk_size
            for table in COLUMNS}


class SeedBlockFull(RuntimeError):
    pass


_WORKER: dict = {}  # the generator and loader a chunk writer uses (set before the worker processes fork)


def _chunk_make(k: int, start: int, n: int, bases: dict[str, int], blocks: dict[str, int],
                rate: float) -> dict[str, list[tuple]]:
    """Generate chunk k (in a worker process, or in this one): its rows per table."""
    generator = _WORKER["generator"]
    rows = generator.chunk_at(k, start=start, n=n, ids=Ids(bases), rate=rate)
    full = [table for table in COLUMNS if generator.ids.next[table] - bases[table] > blocks[table]]
    if full:
        raise SeedBlockFull(f"chunk {k} needs more keys than reserved for {', '.join(full)}; "
                            f"use a larger --chunk-size")
    return rows


def _rows_write(loader: Loader, rows: dict[str, list[tuple]]) -> dict[str, int]:
    loader.session_setup()
    with transaction.atomic():
        loader.write(rows)
    return {table: len(batch) for table, batch in rows.items()}


def _chunk_write(k: int, start: int, n: int, bases: dict[str, int], blocks: dict[str, int],
                 rate: float) -> dict[str, int]:
    """Generate and write chunk k (in a worker process, or in this one): its rows per table."""
    try:
        return _rows_write(_WORKER["loader"], _chunk_make(k, start, n, bases, blocks, rate))
    except SeedBlockFull:
        raise
    except Exception as exc:  # a worker's database error may not pickle: send its text
        raise RuntimeError(f"seed chunk {k}: {exc!r}") from None


class _Inline:
    """The executor of a one-process seed: runs each chunk when it is submitted."""

    def submit(self, fn, *args) -> Future:
        future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 (handed to the caller through the future)
            future.set_exception(exc)
        return future

    def shutdown(self, **_kwargs) -> None:
        pass


def seed_workers() -> int:
    """Default worker processes of a seed: one per core, at most four (on PostgreSQL each also keeps a
    backend about a third busy with its COPY; on SQLite they generate while this process writes)."""
    return max(1, min(4, os.cpu_count() or 1))


MAX_SEED_CLINICS = 1000  # a large chain has a few hundred; each clinic is ~10 staff logins made one by one
MAX_SEED_YEARS = 30
MAX_ORDERS_PER_CUSTOMER = 1000
MAX_SEED_CUSTOMERS = 100_000_000  # 100 × the benchmarked chain; a larger number hung listing its chunks, the chain made
MAX_SEED_WORKERS = 64  # as `smileloop worker`: each process holds a database connection


def seed_params_check(*, customers: int, clinics: int, years: int, chunk_size: int, workers: int | None,
                      today: dt.date, orders_per_customer: float) -> None:
    """Refuse parameters the seed cannot honour before it writes anything (its chain is committed first): a ValueError
    saying which and why. The histories start `years` before `today` and must stay within the years the product
    accepts for records (core.bounds.EARLIEST_RECORD_DATE … 2099)."""
    limits = [("customers", customers, 0, MAX_SEED_CUSTOMERS), ("clinics", clinics, 1, MAX_SEED_CLINICS),
              ("years", years, 1, MAX_SEED_YEARS), ("chunk size", chunk_size, 1, None)]
    if workers is not None:
        limits.append(("workers", workers, 1, MAX_SEED_WORKERS))
    for name, value, low, high in limits:  # the one that is wrong, and its value
        if value < low or (high is not None and value > high):
            allowed = f"{low:,}–{high:,}" if high is not None else f"≥ {low}"
            raise ValueError(f"{name} must be {allowed}, not {value} (customers 0–{MAX_SEED_CUSTOMERS:,}, "
                             f"clinics 1–{MAX_SEED_CLINICS}, years 1–{MAX_SEED_YEARS})")
    if not (math.isfinite(orders_per_customer) and 0 < orders_per_customer <= MAX_ORDERS_PER_CUSTOMER):
        raise ValueError(f"orders per customer must be a number above 0 and at most {MAX_ORDERS_PER_CUSTOMER}")
    if today.year - years < EARLIEST_RECORD_DATE.year or today.year > 2098:
        raise ValueError(f"today must leave {years} years of history after {EARLIEST_RECORD_DATE:%Y-%m-%d} and "
                         f"lie before 2099 (got {today:%Y-%m-%d})")


def chain_seed(*, customers: int, clinics: int = 3, years: int = 3, seed: int = 1, chain_name: str | None = None,
               today: dt.date | None = None, orders_per_customer: float = 10.0, chunk_size: int = 5000,
               progress: bool = False, bulk: bool = False, workers: int | None = None) -> SeedReport:
    """Create a synthetic chain of `clinics` clinics and `customers` customers with `years` of history.

    `today` is the reference date: histories end the day before it, bookings lie after it. It
    defaults to the current date in Asia/Shanghai; pass it to reproduce a seed exactly. `bulk`
    (an otherwise idle database only) rebuilds secondary indexes once at the end and skips foreign-key
    checks during the load; see load.Loader.prepare.

    Chunks are generated by `workers` processes (default `seed_workers()`) when there is more than one chunk,
    no transaction is open and the database is not in memory; by this process otherwise. On PostgreSQL
    each worker writes its chunks too (COPY); SQLite has one writer, so there this process writes what
    the workers generate while they generate the next chunks. The rows are the same either way: each
    chunk has its own random stream and block of keys (`PoolGenerator.chunk_at`, `_key_blocks`), and the
    visit rate of chunk k is steered by chunks 0 … k−4 only (`_Steer`).
    """
    today = today or timezone.localdate()
    seed_params_check(customers=customers, clinics=clinics, years=years, chunk_size=chunk_size, workers=workers,
                      today=today, orders_per_customer=orders_per_customer)
    columns_check()
    started = time.perf_counter()
    rng = random.Random(seed)
    loader = Loader(bulk=bulk)
    with transaction.atomic():
        chain, contexts, items, chain_staff = _setup(rng=rng, chain_name=chain_name or f"笑齿口腔（种子{seed}）",
                                                     clinics=clinics, customers=customers)

    def make(*, seed, rate, ids=None):
        return PoolGenerator(seed=seed, chain_id=chain.id, clinics=contexts, items=items, chain_staff=chain_staff,
                             today=today, years=years, ids=ids or Ids(), vendor=loader.vendor, visit_rate=rate)

    pilot_size = min(_PILOT, max(300, customers))
    rate, pilot_rows = _visit_rate(seed=seed, target=orders_per_customer, make=make, size=pilot_size)
    blocks = _key_blocks(pilot_rows=pilot_rows, pilot_size=pilot_size, chunk_size=chunk_size)
    start_ids = loader.next_ids()
    jobs = [(k, k * chunk_size, min(chunk_size, customers - k * chunk_size))
            for k in range(math.ceil(customers / chunk_size))]
    workers = workers or seed_workers()
    db = transaction.get_connection()
    parallel = (workers > 1 and len(jobs) > 1 and not db.in_atomic_block
                and not (loader.vendor == "sqlite" and db.is_in_memory_db()))
    writes_here = loader.vendor == "sqlite"  # one writer: chunks come back as rows and are written here
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=customers, unit="customers", file=sys.stderr, smoothing=0.05, dynamic_ncols=True)
    steer = _Steer(base=rate, target=orders_per_customer, customers=customers)
    rates: dict[int, float] = {}
    written = dict.fromkeys(COLUMNS, 0)
    loader.prepare()
    _WORKER.update(generator=make(seed=seed, rate=rate), loader=loader)
    executor = _Inline()
    if parallel:
        connections.close_all()  # the workers fork next: none may inherit this process's connection
        executor = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=mp.get_context("fork"))
    pending: dict[int, Future] = {}
    fed = 0

    def feed() -> None:
        nonlocal fed
        k, _start, n = jobs[fed]
        counts = pending.pop(k).result()
        if writes_here:
            counts = _rows_write(loader, counts)
        steer.after(n, counts.get("visits_order", 0), rates[k])
        for table, count in counts.items():
            written[table] += count
        fed += 1
        if bar is not None:
            bar.update(n)
            bar.set_postfix(orders=f"{written['visits_order']:,}")

    try:
        for k, start, n in jobs:
            while fed <= k - _Steer.LAG:
                feed()
            rates[k] = steer.rate
            bases = {table: start_ids[table] + k * blocks[table] for table in COLUMNS}
            pending[k] = executor.submit(_chunk_make if writes_here else _chunk_write, k, start, n, bases, blocks,
                                         rates[k])
        while fed < len(jobs):
            feed()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        _WORKER.clear()
        if bar is not None:
            bar.close()
        finishing = time.perf_counter()
        if parallel:
            loader.session_setup()
        loader.indexes_restore()
    loader.written = written
    loader.finish()
    ended = time.perf_counter()
    return SeedReport(chain=chain, customers=customers, seconds=ended - started,
                      rows={t: written.get(t, 0) for t in COLUMNS}, visit_rate=rate,
                      finish_seconds=ended - finishing, workers=min(workers, len(jobs)) if parallel else 1)


class _Steer:
    """Keeps the running orders-per-customer on target over a long seed.

    A 4,000-customer pilot estimates the visit rate to within a few per cent (a 1M seed came out at
    9.53 orders per customer for a target of 10). After every chunk, the average the pilot's rate
    really gives is re-estimated from everything generated so far (orders grow roughly as
    rate^ELASTICITY around the target, measured), and the rate of the chunk LAG places later is set so
    that the running total heads back to target × customers, the shortfall spread over the next ~20
    chunks and each rate held within ±30 % of the pilot's: a gentle, stable correction. Depends only on
    the generated rows, and chunk k's rate only on chunks 0 … k − LAG, so two chunks can be generated at
    once and a seed stays deterministic however many processes write it.
    """

    ELASTICITY = 0.66
    LAG = 4  # chunks in flight at most: up to four worker processes stay busy

    def __init__(self, *, base: float, target: float, customers: int):
        self.base = self.rate = base
        self.target, self.customers = target, customers
        self.done = self.orders = 0
        self.at_base = 0.0  # orders the chunks so far would have had at the pilot's rate

    def after(self, n: int, orders: int, rate: float) -> None:
        """Chunk results in chunk order: n customers with `orders` orders, generated at `rate`."""
        self.done += n
        self.orders += orders
        if rate > 0 and self.base > 0:
            self.at_base += orders * (self.base / rate) ** self.ELASTICITY
        remaining = self.customers - self.done
        if remaining <= 0 or self.at_base <= 0:
            return
        need = self.target + (self.target * self.done - self.orders) / max(remaining, 20 * n)
        factor = (need / (self.at_base / self.done)) ** (1 / self.ELASTICITY)
        self.rate = self.base * min(1.3, max(0.7, factor))


def demo_create(*, customers: int = 5000, password: str = DEMO_PASSWORD, progress: bool = False,
                today: dt.date | None = None, points_orders: int | None = None) -> DemoReport:
    """The demo chain (3 clinics, 3 years) with one login per role, the membership and loyalty programmes of
    DOMAIN.md §7–8 and some gift-card and voucher history; a second call changes nothing.

    The programmes go in last and the friends-and-family programme is their last write: a chain without it
    (made by an older `smileloop demo`, or interrupted) gets them loaded on the next call; every step is
    idempotent, so a replay never doubles anything. The programmes take `today` at 10:00 as their moment;
    points are earned on the latest `points_orders` orders (default DEMO_POINTS_ORDERS; tests pass fewer)."""
    chain = Chain.objects.filter(name=DEMO_CHAIN_NAME).order_by("id").first()
    if chain is not None:
        programmes = {}
        if not GiftCardProgramme.objects.filter(chain=chain, code=DEMO_FRIEND_CARD).exists():
            programmes = _programmes_load(chain=chain, at=_demo_moment(today), points_orders=points_orders)
        if not Playbook.objects.filter(chain=chain).exists():
            programmes["retention"] = retention_demo_load(chain=chain, today=_demo_day(chain, today))
        return DemoReport(chain=chain, created=False, logins=_demo_logins(chain), programmes=programmes,
                          loaded=_loaded_counts(chain))
    report = chain_seed(customers=customers, clinics=3, years=3, seed=DEMO_SEED, chain_name=DEMO_CHAIN_NAME,
                        today=today, orders_per_customer=DEMO_ORDERS_PER_CUSTOMER, progress=progress)
    chain = report.chain
    clinics = list(Clinic.objects.filter(chain=chain).order_by("id"))
    skipped = []
    User = get_user_model()
    with transaction.atomic():
        for username, role, clinic_index, superuser in DEMO_LOGINS:
            if User.objects.filter(username=username).exists():
                skipped.append(username)  # a login of that name already exists outside the demo chain
                continue
            staff_create(chain=chain, username=username, name=f"演示{Role(role).label}", role=role,
                         clinics=[clinics[clinic_index]] if clinic_index is not None else [],
                         password=password, is_superuser=superuser)
    _visit_timeline(chain=chain)
    programmes = _programmes_load(chain=chain, at=_demo_moment(today), points_orders=points_orders)
    programmes["retention"] = retention_demo_load(chain=chain, today=_demo_day(chain, today))
    # last: the retention demo moves some birthdays to make today's birthday tasks, which would part a pair
    _duplicates_demo(chain=chain, seed=DEMO_SEED)
    return DemoReport(chain=chain, created=True, logins=_demo_logins(chain), skipped=skipped, seed=report,
                      programmes=programmes, loaded=_loaded_counts(chain))


@transaction.atomic
def _visit_timeline(*, chain: Chain) -> int:
    """The timeline entry of every arrived or completed appointment of the demo chain, worded as
    `visits.appointment_record` words it ("visit completed: 洁牙"), dated and placed as the visit: one INSERT …
    SELECT. The scale seed leaves them out (ten million more rows at 1M customers); a demo 360 page without them
    showed a patient of ten visits with a timeline of two notes."""
    interaction = connection.ops.quote_name(Interaction._meta.db_table)
    appointment = connection.ops.quote_name(Appointment._meta.db_table)
    item = connection.ops.quote_name(ServiceItem._meta.db_table)
    empty = "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {interaction} (customer_id, kind, text, author_id, clinic_id, occurred_at, data) "
            f"SELECT a.customer_id, %s, CASE WHEN i.name IS NULL THEN 'visit ' || a.status "
            f"ELSE 'visit ' || a.status || ': ' || i.name END, NULL, a.clinic_id, a.start_at, {empty} "
            f"FROM {appointment} a LEFT JOIN {item} i ON i.id = a.service_item_id "
            f"WHERE a.chain_id = %s AND a.status IN (%s, %s)",
            [InteractionKind.VISIT, "{}", chain.id, AppointmentStatus.ARRIVED, AppointmentStatus.COMPLETED])
        return cursor.rowcount


@transaction.atomic
def _duplicates_demo(*, chain: Chain, seed: int, pairs: int = 12) -> int:
    """Second records of existing patients, as every chain's front desks make them, for the merge-candidates page:
    one re-registered at another clinic under a new number (same name and birthday), one whose number was
    mistyped in the middle (same name and last four digits), and phone-less children entered twice by the PMS (same
    name in one family). Written through `customer_upsert`, which does not see them as the same person: that is
    the merge list's job."""
    rng = random.Random(seed ^ 0xD0B1E)
    clinics = list(Clinic.objects.filter(chain=chain).order_by("id").values_list("id", flat=True))
    people = list(Customer.objects.filter(chain=chain, merged_into__isnull=True, mobile__isnull=False,
                                          birthday__isnull=False, visit_count__gt=0)
                  .order_by("id").values("name", "mobile", "birthday", "gender", "home_clinic_id")[:3000])
    made = 0
    for i, person in enumerate(rng.sample(people, min(pairs, len(people)))):
        for _attempt in range(20):
            if i % 2 == 0:
                mobile = "+86" + rng.choice(("135", "139", "150", "188")) + f"{rng.randrange(10**8):08d}"
                data = {"name": person["name"], "birthday": person["birthday"], "gender": person["gender"],
                        "home_clinic": rng.choice([c for c in clinics if c != person["home_clinic_id"]] or clinics),
                        "source": Channel.WALK_IN}
            else:
                middle = f"{rng.randrange(10**4):04d}"
                mobile = person["mobile"][:6] + middle + person["mobile"][-4:]
                data = {"name": person["name"], "home_clinic": person["home_clinic_id"], "source": Channel.MEITUAN,
                        "campaign": "9.9元洁牙"}
            if mobile != person["mobile"] and not Customer.objects.filter(chain=chain, mobile=mobile).exists():
                customer_upsert(chain=chain, data={**data, "mobile": mobile}, source="form")
                made += 1
                break
    # And two phone-less children the PMS sent a second time under a patient id of its own, without a birthday,
    # then linked to their family: only "same name in one family" finds them.
    children = list(HouseholdMember.objects.filter(household__chain=chain, relation=Relation.CHILD,
                                                   customer__mobile__isnull=True, customer__merged_into__isnull=True)
                    .select_related("household__head", "customer").order_by("id")[:500])
    for member in rng.sample(children, min(2, len(children))):
        child = member.customer
        twin, _created = customer_upsert(
            chain=chain, data={"name": child.name, "gender": child.gender, "home_clinic": child.home_clinic_id},
            identities=[{"kind": IdentityKind.PMS, "external_id": f"HIS{rng.randrange(10**7):07d}"}])
        household_member_add(head=member.household.head, member=twin, relation=Relation.CHILD)
        made += 1
    return made


def retention_demo_load(*, chain: Chain, today: dt.date) -> dict[str, dict]:
    """The retention engine on the demo chain (issue 4): tags (and keyword tags from the timeline), saved
    segments, rule tags evaluated, lifecycle stages derived from the history, follow-up playbooks with a
    realistic inbox for today (tasks due for every playbook, some history for the board), satisfaction
    surveys with answers. Each step is idempotent; the follow-up playbooks are the marker that it ran."""
    out = {"tagging": tagging_demo.demo_load(chain=chain, today=today),
           "segments": segments_demo.demo_load(chain=chain, today=today)}
    out["rule_tags"] = rule_tags_job(today=today)
    out["lifecycle"] = lifecycle_demo.demo_load(chain=chain, today=today)
    out["followups"] = followups_demo.demo_load(chain=chain, today=today)
    out["surveys"] = surveys_demo.demo_load(chain=chain, today=today)
    return out


DEMO_FRIEND_CARD = "friend-card"  # the friends-and-family programme's code
DEMO_VOUCHER_CAMPAIGN = "meituan-cleaning-9-9"
DEMO_POINTS_ORDERS = 800


def _demo_day(chain: Chain, today: dt.date | None) -> dt.date:
    """The chain's calendar day of the demo moment: the inbox's "due today" is the chain's day, and from
    midnight to 08:00 in Shanghai the UTC date is still yesterday's."""
    return today or timezone.localtime(_demo_moment(None), ZoneInfo(chain.time_zone)).date()


def _demo_moment(today: dt.date | None) -> dt.datetime:
    """Now, or 10:00 in Shanghai on `today` (tests pass a fixed day; the seed's history ends the day before)."""
    if today is None:
        return timezone.now()
    return dt.datetime.combine(today, dt.time(10), tzinfo=ZoneInfo("Asia/Shanghai"))


def _programmes_load(*, chain: Chain, at: dt.datetime, points_orders: int | None = None) -> dict[str, dict]:
    """Membership, then loyalty (its earn rules multiply by the tiers), then cards and vouchers.

    Points are earned order by order through the service (~25–60 ms each on SQLite), so the history covers
    the most recent `points_orders` (DEMO_POINTS_ORDERS) orders: that keeps `make demo` under a minute."""
    points_orders = DEMO_POINTS_ORDERS if points_orders is None else points_orders
    return {"membership": membership_demo_programme(chain=chain, as_of=at),
            "loyalty": loyalty_demo_programme(chain=chain, seed=DEMO_SEED, as_of=at, max_orders=points_orders),
            "giftcards": _giftcards_demo(chain=chain, seed=DEMO_SEED, at=at)}


@transaction.atomic
def _giftcards_demo(*, chain: Chain, seed: int, at: dt.datetime, cards: int = 8, vouchers: int = 12) -> dict:
    """The friends-and-family card (亲友储值卡, 600 yuan, 3 months) handed to family members whose treatment
    plan is half done (the hidden benefit's trigger; a director's decision tops it up to `cards` cards), two
    of them used by friends at checkout (one in part) and one whose holder registered (it stays valid); a
    9.9-yuan Meituan cleaning voucher bought online by recent leads, three redeemed at checkout. Every write
    carries a deterministic key; one transaction, so the programme row marks a finished load."""
    rng = random.Random(seed ^ 0x6C0D)
    family_tier = (Tier.objects.filter(plan__chain=chain, plan__kind=PlanKind.SPEND_BASED, family_slots__gt=0)
                   .order_by("plan_id", "rank").first())
    benefit = (Benefit.objects.filter(tier=family_tier, is_hidden=True, action_code=FRIEND_CARD_ACTION).first()
               if family_tier else None)
    issued, revealed = [], 0
    GiftCardProgramme.objects.get_or_create(  # the benefit's card (600 yuan, 3 months) finds it by value
        chain=chain, code=DEMO_FRIEND_CARD, defaults={
            "name": "亲友储值卡", "kind": ProgrammeKind.FRIEND_CARD, "face_value_fen": 60_000, "valid_months": 3,
            "excluded_categories": [Category.ORAL_CARE_PRODUCT.value], "exclude_special_price": True,
            "reminder_days": [7, 30, 60, 80], "limit_per_period": 1, "limit_period_months": 12})
    if benefit is not None:
        members = list(Membership.objects.filter(chain=chain, tier=family_tier, status=MembershipStatus.ACTIVE)
                       .select_related("customer").order_by("id")[:200])
        for membership in members:  # the automatic trigger first: plans half done or finished since sign-up
            if len(issued) >= cards:
                break
            for reveal in benefits_reveal_due(customer=membership.customer, as_of=at):
                if reveal.benefit_id == benefit.id:
                    revealed += 1
                    issued.append(friend_card_issue_for_benefit(
                        membership=membership, benefit=benefit, key=f"demo:{seed}:friendcard:{membership.id}",
                        as_of=at))
        given = {card.giver_id for card in issued}
        for membership in rng.sample(members, len(members)):  # then a director's decision, if too few fired
            if len(issued) >= cards:
                break
            if membership.customer_id in given:
                continue
            benefit_reveal(membership=membership, benefit=benefit, trigger=BenefitTrigger.STAFF_DECISION,
                           detail="院长决定：感谢老会员转介绍", as_of=at)
            issued.append(friend_card_issue_for_benefit(
                membership=membership, benefit=benefit, key=f"demo:{seed}:friendcard:{membership.id}", as_of=at))
    friends = list(Customer.objects.filter(chain=chain, merged_into__isnull=True, home_clinic__isnull=False)
                   .exclude(memberships__status=MembershipStatus.ACTIVE).order_by("id")[:400])
    card_uses = 0
    for card, lines in zip(issued[:2], ([{"item_code": "FI01"}], [{"item_code": "CL01"}, {"item_code": "EX01"}]),
                           strict=False):  # a filling (500 of the 600 yuan), a cleaning with an exam
        friend = rng.choice(friends)
        _checkout_demo(customer=friend, lines=lines, gift_cards=[card.code], key=f"demo:{seed}:card-use:{card.id}",
                       at=at)
        card_uses += 1
    if len(issued) > 2:
        giftcard_holder_register(card=issued[2], customer=rng.choice(friends), as_of=at)

    cleaning = ServiceItem.objects.filter(chain=chain, code="CL99").first()  # 9.9元特价洁牙
    issued_vouchers, redeemed = [], 0
    if cleaning is not None:
        campaign, _created = VoucherCampaign.objects.get_or_create(
            chain=chain, code=DEMO_VOUCHER_CAMPAIGN, defaults={
                "name": "美团 9.9 元洁牙团购券", "price_paid_fen": 990, "item": cleaning,
                "category": cleaning.category, "value_kind": VoucherValueKind.WHOLE_LINE, "valid_days": 90})
        leads = list(Customer.objects.filter(chain=chain, merged_into__isnull=True, home_clinic__isnull=False,
                                             visit_count=0)
                     .exclude(package_covers__isnull=False)  # a package's cleanings would cover the line first
                     .order_by("-id")[:vouchers])
        for lead in leads:
            issued_vouchers.append(voucher_issue(campaign=campaign, customer=lead,
                                                 key=f"demo:{seed}:voucher:{lead.id}",
                                                 as_of=at - dt.timedelta(days=rng.randint(1, 30))))
        for voucher in issued_vouchers[:3]:
            _checkout_demo(customer=voucher.customer, lines=[{"item_code": cleaning.code}], vouchers=[voucher.code],
                           key=f"demo:{seed}:voucher-use:{voucher.id}", at=at)
            redeemed += 1
    return {"friend_cards": len(issued), "benefits_revealed_by_trigger": revealed, "card_uses": card_uses,
            "vouchers": len(issued_vouchers), "vouchers_redeemed": redeemed}


def _checkout_demo(*, customer: Customer, lines: list[dict], key: str, at: dt.datetime, gift_cards=(), vouchers=()):
    """One bill through checkout (price, then pay the cash remainder by WeChat Pay)."""
    bill = checkout_price(customer=customer, clinic=customer.home_clinic, lines=lines, gift_cards=list(gift_cards),
                          vouchers=list(vouchers), at=at)
    payments = [{"method": PaymentMethod.WECHAT_PAY, "amount_fen": bill.cash_fen}] if bill.cash_fen else []
    return checkout_pay(priced=bill, payments=payments, key=key)


def _loaded_counts(chain: Chain) -> dict[str, int]:
    return {
        "members": Membership.objects.filter(chain=chain, status=MembershipStatus.ACTIVE).count(),
        "points_accounts": Account.objects.filter(chain=chain, kind=AccountKind.POINTS).count(),
        "wallets": Account.objects.filter(chain=chain, kind=AccountKind.WALLET_PRINCIPAL).count(),
        "packages": PackagePurchase.objects.filter(chain=chain).count(),
        "gift_cards": GiftCard.objects.filter(chain=chain).count(),
        "vouchers": Voucher.objects.filter(chain=chain).count(),
        "tagged_patients": CustomerTag.objects.filter(chain_id=chain.id).values("customer_id").distinct().count(),
        "segments": Segment.objects.filter(chain=chain).count(),
        "open_tasks": FollowupTask.objects.filter(chain=chain, status=TaskStatus.OPEN).count(),
        "surveys_answered": Survey.objects.filter(chain=chain, answered_at__isnull=False).count(),
    }


def _demo_logins(chain: Chain) -> list[tuple[str, str, str]]:
    names = [username for username, *_ in DEMO_LOGINS]
    staff = Staff.objects.filter(chain=chain, user__username__in=names).select_related("user").prefetch_related(
        "clinics")
    by_name = {s.user.username: s for s in staff}
    return [(u, str(by_name[u].get_role_display()), ", ".join(c.name for c in by_name[u].clinics.all()) or "—")
            for u in names if u in by_name]
