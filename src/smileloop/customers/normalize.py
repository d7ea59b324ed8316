"""Pure parsers for what real exports and forms contain: phones, dates, genders, channels, pinyin.

Each raises ValueError with a message a front-desk user understands; callers attach field and row.
"""

import datetime as dt
import re
import unicodedata
from collections import Counter, defaultdict
from itertools import product

import phonenumbers
from django.utils import timezone
from pypinyin import Style, lazy_pinyin, pinyin

from smileloop.customers.enums import Channel, Gender, IdentityKind, Relation

# separators, and the invisible characters copying from web pages and chat apps leaves in a number (zero-width
# spaces and joiners, direction marks, the BOM): NFKC keeps them
INVISIBLE = "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff"
_PHONE_JUNK = re.compile(r"[\s\-–—()（）.·" + INVISIBLE + "]")


def to_halfwidth(value: str) -> str:
    return unicodedata.normalize("NFKC", value)


def phone_normalize(raw, region: str = "CN") -> str:
    """'138 0013 8000', '+86-138…', '0086138…', '１３８…', '13800138000.0' → '+8613800138000'."""
    if raw is None:
        raise ValueError("phone is empty")
    text = to_halfwidth(str(raw)).strip()
    text = re.sub(r"\.0+$", "", text)  # a number cell Excel wrote as 13800138000.0 (or .00)
    text = _PHONE_JUNK.sub("", text)
    if not text:
        raise ValueError("phone is empty")
    if text.startswith("00"):
        text = "+" + text[2:]
    if not re.fullmatch(r"\+?\d{5,15}", text):
        raise ValueError("is not a phone number")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise ValueError("is not a phone number")
    if not phonenumbers.is_valid_number(number):
        raise ValueError("is not a valid phone number")
    if phonenumbers.number_type(number) in _NOT_A_PERSONS:
        raise ValueError("is a service number (400, 800, premium rate), not a person's")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# A company's hotline (400 shared cost, 800 toll free), a premium or universal access number: valid numbers that
# reach no one person. As a patient's phone it merged everyone who gave the clinic's supplier's hotline into one
# person, and an SMS to it reaches nobody.
_NOT_A_PERSONS = frozenset({phonenumbers.PhoneNumberType.TOLL_FREE, phonenumbers.PhoneNumberType.SHARED_COST,
                            phonenumbers.PhoneNumberType.PREMIUM_RATE, phonenumbers.PhoneNumberType.UAN,
                            phonenumbers.PhoneNumberType.VOICEMAIL, phonenumbers.PhoneNumberType.PAGER})


def phone_mask(e164: str | None) -> str:
    """+8613800138000 → 138****8000: the number as its reader writes it, middle hidden. A Chinese landline keeps its
    trunk 0 (+862162881234 → 021****1234); a number of another country keeps its code (+16502530000 →
    +1 65****0000), so that neither passes for a Chinese mobile. At least four digits are hidden."""
    if not e164:
        return ""
    if len(e164) == 14 and e164.startswith("+861"):  # a Chinese mobile: almost every number
        return f"{e164[3:6]}****{e164[-4:]}"
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return "****"
    if number.country_code == 86:
        digits, prefix = re.sub(r"\D", "", phone_national(e164)), ""
    else:
        digits, prefix = phonenumbers.national_significant_number(number), f"+{number.country_code} "
    tail = 4 if len(digits) >= 10 else 2
    head = max(0, min(3, len(digits) - tail - 4))
    return f"{prefix}{digits[:head]}****{digits[len(digits) - tail:]}"


# A space between two Chinese characters (张　三: a full-width space typed in the input method) is no part of the name:
# kept, 张 三 was found by no search for 张三 (a search drops its spaces) and was no duplicate of 张三. Latin names keep
# theirs (Zhang San), and so does a name of mixed scripts (张 Anna).
_HAN_GAP = re.compile(r"(?<=[\u3400-\u9fff\uf900-\ufaff]) (?=[\u3400-\u9fff\uf900-\ufaff])")


