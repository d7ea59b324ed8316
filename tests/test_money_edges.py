"""Money at its edges, across the orders API (record an order, record a refund, Idempotency-Key), the orders import
and the figures derived from them (the patient's lifetime spend on the API and the 360 page).

Amounts arrive as JSON numbers in fen through the API and as yuan text in an imported file. Each odd one (0, 1 fen,
past 2**31 and 2**63, more than two decimals, 1e3, NaN, Infinity, thousands commas, full-width digits, a digit
string for a number) is either taken exactly or refused with a 4xx naming its field: never a 500, never a silent
rounding or misreading, and a refused write changes nothing. Refunds never give back more than was paid, in one
refund or several; a replay returns the first answer; and what the patient spent nets every refund exactly."""

import json

import pytest
from django.utils import timezone

from smileloop.clinics.services import token_create
from smileloop.core.bounds import BIGINT_MAX, MAX_FEN
from smileloop.customers.models import Customer
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.imports.services import orders_import
from smileloop.imports.tests.files import csv_write
from smileloop.visits.models import Order, OrderLine, Payment, Refund, RefundLine

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(director_a):
    return token_create(username=director_a.user.username)


@pytest.fixture
def patient(chain, clinic_a):
    return CustomerFactory(chain=chain, home_clinic=clinic_a, name="张三", mobile="+8613800138000")


def post_raw(client, url: str, raw: str, *, token: str, key: str):
    """A body sent as written (JSON literals such as NaN, 1e3 or 5,000 digits cannot be built with json.dumps)."""
    return client.post(url, data=raw, content_type="application/json",
                       headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})


def post(client, url: str, body: dict, *, token: str, key: str):
    return post_raw(client, url, json.dumps(body), token=token, key=key)


def order_body(patient, lines: list[dict], payments: list[dict] | None = None) -> dict:
    return {"customer_id": patient.id, "clinic": "SH01", "ordered_at": "2025-03-01T10:30:00", "lines": lines,
            "payments": payments or []}


def money_rows() -> tuple:
    return (list(Order.objects.order_by("id").values_list("amount_fen", "refunded_fen", "status")),
            list(OrderLine.objects.order_by("id").values_list("amount_fen", "refunded_fen")),
            Payment.objects.count(), Refund.objects.count(), RefundLine.objects.count(),
            list(Customer.objects.order_by("id").values_list("lifetime_spend_fen", flat=True)))


def lifetime_spend(patient) -> int:
    return Customer.objects.filter(pk=patient.pk).values_list("lifetime_spend_fen", flat=True).get()


# --- the orders API: amounts at the bounds ----------------------------------------------------------------------

@pytest.mark.parametrize("price, amount", [("0", 0), ("1", 1), (str(2**31), 2**31), (str(2**32 + 1), 2**32 + 1),
                                           (str(MAX_FEN), MAX_FEN), ("-0", 0)])
def test_a_unit_price_at_the_bounds_is_recorded_exactly(client, patient, catalogue, token, price, amount):
    # when
    raw = json.dumps(order_body(patient, [{"item_code": "CL01", "unit_price_fen": 0}])).replace(
        '"unit_price_fen": 0', f'"unit_price_fen": {price}')
    response = post_raw(client, "/api/orders", raw, token=token, key="k")
    # then
    assert response.status_code == 201, response.content
    assert (response.json()["amount_fen"], response.json()["lines"][0]["unit_price_fen"]) == (amount, amount)
    assert Order.objects.get().amount_fen == amount and lifetime_spend(patient) == amount


@pytest.mark.parametrize("price, status", [
    ("-1", 422), (str(MAX_FEN + 1), 422), (str(2**63), 422), (str(2**64), 422), ("-" + str(2**63 + 1), 422),
    ("12.345", 422), ('"12.345"', 422), ("1e3", 422), ("1E3", 422), ("NaN", 422), ("Infinity", 422),
    ("-Infinity", 422), ('"12,000.00"', 422), ('"１２"', 422), ('"100"', 422), ("100.0", 422), ("true", 422),
    ("1" * 5000, 400),  # past Python's 4,300-digit limit for reading an integer: the body cannot be read
])
def test_a_unit_price_no_bill_can_have_is_a_4xx_on_its_field_and_writes_nothing(client, patient, catalogue, token,
                                                                                price, status):
    # given
    before = money_rows()
    raw = json.dumps(order_body(patient, [{"item_code": "CL01", "unit_price_fen": 0}])).replace(
        '"unit_price_fen": 0', f'"unit_price_fen": {price}')
    # when
    response = post_raw(client, "/api/orders", raw, token=token, key="k")
    # then
    assert response.status_code == status, response.content
    fields = [e["field"] for e in response.json()["errors"]]
    assert fields == (["body.lines[0].unit_price_fen"] if status == 422 else ["body"])
    assert money_rows() == before


