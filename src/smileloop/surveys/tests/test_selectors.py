import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory, StaffFactory
from smileloop.customers.normalize import name_masked
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.surveys import selectors
from smileloop.surveys.models import Survey
from smileloop.surveys.tests.factories import SurveyFactory

pytestmark = pytest.mark.django_db


def reference_nps(scores: list[int]) -> Fraction:
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    return Fraction(100 * promoters, len(scores)) - Fraction(100 * detractors, len(scores))


def reference_round(value: Fraction) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 50
        exact = Decimal(abs(value.numerator)) / Decimal(value.denominator)
        rounded = exact.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return -rounded if value < 0 else rounded


@given(st.integers(-10_000, 10_000), st.integers(1, 5_000))
def test_round_1_rounds_half_away_from_zero_exactly(numerator, denominator):
    assert selectors.round_1(numerator, denominator) == reference_round(Fraction(numerator, denominator))


@pytest.mark.parametrize("promoters, detractors, n, expected", [
    (1, 0, 3, "33.3"), (2, 0, 3, "66.7"), (0, 1, 6, "-16.7"), (1, 1, 2, "0.0"), (3, 1, 8, "25.0"), (0, 1, 8, "-12.5"),
])
def test_nps_examples(promoters, detractors, n, expected):
    row = selectors.NpsRow(key=1, label="x", responses=n, promoters=promoters, passives=n - promoters - detractors,
                           detractors=detractors, score_sum=0)
    assert str(row.nps) == expected


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scores_a=st.lists(st.integers(0, 10), min_size=1, max_size=40),
       scores_b=st.lists(st.integers(0, 10), max_size=40))
def test_nps_by_clinic_equals_the_reference_computation(admin_scope, chain, clinic_a, clinic_b, scores_a, scores_b):
    # given
    Survey.objects.all().delete()
    customer = CustomerFactory(chain=chain)
    rows = [Survey(chain=chain, clinic=clinic, customer=customer, visit_date=dt.date(2026, 2, 1),
                   token=f"t{clinic.id}x{i}", expires_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
                   created_at=dt.datetime(2026, 2, 2, tzinfo=dt.UTC), score=score,
                   answered_at=dt.datetime(2026, 2, 3, tzinfo=dt.UTC))
            for clinic, scores in ((clinic_a, scores_a), (clinic_b, scores_b)) for i, score in enumerate(scores)]
    Survey.objects.bulk_create(rows)
    # when
    result = {row.key: row for row in selectors.nps(admin_scope, group_by="clinic")}
    # then
    for clinic, scores in ((clinic_a, scores_a), (clinic_b, scores_b)):
        if not scores:
            assert clinic.id not in result
            continue
        row = result[clinic.id]
        assert row.responses == len(scores)
        assert row.promoters + row.passives + row.detractors == len(scores)
        assert row.nps_exact == reference_nps(scores)
        assert row.nps == reference_round(reference_nps(scores))
        assert row.average == reference_round(Fraction(sum(scores), len(scores)))
    overall = selectors.nps(admin_scope, group_by="month")
    assert [r.nps_exact for r in overall] == [reference_nps(scores_a + scores_b)]


@pytest.fixture
def answered(chain, clinic_a, clinic_b, director_a):
    doctor = StaffFactory(chain=chain, role=Role.DOCTOR, name="陈医生", clinics=[clinic_a])

    def make(clinic, score, day, doctor=None):
        return SurveyFactory(chain=chain, clinic=clinic, score=score, visit_date=day, doctor=doctor,
                             customer=CustomerFactory(chain=chain, home_clinic=clinic))

    return {
        "doctor": doctor,
        "surveys": [make(clinic_a, 10, dt.date(2026, 1, 5), doctor), make(clinic_a, 3, dt.date(2026, 1, 20), doctor),
                    make(clinic_a, 8, dt.date(2026, 2, 2)), make(clinic_b, 9, dt.date(2026, 2, 3)),
                    make(clinic_b, 0, dt.date(2026, 2, 4)),
                    SurveyFactory(chain=chain, clinic=clinic_a, visit_date=dt.date(2026, 2, 5))],  # not answered
    }


