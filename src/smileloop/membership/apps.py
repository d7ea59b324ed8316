from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MembershipConfig(AppConfig):
    name = "smileloop.membership"
    label = "membership"
    verbose_name = _("Membership")

    def ready(self):
        from smileloop.customers.enums import Relation
        from smileloop.customers.privacy import erase_hook_register
        from smileloop.customers.sections import section_register
        from smileloop.customers.services import merge_after_hook_register, merge_hook_register
        from smileloop.customers.timeline import timeline_templates_register
        from smileloop.membership.reasons import STAGE_CAUSES
        from smileloop.membership.services.family import TIMELINE_TEMPLATES, membership_erase_hook
        from smileloop.membership.services.merge import membership_after_merge, membership_merge_hook
        from smileloop.membership.views import member_card_load

        section_register("membership", member_card_load)
        merge_hook_register(membership_merge_hook)
        merge_after_hook_register(membership_after_merge)
        erase_hook_register(membership_erase_hook)
        timeline_templates_register(*STAGE_CAUSES)
        timeline_templates_register(*TIMELINE_TEMPLATES, labels={"relation": lambda code: Relation(code).label})
