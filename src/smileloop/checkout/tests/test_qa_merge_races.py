"""A bill paid for a record while another desk merges it away (PostgreSQL).

checkout_pay locks the customer's row (FOR NO KEY UPDATE) and refuses an erased one there, not a merged one: it
waits for the merge and goes on. The whole bill is still refused (NotFound, as customer_get answers for a merged
record) by the tier evaluation at its end (membership_evaluate reads the row under its lock and refuses a merged
record), which rolls back the order, the settlement and every ledger movement: nothing on the tombstone
(regression test). A retried payment of a bill the merge moved answers with its settlement, and the bill is
refunded on the survivor (the refund follows the bill)."""

import pytest

from smileloop.checkout.models import Settlement
from smileloop.checkout.services import checkout_pay, checkout_price, checkout_refund
from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.errors import NotFound
from smileloop.core.testing import postgresql_only
from smileloop.customers.services import customer_merge
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.customers.tests.test_qa_merge_across_apps_postgres import merge_while
from smileloop.visits.models import Order

pytestmark = [postgresql_only, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def twins(chain, clinic_a):
    survivor = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王芳", mobile="+8613900000021")
    merged = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王芳", mobile="+8613900000022")
    return survivor, merged


def test_a_bill_paid_while_the_record_is_merged_is_never_left_on_the_tombstone(twins, chain_admin, clinic_a,
                                                                                catalogue):
    survivor, merged = twins
    inputs = {"clinic": clinic_a, "lines": [{"item_code": "EX01", "quantity": 1}]}
    cash = checkout_price(customer=merged, **inputs).cash_fen
    outcome = merge_while(survivor, merged, chain_admin, lambda stale: checkout_pay(
        priced={"customer": stale, **inputs}, payments=[{"method": "cash", "amount_fen": cash}], key="pay-race"))
    assert not Settlement.objects.filter(customer_id=merged.pk).exists()
    assert not Order.objects.filter(customer_id=merged.pk).exists()
    if isinstance(outcome, Settlement):
        assert outcome.customer_id == survivor.pk
    else:
        assert isinstance(outcome, NotFound), outcome


def test_a_bill_moved_by_a_merge_is_still_refunded_and_its_payment_replayed(twins, chain_admin, clinic_a, catalogue):
    survivor, merged = twins
    bill = checkout_price(customer=merged, clinic=clinic_a, lines=[{"item_code": "EX01", "quantity": 1}])
    payments = [{"method": "cash", "amount_fen": bill.cash_fen}]
    settlement = checkout_pay(priced=bill, payments=payments, key="pay-1")
    customer_merge(scope=scope_for_staff(chain_admin), survivor=survivor, merged=merged, reason="重复")
    # a retried payment (the page read before the merge) answers with its settlement, now the survivor's
    again = checkout_pay(priced=bill, payments=payments, key="pay-1")
    assert again.pk == settlement.pk and again.customer_id == survivor.pk
    settlement.refresh_from_db()
    refund = checkout_refund(settlement=settlement, key="refund-1", reason="treatment cancelled")
    assert refund.pk is not None
