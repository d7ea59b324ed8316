from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GiftcardsConfig(AppConfig):
    name = "smileloop.giftcards"
    label = "giftcards"
    verbose_name = _("Gift cards and vouchers")

    def ready(self):
        from smileloop.customers.privacy import erase_check_register, erase_hook_register
        from smileloop.customers.sections import section_register
        from smileloop.giftcards.selectors import giftcards_section
        from smileloop.giftcards.services import (
            FRIEND_CARD_ACTION,
            friend_card_issue_for_reveal,
            giftcards_erase_hook,
            giftcards_erase_obligations,
        )
        from smileloop.membership.services import reveal_action_register

        section_register("giftcards", giftcards_section)
        erase_hook_register(giftcards_erase_hook)
        erase_check_register(giftcards_erase_obligations)
        reveal_action_register(FRIEND_CARD_ACTION, friend_card_issue_for_reveal)
