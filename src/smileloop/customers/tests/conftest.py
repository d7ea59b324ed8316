"""Fixtures of the customers app's page tests: a treated patient of clinic A and a lead of clinic B, two records of one
person (赵六, same name and birthday)."""

import datetime as dt

import pytest

from smileloop.customers.enums import Stage
from smileloop.customers.services import household_member_add
from smileloop.customers.tests.factories import CustomerFactory


@pytest.fixture
def zhang_san(chain, clinic_a):
    return CustomerFactory(chain=chain, name="张三", mobile="+8613800138000", mobile_tail="8000",
                           home_clinic=clinic_a, stage=Stage.TREATED, first_touch_channel="douyin")


@pytest.fixture
def li_si(chain, clinic_b):
    return CustomerFactory(chain=chain, name="李四", mobile="+8613900139000", mobile_tail="9000",
                           home_clinic=clinic_b, stage=Stage.LEAD, first_touch_channel="referral")


@pytest.fixture
def twins(chain, clinic_a):
    first = CustomerFactory(chain=chain, name="赵六", mobile="+8613600136000", birthday=dt.date(1985, 3, 1),
                            home_clinic=clinic_a)
    second = CustomerFactory(chain=chain, name="赵六", mobile="+8615000150000", birthday=dt.date(1985, 3, 1),
                             home_clinic=clinic_a)
    return first, second


@pytest.fixture
def family_of_four(chain, clinic_a):
    """A head and three members (spouse, son, daughter), ids in that order (the head's the lowest): the family of the
    erasure, merge and family-write race tests."""
    head, *members = [CustomerFactory(chain=chain, home_clinic=clinic_a, name=name)
                      for name in ("王建国", "李秀英", "王小明", "王小红")]
    for member, relation in zip(members, ("spouse", "child", "child"), strict=True):
        household_member_add(head=head, member=member, relation=relation)
    return head, *members
