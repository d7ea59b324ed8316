"""Money is integer fen everywhere. These helpers parse and format yuan amounts exactly."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from smileloop.core.errors import FieldError, ValidationFailed


def yuan_to_fen(value, *, field: str = "amount") -> int:
    """'12.5' / Decimal('12.50') / 12 → 1250. Refuses floats' imprecision by going through str."""
    if isinstance(value, bool):
        raise ValidationFailed([FieldError(field, "must be a number of yuan", str(value))])
    try:
        amount = Decimal(str(value).strip().replace(",", "").replace("¥", "").replace("￥", ""))
    except (InvalidOperation, ValueError):
        raise ValidationFailed([FieldError(field, "must be a number of yuan", str(value))])
    if not amount.is_finite():
        raise ValidationFailed([FieldError(field, "must be a finite number", str(value))])
    fen = amount * 100
    if fen != fen.to_integral_value():
        raise ValidationFailed([FieldError(field, "has more than 2 decimal places", str(value))])
    return int(fen.to_integral_value(ROUND_HALF_UP))


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
