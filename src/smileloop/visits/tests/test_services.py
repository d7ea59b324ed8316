import datetime as dt

import pytest
from django.utils import timezone

from smileloop.core.errors import ValidationFailed
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.visits.enums import OrderStatus, PlanStatus
from smileloop.visits.models import Order, OrderLine, Payment, Refund
from smileloop.visits.selectors import unfinished_plan_list
from smileloop.visits.services import (
    appointment_upsert,
    order_record,
    plan_record,
    plan_step_update,
    procedure_record,
    refund_record,
)


@pytest.fixture
def patient(chain, clinic_a):
    return CustomerFactory(chain=chain, name="张三", home_clinic=clinic_a)


def test_order_record_stores_lines_payments_and_updates_customer_figures(patient, clinic_a, catalogue):
    # given
    when = timezone.now() - dt.timedelta(days=3)
    # when
    order, created = order_record(
        customer=patient, clinic=clinic_a, ordered_at=when, external_id="POS-1",
        lines=[{"item_code": "CL01", "discount_fen": 3000}, {"item_code": "OC01", "quantity": 2}],
        payments=[{"method": "wechat_pay", "amount_fen": 50000}, {"method": "cash", "amount_fen": 56800}],
    )
    # then
    assert created
    assert (order.list_total_fen, order.discount_fen, order.amount_fen) == (109800, 3000, 106800)
    assert sorted(OrderLine.objects.filter(order=order).values_list("amount_fen", flat=True)) == [27000, 79800]
    patient.refresh_from_db()
    assert patient.lifetime_spend_fen == 106800
    assert patient.stage == "treated" and patient.first_visit_at == when == patient.last_visit_at


def test_order_record_with_same_external_id_returns_the_first_order(patient, clinic_a, catalogue):
    args = dict(customer=patient, clinic=clinic_a, ordered_at=timezone.now(), external_id="POS-2",
                lines=[{"item_code": "EX01"}], payments=[{"method": "cash", "amount_fen": 5000}])
    first, _ = order_record(**args)
    again, created = order_record(**args)
    assert not created and again.id == first.id
    patient.refresh_from_db()
    assert patient.lifetime_spend_fen == 5000 and Order.objects.count() == 1


@pytest.mark.parametrize(("change", "part"), [
    ({"lines": [{"item_code": "EX01", "quantity": 2}]}, "lines"),
    ({"lines": [{"item_code": "EX01"}, {"item_code": "CL01"}]}, "lines"),
    ({"lines": [{"item_code": "EX01", "discount_fen": 1000}]}, "lines"),
    ({"payments": [{"method": "wechat_pay", "amount_fen": 5000}]}, "payments"),
    ({"ordered_at": "a day later"}, "ordered_at"),
    ({"clinic": "clinic_b"}, "clinic"),
])
def test_a_bill_sent_again_with_a_change_is_a_conflict_naming_it_and_the_first_stays(patient, clinic_a, clinic_b,
                                                                                     catalogue, change, part):
    from smileloop.core.errors import Conflict

    when = timezone.now() - dt.timedelta(days=2)
    args = dict(customer=patient, clinic=clinic_a, ordered_at=when, external_id="POS-9",
                lines=[{"item_code": "EX01"}], payments=[{"method": "cash", "amount_fen": 5000}])
    first, _ = order_record(**args)
    # the same bill sent again, as the POS would: a line's defaults spelled out, the first answered
    again, created = order_record(**{**args, "lines": [{"item_code": "EX01", "quantity": 1, "discount_fen": 0,
                                                        "unit_price_fen": 5000}]})
    assert (again.pk, created) == (first.pk, False)
    # a changed bill: it was answered with the first one, the change lost without a word
    changed = {**args, **change}
    changed["ordered_at"] = when + dt.timedelta(days=1) if change.get("ordered_at") else when
    changed["clinic"] = clinic_b if change.get("clinic") else clinic_a
    if part == "payments":  # payments that add up, so only the difference is refused
        changed["payments"] = change["payments"]
    with pytest.raises(Conflict) as refused:
        order_record(**changed)
    assert refused.value.code == "external_id_conflict" and f"other {part};" in refused.value.message
    assert Order.objects.count() == 1 and Payment.objects.get().method == "cash"
    patient.refresh_from_db()
    assert patient.lifetime_spend_fen == 5000


