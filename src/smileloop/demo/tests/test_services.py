import datetime as dt

from django.contrib.auth import authenticate

from smileloop.clinics.enums import Role
from smileloop.clinics.models import Chain, Clinic, Staff
from smileloop.customers.models import Customer
from smileloop.demo.data import SURNAMES
from smileloop.demo.generate import mobile_for, mobile_params, search_keys
from smileloop.demo.services import DEMO_CHAIN_NAME, DEMO_PASSWORD, chain_seed, demo_create
from smileloop.visits.models import (
    Order,
)

TODAY = dt.date(2026, 11, 23)


def _fingerprint(chain: Chain):
    customers = list(Customer.objects.filter(chain=chain).order_by("id").values_list(
        "name", "mobile", "birthday", "gender", "community", "stage", "visit_count", "lifetime_spend_fen"))
    orders = list(Order.objects.filter(chain=chain).order_by("id").values_list("amount_fen", "ordered_at"))
    return customers, orders


def test_the_same_seed_and_reference_date_give_the_same_pool_and_another_seed_does_not(db):
    # when
    first = chain_seed(customers=120, clinics=2, years=2, seed=3, today=TODAY)
    again = chain_seed(customers=120, clinics=2, years=2, seed=3, today=TODAY)
    other = chain_seed(customers=120, clinics=2, years=2, seed=4, today=TODAY)
    # then
    assert _fingerprint(first.chain) == _fingerprint(again.chain)
    assert _fingerprint(first.chain)[0] != _fingerprint(other.chain)[0]


def test_seed_aims_at_the_requested_orders_per_customer(db):
    # when
    report = chain_seed(customers=600, clinics=2, years=3, seed=8, today=TODAY, orders_per_customer=4)
    # then
    assert 3.0 <= report.rows["visits_order"] / 600 <= 5.0


def test_demo_creates_one_login_per_role_and_a_second_call_changes_nothing(db):
    # when
    first = demo_create(customers=150, today=TODAY, points_orders=100)
    counts = (Customer.objects.count(), Order.objects.count(), Staff.objects.count())
    second = demo_create(customers=150, today=TODAY, points_orders=100)
    # then
    assert first.created and not second.created
    assert (Customer.objects.count(), Order.objects.count(), Staff.objects.count()) == counts
    assert Chain.objects.filter(name=DEMO_CHAIN_NAME).count() == 1
    assert [u for u, *_ in second.logins] == ["admin", "frontdesk", "consultant", "doctor", "assistant", "director",
                                               "memberops", "marketing"]
    admin = authenticate(username="admin", password=DEMO_PASSWORD)
    assert admin is not None and admin.is_superuser and admin.staff.role == Role.CHAIN_ADMIN
    frontdesk = authenticate(username="frontdesk", password=DEMO_PASSWORD)
    clinic_1 = Clinic.objects.filter(chain=first.chain).order_by("id").first()
    assert list(frontdesk.staff.clinics.all()) == [clinic_1]
    assert Staff.objects.get(user__username="director").role == Role.CLINIC_DIRECTOR
    # every visit of the history is on its patient's timeline, worded as a live visit is
    from smileloop.customers.enums import InteractionKind
    from smileloop.customers.models import Interaction
    from smileloop.customers.timeline import timeline_format
    from smileloop.visits.models import Appointment
    from smileloop.visits.services import VISIT_OF

    visits = Appointment.objects.filter(chain=first.chain, status__in=["arrived", "completed"])
    assert visits.count() == Interaction.objects.filter(kind=InteractionKind.VISIT, customer__chain=first.chain,
                                                        author__isnull=True).count() > 0
    visit = visits.filter(service_item__isnull=False).select_related("service_item").first()
    entry = Interaction.objects.get(kind=InteractionKind.VISIT, customer_id=visit.customer_id,
                                    occurred_at=visit.start_at, author__isnull=True)
    assert entry.text == timeline_format(VISIT_OF, status=visit.status, item=visit.service_item.name)
    assert entry.clinic_id == visit.clinic_id
    # and the pool has the duplicates front desks and PMSs make, for the merge-candidates page: three kinds, a dozen
    # pairs
    from smileloop.clinics.selectors import scope_for_staff
    from smileloop.customers.selectors import merge_candidates_list

    found = merge_candidates_list(scope_for_staff(admin.staff))
    reasons = {group.reason for group in found}
    assert {"same_name_phone_tail", "same_name_birthday", "same_name_family"} <= reasons and len(found) >= 12




