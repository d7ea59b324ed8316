from django.apps import AppConfig


class FollowupsConfig(AppConfig):
    name = "smileloop.followups"
    label = "followups"
    verbose_name = "Follow-ups"

    def ready(self):
        from smileloop.customers.sections import section_register
        from smileloop.customers.services import merge_hook_register
        from smileloop.followups.selectors import customer_section
        from smileloop.followups.services import followups_merge_hook

        section_register("followups", customer_section)
        merge_hook_register(followups_merge_hook)
