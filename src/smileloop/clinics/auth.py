"""Login backend for staff: Django's ModelBackend, except that

- loading the logged-in user also loads their staff profile, in the same query. Every staff page reads
  `request.user.staff` (scope, navigation, the user chip), which was a second query on every request;
- a login through the staff login form (the admin has none: clinics.views.admin_login) is refused while its username
  or address is locked out (clinics.lockout), and a wrong password counts towards that. The refusal is left on the request
  (`login_lockout_wait`) for the form to say so (clinics.forms.LockoutMessageMixin): Django's authenticate() only
  answers None. A call without a request (a command, the test client's login()) has no address and is not counted."""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from smileloop.clinics.lockout import (
    login_failure_record,
    login_lockout_wait,
    login_success_record,
    trusted_device,
)
from smileloop.clinics.web import client_ip


class StaffModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None or username is None or password is None:
            return super().authenticate(request, username=username, password=password, **kwargs)
        ip = client_ip(request)
        device = trusted_device(request, username)
        wait = login_lockout_wait(username=username, ip=ip, device=device)
        if wait:
            request.login_lockout_wait = wait
            raise PermissionDenied  # no other backend may let it in either
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            request.login_lockout_wait = login_failure_record(username=username, ip=ip, device=device)
        else:
            login_success_record(username=username, device=device)
            request.login_device_trust = username  # remembered by clinics.lockout.TrustedDeviceMiddleware
        return user

    def get_user(self, user_id):
        user_model = get_user_model()
        try:
            user = user_model._default_manager.select_related("staff").get(pk=user_id)
        except user_model.DoesNotExist:
            return None
        return user if self.user_can_authenticate(user) else None
