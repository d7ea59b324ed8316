from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LifecycleConfig(AppConfig):
    name = "smileloop.lifecycle"
    label = "lifecycle"
    verbose_name = _("Lifecycle stages")

    def ready(self):
        from smileloop.customers.services import stage_revival_cutoff_register
        from smileloop.customers.timeline import timeline_templates_register
        from smileloop.lifecycle.services import TIMELINE_TEMPLATES, revival_cutoff

        timeline_templates_register(*TIMELINE_TEMPLATES)
        stage_revival_cutoff_register(revival_cutoff)
