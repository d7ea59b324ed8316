from django.apps import AppConfig


class TaggingConfig(AppConfig):
    name = "smileloop.tagging"
    label = "tagging"
    verbose_name = "Tags"
