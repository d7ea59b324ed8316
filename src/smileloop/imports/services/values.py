"""Cell parsers for imports: fast paths over customers.normalize for the common cases, same results.

The import runs at tens of thousands of rows a second, so the two expensive parsers get help:
- phones: a bare 11-digit number matching libphonenumber's own CN mobile pattern is valid, and its
  E.164 form is '+86' + digits; anything else goes through `phone_normalize` unchanged.
- pinyin: see PinyinCache.
"""

import datetime as dt
import re
import unicodedata
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from phonenumbers import PhoneMetadata
from pypinyin import lazy_pinyin

from smileloop.core.money import yuan_to_fen
from smileloop.customers.normalize import INVISIBLE, date_parse, phone_normalize, pinyin_keys
from smileloop.imports.services.reading import cell_text
from smileloop.visits.enums import PaymentMethod

_CN_MOBILE = re.compile(PhoneMetadata.metadata_for_region("CN").mobile.national_number_pattern)
_CN_FIXED_LINE = re.compile(PhoneMetadata.metadata_for_region("CN").fixed_line.national_number_pattern)
_LANDLINE_SEPARATORS = str.maketrans("", "", " -()")


def phone_parse(raw) -> str:
    """Same result as customers.normalize.phone_normalize, without libphonenumber for plain CN mobiles and
    landlines written with a trunk 0 ('0755-86001234', '010 6552 1234': libphonenumber takes ~45 µs for one,
    the pattern well under 2 µs).

    A number that Excel turned into scientific notation when it saved a CSV ('1.38001E+10') is accepted only when
    every digit is still there ('1.3800138001E+10'); otherwise its last digits are lost and it is refused as such."""
    text = cell_text(raw)
    if len(text) == 11 and text.isascii() and text.isdigit() and _CN_MOBILE.fullmatch(text):
        return "+86" + text
    if text[:1] == "0" and text.isascii():
        digits = text.translate(_LANDLINE_SEPARATORS)
        if 10 <= len(digits) <= 12 and digits[1] != "0" and digits.isdigit() and _CN_FIXED_LINE.fullmatch(digits[1:]):
            return "+86" + digits[1:]
    if "E" in text or "e" in text:
        text = _scientific_digits(text)
    return phone_normalize(text)


# Two numbers in one phone cell, as PMS exports and hand-kept sheets write them: 138…/139…, 138…，139…, 138…、139…,
# 138… 或 139…; whitespace separates numbers only when every part is a whole number on its own ('138 0013 8000' is one).
_NUMBER_SEPARATORS = re.compile(r"\s*(?:[/,;，；、|]|\s或\s?|或|\sor\s)\s*", re.IGNORECASE)
MAX_CELL_NUMBERS = 3


def phone_numbers_parse(raw) -> list[str]:
    """A phone cell's numbers, the first being the phone (a mobile before a landline): one in the usual case
    (phone_parse), several where the cell joins them. Raises phone_parse's error for a cell that is no list of
    numbers, and names the part that is no number in one that is."""
    try:
        return [phone_parse(raw)]
    except ValueError as exc:
        error = exc
    text = unicodedata.normalize("NFKC", cell_text(raw)).strip()
    parts = [p for p in _NUMBER_SEPARATORS.split(text) if p.strip()]
    by_space = len(parts) < 2
    if by_space:
        parts = text.split()
        if len(parts) < 2:
            raise error
    numbers: list[str] = []
    for part in parts:
        try:
            number = phone_parse(part)
        except ValueError as exc:
            if by_space:
                raise error from None
            raise ValueError(f"holds several numbers, and “{part}” {exc}") from None
        if number not in numbers:
            numbers.append(number)
    if len(numbers) > MAX_CELL_NUMBERS:
        raise ValueError(f"holds {len(numbers)} numbers; at most {MAX_CELL_NUMBERS} are read from one cell")
    # a mobile before a landline ('0755-86001234/138…'): the phone is the number a patient is called and texted on
    return sorted(numbers, key=lambda n: not (n.startswith("+86") and _CN_MOBILE.fullmatch(n[3:])))


# Words beside a number that say it is the person's own
SELF_NOTES = frozenset({"本人", "自己", "本机", "患者本人", "本人手机", "手机", "own", "self"})
_NUMBER_NOTE = re.compile(r"^(?P<before>[^\d+]*?)[\s:：]*(?P<number>\+?\d[\d\s\-–—.()（）/,，、;；|]*\d)\s*(?P<after>(?![/,，、;；|])[^\d]*)$")


@dataclass
class PhoneCell:
    numbers: list[str]
    note: str = ""  # the words written beside the number: '妈妈' in '13800138000(妈妈)', '' when none


