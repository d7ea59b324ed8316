import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smileloop.customers.enums import Gender
from smileloop.customers.normalize import (
    birthday_parse,
    channel_parse,
    date_parse,
    gender_parse,
    phone_mask,
    phone_national,
    phone_normalize,
    pinyin_keys,
)

FULLWIDTH = str.maketrans("0123456789+", "０１２３４５６７８９＋")
mobiles = st.builds(lambda p, rest: f"1{p}{rest:08d}", st.sampled_from(["38", "39", "58", "86", "37", "88"]),
                    st.integers(0, 99_999_999))


@given(mobiles, st.sampled_from(["{}", "+86{}", "0086{}", "+86-{0}", "{}.0", "{}.00", "fw", "spaced", "dashed"]))
def test_every_way_exports_write_a_mobile_normalises_to_the_same_e164(mobile, form):
    if form == "fw":
        raw = mobile.translate(FULLWIDTH)
    elif form == "spaced":
        raw = f"{mobile[:3]} {mobile[3:7]} {mobile[7:]}"
    elif form == "dashed":
        raw = f"+86 {mobile[:3]}-{mobile[3:7]}-{mobile[7:]}"
    else:
        raw = form.format(mobile)
    assert phone_normalize(raw) == "+86" + mobile
    assert phone_normalize(phone_normalize(raw)) == "+86" + mobile


@pytest.mark.parametrize("raw", ["", "12345", "abc", "1380013800", "+86 138 0013 8000 99", "=1+1"])
def test_non_phones_are_rejected_with_a_message(raw):
    with pytest.raises(ValueError):
        phone_normalize(raw)


@pytest.mark.parametrize("raw", ["400-812-3123", "+86 400 812 3123", "800 810 0000"])
def test_a_hotline_is_no_persons_number(raw):
    # valid numbers that reach no one person: everyone who gave a supplier's hotline was merged into one patient
    with pytest.raises(ValueError, match="is a service number"):
        phone_normalize(raw)


@pytest.mark.parametrize("raw", ["021 6123 4567", "0755-86001234", "13800138000"])
def test_landlines_and_mobiles_are_a_persons_number(raw):
    assert phone_normalize(raw).startswith("+86")


def test_a_hotline_on_the_new_patient_form_is_a_field_error_in_the_staff_language(client, front_desk_a):
    from django.urls import reverse

    from smileloop.customers.models import Customer

    client.force_login(front_desk_a.user)
    page = client.post(reverse("customers:create"), {"name": "张三", "mobile": "4008123123", "gender": "U", "key": "k1",
                                                     "home_clinic": front_desk_a.clinics.first().pk},
                       HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "这是服务号码（400、800 或增值号码），不是个人号码" in page.content.decode()
    assert not Customer.objects.filter(name="张三").exists()


@pytest.mark.parametrize(("e164", "written"), [
    ("+8613800138000", "138 0013 8000"), ("+8675586001234", "0755 8600 1234"), ("+862161234567", "021 6123 4567"),
    ("+85291234567", "9123 4567"),
])
def test_phone_national_writes_a_number_as_a_reader_in_its_country_does(e164, written):
    assert phone_national(e164) == written


def test_phone_mask_hides_the_middle_four_digits():
    assert phone_mask("+8613800138000") == "138****8000"
    assert phone_mask(None) == ""


@pytest.mark.parametrize("e164, masked", [
    ("+862162881234", "021****1234"),      # a Shanghai landline keeps its trunk 0: not a 216… mobile
    ("+8675586001234", "075****1234"),
    ("+16502530000", "+1 65****0000"),     # another country's number keeps its code: not a 165… mobile
    ("+85291234567", "+852 91****67"),     # eight digits: still four hidden
])
def test_phone_mask_of_a_landline_or_a_foreign_number_does_not_pass_for_a_chinese_mobile(e164, masked):
    assert phone_mask(e164) == masked


@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2026, 1, 1)))
def test_every_date_spelling_parses_to_the_same_day(day):
    spellings = [day.isoformat(), f"{day.year}/{day.month}/{day.day}", f"{day.year}年{day.month}月{day.day}日",
                 day.strftime("%Y%m%d"), (day - dt.date(1899, 12, 30)).days]
    assert {date_parse(s) for s in spellings} == {day}


@pytest.mark.parametrize("raw", ["1990-02-30", "yesterday", "1990年13月1日"])
def test_impossible_dates_are_rejected(raw):
    with pytest.raises(ValueError):
        date_parse(raw)


@pytest.mark.parametrize("raw", [
    "1990-01-04T16:00:00.000Z",      # JavaScript's toISOString() of a date picked in China
    "1990-01-04T16:00:00Z",
    "1990-01-04 17:30:00+01:00",
    "1990-01-05T00:00:00+08:00",
    "1990-01-05T23:59:59+0800",
    "1990-01-05 00:00:00",           # no offset: the day as written
    "1990-01-05T23:30",
    dt.datetime(1990, 1, 4, 16, 0, tzinfo=dt.UTC),
])
def test_a_date_written_as_a_moment_with_an_offset_is_the_chain_local_day_of_that_moment(raw):
    """A birthday sent as an instant in UTC (midnight in Shanghai is 16:00 the day before) was stored a day early."""
    assert date_parse(raw) == dt.date(1990, 1, 5)


