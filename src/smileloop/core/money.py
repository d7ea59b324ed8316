"""Money is integer fen everywhere. These helpers parse and format yuan amounts exactly."""

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.utils.translation import get_language, gettext

from smileloop.core.errors import FieldError, ValidationFailed

AMOUNT_TOO_LARGE = "is far too large an amount"
# Commas only as thousands separators: '12,000.00', never '1,5' or '12,00'.
_GROUPED = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")


def yuan_to_fen(value, *, field: str = "amount") -> int:
    """'12.5' / Decimal('12.50') / 12 → 1250. Refuses floats' imprecision by going through str."""
    if isinstance(value, bool):
        raise ValidationFailed([FieldError(field, "must be a number of yuan", str(value))])
    text = str(value).strip().replace("¥", "").replace("￥", "")
    if "," in text and not _GROUPED.fullmatch(text.strip()):  # '1,5' (a decimal comma?) was read as 15 yuan
        raise ValidationFailed([FieldError(field, "must be a number of yuan", str(value))])
    try:
        amount = Decimal(text.replace(",", ""))
    except (InvalidOperation, ValueError):
        raise ValidationFailed([FieldError(field, "must be a number of yuan", str(value))])
    if not amount.is_finite():
        raise ValidationFailed([FieldError(field, "must be a finite number", str(value))])
    if amount and amount.adjusted() > 16:  # 10^17 yuan and up: far past any bound (1e999999999 overflowed Decimal)
        raise ValidationFailed([FieldError(field, AMOUNT_TOO_LARGE, str(value)[:40])])
    if _beyond_fen(amount):
        raise ValidationFailed([FieldError(field, "has more than 2 decimal places", str(value))])
    return int((amount * 100).to_integral_value(ROUND_HALF_UP))


def _beyond_fen(amount: Decimal) -> bool:
    """Whether a finite amount has a non-zero digit past the second decimal place, read off its digits: `amount * 100`
    is rounded to 28 digits, so '12.3400000000000000000000000001' and '1e-999999999' passed as 1234 and 0 fen."""
    _sign, digits, exponent = amount.as_tuple()
    places = -exponent
    while places > 2 and digits and digits[-1] == 0:  # written zeros: '12.340' is 1234 fen
        digits, places = digits[:-1], places - 1
    return places > 2 and any(digits)


def fen_to_yuan(fen: int | None) -> str:
    """1250 → '12.50' (sign kept)."""
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    fen = abs(int(fen))
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def yuan_grouped(fen: int | None) -> str:
    """1234550 → '12,345.50': how pages and stored sentences show an amount (no currency sign)."""
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    fen = abs(int(fen))
    return f"{sign}{fen // 100:,}.{fen % 100:02d}"


def discount_zhe(bp: int) -> str:
    """Basis points off → the Chinese discount notation (the share paid, in tenths): 1200 → 88折, 1000 → 9折,
    550 → 94.5折."""
    pay = 10000 - int(bp)
    if pay % 1000 == 0:
        return f"{pay // 1000}折"
    if pay % 100 == 0:
        return f"{pay // 100}折"
    return f"{pay / 100:g}折"


def discount_words(bp: int) -> str:
    """A discount in the active language: '12% off' in English; in Chinese the notation staff and patients read
    first, then the same in words ('88折·优惠 12%'). 折 counts what is paid, not what is taken off, and has no
    English equivalent, so it is chosen by language here rather than through the catalogue."""
    off = gettext("%(percent)s%% off") % {"percent": f"{int(bp) / 100:g}"}
    if (get_language() or "").startswith("zh"):
        return f"{discount_zhe(bp)}·{off}"
    return off


# --- splitting money (one rule for checkout's and the orders API's refunds) -----------------------------


def allocate(amount: int, weights: list[int]) -> list[int]:
    """Split `amount` (≥ 0, ≤ sum(weights)) in proportion to non-negative integer weights: floors, then one
    fen each to the largest remainders (ties: the earlier index)."""
    total = sum(weights)
    if amount == 0 or total == 0:
        if amount:
            raise ValueError("cannot allocate a positive amount over zero weights")
        return [0] * len(weights)
    parts = [amount * w // total for w in weights]
    remainders = sorted(range(len(weights)), key=lambda i: (-(amount * weights[i] % total), i))
    for i in remainders[:amount - sum(parts)]:
        parts[i] += 1
    return parts


def money_split(money_fen: int, paid: dict[str, int], refunded: dict[str, int]) -> dict[str, int]:
    """`money_fen` going back over the money methods that `paid` ({method: fen}, in the order paid), in proportion
    to what each has left (`paid` less `refunded`), largest remainder (`allocate`, ties to the method paid first):
    repeated partial refunds never give a method more than it has left, and the one that gives back the rest leaves
    each exactly what it paid. Past what they have left (rows written before refunds were recorded by method), in
    proportion to what each paid. Used by checkout's refunds (`refund_split`) and the orders API's refunds naming
    no method (`visits.services.refund_record`); checkout's migration 0006 repeats it for the rows written before."""
    left = [max(0, fen - refunded.get(m, 0)) for m, fen in paid.items()]
    shares = allocate(min(money_fen, sum(left)), left)
    if money_fen > sum(left):
        shares = [a + b for a, b in zip(shares, allocate(money_fen - sum(left), list(paid.values())), strict=True)]
    return dict(zip(paid, shares, strict=True))


def refund_lines_split(amounts: dict[int, int], by_method: list[tuple[str, int]]) -> list[tuple[str, dict[int, int]]]:
    """Each method's part split over the refunded lines ({line id: fen}, the lines' amounts adding up to the
    methods'): method by method, in proportion to what is still unassigned of each line (`allocate`, lines in id
    order), the last method taking what is left of each line. Both sums are exact: every method's lines add up to
    its part and every line's methods to its amount."""
    ids = sorted(amounts)
    left = [amounts[i] for i in ids]
    out = []
    for n, (method, fen) in enumerate(by_method):
        shares = list(left) if n == len(by_method) - 1 else allocate(fen, left)
        left = [a - b for a, b in zip(left, shares, strict=True)]
        out.append((method, {i: share for i, share in zip(ids, shares, strict=True) if share}))
    return out
