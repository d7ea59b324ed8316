"""The code look-up page's history: events and movements in the reader's language, never a bare reference."""

from django.utils import translation

from smileloop.giftcards.sentences import CARD_REFUNDED, CARD_USED, card_detail_display


def test_a_card_use_names_the_order_in_words_and_the_amount_as_money():
    stored = CARD_USED % {"yuan": "500.00", "source": "order:14585"}  # as giftcard_spend_recorded stores it
    with translation.override("zh-hans"):
        assert card_detail_display(stored) == "使用 ¥500.00（订单 #14585）"
        assert card_detail_display(CARD_REFUNDED % {"source": "order:14585"}) == "退款退回余额（订单 #14585）"
    with translation.override("en"):
        assert card_detail_display(stored) == "¥500.00 used (order #14585)"


def test_a_movement_shows_its_order_in_words_and_no_reference_to_the_card_itself():
    with translation.override("zh-hans"):
        assert card_detail_display("order:14585") == "订单 #14585"
        assert card_detail_display("giftcard:8") == ""  # the row says it was issued
        assert card_detail_display("voucher:1") == ""
        assert card_detail_display("自定义说明") == "自定义说明"  # typed text as typed
