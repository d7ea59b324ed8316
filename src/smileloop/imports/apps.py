from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "smileloop.imports"
    label = "imports"
