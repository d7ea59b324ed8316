from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LedgerConfig(AppConfig):
    name = "smileloop.ledger"
    label = "ledger"
    verbose_name = _("Ledger")

    def ready(self):
        from smileloop.customers.privacy import erase_check_register
        from smileloop.customers.services import merge_hook_register
        from smileloop.ledger.memos import memo_templates_install
        from smileloop.ledger.services import accounts_merge, erase_obligations

        merge_hook_register(accounts_merge)
        erase_check_register(erase_obligations)
        memo_templates_install()
