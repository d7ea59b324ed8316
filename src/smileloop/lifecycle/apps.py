from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LifecycleConfig(AppConfig):
    name = "smileloop.lifecycle"
    label = "lifecycle"
    verbose_name = _("Lifecycle stages")

    def ready(self):
        from smileloop.customers.timeline import timeline_templates_register
        from smileloop.lifecycle.services import TIMELINE_TEMPLATES

        timeline_templates_register(*TIMELINE_TEMPLATES)
