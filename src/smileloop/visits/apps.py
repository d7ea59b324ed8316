from django.apps import AppConfig


class VisitsConfig(AppConfig):
    name = "smileloop.visits"
    label = "visits"
    verbose_name = "Visits, orders and treatment"
