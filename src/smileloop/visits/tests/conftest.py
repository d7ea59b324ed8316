"""Fixtures of the visits API tests: tokens of clinic A's staff and a patient of each clinic."""

import pytest

from smileloop.clinics.services import token_create
from smileloop.customers.tests.factories import CustomerFactory


@pytest.fixture
def token_a(front_desk_a):
    return token_create(username=front_desk_a.user.username)


@pytest.fixture
def director_token(director_a):
    return token_create(username=director_a.user.username)


@pytest.fixture
def patient_a(chain, clinic_a):
    return CustomerFactory(chain=chain, home_clinic=clinic_a, name="张三", mobile="+8613800138000")


@pytest.fixture
def patient_b(chain, clinic_b):
    return CustomerFactory(chain=chain, home_clinic=clinic_b, name="李四", mobile="+8613900139000")
