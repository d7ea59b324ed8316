"""QA edges of the orders import and the import page: what a serious product must not get wrong."""

import datetime as dt
import zoneinfo

import pytest

from smileloop.clinics.tests.factories import ClinicFactory
from smileloop.core.models import AuditEvent
from smileloop.customers.models import Customer
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.imports.services import orders_import
from smileloop.imports.tests.files import csv_write
from smileloop.visits.models import Order, OrderLine, Payment
from smileloop.visits.services import order_record

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
HEADER = ["订单号", "手机号", "门诊", "日期", "项目编码", "数量", "单价", "折扣", "金额", "支付方式"]


def _snapshot():
    return (
        Order.objects.count(),
        OrderLine.objects.count(),
        Payment.objects.count(),
        AuditEvent.objects.count(),
        list(
            Customer.objects.order_by("id").values_list(
                "lifetime_spend_fen", "stage", "first_visit_at", "visit_count"
            )
        ),
    )


@pytest.fixture
def patient(chain, clinic_a):
    return CustomerFactory(chain=chain, name="张三", mobile="+8613800138000", home_clinic=clinic_a)


@pytest.fixture
def other(chain, clinic_a):
    return CustomerFactory(chain=chain, name="李四", mobile="+8613900139000", home_clinic=clinic_a)


def test_an_order_number_on_file_for_another_customer_is_refused_not_skipped_as_a_duplicate(
    tmp_path, chain, clinic_a, catalogue, patient, other
):
    """The API refuses an external id of another customer's order (external_id_conflict); the import counted the
    row as already imported, so 李四's bill was silently lost while the page said all was well."""
    order_record(
        customer=patient,
        clinic=clinic_a,
        ordered_at=dt.datetime(2024, 3, 5, 9, 0, tzinfo=SHANGHAI),
        lines=[{"item_code": "EX01"}],
        payments=[],
        external_id="A001",
    )
    path = csv_write(
        tmp_path / "o.csv",
        [HEADER, ["A001", "13900139000", "静安门诊", "2024-03-05", "EX01", "1", "50", "0", "50", "现金"]],
    )
    before = _snapshot()

    report = orders_import(path=path, chain=chain)

    assert report.as_dict()["errors"] == [
        {
            "row": 2,
            "column": "订单号",
            "value": "A001",
            "message": "is already recorded for another customer; give this bill its own order number",
        }
    ]
    assert (report.written, report.duplicates, _snapshot()) == (False, 0, before)


def test_an_order_number_on_file_with_another_amount_is_refused_not_skipped_as_a_duplicate(
    tmp_path, chain, clinic_a, catalogue, patient
):
    """A corrected export (a line added to A001) was skipped as 'imported before': the bill stayed wrong without a
    word. The same bill again is still a duplicate."""
    order_record(
        customer=patient,
        clinic=clinic_a,
        ordered_at=dt.datetime(2024, 3, 5, 9, 0, tzinfo=SHANGHAI),
        lines=[{"item_code": "EX01"}],
        payments=[],
        external_id="A001",
    )
    same = csv_write(
        tmp_path / "same.csv",
        [HEADER, ["A001", "13800138000", "静安门诊", "2024-03-05", "EX01", "1", "50", "0", "50", "现金"]],
    )
    changed = csv_write(
        tmp_path / "changed.csv",
        [
            HEADER,
            ["A001", "13800138000", "静安门诊", "2024-03-05", "EX01", "1", "50", "0", "50", "现金"],
            ["A001", "13800138000", "静安门诊", "2024-03-05", "CL01", "1", "300", "0", "300", "现金"],
        ],
    )
    before = _snapshot()

    assert orders_import(path=same, chain=chain).duplicates == 1
    report = orders_import(path=changed, chain=chain)

    assert report.as_dict()["errors"] == [
        {
            "row": 2,
            "column": "订单号",
            "value": "A001",
            "message": "is already recorded with another amount (50.00, this file 350.00); a recorded bill is not changed: refund it and import the corrected one under a new order number",
        },
        {
            "row": 3,
            "column": "订单号",
            "value": "A001",
            "message": "is already recorded with another amount (50.00, this file 350.00); a recorded bill is not changed: refund it and import the corrected one under a new order number",
        },
    ]
    assert (report.written, _snapshot()[:3]) == (False, before[:3])