@pytest.mark.parametrize("field, value", [("discount_fen", "NaN"), ("discount_fen", "-1"), ("quantity", "1e3"),
                                          ("quantity", "0"), ("quantity", "10001"), ("quantity", str(2**63))])
def test_a_line_discount_or_quantity_no_bill_can_have_is_a_422_on_its_field(client, patient, catalogue, token,
                                                                            field, value):
    raw = json.dumps(order_body(patient, [{"item_code": "CL01", field: 1}])).replace(f'"{field}": 1',
                                                                                     f'"{field}": {value}')
    response = post_raw(client, "/api/orders", raw, token=token, key="k")
    assert response.status_code == 422, response.content
    assert [e["field"] for e in response.json()["errors"]] == [f"body.lines[0].{field}"]
    assert not Order.objects.exists()


@pytest.mark.parametrize("amount", ["0", "-1", "1.5", '"1"', "NaN", "1e2", str(MAX_FEN + 1), str(2**64)])
def test_a_refund_amount_no_refund_can_have_is_a_422_on_its_field_and_changes_nothing(client, patient, catalogue,
                                                                                     token, amount):
    # given
    order = post(client, "/api/orders", order_body(patient, [{"item_code": "CL01"}]), token=token, key="o").json()
    before = money_rows()
    # when
    response = post_raw(client, f"/api/orders/{order['id']}/refunds", f'{{"amount_fen": {amount}}}', token=token,
                        key="r")
    # then
    assert response.status_code == 422, response.content
    assert [e["field"] for e in response.json()["errors"]] == ["body.amount_fen"]
    assert money_rows() == before


# --- line arithmetic and payments --------------------------------------------------------------------------------

def test_each_line_is_quantity_times_price_less_discount_and_the_bill_their_sum_paid_several_ways(
        client, patient, catalogue, token):
    # given three lines: a list price, a price of 1 fen × 10 000, and one discounted to nothing
    lines = [{"item_code": "FI01", "quantity": 3, "discount_fen": 1},
             {"item_code": "EX01", "quantity": 10_000, "unit_price_fen": 1},
             {"item_code": "CL01", "quantity": 2, "unit_price_fen": 30000, "discount_fen": 60000}]
    total = 3 * 60000 - 1 + 10_000  # 189 999
    payments = [{"method": "cash", "amount_fen": 1}, {"method": "wechat_pay", "amount_fen": 99_998},
                {"method": "cash", "amount_fen": 90_000}]
    # when
    response = post(client, "/api/orders", order_body(patient, lines, payments), token=token, key="o")
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert [(ln["quantity"], ln["unit_price_fen"], ln["discount_fen"], ln["amount_fen"]) for ln in body["lines"]] == [
        (3, 60000, 1, 179_999), (10_000, 1, 0, 10_000), (2, 30000, 60000, 0)]
    assert (body["list_total_fen"], body["discount_fen"], body["amount_fen"]) == (250_000, 60_001, total)
    assert [p["amount_fen"] for p in body["payments"]] == [1, 99_998, 90_000]
    assert lifetime_spend(patient) == total


@pytest.mark.parametrize("payments, message", [
    ([{"method": "cash", "amount_fen": 29_999}], "add up to 29999 fen but the bill is 30000 fen"),
    ([{"method": "cash", "amount_fen": 30_000}, {"method": "alipay", "amount_fen": 1}],
     "add up to 30001 fen but the bill is 30000 fen"),
])
def test_payments_one_fen_off_the_bill_are_a_422_and_write_nothing(client, patient, catalogue, token, payments,
                                                                    message):
    response = post(client, "/api/orders", order_body(patient, [{"item_code": "CL01"}], payments), token=token, key="o")
    assert response.status_code == 422
    assert [(e["field"], e["message"]) for e in response.json()["errors"]] == [("body.payments", message)]
    assert money_rows() == ([], [], 0, 0, 0, [0])


