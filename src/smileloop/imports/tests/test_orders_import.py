import datetime as dt
import zoneinfo

import pytest

from smileloop.core.models import AuditEvent
from smileloop.customers.enums import IdentityKind, Stage
from smileloop.customers.models import Customer
from smileloop.customers.tests.factories import CustomerFactory, IdentityFactory
from smileloop.imports.errors import ImportFileError
from smileloop.imports.services import orders_import
from smileloop.imports.tests.files import csv_write, xlsx_write
from smileloop.visits.enums import PaymentMethod
from smileloop.visits.models import Order, OrderLine, Payment

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
HEADER = ["订单号", "手机号", "门诊", "日期", "项目编码", "数量", "单价", "折扣", "金额", "支付方式"]


def _snapshot():
    return (Order.objects.count(), OrderLine.objects.count(), Payment.objects.count(), AuditEvent.objects.count(),
            list(Customer.objects.order_by("id").values_list("lifetime_spend_fen", "stage", "first_visit_at")))


@pytest.fixture
def patient(chain, clinic_a):
    return CustomerFactory(chain=chain, name="张三", mobile="+8613800138000", home_clinic=clinic_a)


def test_rows_with_the_same_order_number_form_one_order_with_lines_and_payments(tmp_path, chain, clinic_a,
                                                                               catalogue, patient):
    # given a two-line bill paid by two methods, and a one-line bill found by PMS id
    other = CustomerFactory(chain=chain, name="李四", mobile=None, mobile_tail="")
    IdentityFactory(customer=other, kind=IdentityKind.PMS, external_id="P-7")
    path = csv_write(tmp_path / "orders.csv", [
        [*HEADER, "病历号"],
        ["A001", "138 0013 8000", "静安门诊", "2024-03-05 14:30", "EX01", "1", "50", "0", "50", "现金", ""],
        ["A001", "13800138000", "静安门诊", "2024-03-05 14:30", "FI01", "2", "600", "200", "1000", "微信", ""],
        ["A002", "", "SH01", "2024/1/9", "CL99", "", "", "", "", "支付宝", "P-7"],
    ])

    # when
    report = orders_import(path=path, chain=chain)

    # then
    assert report.as_dict() == {"rows": 3, "created": 2, "merged": 1, "skipped": 0, "written": True, "errors": []}
    order = Order.objects.get(external_id="A001")
    assert (order.customer_id, order.clinic_id, order.ordered_at, order.list_total_fen, order.discount_fen,
            order.amount_fen) == (patient.id, clinic_a.id, dt.datetime(2024, 3, 5, 14, 30, tzinfo=SHANGHAI),
                                  125000, 20000, 105000)
    assert sorted(order.lines.values_list("item__code", "quantity", "unit_price_fen", "discount_fen", "amount_fen")) == [
        ("EX01", 1, 5000, 0, 5000), ("FI01", 2, 60000, 20000, 100000)]
    assert sorted(order.payments.values_list("method", "amount_fen")) == [
        (PaymentMethod.CASH, 5000), (PaymentMethod.WECHAT_PAY, 100000)]
    second = Order.objects.get(external_id="A002")
    assert (second.customer_id, second.amount_fen) == (other.id, 990)
    patient.refresh_from_db()
    assert (patient.lifetime_spend_fen, patient.stage, patient.first_visit_at, patient.last_visit_at) == (
        105000, Stage.TREATED, order.ordered_at, order.ordered_at)
    other.refresh_from_db()
    assert (other.lifetime_spend_fen, other.stage) == (990, Stage.TREATED)
    assert AuditEvent.objects.get().action == "import.orders"