def test_birthday_in_the_future_is_rejected():
    with pytest.raises(ValueError, match="future"):
        birthday_parse("2999-01-01")


def test_a_birthday_of_today_in_shanghai_is_accepted_while_the_utc_date_is_yesterday(monkeypatch):
    # given 02:30 on 4 December in Shanghai (18:30 UTC on the 3rd)
    from django.utils import timezone

    monkeypatch.setattr(timezone, "now", lambda: dt.datetime(2026, 12, 3, 18, 30, tzinfo=dt.UTC))
    # then a baby born that day is not "in the future", and the next day is
    assert birthday_parse("2026-12-04") == dt.date(2026, 12, 4)
    with pytest.raises(ValueError, match="future"):
        birthday_parse("2026-12-05")


@pytest.mark.parametrize(("raw", "expected"), [("男", "M"), ("女", "F"), ("M", "M"), ("female", "F"), ("", "U")])
def test_genders_in_chinese_and_english(raw, expected):
    assert gender_parse(raw) == expected


@pytest.mark.parametrize("label", ["未知", "网络", "老客户", "不详", "Unknown"])
def test_labels_that_name_no_channel_are_other_but_not_inside_a_longer_label(label):
    assert channel_parse(label) == "other"
    assert channel_parse("老客户推荐") == "referral"


def test_channel_labels_in_chinese_map_to_codes():
    assert channel_parse("抖音") == "douyin"
    assert channel_parse("老带新") == "referral"
    assert channel_parse("wechat_oa") == "wechat_oa"
    with pytest.raises(ValueError):
        channel_parse("火星")


@pytest.mark.parametrize(("name", "initials"), [("张三", {"zs"}), ("曾小明", {"zxm", "cxm"}),
                                                ("单田芳", {"stf", "dtf", "ctf"}), ("解晓东", {"xxd", "jxd"})])
def test_polyphonic_surnames_get_every_reading(name, initials):
    assert set(pinyin_keys(name)[0]) == initials


@pytest.mark.parametrize(("name", "initials"), [("王伟", {"ww"}), ("邓丽", {"dl"}), ("叶子", {"yz"}),
                                                ("石磊", {"sl"}), ("于洋", {"yy"})])
def test_a_surname_that_is_no_polyphonic_surname_takes_its_usual_reading_only(name, initials):
    # pypinyin also reads 王 yu, 邓 shan, 叶 xie, 石 dan: keys by those put 王 under "yu" beside 于
    assert set(pinyin_keys(name)[0]) == initials


@pytest.mark.parametrize(("label", "channel"), [
    ("小红书", "xiaohongshu"), ("小红书种草", "xiaohongshu"), ("抖音团购", "douyin"), ("美团点评", "meituan"),
    ("朋友介绍", "referral"), ("老客户推荐", "referral"), ("企业微信好友", "wecom"), ("微信公众号推文", "wechat_oa"),
    ("抖音活动", "douyin"), ("大众点评团购", "meituan"), ("自然进店", "walk_in"), ("社区义诊", "community_event"),
])
def test_compound_channel_labels_go_by_their_first_channel_word(label, channel):
    assert channel_parse(label) == channel


def test_a_label_with_no_channel_word_is_still_an_error():
    with pytest.raises(ValueError, match="is not a known channel"):
        channel_parse("路边广告牌")


@pytest.mark.parametrize("word", ["保密", "不详", "未填写"])
def test_a_withheld_gender_is_unknown(word):
    assert gender_parse(word) == Gender.UNKNOWN


@pytest.mark.parametrize("age", ["35岁", "35 周岁", "７岁", "35 years old"])
def test_an_age_in_the_birthday_column_is_named_as_such(age):
    from smileloop.customers.normalize import birthday_parse

    with pytest.raises(ValueError, match="is an age, not a date of birth"):
        birthday_parse(age)


@pytest.mark.parametrize("year", ["1990", "１９９０", 1990, 1990.0, "1990.0"])
def test_a_year_alone_is_named_as_such_not_read_as_an_excel_day_in_1905(year):
    from smileloop.customers.normalize import birthday_parse

    with pytest.raises(ValueError, match="is a year, not a date of birth"):
        birthday_parse(year)
    # while an Excel day number of a real birthday (32878: 1990-01-05) is still one
    assert birthday_parse(32878).isoformat() == "1990-01-05"


@pytest.mark.parametrize(("name", "gender"), [
    ("王女士", Gender.FEMALE), ("李先生", Gender.MALE), ("陈小姐", Gender.FEMALE), ("王芳", None), ("女士", None),
    ("先生", None),
])
def test_a_lead_noted_by_surname_and_title_says_their_gender(name, gender):
    from smileloop.customers.normalize import gender_from_title

    assert gender_from_title(name) == gender
