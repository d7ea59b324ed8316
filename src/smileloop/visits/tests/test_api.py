"""The PMS/POS ingestion API for appointments, orders, refunds, plans and procedures."""

import json

import pytest
from django.utils import timezone

from smileloop.core.models import IdempotencyRecord
from smileloop.visits.models import (
    Appointment,
    Order,
    OrderLine,
    Payment,
    PlanStep,
    Procedure,
    Refund,
    TreatmentPlan,
)
from smileloop.visits.services import order_record


def post(client, url, body, *, token, key="key-1"):
    headers = {"Authorization": f"Bearer {token}"}
    if key:
        headers["Idempotency-Key"] = key
    return client.post(url, data=json.dumps(body), content_type="application/json", headers=headers)


def cleaning_order(customer, **extra):
    return {"customer_id": customer.id, "clinic": "SH01", "ordered_at": "2025-03-01T10:30:00",
            "external_id": "POS-1",
            "lines": [{"item_code": "CL01", "quantity": 1, "discount_fen": 5000},
                      {"item_code": "OC01", "quantity": 2, "unit_price_fen": 30000, "tooth": ""}],
            "payments": [{"method": "wechat_pay", "amount_fen": 60000}, {"method": "cash", "amount_fen": 25000}],
            **extra}


def recorded_order(client, customer, token):
    response = post(client, "/api/orders", cleaning_order(customer), token=token, key="order")
    assert response.status_code == 201
    return response.json()


# --- appointments -------------------------------------------------------------------------------------

def test_an_appointment_is_created_then_updated_by_its_external_id(client, patient_a, director_a, catalogue,
                                                                  token_a):
    # given
    body = {"customer_id": patient_a.id, "clinic": "SH01", "doctor": "director_a", "start_at": "2025-03-01T09:00:00",
            "end_at": "2025-03-01T09:30:00", "service_code": "EX01", "external_id": "PMS-A1"}
    # when
    created = post(client, "/api/appointments", body, token=token_a, key="a1")
    updated = post(client, "/api/appointments", {**body, "status": "completed"}, token=token_a, key="a2")
    # then
    assert created.status_code == 201
    assert updated.status_code == 200
    assert created.json()["start_at"] == "2025-03-01T09:00:00+08:00"  # naive means Asia/Shanghai
    assert created.json()["doctor"] == {"id": director_a.id, "name": "院长老李"}
    assert updated.json()["id"] == created.json()["id"]
    assert updated.json()["status"] == "completed"
    assert Appointment.objects.count() == 1
    patient_a.refresh_from_db()
    assert (patient_a.visit_count, patient_a.stage) == (1, "arrived")


def test_an_appointment_for_a_clinic_b_patient_is_404_and_writes_nothing(client, patient_b, token_a):
    # when
    response = post(client, "/api/appointments", {
        "customer_id": patient_b.id, "clinic": "SH01", "start_at": "2025-03-01T09:00:00",
        "end_at": "2025-03-01T09:30:00"}, token=token_a)
    # then
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "Customer not found",
                               "errors": [{"field": "body.customer_id", "message": "Customer not found"}]}
    assert Appointment.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0


def test_an_appointment_at_a_clinic_outside_the_callers_clinics_is_403_and_writes_nothing(client, patient_a, clinic_b,
                                                                                         token_a):
    # when
    response = post(client, "/api/appointments", {
        "customer_id": patient_a.id, "clinic": clinic_b.id, "start_at": "2025-03-01T09:00:00",
        "end_at": "2025-03-01T09:30:00"}, token=token_a)
    # then
    assert response.status_code == 403
    assert response.json()["errors"] == [{"field": "body.clinic",
                                          "message": f"Clinic {clinic_b.id} is not one of your clinics; "
                                                     "you may not write to it"}]
    assert Appointment.objects.count() == 0


def test_an_appointment_that_ends_before_it_starts_is_422_field_by_field_and_writes_nothing(client, patient_a,
                                                                                            catalogue, token_a):
    # when
    response = post(client, "/api/appointments", {
        "customer_id": patient_a.id, "clinic": "SH01", "start_at": "2025-03-01T09:00:00",
        "end_at": "2025-03-01T08:00:00", "service_code": "XX"}, token=token_a)
    # then
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "body.end_at", "message": "must be after start_at", "value": "2025-03-01 08:00:00+08:00"},
        {"field": "body.service_code", "message": "is not in the service catalogue", "value": "XX"},
    ]
    assert Appointment.objects.count() == 0