def test_order_whose_payments_do_not_add_up_is_rejected_and_nothing_written(patient, clinic_a, catalogue):
    with pytest.raises(ValidationFailed) as err:
        order_record(customer=patient, clinic=clinic_a, ordered_at=timezone.now(),
                     lines=[{"item_code": "EX01"}, {"item_code": "NOPE"}],
                     payments=[{"method": "cash", "amount_fen": 4000}])
    assert [e.field for e in err.value.errors] == ["lines[1].item_code"]
    with pytest.raises(ValidationFailed) as err:
        order_record(customer=patient, clinic=clinic_a, ordered_at=timezone.now(),
                     lines=[{"item_code": "EX01"}], payments=[{"method": "cash", "amount_fen": 4000}])
    assert [e.field for e in err.value.errors] == ["payments"]
    assert Order.objects.count() == Payment.objects.count() == 0
    patient.refresh_from_db()
    assert patient.lifetime_spend_fen == 0 and patient.stage == "lead"


def test_partial_then_full_refund_never_exceeds_what_was_paid(patient, clinic_a, catalogue):
    order, _ = order_record(customer=patient, clinic=clinic_a, ordered_at=timezone.now(),
                            lines=[{"item_code": "FI01"}], payments=[{"method": "alipay", "amount_fen": 60000}])
    refund_record(order=order, amount_fen=10000, reason="patient complaint", external_id="R1")
    order.refresh_from_db()
    assert order.status == OrderStatus.PARTIALLY_REFUNDED and order.refunded_fen == 10000
    with pytest.raises(ValidationFailed):
        refund_record(order=order, amount_fen=50001)
    refund_record(order=order)  # the rest
    order.refresh_from_db()
    patient.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED and order.refunded_fen == 60000
    assert patient.lifetime_spend_fen == 0
    assert Refund.objects.count() == 2
    again, created = refund_record(order=order, amount_fen=10000, external_id="R1")
    assert not created


def test_plan_progress_makes_unfinished_and_half_done_plain_queries(patient, clinic_a, catalogue, admin_scope):
    plan, _ = plan_record(customer=patient, clinic=clinic_a, title="种植方案", external_id="PL1", steps=[
        {"seq": 1, "item_code": "EX01", "status": "done"},
        {"seq": 2, "item_code": "IM01", "tooth": "36"},
        {"seq": 3, "item_code": "CL01"},
        {"seq": 4, "item_code": "FI01"},
    ])
    assert (plan.steps_total, plan.steps_done, plan.status) == (4, 1, PlanStatus.ACTIVE)
    assert list(unfinished_plan_list(admin_scope, min_progress_percent=50)) == []
    plan_step_update(plan=plan, seq=2, status="done")
    assert list(unfinished_plan_list(admin_scope, min_progress_percent=50)) == [plan]
    for seq in (3, 4):
        plan_step_update(plan=plan, seq=seq, status="done")
    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED and plan.progress_percent == 100
    assert list(unfinished_plan_list(admin_scope)) == []


def test_completed_appointment_counts_as_a_visit_once(patient, clinic_a, catalogue):
    start = timezone.now() - dt.timedelta(days=1)
    appt, created = appointment_upsert(customer=patient, clinic=clinic_a, start_at=start,
                                       end_at=start + dt.timedelta(minutes=30), external_id="A1")
    assert created
    appointment_upsert(customer=patient, clinic=clinic_a, start_at=start, end_at=start + dt.timedelta(minutes=30),
                       external_id="A1", status="completed")
    appointment_upsert(customer=patient, clinic=clinic_a, start_at=start, end_at=start + dt.timedelta(minutes=30),
                       external_id="A1", status="completed", notes="again")
    patient.refresh_from_db()
    assert patient.visit_count == 1 and patient.last_visit_at == start


def _visits(patient) -> int:
    patient.refresh_from_db()
    return patient.visit_count


def _bill(patient, clinic, at, key):
    return order_record(customer=patient, clinic=clinic, ordered_at=at, external_id=key,
                        lines=[{"item_code": "CL01"}], payments=[])


def _appointment(patient, clinic, at, key, status="completed"):
    return appointment_upsert(customer=patient, clinic=clinic, start_at=at, end_at=at + dt.timedelta(minutes=30),
                              external_id=key, status=status)


