"""Navigation shared by every staff page; later capabilities append their entries here.

It lives in `clinics` because what a staff member sees depends on their role's permissions: an entry that
would answer 403 is not shown (a test walks every entry for every role and compares with the page's answer).
"""

from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

from smileloop.clinics.enums import ROLE_PERMISSIONS, Perm
from smileloop.clinics.selectors import active_staff_of

# (URL name, label, key, permission the page requires or None). A capability adds one line; entries whose URL
# does not resolve are skipped.
NAV_ITEMS = [
    ("customers:list", _("Customers"), "customers", None),
    ("customers:merge_candidates", _("Duplicates"), "merge", None),
    ("imports:upload", _("Import"), "imports", Perm.IMPORT),
    ("membership:plans", _("Membership"), "membership", Perm.CONFIG),
    ("loyalty:config", _("Loyalty"), "loyalty", Perm.CONFIG),  # loyalty app (issue 3)
    ("checkout:codes", _("Checkout"), "checkout", None),  # card/voucher look-up; bills start on the 360 page
    ("followups:inbox", _("My tasks"), "followups", None),  # issue 4 §5
    ("followups:board", _("Team board"), "followups_board", Perm.TASK_BOARD),
    ("segments:list", _("Segments"), "segments", Perm.SEGMENT_VIEW),  # issue 4 §3
    ("tagging:list", _("Tags"), "tagging", None),  # issue 4 §2
    ("lifecycle:funnel", _("Funnel"), "lifecycle", None),  # issue 4 §4
    ("surveys:nps", _("Satisfaction"), "surveys", Perm.SURVEY_VIEW),  # issue 4 §6
    ("clinics:audit_log", _("Audit log"), "audit", Perm.CUSTOMER_PRIVACY),  # PIPL: who saw which personal data
]


def navigation(request):
    # The role's permissions only: the full Scope would also read the staff member's clinics, a query per page.
    staff = active_staff_of(getattr(request, "user", None))
    permissions = ROLE_PERMISSIONS.get(staff.role, frozenset()) if staff is not None else frozenset()
    if not permissions or staff.password_change_required:
        # the login page, a login without an active staff profile, or one that must first choose its own password
        # (every entry would lead back to the password change: clinics.middleware)
        return {"nav_items": []}
    items = []
    for url_name, label, key, permission in NAV_ITEMS:
        if permission is not None and permission not in permissions:
            continue
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
