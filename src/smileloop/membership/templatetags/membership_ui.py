from django import template
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from smileloop.core.money import discount_words
from smileloop.membership.forms import FRIEND_CARD_ACTION
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
    """Category codes as their labels, listed the reader's way (口护产品、特价项目; in English with commas)."""
    labels = dict(Category.choices)
    return pgettext("list separator", ", ").join(str(labels.get(v, v)) for v in values or []) or "—"


@register.filter
def discount_exclusions(terms) -> str:
    """What a discount (a tier, a member's discount) is not given on: its excluded categories and, when it excludes
    them, the special-price items — one list ("—" when nothing is excluded, never "—, special-price items")."""
    labels = dict(Category.choices)
    items = [str(labels.get(v, v)) for v in getattr(terms, "excluded_categories", None) or []]
    if getattr(terms, "exclude_special_price", False):
        items.append(str(_("special-price items")))
    return pgettext("list separator", ", ").join(items) or "—"


@register.filter
def benefit_action(code: str) -> str:
    """What a hidden benefit does when revealed, in words ("issue_friend_card" → 赠送亲友储值卡); an action only the API
    knows stays as its code."""
    return str(_("Give a friends-and-family card")) if code == FRIEND_CARD_ACTION else code


@register.filter
def reveal_detail(detail: str) -> str:
    """Why a hidden benefit was revealed, in the active language (typed details as typed)."""
    return reveal_detail_display(detail)


@register.filter
def event_reason(event) -> str:
    """A membership event's reason in the active language (membership.reasons)."""
    return reason_display(event)
