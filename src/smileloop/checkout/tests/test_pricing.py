"""The pure pricing arithmetic: exact breakdowns, and (hypothesis) that every bill adds up exactly."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smileloop.checkout.pricing import (
    MAX,
    CardIn,
    DiscountIn,
    LineIn,
    PointsIn,
    PricingError,
    VoucherIn,
    WalletIn,
    allocate,
    price,
)

FAMILY = DiscountIn(1200, frozenset({"oral_care_product"}), True, "家庭会员")
CLEANING = LineIn(1, "CL01", "洁牙", "cleaning", False, 30000)
SPECIAL = LineIn(2, "CL99", "9.9元特价洁牙", "cleaning", True, 990)
BRUSH = LineIn(3, "OC01", "电动牙刷", "oral_care_product", False, 39900)
FILLING = LineIn(4, "FI01", "树脂补牙", "filling", False, 60000)


def test_member_discount_skips_special_price_and_oral_care_lines():
    # when
    bill = price(lines=[CLEANING, SPECIAL, BRUSH], discount=FAMILY)
    # then
    assert [line.discount_fen for line in bill.lines] == [3600, 0, 0]
    assert bill.lines[0].steps[0].label == "家庭会员, 12% off"  # stored in English; pages show 88折 in Chinese
    assert bill.total_fen == 26400 + 990 + 39900
    assert [(t.kind, t.amount_fen) for t in bill.tenders] == [("cash", 67290)]


def test_entitlement_makes_units_free_before_the_discount():
    bill = price(lines=[LineIn(1, "CL01", "洁牙", "cleaning", False, 30000, quantity=2, entitled_units=1)],
                 discount=FAMILY)
    line = bill.lines[0]
    assert (line.list_fen, line.entitlement_fen, line.discount_fen, line.net_fen) == (60000, 30000, 3600, 26400)


def test_gift_card_pays_only_eligible_lines_and_reports_the_rest_left():
    # given a 600 yuan card and a bill with an excluded toothbrush
    card = CardIn("ABCD-EFGH-JKMN", 60000, frozenset({"oral_care_product"}), True, "亲友储值卡")
    # when
    bill = price(lines=[CLEANING, BRUSH, SPECIAL], discount=FAMILY, cards=[card])
    # then
    gc = bill.tender("giftcard")[0]
    assert gc.per_line == [26400, 0, 0]
    assert gc.label == "亲友储值卡 ABCD-EFGH-JKMN 600.00 → 264.00 used, 336.00 left"
    assert bill.cash_fen == 39900 + 990


def test_gift_card_on_a_bill_of_only_excluded_items_is_refused():
    card = CardIn("ABCD-EFGH-JKMN", 60000, frozenset({"oral_care_product"}), True, "亲友储值卡")
    with pytest.raises(PricingError) as exc:
        price(lines=[BRUSH, SPECIAL], cards=[card])
    assert exc.value.code == "excluded_item"


def test_voucher_covers_its_line_and_forfeits_the_rest():
    voucher = VoucherIn("VVVV-WWWW-XXXX", 1500, 2, "", "9.9元洁牙")
    bill = price(lines=[CLEANING, SPECIAL], vouchers=[voucher])
    v = bill.tender("voucher")[0]
    assert (v.per_line, v.forfeited_fen) == ([0, 990], 510)


def test_points_are_capped_on_the_bill_after_discounts_and_come_after_cards():
    # given a quote of 2640 fen (10% of 26400) and a card that already paid 20000
    card = CardIn("ABCD-EFGH-JKMN", 20000, frozenset(), True, "亲友储值卡")
    points = PointsIn(MAX, 264000, 2640)
    # when
    bill = price(lines=[CLEANING], discount=FAMILY, cards=[card], points=points,
                 wallet=WalletIn(MAX, 1000, "wallet"))
    # then
    assert [(t.kind, t.amount_fen, t.points) for t in bill.tenders] == [
        ("giftcard", 20000, 0), ("points", 2640, 264000), ("wallet", 1000, 0), ("cash", 2760, 0)]


def test_asking_more_wallet_than_available_is_refused():
    with pytest.raises(PricingError) as exc:
        price(lines=[CLEANING], wallet=WalletIn(5000, 4999, "wallet"))
    assert exc.value.code == "insufficient_balance"


def test_allocate_gives_leftover_fen_to_the_largest_remainders_then_earlier_lines():
    assert allocate(10, [1, 1, 1]) == [4, 3, 3]
    assert allocate(7, [50, 30, 20]) == [4, 2, 1]


lines_st = st.lists(st.builds(
    LineIn, item_id=st.integers(1, 6), code=st.just("X"), name=st.just("x"),
    category=st.sampled_from(["cleaning", "filling", "oral_care_product"]), special=st.booleans(),
    unit_fen=st.integers(0, 500_000), quantity=st.integers(1, 4), entitled_units=st.integers(0, 2)), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(lines=lines_st, bp=st.integers(0, 5000), cards=st.lists(st.integers(1, 300_000), max_size=3),
       voucher=st.one_of(st.none(), st.integers(1, 50_000)), points_fen=st.integers(0, 100_000),
       wallet=st.integers(0, 400_000))
def test_every_bill_adds_up_exactly(lines, bp, cards, voucher, points_fen, wallet):
    # given random lines, a discount, cards, a voucher, points and a wallet
    discount = DiscountIn(bp, frozenset({"oral_care_product"}), True, "会员")
    card_ins = [CardIn(f"C{i}", b, frozenset({"oral_care_product"}), True, "卡") for i, b in enumerate(cards)]
    vouchers = [VoucherIn("V", voucher, lines[0].item_id, "", "券")] if voucher else []
    try:
        # when
        bill = price(lines=lines, discount=discount, cards=card_ins, vouchers=vouchers,
                     points=PointsIn(MAX, points_fen * 100, points_fen), wallet=WalletIn(MAX, wallet, "储值"))
    except PricingError as exc:
        assert exc.code == "excluded_item"  # a card with no eligible line, or a voucher whose line is already free
        return
    # then
    tender_total = sum(t.amount_fen for t in bill.tenders)
    assert sum(line.net_fen for line in bill.lines) == bill.total_fen == tender_total
    for t in bill.tenders:
        assert sum(t.per_line) == t.amount_fen and min(t.per_line) >= 0
    for line in bill.lines:
        assert sum(line.paid.values()) == line.net_fen >= 0
        assert line.list_fen - line.entitlement_fen - line.discount_fen == line.net_fen
    for t, c in zip(bill.tender("giftcard"), card_ins, strict=True):
        assert t.amount_fen <= c.balance_fen
        assert all(p == 0 for p, line in zip(t.per_line, bill.lines, strict=True)
                   if line.special or line.category == "oral_care_product")
    assert sum(t.amount_fen for t in bill.tender("points")) <= points_fen