def phone_cell_parse(raw) -> PhoneCell:
    """A phone cell, with the words a sheet writes beside a number ('13800138000(妈妈)', '爸爸 139…', '138… 王女士'):
    they say whose number it is. The numbers as phone_numbers_parse reads them; an unreadable cell raises its
    error. The caller decides what a note means (see SELF_NOTES)."""
    try:
        return PhoneCell(phone_numbers_parse(raw))
    except ValueError as exc:
        error = exc
    match = _NUMBER_NOTE.match(unicodedata.normalize("NFKC", cell_text(raw)).strip())
    if match is None:
        raise error
    note = f"{match['before']} {match['after']}".strip(" ()（）:：-—,，;；")
    if not note or len(note) > 12 or any(ch in note for ch in "/,，、;；|"):  # a list with a part no number
        raise error
    return PhoneCell(phone_numbers_parse(match["number"]), note)


def note_is_own(note: str, name: str = "") -> bool:
    """Whether the words beside a number make it the person's own: none, 本人 and the like, or their own name."""
    return not note or note.lower() in SELF_NOTES or (bool(name) and " ".join(note.split()) == " ".join(name.split()))


# A landline's extension after the number: 0755-86001234-8001, 转 8001, 分机 8001, ext. 8001, x8001, #8001
_EXTENSION = re.compile(r"(.*\d)\s*(?:转|分机|ext\.?|x|#|-|—|–)\s*(\d{1,6})\s*(?:分机|号)?", re.IGNORECASE)


def phone_fallback_parse(raw) -> str | None:
    """A cell of the phone's fallback column (电话 beside 手机): None for a cell without a single digit ('无', '-',
    '暂无': no number, not a mistake); else the number as phone_parse gives it. A landline's extension is dropped:
    a phone is stored as E.164, which has no room for one, and the line's own number is what matches and is
    dialled. Words beside the number (家, 单位) are dropped too: a fallback number identifies its holder only under
    the same name anyway. Raises ValueError (phone_parse's message) for digits that are no phone number."""
    text = cell_text(raw)
    if not any(ch.isdigit() for ch in text):
        return None
    try:
        return phone_parse(raw)
    except ValueError:
        match = _EXTENSION.fullmatch(unicodedata.normalize("NFKC", text))
        if match is not None:
            try:
                return phone_parse(match.group(1))
            except ValueError:
                pass
        try:  # a line with words beside it ('0755-86001234(家)', '单位 010-65521234'): a fallback may be shared
            return phone_cell_parse(raw).numbers[0]
        except ValueError:
            pass
        raise


_SCIENTIFIC = re.compile(r"\d\.\d+[eE]\+\d{1,2}")


def _scientific_digits(text: str) -> str:
    if not _SCIENTIFIC.fullmatch(text.strip()):
        return text
    sign, digits, exponent = Decimal(text.strip()).as_tuple()
    if exponent > 0:
        raise ValueError("is in scientific notation, so its last digits are lost; in Excel format the column as "
                         "text or a number without decimals and save the file again")
    if exponent < 0:
        return text  # not a whole number: phone_normalize refuses it
    return "".join(map(str, digits))


_HAN = re.compile(r"[\u4e00-\u9fff]{2,}")


class PinyinCache:
    """`customers.normalize.pinyin_keys`, memoised for one import (pypinyin costs ~50 µs a name).

    pinyin_keys reads the surname (first character) with every reading and the given name on its
    own, phrase-aware; so for all-Han names the two halves are cached separately and combined the same
    way, which makes even a file of unique names cheap. tests/test_values.py checks the results are
    identical to pinyin_keys; any other name goes to pinyin_keys itself.
    """

    def __init__(self):
        self._names: dict[str, tuple[list[str], list[str]]] = {}
        self._surnames: dict[str, list[str]] = {}
        self._given: dict[str, list[str]] = {}

    def keys(self, name: str) -> tuple[list[str], list[str]]:
        found = self._names.get(name)
        if found is None:
            found = self._names[name] = self._compute(name)
        return found

    def _compute(self, name: str) -> tuple[list[str], list[str]]:
        if not _HAN.fullmatch(name):
            return pinyin_keys(name)
        first, rest = name[0], name[1:]
        readings = self._surnames.get(first)
        if readings is None:
            readings = self._surnames[first] = pinyin_keys(first)[1]
        syllables = self._given.get(rest)
        if syllables is None:
            syllables = [s.lower() for s in lazy_pinyin(rest, errors=lambda chars: list(chars))]
            syllables = self._given[rest] = [s for s in syllables if s.strip() and s.isascii() and s.isalnum()]
        if not readings or not all(r.isascii() and r.isalpha() for r in readings):
            return pinyin_keys(name)
        initials, full = [], []
        given_initials = "".join(s[0] for s in syllables if s)
        given_full = "".join(syllables)
        for reading in readings:
            ini, ful = reading[0] + given_initials, reading + given_full
            if ini not in initials:
                initials.append(ini)
            if ful not in full:
                full.append(ful)
        return initials, full


_NO_INVISIBLE = dict.fromkeys(map(ord, INVISIBLE))


def name_clean(raw) -> str:
    """NFKC (full-width → half-width), single spaces, and no invisible characters (zero-width spaces, direction
    marks, a stray BOM) that would make a name look equal to another and never match it."""
    text = unicodedata.normalize("NFKC", cell_text(raw))
    if not text.isascii():
        text = text.translate(_NO_INVISIBLE)
    return " ".join(text.split())


