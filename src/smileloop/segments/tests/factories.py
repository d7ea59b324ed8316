import factory
from django.db.models import F
from django.utils import timezone

from smileloop.customers.models import Consent, Customer
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.segments.models import Segment
from smileloop.visits.models import Appointment, Order, Procedure


class OrderFactory(factory.django.DjangoModelFactory):
    """A paid bill built directly (amounts only; the visits services are tested in visits)."""

    class Meta:
        model = Order
        skip_postgeneration_save = True

    customer = factory.SubFactory(CustomerFactory)
    chain = factory.LazyAttribute(lambda o: o.customer.chain)
    clinic = factory.LazyAttribute(lambda o: o.customer.home_clinic)
    ordered_at = factory.LazyFunction(timezone.now)
    amount_fen = 10000
    list_total_fen = factory.LazyAttribute(lambda o: o.amount_fen)
    refunded_fen = 0

    @factory.post_generation
    def lifetime_spend(obj, create, extracted, **kwargs):
        """Keep the invariant the visits services keep: lifetime spend = Σ(amount − refunded) of all orders."""
        if create:
            Customer.objects.filter(pk=obj.customer_id).update(
                lifetime_spend_fen=F("lifetime_spend_fen") + obj.amount_fen - obj.refunded_fen)


class AppointmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Appointment

    customer = factory.SubFactory(CustomerFactory)
    chain = factory.LazyAttribute(lambda o: o.customer.chain)
    clinic = factory.LazyAttribute(lambda o: o.customer.home_clinic)
    start_at = factory.LazyFunction(timezone.now)
    end_at = factory.LazyAttribute(lambda o: o.start_at + timezone.timedelta(minutes=30))
    status = "completed"


class ProcedureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Procedure

    customer = factory.SubFactory(CustomerFactory)
    chain = factory.LazyAttribute(lambda o: o.customer.chain)
    clinic = factory.LazyAttribute(lambda o: o.customer.home_clinic)
    performed_on = factory.LazyFunction(timezone.localdate)


class ConsentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Consent

    customer = factory.SubFactory(CustomerFactory)
    purpose = "marketing_sms"
    granted = True
    source = "form"
    recorded_at = factory.LazyFunction(timezone.now)


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Segment

    name = factory.Sequence(lambda n: f"分群{n}")
    rule = factory.LazyFunction(lambda: {"all": [{"field": "stage", "op": "eq", "value": "lead"}]})
