from django.utils import translation

from smileloop.core.money import discount_words, discount_zhe


def test_a_discount_reads_as_percent_off_in_english_and_in_the_zhe_notation_in_chinese():
    assert (discount_zhe(1200), discount_zhe(1000), discount_zhe(550), discount_zhe(0)) == (
        "88折", "9折", "94.5折", "10折")
    with translation.override("en"):
        assert (discount_words(1200), discount_words(550), discount_words(0)) == ("12% off", "5.5% off", "0% off")
    with translation.override("zh-hans"):
        assert discount_words(1200) == "88折·优惠 12%"
