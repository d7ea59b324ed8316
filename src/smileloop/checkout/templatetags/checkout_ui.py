from django import template

from smileloop.checkout.labels import bill_label_display, tender_display

register = template.Library()


@register.filter
def bill_label(label: str) -> str:
    """A bill's step or tender label in the reader's language (checkout.labels)."""
    return bill_label_display(label or "")


@register.filter
def tender_name(tender_id: str, ref: str = "") -> str:
    """A tender ('giftcard:ABCD-…', or its kind with the ref as argument) named in the reader's language."""
    return tender_display(f"{tender_id}:{ref}" if ref else tender_id or "")
