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

from smileloop.core.bounds import MAX_FEN, MAX_QUANTITY
from smileloop.core.errors import ValidationFailed
from smileloop.core.money import AMOUNT_TOO_LARGE, fen_to_yuan, yuan_to_fen
from smileloop.customers.normalize import (
    INVISIBLE,
    date_parse,
    kinship_parse,
    name_han_gaps_drop,
    phone_normalize,
    pinyin_keys,
)
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
# Characters of a phone cell: three numbers with words beside them fit. The patterns that read a longer cell are not
# linear in its length (20,000 colons and a digit took 9 s, a cell may hold 16 million): refused before they run.
PHONE_CELL_MAX = 100
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
    if len(text) > PHONE_CELL_MAX:
        raise ValueError(f"is longer than {PHONE_CELL_MAX} characters")
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


# Words beside a number that make it the person's own whatever else is written: 本人, 自己, and the like.
SELF_NOTES = frozenset({"本人", "自己", "本机", "患者本人", "本人手机", "手机", "own", "self"})
_NUMBER_NOTE = re.compile(r"^(?P<before>[^\d+]*?)[\s:：]*(?P<number>\+?\d[\d\s\-–—.()（）/,，、;；|]*\d)\s*(?P<after>(?![/,，、;；|])[^\d]*)$")
# Excel's way of keeping a number as text in a CSV ('="0755…"', leading zeros and all): a formula whose value is a
# text constant, read as that text. Any other formula stays a formula (reported as one, never evaluated).
_TEXT_FORMULA = re.compile(r'=\s*"((?:[^"]|"")*)"')


def text_formula_value(raw):
    """'="13800138000"' → '13800138000' (a doubled quote inside is one quote); any other cell as it is."""
    if isinstance(raw, str) and raw.lstrip().startswith("="):
        literal = _TEXT_FORMULA.fullmatch(raw.strip())
        if literal is not None:
            return literal[1].replace('""', '"')
    return raw


@dataclass
class PhoneCell:
    numbers: list[str]
    note: str = ""  # the words written beside the number: '妈妈' in '13800138000(妈妈)', '' when none


def phone_cell_parse(raw) -> PhoneCell:
    """A phone cell, with the words a sheet writes beside a number ('13800138000(妈妈)', '13800138000(微信同号)', '爸爸
    139…', '138… 王女士', 'tel:138…'): they say whose number it is. The numbers as phone_numbers_parse reads them; an
    unreadable cell raises its error. Excel's text formula ('="13800138000"') is read as its text; any other formula
    is no number (formula_or names it). The caller decides what a note means (note_is_own)."""
    try:
        return PhoneCell(phone_numbers_parse(raw))
    except ValueError as exc:
        error = exc
    if len(cell_text(raw)) > PHONE_CELL_MAX:
        raise error
    text = text_formula_value(raw)
    if text is not raw:
        return phone_cell_parse(text)
    text = unicodedata.normalize("NFKC", cell_text(raw)).strip()
    if text.startswith("="):
        raise error  # a formula, whatever digits it holds ('=13800138000', '=A2&""'): formula_or reports it
    match = _NUMBER_NOTE.match(text)
    if match is None:
        raise error
    note = f"{match['before']} {match['after']}".strip(" ()（）[]【】:：-—,，;；")
    if not note or len(note) > 12 or any(ch in note for ch in "/,，、;；|"):  # a list with a part no number
        raise error
    return PhoneCell(phone_numbers_parse(match["number"]), note)


