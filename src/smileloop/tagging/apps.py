from django.apps import AppConfig


class TaggingConfig(AppConfig):
    name = "smileloop.tagging"
    label = "tagging"
    verbose_name = "Tags"

    def ready(self):
        from smileloop.customers.sections import section_register
        from smileloop.customers.services import merge_hook_register
        from smileloop.tagging.selectors import tags_section
        from smileloop.tagging.services import tagging_merge_hook

        section_register("tags", tags_section)
        merge_hook_register(tagging_merge_hook)