def test_imported_bills_count_one_visit_a_day_unless_an_appointment_or_bill_covers_it(tmp_path, chain, clinic_a,
                                                                                         catalogue, patient):
    # given a completed appointment on 5 March and a bill already on file on 9 January (one visit each)
    from smileloop.visits.services import appointment_upsert, order_record

    march = dt.datetime(2024, 3, 5, 10, 0, tzinfo=SHANGHAI)
    appointment_upsert(customer=patient, clinic=clinic_a, start_at=march, end_at=march + dt.timedelta(minutes=30),
                       status="completed")
    order_record(customer=patient, clinic=clinic_a, ordered_at=dt.datetime(2024, 1, 9, 9, 0, tzinfo=SHANGHAI),
                 lines=[{"item_code": "EX01"}], payments=[], external_id="OLD-1")
    patient.refresh_from_db()
    assert patient.visit_count == 2
    # when a POS history is imported: two bills on 2 February, one on 5 March, one on 9 January, one at 23:30 on
    # 10 January (a day of its own in Shanghai) and one a year earlier
    path = csv_write(tmp_path / "orders.csv", [
        HEADER,
        ["B1", "13800138000", "静安门诊", "2024-02-02 09:00", "EX01", "1", "50", "0", "50", "现金"],
        ["B2", "13800138000", "静安门诊", "2024-02-02 15:00", "OC01", "1", "", "", "", "现金"],
        ["B3", "13800138000", "静安门诊", "2024-03-05 11:00", "FI01", "1", "600", "0", "600", "微信"],
        ["B4", "13800138000", "静安门诊", "2024-01-09 16:00", "OC01", "1", "", "", "", "现金"],
        ["B5", "13800138000", "静安门诊", "2024-01-10 23:30", "OC01", "1", "", "", "", "现金"],
        ["B6", "13800138000", "静安门诊", "2023-01-10 10:00", "CL01", "1", "", "", "", "现金"],
    ])
    report = orders_import(path=path, chain=chain)
    # then 2 February, 10 January 2024 and 10 January 2023 are new visit days; 5 March and 9 January were counted
    assert report.written and report.created == 6
    patient.refresh_from_db()
    assert patient.visit_count == 5
    # and a second import of new bills on those days adds nothing
    again = csv_write(tmp_path / "more.csv", [
        HEADER, ["C1", "13800138000", "静安门诊", "2024-02-02 18:00", "OC01", "1", "", "", "", "现金"]])
    orders_import(path=again, chain=chain)
    patient.refresh_from_db()
    assert patient.visit_count == 5


def test_a_lead_becomes_a_patient_on_the_day_of_their_first_imported_bill(tmp_path, chain, catalogue, patient):
    path = csv_write(tmp_path / "orders.csv", [
        HEADER,
        ["B1", "13800138000", "静安门诊", "2024-02-02 09:00", "EX01", "1", "50", "0", "50", "现金"],
        ["B2", "13800138000", "静安门诊", "2023-06-01 15:00", "OC01", "1", "", "", "", "现金"],
    ])
    orders_import(path=path, chain=chain)
    patient.refresh_from_db()
    assert patient.stage == Stage.TREATED
    assert patient.stage_changed_at == dt.datetime(2023, 6, 1, 15, 0, tzinfo=SHANGHAI)


def test_unknown_items_and_unknown_customers_make_the_file_write_nothing(tmp_path, chain, catalogue, patient):
    # given
    path = csv_write(tmp_path / "bad.csv", [
        HEADER,
        ["A001", "13800138000", "静安门诊", "2024-03-05", "EX01", "1", "50", "", "", "现金"],
        ["A002", "13800138000", "静安门诊", "2024-03-05", "NOPE", "1", "50", "", "", "现金"],
        ["A003", "13900139000", "静安门诊", "2024-03-05", "EX01", "1", "50", "", "", "现金"],
    ])
    before = _snapshot()

    # when
    report = orders_import(path=path, chain=chain)

    # then
    assert report.as_dict() == {"rows": 3, "created": 1, "merged": 0, "skipped": 2, "written": False, "errors": [
        {"row": 3, "column": "项目编码", "value": "NOPE", "message": "is not in the service catalogue"},
        {"row": 4, "column": "手机号", "value": "13900139000", "message": "no customer with this phone"},
    ]}
    assert _snapshot() == before


def test_an_order_of_more_than_fifty_lines_is_refused_at_its_fifty_first_row(tmp_path, chain, catalogue, patient):
    """As a bill at checkout and through the API (core.bounds.MAX_BILL_LINES): 923 lines at the largest amounts
    overflowed the order's total, a crash instead of a message."""
    line = ["A001", "13800138000", "静安门诊", "2024-03-05", "EX01", "1", "50", "", "", "现金"]
    path = csv_write(tmp_path / "long.csv", [HEADER, *[line] * 51,
                                             ["A002", *line[1:]]])
    before = _snapshot()
    report = orders_import(path=path, chain=chain, skip_invalid=True)
    assert (report.created, report.skipped, report.written) == (1, 51, True)
    assert report.as_dict()["errors"][-1] == {
        "row": 52, "column": "订单号", "value": "A001", "message": "an order has at most 50 lines (this is its line 51)"}
    assert Order.objects.get(external_id="A002").lines.count() == 1
    assert not Order.objects.filter(external_id="A001").exists() and _snapshot() != before


