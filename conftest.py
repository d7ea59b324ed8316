"""Shared fixtures: a chain with two clinics and staff in each role that matters for scoping."""

import pytest

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory, StaffFactory
from smileloop.visits.enums import Category
from smileloop.visits.tests.factories import ServiceItemFactory


@pytest.fixture
def chain(db):
    return ChainFactory(name="笑齿口腔连锁")


@pytest.fixture
def clinic_a(chain):
    return ClinicFactory(chain=chain, code="SH01", name="静安门诊", city="上海")


@pytest.fixture
def clinic_b(chain):
    return ClinicFactory(chain=chain, code="SH02", name="浦东门诊", city="上海")


@pytest.fixture
def front_desk_a(chain, clinic_a):
    return StaffFactory(chain=chain, role=Role.FRONT_DESK, name="前台小王", clinics=[clinic_a],
                        user__username="frontdesk_a")


@pytest.fixture
def director_a(chain, clinic_a):
    return StaffFactory(chain=chain, role=Role.CLINIC_DIRECTOR, name="院长老李", clinics=[clinic_a],
                        user__username="director_a")


@pytest.fixture
def marketing(chain):
    return StaffFactory(chain=chain, role=Role.MARKETING, name="市场小周", user__username="marketing")


@pytest.fixture
def chain_admin(chain):
    return StaffFactory(chain=chain, role=Role.CHAIN_ADMIN, name="总部管理员", user__username="chainadmin")


@pytest.fixture
def scope_a(front_desk_a):
    return scope_for_staff(front_desk_a)


@pytest.fixture
def director_scope(director_a):
    return scope_for_staff(director_a)


@pytest.fixture
def admin_scope(chain_admin):
    return scope_for_staff(chain_admin)


@pytest.fixture
def catalogue(chain):
    items = [
        ("EX01", "口腔检查", Category.EXAM, 5000, False, False),
        ("CL01", "洁牙", Category.CLEANING, 30000, False, False),
        ("CL99", "9.9元特价洁牙", Category.CLEANING, 990, True, False),
        ("FI01", "树脂补牙", Category.FILLING, 60000, False, False),
        ("IM01", "种植体植入", Category.IMPLANT, 1200000, False, True),
        ("OC01", "电动牙刷", Category.ORAL_CARE_PRODUCT, 39900, False, False),
    ]
    return {
        code: ServiceItemFactory(chain=chain, code=code, name=name, category=cat, list_price_fen=price,
                                 is_special_price=special, is_surgical=surgical)
        for code, name, cat, price, special, surgical in items
    }
