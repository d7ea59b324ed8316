import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smileloop.core.errors import ValidationFailed
from smileloop.ledger.enums import AccountKind
from smileloop.ledger.models import LedgerTransaction, Lot
from smileloop.ledger.selectors import ledger_check
from smileloop.ledger.services import account_for, accounts_for, ledger_post_many, lots_expire
from smileloop.loyalty._common import add_months, day_end
from smileloop.loyalty.errors import InsufficientPoints, LoyaltyInputError, OutOfStock, RuleNotFound
from smileloop.loyalty.models import Gift, GiftExchange
from smileloop.loyalty.selectors import points_multiplier_of, points_summary, spend_rules
from smileloop.loyalty.services import (
    gift_exchange,
    points_award,
    points_earn_for_order,
    points_earn_request,
    points_redeem,
    points_redeem_quote,
    points_redeem_request,
    points_redeem_terms,
)
from smileloop.loyalty.tests.factories import EarnRuleFactory, GiftFactory, order_with
from smileloop.membership.selectors import own_membership
from smileloop.visits.enums import Category


def points(customer) -> int:
    return account_for(chain_id=customer.chain_id, kind=AccountKind.POINTS, customer=customer).balance


def test_an_order_earns_a_point_per_paid_yuan_times_the_tier_multiplier_and_nothing_on_special_price_items(
        chain, wang, rules, catalogue, family_membership, now):
    # given: a 300-yuan cleaning, a 50-yuan exam with 0.99 yuan of odd fen, and a 9.90-yuan special-price cleaning
    order = order_with(wang, [(catalogue["CL01"], 30000), (catalogue["EX01"], 5099), (catalogue["CL99"], 990)])
    # when
    tx = points_earn_for_order(order=order, at=now)
    # then: floor(300 × 1.5) + floor(50.99 × 1.5) + 0 = 450 + 76
    assert points(wang) == 526
    assert tx.source == f"order:{order.id}" and tx.idempotency_key == f"order:{order.id}:earn"
    assert ledger_check(chain_id=chain.id) == []


def test_a_category_rule_beats_the_general_rule(chain, wang, rules, catalogue, now):
    # given: oral-care products earn 2 points per yuan
    EarnRuleFactory(chain=chain, code="oral_care", category=Category.ORAL_CARE_PRODUCT, points_per_yuan=2)
    order = order_with(wang, [(catalogue["OC01"], 39900), (catalogue["EX01"], 5000)])
    # when
    points_earn_for_order(order=order, at=now)
    # then
    assert points(wang) == 798 + 50
    assert ledger_check(chain_id=chain.id) == []


def test_earned_points_are_pending_for_seven_days_and_expire_twelve_months_after_earning(
        chain, wang, rules, catalogue, now):
    # given
    order = order_with(wang, [(catalogue["CL01"], 30000)])
    # when
    points_earn_for_order(order=order, at=now)
    # then
    lot = Lot.objects.get()
    last_day = day_end(add_months(now, 12))  # valid all of the last day, not until the time of day they were earned
    assert (lot.earned_at, lot.available_at, lot.expires_at) == (now, now + dt.timedelta(days=7), last_day)
    summary = points_summary(wang, at=now)
    assert (summary.balance, summary.available, summary.pending) == (300, 0, 300)
    assert points_summary(wang, at=now + dt.timedelta(days=8)).available == 300
    # and when the 12 months are over: still there later on the last day, gone at its end
    assert lots_expire(chain_id=chain.id, as_of=last_day - dt.timedelta(seconds=1)) == 0
    assert lots_expire(chain_id=chain.id, as_of=last_day) == 1
    assert points(wang) == 0
    assert ledger_check(chain_id=chain.id) == []


def test_earning_is_idempotent_per_order_even_after_the_rules_change(chain, wang, rules, catalogue, now):
    # given
    order = order_with(wang, [(catalogue["CL01"], 30000)])
    first = points_earn_for_order(order=order, at=now)
    rules["spend"].points_per_yuan = 3
    rules["spend"].save(update_fields=["points_per_yuan"])
    # when
    again = points_earn_for_order(order=order, at=now)
    # then
    assert again.id == first.id
    assert points(wang) == 300
    assert LedgerTransaction.objects.count() == 1


def test_earning_counts_only_what_was_paid_in_money_per_line(chain, wang, rules, catalogue, now):
    # given: the bill was 350 yuan but 100 yuan of the cleaning was paid with points and vouchers
    order = order_with(wang, [(catalogue["CL01"], 30000), (catalogue["EX01"], 5000)])
    cleaning, exam = order.lines.order_by("id")
    # when
    points_earn_for_order(order=order, paid_fen_by_line={cleaning.id: 20000, exam.id: 5000}, at=now)
    # then
    assert points(wang) == 250


def test_paid_amounts_for_lines_of_another_order_are_refused_and_nothing_is_earned(chain, wang, rules, catalogue, now):
    # given
    order = order_with(wang, [(catalogue["CL01"], 30000)])
    # when
    with pytest.raises(ValidationFailed) as exc:
        points_earn_for_order(order=order, paid_fen_by_line={999999: 100}, at=now)
    # then
    assert exc.value.errors[0].field == "paid_fen_by_line[999999]"
    assert points(wang) == 0 and LedgerTransaction.objects.count() == 0