def test_a_bill_is_split_over_at_most_twenty_payments(client, patient, catalogue, token):
    # given a ¥300 cleaning paid 1 fen at a time by a POS that sends every tap as a payment
    pennies = [{"method": "cash", "amount_fen": 1}] * 21
    rest = {"method": "wechat_pay", "amount_fen": 30_000 - 21}
    # when
    too_many = post(client, "/api/orders", order_body(patient, [{"item_code": "CL01"}], [*pennies, rest]), token=token,
                    key="o1")
    # then: refused on the payments, nothing written; twenty are taken
    assert too_many.status_code == 422
    assert [e["field"] for e in too_many.json()["errors"]] == ["body.payments"]
    assert money_rows() == ([], [], 0, 0, 0, [0])
    split = [*pennies[:19], {"method": "wechat_pay", "amount_fen": 30_000 - 19}]
    assert post(client, "/api/orders", order_body(patient, [{"item_code": "CL01"}], split), token=token,
                key="o2").status_code == 201
    assert Payment.objects.count() == 20


def test_bills_at_the_bounds_never_take_the_lifetime_spend_past_what_a_bigint_holds(client, patient, catalogue,
                                                                                      token):
    # given bills of 50 lines × 10 000 units × 10**12 fen (5 × 10**17 fen each, the largest one may be): the 19th
    # would take the patient's lifetime spend past 2**63 − 1 (SQLite turned it into a float, PostgreSQL failed: 500)
    line = {"item_code": "CL01", "quantity": 10_000, "unit_price_fen": MAX_FEN}
    biggest = 50 * 10_000 * MAX_FEN
    fit = BIGINT_MAX // biggest
    for n in range(fit):
        assert post(client, "/api/orders", order_body(patient, [line] * 50), token=token,
                    key=f"o{n}").status_code == 201
    before = money_rows()
    # when
    response = post(client, "/api/orders", order_body(patient, [line] * 50), token=token, key="over")
    # then
    assert response.status_code == 422, response.content
    assert [e["field"] for e in response.json()["errors"]] == ["body.lines"]
    assert money_rows() == before
    spend = lifetime_spend(patient)
    assert type(spend) is int and spend == fit * biggest


# --- refunds -----------------------------------------------------------------------------------------------------

@pytest.fixture
def paid(client, patient, catalogue, token):
    """A bill of two lines, 30 000 + 2 × 30 000 fen, paid 60 000 by WeChat and 30 000 in cash."""
    body = order_body(patient, [{"item_code": "CL01"}, {"item_code": "OC01", "quantity": 2, "unit_price_fen": 30000}],
                      [{"method": "wechat_pay", "amount_fen": 60000}, {"method": "cash", "amount_fen": 30000}])
    response = post(client, "/api/orders", body, token=token, key="paid")
    assert response.status_code == 201
    return response.json()


def test_refunds_that_together_exceed_what_was_paid_stop_at_what_is_left(client, patient, paid, token):
    url = f"/api/orders/{paid['id']}/refunds"
    # when three refunds of 40 000 fen are sent one after another
    first = post(client, url, {"amount_fen": 40000}, token=token, key="r1")
    second = post(client, url, {"amount_fen": 40000}, token=token, key="r2")
    before = money_rows()
    third = post(client, url, {"amount_fen": 40000}, token=token, key="r3")
    # then the third is refused, naming what is left, and changes nothing
    assert (first.status_code, second.status_code, third.status_code) == (201, 201, 422)
    assert third.json()["errors"] == [{"field": "body.amount_fen", "value": "40000",
                                       "message": "must be between 1 and 10000 fen (what is left to refund)"}]
    assert money_rows() == before
    # when the last fen but one, then the last fen, then a whole refund are sent
    assert post(client, url, {"amount_fen": 9999}, token=token, key="r4").json()["order_status"] == "partially_refunded"
    last = post(client, url, {"amount_fen": 1}, token=token, key="r5")
    whole = post(client, url, {"whole": True}, token=token, key="r6")
    # then the bill is refunded in full, once, and the patient has spent nothing
    assert (last.status_code, last.json()["order_refunded_fen"], last.json()["order_status"]) == (201, 90000,
                                                                                                   "refunded")
    assert whole.status_code == 422  # on what it sent, not on an amount_fen it did not send
    assert [(e["field"], e["message"]) for e in whole.json()["errors"]] == [
        ("body.whole", "nothing is left to refund (refunded 90000 of 90000 fen)")]
    assert sum(Refund.objects.values_list("amount_fen", flat=True)) == 90000
    assert list(OrderLine.objects.order_by("id").values_list("amount_fen", "refunded_fen")) == [(30000, 30000),
                                                                                               (60000, 60000)]
    assert lifetime_spend(patient) == 0