def test_polyphonic_surnames_are_drawn_and_get_a_search_key_per_reading():
    # given
    surnames = {s for s, _ in SURNAMES}
    # when
    initials, full = search_keys("曾小明")
    # then
    assert {"曾", "单", "解"} <= surnames
    assert set(initials) >= {"zxm", "cxm"} and "zengxiaoming" in full


def test_mobile_numbers_of_a_run_never_repeat():
    # given
    a, b = mobile_params(42)
    # when
    numbers = [mobile_for(i, a=a, b=b) for i in range(200_000)]
    # then
    assert len(set(numbers)) == len(numbers)
    assert len({n[-4:] for n in numbers[:5000]}) > 3000


def test_the_demo_day_is_the_chains_calendar_day_not_the_utc_date(db, monkeypatch):
    # given a demo made at 02:30 in Shanghai, when the UTC date is still the day before
    from django.utils import timezone

    from smileloop.clinics.tests.factories import ChainFactory
    from smileloop.demo.services import _demo_day

    chain = ChainFactory(time_zone="Asia/Shanghai")
    monkeypatch.setattr(timezone, "now", lambda: dt.datetime(2026, 12, 3, 18, 30, tzinfo=dt.UTC))
    # then follow-ups are generated for the clinic's today (its inbox's "due today"), and a given day wins
    assert _demo_day(chain, None) == dt.date(2026, 12, 4)
    assert _demo_day(chain, TODAY) == TODAY


def test_no_two_of_one_family_share_a_name_and_a_clash_leaves_the_seeds_other_draws_alone():
    import random

    from smileloop.customers.enums import Gender
    from smileloop.demo.generate import PoolGenerator

    def generator():
        gen = PoolGenerator.__new__(PoolGenerator)  # only the name draws are exercised
        gen.rng = random.Random(7)
        return gen

    # given the name the family's first son draws
    first = generator()._family_name(set(), "王", Gender.MALE, 2015, index=1)
    # when a second son would draw it too
    gen = generator()
    second = gen._family_name({first}, "王", Gender.MALE, 2015, index=2)
    # then he gets another name of his surname, and the seed's stream moved by the one draw it would have anyway
    assert second != first and second.startswith("王")
    assert gen.rng.random() == (lambda g: (g.rng.random(), g.rng.random())[1])(generator())


def _consult_only(chain: Chain) -> dict[str, int]:
    """Live customers of the chain at stage arrived, per home clinic code, after checking each came (a completed
    appointment) and was never billed."""
    from smileloop.visits.models import Appointment

    arrived = Customer.objects.filter(chain=chain, merged_into__isnull=True, stage="arrived")
    for c in arrived:
        assert Appointment.objects.filter(customer=c, status="completed").exists(), c.id
        assert not Order.objects.filter(customer=c).exists() and c.lifetime_spend_fen == 0, c.id
    counts: dict[str, int] = {}
    for code in arrived.values_list("home_clinic__code", flat=True):
        counts[code] = counts.get(code, 0) + 1
    return counts


def test_some_patients_came_for_a_free_consultation_and_rest_at_arrived_in_the_funnel(db):
    # given a small seed, its stages re-derived from the facts as the demo does
    from smileloop.clinics.selectors import scope_for_staff
    from smileloop.lifecycle.demo import demo_load
    from smileloop.lifecycle.selectors import funnel
    from smileloop.visits.models import Appointment

    first = chain_seed(customers=300, clinics=2, years=3, seed=21, today=TODAY, orders_per_customer=3)
    demo_load(chain=first.chain, today=TODAY)
    # when marketing reads the funnel
    marketing = Staff.objects.filter(chain=first.chain, role=Role.MARKETING).first()
    stages = {step.stage: step for step in funnel(scope_for_staff(marketing)).stages}
    # then some patients rest at arrived: they came (a completed free consultation or exam), were never billed
    by_clinic = _consult_only(first.chain)
    arrived = sum(by_clinic.values())
    assert arrived >= 3 and stages["arrived"].current == arrived
    assert stages["arrived"].reached > stages["treated"].reached
    free = Appointment.objects.filter(chain=first.chain, status="completed", service_item__list_price_fen=0,
                                      customer__stage="arrived")
    assert free.exists()
    # and 5–10 % of those who came never paid (the dormant and lost ones among them too)
    came = Customer.objects.filter(chain=first.chain, visit_count__gt=0)
    never_paid = came.exclude(orders__isnull=False).count()
    assert 0.04 <= never_paid / came.count() <= 0.11
    # and the same seed gives the same counts
    again = chain_seed(customers=300, clinics=2, years=3, seed=21, today=TODAY, orders_per_customer=3)
    demo_load(chain=again.chain, today=TODAY)
    assert _consult_only(again.chain) == by_clinic
    assert again.rows == first.rows
