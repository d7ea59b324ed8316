from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SurveysConfig(AppConfig):
    name = "smileloop.surveys"
    label = "surveys"
    verbose_name = _("Satisfaction surveys")

    def ready(self):
        from smileloop.customers.privacy import erase_hook_register
        from smileloop.customers.sections import section_register
        from smileloop.customers.timeline import timeline_templates_register, timeline_text
        from smileloop.followups.script import context_provider_register
        from smileloop.surveys.selectors import survey_links_for_tasks, surveys_section
        from smileloop.surveys.services import (
            ANSWER_TEMPLATES,
            LOW_SCORE,
            survey_tags_label,
            surveys_erase_hook,
        )

        section_register("surveys", surveys_section)
        erase_hook_register(surveys_erase_hook)
        context_provider_register("survey_link", survey_links_for_tasks)
        timeline_templates_register(*ANSWER_TEMPLATES, labels={"tags": survey_tags_label})
        timeline_templates_register(LOW_SCORE, labels={"answer": timeline_text})
