from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "smileloop.imports"
    label = "imports"

    def ready(self):
        from smileloop.imports.timeline import timeline_templates_install

        timeline_templates_install()
