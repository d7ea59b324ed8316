"""Display filters for staff pages: masked phones and money in yuan (stored as integer fen)."""

from django import template

from smileloop.core.money import yuan_grouped
from smileloop.customers.enums import InteractionKind
from smileloop.customers.normalize import phone_display, phone_mask
from smileloop.customers.timeline import timeline_text

register = template.Library()


@register.filter
def masked_phone(e164: str | None) -> str:
    """+8613800138000 → 138****8000."""
    return phone_mask(e164)


@register.filter
def interaction_text(interaction) -> str:
    """What the system wrote (stage changes, visits) in the reader's language; what people wrote as written."""
    if interaction.kind in (InteractionKind.SYSTEM, InteractionKind.VISIT):
        return timeline_text(interaction.text)
    return interaction.text


@register.filter
def full_phone(e164: str | None) -> str:
    return phone_display(e164)


@register.filter
def yuan(fen: int | None) -> str:
    """1234550 → '12,345.50' (no currency sign; templates add ¥)."""
    return yuan_grouped(fen)
