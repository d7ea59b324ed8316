"""Navigation shared by every staff page; later capabilities append their entries here."""

from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

NAV_ITEMS = [
    ("customers:list", _("Customers"), "customers"),
    ("customers:merge_candidates", _("Duplicates"), "merge"),
    ("imports:upload", _("Import"), "imports"),
]


def navigation(request):
    items = []
    for url_name, label, key in NAV_ITEMS:
        try:
            items.append({"url": reverse(url_name), "label": label, "key": key})
        except NoReverseMatch:
            continue
    return {"nav_items": items}
