import datetime as dt

import factory
from django.utils import timezone

from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.surveys.models import Survey
from smileloop.surveys.services import token_new
from smileloop.visits.enums import AppointmentStatus
from smileloop.visits.models import Appointment


class AppointmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Appointment

    chain = factory.SubFactory(ChainFactory)
    clinic = factory.SubFactory(ClinicFactory, chain=factory.SelfAttribute("..chain"))
    customer = factory.SubFactory(CustomerFactory, chain=factory.SelfAttribute("..chain"))
    start_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=1))
    end_at = factory.LazyAttribute(lambda o: o.start_at + dt.timedelta(minutes=45))
    status = AppointmentStatus.COMPLETED


class SurveyFactory(factory.django.DjangoModelFactory):
    """An open survey created now, valid 14 days; pass score=… to make it answered."""

    class Meta:
        model = Survey

    chain = factory.SubFactory(ChainFactory)
    clinic = factory.SubFactory(ClinicFactory, chain=factory.SelfAttribute("..chain"))
    customer = factory.SubFactory(CustomerFactory, chain=factory.SelfAttribute("..chain"))
    visit_date = factory.LazyFunction(lambda: timezone.localdate() - dt.timedelta(days=1))
    token = factory.LazyFunction(token_new)
    created_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyAttribute(lambda o: o.created_at + dt.timedelta(days=14))
    sent_at = None
    answered_at = factory.LazyAttribute(lambda o: o.created_at + dt.timedelta(hours=1) if o.score is not None else None)
    score = None
