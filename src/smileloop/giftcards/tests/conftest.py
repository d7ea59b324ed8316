import datetime as dt

import pytest

from smileloop.customers.tests.factories import CustomerFactory
from smileloop.giftcards.tests.factories import CampaignFactory, ProgrammeFactory

NOW = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai


@pytest.fixture
def now():
    return NOW


@pytest.fixture
def member(chain, clinic_a):
    return CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a)


@pytest.fixture
def friend(chain, clinic_a):
    return CustomerFactory(chain=chain, name="李娜", home_clinic=clinic_a)


@pytest.fixture
def programme(chain):
    return ProgrammeFactory(chain=chain, code="friend-card", name="亲友储值卡", face_value_fen=60000, valid_months=3)


@pytest.fixture
def cleaning_campaign(chain, catalogue):
    return CampaignFactory(chain=chain, code="clean-99", name="9.9元洁牙", item=catalogue["CL01"])
