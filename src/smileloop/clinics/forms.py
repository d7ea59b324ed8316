"""The login form: Django's, saying so when a lockout refused the login (clinics.auth, clinics.lockout) instead of
"wrong username or password", which would send a locked-out colleague to retype it again and again. And one's own
password change."""

import math

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext


def lockout_message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return ngettext(
        "Too many failed logins. Logging in with this username or from this network is paused for %(minutes)d "
        "minute; try again then, or ask your chain administrator to unlock it.",
        "Too many failed logins. Logging in with this username or from this network is paused for %(minutes)d "
        "minutes; try again then, or ask your chain administrator to unlock it.",
        minutes) % {"minutes": minutes}


class LockoutMessageMixin:
    def get_invalid_login_error(self):
        wait = getattr(self.request, "login_lockout_wait", 0)
        if wait:
            return ValidationError(lockout_message(wait), code="locked_out")
        return super().get_invalid_login_error()

    @property
    def locked_out(self) -> bool:
        return any(error.code == "locked_out" for error in self.non_field_errors().as_data())


class StaffAuthenticationForm(LockoutMessageMixin, AuthenticationForm):
    pass


def _validators_help() -> str:
    """Django's password rules as one sentence after another (its HTML list is an admin widget's)."""
    return " ".join(password_validation.password_validators_help_texts())


class PasswordChangeForm(forms.Form):
    """One's own new password (services.staff_password_change checks the current one, with the lockout, and the
    validators): the fields of Django's PasswordChangeForm, the check in the service."""

    old_password = forms.CharField(label=_("Current password"), strip=False, widget=forms.PasswordInput(
        attrs={"autocomplete": "current-password", "autofocus": True}))
    new_password1 = forms.CharField(label=_("New password"), strip=False, widget=forms.PasswordInput(
        attrs={"autocomplete": "new-password"}), help_text=lazy(_validators_help, str)())
    new_password2 = forms.CharField(label=_("New password (again)"), strip=False, widget=forms.PasswordInput(
        attrs={"autocomplete": "new-password"}))

    def clean(self):
        cleaned = super().clean()
        first, second = cleaned.get("new_password1"), cleaned.get("new_password2")
        if first and second and first != second:
            self.add_error("new_password2", _("The two passwords differ."))
        return cleaned