def test_nps_is_grouped_by_clinic_doctor_and_month_and_ignores_unanswered(admin_scope, answered, clinic_a, clinic_b):
    by_clinic = {r.key: (r.responses, r.promoters, r.passives, r.detractors, str(r.nps), str(r.average))
                 for r in selectors.nps(admin_scope, group_by="clinic")}
    assert by_clinic == {clinic_a.id: (3, 1, 1, 1, "0.0", "7.0"), clinic_b.id: (2, 1, 0, 1, "0.0", "4.5")}
    by_doctor = {r.key: (r.label, r.responses) for r in selectors.nps(admin_scope, group_by="doctor")}
    assert by_doctor == {answered["doctor"].id: ("陈医生", 2), None: ("", 3)}
    by_month = [(r.label, r.responses, str(r.nps)) for r in selectors.nps(admin_scope, group_by="month")]
    assert by_month == [("2026-01", 2, "0.0"), ("2026-02", 3, "0.0")]


def test_nps_filters_by_period_and_clinic(admin_scope, answered, clinic_b):
    rows = selectors.nps(admin_scope, group_by="clinic", since=dt.date(2026, 2, 1), until=dt.date(2026, 2, 3))
    assert [(r.label, r.responses) for r in rows] == [("静安门诊", 1), ("浦东门诊", 1)]
    rows = selectors.nps(admin_scope, group_by="month", clinic_id=clinic_b.id)
    assert [(r.label, r.responses, str(r.nps)) for r in rows] == [("2026-02", 2, "0.0")]


def test_clinic_roles_see_only_their_clinics_surveys(director_scope, answered, clinic_a, clinic_b):
    # when
    rows = selectors.nps(director_scope, group_by="clinic")
    asked_for_b = selectors.nps(director_scope, group_by="clinic", clinic_id=clinic_b.id)
    # then
    assert [r.key for r in rows] == [clinic_a.id]
    assert asked_for_b == []
    assert {s.clinic_id for s in selectors.survey_list(director_scope)} == {clinic_a.id}
    other = next(s for s in answered["surveys"] if s.clinic_id == clinic_b.id)
    with pytest.raises(selectors.SurveyNotFound):
        selectors.survey_get(director_scope, other.id)


def test_another_chains_surveys_are_invisible(admin_scope, answered):
    other_chain = ChainFactory()
    SurveyFactory(chain=other_chain, clinic=ClinicFactory(chain=other_chain), score=10,
                  customer=CustomerFactory(chain=other_chain))
    assert sum(r.responses for r in selectors.nps(admin_scope, group_by="clinic")) == 5


def test_totals_give_the_response_rate_over_sent_links(admin_scope, chain, clinic_a):
    # given: 4 links sent, 1 answered, 1 never sent
    now = timezone.now()
    for _ in range(3):
        SurveyFactory(chain=chain, clinic=clinic_a, sent_at=now)
    SurveyFactory(chain=chain, clinic=clinic_a, sent_at=now, score=5)
    SurveyFactory(chain=chain, clinic=clinic_a)
    # when
    totals = selectors.survey_totals(admin_scope)
    # then
    assert (totals.created, totals.sent, totals.answered, totals.detractors) == (5, 4, 1, 1)
    assert str(totals.response_rate) == "25.0"


def test_the_patients_name_is_masked_to_the_surname():
    assert name_masked("张三") == "张*"
    assert name_masked("欧阳娜娜") == "欧***"
    assert name_masked("李") == "李*"
    assert name_masked("") == "*"


def test_nps_runs_one_query_per_grouping(admin_scope, answered, django_assert_num_queries):
    for group in ("clinic", "doctor", "month"):
        with django_assert_num_queries(1):
            selectors.nps(admin_scope, group_by=group)
