"""A booking re-sent by the PMS while its patient is erased (PostgreSQL): the notes the erasure blanked stay blank.

appointment_upsert waited for the patient's row (_visit_lock) while the erasure held it and blanked the booking's
notes (visits_erase_hook); once it went on, it read "erased?" off the record it was given, loaded before the
erasure, and wrote the notes ("张三要求女医生") back onto the erased person's booking. It now reads the lock's answer."""

import datetime as dt
import threading

import pytest
from django.db import transaction
from django.utils import timezone

from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.testing import paused, postgresql_only, race
from smileloop.customers import privacy
from smileloop.customers.models import Customer
from smileloop.customers.privacy import customer_erase
from smileloop.visits.enums import AppointmentStatus
from smileloop.visits.models import Appointment
from smileloop.visits.services import appointment_upsert


@pytest.mark.django_db(transaction=True)
@postgresql_only
def test_a_booking_resent_while_its_patient_is_erased_keeps_its_notes_blank(clinic_a, patient_a, director_a,
                                                                           monkeypatch):
    start = timezone.now().replace(microsecond=0) + dt.timedelta(days=3)
    booking = dict(clinic=clinic_a, start_at=start, end_at=start + dt.timedelta(minutes=30),
                   status=AppointmentStatus.BOOKED, notes="张三要求女医生 回电13800138000", external_id="pms-1")
    appointment_upsert(customer=patient_a, **booking)
    stale = Customer.objects.get(pk=patient_a.pk)  # what the PMS sync loaded before the erasure
    reached = threading.Event()
    # the erasure holds the patient's row here; the re-send waits for it
    monkeypatch.setattr(privacy, "erase_obligations", paused(privacy.erase_obligations, reached, before=True))

    def erase():
        with transaction.atomic():
            customer_erase(scope=scope_for_staff(director_a), customer=Customer.objects.get(pk=patient_a.pk),
                           actor=director_a, reason="本人申请")
        return True

    # the re-send runs in no transaction of its own, as the PMS sync calls it
    out = race(erase, lambda: appointment_upsert(customer=stale, **booking), reached, atomic=False)
    assert out.get("first") and "then" in out, out
    assert Customer.objects.get(pk=patient_a.pk).erased_at is not None
    assert Appointment.objects.get(external_id="pms-1").notes == ""
