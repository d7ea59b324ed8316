from django.apps import AppConfig


class VisitsConfig(AppConfig):
    name = "smileloop.visits"
    label = "visits"
    verbose_name = "Visits, orders and treatment"

    def ready(self):
        from smileloop.clinics.enums import Perm
        from smileloop.customers.sections import section_register
        from smileloop.visits import selectors

        def health(loader):
            return lambda scope, customer: list(loader(customer)) if scope.can(Perm.HEALTH_VIEW) else []

        section_register("appointments", lambda scope, customer: list(selectors.appointment_list_for_customer(customer)))
        section_register("orders", lambda scope, customer: list(selectors.order_list_for_customer(customer)))
        section_register("plans", health(selectors.plan_list_for_customer))
        section_register("procedures", health(selectors.procedure_list_for_customer))
