import datetime as dt
import math
from collections import Counter, defaultdict

import pytest
from django.db import transaction
from django.db.models import Count, F, Max, Min, Q, Sum

from smileloop.clinics.enums import Role
from smileloop.clinics.models import Clinic, Staff
from smileloop.clinics.selectors import scope_for_staff
from smileloop.customers.models import Customer, CustomerSearchKey, Household, HouseholdMember, Identity
from smileloop.customers.normalize import phone_normalize
from smileloop.customers.selectors import customer_list
from smileloop.demo.services import chain_seed
from smileloop.visits.models import (
    Appointment,
    Order,
    OrderLine,
    Payment,
    PlanStep,
    Procedure,
    Refund,
    RefundLine,
    TreatmentPlan,
)

TODAY = dt.date(2026, 11, 23)
# pytest-django creates the test database only for tests that ask for one: without the mark, this module
# run on its own found no tables.
pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    """One seeded chain shared by the read-only checks below, rolled back after the module."""
    with django_db_blocker.unblock():
        with transaction.atomic():
            yield chain_seed(customers=200, clinics=2, years=2, seed=11, today=TODAY)
            transaction.set_rollback(True)


def _km(lat1, lng1, lat2, lng2) -> float:
    dlat = (lat2 - lat1) * 111.32
    dlng = (lng2 - lng1) * 111.32 * math.cos(math.radians(lat1))
    return math.hypot(dlat, dlng)


def test_seed_makes_the_requested_chain_with_staff_in_every_role(seeded):
    # then
    chain = seeded.chain
    clinics = list(Clinic.objects.filter(chain=chain))
    assert len(clinics) == 2
    assert Customer.objects.filter(chain=chain).count() == 200
    for clinic in clinics:
        roles = set(Staff.objects.filter(clinics=clinic).values_list("role", flat=True))
        assert roles == {Role.FRONT_DESK, Role.CONSULTANT, Role.DOCTOR, Role.ASSISTANT, Role.CLINIC_DIRECTOR}
        assert clinic.latitude and clinic.longitude and clinic.address.startswith(clinic.city)
    chain_roles = set(Staff.objects.filter(chain=chain, clinics=None).values_list("role", flat=True))
    assert chain_roles == {Role.CHAIN_ADMIN, Role.MEMBER_OPS, Role.MARKETING}
    assert seeded.rows["customers_customer"] == 200


def test_every_order_amount_equals_its_lines_and_its_payments(seeded):
    # given
    lines = dict(OrderLine.objects.values_list("order_id").annotate(s=Sum("amount_fen")))
    line_refunds = dict(OrderLine.objects.values_list("order_id").annotate(s=Sum("refunded_fen")))
    payments = dict(Payment.objects.values_list("order_id").annotate(s=Sum("amount_fen")))
    refunds = dict(Refund.objects.values_list("order_id").annotate(s=Sum("amount_fen")))
    # then
    orders = list(Order.objects.values("id", "amount_fen", "refunded_fen", "list_total_fen", "discount_fen",
                                       "status"))
    assert len(orders) > 1000
    for o in orders:
        assert o["amount_fen"] == lines[o["id"]] == payments[o["id"]] > 0
        assert o["amount_fen"] == o["list_total_fen"] - o["discount_fen"]
        assert o["refunded_fen"] == refunds.get(o["id"], 0) == line_refunds[o["id"]]
        assert (o["status"] == "paid") == (o["refunded_fen"] == 0)
    assert RefundLine.objects.aggregate(s=Sum("amount_fen"))["s"] == Refund.objects.aggregate(s=Sum("amount_fen"))["s"]


def test_customers_denormalised_figures_match_their_orders_and_visits(seeded):
    # given
    spend = {r["customer_id"]: r["s"] for r in
             Order.objects.values("customer_id").annotate(s=Sum("amount_fen") - Sum("refunded_fen"))}
    visits = {r["customer_id"]: r for r in Appointment.objects.filter(status="completed").values("customer_id")
              .annotate(n=Count("id"), first=Min("start_at"), last=Max("start_at"))}
    first_order = dict(Order.objects.values_list("customer_id").annotate(m=Min("ordered_at")))
    dormant_before = dt.datetime(2025, 11, 23, tzinfo=dt.UTC) - dt.timedelta(hours=8)
    # then
    for c in Customer.objects.all():
        v = visits.get(c.id)
        assert c.lifetime_spend_fen == spend.get(c.id, 0)
        assert c.visit_count == (v["n"] if v else 0)
        assert c.first_visit_at == (v["first"] if v else None)
        assert c.last_visit_at == (v["last"] if v else None)
        if c.id in first_order:
            assert c.first_visit_at <= first_order[c.id]
        if not v:
            assert c.stage == "lead" and c.id not in spend
        else:
            reached = "treated" if spend.get(c.id, 0) > 0 else "arrived"
            assert c.stage_reached == reached
            assert c.stage == ("dormant" if c.last_visit_at < dormant_before else reached)
        # the stage's "since" is when it began: a lead's creation, a patient's first visit, a year after the last
        if c.stage == "lead":
            assert c.stage_changed_at == c.created_at
        elif c.stage == "dormant":
            assert c.last_visit_at + dt.timedelta(days=365) < c.stage_changed_at <= c.last_visit_at + dt.timedelta(
                days=367)
        else:
            assert c.stage_changed_at == c.first_visit_at


def test_nobody_has_their_teeth_cleaned_twice_within_five_months(seeded):
    # given every billed cleaning, per customer, by day
    days = defaultdict(list)
    for customer_id, at in (OrderLine.objects.filter(item__code="CL01")
                            .values_list("order__customer_id", "order__ordered_at").order_by("order__ordered_at")):
        days[customer_id].append(at)
    # then regulars come often (10 orders a customer) but a cleaning is months apart
    gaps = [(b - a).days for visits in days.values() for a, b in zip(visits, visits[1:], strict=False)]
    assert len(gaps) > 50 and min(gaps) >= 149


