"""The refund clawback policy (checkout.services docstring): earned points still held are taken back; earned
points already spent are withheld from the cash refund at the redeem rate, rounded up to the fen; a cash part
too small for that refuses the refund and changes nothing."""

import pytest

from smileloop.checkout.errors import ClawbackExceedsRefund
from smileloop.checkout.models import RefundSettlement, Settlement
from smileloop.checkout.services import checkout_pay, checkout_price, checkout_refund
from smileloop.checkout.tests.factories import SpendRuleFactory
from smileloop.customers.services import customer_merge
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.ledger.enums import AccountKind, EntryReason
from smileloop.ledger.models import Entry, LedgerTransaction
from smileloop.ledger.selectors import ledger_check
from smileloop.ledger.services import (
    Posting,
    account_for,
    available_balance,
    ledger_post,
    system_account,
)
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


def test_spent_points_are_valued_at_the_redeem_rate_of_the_refund_not_of_their_spending(
        chain, clinic_a, catalogue, alice, spend_rule):
    # given 264 earned points spent at 100 points a yuan (2.64 off elsewhere), then the chain's rate moves to 200
    settlement = pay_cleaning(alice, clinic_a)
    points_redeem(customer=alice, points=264, key="elsewhere", source="order:other")
    redeem_terms_save(chain=chain, data={"points_per_yuan": 200, "max_share_bp": 1000, "is_enabled": True})
    # when the whole bill is refunded
    refund = checkout_refund(settlement=settlement, key="r1")
    # then the 264 points owed are worth what today's terms give for them: 1.32, as they would be if still held
    assert refund.breakdown["clawback_fen"] == 132 and refund.cash_fen == 26400 - 132
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


def earn_reversed(settlement) -> int:
    """Points the ledger took back of the bill's earn (reversal entries on points accounts)."""
    earn = settlement.movements.get(role="earn").transaction
    return -sum(Entry.objects.filter(transaction__reverses=earn, account__kind=AccountKind.POINTS)
                .values_list("amount", flat=True))


def seed_points(chain, customer, points, key):
    ledger_post(chain_id=chain.id, key=key, reason=EntryReason.EARN, postings=[
        Posting(account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=customer), points),
        Posting(system_account(chain_id=chain.id, kind=AccountKind.POINTS_ISSUED), -points)])


def test_points_an_earlier_refund_took_back_count_once_against_what_is_due(
        chain, clinic_a, catalogue, alice, spend_rule):
    # given 264 earned points; half the bill refunded takes 132 of them back, then 100 of the other 132 are spent
    settlement = pay_cleaning(alice, clinic_a)
    line = settlement.order.lines.get()
    first = checkout_refund(settlement=settlement, lines=[{"line_id": line.id, "amount_fen": 13200}], key="r1")
    points_redeem(customer=alice, points=100, key="elsewhere", source="order:other")
    # when the rest is refunded
    rest = checkout_refund(settlement=settlement, key="r2")
    # then the 132 still due are the 32 held and the 100 spent (1.00 withheld): the 132 taken back first are
    # neither asked again nor counted twice
    earns = [next(t for t in r.breakdown["tenders"] if t["kind"] == "earn") for r in (first, rest)]
    assert [(t["points"], t["shortfall_points"]) for t in earns] == [(-132, 0), (-32, 100)]
    assert (first.breakdown["clawback_fen"], rest.breakdown["clawback_fen"]) == (0, 100)
    assert rest.cash_fen == 13200 - 100
    assert earn_reversed(settlement) == 132 + 32 == -sum(t["points"] for t in earns)
    assert points_of(chain, alice) == 0
    assert ledger_check(chain_id=chain.id) == []


def test_a_refund_too_small_to_owe_a_point_still_records_an_empty_earn_tender(
        chain, clinic_a, catalogue, alice, spend_rule):
    # given 264 earned points on 264.00
    settlement = pay_cleaning(alice, clinic_a)
    line = settlement.order.lines.get()
    # when 0.01 is refunded (264 × 1/26400 rounds to no point), then the rest
    cent = checkout_refund(settlement=settlement, lines=[{"line_id": line.id, "amount_fen": 1}], key="r1")
    tenders = {t["kind"]: t for t in cent.breakdown["tenders"]}
    # then the first takes nothing back and says so; the second takes back all 264
    assert tenders["earn"] == {"kind": "earn", "ref": "", "amount_fen": 0, "points": 0, "shortfall_points": 0}
    assert "clawback" not in tenders and earn_reversed(settlement) == 0 and points_of(chain, alice) == 264
    checkout_refund(settlement=settlement, key="r2")
    assert earn_reversed(settlement) == 264 and points_of(chain, alice) == 0
    assert ledger_check(chain_id=chain.id) == []


