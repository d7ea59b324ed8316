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
    """What the system wrote (stage changes, visits, follow-up outcomes, surveys, imports, merges) in the reader's
    language; what people wrote as written (customers.timeline). A call, chat, SMS or note is what a person wrote
    unless a service wrote it, which it says in `data` (a follow-up outcome, a family member added): a note
    "visit completed" stays as typed."""
    if interaction.kind in WRITTEN_BY_PEOPLE and not interaction.data:
        return interaction.text
    return timeline_text(interaction.text)


@register.filter
def sentence(text: str) -> str:
    """A sentence the system stored in English (customers.timeline), in the reader's language; other text as is."""
    return timeline_text(text)


WRITTEN_BY_PEOPLE = {InteractionKind.CALL, InteractionKind.CHAT, InteractionKind.SMS, InteractionKind.NOTE}


@register.filter
def full_phone(e164: str | None) -> str:
    return phone_display(e164)


@register.filter
def yuan(fen: int | None) -> str:
    """1234550 → '12,345.50' (no currency sign; templates add ¥)."""
    return yuan_grouped(fen)
