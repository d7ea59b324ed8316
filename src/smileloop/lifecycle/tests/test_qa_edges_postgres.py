"""A stage event racing a PIPL erasure on PostgreSQL (threads, each with its own connection): the move that waited
on the erasure's row lock sees the erased record and leaves it as it is. SQLite serialises writers."""

import threading
import time

import pytest
from django.db import transaction

from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.testing import postgresql_only, writers_run
from smileloop.customers.models import Customer, Interaction
from smileloop.customers.privacy import customer_erase
from smileloop.customers.services import customer_stage_advance
from smileloop.customers.tests.factories import CustomerFactory

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]


def test_an_arrival_waiting_on_an_erasure_does_not_move_the_erased_record(chain, clinic_a, director_a):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a, stage="booked", stage_reached="booked")
    locked = threading.Event()

    def writer(i):
        if i == 0:  # the erasure, holding the row until the other writer waits on it
            with transaction.atomic():
                customer_erase(
                    scope=scope_for_staff(director_a),
                    customer=customer,
                    actor=director_a,
                    reason="本人书面申请",
                )
                locked.set()
                time.sleep(0.5)
            return []
        locked.wait(5)
        return [customer_stage_advance(customer=customer.pk, to="arrived", cause="arrived at 静安门诊")]

    results, errors = writers_run(writer, 2)
    assert errors == []
    assert results == [False]
    row = Customer.objects.get(pk=customer.pk)
    assert row.erased_at is not None and (row.stage, row.stage_reached) == ("booked", "booked")
    assert not Interaction.objects.filter(customer=customer, data__stage_to="arrived").exists()