def name_han_gaps_drop(name: str) -> str:
    """'张 三' → '张三' (a name whose spaces are already single): the spaces between two Chinese characters dropped,
    as the staff pages, the API and the import store a name."""
    return _HAN_GAP.sub("", name)


# A Chinese mobile written in free text (notes, timeline texts, import cells): 1[3-9] and nine more digits, grouped
# 3-4-4 or not (spaces, dashes, the invisible characters a paste leaves), full-width digits too, after an optional
# +86 / 0086 / 86. No digit may touch it on either side, so a date (20230105), an order number, an ID number or an
# amount is never taken for one.
_SEP = r"[ \t\u3000\-–—" + INVISIBLE + "]?"
MOBILE_IN_TEXT = re.compile(
    r"(?<!\d)(?:(?:[+＋]|00|００)?[8８][6６]" + _SEP + r")?"
    r"([1１][3-9３-９]\d" + _SEP + r"\d{4}" + _SEP + r"\d{4})(?!\d)")


def phones_masked(text: str) -> str:
    """'妈妈 13911112222' → '妈妈 139****2222': every Chinese mobile in a free text masked as phone_mask masks a
    phone field (+86 / 0086 and separators go with it). For readers who may not see phones (PIPL): staff type
    relatives' numbers into notes, and the import keeps a number it could not link in the notes. Display only:
    the stored text is never rewritten. One compiled regex, one pass."""
    if not text:
        return text or ""

    def mask(match: re.Match) -> str:
        digits = re.sub(r"\D", "", to_halfwidth(match.group(1)))
        return phone_mask("+86" + digits) if len(digits) == 11 else match.group(0)

    return MOBILE_IN_TEXT.sub(mask, str(text))


# Nearly a mobile: 10 to 13 digits from a 1, separators allowed (a digit too few or too many, 12345678901).
_NEAR_MOBILE = re.compile(r"(?<!\d)[1１](?:" + _SEP + r"\d){9,12}(?!\d)")


def phone_likes_masked(text: str) -> str:
    """phones_masked, and numbers that are nearly a mobile masked alike (first 3 and last 4 digits kept): an import's
    rejected phone cells (139123456789, a digit too many) are a mobile all the same to a reader who may not see
    phones. Not for notes, whose masks the edit form maps back (notes_unmasked knows mobiles only)."""
    def mask(match: re.Match) -> str:
        digits = re.sub(r"\D", "", to_halfwidth(match.group(0)))
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]

    return _NEAR_MOBILE.sub(mask, phones_masked(text))


class MaskUnresolved(ValueError):
    """A masked mobile in notes sent back that cannot be written back as the number it stood for (notes_unmasked);
    `code` is mask_unknown or mask_ambiguous, `mask` the run as sent."""

    def __init__(self, code: str, mask: str):
        super().__init__(f"{code}: {mask}")
        self.code, self.mask = code, mask


# A masked run as a reader edits it: digits and '*' (139****2222, or what is left of it), with four or more '*',
# or at least ten characters: a mask with one '*' deleted (139***2222) or typed over (139***12222) is still one, or
# its number would be lost; a short product of numbers (12*34*56) is text.
_STAR_RUN = re.compile(r"(?<![\d*])[\d*]*\*[\d*]*(?![\d*])")


def _masked_runs(text: str) -> list[re.Match]:
    return [run for run in _STAR_RUN.finditer(text)
            if run.group(0).count("*") >= 4 or len(run.group(0)) >= 10]


def _lines(text: str) -> str:
    """A textarea's text as a browser sends it back (CRLF line breaks, the form's strip) compared as stored."""
    return text.replace("\r\n", "\n").strip()