def test_an_invalid_line_skips_its_whole_order_with_skip_invalid(tmp_path, chain, catalogue, patient):
    # given order A001 has one bad line (amount does not add up)
    path = csv_write(tmp_path / "bad.csv", [
        HEADER,
        ["A001", "13800138000", "静安门诊", "2024-03-05", "EX01", "1", "50", "", "", "现金"],
        ["A001", "13800138000", "静安门诊", "2024-03-05", "FI01", "1", "600", "0", "500", "现金"],
        ["A002", "13800138000", "静安门诊", "2024-03-06", "EX01", "1", "", "", "", "医保"],
    ])

    # when
    report = orders_import(path=path, chain=chain, skip_invalid=True)

    # then
    assert report.as_dict() == {"rows": 3, "created": 1, "merged": 0, "skipped": 2, "written": True, "errors": [
        {"row": 2, "column": "订单号", "value": "A001",
         "message": "order has an invalid row (row 3); the whole order is skipped"},
        {"row": 3, "column": "金额", "value": "500",
         "message": "does not equal quantity × unit price − discount (600.00)"},
    ]}
    assert list(Order.objects.values_list("external_id", "amount_fen")) == [("A002", 5000)]
    assert list(Payment.objects.values_list("method", flat=True)) == [PaymentMethod.INSURANCE]


def test_each_skipped_order_names_its_own_invalid_row(tmp_path, chain, catalogue, patient):
    # given two orders in one chunk, each with a different bad line
    path = csv_write(tmp_path / "two_bad.csv", [
        HEADER,
        ["A001", "13800138000", "静安门诊", "2024-03-05", "EX01", "1", "50", "", "", "现金"],
        ["A001", "13800138000", "静安门诊", "2024-03-05", "FI01", "1", "600", "0", "500", "现金"],
        ["A002", "13800138000", "静安门诊", "2024-03-06", "EX01", "1", "", "", "", "医保"],
        ["A002", "13800138000", "静安门诊", "2024-03-06", "XX99", "1", "", "", "", "医保"],
        ["A002", "13800138000", "静安门诊", "2024-03-06", "EX01", "1", "", "", "", "医保"],
    ])

    # when
    report = orders_import(path=path, chain=chain, skip_invalid=True)

    # then each order's rows point at that order's bad row, not the chunk's first (and, every row invalid, nothing
    # was written)
    assert report.as_dict() == {"rows": 5, "created": 0, "merged": 0, "skipped": 5, "written": False, "errors": [
        {"row": 2, "column": "订单号", "value": "A001",
         "message": "order has an invalid row (row 3); the whole order is skipped"},
        {"row": 3, "column": "金额", "value": "500",
         "message": "does not equal quantity × unit price − discount (600.00)"},
        {"row": 4, "column": "订单号", "value": "A002",
         "message": "order has an invalid row (row 5); the whole order is skipped"},
        {"row": 5, "column": "项目编码", "value": "XX99", "message": "is not in the service catalogue"},
        {"row": 6, "column": "订单号", "value": "A002",
         "message": "order has an invalid row (row 5); the whole order is skipped"},
    ]}
    assert Order.objects.count() == 0


def test_re_importing_the_same_orders_skips_them_as_duplicates(tmp_path, chain, catalogue, patient):
    # given an imported file
    path = xlsx_write(tmp_path / "orders.xlsx", [
        HEADER,
        ["A001", 13800138000, "静安门诊", dt.datetime(2024, 3, 5, 9, 0), "EX01", 1, 50, 0, 50, "现金"],
        ["A001", 13800138000, "静安门诊", dt.datetime(2024, 3, 5, 9, 0), "CL01", 1, 300, 0, 300, "现金"],
    ])
    orders_import(path=path, chain=chain)
    before = _snapshot()

    # when
    report = orders_import(path=path, chain=chain)

    # then
    assert report.as_dict() == {"rows": 2, "created": 0, "merged": 0, "skipped": 2, "written": True, "errors": []}
    assert report.duplicates == 2
    assert _snapshot()[:3] == before[:3]
    patient.refresh_from_db()
    assert patient.lifetime_spend_fen == 35000


def test_a_dry_run_of_orders_writes_nothing(tmp_path, chain, catalogue, patient):
    # given
    path = csv_write(tmp_path / "o.csv", [HEADER, ["A1", "13800138000", "", "2024-03-05", "EX01", "", "", "", "",
                                                   ""]])
    before = _snapshot()

    # when
    report = orders_import(path=path, chain=chain, dry_run=True)

    # then
    assert report.as_dict() == {"rows": 1, "created": 1, "merged": 0, "skipped": 0, "written": False, "errors": []}
    assert _snapshot() == before


