"""Edges of the ingestion API found by sending what a PMS/POS gets wrong or sends twice: a step or plan re-sent
keeps (or corrects) the day its steps were done, a plan finished in the past is completed on that day, an erased
patient's booking notes stay blank when the PMS syncs the booking again, and a refund the orders API records is
money, never "back to points" that nothing credits. Each refusal names its field and writes nothing."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from smileloop.core.errors import ValidationFailed
from smileloop.customers.privacy import customer_erase
from smileloop.visits.models import Appointment, Order, OrderLine, PlanStep, Refund, TreatmentPlan
from smileloop.visits.services import plan_record
from smileloop.visits.tests.test_api import cleaning_order as recorded_order_body
from smileloop.visits.tests.test_api import implant_plan, post, recorded_order
from smileloop.visits.tests.test_visit_invariants import snapshot, snapshot_diff

pytestmark = pytest.mark.django_db


def at(text: str) -> dt.datetime:
    """An ISO local time of the chain (Asia/Shanghai), aware."""
    return timezone.make_aware(dt.datetime.fromisoformat(text))


# --- treatment plans -------------------------------------------------------------------------------------------


def test_a_step_sent_done_again_without_a_day_keeps_the_day_it_was_done(
    client, patient_a, catalogue, director_token
):
    # given a step recorded done on 1 March 2025
    plan = post(
        client, "/api/treatment-plans", implant_plan(patient_a), token=director_token, key="p1"
    ).json()
    url = f"/api/treatment-plans/{plan['id']}/steps/1"
    post(client, url, {"status": "done", "done_at": "2025-03-01T10:00:00"}, token=director_token, key="s1")
    # when the PMS sends the step done again (a retry with a new key), without its day
    response = post(client, url, {"status": "done"}, token=director_token, key="s2")
    # then it is still done on 1 March, not today
    assert response.status_code == 200, response.content
    assert response.json()["steps"][0]["done_at"] == "2025-03-01T10:00:00+08:00"
    assert PlanStep.objects.get(plan_id=plan["id"], seq=1).done_at == at("2025-03-01T10:00:00")


def test_a_plan_re_sent_corrects_the_day_a_step_was_done_and_otherwise_keeps_it(
    client, patient_a, catalogue, director_token
):
    # given a plan whose two steps the PMS reported done on 1 and 8 March 2025
    steps = [
        {"seq": 1, "item_code": "EX01", "status": "done", "done_at": "2025-03-01T10:00:00"},
        {"seq": 2, "item_code": "IM01", "status": "done", "done_at": "2025-03-08T10:00:00"},
    ]
    post(client, "/api/treatment-plans", implant_plan(patient_a, steps=steps), token=director_token, key="p1")
    # when it re-sends the plan with step 1 corrected to 2 March and step 2 without its day
    corrected = [
        {**steps[0], "done_at": "2025-03-02T10:00:00"},
        {"seq": 2, "item_code": "IM01", "status": "done"},
    ]
    response = post(
        client,
        "/api/treatment-plans",
        implant_plan(patient_a, steps=corrected),
        token=director_token,
        key="p2",
    )
    # then step 1 is done on the corrected day and step 2 keeps its own
    assert response.status_code == 200, response.content
    assert [s["done_at"] for s in response.json()["steps"]] == [
        "2025-03-02T10:00:00+08:00",
        "2025-03-08T10:00:00+08:00",
    ]
    assert list(PlanStep.objects.order_by("seq").values_list("done_at", flat=True)) == [
        at("2025-03-02T10:00:00"),
        at("2025-03-08T10:00:00"),
    ]


def test_a_plan_whose_steps_were_all_done_in_the_past_is_completed_on_the_last_steps_day(
    client, patient_a, catalogue, director_token
):
    # when a PMS back-fills a plan whose steps were done in 2024
    steps = [
        {"seq": 1, "item_code": "EX01", "status": "done", "done_at": "2024-01-02T10:00:00"},
        {"seq": 2, "item_code": "IM01", "status": "done", "done_at": "2024-03-01T15:00:00"},
    ]
    response = post(
        client,
        "/api/treatment-plans",
        implant_plan(patient_a, planned_at="2024-01-01T09:00:00", steps=steps),
        token=director_token,
    )
    # then it was completed when its last step was done, not today (a membership begun in 2025 must not count it
    # as a plan finished during the membership: membership.services.benefits._plans_since)
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "completed"
    assert response.json()["completed_at"] == "2024-03-01T15:00:00+08:00"
    assert TreatmentPlan.objects.get().completed_at == at("2024-03-01T15:00:00")


def test_a_plan_completed_by_its_last_step_progress_is_completed_on_that_steps_day(
    client, patient_a, catalogue, director_token
):
    # given a plan with step 1 done
    steps = [
        {"seq": 1, "item_code": "EX01", "status": "done", "done_at": "2024-01-02T10:00:00"},
        {"seq": 2, "item_code": "IM01"},
    ]
    plan = post(
        client, "/api/treatment-plans", implant_plan(patient_a, steps=steps), token=director_token, key="p1"
    ).json()
    # when the PMS reports step 2 done on 1 March 2024
    response = post(
        client,
        f"/api/treatment-plans/{plan['id']}/steps/2",
        {"status": "done", "done_at": "2024-03-01T15:00:00"},
        token=director_token,
        key="s2",
    )
    # then the plan was completed that day
    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["completed_at"]) == (
        "completed",
        "2024-03-01T15:00:00+08:00",
    )


def test_a_plan_re_sent_with_another_planned_day_moves_it(client, patient_a, catalogue, director_token):
    # given a plan planned on 1 March 2025
    post(
        client,
        "/api/treatment-plans",
        implant_plan(patient_a, planned_at="2025-03-01T10:00:00"),
        token=director_token,
        key="p1",
    )
    # when the PMS re-sends it planned on 20 February (re-sending replaces the plan by this body)
    response = post(
        client,
        "/api/treatment-plans",
        implant_plan(patient_a, planned_at="2025-02-20T10:00:00"),
        token=director_token,
        key="p2",
    )
    # then it is planned on 20 February; a re-send without a day keeps it
    again = post(client, "/api/treatment-plans", implant_plan(patient_a), token=director_token, key="p3")
    assert (response.status_code, again.status_code) == (200, 200)
    assert response.json()["planned_at"] == again.json()["planned_at"] == "2025-02-20T10:00:00+08:00"
    assert TreatmentPlan.objects.get().planned_at == at("2025-02-20T10:00:00")


# --- an erased patient ---------------------------------------------------------------------------------------


def test_an_erased_patients_booking_synced_again_does_not_get_its_blanked_notes_back(
    client, patient_a, director_a, director_scope, director_token
):
    # given a booking whose notes name the patient, then the patient's personal information erased (PIPL)
    booking = {
        "customer_id": patient_a.id,
        "clinic": "SH01",
        "start_at": "2025-03-01T09:00:00",
        "end_at": "2025-03-01T09:30:00",
        "external_id": "PMS-A1",
        "notes": "张三要求女医生，电话13800138000",
    }
    assert post(client, "/api/appointments", booking, token=director_token, key="a1").status_code == 201
    customer_erase(scope=director_scope, customer=patient_a, actor=director_a, reason="本人要求删除")
    assert Appointment.objects.get().notes == ""
    # when the PMS syncs the booking again (now completed) and books another, both with notes naming the patient
    synced = post(
        client, "/api/appointments", {**booking, "status": "completed"}, token=director_token, key="a2"
    )
    another = post(
        client, "/api/appointments", {**booking, "external_id": "PMS-A2"}, token=director_token, key="a3"
    )
    # then the visit is recorded with no notes stored again, and the new booking is refused: a returning patient is
    # a new record
    assert (synced.status_code, another.status_code) == (200, 409)
    assert synced.json()["status"] == "completed"
    assert synced.json()["notes"] == ""
    assert (another.json()["code"], another.json()["errors"][0]["field"]) == ("erased", "body.customer_id")
    assert list(Appointment.objects.values_list("notes", flat=True)) == [""]


def test_an_erased_record_gets_no_new_bill_plan_or_procedure_but_its_earlier_ones_are_still_kept_current(
    client, patient_a, catalogue, director_a, director_scope, director_token
):
    # given a bill and a plan of before the erasure
    order = recorded_order(client, patient_a, director_token)
    plan = post(client, "/api/treatment-plans", implant_plan(patient_a), token=director_token, key="p1").json()
    customer_erase(scope=director_scope, customer=patient_a, actor=director_a, reason="本人要求删除")
    before = snapshot()
    # when the POS and the PMS send new records about the erased record
    new = [
        post(client, "/api/orders", {**recorded_order_body(patient_a), "external_id": "POS-2"},
             token=director_token, key="o2"),
        post(client, "/api/treatment-plans", implant_plan(patient_a, external_id="PLAN-2"), token=director_token,
             key="p2"),
        post(client, "/api/procedures", {"customer_id": patient_a.id, "clinic": "SH01", "item_code": "FI01",
                                         "performed_on": "2025-03-01", "tooth": "26"}, token=director_token,
             key="pr1"),
    ]
    # then each is refused by name and nothing is written
    assert [(r.status_code, r.json()["code"]) for r in new] == [(409, "erased")] * 3
    assert snapshot_diff(before, snapshot()) == []
    # and the earlier bill's refund and the earlier plan's progress are still taken
    refund = post(client, f"/api/orders/{order['id']}/refunds", {"amount_fen": 1000, "method": "cash"},
                  token=director_token, key="r1")
    step = post(client, f"/api/treatment-plans/{plan['id']}/steps/1", {"status": "done"}, token=director_token,
                key="s1")
    assert (refund.status_code, step.status_code) == (201, 200), (refund.content, step.content)


# --- refunds -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["points", "wallet", "gift_card", "voucher"])
def test_a_refund_to_stored_value_points_or_cards_is_422_on_its_method_and_changes_nothing(
    client, patient_a, catalogue, director_token, method
):
    # given a bill paid by WeChat and in cash
    order = recorded_order(client, patient_a, director_token)
    before = snapshot()
    # when the POS records a refund of it "to points" (or the wallet, a gift card, a voucher): nothing here credits them
    response = post(
        client,
        f"/api/orders/{order['id']}/refunds",
        {"amount_fen": 1000, "method": method},
        token=director_token,
        key="r1",
    )
    # then it is refused on its method and nothing is written
    assert response.status_code == 422, response.content
    assert [e["field"] for e in response.json()["errors"]] == ["body.method"]
    assert response.json()["errors"][0]["message"].startswith(
        "must be one of cash, wechat_pay, alipay, bank_card, insurance, other"
    )
    assert snapshot_diff(before, snapshot()) == []
    assert not Refund.objects.exists()
    assert Order.objects.get(pk=order["id"]).refunded_fen == 0
    assert set(OrderLine.objects.values_list("refunded_fen", flat=True)) == {0}


def test_a_refund_in_money_is_still_recorded(client, patient_a, catalogue, director_token):
    order = recorded_order(client, patient_a, director_token)
    response = post(
        client,
        f"/api/orders/{order['id']}/refunds",
        {"amount_fen": 1000, "method": "wechat_pay"},
        token=director_token,
        key="r1",
    )
    assert response.status_code == 201, response.content
    assert (response.json()["method"], response.json()["order_refunded_fen"]) == ("wechat_pay", 1000)


def test_a_steps_progress_costs_the_same_queries_whatever_the_plans_size(
    client, patient_a, catalogue, director_token
):
    def progress_queries(external_id: str, steps: int) -> int:
        body = implant_plan(
            patient_a,
            external_id=external_id,
            steps=[{"seq": n, "item_code": "FI01"} for n in range(1, steps + 1)],
        )
        plan = post(client, "/api/treatment-plans", body, token=director_token, key=f"{external_id}-p").json()
        with CaptureQueriesContext(connection) as queries:
            response = post(
                client,
                f"/api/treatment-plans/{plan['id']}/steps/1",
                {"status": "done"},
                token=director_token,
                key=f"{external_id}-s",
            )
        assert response.status_code == 200, response.content
        return len(queries)

    # when one step of a 2-step plan and one of a 40-step plan are recorded done
    # then both cost the same queries (the recount read each step's item one query at a time: N+1)
    assert progress_queries("SMALL", 2) == progress_queries("LARGE", 40)


def test_a_plan_of_more_steps_than_any_treatment_has_is_refused_by_the_api_and_the_service(
    client, patient_a, clinic_a, catalogue, director_token
):
    # 3,000 steps took 8 s in one request; a full-mouth rehabilitation is well under 200
    steps = [{"seq": n, "item_code": "EX01"} for n in range(1, 202)]
    response = post(client, "/api/treatment-plans", implant_plan(patient_a, steps=steps), token=director_token,
                    key="big")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.steps"
    with pytest.raises(ValidationFailed) as refused:
        plan_record(customer=patient_a, clinic=clinic_a, title="全口种植", steps=steps)
    assert [(e.field, e.message) for e in refused.value.errors] == [("steps", "a plan has at most 200 steps")]
    assert not TreatmentPlan.objects.exists()
    # 200 are taken
    assert post(client, "/api/treatment-plans", implant_plan(patient_a, steps=steps[:200]), token=director_token,
                key="ok").status_code == 201
