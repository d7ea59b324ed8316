from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ClinicsConfig(AppConfig):
    name = "smileloop.clinics"
    label = "clinics"
    verbose_name = _("Clinics and staff")

    def ready(self):
        from django.contrib.auth.signals import user_logged_in

        from smileloop.clinics.selectors import admin_chain_for_user
        from smileloop.core.admin_scope import admin_chain_resolver_register
        from smileloop.core.middleware import session_login_stamp

        # The Django admin asks which chain a (non-superuser) login administers (core.admin_scope).
        admin_chain_resolver_register(admin_chain_for_user)

        # Every login (the staff form, force_login) starts the session's idle and day clocks. Django's
        # own hook for a login, as its last_login update is: no login path can be missed.
        user_logged_in.connect(session_login_stamp, dispatch_uid="smileloop.session_login_stamp")
