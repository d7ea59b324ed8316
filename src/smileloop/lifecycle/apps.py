from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    name = "smileloop.lifecycle"
    label = "lifecycle"
    verbose_name = "Lifecycle stages"
