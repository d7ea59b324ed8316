"""Invariants of the rule-tree compiler on generated chains, against a small reference evaluator of its own.

The reference below is written from the field registry's words (rules/fields.py, the README's "Invariants") and
evaluates the *drawn* data in Python, without reading the database back (tests/reference.py reads it back): so a
wrong row as much as a wrong SQL condition shows up. Besides "compiled == reference" the algebraic laws a
two-valued compiler must keep are checked on the database alone: not(not x) = x, all([x]) = any([x]) = x,
De Morgan, x ∪ not x = the whole scoped pool and x ∩ not x = ∅ (the law a NULL slipping through a `not`
breaks), preview count = the size of the list, and a clinic member's result ⊆ their clinics' patients.
Fixed cases cover the edges: the Asia/Shanghai day against UTC midnight, birthdays and 29 February, refunds,
merged and erased customers.
"""

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.errors import ValidationFailed
from smileloop.customers.models import Consent, Customer, Interaction
from smileloop.membership.models import Membership
from smileloop.segments.rules.compiler import compile
from smileloop.segments.rules.validation import validate
from smileloop.segments.selectors import chain_scope, segment_count, segment_preview
from smileloop.segments.tests.factories import AppointmentFactory, OrderFactory
from smileloop.tagging.models import CustomerTag
from smileloop.visits.models import Appointment, Order, TreatmentPlan

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Days that move the edges: a leap day, the days around it, the turn of the year (birthday "next month").
TODAYS = [dt.date(2025, 6, 15), dt.date(2024, 2, 29), dt.date(2025, 2, 28), dt.date(2025, 3, 1),
          dt.date(2024, 12, 31), dt.date(2025, 1, 1)]
# Minutes of the local day around the edges: local midnight, UTC midnight (08:00 in Shanghai), the day's end.
MINUTES = st.one_of(st.sampled_from([0, 1, 479, 480, 481, 1438, 1439]), st.integers(0, 1439))
STAGES = ["lead", "contacted", "booked", "treated", "dormant", "lost"]
PURPOSES = ["marketing_sms", "marketing_wechat"]
# No shrinking: a shrink of a generated chain takes minutes; the failing draw is printed as it is.
HYPOTHESIS = settings(max_examples=20, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
                      suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                             HealthCheck.data_too_large])


def local(day: dt.date, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=SHANGHAI) + dt.timedelta(minutes=minute, seconds=second)


def years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a common year
        return day.replace(year=day.year - years, day=28)


# --- the drawn world ------------------------------------------------------------------------------------


@dataclass
class Person:
    stage: str
    clinic: str | None  # "a", "b" or None
    consultant: bool  # front desk A is their consultant (in A's scope whatever their clinic)
    source: str
    gender: str
    birthday: dt.date | None
    community: str
    visit_count: int
    last_visit: tuple[int, int] | None  # (days ago, minute)
    orders: list[tuple[int, int, int, int]]  # (days ago, minute, amount, refunded)
    visits: list[tuple[int, int, str]]  # (days ago, minute, status)
    tags: set[str]
    consents: list[tuple[str, bool, int, int]]  # (purpose, granted, days ago, minute), in the order recorded
    contacts: list[tuple[str, bool, int, int]]  # (kind, has an author, days ago, minute)
    plans: list[tuple[str, int, int]]  # (status, steps total, steps done)
    membership: tuple[int, str, int | None] | None  # (tier index, status, expires in days or None)
    merged: bool
    erased: bool
    id: int | None = None


def _birthdays(today: dt.date):
    near = st.builds(lambda years, delta: years_before(today, years) + dt.timedelta(days=delta),
                     st.integers(0, 80), st.integers(-1, 1))
    return st.one_of(st.none(), near, st.sampled_from([dt.date(2000, 2, 29), dt.date(1996, 2, 29),
                                                       dt.date(1999, 3, 1), dt.date(2001, 2, 28)]),
                     st.dates(dt.date(1940, 1, 1), today))


