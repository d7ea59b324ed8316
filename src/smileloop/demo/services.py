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
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from smileloop.clinics.enums import Role
from smileloop.clinics.models import Chain, Clinic, Staff
from smileloop.clinics.services import staff_create
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
from smileloop.visits.models import ServiceItem

DEMO_CHAIN_NAME = "笑齿口腔（演示）"
DEMO_PASSWORD = "smileloop-demo"
DEMO_SEED = 20261123
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


@dataclass
class DemoReport:
    chain: Chain
    created: bool
    logins: list[tuple[str, str, str]]  # (username, role label, clinic name)
    skipped: list[str] = field(default_factory=list)
    seed: SeedReport | None = None


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


def _visit_rate(*, seed: int, target: float, make, size: int) -> float:
    """The recurring-visit multiplier that gives `target` orders per customer on average.

    Orders grow roughly linearly with the multiplier (plans and first visits are the intercept):
    pilot runs of a separate generator and two secant steps find it to within a few per cent.
    Deterministic: the pilots have their own seed.
    """
    def average(rate: float) -> float:
        return len(make(seed=seed ^ 0x5EED, rate=rate).chunk(size)["visits_order"]) / size

    r1, r2 = 1.0, 2.0
    a1, a2 = average(r1), average(r2)
    for _ in range(2):
        if a2 == a1:
            break
        r1, a1, r2 = r2, a2, min(20.0, max(0.02, r2 + (target - a2) * (r2 - r1) / (a2 - a1)))
        a2 = average(r2)
    return r2


def chain_seed(*, customers: int, clinics: int = 3, years: int = 3, seed: int = 1, chain_name: str | None = None,
               today: dt.date | None = None, orders_per_customer: float = 10.0, chunk_size: int = 5000,
               progress: bool = False, bulk: bool = False) -> SeedReport:
    """Create a synthetic chain of `clinics` clinics and `customers` customers with `years` of history.

    `today` is the reference date: histories end the day before it, bookings lie after it. It
    defaults to the current date in Asia/Shanghai; pass it to reproduce a seed exactly. `bulk`
    (PostgreSQL, an otherwise idle database only) rebuilds secondary indexes once at the end and
    skips foreign-key triggers during the load; see load.Loader.prepare.
    """
    if customers < 0 or clinics < 1 or years < 1 or chunk_size < 1:
        raise ValueError("customers must be ≥ 0, clinics, years and chunk size ≥ 1")
    columns_check()
    today = today or timezone.localdate()
    started = time.perf_counter()
    rng = random.Random(seed)
    loader = Loader(bulk=bulk)
    with transaction.atomic():
        chain, contexts, items, chain_staff = _setup(rng=rng, chain_name=chain_name or f"笑齿口腔（种子{seed}）",
                                                     clinics=clinics, customers=customers)

    def make(*, seed, rate, ids=None):
        return PoolGenerator(seed=seed, chain_id=chain.id, clinics=contexts, items=items, chain_staff=chain_staff,
                             today=today, years=years, ids=ids or Ids(), vendor=loader.vendor, visit_rate=rate)

    rate = _visit_rate(seed=seed, target=orders_per_customer, make=make, size=min(_PILOT, max(300, customers)))
    start_ids = loader.next_ids()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=customers, unit="customers", file=sys.stderr, smoothing=0.05, dynamic_ncols=True)
    chunks = _chunks(make(seed=seed, rate=rate, ids=Ids(start_ids)), customers, chunk_size)
    loader.prepare()
    try:
        for n, rows in chunks:
            with transaction.atomic():
                loader.write(rows)
            if bar is not None:
                bar.update(n)
                bar.set_postfix(orders=f"{loader.written['visits_order']:,}")
    finally:
        if bar is not None:
            bar.close()
        finishing = time.perf_counter()
        loader.indexes_restore()
    loader.finish()
    ended = time.perf_counter()
    return SeedReport(chain=chain, customers=customers, seconds=ended - started,
                      rows={t: loader.written.get(t, 0) for t in COLUMNS}, visit_rate=rate,
                      finish_seconds=ended - finishing)


def _chunks(generator: PoolGenerator, customers: int, chunk_size: int) -> Iterator[tuple[int, dict]]:
    done = 0
    while done < customers:
        n = min(chunk_size, customers - done)
        yield n, generator.chunk(n)
        done += n


def demo_create(*, customers: int = 5000, password: str = DEMO_PASSWORD, progress: bool = False,
                today: dt.date | None = None) -> DemoReport:
    """The demo chain (3 clinics, 3 years) with one login per role; a second call changes nothing."""
    chain = Chain.objects.filter(name=DEMO_CHAIN_NAME).order_by("id").first()
    if chain is not None:
        return DemoReport(chain=chain, created=False, logins=_demo_logins(chain))
    report = chain_seed(customers=customers, clinics=3, years=3, seed=DEMO_SEED, chain_name=DEMO_CHAIN_NAME,
                        today=today, progress=progress)
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
    return DemoReport(chain=chain, created=True, logins=_demo_logins(chain), skipped=skipped, seed=report)


def _demo_logins(chain: Chain) -> list[tuple[str, str, str]]:
    names = [username for username, *_ in DEMO_LOGINS]
    staff = Staff.objects.filter(chain=chain, user__username__in=names).select_related("user").prefetch_related(
        "clinics")
    by_name = {s.user.username: s for s in staff}
    return [(u, str(by_name[u].get_role_display()), ", ".join(c.name for c in by_name[u].clinics.all()) or "—")
            for u in names if u in by_name]
