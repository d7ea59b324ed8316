"""Fixtures of the loyalty tests: the DOMAIN.md rules in small and a family of patients at clinic A."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from smileloop.customers.enums import Relation, Stage
from smileloop.customers.services import household_member_add
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.loyalty.enums import EarnTrigger, SpecialPrice
from smileloop.loyalty.tests.factories import (
    EarnRuleFactory,
    PackageEntitlementFactory,
    PackageFactory,
    RedeemSettingsFactory,
    TopupBonusRuleFactory,
)
from smileloop.membership.tests.factories import MembershipFactory, PlanFactory, TierFactory


@pytest.fixture
def now():
    """The real time: the ledger reads balances "now" (available_balance), so scenarios happen around it."""
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def rules(chain):
    """1 point per yuan, none on special-price items, 7 days pending, 12 months validity; fixed awards."""
    return {
        "spend": EarnRuleFactory(chain=chain, code="spend", points_per_yuan=Decimal(1)),
        "special": EarnRuleFactory(chain=chain, code="spend_special", points_per_yuan=Decimal(0),
                                   special_price=SpecialPrice.SPECIAL),
        "referral": EarnRuleFactory(chain=chain, code="referral", trigger=EarnTrigger.REFERRAL, points_per_yuan=0,
                                    points=1000, pending_days=0),
        "review": EarnRuleFactory(chain=chain, code="review", trigger=EarnTrigger.REVIEW, points_per_yuan=0,
                                  points=50, pending_days=0, validity_months=None),
    }


@pytest.fixture
def terms(chain):
    return RedeemSettingsFactory(chain=chain, points_per_yuan=100, max_share_bp=1000)


@pytest.fixture
def bonus_rules(chain):
    return [TopupBonusRuleFactory(chain=chain, min_topup_fen=1_000_000, bonus_fen=100_000),
            TopupBonusRuleFactory(chain=chain, min_topup_fen=500_000, bonus_fen=40_000)]


def patient(chain, clinic, name, **kwargs):
    return CustomerFactory(chain=chain, home_clinic=clinic, name=name, stage=Stage.TREATED, **kwargs)


@pytest.fixture
def wang(chain, clinic_a):
    return patient(chain, clinic_a, "王芳", birthday=dt.date(1980, 7, 1))


@pytest.fixture
def spouse(chain, clinic_a, wang):
    person = patient(chain, clinic_a, "李强", birthday=dt.date(1979, 5, 5))
    household_member_add(head=wang, member=person, relation=Relation.SPOUSE)
    return person


@pytest.fixture
def child(chain, clinic_a, wang):
    person = patient(chain, clinic_a, "李小明", birthday=dt.date(2018, 6, 1))
    household_member_add(head=wang, member=person, relation=Relation.CHILD)
    return person


@pytest.fixture
def stranger_b(chain, clinic_b):
    return patient(chain, clinic_b, "赵敏", birthday=dt.date(1990, 1, 1))


@pytest.fixture
def family_membership(chain, wang, now):
    """王芳 holds a lifetime family membership with a 1.5 points multiplier."""
    plan = PlanFactory(chain=chain, name="家庭会员计划")
    tier = TierFactory(plan=plan, rank=1, name="家庭会员", points_multiplier=Decimal("1.50"), family_slots=3)
    return MembershipFactory(customer=wang, tier=tier, started_at=now - dt.timedelta(days=30))


@pytest.fixture
def family_package(chain):
    package = PackageFactory(chain=chain, name="家庭口腔护理套餐", validity_months=12)
    PackageEntitlementFactory(package=package, label="洁牙", category="cleaning", quantity=2)
    PackageEntitlementFactory(package=package, label="口腔检查", category="exam", quantity=2)
    PackageEntitlementFactory(package=package, label="儿童涂氟", category="", item_code="PD01", quantity=4, max_age=12)
    return package
