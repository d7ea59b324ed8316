import datetime as dt

import pytest

from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.followups.services import playbooks_install_defaults
from smileloop.visits.enums import Category
from smileloop.visits.tests.factories import ServiceItemFactory

TODAY = dt.date(2026, 11, 20)


@pytest.fixture
def today():
    return TODAY


@pytest.fixture
def playbooks(chain):
    playbooks_install_defaults(chain=chain)
    from smileloop.followups.models import Playbook

    return {p.code: p for p in Playbook.objects.filter(chain=chain).prefetch_related("steps")}


@pytest.fixture
def consultant_a(chain, clinic_a):
    return StaffFactory(chain=chain, role=Role.CONSULTANT, name="顾问小陈", clinics=[clinic_a])


@pytest.fixture
def doctor_a(chain, clinic_a):
    return StaffFactory(chain=chain, role=Role.DOCTOR, name="张伟", clinics=[clinic_a])


@pytest.fixture
def assistant_a(chain, clinic_a):
    return StaffFactory(chain=chain, role=Role.ASSISTANT, name="助理小刘", clinics=[clinic_a])


@pytest.fixture
def front_desk_b(chain, clinic_b):
    return StaffFactory(chain=chain, role=Role.FRONT_DESK, name="前台小赵", clinics=[clinic_b],
                        user__username="frontdesk_b")


@pytest.fixture
def items(chain, catalogue):
    extra = {
        "EXT1": ServiceItemFactory(chain=chain, code="EXT1", name="拔牙", category=Category.EXTRACTION),
        "OR01": ServiceItemFactory(chain=chain, code="OR01", name="正畸复诊", category=Category.ORTHODONTICS),
    }
    return {**catalogue, **extra}
