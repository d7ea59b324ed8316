"""Pure generation of a synthetic patient pool: households of people and their whole history.

No database access here: `PoolGenerator.chunk(n)` returns rows (tuples in the column order of
`COLUMNS`) for n customers with everything that points at them, primary keys included, so the
loader can write parents and children without a round trip. The generator owns one
random.Random; calling `chunk` with the same sizes in the same order reproduces the same people, and
`chunk_at` reproduces one chunk of a run on its own (the seed's worker processes use it).

Invariants the rows keep (the tests check them):
- order.amount_fen = Σ line.amount_fen = Σ payment.amount_fen; refunds are separate rows and
  order/line refunded_fen equal the refund lines;
- customer.lifetime_spend_fen = Σ (order.amount_fen − order.refunded_fen); visit_count = completed
  appointments; first/last_visit_at = first/last completed appointment; stage lead (no visit),
  dormant (no visit in the last 365 days), arrived (visits, never billed: the ~7 % of those who come who had
  a free consultation or exam and did not go on, `_consultation`) or treated;
- plan.steps_done = done steps, steps_total = all steps, and every done step has a procedure;
- mobiles are unique within a run (an affine bijection of the customer's index).
"""

import base64
import datetime as dt
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate
from types import SimpleNamespace

from smileloop.customers import enums as customer_enums
from smileloop.customers.normalize import pinyin_keys
from smileloop.customers.timeline import created_text
from smileloop.demo import data
from smileloop.visits import enums as visit_enums


def _plain(choices) -> SimpleNamespace:
    """Choices as plain str constants: cheaper to compare, hash and hand to the database driver."""
    return SimpleNamespace(**{member.name: member.value for member in choices})


Channel = _plain(customer_enums.Channel)
ConsentPurpose = _plain(customer_enums.ConsentPurpose)
Gender = _plain(customer_enums.Gender)
IdentityKind = _plain(customer_enums.IdentityKind)
InteractionKind = _plain(customer_enums.InteractionKind)
Relation = _plain(customer_enums.Relation)
Stage = _plain(customer_enums.Stage)
AppointmentStatus = _plain(visit_enums.AppointmentStatus)
Category = _plain(visit_enums.Category)
OrderStatus = _plain(visit_enums.OrderStatus)
PaymentMethod = _plain(visit_enums.PaymentMethod)
PlanStatus = _plain(visit_enums.PlanStatus)
StepStatus = _plain(visit_enums.StepStatus)

DAY = 86_400
TZ_OFFSET = 8 * 3600  # Asia/Shanghai has no daylight saving time
DORMANT_AFTER_DAYS = 365

COLUMNS: dict[str, tuple[str, ...]] = {
    "customers_customer": (
        "id", "created_at", "updated_at", "chain_id", "name", "mobile", "mobile_tail", "gender", "birthday",
        "address", "community", "latitude", "longitude", "home_clinic_id", "consultant_id", "stage", "notes",
        "first_touch_channel", "first_touch_campaign", "first_touch_staff_id", "first_touch_at",
        "last_touch_channel", "last_touch_campaign", "last_touch_staff_id", "last_touch_at",
        "first_visit_at", "last_visit_at", "visit_count", "lifetime_spend_fen", "merged_into_id", "stage_reached",
        "stage_changed_at"),
    "customers_customersearchkey": ("id", "customer_id", "chain_id", "home_clinic_id", "kind", "value"),
    "customers_identity": ("id", "created_at", "updated_at", "chain_id", "customer_id", "kind", "external_id",
                           "app_id", "source"),
    "customers_household": ("id", "created_at", "updated_at", "chain_id", "name", "head_id"),
    "customers_householdmember": ("id", "created_at", "updated_at", "household_id", "customer_id", "relation"),
    "customers_consent": ("id", "customer_id", "purpose", "granted", "source", "evidence", "recorded_by_id",
                          "recorded_at"),
    "customers_interaction": ("id", "customer_id", "kind", "text", "author_id", "clinic_id", "occurred_at", "data"),
    "visits_appointment": ("id", "created_at", "updated_at", "chain_id", "clinic_id", "customer_id", "doctor_id",
                           "service_item_id", "start_at", "end_at", "status", "notes", "external_id"),
    "visits_order": ("id", "created_at", "updated_at", "chain_id", "clinic_id", "customer_id", "external_id",
                     "ordered_at", "list_total_fen", "discount_fen", "amount_fen", "refunded_fen", "status",
                     "cashier_id", "notes"),
    "visits_orderline": ("id", "order_id", "item_id", "quantity", "unit_price_fen", "discount_fen", "amount_fen",
                         "refunded_fen", "tooth"),
    "visits_payment": ("id", "order_id", "method", "amount_fen", "paid_at"),
    "visits_refund": ("id", "order_id", "external_id", "amount_fen", "method", "reason", "refunded_at", "actor_id"),
    "visits_refundline": ("id", "refund_id", "order_line_id", "amount_fen"),
    "visits_treatmentplan": ("id", "created_at", "updated_at", "chain_id", "clinic_id", "customer_id", "doctor_id",
                             "title", "status", "steps_total", "steps_done", "estimated_fen", "planned_at",
                             "completed_at", "external_id"),
    "visits_planstep": ("id", "plan_id", "seq", "item_id", "tooth", "status", "done_at"),
    "visits_procedure": ("id", "created_at", "updated_at", "chain_id", "clinic_id", "customer_id", "item_id",
                         "doctor_id", "performed_on", "tooth", "notes", "order_line_id", "plan_step_id",
                         "external_id"),
}
# Parents before children, so foreign keys hold after every table is written.
TABLE_ORDER = list(COLUMNS)

# Mobile prefixes that phonenumbers' CN metadata accepts as mobile numbers.
MOBILE_PREFIXES = ("130 131 132 133 134 135 136 137 138 139 150 151 152 153 155 156 157 158 159 166 "
                   "176 177 178 180 181 182 183 184 185 186 187 188 189 198 199").split()