# Whose number the words beside it make it. A positive list of the people whose number a patient's sheet gives
# instead of theirs: a note naming none of them (微信同号, 常用, 工作, 手机, tel:, 本人) leaves the number the patient's
# own — before, any note but 本人 made it a relative's, and a patient's own '13800138000(微信同号)' created a second,
# phone-less person beside the one in the pool.
# - kinship, as customers.normalize.kinship_parse reads it (妈妈, 老公, 奶奶的手机 …; a test checks that every word it
#   knows makes a number a relative's), and other relatives and contacts, anywhere in the words ('孩子妈妈', '家属电话');
RELATIVE_WORDS = (
    "妈妈", "母亲", "爸爸", "父亲", "家长", "监护人", "父母", "爸妈", "母子", "母女", "父子", "父女",
    "爷爷", "奶奶", "外公", "外婆", "姥姥", "姥爷", "祖父", "祖母", "外祖父", "外祖母", "祖孙",
    "老公", "丈夫", "爱人", "老婆", "妻子", "太太", "儿子", "女儿", "哥哥", "姐姐", "弟弟", "妹妹",
    "孩子", "小孩", "宝宝", "家属", "亲属", "家人", "亲戚", "亲友", "联系人", "紧急联系", "朋友", "同事", "邻居",
    "保姆", "阿姨", "叔叔", "舅舅", "舅妈", "姑姑", "姑父", "姨妈", "姨父", "伯伯", "伯父", "伯母", "婶婶",
    "孙子", "孙女", "外孙", "媳妇", "儿媳", "女婿", "公公", "婆婆", "岳父", "岳母", "丈母娘", "老丈人", "他人", "别人",
    "代接", "代办", "转告",
)
_RELATIVE_ENGLISH = frozenset({
    "mother", "mom", "mum", "mama", "father", "dad", "papa", "parent", "parents", "guardian", "grandma", "grandpa",
    "grandmother", "grandfather", "grandparent", "husband", "wife", "spouse", "partner", "son", "daughter", "child",
    "kid", "brother", "sister", "sibling", "relative", "family", "friend", "contact", "emergency", "colleague",
    "neighbour", "neighbor", "nanny", "aunt", "uncle",
})
# - a kinship word of one character ending the words ('孩子妈', '他爸', '小妹');
_RELATIVE_ENDINGS = tuple("妈爸哥姐弟妹姨舅叔婶姑伯爷奶婆")
# - a person named by a title (王女士, 李先生, 张老师), unless it is the row's own name;
_TITLES = ("女士", "先生", "小姐", "太太", "老师", "阿姨", "叔叔", "师傅", "医生", "同学", "老板", "经理", "总")
# - someone's number ('周敏的', '老王的手机'), not the person's own ('自己的', '本人的');
# - a name (2 to 4 Han characters after a common surname: 周敏, 欧阳娜娜, 老王) that is not the row's: the mother's
#   name written beside her number must not make the child her.
_COMMON_SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟"
    "谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫阎段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
_COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "东方", "慕容", "令狐", "皇甫", "尉迟", "公孙")
_NAME = re.compile(r"[\u4e00-\u9fff]{2,4}")
# Words that say a number is the person's own line (checked after the above: '妈妈手机' is the mother's).
_OWN_WORDS = ("本人", "自己", "本机", "微信", "同号", "常用", "手机", "电话", "座机", "工作", "单位", "办公", "公司",
              "私人", "个人", "主号", "备用", "号码", "短信", "住宅", "宅电", "家里", "移动", "联通", "电信")
_OWN_TAIL = re.compile(r"(的)?(手机号码|手机号|手机|电话号码|电话|号码|号)$")


def note_is_own(note: str, name: str = "") -> bool:
    """Whether the words beside a number leave it the person's own: none, words that name no one else (微信同号,
    常用, 工作, tel, 本人), or the row's own name. A relative, a contact, a titled or named other person, or someone's
    possessive ('周敏的') makes it theirs (see RELATIVE_WORDS and the notes above it)."""
    if not note:
        return True
    text = " ".join(unicodedata.normalize("NFKC", note).lower().split())
    if text in SELF_NOTES or (name and text == " ".join(unicodedata.normalize("NFKC", name).lower().split())):
        return True
    return not _names_someone_else(text)


def _names_someone_else(text: str) -> bool:
    if kinship_parse(text) is not None or any(word in text for word in RELATIVE_WORDS):
        return True
    if text.isascii():  # 'Mom', "mother's", 'emergency contact'; and someone's ("John's")
        return "'s" in text or any(word in _RELATIVE_ENGLISH for word in re.findall(r"[a-z]+", text))
    core = _OWN_TAIL.sub("", text).strip()
    if "的" in core:
        return core.split("的", 1)[0].strip() not in ("", "本人", "自己", "我", "患者", "患者本人")
    if core.endswith(_RELATIVE_ENDINGS) or any(core.endswith(t) and len(core) > len(t) for t in _TITLES):
        return True
    if any(word in core for word in _OWN_WORDS):
        return False
    return bool(_NAME.fullmatch(core)) and (core[0] in _COMMON_SURNAMES or core.startswith(_COMPOUND_SURNAMES)
                                            or (core[0] == "老" and core[1] in _COMMON_SURNAMES))  # 老王


# A landline's extension after the number: 0755-86001234-8001, 转 8001, 分机 8001, ext. 8001, x8001, #8001
_EXTENSION = re.compile(r"(.*\d)\s*(?:转|分机|ext\.?|x|#|-|—|–)\s*(\d{1,6})\s*(?:分机|号)?", re.IGNORECASE)


def phone_extension_parse(raw) -> str | None:
    """A line with its extension ('0755-86001234 转 8001', '010-65521234-8001'): the line's number (E.164), or None
    when the cell is no such thing. E.164 has no room for the extension, and the line is a switchboard others
    share: the caller stores the number as a shared one and keeps the cell, extension and all, in the notes."""
    text = cell_text(text_formula_value(raw))
    if len(text) > PHONE_CELL_MAX:
        return None
    match = _EXTENSION.fullmatch(unicodedata.normalize("NFKC", text))
    if match is None:
        return None
    try:
        return phone_parse(match.group(1))
    except ValueError:
        return None