def test_plans_count_their_done_steps_and_done_steps_have_procedures(seeded):
    # given
    plans = list(TreatmentPlan.objects.annotate(
        total=Count("steps"), done=Count("steps", filter=Q(steps__status="done"))))
    # then
    assert plans
    for plan in plans:
        assert plan.steps_total == plan.total
        assert plan.steps_done == plan.done
        assert (plan.status == "completed") == (plan.steps_done == plan.steps_total)
        assert (plan.completed_at is not None) == (plan.status == "completed")
    done_steps = set(PlanStep.objects.filter(status="done").values_list("id", flat=True))
    assert done_steps == set(Procedure.objects.filter(plan_step__isnull=False).values_list("plan_step_id", flat=True))
    assert not PlanStep.objects.filter(status="done", done_at__isnull=True).exists()


def test_the_pool_contains_leads_unfinished_plans_dormant_patients_and_cheap_cleanings(seeded):
    # then
    stages = Counter(Customer.objects.values_list("stage", flat=True))
    assert stages["lead"] >= 20 and stages["treated"] + stages["arrived"] >= 50 and stages["dormant"] >= 5
    assert TreatmentPlan.objects.filter(steps_done__lt=F("steps_total")).exists()
    assert TreatmentPlan.objects.filter(status__in=["active", "abandoned"]).exists()
    assert OrderLine.objects.filter(item__code="CL99", amount_fen=990).exists()
    assert Procedure.objects.filter(item__is_surgical=True).exists()
    assert Appointment.objects.filter(status="booked", start_at__gte=dt.datetime(2026, 11, 22, 16, tzinfo=dt.UTC)).exists()
    assert Appointment.objects.filter(status="no_show").exists()
    assert Appointment.objects.filter(status="cancelled").exists()
    assert Customer.objects.filter(birthday__gt=dt.date(2014, 1, 1)).exists()  # children
    households = Household.objects.annotate(n=Count("members"))
    assert households.exists() and all(h.n >= 2 for h in households)
    assert set(HouseholdMember.objects.values_list("relation", flat=True)) >= {"head", "spouse", "child"}
    kinds = set(Identity.objects.values_list("kind", flat=True))
    assert {"wechat_openid", "pms"} <= kinds
    channels = Counter(Customer.objects.values_list("first_touch_channel", flat=True))
    assert channels["referral"] > channels["sms"] and len(channels) >= 6


def test_nobody_is_on_file_or_seen_before_birth_and_babies_have_no_history(seeded):
    # given every person's birthday and first record, first appointment and first order
    people = Customer.objects.filter(chain=seeded.chain, birthday__isnull=False).annotate(
        first_appt=Min("appointments__start_at"), first_order=Min("orders__ordered_at"))
    babies = 0
    for c in people:
        born = dt.datetime.combine(c.birthday, dt.time(), tzinfo=dt.UTC)
        # then nothing about them predates their birth ...
        assert c.created_at >= born, (c.id, c.birthday, c.created_at)
        for first in (c.first_appt, c.first_order):
            assert first is None or first >= born, (c.id, c.birthday, first)
        # ... and a child is first seen from their first birthday on
        if c.first_visit_at is not None:
            assert c.first_visit_at >= born + dt.timedelta(days=365), (c.id, c.birthday, c.first_visit_at)
        if c.birthday > TODAY - dt.timedelta(days=365):
            babies += 1
            assert c.visit_count == 0 and c.lifetime_spend_fen == 0
    assert people.count() > 150


def test_customers_live_within_a_few_km_of_their_clinic_in_named_communities(seeded):
    # then
    for c in Customer.objects.select_related("home_clinic"):
        clinic = c.home_clinic
        assert _km(float(clinic.latitude), float(clinic.longitude), float(c.latitude), float(c.longitude)) < 5
        assert c.community and c.address.startswith(clinic.city)


def test_mobiles_are_unique_valid_e164_numbers(seeded):
    # given
    mobiles = list(Customer.objects.exclude(mobile=None).values_list("mobile", "mobile_tail"))
    # then
    assert len(mobiles) > 150
    assert len({m for m, _ in mobiles}) == len(mobiles)
    for mobile, tail in mobiles:
        assert phone_normalize(mobile) == mobile and mobile.startswith("+861") and tail == mobile[-4:]


def test_seeded_customers_are_found_by_pinyin_initials_and_phone_tail(seeded):
    # given
    admin = Staff.objects.get(chain=seeded.chain, role=Role.CHAIN_ADMIN)
    scope = scope_for_staff(admin)
    someone = Customer.objects.exclude(mobile=None).filter(name__startswith="张").first() or \
        Customer.objects.exclude(mobile=None).first()
    initials = CustomerSearchKey.objects.filter(customer=someone, kind="i").values_list("value", flat=True)[0]
    # then
    assert CustomerSearchKey.objects.values("customer_id").distinct().count() == 200
    assert someone in customer_list(scope, q=initials)
    assert someone in customer_list(scope, q=someone.mobile[-4:])


def test_seed_rows_reference_only_their_own_chain(seeded):
    # then
    by_chain = defaultdict(set)
    for model in (Order, Appointment, TreatmentPlan, Procedure):
        by_chain[model].update(model.objects.values_list("chain_id", flat=True).distinct())
    assert all(v == {seeded.chain.id} for v in by_chain.values())
    assert set(Order.objects.values_list("clinic__chain_id", flat=True).distinct()) == {seeded.chain.id}
