"""Navigation shared by every staff page; later capabilities append their entries here."""

from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

# (URL name, label, key). A capability adds one line; entries whose URL does not resolve are skipped.
NAV_ITEMS = [
    ("customers:list", _("Customers"), "customers"),
    ("customers:merge_candidates", _("Duplicates"), "merge"),
    ("imports:upload", _("Import"), "imports"),
    ("membership:plans", _("Membership"), "membership"),
    ("loyalty:config", _("Loyalty"), "loyalty"),  # loyalty app (issue 3)
    ("checkout:codes", _("Checkout"), "checkout"),  # checkout: card/voucher look-up; bills start on the 360 page
    ("followups:inbox", _("My tasks"), "followups"),  # issue 4 §5
    ("followups:board", _("Team board"), "followups_board"),
    ("segments:list", _("Segments"), "segments"),  # issue 4 §3
    ("tagging:list", _("Tags"), "tagging"),  # issue 4 §2
    ("lifecycle:funnel", _("Funnel"), "lifecycle"),  # issue 4 §4
    ("surveys:nps", _("Satisfaction"), "surveys"),  # issue 4 §6
]


def navigation(request):
    items = []
    for url_name, label, key in NAV_ITEMS:
        try:
            items.append({"url": reverse(url_name), "label": label, "key": key, "active": False})
        except NoReverseMatch:
            continue
    # The entry with the longest URL prefix of the current path is the active one.
    path = getattr(request, "path", "") or ""
    matches = [item for item in items if path.startswith(item["url"])]
    if matches:
        max(matches, key=lambda item: len(item["url"]))["active"] = True
    return {"nav_items": items}