def test_a_fixed_award_is_paid_once_per_key(chain, wang, rules, now):
    # when
    first = points_award(customer=wang, rule_code="referral", key="referral:42", at=now)
    again = points_award(customer=wang, rule_code="referral", key="referral:42", at=now)
    # then
    assert again.id == first.id
    assert points(wang) == 1000
    assert Lot.objects.get().available_at == now
    assert ledger_check(chain_id=chain.id) == []


def test_an_unknown_or_spend_rule_cannot_be_awarded_and_nothing_changes(chain, wang, rules):
    for code in ("nonsense", "spend"):
        with pytest.raises(RuleNotFound):
            points_award(customer=wang, rule_code=code, key=f"k-{code}")
    assert points(wang) == 0 and LedgerTransaction.objects.count() == 0


def test_the_redeem_quote_is_capped_at_ten_percent_of_the_bill_in_whole_fen(chain, wang, rules, terms, now):
    # given: 5,000 points available (worth 50 yuan)
    for i in range(5):
        points_award(customer=wang, rule_code="referral", key=f"r{i}", at=now - dt.timedelta(days=1))
    # when / then: a 123.45-yuan bill allows 12.34 yuan (the cap); a 1,000-yuan bill is limited by the points
    assert points_redeem_quote(customer=wang, bill_fen=12345) == (1234, 1234)
    assert points_redeem_quote(customer=wang, bill_fen=100_000) == (5000, 5000)


def test_at_150_points_per_yuan_a_quote_is_rounded_down_to_whole_fen(chain, wang, rules, terms, now):
    # given: 1,000 points at 150 points per yuan are worth 666.67 fen
    terms.points_per_yuan = 150
    terms.save(update_fields=["points_per_yuan"])
    points_award(customer=wang, rule_code="referral", key="r1", at=now - dt.timedelta(days=1))
    # when / then: 666 fen → 999 points exactly; under the cap of a 50-yuan bill: 500 fen → 750 points
    assert points_redeem_quote(customer=wang, bill_fen=1_000_000) == (999, 666)
    assert points_redeem_quote(customer=wang, bill_fen=5000) == (750, 500)


def test_pending_points_are_not_quoted(chain, wang, rules, catalogue, terms, now):
    # given
    points_earn_for_order(order=order_with(wang, [(catalogue["CL01"], 30000)]), at=now)
    # when / then
    assert points_redeem_quote(customer=wang, bill_fen=1_000_000) == (0, 0)


def test_redeeming_debits_points_against_points_redeemed(chain, wang, rules, terms, now):
    # given
    points_award(customer=wang, rule_code="referral", key="r1", at=now - dt.timedelta(days=1))
    # when
    tx = points_redeem(customer=wang, points=700, key="bill:1", source="order:1")
    # then
    assert points(wang) == 300
    assert system_balance(chain, AccountKind.POINTS_REDEEMED) == 700
    assert tx.idempotency_key == "redeem:bill:1"
    assert ledger_check(chain_id=chain.id) == []


def system_balance(chain, kind) -> int:
    from smileloop.ledger.services import system_account

    return system_account(chain_id=chain.id, kind=kind).balance


@pytest.mark.parametrize(("amount", "error"), [(0, ValidationFailed), (2000, InsufficientPoints)])
def test_redeeming_part_fen_or_more_than_available_is_refused_and_nothing_changes(chain, wang, rules, terms, now,
                                                                                  amount, error):
    # given
    points_award(customer=wang, rule_code="referral", key="r1", at=now - dt.timedelta(days=1))
    # when
    with pytest.raises(error):
        points_redeem(customer=wang, points=amount, key="bill:1", source="order:1")
    # then
    assert points(wang) == 1000 and LedgerTransaction.objects.count() == 1


def test_a_gift_exchange_takes_stock_and_points_and_records_the_exchange(chain, wang, rules, now):
    # given
    points_award(customer=wang, rule_code="referral", key="r1", at=now)
    toothbrush = GiftFactory(chain=chain, name="电动牙刷", points_price=400, stock=3)
    # when
    exchange = gift_exchange(customer=wang, gift=toothbrush, quantity=2, key="x1")
    # then
    toothbrush.refresh_from_db()
    assert (toothbrush.stock, points(wang), exchange.points, exchange.quantity) == (1, 200, 800, 2)
    assert gift_exchange(customer=wang, gift=toothbrush, quantity=2, key="x1").id == exchange.id
    assert ledger_check(chain_id=chain.id) == []


def test_an_exchange_beyond_stock_is_refused_and_nothing_changes(chain, wang, rules, now):
    # given
    points_award(customer=wang, rule_code="referral", key="r1", at=now)
    floss = GiftFactory(chain=chain, points_price=100, stock=1)
    # when
    with pytest.raises(OutOfStock):
        gift_exchange(customer=wang, gift=floss, quantity=2, key="x1")
    # then
    floss.refresh_from_db()
    assert (floss.stock, points(wang), GiftExchange.objects.count()) == (1, 1000, 0)


