from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LifecycleConfig(AppConfig):
    name = "smileloop.lifecycle"
    label = "lifecycle"
    verbose_name = _("Lifecycle stages")

    def ready(self):
        from smileloop.customers.services import stage_revival_cutoff_register
        from smileloop.customers.timeline import timeline_templates_register
        from smileloop.lifecycle.services import TIMELINE_TEMPLATES, family_card_ended_stage, revival_cutoff
        from smileloop.membership.services.family import family_unbound_hook_register

        timeline_templates_register(*TIMELINE_TEMPLATES)
        stage_revival_cutoff_register(revival_cutoff)
        family_unbound_hook_register(family_card_ended_stage)