def test_an_appointment_with_an_unknown_doctor_is_422_and_writes_nothing(client, patient_a, token_a):
    # when
    response = post(client, "/api/appointments", {
        "customer_id": patient_a.id, "clinic": "SH01", "start_at": "2025-03-01T09:00:00",
        "end_at": "2025-03-01T09:30:00", "doctor": "nobody"}, token=token_a)
    # then
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "body.doctor", "value": "nobody",
                                          "message": "is not an active staff member of this chain (use id or username)"}]
    assert Appointment.objects.count() == 0


# --- orders -------------------------------------------------------------------------------------------

def test_an_order_is_recorded_with_lines_and_payments(client, patient_a, catalogue, token_a):
    # when
    response = post(client, "/api/orders", cleaning_order(patient_a), token=token_a)
    # then
    assert response.status_code == 201
    body = response.json()
    assert (body["list_total_fen"], body["discount_fen"], body["amount_fen"], body["status"]) == (
        90000, 5000, 85000, "paid")
    assert [(ln["item_code"], ln["quantity"], ln["amount_fen"]) for ln in body["lines"]] == [
        ("CL01", 1, 25000), ("OC01", 2, 60000)]
    assert body["payments"] == [{"method": "wechat_pay", "amount_fen": 60000}, {"method": "cash", "amount_fen": 25000}]
    assert body["ordered_at"] == "2025-03-01T10:30:00+08:00"
    patient_a.refresh_from_db()
    assert patient_a.lifetime_spend_fen == 85000


def test_an_order_replayed_with_the_same_key_is_recorded_once(client, patient_a, catalogue, token_a):
    # given
    first = post(client, "/api/orders", cleaning_order(patient_a, external_id=None), token=token_a, key="bill-1")
    # when
    replay = post(client, "/api/orders", cleaning_order(patient_a, external_id=None), token=token_a, key="bill-1")
    # then
    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json()
    assert Order.objects.count() == 1
    patient_a.refresh_from_db()
    assert patient_a.lifetime_spend_fen == 85000


def test_an_order_whose_payments_do_not_add_up_is_422_and_writes_nothing(client, patient_a, catalogue, token_a):
    # given
    body = cleaning_order(patient_a, payments=[{"method": "cash", "amount_fen": 80000}])
    # when
    response = post(client, "/api/orders", body, token=token_a)
    # then
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "body.payments",
                                          "message": "add up to 80000 fen but the bill is 85000 fen",
                                          "value": "80000"}]
    assert (Order.objects.count(), OrderLine.objects.count(), Payment.objects.count()) == (0, 0, 0)
    patient_a.refresh_from_db()
    assert (patient_a.lifetime_spend_fen, patient_a.last_visit_at) == (0, None)


def test_an_order_with_bad_lines_lists_each_bad_field(client, patient_a, catalogue, token_a):
    # when
    response = post(client, "/api/orders", cleaning_order(patient_a, lines=[
        {"item_code": "NOPE"}, {"item_code": "CL01", "quantity": 0, "unit_price_fen": 1.5}]), token=token_a)
    # then
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [
        "body.lines[1].quantity", "body.lines[1].unit_price_fen"]
    assert Order.objects.count() == 0


def test_an_order_of_more_than_50_lines_is_422_on_its_lines_and_writes_nothing(client, patient_a, catalogue,
                                                                                 token_a):
    # given: lines at the bounds whose total (923 × 10 000 × 10**12 fen) would overflow a bigint
    line = {"item_code": "CL01", "quantity": 10_000, "unit_price_fen": 10**12}
    body = cleaning_order(patient_a, lines=[line] * 923, payments=[])
    # when
    response = post(client, "/api/orders", body, token=token_a)
    # then
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.lines"]
    assert (Order.objects.count(), OrderLine.objects.count()) == (0, 0)
    patient_a.refresh_from_db()
    assert patient_a.lifetime_spend_fen == 0


def test_an_order_of_50_lines_at_the_bounds_is_recorded(client, patient_a, catalogue, token_a):
    # given
    line = {"item_code": "CL01", "quantity": 10_000, "unit_price_fen": 10**12}
    body = cleaning_order(patient_a, lines=[line] * 50, payments=[])
    # when
    response = post(client, "/api/orders", body, token=token_a)
    # then
    assert response.status_code == 201
    assert response.json()["amount_fen"] == 50 * 10_000 * 10**12
    assert OrderLine.objects.count() == 50


def test_an_order_for_a_clinic_b_patient_is_404_and_writes_nothing(client, patient_b, catalogue, token_a):
    # when
    response = post(client, "/api/orders", cleaning_order(patient_b), token=token_a)
    # then
    assert response.status_code == 404
    assert Order.objects.count() == 0
    patient_b.refresh_from_db()
    assert patient_b.lifetime_spend_fen == 0


