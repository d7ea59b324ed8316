from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "smileloop.ledger"
    label = "ledger"
    verbose_name = "Ledger"

    def ready(self):
        from smileloop.customers.services import merge_hook_register
        from smileloop.ledger.memos import memo_templates_install
        from smileloop.ledger.services import accounts_merge

        merge_hook_register(accounts_merge)
        memo_templates_install()
