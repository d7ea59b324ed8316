"""Reads for a customer's visits, orders, plans and procedures. Callers pass a customer obtained
through customers.selectors.customer_get(scope, …), so the clinic scope is already applied."""

from django.db.models import F, Prefetch, QuerySet

from smileloop.core.scoping import Scope
from smileloop.customers.models import Customer
from smileloop.customers.selectors import customer_queryset
from smileloop.visits.enums import PlanStatus
from smileloop.visits.models import (
    Appointment,
    Order,
    OrderLine,
    PlanStep,
    Procedure,
    ServiceItem,
    TreatmentPlan,
)

# The 360 page's history sections read one page at a time (offset/limit, newest first; "-id" breaks ties so
# pages never overlap or skip rows). Each is a fixed number of queries whatever the page holds.


def appointment_list_for_customer(customer: Customer, *, offset: int = 0, limit: int = 50) -> QuerySet[Appointment]:
    return customer.appointments.select_related("clinic", "doctor", "service_item").order_by(
        "-start_at", "-id")[offset:offset + limit]


def order_list_for_customer(customer: Customer, *, offset: int = 0, limit: int = 50):
    """Orders with their lines (and items), payments and refunds: four queries for any number of orders."""
    lines = Prefetch("lines", queryset=OrderLine.objects.select_related("item").order_by("id"))
    return customer.orders.select_related("clinic").prefetch_related(lines, "payments", "refunds").order_by(
        "-ordered_at", "-id")[offset:offset + limit]


def plan_list_for_customer(customer: Customer):
    steps = Prefetch("steps", queryset=PlanStep.objects.select_related("item").order_by("seq", "id"))
    return customer.treatment_plans.select_related("clinic", "doctor").prefetch_related(steps).order_by(
        "-planned_at")


def procedure_list_for_customer(customer: Customer, *, offset: int = 0, limit: int = 50):
    return customer.procedures.select_related("clinic", "item", "doctor").order_by(
        "-performed_on", "-id")[offset:offset + limit]


def unfinished_plan_list(scope: Scope, *, min_progress_percent: int = 0) -> QuerySet[TreatmentPlan]:
    """Active plans (of customers in scope) at least `min_progress_percent` done — plain indexed SQL."""
    qs = TreatmentPlan.objects.filter(status=PlanStatus.ACTIVE, customer__in=customer_queryset(scope))
    if min_progress_percent:
        qs = qs.alias(done_x100=F("steps_done") * 100).filter(done_x100__gte=F("steps_total") * min_progress_percent)
    return qs


def order_get(scope: Scope, order_id) -> Order:
    from smileloop.core.errors import NotFound

    order = Order.objects.filter(pk=order_id, customer__in=customer_queryset(scope)).first()
    if order is None:
        raise NotFound("Order not found")
    return order


def plan_get(scope: Scope, plan_id) -> TreatmentPlan:
    from smileloop.core.errors import NotFound

    plan = TreatmentPlan.objects.filter(pk=plan_id, customer__in=customer_queryset(scope)).first()
    if plan is None:
        raise NotFound("Treatment plan not found")
    return plan


def service_item_list(scope: Scope) -> QuerySet[ServiceItem]:
    return ServiceItem.objects.filter(chain_id=scope.chain_id, is_active=True).order_by("code")


def procedure_list(scope: Scope) -> QuerySet[Procedure]:
    return Procedure.objects.filter(customer__in=customer_queryset(scope))
