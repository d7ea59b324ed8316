"""Reads over settlements, scoped: a settlement of a customer outside the caller's clinics is a 404."""

from smileloop.checkout.models import Settlement
from smileloop.core.errors import NotFound
from smileloop.core.scoping import Scope
from smileloop.customers.selectors import customer_queryset


def settlement_get(scope: Scope, settlement_id) -> Settlement:
    try:
        settlement_id = int(settlement_id)
    except (TypeError, ValueError):
        raise NotFound("Settlement not found")
    settlement = (Settlement.objects.select_related("order", "customer", "clinic")
                  .filter(chain_id=scope.chain_id, pk=settlement_id, customer__in=customer_queryset(scope)).first())
    if settlement is None:
        raise NotFound("Settlement not found")
    return settlement


def settlements_for_customer(scope: Scope, customer) -> list[Settlement]:
    return list(Settlement.objects.filter(customer=customer, customer__in=customer_queryset(scope))
                .select_related("order").order_by("-created_at")[:20])
