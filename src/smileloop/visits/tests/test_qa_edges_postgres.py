"""Progress of one treatment plan sent at once on PostgreSQL (threads behind a barrier, each with its own connection
and test client): the plan's counts always equal its steps, and a plan replaced by its PMS while a step is recorded
neither deadlocks nor loses either write. SQLite serialises writers, so these run on PostgreSQL only."""

import json

import pytest
from django.test import Client

from smileloop.clinics.services import token_create
from smileloop.core.testing import postgresql_only, writers_run
from smileloop.customers.models import Customer
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.visits.enums import PlanStatus, StepStatus
from smileloop.visits.models import PlanStep, TreatmentPlan

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]

STEPS = 6


@pytest.fixture
def token(director_a):
    return token_create(username=director_a.user.username)


def _post(client, url, body, *, token, key):
    return client.post(
        url,
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
    )


@pytest.fixture
def plan(chain, clinic_a, catalogue, token):
    """A plan of six planned steps."""
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    body = {
        "customer_id": patient.id,
        "clinic": "SH01",
        "title": "全口修复",
        "external_id": "PMS-PLAN-1",
        "steps": [{"seq": n, "item_code": "FI01"} for n in range(1, STEPS + 1)],
    }
    response = _post(Client(), "/api/treatment-plans", body, token=token, key="plan")
    assert response.status_code == 201
    return patient, response.json()


def test_steps_of_one_plan_done_at_once_are_all_counted_and_complete_it(plan, token):
    _, created = plan

    # when every step is recorded done at the same moment, each from its own terminal
    def writer(i):
        response = _post(
            Client(),
            f"/api/treatment-plans/{created['id']}/steps/{i + 1}",
            {"status": "done"},
            token=token,
            key=f"step-{i}",
        )
        return [response.status_code]

    results, errors = writers_run(writer, STEPS)
    # then every write succeeds and the plan counts every step: done, 100 %, completed
    assert errors == []
    assert results == [200] * STEPS
    stored = TreatmentPlan.objects.get(pk=created["id"])
    assert PlanStep.objects.filter(plan=stored, status=StepStatus.DONE).count() == STEPS
    assert (stored.steps_done, stored.steps_total, stored.status) == (STEPS, STEPS, PlanStatus.COMPLETED)
    assert stored.completed_at is not None


def test_a_plan_replaced_while_a_step_is_recorded_neither_deadlocks_nor_loses_a_count(plan, token):
    patient, created = plan
    replaced = {
        "customer_id": patient.id,
        "clinic": "SH01",
        "title": "全口修复（改）",
        "external_id": "PMS-PLAN-1",
        "steps": [{"seq": n, "item_code": "FI01"} for n in range(1, STEPS + 1)],
    }

    # when the PMS re-sends the plan (its steps still planned) while a terminal records steps done, four rounds
    def writer(i):
        outcomes = []
        for round_ in range(4):
            if i == 0:
                response = _post(
                    Client(), "/api/treatment-plans", replaced, token=token, key=f"replace-{round_}"
                )
            else:
                response = _post(
                    Client(),
                    f"/api/treatment-plans/{created['id']}/steps/{i}",
                    {"status": "done"},
                    token=token,
                    key=f"step-{i}-{round_}",
                )
            outcomes.append(response.status_code)
        return outcomes

    results, errors = writers_run(writer, 3)
    # then nothing fails (no deadlock, no 500) and the plan's counts are those of its stored steps
    assert errors == []
    assert set(results) == {200}, results
    stored = TreatmentPlan.objects.get(pk=created["id"])
    done = PlanStep.objects.filter(plan=stored, status=StepStatus.DONE).count()
    assert (stored.steps_done, stored.steps_total) == (done, STEPS)


def test_two_bills_of_one_patient_on_one_day_sent_at_once_count_one_visit(chain, clinic_a, catalogue, token):
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)

    # when two terminals record a bill for the patient on the same day at the same moment (no external ids)
    def writer(i):
        body = {
            "customer_id": patient.id,
            "clinic": "SH01",
            "ordered_at": f"2025-03-01T1{i}:30:00",
            "lines": [{"item_code": "EX01"}],
        }
        return [_post(Client(), "/api/orders", body, token=token, key=f"bill-{i}").status_code]

    for _ in range(3):
        results, errors = writers_run(writer, 2)
        assert errors == []
        assert results == [201, 201]
    # then the day is one visit
    assert Customer.objects.get(pk=patient.pk).visit_count == 1


def test_a_bill_and_an_arrival_of_one_patient_on_one_day_sent_at_once_count_one_visit(
    chain, clinic_a, catalogue, token
):
    patients = [CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(3)]
    for patient in patients:
        # when the POS records a bill while the PMS records the patient's arrival that day, at the same moment
        def writer(i, patient=patient):
            if i == 0:
                body = {
                    "customer_id": patient.id,
                    "clinic": "SH01",
                    "ordered_at": "2025-03-01T10:30:00",
                    "lines": [{"item_code": "EX01"}],
                }
                return [
                    _post(Client(), "/api/orders", body, token=token, key=f"bill-{patient.id}").status_code
                ]
            body = {
                "customer_id": patient.id,
                "clinic": "SH01",
                "status": "arrived",
                "start_at": "2025-03-01T09:00:00",
                "end_at": "2025-03-01T09:30:00",
            }
            return [
                _post(Client(), "/api/appointments", body, token=token, key=f"visit-{patient.id}").status_code
            ]

        results, errors = writers_run(writer, 2)
        assert errors == []
        assert sorted(results) == [201, 201]
    # then each patient's day is one visit (the arrival; the bill of a day with one adds none)
    assert [Customer.objects.get(pk=p.pk).visit_count for p in patients] == [1, 1, 1]
