from django import template

from smileloop.customers.normalize import phone_likes_masked
from smileloop.imports.messages import message_display

register = template.Library()


@register.filter
def import_message(message) -> str:
    """An import error message in the reader's language (imports.messages)."""
    return message_display(str(message))


@register.filter
def phone_likes_hidden(text) -> str:
    """A rejected cell of the file, or a problem quoting one, with its mobiles and numbers nearly a mobile masked
    (139****2222) for every reader, as the preview's phone column and the 360 page's phone are: the full numbers are
    in the errors CSV, an audited export (imports.views.errors_csv)."""
    return phone_likes_masked(str(text)) if text else text
