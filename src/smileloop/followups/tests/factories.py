import datetime as dt

import factory
from django.utils import timezone

from smileloop.visits.enums import AppointmentStatus
from smileloop.visits.models import Appointment, Procedure

TZ = dt.timezone(dt.timedelta(hours=8))  # Asia/Shanghai (no DST)


def local(day: dt.date, hour: int = 10, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=TZ)


def later_today() -> dt.datetime:
    """A due time still ahead and still today in the chain's time zone, whenever the test runs ("now + 2 hours"
    is tomorrow from 22:00 Shanghai time, 14:00 UTC, and such a task left the inbox)."""
    return dt.datetime.combine(timezone.localdate(), dt.time(23, 59, 59), tzinfo=timezone.get_current_timezone())


class AppointmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Appointment

    chain = factory.LazyAttribute(lambda o: o.customer.chain)
    clinic = factory.LazyAttribute(lambda o: o.customer.home_clinic)
    start_at = factory.LazyFunction(timezone.now)
    end_at = factory.LazyAttribute(lambda o: o.start_at + dt.timedelta(minutes=30))
    status = AppointmentStatus.COMPLETED


class ProcedureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Procedure

    chain = factory.LazyAttribute(lambda o: o.customer.chain)
    clinic = factory.LazyAttribute(lambda o: o.customer.home_clinic)
    performed_on = factory.LazyFunction(timezone.localdate)
