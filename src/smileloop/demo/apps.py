from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "smileloop.demo"
    label = "demo"
