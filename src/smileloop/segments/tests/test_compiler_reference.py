"""The compiler against a plain-Python reference on generated small chains: for random valid rule trees over
every field, compile(scope, rule) selects exactly the customers python_eval(rule) selects."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smileloop.clinics.selectors import scope_for_staff
from smileloop.customers.models import Consent, Customer, Interaction
from smileloop.membership.models import Membership
from smileloop.segments.rules.compiler import compile
from smileloop.segments.rules.validation import validate
from smileloop.segments.tests.reference import TZ, python_eval
from smileloop.tagging.models import CustomerTag
from smileloop.visits.models import Appointment, Order, Procedure, TreatmentPlan

pytestmark = pytest.mark.django_db

DAYS = st.one_of(st.sampled_from([1, 2, 7, 30, 90, 365]), st.integers(1, 400))


def _at(today: dt.date, days_ago: int, minute: int) -> dt.datetime:
    day = today - dt.timedelta(days=days_ago)
    return dt.datetime(day.year, day.month, day.day, tzinfo=TZ) + dt.timedelta(minutes=minute)


def _birthdays(today: dt.date):
    """Birthdays on and around the age boundaries (same day, day before/after N years ago), plus 29 Feb."""
    near = st.builds(lambda years, delta: _years_ago(today, years) + dt.timedelta(days=delta),
                     st.integers(0, 90), st.integers(-1, 1))
    return st.one_of(st.none(), near, st.just(dt.date(2000, 2, 29)), st.dates(dt.date(1930, 1, 1), today))


def _years_ago(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def _draw_world(data, *, chain, clinics, staff, items, tags, tiers, today):
    clinic_a, clinic_b, clinic_c = clinics
    customers = []
    for n in range(data.draw(st.integers(0, 7), label="customers")):
        lat = data.draw(st.one_of(st.none(), st.integers(-60000, 60000)), label="lat")
        c = Customer.objects.create(
            chain=chain, name=f"客户{n}", mobile=f"+8613900000{n:03d}", mobile_tail=f"0{n:03d}",
            stage=data.draw(st.sampled_from(["lead", "booked", "treated", "dormant", "lost"])),
            home_clinic=data.draw(st.sampled_from([clinic_a, clinic_b, clinic_c, None])),
            consultant=data.draw(st.sampled_from([None, staff])),
            first_touch_channel=data.draw(st.sampled_from(["", "douyin", "referral", "wecom"])),
            gender=data.draw(st.sampled_from(["M", "F", "U"])),
            birthday=data.draw(_birthdays(today)),
            community=data.draw(st.sampled_from(["", "阳光小区", "阳光花园", "绿地Garden", "green"])),
            latitude=None if lat is None else clinic_a.latitude + Decimal(lat) / 1_000_000,
            longitude=None if lat is None else clinic_a.longitude + Decimal(
                data.draw(st.integers(-60000, 60000))) / 1_000_000,
            visit_count=data.draw(st.integers(0, 5)),
            last_visit_at=data.draw(st.one_of(st.none(), st.builds(lambda d, m: _at(today, d, m), st.integers(0, 800),
                                                                   st.integers(0, 1439)))),
        )
        customers.append(c)
        net = 0
        for _ in range(data.draw(st.integers(0, 3))):
            amount = data.draw(st.sampled_from([0, 1, 9900, 50000, 500000]))
            refunded = data.draw(st.integers(0, amount))
            net += amount - refunded
            Order.objects.create(chain=chain, clinic=clinic_a, customer=c, amount_fen=amount, refunded_fen=refunded,
                                 ordered_at=_at(today, data.draw(st.integers(-1, 400)), data.draw(st.integers(0, 1439))))
        if net:  # the invariant the visits services keep: lifetime spend = Σ(amount − refunded) of all orders
            Customer.objects.filter(pk=c.pk).update(lifetime_spend_fen=net)
        for _ in range(data.draw(st.integers(0, 3))):
            start = _at(today, data.draw(st.integers(-1, 400)), data.draw(st.integers(0, 1400)))
            Appointment.objects.create(chain=chain, clinic=clinic_a, customer=c, start_at=start,
                                       end_at=start + dt.timedelta(minutes=30),
                                       status=data.draw(st.sampled_from(["booked", "arrived", "completed", "no_show"])))
        for _ in range(data.draw(st.integers(0, 2))):
            Procedure.objects.create(chain=chain, clinic=clinic_a, customer=c,
                                     item=data.draw(st.sampled_from(items)),
                                     performed_on=today - dt.timedelta(days=data.draw(st.integers(-1, 120))))
        for _ in range(data.draw(st.integers(0, 2))):
            total = data.draw(st.integers(0, 4))
            TreatmentPlan.objects.create(chain=chain, clinic=clinic_a, customer=c, title="plan",
                                         status=data.draw(st.sampled_from(["active", "completed", "abandoned"])),
                                         steps_total=total, steps_done=data.draw(st.integers(0, total)),
                                         planned_at=_at(today, 30, 0))
        for _ in range(data.draw(st.integers(0, 3))):
            Consent.objects.create(customer=c, purpose=data.draw(st.sampled_from(["marketing_sms", "marketing_wechat"])),
                                   granted=data.draw(st.booleans()), source="form",
                                   recorded_at=_at(today, data.draw(st.integers(0, 3)), 0))
        for _ in range(data.draw(st.integers(0, 3))):
            Interaction.objects.create(customer=c, kind=data.draw(st.sampled_from(["call", "chat", "sms", "note"])),
                                       author=data.draw(st.sampled_from([None, staff])),
                                       occurred_at=_at(today, data.draw(st.integers(-1, 100)),
                                                       data.draw(st.integers(0, 1439))))
        for tag in data.draw(st.sets(st.sampled_from(list(tags.values())), max_size=3)):
            CustomerTag.objects.create(customer=c, tag=tag, chain_id=chain.id, set_at=_at(today, 1, 0))
        if data.draw(st.booleans()):
            Membership.objects.create(
                chain=chain, customer=c, tier=(tier := data.draw(st.sampled_from(tiers))), plan=tier.plan,
                status=data.draw(st.sampled_from(["active", "active", "expired", "cancelled"])),
                started_at=_at(today, 100, 0),
                expires_at=data.draw(st.one_of(st.none(), st.builds(lambda d: _at(today, d, 600), st.integers(-30, 30)))))
    if len(customers) > 1 and data.draw(st.booleans()):
        Customer.objects.filter(pk=customers[-1].pk).update(merged_into=customers[0])


def _leaves(*, clinics, tags, tiers, categories):
    ids = [c.id for c in clinics]
    clinic_ids = st.lists(st.sampled_from(ids), min_size=1, max_size=2, unique=True)
    tag_codes = st.lists(st.sampled_from(list(tags)), min_size=1, max_size=3, unique=True)
    tier_ids = st.lists(st.sampled_from([t.id for t in tiers]), min_size=1, max_size=2, unique=True)

    def leaf(field, op, value=None, **params):
        out = {"field": field, "op": op, **params}
        if value is not None:
            out["value"] = value
        return out

    def numeric(field, values, **params):
        return st.one_of(
            st.builds(lambda op, v: leaf(field, op, v, **params), st.sampled_from(["gte", "lte"]), values),
            st.builds(lambda a, b: leaf(field, "between", sorted([a, b]), **params), values, values))

    def with_days(field, values):
        return st.builds(lambda d, lf: {**lf, "days": d}, DAYS, numeric(field, values))

    fen = st.sampled_from([0, 1, 100, 9900, 50000, 100000, 600000])
    return st.one_of(
        st.builds(lambda op, v: leaf("stage", op, v), st.sampled_from(["eq", "ne"]), st.sampled_from(["lead", "treated"])),
        st.builds(lambda op, v: leaf("stage", op, v), st.sampled_from(["in", "not_in"]),
                  st.lists(st.sampled_from(["lead", "treated", "dormant"]), min_size=1, unique=True)),
        st.builds(lambda op, v: leaf("clinic", op, v), st.sampled_from(["in", "not_in"]), clinic_ids),
        st.builds(lambda op, v: leaf("source", op, v), st.sampled_from(["eq", "ne"]), st.sampled_from(["douyin", "wecom"])),
        st.builds(lambda v: leaf("source", "not_in", v), st.lists(st.sampled_from(["douyin", "referral"]), min_size=1)),
        numeric("age", st.integers(0, 95)),
        st.builds(lambda op, v: leaf("gender", op, v), st.sampled_from(["eq", "ne"]), st.sampled_from(["M", "F"])),
        st.builds(lambda v: leaf("community", "contains", v), st.sampled_from(["阳光", "花园", "GARDEN", "Green"])),
        st.builds(lambda v: leaf("community", "eq", v), st.sampled_from(["阳光小区", " 绿地Garden "])),
        st.builds(lambda v: leaf("community", "in", v), st.lists(st.sampled_from(["阳光小区", "green"]), min_size=1)),
        st.builds(lambda op, v, clinic: leaf("distance_km", op, v, clinic=clinic), st.sampled_from(["lte", "gte"]),
                  st.sampled_from([0.5, 1, 2.5, 4, 7.25]), st.sampled_from(ids)),
        st.builds(lambda op: leaf("birthday_month", op), st.sampled_from(["next_month", "this_month"])),
        st.builds(lambda v: leaf("birthday_month", "eq", v), st.integers(1, 12)),
        st.builds(lambda op, v: leaf("tag", op, v), st.sampled_from(["any_of", "all_of", "none_of"]), tag_codes),
        st.builds(lambda op, v: leaf("consent", op, v), st.sampled_from(["granted", "not_granted"]),
                  st.sampled_from(["marketing_sms", "marketing_wechat"])),
        st.builds(lambda op, v: leaf("last_contact_days", op, v), st.sampled_from(["older_than", "within"]), DAYS),
        st.just(leaf("last_contact_days", "never")),
        st.sampled_from([leaf("membership_tier", "any"), leaf("membership_tier", "none")]),
        st.builds(lambda op, v: leaf("membership_tier", op, v), st.sampled_from(["in", "not_in"]), tier_ids),
        with_days("spend_fen_days", fen),
        numeric("lifetime_spend_fen", fen),
        with_days("visits_days", st.integers(0, 3)),
        numeric("visit_count", st.integers(0, 5)),
        st.builds(lambda op, v: leaf("last_visit_days", op, v), st.sampled_from(["older_than", "within"]), DAYS),
        st.just(leaf("last_visit_days", "never")),
        st.builds(lambda v: leaf("unfinished_plan", "is", v), st.booleans()),
        st.builds(lambda v, cat: leaf("procedure_days", "eq", v, category=cat), st.integers(0, 120), st.sampled_from(categories)),
        st.builds(lambda v, cat: leaf("procedure_days", "within", v, category=cat), st.integers(0, 120),
                  st.sampled_from(categories)),
        st.builds(lambda a, b, cat: leaf("procedure_days", "between", sorted([a, b]), category=cat),
                  st.integers(0, 120), st.integers(0, 120), st.sampled_from(categories)),
    )


def _trees(leaves):
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.builds(lambda xs: {"all": xs}, st.lists(children, min_size=1, max_size=3)),
            st.builds(lambda xs: {"any": xs}, st.lists(children, min_size=1, max_size=3)),
            st.builds(lambda x: {"not": x}, children)),
        max_leaves=5)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_compiled_rules_select_exactly_the_customers_of_the_python_reference(
        data, chain, located, clinic_c, catalogue, tags, tiers, consultant, front_desk_a, admin_scope, today):
    clinics = (*located, clinic_c)
    items = [catalogue["CL01"], catalogue["IM01"], catalogue["FI01"]]
    trees = _trees(_leaves(clinics=clinics, tags=tags, tiers=tiers, categories=["cleaning", "implant", "filling"]))
    clinic_scope = scope_for_staff(front_desk_a)
    with transaction.atomic():
        _draw_world(data, chain=chain, clinics=clinics, staff=consultant, items=items, tags=tags, tiers=tiers,
                    today=today)
        for _ in range(4):
            rule = data.draw(trees, label="rule")
            assert validate(rule) == []
            for scope in (admin_scope, clinic_scope):
                # when
                got = set(compile(scope, rule, today=today).values_list("id", flat=True))
                # then
                want = python_eval(rule, chain_id=chain.id, today=today, clinic_ids=scope.clinic_ids,
                                   staff_id=scope.staff_id)
                assert got == want, rule
            for strategy in ("grouped", "correlated"):
                got = set(compile(admin_scope, rule, today=today, aggregates=strategy).values_list("id", flat=True))
                assert got == python_eval(rule, chain_id=chain.id, today=today), (strategy, rule)
        transaction.set_rollback(True)
