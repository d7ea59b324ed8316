from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LoyaltyConfig(AppConfig):
    name = "smileloop.loyalty"
    label = "loyalty"
    verbose_name = _("Loyalty")

    def ready(self):
        from smileloop.customers.sections import section_register
        from smileloop.customers.services import merge_hook_register
        from smileloop.loyalty.memos import memos_register
        from smileloop.loyalty.selectors import topup_total_fen
        from smileloop.loyalty.services import loyalty_merge_hook
        from smileloop.loyalty.views import loyalty_card_load
        from smileloop.membership.services import topup_total_provider_register

        section_register("loyalty", loyalty_card_load)
        merge_hook_register(loyalty_merge_hook)
        topup_total_provider_register(topup_total_fen)
        memos_register()
