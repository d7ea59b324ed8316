"""The refund clawback policy (checkout.services docstring): earned points still held are taken back; earned
points already spent are withheld from the cash refund at the redeem rate, rounded up to the fen; a cash part
too small for that refuses the refund and changes nothing."""

import pytest

from smileloop.checkout.errors import ClawbackExceedsRefund
from smileloop.checkout.models import RefundSettlement
from smileloop.checkout.services import checkout_pay, checkout_price, checkout_refund
from smileloop.ledger.enums import AccountKind
from smileloop.ledger.models import LedgerTransaction
from smileloop.ledger.selectors import ledger_check
from smileloop.ledger.services import account_for
from smileloop.loyalty.services import points_redeem, redeem_terms_save, wallet_topup
from smileloop.visits.models import Order


def points_of(chain, customer) -> int:
    return account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=customer).balance


def pay_cleaning(alice, clinic_a, *, key="pay-1", wallet=None):
    bill = checkout_price(customer=alice, clinic=clinic_a, lines=[{"item_code": "CL01"}], wallet=wallet)
    payments = [{"method": "cash", "amount_fen": bill.cash_fen}] if bill.cash_fen else []
    return checkout_pay(priced=bill, payments=payments, key=key)


def test_refund_takes_back_held_points_and_withholds_the_spent_ones_from_the_cash(
        chain, clinic_a, catalogue, alice, spend_rule):
    # given a cleaning paid in cash (264.00 after 88折 → 264 points), of which 200 were spent since
    settlement = pay_cleaning(alice, clinic_a)
    assert points_of(chain, alice) == 264
    points_redeem(customer=alice, points=200, key="elsewhere", source="order:other")
    # when the whole bill is refunded
    refund = checkout_refund(settlement=settlement, key="r1", reason="cancelled")
    # then the 64 held points come back and the 200 spent ones cost 2.00 of the cash refund
    assert points_of(chain, alice) == 0
    assert refund.amount_fen == 26400 and refund.cash_fen == 26200
    assert refund.breakdown["clawback_fen"] == 200
    tenders = {t["kind"]: t for t in refund.breakdown["tenders"]}
    assert tenders["cash"]["amount_fen"] == 26200
    assert (tenders["earn"]["points"], tenders["earn"]["shortfall_points"]) == (-64, 200)
    assert tenders["clawback"] == {"kind": "clawback", "ref": "", "amount_fen": 200, "points": 200,
                                   "label": "points already spent, withheld from the refund: 2.00"}
    assert sum(t["amount_fen"] for t in refund.breakdown["tenders"]) == refund.amount_fen
    assert Order.objects.get().status == "refunded"
    assert ledger_check(chain_id=chain.id) == []


def test_the_shortfall_is_rounded_up_to_the_fen_at_the_chains_redeem_rate(
        chain, clinic_a, catalogue, alice, spend_rule):
    # given 150 points per yuan and all 264 earned points spent
    redeem_terms_save(chain=chain, data={"points_per_yuan": 150, "max_share_bp": 1000, "is_enabled": True})
    settlement = pay_cleaning(alice, clinic_a)
    points_redeem(customer=alice, points=264, key="elsewhere", source="order:other")
    line = settlement.order.lines.get()
    # when 100.00 of 264.00 is refunded: 264 × 100/264 = 100 points due
    refund = checkout_refund(settlement=settlement, lines=[{"line_id": line.id, "amount_fen": 10000}], key="r1")
    # then 100 points × 100 / 150 = 66.67 fen → 67 fen withheld
    assert refund.breakdown["clawback_fen"] == 67 and refund.cash_fen == 10000 - 67
    assert points_of(chain, alice) == 0
    assert ledger_check(chain_id=chain.id) == []


def test_partial_refunds_settle_the_due_points_once_in_total(chain, clinic_a, catalogue, alice, spend_rule):
    # given 264 earned points, all spent
    settlement = pay_cleaning(alice, clinic_a)
    points_redeem(customer=alice, points=264, key="elsewhere", source="order:other")
    line = settlement.order.lines.get()
    # when half the bill is refunded, then the rest
    first = checkout_refund(settlement=settlement, lines=[{"line_id": line.id, "amount_fen": 13200}], key="r1")
    rest = checkout_refund(settlement=settlement, key="r2")
    # then 132 + 132 points were settled in money, never twice
    assert (first.breakdown["clawback_fen"], rest.breakdown["clawback_fen"]) == (132, 132)
    assert (first.cash_fen, rest.cash_fen) == (13200 - 132, 13200 - 132)
    assert points_of(chain, alice) == 0
    assert ledger_check(chain_id=chain.id) == []


def test_a_clawback_larger_than_the_cash_part_refuses_the_refund_and_changes_nothing(
        chain, clinic_a, catalogue, alice, spend_rule):
    # given a bill paid 263.00 from the wallet and 1.00 in cash, its 264 points all spent
    wallet_topup(customer=alice, amount_fen=26300, method="cash", key="topup-1")
    settlement = pay_cleaning(alice, clinic_a, wallet={"amount_fen": "max"})
    assert settlement.cash_fen == 100
    points_redeem(customer=alice, points=264, key="elsewhere", source="order:other")
    count = LedgerTransaction.objects.count()
    # when / then
    with pytest.raises(ClawbackExceedsRefund) as exc:
        checkout_refund(settlement=settlement, key="r1")
    assert exc.value.code == "clawback_exceeds_refund"
    assert LedgerTransaction.objects.count() == count and RefundSettlement.objects.count() == 0
    assert Order.objects.get().refunded_fen == 0
    assert settlement.movements.filter(refunded_fen__gt=0).count() == 0
    assert ledger_check(chain_id=chain.id) == []
