"""A bill's labels are stored in English and read in the reader's language on the bill and receipt pages."""

from django.utils import translation

from smileloop.checkout.labels import bill_label_display, tender_display
from smileloop.checkout.pricing import MAX, CardIn, DiscountIn, LineIn, PointsIn, VoucherIn, WalletIn, price


def test_every_label_a_bill_stores_reads_in_chinese_and_stays_as_stored_in_english():
    # given a bill with an entitlement, a family-card discount, a voucher, a card, points, a family wallet and cash
    bill = price(
        lines=[LineIn(1, "CL01", "洁牙", "cleaning", False, 30000, quantity=2, entitled_units=1),
               LineIn(2, "CL99", "9.9元特价洁牙", "cleaning", True, 990), LineIn(3, "FI01", "树脂补牙", "filling", False, 60000)],
        discount=DiscountIn(1200, frozenset(), True, "family card of 王*, 家庭会员"),
        vouchers=[VoucherIn("VVVV-WWWW-XXXX", 990, 2, "", "美团 9.9 元洁牙团购券")],
        cards=[CardIn("ABCD-EFGH-JKMN", 10000, frozenset(), True, "亲友储值卡")],
        points=PointsIn(MAX, 1000, 1000), wallet=WalletIn(MAX, 5000, "family wallet of 王*"))
    stored = [s.label for line in bill.lines for s in line.steps] + [t.label for t in bill.tenders]
    # when
    with translation.override("zh-hans"):
        zh = [bill_label_display(label) for label in stored]
    with translation.override("en"):
        en = [bill_label_display(label) for label in stored]
    # then
    assert en == stored == [
        "package entitlement 1×洁牙", "family card of 王*, 家庭会员, 12% off", "family card of 王*, 家庭会员, 12% off",
        "美团 9.9 元洁牙团购券 VVVV-WWWW-XXXX: 9.90 used", "亲友储值卡 ABCD-EFGH-JKMN 100.00 → 100.00 used, 0.00 left",
        "1000 points = 10.00 (at most 10.00 of the bill's 801.90)", "family wallet of 王* 50.00", "cash/other 632.00"]
    assert zh == [
        "套餐权益 1×洁牙", "家庭卡（王*）家庭会员 88折·优惠 12%", "家庭卡（王*）家庭会员 88折·优惠 12%",
        "美团 9.9 元洁牙团购券 VVVV-WWWW-XXXX：已用 ¥9.90", "亲友储值卡 ABCD-EFGH-JKMN ¥100.00 → 已用 ¥100.00，余 ¥0.00",
        "积分抵扣 1000 分 = ¥10.00（本单最多可抵 ¥10.00，账单 ¥801.90）", "家庭储值（王*）¥50.00", "现金/其他 ¥632.00"]


def test_labels_stored_before_they_were_english_are_shown_as_stored_and_tenders_are_named():
    with translation.override("zh-hans"):
        assert bill_label_display("现金/其他 0.00") == "现金/其他 0.00"
        assert (tender_display("giftcard:ABCD-EFGH-JKMN"), tender_display("cash")) == ("储值卡 ABCD-EFGH-JKMN", "现金/其他")
    with translation.override("en"):
        assert tender_display("points") == "Points"


def test_a_field_path_reads_as_words_and_an_unknown_one_as_it_is():
    from django.utils import translation

    from smileloop.checkout.messages import field_display, field_message_display

    with translation.override("en"):
        assert field_display("lines[0].quantity") == "line 1, quantity"
        assert field_display("payments[2].amount_fen") == "payment 3, amount"
        assert field_display("wallet.per_use_consent") == "wallet, consent for this use"
        assert field_display("lines[0].colour") == "lines[0].colour"
        assert field_message_display("priced", "Balances changed since the bill was priced: price it again") == (
            "Balances changed since the bill was priced: price it again")
        assert field_message_display("lines[1].amount_fen", "must be between 1 and 12345 fen") == (
            "line 2, amount: must be between 0.01 and 123.45 yuan")
    with translation.override("zh-hans"):
        assert field_display("gift_cards[0]") == "第 1 张储值卡"
        assert field_message_display("lines", "nothing left to refund") == "项目：没有可退的项目"


def test_amounts_of_a_thousand_yuan_and_more_are_grouped_as_the_page_shows_them():
    """The bill's total reads "¥2,182.40" on the page: its tenders' labels said "账单 ¥2182.40" beside it."""
    bill = price(lines=[LineIn(1, "IM01", "种植体", "implant", False, 218240)], discount=None, vouchers=[], cards=[],
                 points=PointsIn(MAX, 10_000, 100_000), wallet=WalletIn(MAX, 150_000, "wallet"))
    stored = [t.label for t in bill.tenders]
    assert stored == ["10000 points = 1,000.00 (at most 1,000.00 of the bill's 2,182.40)", "wallet 1,182.40",
                      "cash/other 0.00"], stored
    with translation.override("zh-hans"):
        assert bill_label_display(stored[0]) == "积分抵扣 10000 分 = ¥1,000.00（本单最多可抵 ¥1,000.00，账单 ¥2,182.40）"
