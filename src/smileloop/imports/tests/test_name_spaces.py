"""The import stores a name as the staff pages and the API do: spaces between two Chinese characters dropped (张 三,
a full-width space from the input method, is 张三, found by a search for 张三), Latin and mixed names keep theirs."""

import pytest

from smileloop.customers.models import Customer
from smileloop.imports.services import customers_import
from smileloop.imports.tests.files import csv_write

pytestmark = pytest.mark.django_db


def test_spaces_between_chinese_characters_are_dropped_and_latin_names_keep_theirs(tmp_path, chain):
    path = csv_write(tmp_path / "患者.csv", [
        ["姓名", "手机号"],
        ["张\u3000三", "13800138000"],
        [" 李  小 龙 ", "13900139000"],
        ["Zhang  San", "13700137000"],
        ["王 Anna", "13600136000"],
    ])
    report = customers_import(path=path, chain=chain)
    assert (report.created, report.errors) == (4, [])
    assert dict(Customer.objects.values_list("mobile", "name")) == {
        "+8613800138000": "张三", "+8613900139000": "李小龙", "+8613700137000": "Zhang San",
        "+8613600136000": "王 Anna"}
    # the same person again, typed without the space: one person, no "differs from the name" warning
    again = customers_import(path=csv_write(tmp_path / "again.csv", [["姓名", "手机号"], ["张三", "13800138000"]]),
                             chain=chain)
    assert (again.created, again.merged, again.warnings) == (0, 1, [])
