from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CoreConfig(AppConfig):
    name = "smileloop.core"
    label = "core"
    verbose_name = _("Core")

    def ready(self):
        # Turn every job listed in config/schedules.py (settings.JOB_SCHEDULES) into a huey periodic task,
        # so the consumer started by `smileloop worker` runs them. Paths are resolved only when a job runs.
        from smileloop.core.jobs import jobs_register

        jobs_register()
