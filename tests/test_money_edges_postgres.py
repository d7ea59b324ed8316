"""Refunds of one POS bill sent at once through the orders API on PostgreSQL (threads behind a barrier, each with
its own connection and test client): refunds that together exceed what was paid never all succeed, and one refund
sent at once with one Idempotency-Key is recorded once, every copy answered with it. SQLite serialises writers, so
these run on PostgreSQL only."""

import json

import pytest
from django.test import Client

from smileloop.clinics.services import token_create
from smileloop.core.testing import postgresql_only, writers_run
from smileloop.customers.models import Customer
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.visits.models import Order, OrderLine, Refund, RefundLine

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]



@pytest.fixture
def token(director_a):
    return token_create(username=director_a.user.username)


@pytest.fixture
def bill(chain, clinic_a, catalogue, token):
    """A patient's bill of two lines, 30 000 + 60 000 fen, paid by WeChat and in cash."""
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    body = {"customer_id": patient.id, "clinic": "SH01", "ordered_at": "2025-03-01T10:30:00",
            "lines": [{"item_code": "CL01"}, {"item_code": "OC01", "quantity": 2, "unit_price_fen": 30000}],
            "payments": [{"method": "wechat_pay", "amount_fen": 60000}, {"method": "cash", "amount_fen": 30000}]}
    response = _post(Client(), "/api/orders", body, token=token, key="bill")
    assert response.status_code == 201
    return patient, response.json()


def _post(client, url, body, *, token, key):
    return client.post(url, data=json.dumps(body), content_type="application/json",
                       headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})


def _books(patient, order_id) -> tuple:
    order = Order.objects.get(pk=order_id)
    lines = list(OrderLine.objects.filter(order_id=order_id).order_by("id").values_list("refunded_fen", flat=True))
    refunds = sum(Refund.objects.filter(order_id=order_id).values_list("amount_fen", flat=True))
    refund_lines = sum(RefundLine.objects.filter(refund__order_id=order_id).values_list("amount_fen", flat=True))
    spend = Customer.objects.filter(pk=patient.pk).values_list("lifetime_spend_fen", flat=True).get()
    return order.refunded_fen, sum(lines), refunds, refund_lines, spend


def test_two_refunds_at_once_that_together_exceed_the_bill_refund_it_once(bill, token):
    patient, order = bill
    url = f"/api/orders/{order['id']}/refunds"
    for round_ in range(3):
        # when two terminals each refund 60 000 of what is left (90 000, then 30 000, then 0) at once
        def writer(i, round_=round_):
            response = _post(Client(), url, {"amount_fen": 60000 if round_ == 0 else 30000 + round_},
                             token=token, key=f"round{round_}-{i}")
            return [response.status_code]

        results, errors = writers_run(writer, 2)
        # then at most one is recorded, the other refused (never a 500), and the books agree
        assert errors == []
        assert sorted(results) == ([201, 422] if round_ == 0 else [422, 422]), results
    refunded, lines, refunds, refund_lines, spend = _books(patient, order["id"])
    assert (refunded, lines, refunds, refund_lines, spend) == (60000, 60000, 60000, 60000, 30000)


def test_eight_refunds_at_once_never_give_back_more_than_was_paid(bill, token):
    patient, order = bill
    url = f"/api/orders/{order['id']}/refunds"

    # when eight terminals refund 20 000 each, some by amount and some by line, at once (160 000 > 90 000 paid)
    def writer(i):
        body = ({"amount_fen": 20000} if i % 2 else
                {"lines": [{"line_id": order["lines"][1]["id"], "amount_fen": 20000}]})
        return [_post(Client(), url, body, token=token, key=f"r{i}").status_code]

    results, errors = writers_run(writer, 8)
    # then exactly the refunds that fit are recorded, four of 20 000, and the rest are refused
    assert errors == []
    assert sorted(results) == [201] * 4 + [422] * 4, results
    refunded, lines, refunds, refund_lines, spend = _books(patient, order["id"])
    assert (refunded, lines, refunds, refund_lines, spend) == (80000, 80000, 80000, 80000, 10000)
    assert Order.objects.get(pk=order["id"]).refunded_fen <= Order.objects.get(pk=order["id"]).amount_fen
    # and, split over the methods that paid under the bill's lock, none got back more than it paid
    by_method = {m: sum(Refund.objects.filter(order_id=order["id"], method=m).values_list("amount_fen", flat=True))
                 for m in ("wechat_pay", "cash")}
    assert sum(by_method.values()) == 80000 and by_method["wechat_pay"] <= 60000 and by_method["cash"] <= 30000


def test_one_refund_sent_eight_times_at_once_with_its_key_is_recorded_once(bill, token):
    patient, order = bill
    url = f"/api/orders/{order['id']}/refunds"

    # when one refund of 50 000 is sent eight times at once with one key (a retry storm)
    def writer(i):
        response = _post(Client(), url, {"amount_fen": 50000, "reason": "重复提交"}, token=token, key="same")
        return [(response.status_code, response.content)]

    results, errors = writers_run(writer, 8)
    # then it is refunded once, and every copy is answered with that refund
    assert errors == []
    assert {status for status, _ in results} == {201} and len({content for _, content in results}) == 1
    # (naming no method, split over the two that paid: one Refund each, refund_record)
    assert sorted(Refund.objects.filter(order_id=order["id"]).values_list("method", "amount_fen")) == [
        ("cash", 16667), ("wechat_pay", 33333)]
    assert _books(patient, order["id"]) == (50000, 50000, 50000, 50000, 40000)
