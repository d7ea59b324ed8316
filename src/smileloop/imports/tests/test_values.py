import datetime as dt
import random

import pytest

from smileloop.customers.normalize import phone_normalize, pinyin_keys
from smileloop.imports.services.values import PinyinCache, phone_fallback_parse, phone_parse


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