def test_rows_of_one_order_on_different_days_are_refused_not_booked_on_the_first_rows_day(
    tmp_path, chain, clinic_a, catalogue, patient
):
    """The bill took its first row's date and dropped the others: a line of 9 March (a second visit) vanished into
    5 March, and with it a visit."""
    path = csv_write(
        tmp_path / "o.csv",
        [
            HEADER,
            ["A001", "13800138000", "静安门诊", "2024-03-05 10:00", "EX01", "1", "50", "0", "50", "现金"],
            ["A001", "13800138000", "静安门诊", "2024-03-05 10:20", "CL01", "1", "300", "0", "300", "现金"],
            ["A001", "13800138000", "静安门诊", "2024-03-09 10:00", "FI01", "1", "600", "0", "600", "现金"],
        ],
    )
    before = _snapshot()

    report = orders_import(path=path, chain=chain)

    assert [(e["row"], e["column"], e["value"], e["message"]) for e in report.as_dict()["errors"]] == [
        (2, "订单号", "A001", "order has an invalid row (row 4); the whole order is skipped"),
        (3, "订单号", "A001", "order has an invalid row (row 4); the whole order is skipped"),
        (4, "日期", "2024-03-09 10:00", "is another day than row 2 of the same order"),
    ]
    assert (report.written, _snapshot()) == (False, before)


def test_a_clinic_code_that_is_another_clinics_id_names_the_clinic_with_that_code(
    tmp_path, chain, clinic_a, catalogue, patient
):
    """A chain numbering its clinics ('1', '2' …) had its bills booked at whichever clinic has that database id, as
    the customers and clinics APIs no longer do (a code before an id)."""
    numbered = ClinicFactory(chain=chain, code="TMP", name="第二门诊")
    later = ClinicFactory(chain=chain, code="SH09", name="第三门诊")
    numbered.code = str(later.id)
    numbered.save()
    path = csv_write(
        tmp_path / "o.csv",
        [HEADER, ["A001", "13800138000", str(later.id), "2024-03-05", "EX01", "1", "50", "0", "50", "现金"]],
    )

    report = orders_import(path=path, chain=chain)

    assert report.as_dict()["errors"] == []
    assert Order.objects.get().clinic_id == numbered.id


def test_amounts_typed_in_full_width_forms_are_read_whole(tmp_path, chain, clinic_a, catalogue, patient):
    """A Chinese input method types '１２３．５０' and '１，２００．００': '５０' was read, but a full-width point or comma made
    the whole file's row an error ('must be a number of yuan')."""
    path = csv_write(
        tmp_path / "o.csv",
        [
            HEADER,
            [
                "A001",
                "13800138000",
                "静安门诊",
                "2024-03-05",
                "FI01",
                "２",
                "６００．５０",
                "１．００",
                "１，２００．００",
                "现金",
            ],
        ],
    )

    report = orders_import(path=path, chain=chain)

    assert report.as_dict()["errors"] == []
    line = OrderLine.objects.get()
    assert (line.quantity, line.unit_price_fen, line.discount_fen, line.amount_fen) == (2, 60050, 100, 120000)


@pytest.mark.parametrize(
    ("message", "chinese"),
    [
        (
            "is already recorded for another customer; give this bill its own order number",
            "已记录为另一位客户的订单；请给这张账单一个自己的订单号",
        ),
        (
            "is already recorded with another amount (50.00, this file 350.00); a recorded bill is not changed: refund it and import the corrected one under a new order number",
            "已记录，但金额不同（已记录 50.00，本文件 350.00）；已记录的账单不会被修改：请先退款，再以新的订单号导入更正后的账单",
        ),
        ("is another day than row 2 of the same order", "与同一订单第 2 行不是同一天"),
    ],
)
def test_the_new_order_errors_read_in_the_staff_language(message, chinese):
    from django.utils import translation

    from smileloop.imports.messages import message_display

    with translation.override("zh-hans"):
        assert message_display(message) == chinese


