from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "smileloop.imports"
    label = "imports"

    def ready(self):
        from smileloop.customers.privacy import erase_hook_register
        from smileloop.imports.services.erasure import imports_erase_hook
        from smileloop.imports.timeline import timeline_templates_install

        timeline_templates_install()
        erase_hook_register(imports_erase_hook)
