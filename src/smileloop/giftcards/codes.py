"""Card and voucher codes: unguessable (12 random symbols of 31 ≈ 59 bits, from `secrets`) and easy to
type and read aloud: no 0/O, 1/I/L; grouped XXXX-XXXX-XXXX; input is forgiving (case, spaces, dashes)."""

import re
import secrets
import unicodedata

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 12
_NOT_ALNUM = re.compile(r"[^0-9A-Z]")


def code_new() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return code_format(raw)


def code_format(raw: str) -> str:
    return "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def code_normalize(text: str) -> str | None:
    """What a person typed → the stored form, or None when it cannot be a code. NFKC first: a Chinese input method
    in full-width mode types ＡＢＣＤ－２３４５ (U+FF21…), which is the same code."""
    raw = _NOT_ALNUM.sub("", unicodedata.normalize("NFKC", text or "").upper())
    if len(raw) != LENGTH or any(ch not in ALPHABET for ch in raw):
        return None
    return code_format(raw)


def code_mask(code: str) -> str:
    """For lists that should not expose a usable code: ABCD-••••-WXYZ."""
    return f"{code[:4]}-••••-{code[-4:]}" if len(code) == 14 else code
