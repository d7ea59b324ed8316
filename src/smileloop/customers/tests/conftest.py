"""Fixtures of the customers app's page tests: a treated patient of clinic A and a lead of clinic B."""

import pytest

from smileloop.customers.enums import Stage
from smileloop.customers.tests.factories import CustomerFactory


@pytest.fixture
def zhang_san(chain, clinic_a):
    return CustomerFactory(chain=chain, name="张三", mobile="+8613800138000", mobile_tail="8000",
                           home_clinic=clinic_a, stage=Stage.TREATED, first_touch_channel="douyin")


@pytest.fixture
def li_si(chain, clinic_b):
    return CustomerFactory(chain=chain, name="李四", mobile="+8613900139000", mobile_tail="9000",
                           home_clinic=clinic_b, stage=Stage.LEAD, first_touch_channel="referral")
