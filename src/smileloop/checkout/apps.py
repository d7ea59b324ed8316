from django.apps import AppConfig


class CheckoutConfig(AppConfig):
    name = "smileloop.checkout"
    label = "checkout"
    verbose_name = "Checkout"

    def ready(self):
        from smileloop.checkout.services.refund import (
            package_bill_refund_decision,
            settled_order_refund_where,
        )
        from smileloop.visits.services import refund_decision_register, refund_owner_register

        refund_owner_register(settled_order_refund_where)
        # A package's bill, once the package is no longer in force, is refunded through the orders API only with
        # payment.refund (loyalty's rule; see package_bill_refund_decision).
        refund_decision_register(package_bill_refund_decision)
