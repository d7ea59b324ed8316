from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class VisitsConfig(AppConfig):
    name = "smileloop.visits"
    label = "visits"
    verbose_name = _("Visits, orders and treatment")

    def ready(self):
        from smileloop.clinics.enums import Perm
        from smileloop.customers.privacy import erase_hook_register
        from smileloop.customers.sections import section_register
        from smileloop.customers.services import merge_hook_register
        from smileloop.customers.timeline import timeline_templates_register
        from smileloop.visits import selectors
        from smileloop.visits.enums import AppointmentStatus
        from smileloop.visits.services import (
            TIMELINE_TEMPLATES,
            VISIT,
            VISIT_OF,
            VISIT_OF_SHOWN,
            VISIT_SHOWN,
            visits_erase_hook,
            visits_merge_hook,
        )

        def health(loader):
            """Health data (plans, procedures) only for roles that may see it (PIPL)."""

            def load(scope, customer, **page):
                return list(loader(customer, **page)) if scope.can(Perm.HEALTH_VIEW) else []

            return load

        def page(loader):
            return lambda scope, customer, **page: list(loader(customer, **page))

        # Appointments, orders and procedures are long histories: the 360 page reads one page at a time.
        section_register("appointments", page(selectors.appointment_list_for_customer), paged=True)
        section_register("orders", page(selectors.order_list_for_customer), paged=True)
        section_register("plans", health(selectors.plan_list_for_customer))
        section_register("procedures", health(selectors.procedure_list_for_customer), paged=True)
        timeline_templates_register(*TIMELINE_TEMPLATES, labels={"status": lambda code: AppointmentStatus(code).label},
                                    shown={VISIT_OF: VISIT_OF_SHOWN, VISIT: VISIT_SHOWN})
        merge_hook_register(visits_merge_hook)
        erase_hook_register(visits_erase_hook)
