"""Reads over settlements, scoped: a settlement of a customer outside the caller's clinics is a 404."""

from django.db.models import Prefetch

from smileloop.checkout.models import RefundSettlement, Settlement
from smileloop.core.errors import NotFound
from smileloop.core.scoping import Scope
from smileloop.customers.selectors import customer_queryset
from smileloop.visits.models import Refund


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


def settlement_refund_list(settlement: Settlement) -> list[RefundSettlement]:
    """The settlement's refunds, oldest first, each with what it gave back by payment method (`order_refunds`, in
    the order they were recorded): two reads for any number of refunds."""
    return list(settlement.refunds.order_by("created_at", "id")
                .prefetch_related(Prefetch("order_refunds", queryset=Refund.objects.order_by("id"))))