def notes_unmasked(submitted: str, stored: str) -> str:
    """The notes a reader who may not see phones saved, with each masked mobile (139****2222) written back as the
    stored number it stands for: the form showed them `phones_masked(stored)`, and a mask must never be stored over
    the number (PIPL masking is display only).

    Rule: the masked text sent back unchanged keeps the stored notes as they are. Otherwise each masked run of the
    text (digits around four or more '*') must be the mask of a stored number, or a mask stored as text: it is
    replaced by that number as it was written (+86 and separators included). Masks that several different stored
    numbers share (139 1111 2222 and 139 3333 2222) stand for them in their order of appearance, and only while the
    text holds as many of that mask as the notes held numbers; when one was added or deleted, which is which cannot
    be told, and the notes are refused (`mask_ambiguous`). A run that is no stored mask (a digit changed, part
    of it deleted, one typed) is refused too (`mask_unknown`): its number would be lost. Text around the masks,
    numbers typed in full and masks deleted whole are saved as edited."""
    if _lines(submitted) == _lines(phones_masked(stored)):
        return stored
    found = []  # (where in the stored notes, mask, as written, which number)
    for match in MOBILE_IN_TEXT.finditer(stored):
        digits = re.sub(r"\D", "", to_halfwidth(match.group(1)))
        if len(digits) == 11:  # as phones_masked masks it
            found.append((match.start(), phone_mask("+86" + digits), match.group(0), digits))
    for match in _masked_runs(stored):  # a mask kept as text stands for itself
        found.append((match.start(), match.group(0), match.group(0), match.group(0)))
    stands_for = defaultdict(list)
    for _start, mask, written, number in sorted(found):
        stands_for[mask].append((written, number))
    runs = [run for run in _masked_runs(submitted) if any(c.isdigit() for c in run.group(0))]
    counts = Counter(run.group(0) for run in runs)
    used: Counter = Counter()
    parts, end = [], 0
    for run in runs:
        mask = run.group(0)
        candidates = stands_for.get(mask)
        if not candidates:
            raise MaskUnresolved("mask_unknown", mask)
        if len({number for _written, number in candidates}) > 1 and counts[mask] != len(candidates):
            raise MaskUnresolved("mask_ambiguous", mask)
        written = candidates[min(used[mask], len(candidates) - 1)][0]  # more copies of one number: that number
        used[mask] += 1
        parts += [submitted[end:run.start()], written]
        end = run.end()
    return "".join([*parts, submitted[end:]])



def phone_national(e164: str) -> str:
    """+8613800138000 → 138 0013 8000, +8675586001234 → 0755 8600 1234: a number as a Chinese reader writes it
    (notes, messages), the landline with its trunk 0."""
    try:
        return phonenumbers.format_number(phonenumbers.parse(e164, None), phonenumbers.PhoneNumberFormat.NATIONAL)
    except phonenumbers.NumberParseException:
        return e164


def phone_display(e164: str | None) -> str:
    if not e164:
        return ""
    return e164[3:] if e164.startswith("+86") else e164


_EXCEL_EPOCH = dt.date(1899, 12, 30)
# A time of day after a date (a date column exported as date-times: '1990-01-05 00:00:00') is allowed and dropped;
# with an offset ('1990-01-04T16:00:00.000Z', JavaScript's toISOString() of a date picked in China) it names a moment,
# whose day is the chain's local day. Anything else after it makes the cell no date (before, '1990-01-05 garbage' was
# read as 1990-01-05).
_DATE_PATTERNS = [
    re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})"
               r"(?:[ T](?P<hour>[01]?\d|2[0-3]):(?P<minute>[0-5]\d)(?::(?P<second>[0-5]\d)(?:\.\d{1,6})?)?"
               r"(?P<zone>Z|[+-]\d{2}:?\d{2})?)?$"),
    re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})[日号]?(?:\s*(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?)?$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})(?:\.0+)?$"),
]


