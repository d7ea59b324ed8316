"""The login form: Django's, saying so when a lockout refused the login (clinics.auth, clinics.lockout) instead of
"wrong username or password", which would send a locked-out colleague to retype it again and again."""

import math

from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
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
