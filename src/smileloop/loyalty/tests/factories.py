import factory
from django.utils import timezone

from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory
from smileloop.loyalty.enums import EarnTrigger, SpecialPrice
from smileloop.loyalty.models import (
    EarnRule,
    Gift,
    Package,
    PackageEntitlement,
    RedeemSettings,
    TopupBonusRule,
)
from smileloop.visits.models import Order, OrderLine
from smileloop.visits.tests.factories import ServiceItemFactory


class EarnRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EarnRule

    chain = factory.SubFactory(ChainFactory)
    code = factory.Sequence(lambda n: f"rule{n}")
    name = factory.Sequence(lambda n: f"规则{n}")
    trigger = EarnTrigger.SPEND
    special_price = SpecialPrice.ANY
    points_per_yuan = 1
    pending_days = 7
    validity_months = 12


class RedeemSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RedeemSettings

    chain = factory.SubFactory(ChainFactory)
    points_per_yuan = 100
    max_share_bp = 1000


class TopupBonusRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TopupBonusRule

    chain = factory.SubFactory(ChainFactory)
    min_topup_fen = 1_000_000
    bonus_fen = 100_000


class GiftFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Gift

    chain = factory.SubFactory(ChainFactory)
    name = factory.Sequence(lambda n: f"礼品{n}")
    points_price = 500
    stock = 10


class PackageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Package

    chain = factory.SubFactory(ChainFactory)
    name = factory.Sequence(lambda n: f"家庭口腔护理套餐{n}")
    price_fen = 298_000
    validity_months = 12


class PackageEntitlementFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PackageEntitlement

    package = factory.SubFactory(PackageFactory)
    label = "洁牙"
    category = "cleaning"
    quantity = 2


class OrderFactory(factory.django.DjangoModelFactory):
    """A paid bill built directly (the POS path is visits.services.order_record)."""

    class Meta:
        model = Order

    chain = factory.LazyAttribute(lambda o: o.customer.chain)
    clinic = factory.LazyAttribute(lambda o: o.customer.home_clinic or ClinicFactory(chain=o.customer.chain))
    ordered_at = factory.LazyFunction(timezone.now)


class OrderLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrderLine

    order = factory.SubFactory(OrderFactory)
    item = factory.SubFactory(ServiceItemFactory)
    quantity = 1
    unit_price_fen = factory.LazyAttribute(lambda o: o.item.list_price_fen)
    amount_fen = factory.LazyAttribute(lambda o: o.unit_price_fen * o.quantity - o.discount_fen)
    discount_fen = 0


def order_with(customer, lines, **kwargs) -> Order:
    """An order of (item, amount_fen) lines with its totals."""
    order = OrderFactory(customer=customer, **kwargs)
    for item, amount in lines:
        OrderLineFactory(order=order, item=item, unit_price_fen=amount, amount_fen=amount)
    total = sum(amount for _, amount in lines)
    Order.objects.filter(pk=order.pk).update(amount_fen=total, list_total_fen=total)
    order.refresh_from_db()
    return order