def test_a_waiting_file_naming_an_erased_person_by_pms_id_only_is_withdrawn(
    settings, tmp_path, chain, clinic_a, director_a, django_capture_on_commit_callbacks
):
    """Only files holding the person's phone number were withdrawn: a sheet of the PMS's ids (no phones) waited on,
    and its confirm brought the erased patient back as a new record with their name and PMS id."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from smileloop.clinics.selectors import scope_for_staff
    from smileloop.customers.enums import IdentityKind
    from smileloop.customers.models import Identity
    from smileloop.customers.privacy import customer_erase
    from smileloop.customers.tests.factories import IdentityFactory
    from smileloop.imports.enums import BatchStatus
    from smileloop.imports.services.batches import batch_path, batch_upload

    settings.SMILELOOP_IMPORT_DIR = tmp_path / "imports"
    patient = CustomerFactory(chain=chain, name="张三丰", mobile=None, mobile_tail="", home_clinic=clinic_a)
    IdentityFactory(customer=patient, kind=IdentityKind.PMS, external_id="PMS-880123")
    content = "姓名,病历号\n张三丰,PMS-880123\n李四,PMS-880124\n".encode()
    waiting = batch_upload(staff=director_a, kind="customers", upload=SimpleUploadedFile("患者.csv", content))
    other = batch_upload(
        staff=director_a,
        kind="customers",
        upload=SimpleUploadedFile("别的.csv", "姓名,病历号\n李四,PMS-8801234\n".encode()),
    )
    assert [row["outcome"] for row in waiting.report["preview"]] == ["merge", "create"]

    with django_capture_on_commit_callbacks(execute=True):
        customer_erase(
            scope=scope_for_staff(director_a), customer=patient, actor=director_a, reason="本人书面申请"
        )

    waiting.refresh_from_db()
    assert waiting.status == BatchStatus.FAILED and "erased" in waiting.error
    assert not batch_path(waiting).exists()
    other.refresh_from_db()  # a longer id holding theirs is someone else's
    assert other.status == BatchStatus.PREVIEWED and batch_path(other).exists()
    assert not Identity.objects.filter(external_id="PMS-880123").exists()


def test_a_consultant_login_that_is_another_staff_members_id_names_the_one_with_that_login(
    tmp_path, chain, clinic_a
):
    """As with clinics: a login name '12' gave the patient to staff member id 12 (the id won over the login)."""
    from smileloop.clinics.tests.factories import StaffFactory
    from smileloop.imports.services import customers_import

    numbered = StaffFactory(chain=chain, name="咨询师甲", clinics=[clinic_a], user__username="tmp-login")
    later = StaffFactory(chain=chain, name="咨询师乙", clinics=[clinic_a], user__username="consultant-b")
    numbered.user.username = str(later.id)
    numbered.user.save()
    path = csv_write(
        tmp_path / "c.csv", [["姓名", "手机号", "咨询师"], ["张三", "13800138000", str(later.id)]]
    )

    report = customers_import(path=path, chain=chain)

    assert report.as_dict()["errors"] == []
    assert Customer.objects.get().consultant_id == numbered.id


def test_order_numbers_excel_saved_in_scientific_notation_are_refused_not_made_one_bill(
    tmp_path, chain, clinic_a, catalogue, patient
):
    """A POS's 16-digit order numbers opened in Excel and saved as CSV read '2.02403E+15': two bills of one morning
    became one order of two lines (and the next file's bills 'duplicates' of it)."""
    path = csv_write(
        tmp_path / "o.csv",
        [
            HEADER,
            [
                "2.02403E+15",
                "13800138000",
                "静安门诊",
                "2024-03-05 09:00",
                "EX01",
                "1",
                "50",
                "0",
                "50",
                "现金",
            ],
            [
                "2.02403E+15",
                "13800138000",
                "静安门诊",
                "2024-03-05 11:00",
                "CL01",
                "1",
                "300",
                "0",
                "300",
                "现金",
            ],
        ],
    )
    before = _snapshot()

    report = orders_import(path=path, chain=chain)

    message = (
        "is in scientific notation, so its last digits are lost; in Excel format the column as text or a number "
        "without decimals and save the file again"
    )
    assert [(e["row"], e["column"], e["value"], e["message"]) for e in report.as_dict()["errors"]] == [
        (2, "订单号", "2.02403E+15", message),
        (3, "订单号", "2.02403E+15", message),
    ]
    assert (report.written, _snapshot()) == (False, before)
