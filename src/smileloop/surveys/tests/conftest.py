import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.customers.tests.factories import CustomerFactory

SHANGHAI = ZoneInfo("Asia/Shanghai")
TODAY = dt.date(2026, 3, 2)


def at_local(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=SHANGHAI)


@pytest.fixture
def doctor_a(chain, clinic_a):
    return StaffFactory(chain=chain, role=Role.DOCTOR, name="陈医生", clinics=[clinic_a], user__username="doctor_a")


@pytest.fixture
def patient(chain, clinic_a):
    return CustomerFactory(chain=chain, name="张三", home_clinic=clinic_a)
