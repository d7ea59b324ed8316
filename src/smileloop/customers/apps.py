from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "smileloop.customers"
    label = "customers"
    verbose_name = "Customers"
