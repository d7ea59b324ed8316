import datetime as dt
import random
import zoneinfo

import pytest

from smileloop.customers.normalize import birthday_parse, date_parse, phone_normalize, pinyin_keys
from smileloop.imports.services.values import (
    DATETIME_FORMAT,
    PinyinCache,
    datetime_parse,
    phone_fallback_parse,
    phone_parse,
)


def _either(func, value):
    try:
        return func(value)
    except ValueError as exc:
        return f"error: {exc}"


def test_the_fast_phone_parser_agrees_with_phone_normalize():
    # given a spread of numbers, valid and invalid, plain and messy
    rng = random.Random(5)
    samples = [f"1{rng.randint(0, 9_999_999_999):010d}" for _ in range(3000)]
    samples += ["+86 138-0013-8000", "0086 13900139000", "１３７００１３７０００", "13600136000.0", "02112345678", "110"]

    # when / then
    assert [_either(phone_parse, s) for s in samples] == [_either(phone_normalize, s) for s in samples]


def test_the_fast_landline_parser_agrees_with_phone_normalize():
    # given landlines of real and random area codes, with and without separators, and near misses
    rng = random.Random(11)
    areas = ["10", "20", "21", "22", "23", "24", "25", "27", "28", "29", "311", "351", "371", "411", "431", "451",
             "471", "511", "531", "551", "571", "591", "731", "755", "757", "769", "851", "871", "898", "931"]
    samples = [f"0{rng.choice(areas)}{rng.randint(0, 99_999_999):0{rng.choice([7, 8])}d}" for _ in range(3000)]
    samples += [f"0{rng.randint(10, 999)}{rng.randint(0, 99_999_999):08d}" for _ in range(3000)]
    samples += [f"{s[:4]}-{s[4:]}" for s in samples[:500]] + [f"({s[:3]}) {s[3:7]} {s[7:]}" for s in samples[:500]]
    samples += ["0086 10 6552 1234", "00861065521234", "0", "01", "0755-86001234", "010-6552-1234", "00755860012"]

    # when / then
    assert [_either(phone_parse, s) for s in samples] == [_either(phone_normalize, s) for s in samples]


@pytest.mark.parametrize(("raw", "expected"), [
    ("0755-86001234", "+8675586001234"), ("010 6552 1234", "+861065521234"), ("0755-86001234-8001", "+8675586001234"),
    ("0755-86001234 转 8001", "+8675586001234"), ("(010)65521234 ext. 12", "+861065521234"),
    ("010-65521234分机123", "+861065521234"), ("13900139000", "+8613900139000"), (13900139000.0, "+8613900139000"),
    ("无", None), ("-", None), ("暂无", None), ("N/A", None),
    ("0755-86001234(家)", "+8675586001234"), ("单位 010-65521234", "+861065521234"),
])
def test_a_fallback_cell_is_a_phone_a_landline_without_its_extension_or_no_number(raw, expected):
    assert phone_fallback_parse(raw) == expected


@pytest.mark.parametrize("raw", ["12345", "0755-8600123", "138001380001234"])
def test_digits_that_are_no_phone_number_are_an_error_in_the_fallback_column(raw):
    with pytest.raises(ValueError, match="phone number"):
        phone_fallback_parse(raw)


def test_the_pinyin_cache_agrees_with_pinyin_keys():
    # given names with polyphonic surnames and given names, ASCII and mixed names
    rng = random.Random(9)
    surnames, given = "王李张曾单解仇朴区查盖乐长重欧", "伟芳长乐重行银解放单曾朝阳和平觉得"
    names = [rng.choice(surnames) + "".join(rng.choice(given) for _ in range(rng.randint(0, 3))) for _ in range(2000)]
    names += ["Li Lei", "欧阳娜娜", "李·明", "王2", "A"]
    cache = PinyinCache()

    # when / then
    assert [cache.keys(n) for n in names] == [pinyin_keys(n) for n in names]


@pytest.mark.parametrize(("raw", "expected"), [(13800138000, "+8613800138000"), (13800138000.0, "+8613800138000")])
def test_numeric_phone_cells_are_parsed(raw, expected):
    assert phone_parse(raw) == expected