# What a sheet writes in the phone column of a patient who has none. Such a cell is a blank one (a phone-less person,
# the fallback column's number if there is one), not an error that stopped the whole file: a clinic's export writes
# 无 for every walk-in who gave no number. Any other cell without digits ('abc') is still an error.
NO_PHONE_WORDS = frozenset({"无", "暂无", "没有", "无号码", "无手机", "无电话", "未留", "未提供", "不详", "未知", "空",
                            "-", "--", "—", "/", "n/a", "na", "none", "null"})


def phone_is_placeholder(raw) -> bool:
    return isinstance(raw, str) and unicodedata.normalize("NFKC", raw).strip().lower() in NO_PHONE_WORDS


def phone_fallback_parse(raw) -> str | None:
    """A cell of the phone's fallback column (电话 beside 手机): None for a cell without a single digit ('无', '-',
    '暂无': no number, not a mistake); else the number as phone_parse gives it. A landline's extension is dropped:
    a phone is stored as E.164, which has no room for one, and the line's own number is what matches and is
    dialled. Words beside the number (家, 单位) are dropped too: a fallback number identifies its holder only under
    the same name anyway. Excel's text formula ('="0755-86001234"') is read as its text. Raises ValueError
    (phone_parse's message) for digits that are no phone number."""
    raw = text_formula_value(raw)
    text = cell_text(raw)
    if not any(ch.isdigit() for ch in text):
        return None
    try:
        return phone_parse(raw)
    except ValueError:
        if len(text) > PHONE_CELL_MAX:
            raise ValueError(f"is longer than {PHONE_CELL_MAX} characters") from None
        line = phone_extension_parse(raw)
        if line is not None:
            return line
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
    if text.isascii():
        return " ".join(text.split())
    return name_han_gaps_drop(" ".join(text.translate(_NO_INVISIBLE).split()))  # 张 三 is 张三, as the pages store it


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
    if not value.is_finite() or not -bound <= value <= bound:  # 'NaN' raised on comparing: a traceback
        raise ValueError(f"must be a number between -{bound} and {bound}")
    return value


def quantity_parse(raw) -> int:
    """A line's quantity, 1 to MAX_QUANTITY as through the API: a larger one overflowed the database's integer (a
    traceback on writing) or, times a price, the order's total."""
    text = cell_text(raw)
    if not text:
        return 1
    try:
        value = Decimal(unicodedata.normalize("NFKC", text))
    except InvalidOperation:
        raise ValueError("must be a whole number ≥ 1")
    if value.is_nan() or value != value.to_integral_value() or value < 1:  # 'sNaN' raised on comparing: a traceback
        raise ValueError("must be a whole number ≥ 1")
    if value > MAX_QUANTITY:
        raise ValueError(f"must be at most {MAX_QUANTITY}")
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
    """The error for a cell that failed to parse: a formula (=A2*0.9) is named as such, else `message` (also for
    Excel's text formula '="…"', which is read as its text: see text_formula_value)."""
    if isinstance(raw, str) and raw.lstrip().startswith("=") and len(raw.strip()) > 1 \
            and text_formula_value(raw) is raw:
        return FORMULA
    return message


_FULL_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}  # ！…～ → !…~ (digits, ．，－ and ＋ among them)
YUAN_MAX_LENGTH = 40  # characters of an amount: '¥10,000,000,000.00 元' is 19


def yuan_parse(raw, *, field: str) -> int:
    """An amount in fen: core.money.yuan_to_fen (¥ ￥ and thousands commas allowed), and a trailing 元 too; at most
    MAX_FEN, as through the API (lines × quantities of larger ones overflowed the order's total)."""
    # full-width forms as typed with a Chinese input method ('１２３．５０', '１，２００'): '５０' was read, '５０．５' refused
    text = cell_text(raw).translate(_FULL_WIDTH).removesuffix("元").rstrip()
    if len(text) > YUAN_MAX_LENGTH:  # Decimal's arithmetic on 200,000 digits took 2 s
        raise ValueError("must be a number of yuan")
    try:
        fen = yuan_to_fen(text, field=field)
    except ValidationFailed as exc:  # '1e999999999': named by the bound it is past, as any amount over it
        if exc.errors[0].message != AMOUNT_TOO_LARGE:
            raise
        fen = -MAX_FEN - 1 if text.lstrip().startswith("-") else MAX_FEN + 1
    if fen < -MAX_FEN:
        raise ValueError("must not be negative")
    if fen > MAX_FEN:
        raise ValueError(f"must be at most {fen_to_yuan(MAX_FEN)}")
    return fen


