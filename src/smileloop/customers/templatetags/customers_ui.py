"""Display filters for staff pages: masked phones and money in yuan (stored as integer fen)."""

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma

from smileloop.core.money import fen_to_yuan
from smileloop.customers.normalize import phone_display, phone_mask

register = template.Library()


@register.filter
def masked_phone(e164: str | None) -> str:
    """+8613800138000 → 138****8000."""
    return phone_mask(e164)


@register.filter
def full_phone(e164: str | None) -> str:
    return phone_display(e164)


@register.filter
def yuan(fen: int | None) -> str:
    """1234550 → '12,345.50' (no currency sign; templates add ¥)."""
    if fen is None:
        return ""
    text = fen_to_yuan(fen)
    whole, _, cents = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{intcomma(int(whole.lstrip('-')), use_l10n=False)}.{cents}"