# --- refunds ------------------------------------------------------------------------------------------

def test_a_partial_refund_is_recorded_against_the_order(client, patient_a, catalogue, token_a):
    # given
    order = recorded_order(client, patient_a, token_a)
    # when
    response = post(client, f"/api/orders/{order['id']}/refunds",
                    {"amount_fen": 30000, "reason": "牙刷退货", "method": "wechat_pay", "external_id": "R-1"},
                    token=token_a, key="refund-1")
    # then
    assert response.status_code == 201
    body = response.json()
    assert (body["amount_fen"], body["order_refunded_fen"], body["order_status"]) == (
        30000, 30000, "partially_refunded")
    assert body["lines"] == [{"line_id": order["lines"][0]["id"], "amount_fen": 25000},
                             {"line_id": order["lines"][1]["id"], "amount_fen": 5000}]
    patient_a.refresh_from_db()
    assert patient_a.lifetime_spend_fen == 55000


def test_refunding_more_than_was_paid_is_422_and_changes_nothing(client, patient_a, catalogue, token_a):
    # given
    order = recorded_order(client, patient_a, token_a)
    # when
    response = post(client, f"/api/orders/{order['id']}/refunds", {"amount_fen": 85001}, token=token_a,
                    key="refund-1")
    # then
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "body.amount_fen",
                                          "message": "must be between 1 and 85000 fen (what is left to refund)",
                                          "value": "85001"}]
    assert Refund.objects.count() == 0
    assert Order.objects.get().refunded_fen == 0
    patient_a.refresh_from_db()
    assert patient_a.lifetime_spend_fen == 85000


def test_a_refund_naming_both_an_amount_and_lines_is_422_on_both_fields(client, patient_a, catalogue, token_a):
    # given
    order = recorded_order(client, patient_a, token_a)
    # when
    response = post(client, f"/api/orders/{order['id']}/refunds",
                    {"amount_fen": 100, "lines": [{"line_id": order["lines"][0]["id"], "amount_fen": 100}]},
                    token=token_a, key="refund-1")
    # then
    assert response.status_code == 422
    message = 'give one of amount_fen, lines and "whole": true, not amount_fen and lines'
    assert response.json()["errors"] == [{"field": "body.amount_fen", "message": message, "value": "100"},
                                         {"field": "body.lines", "message": message}]
    assert Refund.objects.count() == 0


@pytest.mark.parametrize("body", [{}, {"reason": "牙刷退货"}, {"whole": False, "method": "cash"}])
def test_a_refund_that_names_no_amount_lines_or_whole_is_422_and_refunds_nothing(client, patient_a, catalogue,
                                                                                 token_a, body):
    # given
    order = recorded_order(client, patient_a, token_a)
    # when a client drops its amount by mistake (`{}` refunded the whole bill)
    response = post(client, f"/api/orders/{order['id']}/refunds", body, token=token_a, key="refund-1")
    # then
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.amount_fen", "body.lines", "body.whole"]
    assert response.json()["errors"][0]["message"] == ('give amount_fen (an amount), lines (how much of each line) '
                                                       'or "whole": true (everything not yet refunded)')
    assert Refund.objects.count() == 0 and Order.objects.get().refunded_fen == 0


def test_a_whole_refund_gives_back_what_is_left_and_not_with_an_amount(client, patient_a, catalogue, token_a):
    # given an order partly refunded
    order = recorded_order(client, patient_a, token_a)
    url = f"/api/orders/{order['id']}/refunds"
    assert post(client, url, {"amount_fen": 30000}, token=token_a, key="refund-1").status_code == 201
    # when the rest is refunded with "whole", or "whole" is sent with an amount
    both = post(client, url, {"whole": True, "amount_fen": 100}, token=token_a, key="refund-2")
    whole = post(client, url, {"whole": True, "reason": "全部退款"}, token=token_a, key="refund-3")
    # then
    assert (both.status_code, [e["field"] for e in both.json()["errors"]]) == (422, ["body.amount_fen", "body.whole"])
    assert whole.status_code == 201, whole.content
    assert (whole.json()["amount_fen"], whole.json()["order_status"]) == (55000, "refunded")


def test_a_refund_of_a_clinic_b_order_is_404_and_changes_nothing(client, clinic_b, patient_b, catalogue,
                                                                   token_a):
    # given
    order, _ = order_record(customer=patient_b, clinic=clinic_b, ordered_at=timezone.now(),
                            lines=[{"item_code": "CL01"}], payments=[{"method": "cash", "amount_fen": 30000}])
    # when
    response = post(client, f"/api/orders/{order.id}/refunds", {"amount_fen": 100}, token=token_a)
    # then
    assert response.status_code == 404
    assert response.json()["message"] == "Order not found"
    assert Refund.objects.count() == 0
    order.refresh_from_db()
    assert order.refunded_fen == 0


