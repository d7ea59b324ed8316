"""A member with everything checkout combines: an own 88折 membership, a friends-and-family card given by
another member, points and a topped-up wallet."""

import pytest

from smileloop.checkout.tests.factories import SpendRuleFactory
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.giftcards.services import friend_card_issue
from smileloop.giftcards.tests.factories import CampaignFactory, ProgrammeFactory
from smileloop.ledger.enums import AccountKind, EntryReason
from smileloop.ledger.services import Posting, account_for, ledger_post, system_account
from smileloop.loyalty.services.wallet import wallet_topup
from smileloop.membership.tests.factories import MembershipFactory, TierFactory

POINTS = 2_000_000


@pytest.fixture
def tier(chain):
    return TierFactory(plan__chain=chain, name="家庭会员", discount_bp=1200)


@pytest.fixture
def alice(chain, clinic_a, tier):
    customer = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a)
    MembershipFactory(customer=customer, tier=tier)
    return customer


@pytest.fixture
def giver(chain, clinic_a):
    return CustomerFactory(chain=chain, name="张伟", home_clinic=clinic_a)


@pytest.fixture
def card(chain, giver):
    programme = ProgrammeFactory(chain=chain, code="friend-card", name="亲友储值卡", face_value_fen=60000)
    return friend_card_issue(member=giver, programme=programme, trigger="plan half done", key="card-1")


@pytest.fixture
def points(chain, alice):
    ledger_post(chain_id=chain.id, key="seed-points", reason=EntryReason.EARN, postings=[
        Posting(account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=alice), POINTS),
        Posting(system_account(chain_id=chain.id, kind=AccountKind.POINTS_ISSUED), -POINTS)])
    return POINTS


@pytest.fixture
def wallet(alice):
    return wallet_topup(customer=alice, amount_fen=10000, method="cash", key="topup-1")


@pytest.fixture
def spend_rule(chain):
    return SpendRuleFactory(chain=chain, points_per_yuan=1)


@pytest.fixture
def cleaning_voucher(chain, catalogue):
    return CampaignFactory(chain=chain, code="clean-99", name="9.9元洁牙", item=catalogue["CL01"])


@pytest.fixture
def four_lines():
    return [{"item_code": "CL01", "quantity": 1}, {"item_code": "OC01", "quantity": 1},
            {"item_code": "CL99", "quantity": 1}, {"item_code": "FI01", "quantity": 1}]


@pytest.fixture
def now_plus_95():
    import datetime as dt

    from django.utils import timezone

    return timezone.now() + dt.timedelta(days=95)


@pytest.fixture
def card_of_clinic_b(chain, clinic_b):
    """A friend card given by a clinic-B patient (赵强) to another (钱多多), registered as its holder there."""
    from smileloop.giftcards.services import giftcard_holder_register

    giver_b = CustomerFactory(chain=chain, name="赵强", home_clinic=clinic_b)
    programme = ProgrammeFactory(chain=chain, code="friend-card-b", name="亲友储值卡", face_value_fen=60000)
    card = friend_card_issue(member=giver_b, programme=programme, trigger="plan half done", key="card-b")
    holder_b = CustomerFactory(chain=chain, name="钱多多", home_clinic=clinic_b)
    return giftcard_holder_register(card=card, customer=holder_b)
