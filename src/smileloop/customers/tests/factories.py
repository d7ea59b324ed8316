import factory

from smileloop.clinics.tests.factories import ChainFactory
from smileloop.customers.models import Customer, Identity


class CustomerFactory(factory.django.DjangoModelFactory):
    """Builds through the model; tests of creation paths use customer_upsert instead."""

    class Meta:
        model = Customer
        skip_postgeneration_save = True

    chain = factory.SubFactory(ChainFactory)
    name = factory.Sequence(lambda n: f"患者{n}")
    mobile = factory.Sequence(lambda n: f"+861380000{n:04d}")
    mobile_tail = factory.LazyAttribute(lambda o: (o.mobile or "")[-4:])
    stage = "lead"
    # The highest progress stage reached follows the stage (a dormant/lost customer had at least arrived).
    stage_reached = factory.LazyAttribute(lambda o: o.stage if o.stage not in ("dormant", "lost") else "arrived")

    @factory.post_generation
    def search_keys(obj, create, extracted, **kwargs):
        if create:
            from smileloop.customers.services import customer_search_keys_refresh

            customer_search_keys_refresh(customers=[obj])


class IdentityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Identity

    customer = factory.SubFactory(CustomerFactory)
    chain = factory.LazyAttribute(lambda o: o.customer.chain)
    kind = "wechat_openid"
    external_id = factory.Sequence(lambda n: f"oOPENID{n:06d}")
