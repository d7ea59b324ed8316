"""A refund naming no method of a bill paid by several money methods is split over them in proportion to what each
has left (`refund_record`, `core.money.money_split`: the rule checkout's refunds follow), one Refund per method, its
lines an exact share of the refunded lines, all in one transaction; the orders API answers with the whole refund and
its parts (`by_method`). Before, it was one Refund of method `other`: what each method had left, and the 360 page's
refunds by method, were wrong, and a later refund naming a method could take back more than that method had left."""

import pytest
from django.db.models import Sum
from django.utils import timezone

from smileloop.core.errors import ValidationFailed
from smileloop.core.models import IdempotencyRecord
from smileloop.visits.models import Order, OrderLine, Refund, RefundLine
from smileloop.visits.services import order_record, refund_record
from smileloop.visits.tests.test_api import cleaning_order, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def order(client, patient_a, catalogue, token_a):
    """The cleaning order of the API tests: ¥850.00 (a cleaning ¥250.00, two check-ups ¥600.00), paid ¥600.00 by
    WeChat Pay, then ¥250.00 in cash."""
    body = post(client, "/api/orders", cleaning_order(patient_a), token=token_a, key="order").json()
    return Order.objects.get(pk=body["id"])


def line_ids(order):
    cleaning, checkups = order.lines.order_by("id")
    return cleaning.id, checkups.id


def by_method(order):
    """{method: fen refunded to it}, over every refund of the order."""
    return dict(Refund.objects.filter(order=order).values_list("method").annotate(fen=Sum("amount_fen"))
                .values_list("method", "fen"))


def assert_exact(order):
    """Each refund's lines add up to its amount, and each line's refund lines to what the line has refunded."""
    for refund in Refund.objects.filter(order=order):
        assert sum(refund.lines.values_list("amount_fen", flat=True)) == refund.amount_fen
    for line in OrderLine.objects.filter(order=order):
        assert sum(RefundLine.objects.filter(order_line=line).values_list("amount_fen", flat=True)) == line.refunded_fen
    order.refresh_from_db()
    assert sum(Refund.objects.filter(order=order).values_list("amount_fen", flat=True)) == order.refunded_fen


def test_an_api_refund_naming_no_method_of_a_bill_paid_two_ways_records_one_refund_per_method(
        client, order, token_a):
    cleaning, checkups = line_ids(order)
    # when ¥300.01 of its lines is refunded naming no method
    response = post(client, f"/api/orders/{order.id}/refunds",
                    {"lines": [{"line_id": cleaning, "amount_fen": 10001}, {"line_id": checkups, "amount_fen": 20000}],
                     "reason": "部分退款", "external_id": "R-1"}, token=token_a, key="refund-1")
    # then it is split 60000 : 25000 (largest remainder: WeChat Pay 21177.18, cash 8823.82 → 8824), one refund per
    # method in the order the bill was paid, each taking its share of each line
    assert response.status_code == 201, response.content
    wechat, cash = Refund.objects.filter(order=order).order_by("id")
    assert [(r.method, r.amount_fen, r.external_id, r.split_of_id, r.reason) for r in (wechat, cash)] == [
        ("wechat_pay", 21177, "R-1", None, "部分退款"), ("cash", 8824, None, wechat.id, "部分退款")]
    assert list(wechat.lines.order_by("id").values_list("order_line_id", "amount_fen")) == [
        (cleaning, 7059), (checkups, 14118)]
    assert list(cash.lines.order_by("id").values_list("order_line_id", "amount_fen")) == [
        (cleaning, 2942), (checkups, 5882)]
    assert_exact(order)
    assert (order.refunded_fen, order.status) == (30001, "partially_refunded")
    assert dict(OrderLine.objects.filter(order=order).values_list("id", "refunded_fen")) == {
        cleaning: 10001, checkups: 20000}
    # and the answer is the whole refund, with its parts by method
    body = response.json()
    assert {k: body[k] for k in ("id", "external_id", "amount_fen", "method", "lines", "order_refunded_fen")} == {
        "id": wechat.id, "external_id": "R-1", "amount_fen": 30001, "method": "other",
        "lines": [{"line_id": cleaning, "amount_fen": 10001}, {"line_id": checkups, "amount_fen": 20000}],
        "order_refunded_fen": 30001}
    assert body["by_method"] == [
        {"id": wechat.id, "method": "wechat_pay", "amount_fen": 21177,
         "lines": [{"line_id": cleaning, "amount_fen": 7059}, {"line_id": checkups, "amount_fen": 14118}]},
        {"id": cash.id, "method": "cash", "amount_fen": 8824,
         "lines": [{"line_id": cleaning, "amount_fen": 2942}, {"line_id": checkups, "amount_fen": 5882}]}]