def _people(today: dt.date):
    days = st.integers(-1, 45)
    person = st.builds(
        Person,
        stage=st.sampled_from(STAGES),
        clinic=st.sampled_from(["a", "b", None]),
        consultant=st.booleans(),
        source=st.sampled_from(["", "douyin", "referral", "wecom"]),
        gender=st.sampled_from(["M", "F", "U"]),
        birthday=_birthdays(today),
        community=st.sampled_from(["", "阳光小区", "阳光花园", "绿地Garden", "green"]),
        visit_count=st.integers(0, 4),
        last_visit=st.one_of(st.none(), st.tuples(st.integers(0, 45), MINUTES)),
        orders=st.lists(st.tuples(days, MINUTES, st.sampled_from([0, 1, 9900, 50000]), st.integers(0, 100)),
                        max_size=3).map(lambda rows: [(d, m, a, a * r // 100) for d, m, a, r in rows]),
        visits=st.lists(st.tuples(days, MINUTES, st.sampled_from(["booked", "arrived", "completed", "no_show"])),
                        max_size=3),
        tags=st.sets(st.sampled_from(["implant", "ortho", "vip"]), max_size=3),
        consents=st.lists(st.tuples(st.sampled_from(PURPOSES), st.booleans(), st.integers(0, 3), MINUTES),
                          max_size=3),
        contacts=st.lists(st.tuples(st.sampled_from(["call", "chat", "sms", "note"]), st.booleans(),
                                    st.integers(0, 45), MINUTES), max_size=3),
        plans=st.lists(st.tuples(st.sampled_from(["active", "completed", "abandoned"]), st.integers(0, 3),
                                 st.integers(0, 3)).map(lambda p: (p[0], p[1], min(p[1], p[2]))), max_size=2),
        membership=st.one_of(st.none(), st.tuples(st.integers(0, 1), st.sampled_from(["active", "expired",
                                                                                      "cancelled"]),
                                                  st.one_of(st.none(), st.sampled_from([-30, -1, 1, 30])))),
        merged=st.sampled_from([False, False, False, True]),
        erased=st.sampled_from([False, False, False, True]),
    )
    return st.lists(person, min_size=1, max_size=16)


@dataclass
class World:
    chain: object
    clinics: dict  # "a"/"b" → Clinic
    staff: object  # front desk A
    tags: dict  # code → Tag
    tiers: list
    people: list[Person]
    today: dt.date


def build(world: World) -> None:
    """Write the drawn people with a handful of bulk statements."""
    chain, clinics, people = world.chain, world.clinics, world.people
    live = [p for p in people if not p.merged] or people[:1]
    for p in people:
        if p is live[0]:
            p.merged = False
    rows = Customer.objects.bulk_create([Customer(
        chain=chain, name=f"客户{n}", stage=p.stage, home_clinic=clinics.get(p.clinic),
        consultant=world.staff if p.consultant else None, first_touch_channel=p.source, gender=p.gender,
        birthday=p.birthday, community=p.community, visit_count=p.visit_count,
        last_visit_at=local(world.today - dt.timedelta(days=p.last_visit[0]), p.last_visit[1]) if p.last_visit else None,
        lifetime_spend_fen=sum(a - r for _d, _m, a, r in p.orders),
        erased_at=local(world.today) - dt.timedelta(days=3) if p.erased else None,
    ) for n, p in enumerate(people)])
    for p, row in zip(people, rows, strict=True):
        p.id = row.pk
    merged = [p.id for p in people if p.merged]
    if merged:
        Customer.objects.filter(pk__in=merged).update(merged_into_id=live[0].id)
    clinic = clinics["a"]
    on = lambda days, minute: local(world.today - dt.timedelta(days=days), minute)  # noqa: E731
    Order.objects.bulk_create([Order(chain=chain, clinic=clinic, customer_id=p.id, ordered_at=on(d, m), amount_fen=a,
                                     list_total_fen=a, refunded_fen=r) for p in people for d, m, a, r in p.orders])
    Appointment.objects.bulk_create([
        Appointment(chain=chain, clinic=clinic, customer_id=p.id, start_at=on(d, m),
                    end_at=on(d, m) + dt.timedelta(minutes=30), status=s) for p in people for d, m, s in p.visits])
    CustomerTag.objects.bulk_create([CustomerTag(customer_id=p.id, tag=world.tags[code], chain_id=chain.id,
                                                 set_at=on(1, 0)) for p in people for code in sorted(p.tags)])
    # one row at a time, in the order drawn: the id breaks a tie between two consents recorded at one instant
    for p in people:
        for purpose, granted, d, m in p.consents:
            Consent.objects.create(customer_id=p.id, purpose=purpose, granted=granted, source="form",
                                   recorded_at=on(d, m))
    Interaction.objects.bulk_create([
        Interaction(customer_id=p.id, kind=k, author=world.staff if a else None, occurred_at=on(d, m))
        for p in people for k, a, d, m in p.contacts])
    TreatmentPlan.objects.bulk_create([
        TreatmentPlan(chain=chain, clinic=clinic, customer_id=p.id, title="plan", status=s, steps_total=t,
                      steps_done=done, planned_at=on(30, 0)) for p in people for s, t, done in p.plans])
    Membership.objects.bulk_create([
        Membership(chain=chain, customer_id=p.id, tier=(tier := world.tiers[p.membership[0]]), plan=tier.plan,
                   status=p.membership[1], started_at=on(100, 0),
                   expires_at=None if p.membership[2] is None else local(world.today + dt.timedelta(
                       days=p.membership[2]), 720))
        for p in people if p.membership])


# --- the reference --------------------------------------------------------------------------------------


def _cmp(actual, op, value) -> bool:
    return {"eq": lambda: actual == value, "ne": lambda: actual != value, "in": lambda: actual in value,
            "not_in": lambda: actual not in value, "gte": lambda: actual >= value, "lte": lambda: actual <= value,
            "between": lambda: value[0] <= actual <= value[1]}[op]()


def _age(birthday: dt.date, today: dt.date) -> int:
    had_birthday = (today.month, today.day) >= (birthday.month, birthday.day)
    return today.year - birthday.year - (0 if had_birthday else 1)


def _in_last(days_ago: int, days: int) -> bool:
    """A moment on the local day `days_ago` before today lies in "the last `days` days" (today included)."""
    return 0 <= days_ago <= days - 1


def holds(node: dict, p: Person, w: World) -> bool:  # noqa: C901 (one branch per field)
    if "all" in node:
        return all(holds(n, p, w) for n in node["all"])
    if "any" in node:
        return any(holds(n, p, w) for n in node["any"])
    if "not" in node:
        return not holds(node["not"], p, w)
    name, op, value = node["field"], node["op"], node.get("value")
    if name == "stage":
        return _cmp(p.stage, op, value)
    if name == "clinic":
        home = w.clinics[p.clinic].id if p.clinic else None
        return _cmp(home, op, value)  # no home clinic: never "in", always "not in"
    if name == "source":
        return _cmp(p.source, op, value)
    if name == "gender":
        return _cmp(p.gender, op, value)
    if name == "age":
        return p.birthday is not None and _cmp(_age(p.birthday, w.today), op, value)
    if name == "birthday_month":
        month = {"this_month": w.today.month, "next_month": w.today.month % 12 + 1}.get(op, value)
        return p.birthday is not None and p.birthday.month == month
    if name == "community":
        if op == "contains":
            return value.strip().lower() in p.community.lower()
        return _cmp(p.community, op, [v.strip() for v in value] if op == "in" else value.strip())
    if name == "tag":
        wanted = set(value)
        return {"any_of": bool(p.tags & wanted), "all_of": wanted <= p.tags, "none_of": not p.tags & wanted}[op]
    if name == "consent":
        rows = [(d, -m, i, g) for i, (purpose, g, d, m) in enumerate(p.consents) if purpose == value]
        # the latest: fewest days ago, latest minute, last recorded
        granted = bool(rows) and min(rows, key=lambda r: (r[0], r[1], -r[2]))[3]
        return granted if op == "granted" else not granted
    if name == "last_contact_days":
        contacts = [d for kind, author, d, _m in p.contacts if kind in ("call", "chat", "sms") and author]
        if op == "never":
            return not contacts
        recent = any(_in_last(d, value) for d in contacts)
        return recent if op == "within" else not recent
    if name == "last_visit_days":
        if op == "never":
            return p.last_visit is None
        if p.last_visit is None:
            return False
        recent = _in_last(p.last_visit[0], value)
        return recent if op == "within" else not recent
    if name == "spend_fen_days":
        return _cmp(sum(a - r for d, _m, a, r in p.orders if _in_last(d, node["days"])), op, value)
    if name == "lifetime_spend_fen":
        return _cmp(sum(a - r for _d, _m, a, r in p.orders), op, value)
    if name == "visits_days":
        count = sum(1 for d, _m, s in p.visits if s in ("arrived", "completed") and _in_last(d, node["days"]))
        return _cmp(count, op, value)
    if name == "visit_count":
        return _cmp(p.visit_count, op, value)
    if name == "unfinished_plan":
        return any(s == "active" and done < total for s, total, done in p.plans) == value
    if name == "membership_tier":
        m = p.membership
        tier = w.tiers[m[0]].id if m and m[1] == "active" and (m[2] is None or m[2] > 0) else None
        if op in ("any", "none"):
            return (tier is not None) == (op == "any")
        return (tier in value) == (op == "in")
    raise AssertionError(name)


def pool(w: World, *, clinic_staff: bool) -> set[int]:
    """Who any segment may hold: live (not merged, not erased) and, for front desk A, clinic A's patients and the
    ones A is the consultant of."""
    return {p.id for p in w.people if not p.merged and not p.erased
            and (not clinic_staff or p.clinic == "a" or p.consultant)}


def expected(rule: dict, w: World, *, clinic_staff: bool = False) -> set[int]:
    ids = pool(w, clinic_staff=clinic_staff)
    return {p.id for p in w.people if p.id in ids and holds(rule, p, w)}


# --- generated rules ------------------------------------------------------------------------------------


def leaves(w: World):
    clinic_ids = [w.clinics["a"].id, w.clinics["b"].id]
    tier_ids = [t.id for t in w.tiers]
    days = st.one_of(st.sampled_from([1, 2, 7, 30]), st.integers(1, 50))

    def leaf(name, op, value=None, **params):
        return {"field": name, "op": op, **({} if value is None else {"value": value}), **params}

    def numeric(name, values, **params):
        return st.one_of(st.builds(lambda op, v: leaf(name, op, v, **params), st.sampled_from(["gte", "lte"]), values),
                         st.builds(lambda a, b: leaf(name, "between", sorted([a, b]), **params), values, values))

    fen = st.sampled_from([0, 1, 9900, 10000, 50000, 59900, 100000])
    return st.one_of(
        st.builds(lambda op, v: leaf("stage", op, v), st.sampled_from(["eq", "ne"]), st.sampled_from(STAGES)),
        st.builds(lambda op, v: leaf("stage", op, v), st.sampled_from(["in", "not_in"]),
                  st.lists(st.sampled_from(STAGES), min_size=1, max_size=3, unique=True)),
        st.builds(lambda op, v: leaf("clinic", op, v), st.sampled_from(["in", "not_in"]),
                  st.lists(st.sampled_from(clinic_ids), min_size=1, max_size=2, unique=True)),
        st.builds(lambda op, v: leaf("source", op, v), st.sampled_from(["eq", "ne"]),
                  st.sampled_from(["douyin", "referral"])),
        st.builds(lambda op, v: leaf("source", op, v), st.sampled_from(["in", "not_in"]),
                  st.lists(st.sampled_from(["douyin", "referral", "wecom"]), min_size=1, max_size=2, unique=True)),
        st.builds(lambda op, v: leaf("gender", op, v), st.sampled_from(["eq", "ne"]), st.sampled_from(["M", "F", "U"])),
        st.builds(lambda v: leaf("gender", "in", v), st.lists(st.sampled_from(["M", "F", "U"]), min_size=1,
                                                              max_size=2, unique=True)),
        numeric("age", st.one_of(st.integers(0, 80), st.sampled_from([24, 25, 28, 29]))),
        st.builds(lambda op: leaf("birthday_month", op), st.sampled_from(["this_month", "next_month"])),
        st.builds(lambda v: leaf("birthday_month", "eq", v), st.integers(1, 12)),
        st.builds(lambda v: leaf("community", "contains", v), st.sampled_from(["阳光", "花园", "GARDEN", "een"])),
        st.builds(lambda v: leaf("community", "eq", v), st.sampled_from(["阳光小区", " green "])),
        st.builds(lambda op, v: leaf("tag", op, v), st.sampled_from(["any_of", "all_of", "none_of"]),
                  st.lists(st.sampled_from(["implant", "ortho", "vip"]), min_size=1, max_size=3, unique=True)),
        st.builds(lambda op, v: leaf("consent", op, v), st.sampled_from(["granted", "not_granted"]),
                  st.sampled_from(PURPOSES)),
        st.builds(lambda op, v: leaf("last_contact_days", op, v), st.sampled_from(["older_than", "within"]), days),
        st.just(leaf("last_contact_days", "never")),
        st.builds(lambda op, v: leaf("last_visit_days", op, v), st.sampled_from(["older_than", "within"]), days),
        st.just(leaf("last_visit_days", "never")),
        st.builds(lambda d, lf: {**lf, "days": d}, days, numeric("spend_fen_days", fen)),
        numeric("lifetime_spend_fen", fen),
        st.builds(lambda d, lf: {**lf, "days": d}, days, numeric("visits_days", st.integers(0, 3))),
        numeric("visit_count", st.integers(0, 4)),
        st.builds(lambda v: leaf("unfinished_plan", "is", v), st.booleans()),
        st.sampled_from([leaf("membership_tier", "any"), leaf("membership_tier", "none")]),
        st.builds(lambda op, v: leaf("membership_tier", op, v), st.sampled_from(["in", "not_in"]),
                  st.lists(st.sampled_from(tier_ids), min_size=1, max_size=2, unique=True)),
    )


def trees(w: World):
    return st.recursive(leaves(w), lambda kids: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(kids, min_size=1, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(kids, min_size=1, max_size=3)),
        st.builds(lambda x: {"not": x}, kids)), max_leaves=5)


def depth(node: dict) -> int:
    if "field" in node:
        return 0
    if "not" in node:
        return 1 + depth(node["not"])
    return 1 + max(depth(n) for n in node["all" if "all" in node else "any"])


# --- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture
def setting(chain, clinic_a, clinic_b, front_desk_a, admin_scope, tags, tiers):
    return {"chain": chain, "clinics": {"a": clinic_a, "b": clinic_b}, "staff": front_desk_a, "tags": tags,
            "tiers": list(tiers), "admin": admin_scope, "clinic": scope_for_staff(front_desk_a)}


def ids(qs) -> set[int]:
    return set(qs.values_list("id", flat=True))


# --- the generated tests --------------------------------------------------------------------------------


@HYPOTHESIS
@given(data=st.data())
def test_compiled_rules_match_the_reference_and_keep_the_laws(data, setting):
    today = data.draw(st.sampled_from(TODAYS), label="today")
    w = World(chain=setting["chain"], clinics=setting["clinics"], staff=setting["staff"], tags=setting["tags"],
              tiers=setting["tiers"], people=data.draw(_people(today), label="people"), today=today)
    admin, clinic = setting["admin"], setting["clinic"]
    with transaction.atomic():
        build(w)
        whole = {"admin": pool(w, clinic_staff=False), "clinic": pool(w, clinic_staff=True)}
        for _ in range(2):
            x = data.draw(trees(w), label="x")
            y = data.draw(trees(w), label="y")
            if max(depth(x), depth(y)) >= 4:  # the laws below wrap them in up to two more groups (≤ 5 levels)
                continue
            assert validate(x) == [] and validate(y) == []
            for who, scope in (("admin", admin), ("clinic", clinic)):
                got = lambda rule, scope=scope: ids(compile(scope, rule, today=today))  # noqa: E731
                gx = got(x)
                # the reference
                assert gx == expected(x, w, clinic_staff=who == "clinic"), (who, x)
                # excluded middle and non-contradiction: `not` is the exact complement within the pool
                gnx = got({"not": x})
                assert gx | gnx == whole[who], (who, x)
                assert not gx & gnx, (who, x)
                if who == "clinic":
                    continue
                # double negation, one-part groups
                assert got({"not": {"not": x}}) == gx, (who, x)
                assert got({"all": [x]}) == gx and got({"any": [x]}) == gx, (who, x)
                # the groups as set algebra, and De Morgan
                gy = got(y)
                assert got({"all": [x, y]}) == gx & gy, (who, x, y)
                assert got({"any": [x, y]}) == gx | gy, (who, x, y)
                assert got({"not": {"all": [x, y]}}) == got({"any": [{"not": x}, {"not": y}]}) == whole[who] - (gx & gy)
                assert got({"not": {"any": [x, y]}}) == got({"all": [{"not": x}, {"not": y}]}) == whole[who] - (gx | gy)
            # scope: front desk A sees exactly the chain's result cut to A's patients
            listed = ids(compile(clinic, x, today=today))
            assert listed == ids(compile(admin, x, today=today)) & whole["clinic"]
            # the preview counts what the list holds, and shows the newest of them
            preview = segment_preview(clinic, x, today=today, limit=5)
            assert preview.count == len(listed) == segment_count(clinic, x, today=today)
            assert [r.id for r in preview.rows] == sorted(listed, reverse=True)[:5]
        transaction.set_rollback(True)


# --- groups without parts -------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", [{"all": []}, {"any": []}, {"not": {"any": []}}])
def test_an_empty_group_is_refused_not_read_as_true_or_false(rule, admin_scope):
    """The README: a group needs at least one condition. An empty `all` would be everybody, an empty `any`
    nobody, and a `not` of either the opposite: neither is what a builder that dropped its last row means."""
    assert [e.field for e in validate(rule)] == ["rule" if "not" not in rule else "not"]
    with pytest.raises(ValidationFailed):
        compile(admin_scope, rule)


# --- fixed edges ----------------------------------------------------------------------------------------


def _customer(chain, clinic, **kwargs) -> Customer:
    return Customer.objects.create(chain=chain, name=kwargs.pop("name", "客户"), home_clinic=clinic, **kwargs)


def test_day_windows_are_shanghai_days_not_utc_days(chain, clinic_a, admin_scope):
    """Spend in the last 7 days on 15 June = from 9 June 00:00 in Shanghai (8 June 16:00 UTC) to 15 June 24:00
    (15 June 16:00 UTC)."""
    today = dt.date(2025, 6, 15)
    utc = dt.UTC
    inside = [dt.datetime(2025, 6, 8, 16, 0, tzinfo=utc), dt.datetime(2025, 6, 15, 15, 59, 59, tzinfo=utc)]
    outside = [dt.datetime(2025, 6, 8, 15, 59, 59, tzinfo=utc), dt.datetime(2025, 6, 15, 16, 0, tzinfo=utc)]
    people = {}
    for label, at in [("in1", inside[0]), ("in2", inside[1]), ("out1", outside[0]), ("out2", outside[1])]:
        people[label] = c = _customer(chain, clinic_a, name=label)
        OrderFactory(customer=c, ordered_at=at, amount_fen=10000)
        AppointmentFactory(customer=c, start_at=at, status="completed")
    spend = {"field": "spend_fen_days", "op": "gte", "value": 10000, "days": 7}
    visits = {"field": "visits_days", "op": "gte", "value": 1, "days": 7}
    no_visits = {"field": "visits_days", "op": "lte", "value": 0, "days": 7}
    want = {people["in1"].id, people["in2"].id}
    assert ids(compile(admin_scope, spend, today=today)) == want
    assert ids(compile(admin_scope, visits, today=today)) == want
    assert ids(compile(admin_scope, no_visits, today=today)) == {people["out1"].id, people["out2"].id}
    # last visit / last contact: "within 7 days" starts at the same Shanghai midnight
    for label, at in [("in1", inside[0]), ("out1", outside[0])]:
        Customer.objects.filter(pk=people[label].pk).update(last_visit_at=at)
    recent = {"field": "last_visit_days", "op": "within", "value": 7}
    assert ids(compile(admin_scope, recent, today=today)) == {people["in1"].id}
    older = {"field": "last_visit_days", "op": "older_than", "value": 7}
    assert ids(compile(admin_scope, older, today=today)) == {people["out1"].id}


def test_windows_follow_the_chain_day_even_when_utc_is_still_yesterday(chain, clinic_a, admin_scope):
    """Without `today`, the day is Shanghai's: at 01:00 in Shanghai (17:00 UTC the day before) an order of
    00:30 Shanghai time is today's."""
    now = dt.datetime(2025, 6, 14, 17, 0, tzinfo=dt.UTC)  # 15 June 01:00 in Shanghai
    c = _customer(chain, clinic_a)
    OrderFactory(customer=c, ordered_at=now - dt.timedelta(minutes=30), amount_fen=500)
    rule = {"field": "spend_fen_days", "op": "gte", "value": 500, "days": 1}
    from unittest import mock

    with mock.patch("django.utils.timezone.now", return_value=now):
        assert timezone.localdate() == dt.date(2025, 6, 15)
        assert ids(compile(admin_scope, rule)) == {c.id}


@pytest.mark.parametrize(("born", "today", "age"), [
    (dt.date(1965, 6, 15), dt.date(2025, 6, 15), 60),  # the birthday itself
    (dt.date(1965, 6, 16), dt.date(2025, 6, 15), 59),  # the day before it
    (dt.date(2000, 2, 29), dt.date(2025, 2, 28), 24),  # a leap-day birthday in a common year: not yet on 28 Feb
    (dt.date(2000, 2, 29), dt.date(2025, 3, 1), 25),
    (dt.date(2000, 2, 29), dt.date(2024, 2, 29), 24),
    (dt.date(2000, 2, 28), dt.date(2024, 2, 29), 24),
    (dt.date(2000, 3, 1), dt.date(2024, 2, 29), 23),
    (dt.date(2023, 2, 28), dt.date(2024, 2, 29), 1),
    (dt.date(2024, 2, 29), dt.date(2024, 2, 29), 0),
])
def test_age_on_birthdays_and_29_february(born, today, age, chain, clinic_a, admin_scope):
    c = _customer(chain, clinic_a, birthday=born)
    got = lambda rule: c.id in ids(compile(admin_scope, rule, today=today))  # noqa: E731
    assert got({"field": "age", "op": "gte", "value": age}) and not got({"field": "age", "op": "gte", "value": age + 1})
    assert got({"field": "age", "op": "lte", "value": age})
    assert age == 0 or not got({"field": "age", "op": "lte", "value": age - 1})
    assert got({"field": "age", "op": "between", "value": [age, age]})


def test_birthday_next_month_in_december_is_january(chain, clinic_a, admin_scope):
    jan = _customer(chain, clinic_a, birthday=dt.date(1990, 1, 5))
    _customer(chain, clinic_a, birthday=dt.date(1990, 12, 5))
    _customer(chain, clinic_a, birthday=None)
    rule = {"field": "birthday_month", "op": "next_month"}
    assert ids(compile(admin_scope, rule, today=dt.date(2024, 12, 31))) == {jan.id}


def test_spend_is_net_of_refunds(chain, clinic_a, admin_scope):
    today = dt.date(2025, 6, 15)
    at = local(today, 600)
    full, part, paid = (_customer(chain, clinic_a, name=n) for n in ("全退", "部分退", "未退"))
    OrderFactory(customer=full, ordered_at=at, amount_fen=50000, refunded_fen=50000, status="refunded")
    OrderFactory(customer=part, ordered_at=at, amount_fen=50000, refunded_fen=20000, status="partially_refunded")
    OrderFactory(customer=paid, ordered_at=at, amount_fen=50000)
    rule = lambda op, v: ids(compile(admin_scope, {"field": "spend_fen_days", "op": op, "value": v, "days": 30},  # noqa: E731
                                     today=today))
    assert rule("gte", 30000) == {part.id, paid.id}
    assert rule("gte", 30001) == {paid.id}
    assert rule("lte", 0) == {full.id}
    assert rule("between", [30000, 30000]) == {part.id}


def test_merged_and_erased_customers_are_in_no_segment_not_even_a_negated_one(chain, clinic_a, admin_scope):
    live = _customer(chain, clinic_a)
    merged = _customer(chain, clinic_a, merged_into=live)
    erased = _customer(chain, clinic_a, erased_at=timezone.now())
    for rule in ({"field": "stage", "op": "eq", "value": "lead"}, {"not": {"field": "stage", "op": "eq", "value": "lead"}},
                 {"field": "tag", "op": "none_of", "value": ["vip"]}, {"not": {"field": "age", "op": "gte", "value": 1}},
                 {"field": "spend_fen_days", "op": "lte", "value": 0, "days": 30}):
        got = ids(compile(admin_scope, rule))
        assert merged.id not in got and erased.id not in got, rule
    assert ids(compile(chain_scope(chain), {"not": {"field": "stage", "op": "eq", "value": "lost"}})) == {live.id}


def test_not_of_a_distance_holds_for_customers_without_coordinates(chain, located, clinic_c, admin_scope):
    """Excluded middle on a NULL column: a customer without coordinates is never within (or beyond) N km, so
    they are in the `not` of either, and nobody falls out of both."""
    clinic_a, _clinic_b = located
    near = _customer(chain, clinic_a, latitude=clinic_a.latitude, longitude=clinic_a.longitude)
    nowhere = _customer(chain, clinic_a)
    everyone = {near.id, nowhere.id}
    for op in ("lte", "gte"):
        rule = {"field": "distance_km", "op": op, "value": 2, "clinic": clinic_a.id}
        got, complement = ids(compile(admin_scope, rule)), ids(compile(admin_scope, {"not": rule}))
        assert nowhere.id not in got and nowhere.id in complement, op
        assert got | complement == everyone and not got & complement, op
    assert ids(compile(admin_scope, {"field": "distance_km", "op": "lte", "value": 2, "clinic": clinic_a.id})) == {
        near.id}


def test_the_latest_consent_wins_even_at_one_instant(chain, clinic_a, admin_scope):
    at = timezone.now()
    withdrawn, regranted, never = (_customer(chain, clinic_a, name=n) for n in ("撤回", "再同意", "从未"))
    for c, states in ((withdrawn, (True, False)), (regranted, (False, True))):
        for granted in states:  # recorded in this order at the same instant: the later row is the current state
            Consent.objects.create(customer=c, purpose="marketing_sms", granted=granted, source="form", recorded_at=at)
    granted = {"field": "consent", "op": "granted", "value": "marketing_sms"}
    assert ids(compile(admin_scope, granted)) == {regranted.id}
    assert ids(compile(admin_scope, {"not": granted})) == {withdrawn.id, never.id}
    assert ids(compile(admin_scope, {"field": "consent", "op": "not_granted", "value": "marketing_sms"})) == {
        withdrawn.id, never.id}
