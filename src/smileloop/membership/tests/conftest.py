"""Fixtures of the membership tests: the DOMAIN.md programme in small (a paid plan, a spend-based family plan
with a hidden benefit, a stored-value plan) and a few customers."""

import datetime as dt

import pytest
from django.utils import timezone

from smileloop.customers.enums import Stage
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.membership.enums import BenefitTrigger, PlanKind
from smileloop.membership.tests.factories import BenefitFactory, PlanFactory, TierFactory

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def now():
    return NOW


@pytest.fixture
def family_plan(chain):
    return PlanFactory(chain=chain, name="家庭会员计划", kind=PlanKind.SPEND_BASED, spend_threshold_fen=3_000_000)


@pytest.fixture
def family_tier(family_plan):
    return TierFactory(plan=family_plan, rank=1, name="家庭会员", discount_bp=1200, min_spend_fen=3_000_000,
                       family_slots=3, friend_discount_bp=1200)


@pytest.fixture
def premium_tier(family_plan):
    return TierFactory(plan=family_plan, rank=2, name="家庭尊享", discount_bp=1500, min_spend_fen=10_000_000,
                       family_slots=5, friend_discount_bp=1200)


@pytest.fixture
def friend_card(family_tier):
    return BenefitFactory(tier=family_tier, name="亲友储值卡 600 元", is_hidden=True,
                          trigger=BenefitTrigger.PLAN_HALF_DONE, action_code="issue_friend_card",
                          action_data={"amount_fen": 60000, "valid_months": 3})


@pytest.fixture
def paid_plan(chain):
    return PlanFactory(chain=chain, name="年度会员", kind=PlanKind.PAID, fee_fen=89_900, duration_months=12,
                       spend_threshold_fen=None, auto_enrol=False)


@pytest.fixture
def annual_tier(paid_plan):
    return TierFactory(plan=paid_plan, rank=1, name="年卡会员", discount_bp=500, min_spend_fen=0, family_slots=1)


@pytest.fixture
def stored_plan(chain):
    return PlanFactory(chain=chain, name="储值会员", kind=PlanKind.STORED_VALUE, spend_threshold_fen=None,
                       topup_bonus_rules=[{"min_topup_fen": 1_000_000, "bonus_fen": 100_000}])


@pytest.fixture
def gold_tier(stored_plan):
    return TierFactory(plan=stored_plan, rank=1, name="金卡", discount_bp=500, min_spend_fen=0, min_topup_fen=1_000_000)


def patient(chain, clinic, name, *, spend=0, birthday=None, visits=0, mobile=None):
    extra = {"mobile": mobile} if mobile else {}
    return CustomerFactory(chain=chain, home_clinic=clinic, name=name, lifetime_spend_fen=spend, birthday=birthday,
                           visit_count=visits, stage=Stage.TREATED, **extra)


@pytest.fixture
def wang(chain, clinic_a):
    """A big spender: 30,120 yuan."""
    return patient(chain, clinic_a, "王芳", spend=3_012_000, birthday=dt.date(1980, 7, 1))


@pytest.fixture
def spouse(chain, clinic_a):
    return patient(chain, clinic_a, "李强", birthday=dt.date(1979, 5, 5))


@pytest.fixture
def child(chain, clinic_a):
    return patient(chain, clinic_a, "李小明", birthday=timezone.localdate() - dt.timedelta(days=365 * 8))


@pytest.fixture
def friend(chain, clinic_a):
    return patient(chain, clinic_a, "赵敏", birthday=dt.date(1990, 1, 1))
