"""The staff login page: Django's LoginView with the lockout's message (clinics.forms), a 429 while locked out, and a
word on why the last session ended (core.middleware.SessionTimeoutMiddleware)."""

from django.conf import settings
from django.contrib.auth.views import LoginView
from django.utils.translation import gettext as _

from smileloop.clinics.forms import StaffAuthenticationForm
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