def date_parse(raw) -> dt.date:
    """1990-01-05, 1990/1/5, 1990年1月5日, 19900105 (text or number), Excel serial 32878, or a date object. A time of
    day after the date is dropped; other text after it is refused.

    An 8-digit number 19000101–20991231 is a date written YYYYMMDD (typed into a number cell of Excel): Excel's
    serials of real dates have 5 digits (2958465 is 9999-12-31), so the two are never confused."""
    if isinstance(raw, dt.datetime):
        return timezone.localdate(raw) if timezone.is_aware(raw) else raw.date()
    if isinstance(raw, dt.date):
        return raw
    match = None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        if not (19000101 <= raw <= 20991231 and raw == int(raw)):
            return _excel_serial(raw)
        parts = (int(raw) // 10000, int(raw) // 100 % 100, int(raw) % 100)
    else:
        text = to_halfwidth(str(raw)).strip()
        if not text:
            raise ValueError("date is empty")
        for pattern in _DATE_PATTERNS:
            match = pattern.match(text)
            if match:
                parts = tuple(int(g) for g in match.groups()[:3])
                break
        else:
            if re.fullmatch(r"\d{4,5}(\.0+)?", text):
                return _excel_serial(float(text))
            raise ValueError("is not a date (use 1990-01-05, 1990/1/5, 1990年1月5日 or 19900105)")
    try:
        day = dt.date(*parts)
    except ValueError:
        raise ValueError("is not a real calendar date")
    zone = match.groupdict().get("zone") if match else None
    if not zone:
        return day
    return _moment_local_day(day, match, zone)


def _moment_local_day(day: dt.date, match: re.Match, zone: str) -> dt.date:
    """The chain's local day of a date-time written with an offset."""
    if zone == "Z":
        offset = dt.timedelta(0)
    else:
        digits = zone[1:].replace(":", "")
        offset = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if zone[0] == "-":
            offset = -offset
    try:
        moment = dt.datetime(day.year, day.month, day.day, int(match["hour"]), int(match["minute"]),
                             int(match["second"] or 0), tzinfo=dt.timezone(offset))
        return timezone.localdate(moment)
    except (ValueError, OverflowError):  # an offset of a day or more is no offset
        raise ValueError("is not a date (use 1990-01-05, 1990/1/5, 1990年1月5日 or 19900105)")


def _excel_serial(value: float) -> dt.date:
    if not 1 <= value <= 2958465 or value != int(value):
        raise ValueError("is not a valid Excel date number")
    return _EXCEL_EPOCH + dt.timedelta(days=int(value))


def name_masked(name: str) -> str:
    """张三 → 张*, 欧阳娜娜 → 欧***: the surname initial only, how a patient outside the reader's scope is named
    (PIPL: a related person of another clinic is not identified to its staff; the public survey page shows no
    more of its patient either)."""
    name = (name or "").strip()
    return name[0] + "*" * max(1, len(name) - 1) if name else "*"


# Identities shown in full by default: a PMS / POS patient id is the chain's own chart number, issued by its own
# practice-management system and meaningless outside it; staff type it there to find the chart (it is how the desk
# matches a record with the PMS), so masking it would send them to reveal it for every lookup. Every other kind
# (WeChat openid / unionid, WeCom external_userid, Douyin id) is a platform's identifier of the person that links them
# across services: personal information under PIPL, masked for every role until an audited reveal.
IDENTITY_KINDS_SHOWN = frozenset({IdentityKind.PMS})


def identity_mask(kind: str, external_id: str | None) -> str:
    """An external identity as staff see it before an audited reveal (`services.identities_reveal`): a phone as
    `phone_mask` writes it; a PMS / POS id as it is (IDENTITY_KINDS_SHOWN); any other id with at most a third of it
    shown, half at each end and at most 4 each, the middle always "****" whatever its length (the length is not
    told): oAbCdEfGhIjKlMnOpQrStUvWxYz01 → oAbC****Yz01, wm12345678 → w****78, abc → ****c, ab → ****."""
    if not external_id:
        return ""
    if kind == IdentityKind.PHONE:
        return phone_mask(external_id)
    if kind in IDENTITY_KINDS_SHOWN:
        return external_id
    keep = min(8, len(external_id) // 3)
    head = min(4, keep // 2)
    tail = min(4, keep - head)
    return f"{external_id[:head]}****{external_id[len(external_id) - tail:] if tail else ''}"


_AGE = re.compile(r"^\s*\d{1,3}\s*(岁|周岁|yrs?|years?( old)?)\s*$", re.IGNORECASE)


BIRTH_YEAR = "is a year, not a date of birth: write the whole date (1990-01-05)"


def birthday_parse(raw, today: dt.date | None = None) -> dt.date:
    """date_parse for a date of birth: not in the future, not before 1900, not an age ("35岁"), and not a year alone
    (date_parse reads 4 digits as an Excel day number: '1990' was 1905-06-12)."""
    if isinstance(raw, str) and _AGE.match(to_halfwidth(raw)):
        raise ValueError("is an age, not a date of birth")
    # The chain's calendar day (settings.TIME_ZONE), not the server's: a baby born at 02:00 in Shanghai is
    # born "today" while the UTC date is still yesterday.
    today = today or timezone.localdate()
    text = to_halfwidth(str(raw)).strip().removesuffix(".0") if isinstance(raw, (str, int, float)) \
        and not isinstance(raw, bool) else ""
    if len(text) == 4 and text.isdigit() and 1900 <= int(text) <= today.year:
        raise ValueError(BIRTH_YEAR)
    value = date_parse(raw)
    if value > today:
        raise ValueError("is in the future")
    if value.year < 1900:
        raise ValueError("is before 1900")
    return value


_GENDERS = {
    "男": Gender.MALE, "m": Gender.MALE, "male": Gender.MALE, "man": Gender.MALE, "1": Gender.MALE,
    "男性": Gender.MALE, "男士": Gender.MALE, "先生": Gender.MALE,
    "女": Gender.FEMALE, "f": Gender.FEMALE, "female": Gender.FEMALE, "woman": Gender.FEMALE, "2": Gender.FEMALE,
    "女性": Gender.FEMALE, "女士": Gender.FEMALE, "小姐": Gender.FEMALE,
    "未知": Gender.UNKNOWN, "u": Gender.UNKNOWN, "unknown": Gender.UNKNOWN, "0": Gender.UNKNOWN, "": Gender.UNKNOWN,
    "保密": Gender.UNKNOWN, "不详": Gender.UNKNOWN, "未填": Gender.UNKNOWN, "未填写": Gender.UNKNOWN,
}


_TITLES = (("女士", Gender.FEMALE), ("小姐", Gender.FEMALE), ("太太", Gender.FEMALE), ("先生", Gender.MALE))


def gender_from_title(name: str) -> str | None:
    """A lead noted down by surname and title over the phone ('王女士', '李先生') says their gender."""
    name = (name or "").strip()
    for title, gender in _TITLES:
        if name.endswith(title) and len(name) > len(title):
            return gender
    return None


# Kinship words a sheet writes beside a relative's number ('13800138000(妈妈)'): what the number's holder is to the
# person of the row, as a household relation seen from the person (the holder is their PARENT, SPOUSE, …).
_KINSHIP = {
    Relation.PARENT: ("妈妈", "妈", "母亲", "爸爸", "爸", "父亲", "家长", "监护人", "父母", "爸妈", "母子", "母女", "父子",
                      "父女", "mother", "mom", "mum", "father", "dad", "parent", "guardian"),
    Relation.GRANDPARENT: ("爷爷", "奶奶", "外公", "外婆", "姥姥", "姥爷", "祖父", "祖母", "外祖父", "外祖母", "祖孙",
                           "grandma", "grandpa", "grandmother", "grandfather", "grandparent"),
    Relation.SPOUSE: ("老公", "丈夫", "爱人", "老婆", "妻子", "太太", "husband", "wife", "spouse"),
    Relation.CHILD: ("儿子", "女儿", "son", "daughter", "child"),
    Relation.SIBLING: ("哥哥", "姐姐", "弟弟", "妹妹", "哥", "姐", "弟", "妹", "brother", "sister", "sibling"),
}
_KINSHIP_WORDS = {word: relation for relation, words in _KINSHIP.items() for word in words}
_KINSHIP_TAIL = re.compile(r"(的)?(手机号码|手机号|手机|电话号码|电话|号码|号|'s phone|'s number|'s mobile)$")


def kinship_parse(note: str) -> str | None:
    """What the holder of a number is to the person whose row it stands in, from the words beside it: '妈妈',
    '奶奶的手机', 'Mom' → Relation.PARENT / GRANDPARENT …; None for words that name no relation ('王女士', '单位')."""
    text = _KINSHIP_TAIL.sub("", " ".join(to_halfwidth(note or "").lower().split()))
    return _KINSHIP_WORDS.get(text.strip())


def gender_parse(raw) -> str:
    text = to_halfwidth(str(raw or "")).strip().lower()
    text = re.sub(r"\.0+$", "", text)  # a number cell Excel wrote as 13800138000.0 (or .00)
    if text in _GENDERS:
        return _GENDERS[text]
    raise ValueError("is not a gender (use 男/女, M/F or male/female)")


_CHANNEL_ALIASES = {
    "微信": Channel.WECHAT_OA, "公众号": Channel.WECHAT_OA, "微信公众号": Channel.WECHAT_OA, "服务号": Channel.WECHAT_OA,
    "朋友圈": Channel.WECHAT_OA, "视频号": Channel.WECHAT_OA,
    "企业微信": Channel.WECOM, "企微": Channel.WECOM, "抖音": Channel.DOUYIN, "百度": Channel.BAIDU,
    "小红书": Channel.XIAOHONGSHU, "红书": Channel.XIAOHONGSHU, "xhs": Channel.XIAOHONGSHU,
    "官网": Channel.WEBSITE, "网站": Channel.WEBSITE, "小程序": Channel.MINI_PROGRAM,
    "美团": Channel.MEITUAN, "大众点评": Channel.MEITUAN, "点评": Channel.MEITUAN,
    "电话": Channel.PHONE_CALL, "来电": Channel.PHONE_CALL, "短信": Channel.SMS,
    "社区活动": Channel.COMMUNITY_EVENT, "社区": Channel.COMMUNITY_EVENT, "活动": Channel.COMMUNITY_EVENT,
    "地推": Channel.COMMUNITY_EVENT, "义诊": Channel.COMMUNITY_EVENT,
    "转介绍": Channel.REFERRAL, "老带新": Channel.REFERRAL, "介绍": Channel.REFERRAL, "推荐": Channel.REFERRAL,
    "自然到店": Channel.WALK_IN, "到店": Channel.WALK_IN, "进店": Channel.WALK_IN, "路过": Channel.WALK_IN,
    "导入": Channel.IMPORT, "其他": Channel.OTHER, "其它": Channel.OTHER,
}
# Labels that name no channel but are common in exports (an unknown source, "online", an existing patient): other,
# when they are the whole label. Not searched for inside longer labels: 老客户推荐 is a referral.
_CHANNEL_VAGUE = {"未知": Channel.OTHER, "不详": Channel.OTHER, "不明": Channel.OTHER, "网络": Channel.OTHER,
                  "网上": Channel.OTHER, "老客户": Channel.OTHER, "老顾客": Channel.OTHER, "老患者": Channel.OTHER,
                  "unknown": Channel.OTHER}
# Longest first, so that at one position 企业微信 wins over 微信 and 大众点评 over 点评.
_CHANNEL_WORDS = sorted(_CHANNEL_ALIASES, key=len, reverse=True)


def channel_parse(raw) -> str:
    """A channel code or a Chinese/English label → Channel value; unknown labels are an error. A compound label
    from another system (抖音团购, 美团点评, 朋友介绍, 企业微信好友) goes by the channel word in it that comes
    first: the platform before what was done there (抖音活动 is Douyin)."""
    text = to_halfwidth(str(raw or "")).strip()
    if not text:
        raise ValueError("channel is empty")
    lowered = text.lower().replace(" ", "_").replace("-", "_")
    if lowered in Channel.values:
        return lowered
    for value, label in Channel.choices:
        if str(label).lower() == text.lower():
            return value
    if text in _CHANNEL_ALIASES:
        return _CHANNEL_ALIASES[text]
    if text.lower() in _CHANNEL_VAGUE:
        return _CHANNEL_VAGUE[text.lower()]
    found = [(text.lower().find(word), -len(word), word) for word in _CHANNEL_WORDS if word in text.lower()]
    if found:
        return _CHANNEL_ALIASES[min(found)[2]]
    raise ValueError(f"is not a known channel ({', '.join(Channel.values)} or 微信/抖音/小红书/转介绍/…)")


_MAX_VARIANTS = 8


# Surnames read otherwise than their character's usual reading, with the readings people type for them: the surname
# reading first (单 is Shàn as a surname), then the everyday ones a front desk types as well (dan). Every other first
# character takes its usual reading only: all of pypinyin's readings put 王 under "yu" and 邓 under "shan", so a
# search for 于 or 单 drowned in the commonest surnames.
SURNAME_READINGS = {
    "曾": ["zeng", "ceng"], "单": ["shan", "dan", "chan"], "解": ["xie", "jie"], "区": ["ou", "qu"],
    "仇": ["qiu", "chou"], "朴": ["piao", "pu"], "查": ["zha", "cha"], "覃": ["qin", "tan"], "盖": ["ge", "gai"],
    "缪": ["miao", "mou", "miu"], "乐": ["yue", "le"], "尉": ["yu", "wei"], "种": ["chong", "zhong"],
    "繁": ["po", "fan"], "员": ["yun", "yuan"], "翟": ["zhai", "di"], "召": ["shao", "zhao"], "冼": ["xian"],
    "洗": ["xian", "xi"], "那": ["na", "nuo"], "句": ["gou", "ju"], "秘": ["bi", "mi"], "隗": ["wei", "kui"],
    "郇": ["xun", "huan"], "折": ["she", "zhe"], "奇": ["ji", "qi"], "车": ["che", "ju"], "宿": ["su", "xiu"],
    "藏": ["zang", "cang"], "柏": ["bai", "bo"], "重": ["chong", "zhong"], "莘": ["shen", "xin"],
    "谌": ["chen", "shen"], "费": ["fei", "bi"], "祭": ["zhai", "ji"], "万": ["wan", "mo"], "长": ["zhang", "chang"],
    "参": ["shen", "can"], "都": ["du", "dou"], "卜": ["bu"], "阚": ["kan"], "燕": ["yan"], "任": ["ren"],
    "华": ["hua"], "纪": ["ji"], "缴": ["jiao", "zhuo"], "蕃": ["pi", "fan"], "粘": ["nian", "zhan"],
}


def surname_readings(first: str) -> list[str]:
    """The readings a name's first character is searched by (SURNAME_READINGS, else its usual reading)."""
    if first in SURNAME_READINGS:
        return SURNAME_READINGS[first]
    return [r for r in pinyin(first, style=Style.NORMAL)[0] if r.isascii()]


def pinyin_keys(name: str) -> tuple[list[str], list[str]]:
    """Search keys for a name: (initials variants, full-pinyin variants), lower-case ASCII.

    The surname takes its surname readings (SURNAME_READINGS: 曾 zeng/ceng, 单 shan/dan/chan, 解 xie/jie), because
    the contextual default is wrong for surnames; the given name uses the phrase-aware default reading.
    """
    name = to_halfwidth(name or "").strip()
    if not name:
        return [], []
    first, rest = name[0], name[1:]
    first_readings = surname_readings(first)
    if not first_readings or not first_readings[0].isalpha():
        first_readings = [first.lower()] if first.isascii() else [first]
    rest_syllables = [s.lower() for s in lazy_pinyin(rest, errors=lambda chars: list(chars))]
    rest_syllables = [s for s in rest_syllables if s.strip() and s.isascii() and s.isalnum()]
    if name.isascii():
        words = re.findall(r"[a-z0-9]+", name.lower())
        return ["".join(w[0] for w in words)] if words else [], ["".join(words)] if words else []
    initials, full = [], []
    for reading in first_readings[:_MAX_VARIANTS]:
        syllables = [reading.lower(), *rest_syllables]
        ini = "".join(s[0] for s in syllables if s)
        ful = "".join(syllables)
        if ini and ini not in initials:
            initials.append(ini)
        if ful and ful not in full:
            full.append(ful)
    return initials, full


def prefix_upper_bound(prefix: str) -> str:
    """The smallest string greater than every string starting with `prefix` (for index range scans)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


__all__ = [
    "phone_normalize", "phone_mask", "phones_masked", "identity_mask", "name_masked", "name_han_gaps_drop", "phone_display", "date_parse", "birthday_parse",
    "gender_parse", "channel_parse", "pinyin_keys", "prefix_upper_bound", "to_halfwidth", "product",
]