def test_the_bills_own_pending_points_are_taken_back_before_the_members_other_points(
        chain, clinic_a, catalogue, alice):
    # given points that wait 7 days before they can be spent, and 100 other points the member can spend
    SpendRuleFactory(chain=chain, points_per_yuan=1, pending_days=7)
    seed_points(chain, alice, 100, "seed")
    settlement = pay_cleaning(alice, clinic_a)
    account = account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=alice)
    assert (account.balance, available_balance(account)) == (364, 100)
    line = settlement.order.lines.get()
    # when half the bill is refunded
    refund = checkout_refund(settlement=settlement, lines=[{"line_id": line.id, "amount_fen": 13200}], key="r1")
    # then its 132 points come out of the bill's pending lot; the other 100 stay spendable, nothing is withheld
    account.refresh_from_db()
    assert (account.balance, available_balance(account)) == (232, 100)
    assert refund.breakdown["clawback_fen"] == 0 and earn_reversed(settlement) == 132
    assert ledger_check(chain_id=chain.id) == []


def test_a_bill_of_a_merged_record_takes_its_points_back_from_the_survivors_account(
        chain, clinic_a, catalogue, spend_rule, admin_scope):
    # given a duplicate record that paid a cleaning (300 points), merged into the record kept (50 points of its own)
    kept = CustomerFactory(chain=chain, home_clinic=clinic_a)
    duplicate = CustomerFactory(chain=chain, home_clinic=clinic_a)
    seed_points(chain, kept, 50, "seed")
    settlement = pay_cleaning(duplicate, clinic_a)
    customer_merge(scope=admin_scope, survivor=kept, merged=duplicate, reason="同一人")
    assert points_of(chain, kept) == 350
    # when the bill is refunded
    refund = checkout_refund(settlement=Settlement.objects.get(pk=settlement.pk), key="r1")
    # then the 300 come back out of the survivor's account (the duplicate's is closed), nothing withheld
    assert points_of(chain, kept) == 50
    assert refund.breakdown["clawback_fen"] == 0 and refund.cash_fen == 30000
    earn_tender = next(t for t in refund.breakdown["tenders"] if t["kind"] == "earn")
    assert (earn_tender["points"], earn_tender["shortfall_points"]) == (-300, 0)
    assert ledger_check(chain_id=chain.id) == []


def test_a_bill_whose_points_went_into_two_lots_takes_back_the_pending_one_for_the_spent_one(
        chain, clinic_a, catalogue, alice):
    # given a cleaning whose 264 points wait 7 days and a filling whose 528 points were spendable at once and spent
    SpendRuleFactory(chain=chain, points_per_yuan=1, pending_days=7, category="cleaning")
    SpendRuleFactory(chain=chain, points_per_yuan=1, category="filling")
    bill = checkout_price(customer=alice, clinic=clinic_a, lines=[{"item_code": "CL01"}, {"item_code": "FI01"}])
    settlement = checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}], key="pay-1")
    assert settlement.movements.get(role="earn").points == 264 + 528
    points_redeem(customer=alice, points=528, key="elsewhere", source="order:other")
    cleaning = settlement.order.lines.get(item__code="CL01")
    # when the cleaning is refunded: 264 points due, and the bill's pending lot holds 264
    refund = checkout_refund(settlement=settlement, lines=[{"line_id": cleaning.id, "amount_fen": 26400}], key="r1")
    # then they are taken back from it, nothing withheld
    assert refund.breakdown["clawback_fen"] == 0 and earn_reversed(settlement) == 264
    assert points_of(chain, alice) == 0
    assert ledger_check(chain_id=chain.id) == []