_MOBILE_SPACE = 10**8


@dataclass(frozen=True)
class Item:
    id: int
    code: str
    name: str
    category: str
    price: int
    special: bool
    surgical: bool


@dataclass
class ClinicCtx:
    id: int
    code: str
    city: str
    district: str
    lat: float
    lng: float
    communities: list[tuple[str, float, float]]
    doctors: list[int]
    front_desk: list[int]
    consultants: list[int]
    assistants: list[int]
    marketing: list[int] = field(default_factory=list)


class Ids:
    """Next primary key per table; the loader seeds it with max(id) + 1."""

    def __init__(self, start: dict[str, int] | None = None):
        self.next = {table: 1 for table in COLUMNS}
        self.next.update(start or {})

    def take(self, table: str) -> int:
        value = self.next[table]
        self.next[table] = value + 1
        return value


def mobile_params(seed: int) -> tuple[int, int]:
    """The (a, b) of a run's mobile bijection; a is coprime to 10^8 (odd, not a multiple of 5)."""
    mix = random.Random(seed * 7919 + 17)
    return mix.randrange(1, _MOBILE_SPACE // 10) * 10 + mix.choice((1, 3, 7, 9)), mix.randrange(_MOBILE_SPACE)


def mobile_for(index: int, *, a: int, b: int) -> str:
    """E.164 mobile number of the index-th person of a run, unique for index < 10^8.

    An affine bijection on 10^8 followed by a four-round Feistel network over the two 4-digit
    halves (a bijection whatever its round function), so consecutive people get numbers with no
    visible common step.
    """
    x = (a * index + b) % _MOBILE_SPACE
    left, right = divmod(x, 10_000)
    for key in (b % 9973, a % 9967, b % 9949, a % 9941):
        left, right = right, (left + ((right * 7919 + key) ** 2 // 100)) % 10_000
    x = left * 10_000 + right
    prefix = MOBILE_PREFIXES[(index * 7 + b) % len(MOBILE_PREFIXES)]
    return f"+86{prefix}{x:08d}"


@lru_cache(maxsize=200_000)
def search_keys(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    initials, full = pinyin_keys(name)
    return tuple(v[:64] for v in initials), tuple(v[:64] for v in full)


def _ri(rng: random.Random, a: int, b: int) -> int:
    """rng.randint without its argument checks (a third of the generator's time otherwise)."""
    return a + int(rng.random() * (b - a + 1))


def _rr(rng: random.Random, a: int, b: int | None = None) -> int:
    if b is None:
        a, b = 0, a
    return a + int(rng.random() * (b - a))


def _cum(pairs):
    values = [getattr(p[0], "value", p[0]) for p in pairs]
    return values, list(accumulate(p[1] for p in pairs))


_SURNAMES, _SURNAME_CUM = _cum(data.SURNAMES)
_CHANNELS, _CHANNEL_CUM = _cum(data.CHANNEL_WEIGHTS)
_PAY_METHODS, _PAY_CUM = _cum([(PaymentMethod.WECHAT_PAY, 46), (PaymentMethod.ALIPAY, 24),
                               (PaymentMethod.BANK_CARD, 12), (PaymentMethod.CASH, 4),
                               (PaymentMethod.INSURANCE, 6), (PaymentMethod.WALLET, 8)])
_TREATMENT_CATEGORIES = {Category.FILLING, Category.EXTRACTION, Category.IMPLANT, Category.ORTHODONTICS,
                         Category.WHITENING, Category.PROSTHODONTICS, Category.PERIODONTICS}
# where a free exam is sold or given away (group-buy platforms, community check-up days)
_FREE_EXAM_CHANNELS = {Channel.MEITUAN, Channel.DOUYIN, Channel.COMMUNITY_EVENT}
_NO_PROCEDURE_CODES = {"OR03", "IM05", "PD01", "PD99", "PE02"}
_SOURCE_BY_CHANNEL = {Channel.WECHAT_OA: "wechat", Channel.WECOM: "wecom", Channel.MINI_PROGRAM: "mini_program",
                      Channel.DOUYIN: "douyin", Channel.MEITUAN: "meituan", Channel.WEBSITE: "website",
                      Channel.BAIDU: "website"}  # consent sources the 360 page names (forms.CONSENT_SOURCES, Channel)


@dataclass
class Person:
    index: int
    id: int
    name: str
    gender: str
    birthday: dt.date
    age: int
    relation: str | None
    mobile: str | None
    clinic: ClinicCtx
    community: tuple[str, float, float]
    address: str
    created_day: int
    channel: str
    campaign: str


class PoolGenerator:
    """Generates households and their histories, chunk by chunk, from one seeded random.Random."""

    def __init__(self, *, seed: int, chain_id: int, clinics: list[ClinicCtx], items: dict[str, Item],
                 chain_staff: list[int], today: dt.date, years: int, ids: Ids, vendor: str,
                 visit_rate: float = 1.0):
        self.seed = seed
        self.rng = random.Random(seed)
        self.chain_id = chain_id
        self.clinics = clinics
        self.items = items
        self.chain_staff = chain_staff
        self.ids = ids
        self.visit_rate = visit_rate
        self.now_day = (today - dt.date(1970, 1, 1)).days
        self.start_day = self.now_day - 365 * years
        self.today = today
        self.index = 0
        self.mobile_a, self.mobile_b = mobile_params(seed)
        self.app_id = f"wx{random.Random(seed).getrandbits(64):016x}"
        if vendor == "postgresql":
            epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        else:  # SQLite stores naive UTC text, as Django does
            epoch = dt.datetime(1970, 1, 1)
        self._epoch = epoch
        # SQLite: timestamps leave as the text Django stores ("2026-05-01 08:15:00"; it sorts as the time does),
        # made here, in the worker processes, instead of by an adapter call per value in the one writing process
        # (a fifth of its time).
        self._as_text = vendor != "postgresql"
        self._day_epoch = dt.date(1970, 1, 1)
        self._days: dict[int, dt.datetime] = {}
        self._dates: dict[int, dt.date] = {}
        self._minutes = [dt.timedelta(minutes=m) for m in range(24 * 60 * 2)]

    # --- time helpers ---------------------------------------------------------------------------
    def ts(self, day: int, minute: int) -> dt.datetime | str:
        """A local (UTC+8) day number and minute of the day as a stored datetime (SQLite: its text)."""
        base = self._days.get(day)
        if base is None:
            base = self._days[day] = self._epoch + dt.timedelta(seconds=day * DAY - TZ_OFFSET)
        value = base + self._minutes[minute]
        return str(value) if self._as_text else value

    def date(self, day: int) -> dt.date:
        value = self._dates.get(day)
        if value is None:
            value = self._dates[day] = self._day_epoch + dt.timedelta(days=day)
        return value

    def _slot(self) -> int:
        """Minute of the day of an appointment: 09:00–19:45 in quarter hours."""
        return 540 + 15 * int(self.rng.random() * 44)

    # --- people -----------------------------------------------------------------------------------
    def _surname(self) -> str:
        return self.rng.choices(_SURNAMES, cum_weights=_SURNAME_CUM)[0]

    def _name(self, surname: str, gender: str, birth_year: int, rng: random.Random | None = None) -> str:
        generation = "old" if birth_year < 1975 else "mid" if birth_year < 2000 else "new"
        pool = data.GIVEN_NAMES[(generation, "M" if gender == Gender.MALE else "F")]
        # Popular names repeat a lot: a skewed pick over the pool.
        return surname + pool[int(len(pool) * (rng or self.rng).random() ** 1.6)]

    def _family_name(self, taken: set[str], surname: str, gender: str, birth_year: int, index: int) -> str:
        """A name no one else in the family has (siblings, a father and son never share one). A clash is drawn
        again from a stream of the person's own, so every other draw of the seed stays the same."""
        name = self._name(surname, gender, birth_year)
        if name in taken:  # rare: the second stream is made only then (seeding one costs more than a draw)
            again = random.Random(index)
            for _ in range(50):
                name = self._name(surname, gender, birth_year, rng=again)
                if name not in taken:
                    break
        return name

    def _birthday(self, age: int) -> dt.date:
        return self.today - dt.timedelta(days=age * 365 + _rr(self.rng, 365) + 1)

    def _household_plan(self) -> list[tuple[str, str, int, str]]:
        """[(relation, gender, age, surname)] with the head first."""
        rng = self.rng
        head_age = int(22 + 53 * rng.random() ** 1.3)
        head_gender = Gender.FEMALE if rng.random() < 0.55 else Gender.MALE
        head_surname = self._surname()
        members = [(Relation.HEAD, head_gender, head_age, head_surname)]
        r = rng.random()
        spouse = r < 0.48 and head_age >= 24
        kids = 0
        if 26 <= head_age <= 55 and r < 0.62:
            kids = 1 if rng.random() < 0.6 else 2
        parents = head_age <= 45 and rng.random() < 0.08
        if r >= 0.62 and r < 0.70 and head_age > 24:
            spouse = True
        if spouse:
            gender = Gender.MALE if head_gender == Gender.FEMALE else Gender.FEMALE
            age = max(20, head_age + _ri(rng, -4, 4))
            members.append((Relation.SPOUSE, gender, age, self._surname()))
        father_surname = head_surname if head_gender == Gender.MALE or not spouse else members[1][3]
        for _ in range(kids if spouse or rng.random() < 0.3 else 0):
            # from two: a baby is rarely on a dental record, and as a lead it drew "you asked about your teeth" calls
            age = _rr(rng, 2, max(3, min(18, head_age - 24)))
            gender = Gender.MALE if rng.random() < 0.52 else Gender.FEMALE
            members.append((Relation.CHILD, gender, age, father_surname if rng.random() < 0.9 else self._surname()))
        if parents:
            age = min(92, head_age + _ri(rng, 24, 32))
            members.append((Relation.PARENT, Gender.FEMALE, age, self._surname()))
            if rng.random() < 0.6:
                members.append((Relation.PARENT, Gender.MALE, min(95, age + _ri(rng, 0, 4)), head_surname))
        return members

    def _community(self, clinic: ClinicCtx) -> tuple[str, float, float]:
        # Closer communities send more patients: a skewed pick over a list sorted by distance.
        c = clinic.communities
        return c[int(len(c) * self.rng.random() ** 1.5)]

    def _channel(self) -> tuple[str, str]:
        channel = self.rng.choices(_CHANNELS, cum_weights=_CHANNEL_CUM)[0]
        campaigns = data.CAMPAIGNS.get(channel)
        return channel, (self.rng.choice(campaigns) if campaigns else "")

    # --- the chunk --------------------------------------------------------------------------------
    def chunk_at(self, k: int, *, start: int, n: int, ids: Ids, rate: float) -> dict[str, list[tuple]]:
        """Rows for the k-th chunk of a run: customers start … start + n − 1, keys from `ids`, drawn from a
        random stream of the chunk's own (the run's seed for chunk 0, as `chunk` would; a string derived
        from it for the others). So any chunk can be generated on its own, in any process and order, and
        still come out the same."""
        self.rng = random.Random(self.seed if k == 0 else f"{self.seed}:{k}")
        self.index, self.ids, self.visit_rate = start, ids, rate
        return self.chunk(n)

    def chunk(self, n: int) -> dict[str, list[tuple]]:
        """Rows for exactly n more customers (the last household is cut to fit)."""
        rows: dict[str, list[tuple]] = defaultdict(list)
        made = 0
        while made < n:
            plan = self._household_plan()[: n - made]
            self._household(plan, rows)
            made += len(plan)
        return rows

    def _household(self, plan, rows) -> None:
        rng = self.rng
        clinic = self.clinics[int(len(self.clinics) * rng.random() ** 1.2)]
        community = self._community(clinic)
        building, room = _ri(rng, 1, 36), _ri(rng, 1, 28) * 100 + _ri(rng, 1, 4)
        address = f"{clinic.city}市{clinic.district}{community[0]}{building}号楼{room}室"
        span = self.now_day - self.start_day
        head_day = self.start_day + int(span * rng.random() ** 0.8)
        channel, campaign = self._channel()
        people: list[Person] = []
        for relation, gender, age, surname in plan:
            birthday = self._birthday(age)
            index = self.index
            self.index += 1
            has_mobile = age >= 14 and not (age > 75 and rng.random() < 0.4)
            if relation == Relation.HEAD:
                day, ch, camp = head_day, channel, campaign
            else:
                day = min(self.now_day - 1, head_day + int(rng.random() ** 2 * 400))
                ch, camp = Channel.REFERRAL, "家庭成员"
            # Nobody is on file before they are born, and a child is brought in from their first birthday.
            born_day = (birthday - dt.date(1970, 1, 1)).days
            earliest = born_day + 365 if born_day + 365 < self.now_day else born_day
            day = min(max(day, earliest), self.now_day - 1)
            people.append(Person(
                index=index, id=self.ids.take("customers_customer"),
                name=self._family_name({p.name for p in people}, surname, gender, birthday.year, index),
                gender=gender, birthday=birthday, age=age,
                relation=relation if len(plan) > 1 else None,
                mobile=mobile_for(index, a=self.mobile_a, b=self.mobile_b) if has_mobile else None,
                clinic=clinic, community=community, address=address, created_day=day, channel=ch, campaign=camp,
            ))
        head_is_patient = False
        for person in people:
            archetype = self._archetype(person, head_is_patient)
            visits = self._person(person, archetype, rows)
            if person.relation == Relation.HEAD and visits:
                head_is_patient = True
        if len(people) > 1:
            head = people[0]
            hh_id = self.ids.take("customers_household")
            created = self.ts(max(p.created_day for p in people), 600)
            rows["customers_household"].append((hh_id, created, created, self.chain_id, f"{head.name}家", head.id))
            for p in people:
                rows["customers_householdmember"].append(
                    (self.ids.take("customers_householdmember"), created, created, hh_id, p.id, p.relation))

    def _archetype(self, p: Person, family_patient: bool) -> str:
        archetype = self._archetype_drawn(p, family_patient)
        # Under one year old: on file, never seen (the draw is still made, so every later person of a
        # given seed stays the same).
        return "lead" if p.age < 1 else archetype

    def _archetype_drawn(self, p: Person, family_patient: bool) -> str:
        rng, age = self.rng, p.age
        if p.relation not in (None, Relation.HEAD) and family_patient and rng.random() < 0.6:
            return "child" if age < 13 else rng.choice(("regular", "regular", "occasional", "implant" if age > 50
                                                        else "regular"))
        # consult: came for a free consultation or exam and was never billed (~7 % of those who come; a child
        # checked free after a kindergarten talk, a teenager brought for an orthodontic consultation)
        if age < 13:
            r = rng.random()
            return "child" if r < 0.81 else "consult" if r < 0.85 else "lead"
        if age < 18:
            return rng.choices(("ortho", "regular", "lead", "occasional", "consult"), (30, 40, 15, 15, 8))[0]
        weights = {"lead": 24, "special": 12 if p.channel in (Channel.DOUYIN, Channel.MEITUAN) else 6,
                   "occasional": 18, "regular": 28,
                   "implant": 0 if age < 30 else 4 if age < 45 else 12, "ortho": 8 if age < 35 else 2,
                   "perio": 2 if age < 35 else 6, "crown": 4,
                   "consult": 11 if p.channel in _FREE_EXAM_CHANNELS else 8}
        return rng.choices(list(weights), list(weights.values()))[0]

    # --- one person's history ----------------------------------------------------------------------
    def _person(self, p: Person, archetype: str, rows) -> int:
        rng, items, clinic = self.rng, self.items, p.clinic
        now_day = self.now_day
        doctor = rng.choice(clinic.doctors)
        consultant = rng.choice(clinic.consultants)
        created_minute = 480 + _rr(rng, 840)
        created = self.ts(p.created_day, created_minute)
        # visits: day -> list of (item code, tooth, plan step id or None); free visits have no items
        visits: dict[int, list] = defaultdict(list)
        plans: list[dict] = []
        booked: list[tuple[int, str]] = []  # future appointments (day, item code)
        stop_day = now_day

        if archetype == "lead":
            first_day = None
        else:
            first_day = p.created_day + (0 if p.channel == Channel.WALK_IN else int(rng.random() ** 3 * 30))
        if first_day is not None and first_day >= now_day:
            if first_day < now_day + 30:
                booked.append((first_day, "EX01"))
            first_day = None
        if first_day is not None and archetype == "consult":
            self._consultation(p, first_day, visits, booked)
        elif first_day is not None:
            life = {"special": 60 if rng.random() < 0.65 else 900, "occasional": 300, "regular": 1500,
                    "child": 1100, "implant": 1200, "ortho": 1400, "perio": 1000, "crown": 1000}[archetype]
            stop_day = min(now_day, first_day + 1 + int(rng.expovariate(1 / life)))
            first_items = self._first_visit_items(archetype, p)
            visits[first_day].extend((code, tooth, None) for code, tooth in first_items)
            if archetype in ("implant", "ortho", "perio", "crown") or (archetype == "child" and rng.random() < 0.06):
                plans.append(self._plan(archetype if archetype != "child" else "early_ortho", p, first_day,
                                        doctor, visits, rows))
            self._recurring(archetype, first_day, stop_day, visits, booked, age=p.age)
        # Plans decide their own stopping point; a plan's next step inside 60 days is booked.
        for plan in plans:
            stop_at = plan["stop_day"]
            for step in plan["steps"]:
                if step["day"] >= now_day and step["day"] < stop_at:
                    if step["day"] < now_day + 60 and not any(b[0] == step["day"] for b in booked):
                        booked.append((step["day"], step["code"]))
                    break

        # Emit visits in day order.
        visit_count, spend = 0, 0
        first_ts = last_ts = None
        last_day = None
        appt_rows, order_rows = rows["visits_appointment"], rows["visits_order"]
        for day in sorted(visits):
            if day >= now_day:
                continue
            lines = visits[day]
            # some visits are preceded by a no-show or a cancelled booking
            r = rng.random()
            if r < 0.11 and day - 3 > p.created_day:
                miss_day = day - _ri(rng, 2, 10)
                if miss_day > p.created_day:
                    status = AppointmentStatus.NO_SHOW if r < 0.06 else AppointmentStatus.CANCELLED
                    self._appointment(appt_rows, p, doctor, miss_day, self._slot(), 30, status, None)
            minute = self._slot()
            duration = 30 if not lines else 45 + 15 * _rr(rng, 5)
            first_code = lines[0][0] if lines else ("IM05" if any(pl["kind"] == "implant" for pl in plans) else "EX01")
            start = self._appointment(appt_rows, p, doctor, day, minute, duration, AppointmentStatus.COMPLETED,
                                      items[first_code].id)
            visit_count += 1
            first_ts = first_ts or start
            last_ts, last_day = start, day
            priced = [line for line in lines if items[line[0]].price > 0]
            if priced:
                spend += self._order(rows, order_rows, p, doctor, day, minute + duration, priced)
        for day, code in booked:
            self._appointment(appt_rows, p, doctor, day, self._slot(), 45, AppointmentStatus.BOOKED, items[code].id)
        if first_day is None and not booked and rng.random() < 0.35:
            # a lead who booked and never came
            day = min(now_day - 1, p.created_day + _ri(rng, 1, 14))
            if day > p.created_day:
                status = AppointmentStatus.NO_SHOW if rng.random() < 0.6 else AppointmentStatus.CANCELLED
                self._appointment(appt_rows, p, doctor, day, self._slot(), 30, status, items["EX01"].id)
        for plan in plans:
            self._plan_finish(plan, rows, last_day)

        # A first approximation; lifecycle's demo_load re-derives every stage from the facts (stages_derive).
        reached = Stage.LEAD if visit_count == 0 else Stage.TREATED if spend > 0 else Stage.ARRIVED
        if visit_count and last_day < now_day - DORMANT_AFTER_DAYS:
            stage = Stage.DORMANT
            # the nightly lifecycle run moves a patient to dormant the night the year without a visit ends
            stage_at = self.ts(last_day + DORMANT_AFTER_DAYS + 1, 120)
        else:
            stage = reached
            stage_at = first_ts if visit_count else created
        self._customer_rows(p, rows, created, created_minute, stage, visit_count, spend, first_ts, last_ts,
                            consultant if (visit_count or rng.random() < 0.5) else None, last_day, reached, stage_at,
                            consulted=archetype == "consult")
        return visit_count

    def _first_visit_items(self, archetype: str, p: Person) -> list[tuple[str, str]]:
        rng = self.rng
        if archetype == "special":
            out = [("CL99", "")]
            if rng.random() < 0.2:
                out.append((rng.choice(("OC03", "OC04", "OC05")), ""))
            return out
        if archetype == "child":
            return [("EX01", ""), ("PD99" if p.channel in (Channel.MEITUAN, Channel.DOUYIN) else "PD01", "")]
        if archetype == "implant":
            return [("EX01", ""), ("EX03", "")]
        if archetype == "ortho":
            return [("EX01", ""), ("EX02", "")]
        if archetype == "perio":
            return [("EX01", ""), ("CL01", "")]
        if archetype == "occasional" and rng.random() < 0.5:
            return [("EX01", ""), (rng.choice(("FI01", "FI01", "EXT1", "FI03", "EXT2")), self._tooth())]
        return [("EX01", ""), ("CL01", "")]

    def _consultation(self, p: Person, first_day: int, visits, booked) -> None:
        """A free first visit and no bill: a consultation (初诊咨询: a price, a plan, a second opinion) or a free
        exam (a group-buy voucher, a community check-up day). A few come back once more, free again; a few seen
        in the last month have booked their first treatment since."""
        rng = self.rng
        free_exam = p.channel in _FREE_EXAM_CHANNELS or rng.random() < 0.3
        visits[first_day].append(("CS02" if free_exam else "CS01", "", None))
        r = rng.random()
        if r < 0.15:
            visits[first_day + _ri(rng, 7, 40)].append(("CS01", "", None))  # a day after today is dropped
        elif r < 0.45 and first_day >= self.now_day - 30:
            booked.append((self.now_day + _ri(rng, 1, 21), "CL01" if free_exam else "EX01"))

    def _tooth(self, child: bool = False) -> str:
        rng = self.rng
        if child:
            return f"{_ri(rng, 5, 8)}{_ri(rng, 1, 5)}"
        return f"{_ri(rng, 1, 4)}{rng.choice('12345667778')}"

    def _recurring(self, archetype, first_day, stop_day, visits, booked, *, age: int = 30) -> None:
        rng = self.rng
        rate = {"special": 1.6, "occasional": 0.9, "regular": 2.6, "child": 3.0, "implant": 1.4, "ortho": 1.0,
                "perio": 3.0, "crown": 1.8}[archetype] * self.visit_rate
        mean_gap = 365 / rate
        day = first_day
        child = archetype == "child"
        # A cleaning (or periodontal maintenance) is not repeated within months, however often the person comes:
        # the seed's 10 orders a customer make regulars visit monthly, and those visits are check-ups instead.
        last_clean = first_day
        sealed: set[str] = set()
        while True:
            day += max(14, int(rng.expovariate(1 / mean_gap)))
            if day >= stop_day:
                if stop_day == self.now_day and day < self.now_day + 45 and rng.random() < 0.5:
                    booked.append((day, "CL01" if not child else "PD01"))
                return
            lines = visits[day]
            r = rng.random()
            if child:
                if self._child_visit(lines, r, age - (self.now_day - day) / 365, day - last_clean >= 90, sealed):
                    last_clean = day
                continue
            if archetype == "perio" and day - last_clean >= 80:
                lines.append(("PE02", "", None))
                last_clean = day
            elif archetype != "perio" and r < 0.55 and day - last_clean >= 150:  # the cleaning includes the check-up
                lines.append(("CL01", "", None))
                last_clean = day
                if rng.random() < 0.15:
                    lines.append(("CL02", "", None))
            else:
                lines.append(("EX01", "", None))
            r = rng.random()
            if r < 0.22:
                lines.append((rng.choice(("FI01", "FI01", "FI02", "FI03")), self._tooth(), None))
            elif r < 0.27:
                lines.append((rng.choice(("EXT1", "EXT1", "EXT2")), self._tooth(), None))
            elif r < 0.29:
                lines.append(("WH01", "", None))
            if rng.random() < 0.14:
                lines.append((rng.choice(("OC01", "OC02", "OC03", "OC04", "OC05")), "", None))

    def _child_visit(self, lines: list, r: float, age: float, fluoride_due: bool, sealed: set[str]) -> bool:
        """A child's visit as a paediatric dentist would bill it: fluoride varnish every three months at most
        (otherwise a check-up), sealants once per tooth on the molars of the age (primary molars from three,
        the first permanent molars from six, the second from eleven), fillings of primary teeth from two. True when
        the visit had fluoride."""
        lines.append(("PD01" if fluoride_due else "EX01", "", None))
        if r < 0.3 and age >= 3:
            molars = [f"{q}{n}" for q in (5, 6, 7, 8) for n in (4, 5)] if age < 6 else \
                [f"{q}{n}" for q in (1, 2, 3, 4) for n in ((6, 7) if age >= 11 else (6,))]
            unsealed = [t for t in molars if t not in sealed]
            if unsealed:
                tooth = self.rng.choice(unsealed)
                sealed.add(tooth)
                lines.append(("PD02", tooth, None))
        elif 0.3 <= r < 0.5 and age >= 2:
            lines.append(("PD03", self._tooth(child=True), None))
        return fluoride_due

    def _plan(self, kind: str, p: Person, first_day: int, doctor: int, visits, rows) -> dict:
        """Schedule a multi-visit plan's steps; steps before the person's stopping point are done."""
        rng = self.rng
        steps: list[dict] = []  # {"code", "tooth", "day"}
        day = first_day
        if kind == "implant":
            teeth: list[str] = []  # distinct, and no wisdom tooth (x8) is replaced by an implant
            for _ in range(rng.choices((1, 2, 3), (70, 20, 10))[0]):
                tooth = self._tooth()
                while tooth.endswith("8") or tooth in teeth:
                    tooth = self._tooth()
                teeth.append(tooth)
            title = f"种植修复（{len(teeth)}颗）"
            day += _ri(rng, 7, 30)
            implant = "IM02" if rng.random() < 0.4 else "IM01"
            for t in teeth:
                steps.append({"code": implant, "tooth": t, "day": day})
                if rng.random() < 0.3:
                    steps.append({"code": "IM03", "tooth": t, "day": day})
            check = day + _ri(rng, 7, 10)
            day += _ri(rng, 90, 150)
            for t in teeth:
                steps.append({"code": "IM04", "tooth": t, "day": day})
            abandon = 0.15
        elif kind in ("ortho", "early_ortho"):
            check = None
            code = "PD04" if kind == "early_ortho" else ("OR01" if rng.random() < 0.45 else "OR02")
            title = {"PD04": "儿童早期矫治", "OR01": "隐形矫正", "OR02": "固定矫正"}[code]
            day += _ri(rng, 10, 30)
            steps.append({"code": code, "tooth": "", "day": day})
            for _ in range(_ri(rng, 8, 14) if kind == "early_ortho" else _ri(rng, 12, 24)):
                day += _ri(rng, 28, 45)
                steps.append({"code": "OR03", "tooth": "", "day": day})
            day += _ri(rng, 28, 45)
            steps.append({"code": "OR04", "tooth": "", "day": day})
            abandon = 0.08
        elif kind == "perio":
            check = None
            title = "牙周系统治疗"
            for quadrant in range(1, 5):
                if quadrant in (1, 3):
                    day += _ri(rng, 5, 10)
                steps.append({"code": "PE01", "tooth": f"Q{quadrant}", "day": day})
            abandon = 0.3
        else:  # crown
            check = None
            tooth = self._tooth()
            title = "根管治疗+牙冠修复"
            day += _ri(rng, 3, 14)
            steps.append({"code": "FI03", "tooth": tooth, "day": day})
            day += _ri(rng, 7, 21)
            steps.append({"code": "PR02" if rng.random() < 0.6 else "PR01", "tooth": tooth, "day": day})
            abandon = 0.2
        stop_day = self.now_day + 10_000
        if rng.random() < abandon:
            stop_day = steps[_rr(rng, len(steps))]["day"]  # the step where they stopped coming
        plan_id = self.ids.take("visits_treatmentplan")
        for seq, step in enumerate(steps, start=1):
            step["id"] = self.ids.take("visits_planstep")
            step["seq"] = seq
            step["done"] = step["day"] < min(stop_day, self.now_day)
            if step["done"]:
                visits[step["day"]].append((step["code"], step["tooth"], step))
        if check is not None and check < min(stop_day, self.now_day):
            visits[check]  # noqa: B018 — a free post-operative check: a visit with no items
        return {"id": plan_id, "kind": kind, "title": title, "steps": steps, "stop_day": stop_day,
                "planned_day": first_day, "doctor": doctor, "customer": p}

    def _plan_finish(self, plan: dict, rows, last_visit_day: int | None) -> None:
        items = self.items
        steps = plan["steps"]
        done = [s for s in steps if s["done"]]
        if len(done) == len(steps):
            status, completed = PlanStatus.COMPLETED, done[-1]["done_at"]
        elif plan["stop_day"] < self.now_day and (last_visit_day or 0) < self.now_day - 120:
            status, completed = PlanStatus.ABANDONED, None
        else:
            status, completed = PlanStatus.ACTIVE, None
        p = plan["customer"]
        planned = self.ts(plan["planned_day"], 600)
        updated = done[-1]["done_at"] if done else planned
        estimated = sum(items[s["code"]].price for s in steps)
        rows["visits_treatmentplan"].append((
            plan["id"], planned, updated, self.chain_id, p.clinic.id, p.id, plan["doctor"], plan["title"], status,
            len(steps), len(done), estimated, planned, completed, None))
        for s in steps:
            rows["visits_planstep"].append((s["id"], plan["id"], s["seq"], items[s["code"]].id, s["tooth"],
                                            StepStatus.DONE if s["done"] else StepStatus.PLANNED,
                                            s.get("done_at")))

    def _appointment(self, out, p: Person, doctor, day, minute, duration, status, item_id) -> dt.datetime:
        start = self.ts(day, minute)
        end = self.ts(day, minute + duration)
        booked_at = self.ts(max(p.created_day, day - int(self.rng.random() * 8)), 600)
        if booked_at > start:
            booked_at = start
        updated = end if status != AppointmentStatus.BOOKED else booked_at
        out.append((self.ids.take("visits_appointment"), booked_at, updated, self.chain_id, p.clinic.id, p.id,
                    doctor, item_id, start, end, status, "", None))
        return start

    def _order(self, rows, order_rows, p: Person, doctor, day, minute, lines) -> int:
        """One bill for a visit's priced items; returns the amount kept after refunds."""
        rng, items, ids = self.rng, self.items, self.ids
        at = self.ts(day, minute)
        order_id = ids.take("visits_order")
        line_rows = rows["visits_orderline"]
        list_total = discount_total = 0
        made = []
        for code, tooth, step in lines:
            item = items[code]
            unit = item.price
            discount = 0
            if not item.special and rng.random() < 0.15:
                discount = (unit * rng.choice((5, 10, 12, 15, 20)) // 100) // 100 * 100  # whole yuan
            line_id = ids.take("visits_orderline")
            made.append([line_id, item, unit - discount, 0, tooth])
            list_total += unit
            discount_total += discount
            if step is not None:
                step["done_at"] = at
            if step is not None or (item.category in _TREATMENT_CATEGORIES and code not in _NO_PROCEDURE_CODES):
                rows["visits_procedure"].append((
                    ids.take("visits_procedure"), at, at, self.chain_id, p.clinic.id, p.id, item.id, doctor,
                    self.date(day), tooth, "", line_id, step["id"] if step is not None else None, None))
        amount = list_total - discount_total
        # payments
        pay_rows = rows["visits_payment"]
        method = rng.choices(_PAY_METHODS, cum_weights=_PAY_CUM)[0]
        if amount >= 200_000 and rng.random() < 0.4:
            first = amount * _ri(rng, 2, 5) // 10
            pay_rows.append((ids.take("visits_payment"), order_id, PaymentMethod.BANK_CARD, first, at))
            pay_rows.append((ids.take("visits_payment"), order_id, method, amount - first, at))
        else:
            pay_rows.append((ids.take("visits_payment"), order_id, method, amount, at))
        # a few refunds: a returned product, or a cancelled treatment refunded in part
        refunded = 0
        if rng.random() < 0.006:
            refunded = self._refund(rows, order_id, made, method, day, p)
        status = (OrderStatus.PAID if not refunded else
                  OrderStatus.REFUNDED if refunded == amount else OrderStatus.PARTIALLY_REFUNDED)
        for line_id, item, line_amount, line_refunded, tooth in made:
            line_rows.append((line_id, order_id, item.id, 1, item.price, item.price - line_amount, line_amount,
                              line_refunded, tooth))
        order_rows.append((order_id, at, at, self.chain_id, p.clinic.id, p.id, None, at, list_total, discount_total,
                           amount, refunded, status, rng.choice(p.clinic.front_desk), ""))
        return amount - refunded

    def _refund(self, rows, order_id, made, method, day, p: Person) -> int:
        rng, ids = self.rng, self.ids
        refund_day = min(self.now_day - 1, day + _ri(rng, 0, 14))
        at = self.ts(refund_day, 900)
        line = max(made, key=lambda m: m[2])
        if len(made) > 1 and rng.random() < 0.5:
            amount, reason = line[2], "项目取消，退该项费用"
        else:
            amount, reason = max(1, line[2] // 2), "部分退款：顾客不满意"
        refund_id = ids.take("visits_refund")
        line[3] = amount
        rows["visits_refund"].append((refund_id, order_id, None, amount, method, reason, at,
                                      p.clinic.front_desk[0]))
        rows["visits_refundline"].append((ids.take("visits_refundline"), refund_id, line[0], amount))
        return amount

    # --- the customer row and what hangs off it ----------------------------------------------------
    def _customer_rows(self, p: Person, rows, created, created_minute, stage, visit_count, spend, first_ts,
                       last_ts, consultant, last_day, reached, stage_at, consulted: bool = False) -> None:
        rng, chain_id = self.rng, self.chain_id
        clinic = p.clinic
        staff_attr = None
        if p.channel in (Channel.REFERRAL, Channel.WECOM, Channel.COMMUNITY_EVENT):
            staff_attr = rng.choice(clinic.consultants + clinic.marketing)
        last_channel, last_campaign, last_at, last_staff = p.channel, p.campaign, created, staff_attr
        if rng.random() < 0.25 and p.created_day < self.now_day - 30:
            last_channel, last_campaign = rng.choice(((Channel.WECHAT_OA, "春季护齿月"), (Channel.WECOM, "复诊提醒"),
                                                      (Channel.MINI_PROGRAM, "在线预约立减"),
                                                      (Channel.SMS, "半年洁牙提醒")))
            last_at = self.ts(_ri(rng, p.created_day + 1, self.now_day - 1), 600 + _rr(rng, 600))
            last_staff = None
        updated = max(x for x in (created, last_ts, last_at) if x is not None)
        community, lat, lng = p.community
        lat += (rng.random() - 0.5) * 0.002
        lng += (rng.random() - 0.5) * 0.002
        rows["customers_customer"].append((
            p.id, created, updated, chain_id, p.name, p.mobile, (p.mobile or "")[-4:], p.gender, p.birthday,
            p.address, community, f"{lat:.6f}", f"{lng:.6f}", clinic.id, consultant, stage, "",
            p.channel, p.campaign, staff_attr, created, last_channel, last_campaign, last_staff, last_at,
            first_ts, last_ts, visit_count, spend, None, reached, stage_at))
        initials, full = search_keys(p.name)
        keys = rows["customers_customersearchkey"]
        for value in initials:
            keys.append((self.ids.take("customers_customersearchkey"), p.id, chain_id, clinic.id, "i", value))
        for value in full:
            keys.append((self.ids.take("customers_customersearchkey"), p.id, chain_id, clinic.id, "p", value))
        # identities
        idents = rows["customers_identity"]
        wechat = p.channel in (Channel.WECHAT_OA, Channel.WECOM, Channel.MINI_PROGRAM) or rng.random() < 0.45
        if p.age < 14 or (p.mobile is None and not wechat):
            wechat = p.mobile is None and p.age >= 14
        if wechat:
            openid = "o" + base64.urlsafe_b64encode(rng.getrandbits(168).to_bytes(21, "big")).decode()[:27]
            idents.append((self.ids.take("customers_identity"), created, created, chain_id, p.id,
                           IdentityKind.WECHAT_OPENID, openid, self.app_id, "wechat"))
            if rng.random() < 0.4:
                idents.append((self.ids.take("customers_identity"), created, created, chain_id, p.id,
                               IdentityKind.WECHAT_UNIONID, "u" + openid[1:], "", "wechat"))
        if p.channel == Channel.DOUYIN:
            idents.append((self.ids.take("customers_identity"), created, created, chain_id, p.id,
                           IdentityKind.DOUYIN_OPENID, f"dy_{rng.getrandbits(64):016x}", "", "douyin"))
        if visit_count:
            idents.append((self.ids.take("customers_identity"), first_ts, first_ts, chain_id, p.id, IdentityKind.PMS,
                           f"HIS{clinic.code}{p.id:09d}", "", "pms"))
            if wechat and rng.random() < 0.5:
                idents.append((self.ids.take("customers_identity"), first_ts, first_ts, chain_id, p.id,
                               IdentityKind.WECOM_EXTERNAL_USERID, f"wm{rng.getrandbits(96):024x}", "", "wecom"))
        # consents: data processing at sign-up, health data at the first visit, marketing per channel
        consents = rows["customers_consent"]
        source = _SOURCE_BY_CHANNEL.get(p.channel, "paper")
        consents.append((self.ids.take("customers_consent"), p.id, ConsentPurpose.DATA_PROCESSING, True, source,
                         "隐私政策 v2", None, created))
        if visit_count:
            consents.append((self.ids.take("customers_consent"), p.id, ConsentPurpose.HEALTH_DATA, True, "paper",
                             "初诊知情同意书", clinic.front_desk[0], first_ts))
        if p.mobile and rng.random() < 0.5:
            purpose = ConsentPurpose.MARKETING_WECHAT if wechat else ConsentPurpose.MARKETING_SMS
            consents.append((self.ids.take("customers_consent"), p.id, purpose, True, source, "", None, created))
            if rng.random() < 0.08 and last_at:
                consents.append((self.ids.take("customers_consent"), p.id, purpose, False, "sms",
                                 "回复TD退订", None, last_at))
        # timeline
        inter = rows["customers_interaction"]
        # what customers.services writes for a person created through the API (online channels: the channel's
        # integration) or at the front desk
        inter.append((self.ids.take("customers_interaction"), p.id,
                      InteractionKind.FORM if source != "paper" else InteractionKind.SYSTEM,
                      created_text(source="api" if source != "paper" else "form", channel=p.channel,
                                   campaign=p.campaign), staff_attr, clinic.id, created, "{}"))
        if not visit_count:
            for k in range(rng.choice((0, 1, 1, 2))):
                at = self.ts(min(self.now_day - 1, p.created_day + 1 + 3 * k), 630 + _rr(rng, 420))
                inter.append((self.ids.take("customers_interaction"), p.id, InteractionKind.CALL,
                              rng.choice(data.LEAD_NOTES), consultant or clinic.consultants[0], clinic.id, at, "{}"))
        elif rng.random() < (0.8 if consulted else 0.5) and last_day is not None and last_day < self.now_day - 2:
            # the consultant's call after the visit (after a free one that led nowhere yet: what was said)
            at = self.ts(last_day + _ri(rng, 1, 2), 960)
            inter.append((self.ids.take("customers_interaction"), p.id, InteractionKind.CALL,
                          rng.choice(data.CONSULT_NOTES if consulted else data.VISIT_NOTES),
                          consultant if consulted else clinic.consultants[-1], clinic.id, at, "{}"))


def community_ring(rng: random.Random, lat: float, lng: float, count: int) -> list[tuple[str, float, float]]:
    """Community names with coordinates within ~3 km of a clinic, nearest first."""
    out, seen = [], set()
    while len(out) < count:
        name = rng.choice(data.COMMUNITY_PREFIXES) + rng.choice(data.COMMUNITY_SUFFIXES)
        if name in seen:
            name += f"{len(out) % 9 + 2}期"
            if name in seen:
                continue
        seen.add(name)
        distance_km = 3.0 * math.sqrt(rng.random())
        bearing = rng.random() * 2 * math.pi
        dlat = distance_km * math.cos(bearing) / 111.32
        dlng = distance_km * math.sin(bearing) / (111.32 * math.cos(math.radians(lat)))
        out.append((distance_km, name, round(lat + dlat, 6), round(lng + dlng, 6)))
    out.sort()
    return [(name, la, ln) for _d, name, la, ln in out]
