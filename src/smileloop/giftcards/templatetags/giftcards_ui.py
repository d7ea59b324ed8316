"""Display filters for gift cards and vouchers on staff pages."""

from django import template

from smileloop.giftcards.sentences import card_detail_display

register = template.Library()


@register.filter
def card_detail(detail: str) -> str:
    """An event's or movement's detail in the reader's language; codes and names as stored."""
    return card_detail_display(detail or "")
