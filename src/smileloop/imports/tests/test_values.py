import random

import pytest

from smileloop.customers.normalize import phone_normalize, pinyin_keys
from smileloop.imports.services.values import PinyinCache, phone_parse


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
