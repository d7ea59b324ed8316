from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LoyaltyConfig(AppConfig):
    name = "smileloop.loyalty"
    label = "loyalty"
    verbose_name = _("Loyalty")

    def ready(self):
        from smileloop.customers.privacy import erase_check_register
        from smileloop.customers.sections import section_register
        from smileloop.customers.services import merge_hook_register
        from smileloop.customers.timeline import timeline_templates_register
        from smileloop.ledger.memos import fen_label
        from smileloop.loyalty.memos import memos_register
        from smileloop.loyalty.selectors import topup_total_fen
        from smileloop.loyalty.services import loyalty_merge_hook, package_order_refund_where
        from smileloop.loyalty.services.cancel import (
            CANCELLED,
            CANCELLED_SHOWN,
            TIMELINE_TEMPLATES,
            package_bill_refund_decision,
            package_bill_refund_follow,
        )
        from smileloop.loyalty.services.privacy import packages_erase_obligations
        from smileloop.loyalty.views import loyalty_card_load
        from smileloop.membership.services import topup_total_provider_register
        from smileloop.visits.services import (
            refund_decision_register,
            refund_follower_register,
            refund_owner_register,
        )

        section_register("loyalty", loyalty_card_load)
        merge_hook_register(loyalty_merge_hook)
        topup_total_provider_register(topup_total_fen)
        memos_register()
        # A package's bill is refunded by cancelling the package (which ends its entitlements too), not on its own.
        refund_owner_register(package_order_refund_where)
        # Once it may be refunded there (over or cancelled), the points its bill earned go back with the money.
        refund_follower_register(package_bill_refund_follow)
        # … and needs payment.refund there (money back for a package is a director's decision).
        refund_decision_register(package_bill_refund_decision)
        # A package still in force would refund its holder on cancelling: an erasure waits for that, or a forfeit.
        erase_check_register(packages_erase_obligations)
        timeline_templates_register(*TIMELINE_TEMPLATES, labels={"refund_fen": fen_label},
                                    shown={CANCELLED: CANCELLED_SHOWN})