def test_a_bill_without_an_appointment_is_a_visit_once_a_day(patient, clinic_a, catalogue):
    # given the chain's local days (Asia/Shanghai): 23:30 and 00:30 are two days
    day = timezone.localtime(timezone.now() - dt.timedelta(days=10)).replace(hour=23, minute=30, second=0,
                                                                             microsecond=0)
    # when a walk-in pays twice on one day, then just after midnight
    _bill(patient, clinic_a, day - dt.timedelta(hours=12), "B1")
    assert _visits(patient) == 1
    _bill(patient, clinic_a, day, "B2")
    assert _visits(patient) == 1
    _bill(patient, clinic_a, day + dt.timedelta(hours=1), "B3")
    # then each day they paid is one visit, and a replayed bill counts nothing
    assert _visits(patient) == 2
    _bill(patient, clinic_a, day + dt.timedelta(hours=1), "B3")
    assert _visits(patient) == 2


def test_a_bill_and_an_appointment_on_one_day_are_one_visit_whichever_comes_first(patient, clinic_a, catalogue):
    # given
    morning = timezone.localtime(timezone.now() - dt.timedelta(days=5)).replace(hour=9, minute=0)
    # when the appointment is completed, then the bill recorded (day 1); the bill first, then the appointment (day 2)
    _appointment(patient, clinic_a, morning, "A1")
    _bill(patient, clinic_a, morning + dt.timedelta(hours=1), "B1")
    assert _visits(patient) == 1
    _bill(patient, clinic_a, morning + dt.timedelta(days=1), "B2")
    _appointment(patient, clinic_a, morning + dt.timedelta(days=1, hours=-1), "A2", status="arrived")
    # then each day is one visit
    assert _visits(patient) == 2
    # and a second appointment on a day counts, as appointments always have (a cleaning and an exam)
    _appointment(patient, clinic_a, morning + dt.timedelta(days=1, hours=2), "A3")
    assert _visits(patient) == 3
    # a booked appointment is no visit, and a bill on its day is
    _appointment(patient, clinic_a, morning + dt.timedelta(days=2), "A4", status="booked")
    _bill(patient, clinic_a, morning + dt.timedelta(days=2, hours=1), "B3")
    assert _visits(patient) == 4


def test_appointment_ending_before_it_starts_is_rejected(patient, clinic_a):
    start = timezone.now()
    with pytest.raises(ValidationFailed) as err:
        appointment_upsert(customer=patient, clinic=clinic_a, start_at=start, end_at=start, status="maybe")
    assert {e.field for e in err.value.errors} == {"end_at", "status"}


def test_procedure_in_the_future_or_unknown_item_is_rejected(patient, clinic_a, catalogue):
    with pytest.raises(ValidationFailed) as err:
        procedure_record(customer=patient, clinic=clinic_a, item_code="XX",
                         performed_on=timezone.localdate() + dt.timedelta(days=10))
    assert {e.field for e in err.value.errors} == {"item_code", "performed_on"}
    proc, created = procedure_record(customer=patient, clinic=clinic_a, item_code="IM01", tooth="36",
                                     performed_on=timezone.localdate(), external_id="P1")
    assert created and proc.item.is_surgical


def test_a_procedure_sent_again_answers_the_first_and_a_changed_one_is_a_conflict(patient, clinic_a, catalogue):
    from smileloop.core.errors import Conflict

    args = dict(customer=patient, clinic=clinic_a, item_code="IM01", tooth="36", notes="术后复查",
                performed_on=timezone.localdate() - dt.timedelta(days=1), external_id="P2")
    first, _ = procedure_record(**args)
    again, created = procedure_record(**{**args, "notes": "another note is no other procedure"})
    assert (again.pk, created) == (first.pk, False)
    # another tooth or day: it was answered with the first one, the correction lost without a word
    for change, named in (({"tooth": "46"}, "tooth"), ({"performed_on": timezone.localdate()}, "performed_on"),
                          ({"item_code": "EX01"}, "item_code")):
        with pytest.raises(Conflict) as refused:
            procedure_record(**{**args, **change})
        assert refused.value.code == "external_id_conflict" and refused.value.message.endswith(f"another {named}")
    first.refresh_from_db()
    assert (first.tooth, first.item.code) == ("36", "IM01")
