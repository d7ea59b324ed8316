from django.apps import AppConfig


class CheckoutConfig(AppConfig):
    name = "smileloop.checkout"
    label = "checkout"
    verbose_name = "Checkout"
