from django.apps import AppConfig


class GiftcardsConfig(AppConfig):
    name = "smileloop.giftcards"
    label = "giftcards"
    verbose_name = "Gift cards and vouchers"

    def ready(self):
        from smileloop.customers.sections import section_register
        from smileloop.giftcards.selectors import giftcards_section

        section_register("giftcards", giftcards_section)
