"""An orders import while the pool changes under it, on PostgreSQL (another connection in a thread, at a chosen moment
of the import): a patient erased meanwhile is given no bill, and a bill recorded through the API for the same day
counts that day once. SQLite serialises writers, so these run on PostgreSQL only."""

import datetime as dt
import threading
import time
import zoneinfo

import pytest
from django.db import connections, transaction

from smileloop.core.testing import postgresql_only, writers_run
from smileloop.customers.models import Customer
from smileloop.customers.privacy import customer_erase
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.imports.services import orders as orders_module
from smileloop.imports.services import orders_import
from smileloop.imports.tests.files import csv_write
from smileloop.visits.models import Order
from smileloop.visits.services import order_record

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
HEADER = ["订单号", "手机号", "门诊", "日期", "项目编码", "数量", "单价", "折扣", "金额", "支付方式"]


@pytest.fixture
def patient(chain, clinic_a):
    return CustomerFactory(chain=chain, name="张三", mobile="+8613800138000", home_clinic=clinic_a)


@pytest.fixture
def bill(tmp_path):
    return csv_write(
        tmp_path / "o.csv",
        [
            HEADER,
            ["A001", "13800138000", "静安门诊", "2024-03-05 10:00", "EX01", "1", "50", "0", "50", "现金"],
        ],
    )


def test_a_patient_erased_while_the_file_is_imported_is_given_no_bill(
    chain, catalogue, patient, bill, admin_scope, chain_admin, monkeypatch
):
    """The import found 张三 by phone, then wrote the bill onto the record erased meanwhile (PIPL: an erased record
    is given nothing new; the API refuses it with 409 `erased`)."""
    real = orders_module.family_members_of

    def erased_meanwhile(holders):
        def erase(_i):
            with transaction.atomic():
                customer_erase(
                    scope=admin_scope,
                    customer=Customer.objects.get(pk=patient.pk),
                    actor=chain_admin,
                    reason="PIPL request",
                )
            return ["erased"]

        assert writers_run(erase, 1) == (["erased"], [])
        return real(holders)

    monkeypatch.setattr(orders_module, "family_members_of", erased_meanwhile)

    report = orders_import(path=bill, chain=chain)

    assert [(e["row"], e["column"], e["message"]) for e in report.as_dict()["errors"]] == [
        (2, "手机号", "no customer with this phone")
    ]
    assert (report.written, Order.objects.count()) == (False, 0)
    patient.refresh_from_db()
    assert (patient.lifetime_spend_fen, patient.visit_count, patient.first_visit_at) == (0, 0, None)


def test_a_bill_recorded_through_the_api_while_an_import_books_the_same_day_counts_the_day_once(
    chain, clinic_a, catalogue, patient, bill, monkeypatch
):
    """Each counted 5 March as a visit, neither seeing the other's uncommitted bill: two visits for one day. The
    import now locks its patients as the API does, so the API's bill waits and sees the imported one."""
    real = orders_module._OrderImport.visit_days_new
    done: list = []

    def api_bill():
        try:
            with transaction.atomic():
                customer = Customer.objects.get(pk=patient.pk)
                done.append(
                    order_record(
                        customer=customer,
                        clinic=clinic_a,
                        ordered_at=dt.datetime(2024, 3, 5, 16, 0, tzinfo=SHANGHAI),
                        lines=[{"item_code": "CL01"}],
                        payments=[],
                        external_id="POS-9",
                    )[1]
                )
        finally:
            connections.close_all()

    thread = threading.Thread(target=api_bill)

    def counted_then_api_bill(self, bills):
        counts = real(self, bills)
        thread.start()
        time.sleep(1.0)  # the API's bill is written meanwhile, unless it waits for the import's lock
        return counts

    monkeypatch.setattr(orders_module._OrderImport, "visit_days_new", counted_then_api_bill)

    report = orders_import(path=bill, chain=chain)
    thread.join(timeout=30)

    assert (report.written, report.created, done) == (True, 1, [True])
    patient.refresh_from_db()
    assert (patient.visit_count, patient.lifetime_spend_fen) == (1, 5000 + 30000)
