"""A PMS/POS sending one record (one external_id) twice at once, with different Idempotency-Keys (a retry after a
timeout, two terminals): one record, the others answered with it; and the same external_id for another customer
at the same moment is the conflict a sequential request gets, never a 500 (run only on PostgreSQL)."""

import datetime as dt

import pytest

from smileloop.core.errors import Conflict
from smileloop.core.testing import postgresql_only, writers_run
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.visits.models import Appointment, Order, Procedure, TreatmentPlan
from smileloop.visits.services import appointment_upsert, order_record, plan_record, procedure_record

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]
AT = dt.datetime(2026, 12, 4, 2, 0, tzinfo=dt.UTC)



def _writes(customer, clinic):
    return {
        "order": (Order, lambda c, i: order_record(
            customer=c, clinic=clinic, ordered_at=AT, external_id="POS-1", lines=[{"item_code": "CL01"}],
            payments=[{"method": "cash", "amount_fen": 30000}])),
        "appointment": (Appointment, lambda c, i: appointment_upsert(
            customer=c, clinic=clinic, start_at=AT, end_at=AT + dt.timedelta(minutes=30), external_id="PMS-A1")),
        "plan": (TreatmentPlan, lambda c, i: plan_record(
            customer=c, clinic=clinic, title="种植", steps=[{"item_code": "IM01"}], external_id="PMS-P1")),
        "procedure": (Procedure, lambda c, i: procedure_record(
            customer=c, clinic=clinic, item_code="IM01", performed_on=AT.date(), external_id="PMS-X1")),
    }


@pytest.mark.parametrize("kind", ["order", "appointment", "plan", "procedure"])
def test_one_external_id_sent_at_once_is_one_record(chain, clinic_a, catalogue, kind):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    model, write = _writes(customer, clinic_a)[kind]

    def writer(i):
        record, _created = write(customer, i)
        return [record.pk]

    results, errors = writers_run(writer, 8)
    assert errors == [] and model.objects.count() == 1
    assert set(results) == {model.objects.get().pk}


@pytest.mark.parametrize("kind", ["order", "procedure"])
def test_one_external_id_sent_at_once_for_two_customers_is_one_record_and_conflicts(chain, clinic_a, catalogue, kind):
    people = [CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(2)]
    writes = [_writes(p, clinic_a)[kind] for p in people]

    def writer(i):
        model, write = writes[i % 2]
        try:
            write(people[i % 2], i)
        except Conflict as exc:
            return [exc.code]
        return ["written"]

    results, errors = writers_run(writer, 8)
    assert errors == []
    assert set(results) <= {"written", "external_id_conflict"} and "external_id_conflict" in results
    assert writes[0][0].objects.count() == 1
