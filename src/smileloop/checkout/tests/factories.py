import factory

from smileloop.clinics.tests.factories import ChainFactory
from smileloop.loyalty.enums import EarnTrigger
from smileloop.loyalty.models import EarnRule


class SpendRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EarnRule

    chain = factory.SubFactory(ChainFactory)
    code = factory.Sequence(lambda n: f"spend-{n}")
    name = "消费积分"
    trigger = EarnTrigger.SPEND
    points_per_yuan = 1
