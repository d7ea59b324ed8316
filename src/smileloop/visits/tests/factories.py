import factory

from smileloop.clinics.tests.factories import ChainFactory
from smileloop.visits.enums import Category
from smileloop.visits.models import ServiceItem


class ServiceItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ServiceItem
        django_get_or_create = ("chain", "code")

    chain = factory.SubFactory(ChainFactory)
    code = factory.Sequence(lambda n: f"S{n:03d}")
    name = factory.Sequence(lambda n: f"项目{n}")
    category = Category.EXAM
    list_price_fen = 10000