def test_an_orders_file_without_an_order_number_column_is_refused(tmp_path, chain):
    # given
    path = csv_write(tmp_path / "o.csv", [["手机号", "日期", "项目编码"], ["13800138000", "2024-01-01", "EX01"]])

    # when / then
    with pytest.raises(ImportFileError) as exc:
        orders_import(path=path, chain=chain)
    assert (exc.value.code, exc.value.message) == ("missing_column", "o.csv lacks the column(s): 订单号/order_no")


def test_a_clinic_director_records_orders_only_at_their_clinics_for_their_patients(tmp_path, chain, clinic_a,
                                                                                    clinic_b, catalogue, patient,
                                                                                    director_a):
    # given a patient of clinic B (unknown to the director, as the API's 404) and an order placed at clinic B
    CustomerFactory(chain=chain, name="赵敏", mobile="+8613900139000", home_clinic=clinic_b)
    path = csv_write(tmp_path / "orders.csv", [
        HEADER,
        ["B001", "13900139000", "静安门诊", "2024-03-05", "EX01", "1", "50", "0", "50", "现金"],
        ["B002", "13800138000", "浦东门诊", "2024-03-05", "EX01", "1", "50", "0", "50", "现金"],
        ["B003", "13800138000", "静安门诊", "2024-03-05", "EX01", "1", "50", "0", "50", "现金"],
    ])
    before = _snapshot()

    # when
    report = orders_import(path=path, chain=chain, actor=director_a)

    # then
    assert not report.written and _snapshot() == before
    assert [(e["row"], e["column"], e["message"]) for e in report.as_dict()["errors"]] == [
        (2, "手机号", "no customer with this phone"), (3, "门诊", "is not one of your clinics")]
    skipped = orders_import(path=path, chain=chain, actor=director_a, skip_invalid=True)
    assert (skipped.created, Order.objects.get().external_id) == (1, "B003")


def test_excel_text_formulas_keeping_an_order_number_or_pms_id_are_read_as_their_text(tmp_path, chain, clinic_a,
                                                                                    catalogue):
    # given a CSV where Excel kept the leading zeros of the numbers as '="…"'
    patient = CustomerFactory(chain=chain, name="张三", home_clinic=clinic_a)
    IdentityFactory(customer=patient, kind=IdentityKind.PMS, external_id="000123")
    path = csv_write(tmp_path / "o.csv", [["订单号", "病历号", "日期", "项目编码", "金额"],
                                          ['="007001"', '="000123"', "2024-03-01T02:00:00Z", "EX01", "50"]])

    # when
    report = orders_import(path=path, chain=chain)

    # then (and the bill's time, given in UTC, is 10:00 in Shanghai)
    assert report.as_dict()["errors"] == []
    order = Order.objects.get()
    assert (order.external_id, order.customer_id) == ("007001", patient.id)
    assert order.ordered_at == dt.datetime(2024, 3, 1, 2, 0, tzinfo=dt.UTC)


def test_bills_that_would_take_a_lifetime_spend_past_a_bigint_are_their_rows_errors(tmp_path, chain, clinic_a,
                                                                                      catalogue):
    # given a patient whose lifetime spend is 100 yuan short of what its column holds, and a file whose second bill
    # for her would cross it (the import's UPDATE failed on it: a traceback on PostgreSQL, a float on SQLite)
    near = CustomerFactory(chain=chain, name="张三", mobile="+8613800138000", home_clinic=clinic_a,
                           lifetime_spend_fen=2**63 - 1 - 10_000)
    path = csv_write(tmp_path / "orders.csv", [
        HEADER,
        ["A001", "13800138000", "SH01", "2024-03-05", "EX01", "1", "60", "0", "60", "现金"],
        ["A002", "13800138000", "SH01", "2024-03-06", "EX01", "1", "50", "0", "50", "现金"],
    ])
    before = _snapshot()
    # when
    report = orders_import(path=path, chain=chain)
    # then: the second bill's row says why, and nothing is written
    assert report.as_dict()["errors"] == [{
        "row": 3, "column": "订单号", "value": "A002",
        "message": "would take the customer's lifetime spend past the most it can hold"}]
    assert (report.written, _snapshot()) == (False, before)
    # and with --skip-invalid the first is written
    report = orders_import(path=path, chain=chain, skip_invalid=True)
    near.refresh_from_db()
    assert (report.created, near.lifetime_spend_fen) == (1, 2**63 - 1 - 4_000)
