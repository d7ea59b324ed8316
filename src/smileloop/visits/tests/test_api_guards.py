"""What the ingestion API refuses, found by driving it like a PMS that sends mistakes: times no clinic record can
have, an external_id that names another clinic's record, clinical writes by roles that only read them, money sent
as a float, and text PostgreSQL cannot store. Each refusal names its field and writes nothing."""

import datetime as dt

import pytest
from django.utils import timezone

from smileloop.clinics.enums import Role
from smileloop.clinics.services import token_create
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.customers.models import Customer
from smileloop.visits.models import Appointment, Order, PlanStep, Procedure, Refund, TreatmentPlan
from smileloop.visits.tests.test_api import cleaning_order, implant_plan, post, recorded_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_token(chain_admin):
    return token_create(username=chain_admin.user.username)


def local(days: int = 0, hour: int = 10) -> str:
    """An ISO time `days` from today in the chain's zone."""
    day = timezone.localdate() + dt.timedelta(days=days)
    return dt.datetime.combine(day, dt.time(hour)).isoformat()


def fields(response) -> list[str]:
    return [e["field"] for e in response.json()["errors"]]


# --- times ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ordered_at, message", [
    ("0001-01-01T00:00:00", "must be between 1901-01-01 and 2099-12-31"),
    ("9999-12-31T20:00:00-05:00", "must be between 1901-01-01 and 2099-12-31"),
    ("1900-01-01T10:00:00+08:00", "must be between 1901-01-01 and 2099-12-31"),
    ("1975-06-01T10:00:00", "is before 1980-01-01"),
    ("2099-12-31T23:59:59+08:00", "is in the future"),
])
def test_an_order_at_a_time_no_record_can_have_is_422_on_its_field(client, patient_a, catalogue, director_token,
                                                                     ordered_at, message):
    response = post(client, "/api/orders", cleaning_order(patient_a, ordered_at=ordered_at), token=director_token)
    assert response.status_code == 422, response.content
    assert response.json()["errors"][0]["field"] == "body.ordered_at"
    assert response.json()["errors"][0]["message"] == message
    assert not Order.objects.exists()
    patient_a.refresh_from_db()
    assert patient_a.first_visit_at is None and patient_a.last_visit_at is None


def test_a_booking_may_lie_ahead_but_a_visit_that_happened_may_not(client, patient_a, catalogue, director_token):
    def appointment(days, status, key):
        return post(client, "/api/appointments", {"customer_id": patient_a.id, "clinic": "SH01",
                                                  "start_at": local(days), "end_at": local(days, 11),
                                                  "status": status}, token=director_token, key=key)
    assert appointment(400, "booked", "a1").status_code == 201
    assert appointment(0, "completed", "a2").status_code == 201
    future_visit = appointment(30, "completed", "a3")
    too_far = appointment(4 * 366, "booked", "a4")
    assert (future_visit.status_code, fields(future_visit)) == (422, ["body.start_at"])
    assert future_visit.json()["errors"][0]["message"] == "is in the future"
    assert (too_far.status_code, too_far.json()["errors"][0]["message"]) == (422, "is more than 3 years ahead")
    assert Appointment.objects.count() == 2


def test_an_appointment_longer_than_a_day_is_422(client, patient_a, catalogue, director_token):
    response = post(client, "/api/appointments", {"customer_id": patient_a.id, "clinic": "SH01",
                                                  "start_at": local(1), "end_at": local(3)}, token=director_token)
    assert (response.status_code, fields(response)) == (422, ["body.end_at"])
    assert not Appointment.objects.exists()


def test_a_refund_before_its_order_was_paid_is_422(client, patient_a, catalogue, director_token):
    order = recorded_order(client, patient_a, director_token)
    response = post(client, f"/api/orders/{order['id']}/refunds",
                    {"whole": True, "refunded_at": "2025-02-28T10:00:00"}, token=director_token, key="r1")
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "body.refunded_at", "message": "is before the order was paid",
                                          "value": "2025-02-28 10:00:00+08:00"}]
    assert not Refund.objects.exists() and Order.objects.get().refunded_fen == 0


def test_a_refund_of_one_line_twice_in_one_request_names_what_is_left(client, patient_a, catalogue, director_token):
    order = recorded_order(client, patient_a, director_token)
    line = order["lines"][0]  # 25000 fen
    response = post(client, f"/api/orders/{order['id']}/refunds",
                    {"lines": [{"line_id": line["id"], "amount_fen": 15000},
                               {"line_id": line["id"], "amount_fen": 15000}]}, token=director_token, key="r1")
    assert response.status_code == 422
    assert response.json()["errors"][0]["message"] == (
        f"must be between 1 and 10000 fen (what is left to refund of line {line['id']})")
    assert not Refund.objects.exists()