def test_a_refund_by_line_then_by_amount_never_takes_a_line_past_its_own_amount(client, patient, paid, token):
    url = f"/api/orders/{paid['id']}/refunds"
    cleaning, brush = (ln["id"] for ln in paid["lines"])
    # when the cleaning is refunded whole by line, then more of it, then an amount
    by_line = post(client, url, {"lines": [{"line_id": cleaning, "amount_fen": 30000}]}, token=token, key="r1")
    again = post(client, url, {"lines": [{"line_id": cleaning, "amount_fen": 1}]}, token=token, key="r2")
    by_amount = post(client, url, {"amount_fen": 50000}, token=token, key="r3")
    # then the second names the line, and the amount goes to what is left: the brushes
    assert by_line.status_code == 201 and by_line.json()["lines"] == [{"line_id": cleaning, "amount_fen": 30000}]
    assert again.status_code == 422
    assert again.json()["errors"] == [{"field": "body.lines[0].amount_fen",
                                       "message": f"line {cleaning} has nothing left to refund", "value": "1"}]
    assert by_amount.status_code == 201 and by_amount.json()["lines"] == [{"line_id": brush, "amount_fen": 50000}]
    assert list(OrderLine.objects.order_by("id").values_list("refunded_fen", flat=True)) == [30000, 50000]
    assert lifetime_spend(patient) == 10000


def test_a_refund_naming_a_line_of_another_bill_is_a_422_and_changes_nothing(client, patient, paid, catalogue, token):
    # given another bill of the same patient
    other = post(client, "/api/orders", order_body(patient, [{"item_code": "EX01"}]), token=token, key="o2").json()
    before = money_rows()
    # when
    response = post(client, f"/api/orders/{paid['id']}/refunds",
                    {"lines": [{"line_id": other["lines"][0]["id"], "amount_fen": 100}]}, token=token, key="r")
    # then
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.lines[0].line_id"]
    assert money_rows() == before


def test_a_refund_replayed_with_its_key_answers_the_first_and_another_body_is_a_409(client, patient, paid, token):
    url = f"/api/orders/{paid['id']}/refunds"
    # given
    first = post(client, url, {"amount_fen": 1000, "reason": "牙刷退货"}, token=token, key="r1")
    after_first = money_rows()
    # when the same body is sent again with its key, then another body with it
    replay = post(client, url, {"amount_fen": 1000, "reason": "牙刷退货"}, token=token, key="r1")
    other = post(client, url, {"amount_fen": 2000, "reason": "牙刷退货"}, token=token, key="r1")
    whole = post(client, url, {"whole": True}, token=token, key="r1")
    # then the replay is the first answer, byte for byte; the others are 409s; nothing more is refunded
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.content == first.content
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_key_reused")
    assert (whole.status_code, whole.json()["code"]) == (409, "idempotency_key_reused")
    assert money_rows() == after_first
    assert lifetime_spend(patient) == 89000


def test_a_refund_of_an_unknown_bill_or_another_chains_is_a_404_and_changes_nothing(client, patient, paid, token):
    # given a bill of another chain
    from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory
    from smileloop.visits.services import order_record
    from smileloop.visits.tests.factories import ServiceItemFactory

    chain = ChainFactory()
    clinic = ClinicFactory(chain=chain, code="BJ01")
    ServiceItemFactory(chain=chain, code="CL01", list_price_fen=30000)
    foreign, _ = order_record(customer=CustomerFactory(chain=chain, home_clinic=clinic), clinic=clinic,
                              ordered_at=timezone.now(), lines=[{"item_code": "CL01"}], payments=[])
    before = money_rows()
    # when
    responses = [post(client, f"/api/orders/{order_id}/refunds", {"whole": True}, token=token, key=f"r{order_id}")
                 for order_id in (foreign.id, foreign.id + 1000)]
    # then
    assert [r.status_code for r in responses] == [404, 404]
    assert money_rows() == before


# --- derived figures ---------------------------------------------------------------------------------------------

