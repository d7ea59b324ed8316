import factory
from django.utils import timezone

from smileloop.clinics.tests.factories import ChainFactory
from smileloop.customers.models import Interaction
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.tagging.enums import TagGroupKind, TagKind, TagSource
from smileloop.tagging.models import CustomerTag, Tag, TagGroup


class TagGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TagGroup

    chain = factory.SubFactory(ChainFactory)
    code = factory.Sequence(lambda n: f"group-{n}")
    name = factory.Sequence(lambda n: f"分组{n}")
    kind = TagGroupKind.INTEREST


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag

    group = factory.SubFactory(TagGroupFactory)
    chain = factory.LazyAttribute(lambda o: o.group.chain)
    code = factory.Sequence(lambda n: f"tag-{n}")
    name = factory.Sequence(lambda n: f"标签{n}")
    kind = TagKind.MANUAL


class CustomerTagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomerTag

    customer = factory.SubFactory(CustomerFactory)
    tag = factory.SubFactory(TagFactory)
    chain_id = factory.LazyAttribute(lambda o: o.customer.chain_id)
    source = TagSource.MANUAL
    set_at = factory.LazyFunction(timezone.now)


class InteractionFactory(factory.django.DjangoModelFactory):
    """A timeline message (customers has no factory for it)."""

    class Meta:
        model = Interaction

    customer = factory.SubFactory(CustomerFactory)
    kind = "chat"
    text = "你好"
    occurred_at = factory.LazyFunction(timezone.now)