@pytest.mark.parametrize("change, field, message", [
    ({"title": "   "}, "body.title", "must be 1–100 characters"),
    ({"status": "completed"}, "body.status", "completed needs every step done or cancelled"),
    ({"steps": [{"seq": 1, "item_code": "EX01", "done_at": "2025-03-01T10:00:00"}]}, "body.steps[0].done_at",
     "is only for a step whose status is done"),
    ({"steps": [{"seq": 1, "item_code": "EX01", "status": "done", "done_at": "2099-01-01T10:00:00"}]},
     "body.steps[0].done_at", "is in the future"),
    ({"planned_at": "1970-01-01T00:00:00"}, "body.planned_at", "is before 1980-01-01"),
])
def test_a_plan_that_contradicts_itself_is_422(client, patient_a, catalogue, director_token, change, field, message):
    response = post(client, "/api/treatment-plans", implant_plan(patient_a, **change), token=director_token)
    assert response.status_code == 422, response.content
    assert (response.json()["errors"][0]["field"], response.json()["errors"][0]["message"]) == (field, message)
    assert not TreatmentPlan.objects.exists()


def test_a_step_progress_done_in_the_future_is_422(client, patient_a, catalogue, director_token):
    plan = post(client, "/api/treatment-plans", implant_plan(patient_a), token=director_token, key="p1").json()
    response = post(client, f"/api/treatment-plans/{plan['id']}/steps/1",
                    {"status": "done", "done_at": local(10)}, token=director_token, key="p2")
    assert (response.status_code, fields(response)) == (422, ["body.done_at"])
    assert PlanStep.objects.filter(status="done").count() == 0


def test_a_procedure_before_1980_is_422(client, patient_a, catalogue, director_token):
    response = post(client, "/api/procedures", {"customer_id": patient_a.id, "clinic": "SH01", "item_code": "FI01",
                                                "performed_on": "1901-01-01"}, token=director_token)
    assert (response.status_code, fields(response)) == (422, ["body.performed_on"])
    assert not Procedure.objects.exists()


# --- an external_id of another clinic's record ----------------------------------------------------------------

def test_an_external_id_of_another_clinics_record_neither_reads_nor_moves_it(
        client, chain, clinic_a, clinic_b, patient_a, catalogue, admin_token, director_token):
    # given: patient_a (home SH01) was also treated at SH02, recorded by the chain's PMS
    def at_b(url, body, key):
        response = post(client, url, {**body, "clinic": "SH02"}, token=admin_token, key=key)
        assert response.status_code == 201, response.content
        return response.json()
    appointment = at_b("/api/appointments", {"customer_id": patient_a.id, "start_at": local(2),
                                             "end_at": local(2, 11), "external_id": "APPT-B"}, "b1")
    plan = at_b("/api/treatment-plans", implant_plan(patient_a, external_id="PLAN-B", doctor=None), "b2")
    at_b("/api/procedures", {"customer_id": patient_a.id, "item_code": "FI01", "performed_on": "2025-03-01",
                             "tooth": "46", "notes": "B 的病历", "external_id": "PROC-B"}, "b3")
    at_b("/api/orders", cleaning_order(patient_a, external_id="POS-B"), "b4")
    # when: SH01's director sends the same ids for SH01
    answers = [
        post(client, "/api/appointments", {"customer_id": patient_a.id, "clinic": "SH01", "start_at": local(3),
                                           "end_at": local(3, 11), "external_id": "APPT-B", "status": "cancelled"},
             token=director_token, key="a1"),
        post(client, "/api/treatment-plans", implant_plan(patient_a, external_id="PLAN-B", title="改掉"),
             token=director_token, key="a2"),
        post(client, "/api/procedures", {"customer_id": patient_a.id, "clinic": "SH01", "item_code": "FI01",
                                         "performed_on": "2025-03-01", "external_id": "PROC-B"},
             token=director_token, key="a3"),
        post(client, "/api/orders", cleaning_order(patient_a, external_id="POS-B"), token=director_token, key="a4"),
    ]
    # then: refused, naming the field, revealing nothing of the record, changing nothing
    for response in answers:
        assert response.status_code == 403, response.content
        assert response.json()["errors"][0]["field"] == "body.external_id"
        assert "B 的病历" not in response.text and "SH02" not in response.text
    stored = Appointment.objects.get(external_id="APPT-B")
    assert (stored.clinic_id, stored.status) == (clinic_b.id, "booked")
    assert TreatmentPlan.objects.get(pk=plan["id"]).title == "种植方案"
    assert TreatmentPlan.objects.get(pk=plan["id"]).clinic_id == clinic_b.id
    assert appointment["id"] == stored.id
    assert Procedure.objects.count() == 1 and Order.objects.count() == 1


