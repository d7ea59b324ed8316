from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "smileloop.customers"
    label = "customers"
    verbose_name = "Customers"

    def ready(self):
        from smileloop.customers.timeline import timeline_templates_install

        timeline_templates_install()
