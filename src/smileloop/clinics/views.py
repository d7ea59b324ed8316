"""The staff login page: Django's LoginView with the lockout's message (clinics.forms), a 429 while locked out, and a
word on why the last session ended (core.middleware.SessionTimeoutMiddleware). One's own password change
(`password_change`). And the Django admin's login and password-change URLs, which are no forms of their own
(`admin_login`, `admin_password_change`)."""

import re

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.views import LoginView, redirect_to_login
from django.http import JsonResponse
from django.shortcuts import redirect, render, resolve_url
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from django.views.decorators.debug import sensitive_post_parameters

from smileloop.clinics import services
from smileloop.clinics.enums import CHAIN_ROLES, PERM_LABELS, ROLE_PERMISSIONS, Role
from smileloop.clinics.forms import PasswordChangeForm, StaffAuthenticationForm
from smileloop.clinics.lockout import trusted_device
from smileloop.clinics.models import Staff
from smileloop.clinics.selectors import active_staff_of
from smileloop.clinics.web import client_ip, safe_next, staff_login_required
from smileloop.core.api import error_body
from smileloop.core.errors import ValidationFailed
from smileloop.core.middleware import SESSION_ENDED


class StaffLoginView(LoginView):
    template_name = "registration/login.html"
    form_class = StaffAuthenticationForm

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        ended = self.request.session.pop(SESSION_ENDED, None)
        if ended == "idle":
            context["session_ended"] = _("You were logged out after %(minutes)d minutes without activity.") % {
                "minutes": settings.SESSION_IDLE_MINUTES}
        elif ended == "expired":
            context["session_ended"] = _("Your session has ended. Please log in again.")
        return context

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.locked_out:
            response.status_code = 429
        return response


def admin_login(request):
    """The Django admin's login URL (config/urls.py routes /admin/login/ here; the admin sends every request it
    refuses to it). There is one login form, ours (/login/, with the lockout and its audit): this view never takes a
    password, whatever is posted.

    - anonymous: to our login page, coming back to the admin page asked for;
    - a login the admin lets in (a chain admin, the operator): to that page, as Django's own login view does;
    - any other login (a front desk that followed a colleague's link): a 403 in the staff layout and the reader's
      language, saying who the admin is for, with the way back to the workspace, instead of a second login form
      that asks them to log in again."""
    target = safe_next(request, request.GET.get("next"), default=reverse("admin:index"))
    if not request.user.is_authenticated:
        return redirect_to_login(target, resolve_url(settings.LOGIN_URL))
    if admin.site.has_permission(request):
        return redirect(target)
    return TemplateResponse(request, "clinics/admin_forbidden.html", status=403)


def admin_password_change(request):
    """The Django admin's own password change (config/urls.py routes /admin/password_change/ here; the admin's
    "Change password" link names it). Its form took guesses at the current password without the login lockout and
    changed it without an audit row: the link leads to our page (`password_change`), which comes back to the admin.
    Whatever is posted here changes nothing."""
    return redirect_to_login(reverse("admin:index"), reverse("account_password"))


@sensitive_post_parameters("old_password", "new_password1", "new_password2")
@staff_login_required
def password_change(request):
    """Change one's own password (services.staff_password_change). Every staff member and the operator may; one with
    a temporary password is sent here first (clinics.middleware) and back to the page they asked for after."""
    staff = getattr(request.user, "staff", None)
    required = bool(staff and staff.password_change_required)
    target = safe_next(request, request.POST.get("next") or request.GET.get("next"), default="/")
    form = PasswordChangeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.staff_password_change(
                user=request.user, old_password=form.cleaned_data["old_password"],
                new_password=form.cleaned_data["new_password1"], ip_address=client_ip(request),
                device=trusted_device(request, request.user.get_username()))
        except ValidationFailed as error:
            for field_error in error.errors:
                form.add_error(field_error.field if field_error.field in form.fields else None,
                               _(field_error.message))  # the service's messages are marked gettext_noop
        else:
            update_session_auth_hash(request, request.user)  # this browser stays logged in; the others end
            messages.success(request, _("Your password was changed."))
            return redirect(target)
    return TemplateResponse(request, "clinics/password_change.html",
                            {"form": form, "required": required, "next": target},
                            status=422 if form.errors else 200)


_MISSING = re.compile(r"missing permission (\S+)")  # clinics.web.require_permission's refusal


def forbidden_advice(staff: Staff, reason: str = "") -> tuple[str, str]:
    """What the 403 page tells this member of staff: what was missing (the permission, when the refusal names one,
    and the roles that have it), and whom to ask. Only a clinic role has a clinic director above it; a director or a
    chain role asks a chain administrator; a chain administrator has every permission of the chain, so a page
    refused to them is one no role of the chain has."""
    role = staff.get_role_display()
    if staff.role == Role.CHAIN_ADMIN:
        return "", _("This page is not available to the chain administrator role. The system operator can help.")
    found = _MISSING.search(reason or "")
    permission = found.group(1) if found and found.group(1) in PERM_LABELS else None
    if permission:
        roles = pgettext("list separator", ", ").join(str(Role(name).label) for name, granted in ROLE_PERMISSIONS.items()
                             if permission in granted)
        need = _("This needs the permission “%(permission)s”, which your role (%(role)s) does not have. Roles "
                 "with it: %(roles)s.") % {"permission": PERM_LABELS[permission], "role": role, "roles": roles}
    else:
        need = _("Your role (%(role)s) may not do this.") % {"role": role}
    if staff.role == Role.CLINIC_DIRECTOR or staff.role in CHAIN_ROLES:
        return need, _("If your role should allow it, ask a chain administrator.")
    return need, _("Ask your clinic director or a chain administrator.")


def permission_denied(request, exception):
    """handler403 (config/urls.py): the 403 page in the staff layout, its advice by the reader's role
    (`forbidden_advice`); an API path answers in the API's error shape."""
    if request.path_info.startswith(settings.API_PATH_PREFIX):
        return JsonResponse(error_body("forbidden", str(exception) or "Not allowed"), status=403)
    staff = active_staff_of(request.user)
    need, ask = forbidden_advice(staff, str(exception)) if staff is not None else ("", "")
    return render(request, "403.html", {"exception": str(exception), "forbidden_need": need,
                                        "forbidden_ask": ask}, status=403)
