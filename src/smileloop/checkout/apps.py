from django.apps import AppConfig


class CheckoutConfig(AppConfig):
    name = "smileloop.checkout"
    label = "checkout"
    verbose_name = "Checkout"

    def ready(self):
        from smileloop.checkout.services.refund import settled_order_refund_where
        from smileloop.visits.services import refund_owner_register

        refund_owner_register(settled_order_refund_where)
