"""The ranges every integer input must fit: database keys are signed 64-bit, and amounts are bounded far below
that so that sums and products of them (lines × quantities, running totals) never overflow a bigint."""

BIGINT_MAX = 2**63 - 1
# 10 billion yuan: above any bill, top-up or fee, and 50 lines × 10 000 units of it still fit in a bigint.
MAX_FEN = 10**12
MAX_POINTS = 10**12
# Paging past a billion rows is a client bug, and offset + limit must stay a bigint.
MAX_OFFSET = 10**9


def pk_from_text(text: str) -> int | None:
    """'42' → 42; None for anything that cannot be a primary key (not digits, 0, ≥ 2**63): comparing such a
    number with a key column fails on SQLite ('Python int too large to convert to SQLite INTEGER')."""
    text = str(text).strip()
    if not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if 0 < value <= BIGINT_MAX else None