_TRUE = {"1", "y", "yes", "true", "是", "同意", "已同意", "√", "✓", "对", "ok"}
_FALSE = {"0", "n", "no", "false", "否", "不同意", "拒绝", "×", "x", "未同意"}


def bool_parse(raw) -> bool:
    text = unicodedata.normalize("NFKC", cell_text(raw)).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("is not yes/no (use 是/否, Y/N or 1/0)")


def decimal_parse(raw, *, bound: int) -> Decimal:
    try:
        value = Decimal(cell_text(raw)).quantize(Decimal("0.000001"))
    except (InvalidOperation, ValueError):
        raise ValueError(f"must be a number between -{bound} and {bound}")
    if not -bound <= value <= bound:
        raise ValueError(f"must be a number between -{bound} and {bound}")
    return value


def quantity_parse(raw) -> int:
    text = cell_text(raw)
    if not text:
        return 1
    try:
        value = Decimal(unicodedata.normalize("NFKC", text))
    except InvalidOperation:
        raise ValueError("must be a whole number ≥ 1")
    if value != value.to_integral_value() or value < 1:
        raise ValueError("must be a whole number ≥ 1")
    return int(value)


_PAYMENT_ALIASES = {
    "现金": PaymentMethod.CASH, "微信": PaymentMethod.WECHAT_PAY, "微信支付": PaymentMethod.WECHAT_PAY,
    "wechat": PaymentMethod.WECHAT_PAY, "支付宝": PaymentMethod.ALIPAY, "银行卡": PaymentMethod.BANK_CARD,
    "刷卡": PaymentMethod.BANK_CARD, "银联": PaymentMethod.BANK_CARD, "信用卡": PaymentMethod.BANK_CARD,
    "pos": PaymentMethod.BANK_CARD, "card": PaymentMethod.BANK_CARD, "医保": PaymentMethod.INSURANCE,
    "医保卡": PaymentMethod.INSURANCE, "储值": PaymentMethod.WALLET, "储值卡": PaymentMethod.WALLET,
    "会员卡": PaymentMethod.WALLET, "余额": PaymentMethod.WALLET, "其他": PaymentMethod.OTHER,
    "其它": PaymentMethod.OTHER,
}


def payment_method_parse(raw) -> str:
    text = unicodedata.normalize("NFKC", cell_text(raw)).strip()
    if not text:
        return PaymentMethod.OTHER
    lowered = text.lower().replace(" ", "_")
    if lowered in PaymentMethod.values:
        return lowered
    for value, label in PaymentMethod.choices:
        if str(label).lower() == text.lower():
            return value
    if text.lower() in _PAYMENT_ALIASES:
        return _PAYMENT_ALIASES[text.lower()]
    raise ValueError("is not a payment method (现金/微信/支付宝/银行卡/医保/储值 or cash/wechat_pay/…)")


FORMULA = "is a formula: the import reads a formula as its text, not its result; copy the column and paste it back as values"


def formula_or(raw, message: str) -> str:
    """The error for a cell that failed to parse: a formula (=A2*0.9) is named as such, else `message`."""
    return FORMULA if isinstance(raw, str) and raw.lstrip().startswith("=") and len(raw.strip()) > 1 else message


def yuan_parse(raw, *, field: str) -> int:
    """An amount in fen: core.money.yuan_to_fen (¥ ￥ and thousands commas allowed), and a trailing 元 too."""
    return yuan_to_fen(cell_text(raw).removesuffix("元").rstrip(), field=field)


_EXCEL_EPOCH = dt.datetime(1899, 12, 30)
_DATETIME = re.compile(r"^(\d{4})(?:[-/.](\d{1,2})[-/.](\d{1,2})[ T]|年(\d{1,2})月(\d{1,2})日\s*)"
                       r"(\d{1,2})[:时](\d{2})分?(?:[:分]?(\d{2})秒?)?")


def datetime_parse(raw, *, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """A date or date-time cell as an aware datetime in the chain's zone; a bare date means 00:00 local."""
    if isinstance(raw, dt.datetime):
        return raw.replace(tzinfo=tz) if raw.tzinfo is None else raw
    if isinstance(raw, float) and not raw.is_integer() and 1 < raw < 2958466:  # an Excel serial with a time of day
        moment = _EXCEL_EPOCH + dt.timedelta(seconds=round(raw * 86400))
        return moment.replace(tzinfo=tz)
    text = unicodedata.normalize("NFKC", cell_text(raw)) if isinstance(raw, str) else raw
    if isinstance(text, str):
        match = _DATETIME.match(text)
        if match:
            year, month, day, cn_month, cn_day, hour, minute, second = (int(g or 0) for g in match.groups())
            month, day = month or cn_month, day or cn_day
            try:
                return dt.datetime(year, month, day, hour, minute, second, tzinfo=tz)
            except ValueError:
                raise ValueError("is not a real calendar date")
    day = date_parse(raw)
    return dt.datetime(day.year, day.month, day.day, tzinfo=tz)
