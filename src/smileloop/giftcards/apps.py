from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GiftcardsConfig(AppConfig):
    name = "smileloop.giftcards"
    label = "giftcards"
    verbose_name = _("Gift cards and vouchers")

    def ready(self):
        from smileloop.customers.sections import section_register
        from smileloop.giftcards.selectors import giftcards_section
        from smileloop.giftcards.services import FRIEND_CARD_ACTION, friend_card_issue_for_reveal
        from smileloop.membership.services import reveal_action_register

        section_register("giftcards", giftcards_section)
        reveal_action_register(FRIEND_CARD_ACTION, friend_card_issue_for_reveal)
