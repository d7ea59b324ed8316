import pytest
from django.utils import translation

from smileloop.core.errors import ValidationFailed
from smileloop.core.money import discount_words, discount_zhe, yuan_to_fen


def test_a_discount_reads_as_percent_off_in_english_and_in_the_zhe_notation_in_chinese():
    assert (discount_zhe(1200), discount_zhe(1000), discount_zhe(550), discount_zhe(0)) == (
        "88折", "9折", "94.5折", "10折")
    with translation.override("en"):
        assert (discount_words(1200), discount_words(550), discount_words(0)) == ("12% off", "5.5% off", "0% off")
    with translation.override("zh-hans"):
        assert discount_words(1200) == "88折·优惠 12%"


@pytest.mark.parametrize("text", ["1e999999999", "-1e999999999", "1E17", "123456789012345678"])
def test_an_absurdly_large_amount_is_refused_as_such_not_an_overflow(text):
    with pytest.raises(ValidationFailed) as refused:
        yuan_to_fen(text, field="wallet_amount")
    assert [(e.field, e.message) for e in refused.value.errors] == [("wallet_amount", "is far too large an amount")]


def test_amounts_up_to_the_largest_sane_one_still_convert_exactly():
    assert (yuan_to_fen("99999999999999999.99"), yuan_to_fen("1e16"), yuan_to_fen("-12.50")) == (
        9999999999999999999, 10**18, -1250)
