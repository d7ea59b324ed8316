from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class FollowupsConfig(AppConfig):
    name = "smileloop.followups"
    label = "followups"
    verbose_name = _("Follow-ups")

    def ready(self):
        from smileloop.customers.privacy import erase_hook_register
        from smileloop.customers.sections import section_register
        from smileloop.customers.services import merge_hook_register
        from smileloop.customers.timeline import timeline_templates_register
        from smileloop.followups.enums import Outcome
        from smileloop.followups.selectors import customer_section
        from smileloop.followups.services import followups_merge_hook
        from smileloop.followups.services.playbooks import segment_users
        from smileloop.followups.services.tasks import (
            TASK_ASSIGNED,
            TASK_DONE,
            TASK_DONE_NOTE,
            TASK_OUTCOME,
            TASK_REASSIGNED,
            TASK_TAKEN_OVER,
            followups_erase_hook,
        )
        from smileloop.segments.services import segment_user_register

        section_register("followups", customer_section)
        timeline_templates_register(TASK_OUTCOME, TASK_DONE_NOTE, TASK_DONE, labels={"outcome": lambda code: Outcome(code).label})
        timeline_templates_register(TASK_TAKEN_OVER, TASK_REASSIGNED, TASK_ASSIGNED)
        merge_hook_register(followups_merge_hook)
        erase_hook_register(followups_erase_hook)
        segment_user_register(segment_users)
