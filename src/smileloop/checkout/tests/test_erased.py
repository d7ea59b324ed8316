"""A bill for an erased record (PIPL, customers.privacy) is refused with nothing written: the record is the anonymous
history of someone who asked to be forgotten, and a returning patient is a new record. A bill paid before the erasure
is still answered when its key is sent again."""

import pytest

from smileloop.checkout.models import Settlement
from smileloop.checkout.services import checkout_pay, checkout_price
from smileloop.core.errors import Conflict
from smileloop.customers.privacy import customer_erase
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.visits.models import Order

pytestmark = pytest.mark.django_db


def cash(bill):
    return [{"method": "cash", "amount_fen": bill.cash_fen}]


@pytest.fixture
def chen(chain, clinic_a):
    return CustomerFactory(chain=chain, name="陈静", home_clinic=clinic_a)


def test_a_bill_priced_before_the_erasure_is_refused_at_pay_and_writes_nothing(
        chain, clinic_a, catalogue, chen, director_scope):
    # given a bill priced at the desk, then the patient's erasure committed by the director
    bill = checkout_price(customer=chen, clinic=clinic_a, lines=[{"item_code": "EX01", "quantity": 1}])
    customer_erase(scope=director_scope, customer=chen, actor=None, reason="本人书面申请")
    # when the desk pays it
    with pytest.raises(Conflict) as refused:
        checkout_pay(priced=bill, payments=cash(bill), key="pay-1")
    # then
    assert (refused.value.code, refused.value.field) == ("erased", "customer_id")
    assert (Order.objects.count(), Settlement.objects.count()) == (0, 0)


def test_a_bill_paid_before_the_erasure_is_answered_again_on_its_key(chain, clinic_a, catalogue, chen,
                                                                     director_scope):
    bill = checkout_price(customer=chen, clinic=clinic_a, lines=[{"item_code": "EX01", "quantity": 1}])
    first = checkout_pay(priced=bill, payments=cash(bill), key="pay-1")
    customer_erase(scope=director_scope, customer=chen, actor=None, reason="本人书面申请")
    assert checkout_pay(priced=bill, payments=cash(bill), key="pay-1").pk == first.pk
    assert Order.objects.count() == 1