_EXCEL_EPOCH = dt.datetime(1899, 12, 30)
# A date and, optionally, a time of day: with AM/PM or 上午/下午 before or after it, and an explicit offset (Z, UTC,
# +08:00, GMT+8) at the end. The whole cell must be one: before, '2024-03-01T02:00:00Z' was stored as 02:00 in the
# chain's zone (8 hours off), '1:45 PM' as 01:45 and '下午1:45' as midnight, as whatever followed the date was dropped.
_DATETIME = re.compile(
    r"(?P<year>\d{4})(?:[-/.](?P<month>\d{1,2})[-/.](?P<day>\d{1,2})|年(?P<cn_month>\d{1,2})月(?P<cn_day>\d{1,2})[日号]?)"
    r"(?:(?:T|\s+|(?<=[日号])\s*|\s*(?=上午|早上|凌晨|中午|下午|晚上))"
    r"(?P<half>上午|早上|凌晨|中午|下午|晚上|AM|PM|A\.M\.|P\.M\.)?\s*"
    r"(?P<hour>\d{1,2})(?::(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.\d{1,6})?)?"
    r"|[时点](?:(?P<cn_minute>\d{1,2})分?(?:(?P<cn_second>\d{1,2})秒)?|(?P<half_hour>半))?)"
    r"\s*(?P<half_after>AM|PM|A\.M\.|P\.M\.)?"
    r"\s*(?P<zone>Z|UTC|GMT|(?:UTC|GMT)?\s*[+-]\d{1,2}(?::?\d{2})?)?)?",
    re.IGNORECASE)
_ZONE_OFFSET = re.compile(r"(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?")
DATETIME_MAX = 64  # characters: '2024年3月1日 下午 2:30:15 GMT+08:00' is 31
DATETIME_FORMAT = "is not a date and time (use 2024-03-01 14:30, 2024/3/1 2:30 PM or 2024-03-01T06:30:00Z)"


def datetime_parse(raw, *, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """A date or date-time cell as an aware datetime in the chain's zone; a bare date means 00:00 local, a time
    without an offset is the chain's local time, one with an offset (Z, +08:00, UTC) is converted to it. Anything
    else after the date is refused (DATETIME_FORMAT) rather than dropped."""
    if isinstance(raw, dt.datetime):
        return raw.replace(tzinfo=tz) if raw.tzinfo is None else raw
    if isinstance(raw, float) and not raw.is_integer() and 1 < raw < 2958466:  # an Excel serial with a time of day
        moment = _EXCEL_EPOCH + dt.timedelta(seconds=round(raw * 86400))
        return moment.replace(tzinfo=tz)
    if isinstance(raw, str):
        text = unicodedata.normalize("NFKC", cell_text(raw))
        if len(text) > DATETIME_MAX:  # no date and time is longer; the pattern is not linear in a longer cell's length
            raise ValueError(DATETIME_FORMAT)
        match = _DATETIME.fullmatch(text)
        if match is not None:
            return _datetime_of(match, tz)
        if _DATETIME.match(text) is not None:  # a date, then something that is no time of day
            raise ValueError(DATETIME_FORMAT)
    day = date_parse(raw)
    return dt.datetime(day.year, day.month, day.day, tzinfo=tz)


def _datetime_of(match: re.Match, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    year = int(match["year"])
    month, day = int(match["month"] or match["cn_month"]), int(match["day"] or match["cn_day"])
    hour = int(match["hour"] or 0)
    minute = 30 if match["half_hour"] else int(match["minute"] or match["cn_minute"] or 0)
    second = int(match["second"] or match["cn_second"] or 0)
    half = (match["half"] or match["half_after"] or "").upper().replace(".", "")
    if match["half"] and match["half_after"] or hour > 23 or minute > 59 or second > 59:
        raise ValueError(DATETIME_FORMAT)
    if half in ("AM", "凌晨", "上午", "早上"):
        if hour > 12:
            raise ValueError(DATETIME_FORMAT)  # 'AM 13:00'
        if hour == 12 and half in ("AM", "凌晨"):
            hour = 0  # 12:30 AM is half past midnight
    elif half in ("PM", "下午", "晚上") or (half == "中午" and hour < 11):
        if hour < 12:
            hour += 12  # 1:45 PM, 下午1:45, 中午1点; '下午13:45' says the same twice
    zone = tz
    if match["zone"]:
        written = match["zone"].upper().replace(" ", "")
        if written in ("Z", "UTC", "GMT"):
            zone = dt.UTC
        else:
            sign, hours, minutes = _ZONE_OFFSET.fullmatch(written).groups()
            if int(hours) > 14 or int(minutes or 0) > 59:
                raise ValueError(DATETIME_FORMAT)
            offset = dt.timedelta(hours=int(hours), minutes=int(minutes or 0))
            zone = dt.timezone(-offset if sign == "-" else offset)
    try:
        moment = dt.datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError:
        raise ValueError("is not a real calendar date")
    return moment if zone is tz else moment.astimezone(tz)