def test_a_merged_records_pending_points_are_taken_back_from_the_lot_the_merge_moved_them_to(
        chain, clinic_a, catalogue, admin_scope):
    # given a duplicate record whose cleaning earned 300 points that wait 7 days, merged into the record kept
    # (50 spendable points of its own): the merge moved the pending 300 into a new pending lot of the survivor
    SpendRuleFactory(chain=chain, points_per_yuan=1, pending_days=7, category="cleaning")
    kept = CustomerFactory(chain=chain, home_clinic=clinic_a)
    duplicate = CustomerFactory(chain=chain, home_clinic=clinic_a)
    seed_points(chain, kept, 50, "seed")
    settlement = pay_cleaning(duplicate, clinic_a)
    customer_merge(scope=admin_scope, survivor=kept, merged=duplicate, reason="同一人")
    kept_points = account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=kept)
    assert (kept_points.balance, available_balance(kept_points)) == (350, 50)
    # when the bill is refunded
    refund = checkout_refund(settlement=Settlement.objects.get(pk=settlement.pk), key="r1")
    # then the 300 pending points are taken back from that lot: nothing withheld, the 50 of the survivor untouched
    assert refund.breakdown["clawback_fen"] == 0 and refund.cash_fen == 30000
    earn_tender = next(t for t in refund.breakdown["tenders"] if t["kind"] == "earn")
    assert (earn_tender["points"], earn_tender["shortfall_points"]) == (-300, 0)
    kept_points.refresh_from_db()
    assert (kept_points.balance, available_balance(kept_points)) == (50, 50)
    assert ledger_check(chain_id=chain.id) == []


def test_points_moved_by_two_merges_in_a_row_are_still_the_bills_own(chain, clinic_a, catalogue, admin_scope):
    # given a bill's pending points moved twice (first duplicate → second → the record kept), half of them...
    SpendRuleFactory(chain=chain, points_per_yuan=1, pending_days=7, category="cleaning")
    first, second, kept = (CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(3))
    seed_points(chain, second, 20, "seed-second")
    settlement = pay_cleaning(first, clinic_a)
    customer_merge(scope=admin_scope, survivor=second, merged=first, reason="同一人")
    customer_merge(scope=admin_scope, survivor=kept, merged=second, reason="同一人")
    # when half the bill is refunded, then the rest
    order_line = settlement.order.lines.get()
    half = checkout_refund(settlement=Settlement.objects.get(pk=settlement.pk), key="r1",
                           lines=[{"line_id": order_line.id, "amount_fen": 15000}])
    rest = checkout_refund(settlement=Settlement.objects.get(pk=settlement.pk), key="r2")
    # then each takes its share from the moved pending lot, and only the 20 spendable points of `second` remain
    assert half.breakdown["clawback_fen"] == 0 and rest.breakdown["clawback_fen"] == 0
    assert earn_reversed(settlement) == 300
    kept_points = account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=kept)
    assert (kept_points.balance, available_balance(kept_points)) == (20, 20)
    assert ledger_check(chain_id=chain.id) == []


def test_points_the_refund_returns_pay_for_earned_points_already_spent_before_any_cash_is_withheld(
        chain, clinic_a, catalogue, alice, spend_rule):
    # given a cleaning paid partly with points (as many as the cap allows) and the rest in cash, after which every
    # point alice held, the ones the bill earned included, was spent elsewhere
    seed_points(chain, alice, 5000, "seed")
    bill = checkout_price(customer=alice, clinic=clinic_a, lines=[{"item_code": "CL01"}], points="max")
    settlement = checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}], key="pay-1")
    redeemed = settlement.movements.get(role="points").points
    earned = settlement.movements.get(role="earn").points
    assert 0 < earned < redeemed
    points_redeem(customer=alice, points=points_of(chain, alice), key="elsewhere", source="order:other")
    assert points_of(chain, alice) == 0
    # when the whole bill is refunded
    refund = checkout_refund(settlement=settlement, key="r1")
    # then the redeemed points come back and the earned ones are taken out of them: no cash is withheld
    assert refund.breakdown["clawback_fen"] == 0 and refund.cash_fen == bill.cash_fen
    earn = next(t for t in refund.breakdown["tenders"] if t["kind"] == "earn")
    assert (earn["points"], earn["shortfall_points"]) == (-earned, 0)
    assert points_of(chain, alice) == redeemed - earned
    assert ledger_check(chain_id=chain.id) == []
