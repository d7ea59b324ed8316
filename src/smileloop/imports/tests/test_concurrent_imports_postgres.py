"""Two imports of one chain, each a file of several chunks written in one transaction, naming the same people in
opposite orders (PostgreSQL). Each chunk locks its people in id order, but the file's are not known before it is
read: the first import held 甲 (its first chunk) and waited for 乙 (its second), which the other held (its first
chunk) while it waited for 甲 — a deadlock, and one of them was told the database was busy. Now a writing import
takes its chain's import lock first (`common.chain_imports_serialise`): the second waits for the first, holding
nothing, and both are written."""

import threading

import pytest

from smileloop.core.testing import paused, postgresql_only, race
from smileloop.customers.models import Customer
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.imports.services import customers as import_customers
from smileloop.imports.services import customers_import, orders_import
from smileloop.imports.services import orders as import_orders
from smileloop.imports.tests.files import csv_write
from smileloop.visits.models import Order

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]

ORDER_HEADER = ["订单号", "手机号", "门诊", "日期", "项目编码", "数量", "单价", "折扣", "金额", "支付方式"]


@pytest.fixture
def pair(chain, clinic_a):
    first = CustomerFactory(chain=chain, name="甲", mobile="+8613800138001", home_clinic=clinic_a, address="")
    second = CustomerFactory(chain=chain, name="乙", mobile="+8613800138002", home_clinic=clinic_a, address="")
    return first, second


def test_two_customer_imports_of_the_same_people_in_opposite_orders_are_both_written(
        tmp_path, chain, pair, monkeypatch):
    # given two files of one person a chunk, naming 甲 and 乙 in opposite orders; the first import paused once it holds
    # its first chunk's person
    monkeypatch.setattr(import_customers, "CHUNK_ROWS", 1)
    forward = csv_write(tmp_path / "a.csv", [["姓名", "手机号", "地址"], ["甲", "13800138001", "静安区1号"],
                                             ["乙", "13800138002", "静安区2号"]])
    backward = csv_write(tmp_path / "b.csv", [["姓名", "手机号", "小区"], ["乙", "13800138002", "愚园小区"],
                                              ["甲", "13800138001", "愚园小区"]])
    reached = threading.Event()
    monkeypatch.setattr(import_customers._CustomerImport, "pool_lock",
                        paused(import_customers._CustomerImport.pool_lock, reached))

    # when the other import runs meanwhile
    out = race(lambda: customers_import(path=forward, chain=chain),
               lambda: customers_import(path=backward, chain=chain), reached, atomic=False)

    # then no deadlock: the second waited for the first, and both filled what each file gave
    assert "first_error" not in out and "then_error" not in out, out
    assert (out["first"].merged, out["then"].merged) == (2, 2)
    assert sorted(Customer.objects.values_list("name", "address", "community")) == [
        ("乙", "静安区2号", "愚园小区"), ("甲", "静安区1号", "愚园小区")]


def test_two_order_imports_for_the_same_customers_in_opposite_orders_are_both_written(
        tmp_path, chain, clinic_a, catalogue, pair, monkeypatch):
    # given two files of one bill a chunk, for 甲 and 乙 in opposite orders; the first import paused once it has
    # written its first chunk (its customer locked)
    monkeypatch.setattr(import_orders, "CHUNK_ROWS", 1)
    rows = {"甲": "13800138001", "乙": "13800138002"}

    def bills(prefix, names):
        return [ORDER_HEADER] + [[f"{prefix}-{i}", rows[name], "静安门诊", "2026-11-02 10:00", "EX01", "1", "50", "0",
                                  "50", "现金"] for i, name in enumerate(names)]

    forward = csv_write(tmp_path / "a.csv", bills("A", ["甲", "乙"]))
    backward = csv_write(tmp_path / "b.csv", bills("B", ["乙", "甲"]))
    reached = threading.Event()
    monkeypatch.setattr(import_orders._OrderImport, "flush", paused(import_orders._OrderImport.flush, reached))

    # when the other import runs meanwhile
    out = race(lambda: orders_import(path=forward, chain=chain),
               lambda: orders_import(path=backward, chain=chain), reached, atomic=False)

    # then no deadlock: both files' bills are recorded, each customer's spend counts both
    assert "first_error" not in out and "then_error" not in out, out
    assert (out["first"].created, out["then"].created) == (2, 2)
    assert Order.objects.count() == 4
    assert sorted(Customer.objects.values_list("name", "lifetime_spend_fen")) == [("乙", 10000), ("甲", 10000)]