def test_repeated_partial_refunds_then_a_whole_one_give_each_method_back_exactly_what_it_paid(
        client, order, token_a, patient_a):
    cleaning, checkups = line_ids(order)
    url = f"/api/orders/{order.id}/refunds"
    # given refunds of odd amounts and lines, naming no method
    for n, body in enumerate([{"amount_fen": 1}, {"amount_fen": 333},
                              {"lines": [{"line_id": checkups, "amount_fen": 777}]},
                              {"lines": [{"line_id": cleaning, "amount_fen": 101}, {"line_id": checkups, "amount_fen": 1}]},
                              {"amount_fen": 12345}]):
        assert post(client, url, body, token=token_a, key=f"refund-{n}").status_code == 201
        assert_exact(order)
    # when the rest is refunded
    whole = post(client, url, {"whole": True}, token=token_a, key="refund-whole")
    # then every method got back exactly what it paid, and each line exactly its amount
    assert (whole.status_code, whole.json()["order_status"]) == (201, "refunded")
    assert by_method(order) == {"wechat_pay": 60000, "cash": 25000}
    assert_exact(order)
    assert all(line.refunded_fen == line.amount_fen for line in OrderLine.objects.filter(order=order))
    patient_a.refresh_from_db()
    assert patient_a.lifetime_spend_fen == 0


def test_a_later_refund_naming_a_method_sees_what_the_split_left_it(client, order, token_a):
    url = f"/api/orders/{order.id}/refunds"
    # given ¥300.01 refunded naming no method: WeChat Pay 21177, cash 8824
    assert post(client, url, {"amount_fen": 30001}, token=token_a, key="refund-1").status_code == 201
    # when cash is refunded one fen more than it has left (25000 − 8824 = 16176)
    refused = post(client, url, {"amount_fen": 16177, "method": "cash"}, token=token_a, key="refund-2")
    # then it is a 422 naming what is left to each method, and nothing is written
    assert (refused.status_code, [e["field"] for e in refused.json()["errors"]]) == (422, ["body.amount_fen"])
    assert "wechat_pay 38823 fen left, cash 16176 fen left" in refused.json()["errors"][0]["message"]
    assert Refund.objects.filter(order=order).count() == 2
    # and what cash has left goes back to cash, one refund
    taken = post(client, url, {"amount_fen": 16176, "method": "cash"}, token=token_a, key="refund-3")
    assert (taken.status_code, taken.json()["method"], [p["method"] for p in taken.json()["by_method"]]) == (
        201, "cash", ["cash"])
    # and then, naming no method, the rest is WeChat Pay's alone
    rest = post(client, url, {"whole": True}, token=token_a, key="refund-4")
    assert (rest.status_code, rest.json()["method"], rest.json()["amount_fen"]) == (201, "wechat_pay", 38823)
    assert by_method(order) == {"wechat_pay": 60000, "cash": 25000}


def test_a_replay_answers_with_the_first_refund_and_its_parts_and_writes_nothing_more(client, order, token_a):
    url = f"/api/orders/{order.id}/refunds"
    first = post(client, url, {"amount_fen": 30001, "external_id": "R-1"}, token=token_a, key="refund-1")
    assert first.status_code == 201
    rows = list(Refund.objects.order_by("id").values_list("id", "method", "amount_fen"))
    lines = list(RefundLine.objects.order_by("id").values_list("id", "amount_fen"))
    # when the same request is sent again with its key, or with another key and the same external_id
    replay = post(client, url, {"amount_fen": 30001, "external_id": "R-1"}, token=token_a, key="refund-1")
    again = post(client, url, {"amount_fen": 30001, "external_id": "R-1"}, token=token_a, key="refund-2")
    # then each answers with the first refund's parts, and nothing more is written
    assert (replay.status_code, replay.json()) == (201, first.json())
    assert (again.status_code, again.json()) == (200, first.json())
    assert [(p["method"], p["amount_fen"]) for p in first.json()["by_method"]] == [
        ("wechat_pay", 21177), ("cash", 8824)]
    assert list(Refund.objects.order_by("id").values_list("id", "method", "amount_fen")) == rows
    assert list(RefundLine.objects.order_by("id").values_list("id", "amount_fen")) == lines
    assert Order.objects.get(pk=order.pk).refunded_fen == 30001
    assert IdempotencyRecord.objects.filter(key="refund-1").count() == 1


def test_a_refund_naming_no_method_beyond_what_the_money_methods_have_left_is_refused(
        patient_a, clinic_a, catalogue):
    # given a bill paid ¥300.00 in cash, ¥300.00 by WeChat Pay and ¥300.00 from stored value (which no refund here
    # gives back)
    order, _ = order_record(customer=patient_a, clinic=clinic_a, ordered_at=timezone.now(),
                            lines=[{"item_code": "CL01"}, {"item_code": "FI01"}],
                            payments=[{"method": "cash", "amount_fen": 30000},
                                      {"method": "wechat_pay", "amount_fen": 30000},
                                      {"method": "wallet", "amount_fen": 30000}])
    # when the whole bill is refunded naming no method
    with pytest.raises(ValidationFailed) as refused:
        refund_record(order=order)
    # then it is refused on `whole`, naming what the money methods have left, and nothing is written
    assert [(e.field, e.message) for e in refused.value.errors] == [
        ("whole", "the methods that paid this bill have 60000 fen left to refund (what they paid less what was "
                  "refunded to them), less than 90000 fen; left by method: cash 30000 fen left, wechat_pay 30000 "
                  "fen left")]
    assert not Refund.objects.exists() and Order.objects.get(pk=order.pk).refunded_fen == 0
    # and what they have left goes back split between them
    refund, created = refund_record(order=order, amount_fen=60000)
    assert created and by_method(order) == {"cash": 30000, "wechat_pay": 30000}
