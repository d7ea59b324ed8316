"""A refund recorded on an order goes back by a way the bill was paid: where the order has payments recorded by
method, `refund_record` refuses a method that did not pay it, or more than that method paid less what was refunded
to it, naming what is left to each method, and writes nothing. A bill recorded without payments (imported) takes
any money method, as before."""

import pytest
from django.utils import timezone

from smileloop.core.errors import ValidationFailed
from smileloop.visits.models import Order, Refund
from smileloop.visits.services import order_record, refund_record
from smileloop.visits.tests.test_api import cleaning_order, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient(patient_a):
    return patient_a


def bill(patient, clinic, payments):
    """A cleaning (CL01) and a filling (FI01), ¥900.00, paid as `payments` say (None: recorded without payments)."""
    order, _ = order_record(customer=patient, clinic=clinic, ordered_at=timezone.now(),
                            lines=[{"item_code": "CL01"}, {"item_code": "FI01"}], payments=payments)
    assert order.amount_fen == 90000
    return order


def nothing_written(order, patient, spend):
    assert not Refund.objects.filter(order=order).exists()
    assert Order.objects.get(pk=order.pk).refunded_fen == 0
    patient.refresh_from_db()
    assert patient.lifetime_spend_fen == spend


def test_a_bill_paid_only_in_cash_is_not_refunded_to_wechat_pay(patient, clinic_a, catalogue):
    # given a bill paid in cash
    order = bill(patient, clinic_a, [{"method": "cash", "amount_fen": 90000}])
    # when a refund of part of it is recorded to WeChat Pay
    with pytest.raises(ValidationFailed) as refused:
        refund_record(order=order, amount_fen=1000, method="wechat_pay")
    # then it is refused on its method, saying what is left to the method that paid, and nothing is written
    assert [(e.field, e.message, e.value) for e in refused.value.errors] == [
        ("method", "this bill was not paid by wechat_pay: refund to a method that paid it (cash 90000 fen left)",
         "wechat_pay")]
    nothing_written(order, patient, 90000)


def test_no_more_goes_back_to_a_method_than_it_paid_less_what_was_refunded_to_it(patient, clinic_a, catalogue):
    # given a bill paid ¥250.00 in cash and ¥650.00 by WeChat Pay
    order = bill(patient, clinic_a, [{"method": "cash", "amount_fen": 25000},
                                     {"method": "wechat_pay", "amount_fen": 65000}])
    # when ¥300.00 is refunded to cash
    with pytest.raises(ValidationFailed) as refused:
        refund_record(order=order, amount_fen=30000, method="cash")
    # then it is refused on the amount, naming what is left to each method, and nothing is written
    assert [(e.field, e.message) for e in refused.value.errors] == [
        ("amount_fen", "cash has 25000 fen left to refund (what it paid less what was refunded to it), less than "
                       "30000 fen; left by method: cash 25000 fen left, wechat_pay 65000 fen left")]
    nothing_written(order, patient, 90000)
    # and what cash paid goes back to cash, once
    refund_record(order=order, amount_fen=25000, method="cash")
    with pytest.raises(ValidationFailed) as again:
        refund_record(order=order, amount_fen=1, method="cash")
    assert [e.field for e in again.value.errors] == ["amount_fen"]
    assert "cash 0 fen left, wechat_pay 65000 fen left" in again.value.errors[0].message
    # the rest goes back to WeChat Pay, named or not (the one method with something left)
    refund, created = refund_record(order=order)
    assert created and (refund.method, refund.amount_fen) == ("wechat_pay", 65000)
    assert list(Refund.objects.filter(order=order).order_by("id").values_list("method", "amount_fen")) == [
        ("cash", 25000), ("wechat_pay", 65000)]
    assert Order.objects.get(pk=order.pk).refunded_fen == 90000