def test_an_exchange_of_a_gift_no_longer_offered_is_refused_as_such_and_nothing_changes(chain, wang, rules, now):
    # given a gift taken out of the catalogue, with stock left and points enough
    points_award(customer=wang, rule_code="referral", key="r1", at=now)
    floss = GiftFactory(chain=chain, points_price=100, stock=5, is_active=False)
    # when
    with pytest.raises(LoyaltyInputError) as refused:
        gift_exchange(customer=wang, gift=floss, quantity=1, key="x1")
    # then it says so (not "out of stock, 5 left"), and nothing changed
    assert (refused.value.code, refused.value.field) == ("gift_inactive", "gift_id")
    assert "no longer offered" in str(refused.value)
    floss.refresh_from_db()
    assert (floss.stock, points(wang), GiftExchange.objects.count()) == (5, 1000, 0)


def test_an_exchange_without_enough_points_is_refused_and_the_stock_stays(chain, wang, rules, now):
    # given
    points_award(customer=wang, rule_code="review", key="r1", at=now)
    toothbrush = GiftFactory(chain=chain, points_price=400, stock=3)
    # when
    with pytest.raises(InsufficientPoints):
        gift_exchange(customer=wang, gift=toothbrush, key="x1")
    # then
    toothbrush.refresh_from_db()
    assert (toothbrush.stock, points(wang), GiftExchange.objects.count()) == (3, 50, 0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(wants=st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=12))
def test_gift_stock_never_goes_negative_over_any_sequence_of_exchanges(chain, wang, rules, now, wants):
    # given: a fresh gift and 3,000 points per example
    run = len(Gift.objects.all())
    gift = GiftFactory(chain=chain, name=f"牙线{run}", points_price=300, stock=5)
    for i in range(3):
        points_award(customer=wang, rule_code="referral", key=f"h{run}:{i}", at=now)
    start_points = points(wang)
    taken = 0
    # when
    for i, want in enumerate(wants):
        try:
            gift_exchange(customer=wang, gift=gift, quantity=want, key=f"h{run}:x{i}")
            taken += want
        except (OutOfStock, InsufficientPoints):
            pass
    # then
    gift.refresh_from_db()
    assert gift.stock >= 0
    assert gift.stock + taken == 5
    assert points(wang) == start_points - 300 * taken
    assert ledger_check(chain_id=chain.id) == []


# --- what checkout passes instead of reading it again -------------------------------------------------------


def test_earning_from_the_lines_rules_and_multiplier_the_caller_holds_reads_none_of_them_again(
        chain, wang, rules, catalogue, family_membership, now, django_assert_num_queries):
    # given what checkout holds after recording the order
    order = order_with(wang, [(catalogue["CL01"], 30000), (catalogue["EX01"], 5099), (catalogue["CL99"], 990)])
    lines = list(order.lines.select_related("item").order_by("id"))
    held_rules = spend_rules(chain_id=chain.id)
    multiplier = points_multiplier_of(own_membership(wang), at=now)
    accounts = accounts_for(chain_id=chain.id, customer=wang, kinds=[AccountKind.POINTS],
                            system_kinds=[AccountKind.POINTS_ISSUED])
    # when: building the movement runs no query
    with django_assert_num_queries(0):
        request = points_earn_request(order=order, at=now, lines=lines, rules=held_rules, multiplier=multiplier,
                                      accounts=accounts)
    ledger_post_many([request])
    # then: the same points as points_earn_for_order reading everything itself (floor(300 × 1.5) + floor(50.99 × 1.5))
    assert points(wang) == 526
    assert points_earn_for_order(order=order, at=now).idempotency_key == f"order:{order.id}:earn"  # a replay
    assert points(wang) == 526 and ledger_check(chain_id=chain.id) == []


def test_an_order_under_no_spend_rule_earns_nothing_without_reading_the_membership(
        chain, wang, catalogue, family_membership, now, django_assert_num_queries):
    order = order_with(wang, [(catalogue["CL01"], 30000)])
    lines = list(order.lines.select_related("item").order_by("id"))
    with django_assert_num_queries(0):
        assert points_earn_request(order=order, at=now, lines=lines, rules=[]) is None


def test_a_redeem_request_is_refused_with_insufficient_points_when_posted_and_nothing_changes(
        chain, wang, rules, terms, now):
    # given 1,000 points, and a deduction of one more checked against the terms but not against the balance
    points_award(customer=wang, rule_code="referral", key="r1", at=now - dt.timedelta(days=10))
    before = points(wang)
    request = points_redeem_request(customer=wang, points=before + 1, key="bill-1", source="order:1",
                                    terms=points_redeem_terms(chain_id=chain.id))
    # when / then: the ledger refuses it under the account lock, with loyalty's own error
    with pytest.raises(InsufficientPoints) as exc:
        ledger_post_many([request])
    assert exc.value.field == "points" and exc.value.message.startswith("Not enough points:")
    assert points(wang) == before and not LedgerTransaction.objects.filter(idempotency_key="redeem:bill-1").exists()