@pytest.mark.parametrize(("cell", "moment"), [
    ("2024-01-05 14:30", (2024, 1, 5, 14, 30, 0)),
    ("2024/1/5 14:30:15", (2024, 1, 5, 14, 30, 15)),
    ("2024年1月5日 14:30", (2024, 1, 5, 14, 30, 0)),
    ("2024年1月5日14时30分", (2024, 1, 5, 14, 30, 0)),
    ("2024年1月5日 9:05:07", (2024, 1, 5, 9, 5, 7)),
    ("2024年1月5日", (2024, 1, 5, 0, 0, 0)),
])
def test_order_dates_with_a_time_in_chinese_or_iso_form(cell, moment):
    import zoneinfo

    from smileloop.imports.services.values import datetime_parse

    tz = zoneinfo.ZoneInfo("Asia/Shanghai")
    assert datetime_parse(cell, tz=tz) == dt.datetime(*moment, tzinfo=tz)


SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(("cell", "moment"), [
    ("2024-03-01T02:00:00Z", dt.datetime(2024, 3, 1, 10, 0)),  # UTC, in the chain's zone
    ("2024-03-01 02:00 UTC", dt.datetime(2024, 3, 1, 10, 0)),
    ("2024-03-01T02:00:00.250+08:00", dt.datetime(2024, 3, 1, 2, 0)),
    ("2024-03-01 10:00 -0500", dt.datetime(2024, 3, 1, 23, 0)),
    ("2024-03-01 1:45 PM", dt.datetime(2024, 3, 1, 13, 45)),
    ("2024-03-01 12:30 am", dt.datetime(2024, 3, 1, 0, 30)),
    ("2024-03-01 下午1:45", dt.datetime(2024, 3, 1, 13, 45)),
    ("2024-03-01 上午9:05", dt.datetime(2024, 3, 1, 9, 5)),
    ("2024年3月1日 下午2点30分", dt.datetime(2024, 3, 1, 14, 30)),
    ("2024年3月1日14时30分15秒", dt.datetime(2024, 3, 1, 14, 30, 15)),
    ("2024-03-01 13:45:10", dt.datetime(2024, 3, 1, 13, 45, 10)),
    ("2024/3/1", dt.datetime(2024, 3, 1)),
    ("20240301", dt.datetime(2024, 3, 1)),
    (20240301, dt.datetime(2024, 3, 1)),  # YYYYMMDD typed into a number cell
    (45352.5, dt.datetime(2024, 3, 1, 12, 0)),  # an Excel serial with a time of day
])
def test_a_date_time_cell_with_an_offset_or_am_pm_is_read_as_it_says(cell, moment):
    assert datetime_parse(cell, tz=SHANGHAI) == moment.replace(tzinfo=SHANGHAI)


@pytest.mark.parametrize("cell", ["2024-03-01 garbage", "2024-03-01 10:00 foo", "2024-03-01 13:45 CST",
                                  "2024-03-01 13:00 AM", "2024-03-01 25:00"])
def test_anything_else_after_a_date_time_is_refused_not_dropped(cell):
    with pytest.raises(ValueError) as exc:
        datetime_parse(cell, tz=SHANGHAI)
    assert str(exc.value) == DATETIME_FORMAT


@pytest.mark.parametrize(("cell", "day"), [
    (19900105, dt.date(1990, 1, 5)), (19900105.0, dt.date(1990, 1, 5)), (32878, dt.date(1990, 1, 5)),
    ("19900105.0", dt.date(1990, 1, 5)), ("1990-01-05 00:00:00", dt.date(1990, 1, 5)),
    ("1990-01-05T08:30:00Z", dt.date(1990, 1, 5)), ("1990年1月5号", dt.date(1990, 1, 5)),
])
def test_a_date_may_be_an_eight_digit_number_or_carry_a_time_of_day(cell, day):
    assert date_parse(cell) == day


@pytest.mark.parametrize(("cell", "message"), [
    ("1990-01-05 garbage", "is not a date (use 1990-01-05, 1990/1/5, 1990年1月5日 or 19900105)"),
    ("1990-01-05 25:00", "is not a date (use 1990-01-05, 1990/1/5, 1990年1月5日 or 19900105)"),
    (19900230, "is not a real calendar date"),
    (99999999, "is not a valid Excel date number"),
])
def test_a_date_with_text_after_it_or_an_impossible_number_is_refused(cell, message):
    with pytest.raises(ValueError) as exc:
        birthday_parse(cell)
    assert str(exc.value) == message