def test_the_lifetime_spend_on_the_api_and_the_360_page_nets_every_refund(client, patient, paid, token, director_a):
    url = f"/api/orders/{paid['id']}/refunds"
    # given a second bill, and refunds of 1 fen, a line and an amount on the first
    post(client, "/api/orders", order_body(patient, [{"item_code": "EX01", "unit_price_fen": 12345}]), token=token,
         key="o2")
    assert post(client, url, {"amount_fen": 1}, token=token, key="r1").status_code == 201
    assert post(client, url, {"lines": [{"line_id": paid["lines"][1]["id"], "amount_fen": 33333}]}, token=token,
                key="r2").status_code == 201
    expected = 90000 + 12345 - 1 - 33333  # 69 011
    # when
    api = client.get(f"/api/customers/{patient.id}", headers={"Authorization": f"Bearer {token}"})
    client.force_login(director_a.user)
    page = client.get(f"/customers/{patient.id}/")
    # then
    assert api.json()["lifetime_spend_fen"] == expected
    assert page.status_code == 200
    assert "¥690.11" in page.content.decode()
    net = sum(a - r for a, r in Order.objects.filter(customer=patient).values_list("amount_fen", "refunded_fen"))
    assert net == expected


# --- the orders import: yuan as written in a file ---------------------------------------------------------------

HEADER = ["订单号", "手机号", "门诊", "日期", "项目编码", "数量", "单价", "金额", "支付方式"]


def imported(tmp_path, chain, row: list[str]):
    path = csv_write(tmp_path / "orders.csv", [HEADER, ["A1", "13800138000", "静安门诊", "2024-03-01", "CL01", *row]])
    return orders_import(path=path, chain=chain).as_dict()


@pytest.mark.parametrize("quantity, price, amount, fen", [
    ("1", "12,000.00", "12000", 1_200_000),
    ("1", "１２.５", "12.50", 1250),
    ("1", "¥0.01", "0.01元", 1),
    ("1", "1e3", "1000", 100_000),
    ("３", "100", "300.00", 30_000),
    ("1", "10,000,000,000.00", "", MAX_FEN),
])
def test_an_imported_amount_written_any_sane_way_is_taken_exactly(tmp_path, chain, clinic_a, catalogue, patient,
                                                                   quantity, price, amount, fen):
    report = imported(tmp_path, chain, [quantity, price, amount, "现金"])
    assert report["errors"] == [] and report["created"] == 1
    order = Order.objects.get()
    assert (order.amount_fen, order.lines.get().unit_price_fen * order.lines.get().quantity) == (fen, fen)
    assert list(order.payments.values_list("amount_fen", flat=True)) == [fen]
    assert lifetime_spend(patient) == fen


@pytest.mark.parametrize("column, quantity, price, message", [
    ("单价", "1", "12.345", "has more than 2 decimal places"),
    ("单价", "1", "12.3400000000000000000000000001", "has more than 2 decimal places"),  # was 12.34: 28 digits
    ("单价", "1", "1e-999999999", "has more than 2 decimal places"),  # was 0 fen
    ("单价", "1", "NaN", "must be a finite number"),
    ("单价", "1", "Infinity", "must be a finite number"),
    ("单价", "1", "-5", "must not be negative"),
    ("单价", "1", "10,000,000,000.01", "must be at most 10000000000.00"),
    ("单价", "1", "1,5", "must be a number of yuan"),  # a decimal comma, or a typo: not 15 yuan
    ("单价", "1", "12,00", "must be a number of yuan"),  # not 1 200 yuan
    ("单价", "1", "1,2,3", "must be a number of yuan"),
    ("数量", "sNaN", "100", "must be a whole number ≥ 1"),  # decimal's signalling NaN: a traceback
    ("数量", "NaN", "100", "must be a whole number ≥ 1"),
    ("数量", "1.5", "100", "must be a whole number ≥ 1"),
])
def test_an_imported_amount_or_quantity_no_bill_can_have_is_its_rows_error(tmp_path, chain, clinic_a, catalogue,
                                                                          patient, column, quantity, price, message):
    report = imported(tmp_path, chain, [quantity, price, "", "现金"])
    assert [(e["row"], e["column"], e["message"]) for e in report["errors"]] == [(2, column, message)]
    assert money_rows() == ([], [], 0, 0, 0, [0])


def test_an_imported_amount_one_fen_past_its_lines_list_total_is_its_rows_error(tmp_path, chain, clinic_a,
                                                                                catalogue, patient):
    report = imported(tmp_path, chain, ["3", "33.33", "100.00", "现金"])
    assert [(e["column"], e["message"]) for e in report["errors"]] == [
        ("金额", "must be between 0 and the line's list total (99.99)")]
    assert not Order.objects.exists()