def test_a_procedure_external_id_of_another_patient_is_a_conflict(client, chain, clinic_a, patient_a, catalogue,
                                                                   director_token):
    other = Customer.objects.create(chain=chain, name="王五", home_clinic=clinic_a)
    body = {"clinic": "SH01", "item_code": "FI01", "performed_on": "2025-03-01", "external_id": "PROC-1"}
    assert post(client, "/api/procedures", {**body, "customer_id": patient_a.id}, token=director_token,
                key="p1").status_code == 201
    response = post(client, "/api/procedures", {**body, "customer_id": other.id}, token=director_token, key="p2")
    assert (response.status_code, response.json()["code"]) == (409, "external_id_conflict")
    assert Procedure.objects.get().customer_id == patient_a.id


# --- clinical records are written by clinical roles ---------------------------------------------------------

def test_an_assistant_reads_but_does_not_write_clinical_records(client, chain, clinic_a, patient_a, catalogue,
                                                                 director_token):
    assistant = StaffFactory(chain=chain, role=Role.ASSISTANT, clinics=[clinic_a], user__username="assistant_a")
    token = token_create(username=assistant.user.username)
    plan = post(client, "/api/treatment-plans", implant_plan(patient_a), token=director_token, key="p0").json()
    refused = [
        post(client, "/api/treatment-plans", implant_plan(patient_a, external_id="PLAN-2"), token=token, key="p1"),
        post(client, f"/api/treatment-plans/{plan['id']}/steps/1", {"status": "done"}, token=token, key="p2"),
        post(client, "/api/procedures", {"customer_id": patient_a.id, "clinic": "SH01", "item_code": "FI01",
                                         "performed_on": "2025-03-01"}, token=token, key="p3"),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert refused[0].json()["message"] == "Your role (assistant) lacks the permission 'health.edit'"
    assert TreatmentPlan.objects.count() == 1 and PlanStep.objects.filter(status="done").count() == 0
    assert not Procedure.objects.exists()


def test_front_desk_may_not_record_a_procedure(client, patient_a, catalogue, token_a):
    response = post(client, "/api/procedures", {"customer_id": patient_a.id, "clinic": "SH01", "item_code": "FI01",
                                                "performed_on": "2025-03-01", "notes": "病历"}, token=token_a)
    assert response.status_code == 403 and "病历" not in response.text
    assert not Procedure.objects.exists()


# --- money is a JSON integer; text without NUL ------------------------------------------------------------

@pytest.mark.parametrize("line, field", [
    ({"item_code": "CL01", "unit_price_fen": 30000.0}, "body.lines[0].unit_price_fen"),
    ({"item_code": "CL01", "quantity": True}, "body.lines[0].quantity"),
    ({"item_code": "CL01", "discount_fen": 12.5}, "body.lines[0].discount_fen"),
])
def test_money_and_quantities_sent_as_floats_or_booleans_are_422(client, patient_a, catalogue, director_token,
                                                                  line, field):
    response = post(client, "/api/orders", cleaning_order(patient_a, lines=[line], payments=[]), token=director_token)
    assert response.status_code == 422
    assert fields(response) == [field]
    sent = list(line.values())[-1]  # 30000.0, true, 12.5
    assert response.json()["errors"][0]["message"].startswith("must be a whole number (a JSON integer)")
    assert response.json()["errors"][0]["message"].endswith(f", not {str(sent).lower()}")
    assert not Order.objects.exists()


def test_text_with_a_nul_character_is_422_on_its_field_in_body_and_query(client, patient_a, catalogue,
                                                                           director_token):
    body = cleaning_order(patient_a, notes="a\x00b")
    body["lines"][1]["tooth"] = "3\x006"
    response = post(client, "/api/orders", body, token=director_token)
    assert response.status_code == 422
    assert fields(response) == ["body.lines[1].tooth", "body.notes"] or fields(response) == [
        "body.notes", "body.lines[1].tooth"]
    assert response.json()["errors"][0]["message"] == "must not contain the NUL character (\\u0000)"
    assert not Order.objects.exists()
    search = client.get("/api/customers", {"q": "a\x00b"}, headers={"Authorization": f"Bearer {director_token}"})
    assert (search.status_code, fields(search)) == (422, ["query.q"])


def test_text_with_a_lone_surrogate_is_422_on_its_field(client, patient_a, catalogue, director_token):
    # given: "\\udfff" in the JSON text decodes to a lone surrogate, which UTF-8 cannot encode (a 500 on the write);
    # a pair ("\\ud83d\\ude00") decodes to its one character and is taken
    body = cleaning_order(patient_a, notes="a\udfffb")
    body["lines"][1]["tooth"] = "😀"
    # when
    response = post(client, "/api/orders", body, token=director_token)
    # then
    assert response.status_code == 422
    assert fields(response) == ["body.notes"]
    assert not Order.objects.exists()
