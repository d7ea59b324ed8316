from django import template

from smileloop.core.money import discount_words
from smileloop.membership.reasons import reason_display, reveal_detail_display
from smileloop.visits.enums import Category

register = template.Library()


@register.filter
def zhe(discount_bp) -> str:
    """1200 basis points off → '12% off', in Chinese '88折·优惠 12%' (`core.money.discount_words`)."""
    if discount_bp is None:
        return ""
    return discount_words(discount_bp)


@register.filter
def category_labels(values) -> str:
    labels = dict(Category.choices)
    return ", ".join(str(labels.get(v, v)) for v in values or []) or "—"


@register.filter
def reveal_detail(detail: str) -> str:
    """Why a hidden benefit was revealed, in the active language (typed details as typed)."""
    return reveal_detail_display(detail)


@register.filter
def event_reason(event) -> str:
    """A membership event's reason in the active language (membership.reasons)."""
    return reason_display(event)
