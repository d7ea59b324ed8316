from django import template
from django.utils.translation import gettext as _

from smileloop.membership.reasons import reason_display, reveal_detail_display
from smileloop.visits.enums import Category

register = template.Library()


@register.filter
def zhe(discount_bp) -> str:
    """1200 basis points off → '88折 (12% off)'; the form staff and patients in China read."""
    if discount_bp is None:
        return ""
    pay = 10000 - int(discount_bp)
    tenths = f"{pay / 1000:g}".replace(".", "") if pay % 100 == 0 else f"{pay / 100:g}"
    percent = f"{int(discount_bp) / 100:g}"
    return _("%(zhe)s折 (%(percent)s%% off)") % {"zhe": tenths, "percent": percent}


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
