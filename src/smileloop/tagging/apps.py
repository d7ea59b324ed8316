from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TaggingConfig(AppConfig):
    name = "smileloop.tagging"
    label = "tagging"
    verbose_name = _("Tags")

    def ready(self):
        from smileloop.customers.privacy import erase_hook_register
        from smileloop.customers.sections import section_register
        from smileloop.customers.services import merge_hook_register
        from smileloop.customers.timeline import timeline_templates_register
        from smileloop.tagging.selectors import tags_section
        from smileloop.tagging.services import TAG_ADDED, TAG_REMOVED, tagging_erase_hook, tagging_merge_hook

        section_register("tags", tags_section)
        merge_hook_register(tagging_merge_hook)
        erase_hook_register(tagging_erase_hook)
        timeline_templates_register(TAG_ADDED, TAG_REMOVED)
