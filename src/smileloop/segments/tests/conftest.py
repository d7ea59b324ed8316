import datetime as dt
from decimal import Decimal

import pytest
from django.conf import settings
from django.utils import translation

from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import ClinicFactory, StaffFactory
from smileloop.membership.tests.factories import PlanFactory, TierFactory
from smileloop.tagging.tests.factories import TagFactory, TagGroupFactory

TODAY = dt.date(2025, 6, 15)


@pytest.fixture(autouse=True)
def english():
    """Messages are asserted in English (settings.LANGUAGE_CODE), whatever an earlier request activated."""
    with translation.override(settings.LANGUAGE_CODE):
        yield


@pytest.fixture
def today():
    return TODAY


@pytest.fixture
def located(clinic_a, clinic_b):
    """Clinics A and B with coordinates (静安, 浦东)."""
    clinic_a.latitude, clinic_a.longitude = Decimal("31.228600"), Decimal("121.454800")
    clinic_a.save(update_fields=["latitude", "longitude"])
    clinic_b.latitude, clinic_b.longitude = Decimal("31.221500"), Decimal("121.544500")
    clinic_b.save(update_fields=["latitude", "longitude"])
    return clinic_a, clinic_b


@pytest.fixture
def clinic_c(chain):
    """A clinic without coordinates."""
    return ClinicFactory(chain=chain, code="SH03", name="徐汇门诊")


@pytest.fixture
def tags(chain):
    group = TagGroupFactory(chain=chain, code="interest", name="兴趣")
    return {code: TagFactory(chain=chain, group=group, code=code, name=name, kind=kind)
            for code, name, kind in [("implant", "种植意向", "keyword"), ("ortho", "正畸意向", "manual"),
                                     ("vip", "高价值", "rule")]}


@pytest.fixture
def tiers(chain):
    plan = PlanFactory(chain=chain, name="家庭会员")
    return TierFactory(plan=plan, rank=1, name="银卡"), TierFactory(plan=plan, rank=2, name="金卡")


@pytest.fixture
def consultant(chain, clinic_b):
    return StaffFactory(chain=chain, role=Role.CONSULTANT, name="咨询师小陈", clinics=[clinic_b])
