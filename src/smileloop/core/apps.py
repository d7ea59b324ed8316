from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "smileloop.core"
    label = "core"
    verbose_name = "Core"
