from django import template

from smileloop.imports.messages import message_display

register = template.Library()


@register.filter
def import_message(message) -> str:
    """An import error message in the reader's language (imports.messages)."""
    return message_display(str(message))