def test_a_refund_of_lines_beyond_its_method_is_refused_on_the_lines(patient, clinic_a, catalogue):
    order = bill(patient, clinic_a, [{"method": "cash", "amount_fen": 25000},
                                     {"method": "alipay", "amount_fen": 65000}])
    filling = order.lines.get(item__code="FI01")
    with pytest.raises(ValidationFailed) as refused:
        refund_record(order=order, lines=[{"line_id": filling.id, "amount_fen": 60000}], method="cash")
    assert [e.field for e in refused.value.errors] == ["lines"]
    nothing_written(order, patient, 90000)


def test_a_refund_naming_no_method_of_a_bill_paid_two_ways_is_split_over_them_by_what_each_has_left(
        patient, clinic_a, catalogue):
    # a POS that never sends a method keeps working: the refund goes back over the methods that paid, in proportion
    # to what each has left (one Refund each; test_refund_split.py), no longer one `other` that no method counted
    order = bill(patient, clinic_a, [{"method": "cash", "amount_fen": 25000},
                                     {"method": "wechat_pay", "amount_fen": 65000}])
    refund, created = refund_record(order=order, amount_fen=30000)
    assert created and (refund.method, refund.amount_fen) == ("cash", 8333)
    assert list(Refund.objects.filter(order=order).order_by("id").values_list("method", "amount_fen", "split_of")) == [
        ("cash", 8333, None), ("wechat_pay", 21667, refund.id)]
    # and a named method still gets no more than it has left, nor more than the bill has left
    with pytest.raises(ValidationFailed) as refused:
        refund_record(order=order, amount_fen=43334, method="wechat_pay")
    assert [e.field for e in refused.value.errors] == ["amount_fen"]
    assert "cash 16667 fen left, wechat_pay 43333 fen left" in refused.value.errors[0].message
    refund_record(order=order, amount_fen=43333, method="wechat_pay")
    refund_record(order=order, amount_fen=16667, method="cash")
    assert Order.objects.get(pk=order.pk).refunded_fen == 90000


def test_a_bill_paid_from_stored_value_takes_no_money_refund_here(patient, clinic_a, catalogue):
    # a POS bill recording a stored-value payment: nothing here gives stored value back, and it never was cash
    order = bill(patient, clinic_a, [{"method": "wallet", "amount_fen": 90000}])
    with pytest.raises(ValidationFailed) as refused:
        refund_record(order=order, amount_fen=1000, method="cash")
    assert [e.field for e in refused.value.errors] == ["method"]
    assert "it was paid by no money method" in refused.value.errors[0].message
    nothing_written(order, patient, 90000)


@pytest.mark.parametrize("method", ["wechat_pay", "cash", None])
def test_an_imported_bill_without_payments_is_refunded_by_any_money_method_as_before(patient, clinic_a, catalogue,
                                                                                     method):
    order = bill(patient, clinic_a, None)
    refund, created = refund_record(order=order, amount_fen=1000, **({"method": method} if method else {}))
    assert created and (refund.method, refund.amount_fen) == (method or "other", 1000)


def test_the_orders_api_answers_422_on_the_method_and_writes_nothing(client, patient_a, catalogue, token_a):
    # given a bill paid ¥600.00 by WeChat Pay and ¥250.00 in cash, through the API
    order = post(client, "/api/orders", cleaning_order(patient_a), token=token_a, key="order").json()
    url = f"/api/orders/{order['id']}/refunds"
    # when refunded to Alipay, which did not pay it, or ¥300.00 to cash
    alipay = post(client, url, {"amount_fen": 1000, "method": "alipay"}, token=token_a, key="refund-1")
    cash = post(client, url, {"amount_fen": 30000, "method": "cash"}, token=token_a, key="refund-2")
    # then both are 422 naming the field and what is left to each method, and nothing is written
    assert (alipay.status_code, [e["field"] for e in alipay.json()["errors"]]) == (422, ["body.method"])
    assert "wechat_pay 60000 fen left, cash 25000 fen left" in alipay.json()["errors"][0]["message"]
    assert (cash.status_code, [e["field"] for e in cash.json()["errors"]]) == (422, ["body.amount_fen"])
    assert not Refund.objects.exists() and Order.objects.get().refunded_fen == 0
