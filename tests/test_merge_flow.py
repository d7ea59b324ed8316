"""A merge moves everything that names the merged record to the record kept, in every app: also the rows whose
foreign key has no reverse accessor (related_name="+"), as a checkout bill's settlement, a family wallet's use and a
keyword tag's hit counts have."""

import datetime as dt

from smileloop.checkout.selectors import settlement_get
from smileloop.checkout.services import checkout_pay, checkout_price, checkout_refund
from smileloop.customers.services import customer_merge
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.ledger.selectors import ledger_check
from smileloop.loyalty.services import wallet_topup
from smileloop.tagging.models import KeywordHit
from smileloop.tagging.tests.factories import TagFactory


def test_a_bill_paid_before_a_merge_is_the_survivors_and_can_still_be_refunded(chain, clinic_a, catalogue,
                                                                               admin_scope):
    # given a patient registered twice, who paid a cleaning from the wallet of the record that is merged away,
    # and whose keyword tag history is on that record too
    kept = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a)
    duplicate = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a)
    wallet_topup(customer=duplicate, amount_fen=50000, method="cash", key="topup-1")
    bill = checkout_price(customer=duplicate, clinic=clinic_a, lines=[{"item_code": "CL01"}],
                          wallet={"holder": duplicate, "amount_fen": 30000})
    settlement = checkout_pay(priced=bill, payments=[], key="pay-1")
    hit = KeywordHit.objects.create(customer=duplicate, tag=TagFactory(group__chain=chain), day=dt.date(2026, 11, 30),
                                    hits=2, counts={"种牙": 2})
    # when the duplicate is merged into the record kept
    customer_merge(scope=admin_scope, survivor=kept, merged=duplicate, reason="同一人")
    # then the bill, and the hit counts, are the survivor's: the bill is found and refunded as any other
    settlement.refresh_from_db()
    assert settlement.customer_id == kept.id
    assert settlement.order.customer_id == kept.id
    assert settlement_get(admin_scope, settlement.id) == settlement
    refund = checkout_refund(settlement=settlement, key="refund-1", reason="取消")
    assert refund.amount_fen == 30000
    hit.refresh_from_db()
    assert hit.customer_id == kept.id
    assert ledger_check(chain_id=chain.id) == []
