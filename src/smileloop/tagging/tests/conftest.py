import pytest

from smileloop.customers.tests.factories import CustomerFactory
from smileloop.tagging.enums import TagGroupKind
from smileloop.tagging.tests.factories import TagGroupFactory


@pytest.fixture
def interests(chain):
    return TagGroupFactory(chain=chain, code="interest", name="兴趣", kind=TagGroupKind.INTEREST)


@pytest.fixture
def patient_a(chain, clinic_a):
    return CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a)


@pytest.fixture
def patient_b(chain, clinic_b):
    return CustomerFactory(chain=chain, name="李娜", home_clinic=clinic_b)
