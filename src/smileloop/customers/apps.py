from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CustomersConfig(AppConfig):
    name = "smileloop.customers"
    label = "customers"
    verbose_name = _("Customers")

    def ready(self):
        from smileloop.core.audit import audit_detail_codes_register
        from smileloop.customers.enums import IdentityKind
        from smileloop.customers.timeline import timeline_templates_install

        timeline_templates_install()
        audit_detail_codes_register("kinds", dict(IdentityKind.choices))  # identity.reveal's count by kind