# --- treatment plans ----------------------------------------------------------------------------------

def implant_plan(customer, **extra):
    return {"customer_id": customer.id, "clinic": "SH01", "title": "种植方案", "external_id": "PLAN-1",
            "doctor": "director_a",
            "steps": [{"seq": 1, "item_code": "EX01"}, {"seq": 2, "item_code": "IM01", "tooth": "36"}],
            **extra}


def test_a_plan_is_recorded_and_its_progress_follows_step_updates(client, patient_a, catalogue, director_token):
    # given
    plan = post(client, "/api/treatment-plans", implant_plan(patient_a), token=director_token, key="p1").json()
    # when
    response = post(client, f"/api/treatment-plans/{plan['id']}/steps/1",
                    {"status": "done", "done_at": "2025-03-02T15:00:00"}, token=director_token, key="p2")
    # then
    assert plan["progress_percent"] == 0
    assert plan["estimated_fen"] == 1205000
    assert response.status_code == 200
    body = response.json()
    assert (body["steps_total"], body["steps_done"], body["progress_percent"], body["status"]) == (
        2, 1, 50, "active")
    assert body["steps"][0]["done_at"] == "2025-03-02T15:00:00+08:00"
    assert PlanStep.objects.get(seq=1).status == "done"


def test_finishing_the_last_step_completes_the_plan(client, patient_a, catalogue, director_token):
    # given
    plan = post(client, "/api/treatment-plans", implant_plan(patient_a, steps=[
        {"seq": 1, "item_code": "EX01", "status": "done"}, {"seq": 2, "item_code": "IM01"}]),
        token=director_token, key="p1").json()
    # when
    response = post(client, f"/api/treatment-plans/{plan['id']}/steps/2", {"status": "done"},
                    token=director_token, key="p2")
    # then
    assert response.json()["status"] == "completed"
    assert response.json()["progress_percent"] == 100


def test_progress_of_a_step_the_plan_does_not_have_is_422_and_changes_nothing(client, patient_a, catalogue,
                                                                               director_token):
    # given
    plan = post(client, "/api/treatment-plans", implant_plan(patient_a), token=director_token, key="p1").json()
    # when
    response = post(client, f"/api/treatment-plans/{plan['id']}/steps/9", {"status": "done"},
                    token=director_token, key="p2")
    # then
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "path.seq", "message": "is not a step of this plan", "value": "9"}]
    assert TreatmentPlan.objects.get().steps_done == 0


def test_a_role_without_health_edit_may_not_record_a_plan(client, patient_a, catalogue, token_a):
    # when
    response = post(client, "/api/treatment-plans", implant_plan(patient_a), token=token_a)
    # then
    assert response.status_code == 403
    assert response.json()["message"] == "Your role (front_desk) lacks the permission 'health.edit'"
    assert TreatmentPlan.objects.count() == 0


def test_a_plan_for_a_clinic_b_patient_is_404_and_writes_nothing(client, patient_b, catalogue, director_token):
    # when
    response = post(client, "/api/treatment-plans", implant_plan(patient_b), token=director_token)
    # then
    assert response.status_code == 404
    assert TreatmentPlan.objects.count() == 0


# --- procedures ---------------------------------------------------------------------------------------

def test_a_procedure_is_recorded_once_per_external_id(client, patient_a, director_a, catalogue, director_token):
    # given
    body = {"customer_id": patient_a.id, "clinic": "SH01", "item_code": "FI01", "performed_on": "2025-03-01",
            "doctor": "director_a", "tooth": "46", "external_id": "PR-1"}
    # when
    first = post(client, "/api/procedures", body, token=director_token, key="pr1")
    again = post(client, "/api/procedures", body, token=director_token, key="pr2")
    # then
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    assert (first.json()["item_code"], first.json()["tooth"], first.json()["performed_on"]) == (
        "FI01", "46", "2025-03-01")
    assert Procedure.objects.count() == 1


def test_a_procedure_with_an_unknown_item_and_a_bad_date_is_422_field_by_field(client, patient_a, director_token):
    # when
    response = post(client, "/api/procedures", {"customer_id": patient_a.id, "clinic": "SH01", "item_code": "X",
                                                "performed_on": "2025-02-30"}, token=director_token)
    # then
    assert response.status_code == 422
    assert [(e["field"], e.get("value")) for e in response.json()["errors"]] == [("body.performed_on", "2025-02-30")]
    assert Procedure.objects.count() == 0
