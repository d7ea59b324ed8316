"""A second phone column (电话 beside 手机) as the phone's per-row fallback, in both imports."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from smileloop.core.models import AuditEvent
from smileloop.customers.enums import IdentityKind
from smileloop.customers.models import Consent, Customer, CustomerSearchKey, Identity, Interaction
from smileloop.customers.tests.factories import CustomerFactory, IdentityFactory
from smileloop.imports.errors import ImportFileError
from smileloop.imports.models import ImportBatch
from smileloop.imports.services import customers_import, orders_import
from smileloop.imports.tests.files import csv_write, xlsx_write
from smileloop.visits.models import Order

# Row 2: blank phone, landline fallback. Row 3: two different mobiles. Row 4: the same number twice.
# Row 5: a fallback cell without a number. Row 6: a landline with an extension beside a mobile.
MESSY = [
    ["姓名", "手机", "电话", "小区"],
    ["张三", "", "0755-8600 1234", "静安花园"],
    ["李四", "138 0013 8000", "13900139000", ""],
    ["王五", "13700137000", "137-0013-7000", ""],
    ["赵六", "13600136000", "无", ""],
    ["钱七", "13500135000", "010-65521234 转 8001", ""],
]
MESSY_REPORT = {
    "rows": 5, "created": 5, "merged": 0, "skipped": 0, "errors": [],
    "fallback_columns": {"电话": "mobile"}, "fallback_used": 1, "fallback_kept": 2, "fallback_not_kept": 0,
    "fallback_skipped": 1, "fallback_shared": 0,
}


def _snapshot():
    return (Customer.objects.count(), CustomerSearchKey.objects.count(), Identity.objects.count(),
            Interaction.objects.count(), Consent.objects.count(), AuditEvent.objects.count())


def _phones(chain):
    people = Customer.objects.filter(chain=chain).order_by("id")
    return [(c.name, c.mobile, sorted(c.identities.filter(kind=IdentityKind.PHONE).values_list("external_id",
                                                                                                 flat=True)))
            for c in people]


def _messy_file(tmp_path, kind):
    if kind == "gbk":
        return csv_write(tmp_path / "患者.csv", MESSY, encoding="gbk")
    # XLSX as exported: phones as numbers, the landline as text
    rows = [MESSY[0]] + [[n, int(m.replace(" ", "")) if m else None, f, c] for n, m, f, c in MESSY[1:]]
    rows[2][2] = 13900139000
    return xlsx_write(tmp_path / "患者.xlsx", rows)


@pytest.mark.parametrize("kind", ["gbk", "xlsx"])
def test_a_blank_phone_takes_the_fallback_and_a_different_second_number_is_kept(tmp_path, chain, kind):
    # given a messy export with two phone columns
    path = _messy_file(tmp_path, kind)

    # when
    report = customers_import(path=path, chain=chain)

    # then the blank phone took the landline, a different number became a phone identity, the same number
    # nothing extra, a non-number was skipped and counted, and an extension was dropped
    assert report.as_dict() == {**MESSY_REPORT, "written": True}
    assert report.columns == {"姓名": "name", "手机": "mobile", "小区": "community"}
    assert report.ignored_columns == []
    assert _phones(chain) == [
        ("张三", "+8675586001234", []),
        ("李四", "+8613800138000", ["+8613900139000"]),
        ("王五", "+8613700137000", []),
        ("赵六", "+8613600136000", []),
        ("钱七", "+8613500135000", ["+861065521234"]),
    ]
    assert Customer.objects.get(name="张三").mobile_tail == "1234"


def test_a_dry_run_reports_exactly_what_the_real_run_does(tmp_path, chain):
    # given
    path = _messy_file(tmp_path, "gbk")
    before = _snapshot()

    # when
    dry = customers_import(path=path, chain=chain, dry_run=True)

    # then
    assert dry.as_dict() == {**MESSY_REPORT, "written": False}
    assert _snapshot() == before
    assert customers_import(path=path, chain=chain).as_dict() == {**MESSY_REPORT, "written": True}


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_second_number_someone_else_holds_is_counted_not_kept_and_matches_nobody(tmp_path, chain, monkeypatch,
                                                                                 dry_run):
    # given a family's landline that is already the mother's phone identity, a number that is earlier in the file
    # as another person's phone, and a repeat (in the next chunk) of a person with her own second number
    monkeypatch.setattr("smileloop.imports.services.customers.CHUNK_ROWS", 2)
    mother = CustomerFactory(chain=chain, name="母亲", mobile="+8613100131000")
    IdentityFactory(customer=mother, chain=chain, kind=IdentityKind.PHONE, external_id="+8675586001234")
    path = csv_write(tmp_path / "family.csv", [
        ["姓名", "手机号", "联系电话"],
        ["儿子", "13800138000", "0755-86001234"],
        ["女儿", "13900139000", "13800138000"],
        ["外婆", "13700137000", "13600136000"],
        ["外婆", "13700137000", "13600136000"],
    ])
    before = _snapshot()

    # when
    report = customers_import(path=path, chain=chain, dry_run=dry_run)

    # then the son and the daughter are their own people, and keep no second number
    assert report.as_dict() == {
        "rows": 4, "created": 3, "merged": 1, "skipped": 0, "written": not dry_run, "errors": [],
        "fallback_columns": {"联系电话": "mobile"}, "fallback_used": 0, "fallback_kept": 1, "fallback_not_kept": 2,
        "fallback_skipped": 0, "fallback_shared": 0,
    }
    if dry_run:
        assert _snapshot() == before
    else:
        assert _phones(chain) == [("母亲", "+8613100131000", ["+8675586001234"]), ("儿子", "+8613800138000", []),
                                  ("女儿", "+8613900139000", []), ("外婆", "+8613700137000", ["+8613600136000"])]


def test_a_row_whose_phone_is_a_second_number_kept_earlier_merges_into_its_holder(tmp_path, chain):
    # given a person whose second number is the only phone of a later row
    path = csv_write(tmp_path / "later.csv", [["姓名", "手机", "电话", "小区"],
                                              ["张三", "13800138000", "13900139000", ""],
                                              ["张三", "", "13900139000", "静安花园"]])

    # when
    report = customers_import(path=path, chain=chain)

    # then, as with a phone identity already in the pool
    assert (report.created, report.merged, report.fallback_used, report.fallback_kept) == (1, 1, 1, 1)
    assert _phones(chain) == [("张三", "+8613800138000", ["+8613900139000"])]
    assert Customer.objects.get().community == "静安花园"


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_shared_home_line_does_not_merge_the_family_into_whoever_holds_it(tmp_path, chain, dry_run):
    # given a parent with a mobile and the home line, then a child and a grandmother listed with that line only,
    # and a patient in the pool whose only number is their office line
    CustomerFactory(chain=chain, name="王五", mobile="+862161234567")
    path = csv_write(tmp_path / "family.csv", [["姓名", "手机", "电话", "小区"],
                                               ["张三", "13800138000", "0755-8600 1234", ""],
                                               ["张小明", "", "0755-8600 1234", "静安花园"],
                                               ["李桂兰", "", "0755 8600 1234", ""],
                                               ["张三", "", "0755-86001234", "静安花园"],
                                               ["王小五", "", "021-6123 4567", ""]])
    # when
    report = customers_import(path=path, chain=chain, dry_run=dry_run)
    # then each relative is a person of their own, imported without the shared number; the parent's own repeat
    # (same name) still merges into them; nobody is merged into 王五
    assert (report.rows, report.created, report.merged) == (5, 4, 1)
    assert (report.fallback_shared, report.fallback_kept) == (3, 1)
    if not dry_run:
        assert _phones(chain) == [("王五", "+862161234567", []), ("张三", "+8613800138000", ["+8675586001234"]),
                                  ("张小明", None, []), ("李桂兰", None, []), ("王小五", None, [])]
        assert Customer.objects.get(name="张三").community == "静安花园"
        # and the shared number, not theirs, is kept in their notes: how the front desk reaches them
        notes = dict(Customer.objects.filter(mobile__isnull=True).values_list("name", "notes"))
        assert notes == {"张小明": "电话：0755 8600 1234", "李桂兰": "电话：0755 8600 1234", "王小五": "电话：021 6123 4567"}


@pytest.mark.parametrize(("phone", "fallback"), [("", "12345"), ("13800138000", "0755-8600")])
def test_an_invalid_fallback_number_is_an_error_naming_the_fallback_column(tmp_path, chain, phone, fallback):
    # given
    path = csv_write(tmp_path / "bad.csv", [["姓名", "手机号", "座机"], ["张三", phone, fallback],
                                            ["李四", "13900139000", ""]])

    # when
    report = customers_import(path=path, chain=chain)

    # then nothing is written
    assert report.as_dict() == {
        "rows": 2, "created": 1, "merged": 0, "skipped": 1, "written": False,
        "errors": [{"row": 2, "column": "座机", "value": fallback, "message": "is not a valid phone number"}],
        "fallback_columns": {"座机": "mobile"}, "fallback_used": 0, "fallback_kept": 0, "fallback_not_kept": 0,
        "fallback_skipped": 0, "fallback_shared": 0,
    }
    assert Customer.objects.count() == 0


def test_an_invalid_phone_is_not_replaced_by_the_fallback(tmp_path, chain):
    path = csv_write(tmp_path / "bad.csv", [["姓名", "手机", "电话"], ["张三", "12345", "13900139000"]])
    report = customers_import(path=path, chain=chain)
    assert report.errors == [{"row": 2, "column": "手机", "value": "12345", "message": "is not a valid phone number"}]


def test_a_row_with_nothing_but_a_non_number_in_the_fallback_is_no_row_of_people(tmp_path, chain):
    # given a row whose only cell is 无 in the fallback, and one whose fallback has a number but no name
    path = csv_write(tmp_path / "none.csv", [["姓名", "手机", "电话"], ["", "", "无"], ["张三", "", "-"],
                                             ["", "", "13900139000"]])

    # when
    report = customers_import(path=path, chain=chain, skip_invalid=True)

    # then
    assert (report.rows, report.created, report.skipped, report.fallback_skipped) == (2, 1, 1, 1)
    assert report.errors == [{"row": 4, "column": "姓名", "value": "", "message": "is required"}]
    assert _phones(chain) == [("张三", None, [])]


@pytest.mark.parametrize(("column_map", "columns", "fallbacks", "ignored"), [
    # the map's fallback wins over the second column named like the phone, which is then ignored
    ({"联系电话": "phone_fallback"}, {"手机号": "mobile"}, {"联系电话": "mobile"}, ["电话"]),
    ({"联系电话": "mobile_fallback"}, {"手机号": "mobile"}, {"联系电话": "mobile"}, ["电话"]),
    # the map's phone wins wherever it stands; the first column named like the phone becomes the fallback
    ({"联系电话": "mobile"}, {"联系电话": "mobile"}, {"手机号": "mobile"}, ["电话"]),
    ({"电话": "ignore"}, {"手机号": "mobile"}, {"联系电话": "mobile"}, ["电话"]),
    ({"电话": "ignore", "联系电话": "ignore"}, {"手机号": "mobile"}, {}, ["电话", "联系电话"]),
])
def test_the_column_map_sets_the_fallback_explicitly(tmp_path, chain, column_map, columns, fallbacks, ignored):
    # given three phone-like columns
    path = csv_write(tmp_path / "map.csv", [["姓名", "手机号", "电话", "联系电话"],
                                            ["张三", "13800138000", "13700137000", "13900139000"]])

    # when
    report = customers_import(path=path, chain=chain, column_map=column_map, dry_run=True)

    # then
    assert (report.columns, report.fallback_columns, report.ignored_columns) == (
        {"姓名": "name", **columns}, fallbacks, ignored)
    assert ("fallback_columns" in report.as_dict()) == bool(fallbacks)


def test_a_file_with_one_phone_column_reports_as_before(tmp_path, chain):
    path = csv_write(tmp_path / "one.csv", [["姓名", "手机号"], ["张三", "13800138000"]])
    report = customers_import(path=path, chain=chain, dry_run=True)
    assert report.as_dict() == {"rows": 1, "created": 1, "merged": 0, "skipped": 0, "written": False, "errors": []}


def test_a_landline_column_alone_fills_the_phone(tmp_path, chain):
    path = csv_write(tmp_path / "landline.csv", [["姓名", "座机"], ["张三", "(010) 6552 1234"]])
    report = customers_import(path=path, chain=chain)
    assert (report.fallback_columns, report.fallback_used) == ({"座机": "mobile"}, 1)
    assert _phones(chain) == [("张三", "+861065521234", [])]


def test_scope_rules_hold_for_the_fallback_number(tmp_path, chain, clinic_a, clinic_b, director_a):
    # given a patient of another clinic, named by a row's fallback (its phone blank, the same name: the same
    # person) and by another row's second number
    other = CustomerFactory(chain=chain, name="外院", mobile="+8613900139000", home_clinic=clinic_b)
    path = csv_write(tmp_path / "scope.csv", [["姓名", "手机", "电话", "门诊"],
                                              ["外院", "", "13900139000", "静安门诊"],
                                              ["李四", "13800138000", "13900139000", "静安门诊"]])

    # when a clinic director imports it
    report = customers_import(path=path, chain=chain, actor=director_a, skip_invalid=True)

    # then the first row is refused naming the fallback column; the second keeps nothing of the other clinic's
    # patient
    assert report.errors == [{"row": 2, "column": "电话", "value": "13900139000", "message":
                              "belongs to a customer outside your clinics; a colleague who sees every clinic can "
                              "import this row"}]
    assert (report.created, report.skipped, report.fallback_kept, report.fallback_not_kept) == (1, 1, 0, 1)
    assert _phones(chain) == [("外院", "+8613900139000", []), ("李四", "+8613800138000", [])]
    other.refresh_from_db()
    assert other.name == "外院"


def test_a_kept_second_number_is_masked_on_the_360_page(tmp_path, chain, marketing, client):
    # given
    customers_import(path=_messy_file(tmp_path, "gbk"), chain=chain)
    person = Customer.objects.get(name="李四")
    client.force_login(marketing.user)

    # when
    page = client.get(reverse("customers:detail", kwargs={"customer_id": person.id})).content.decode()

    # then
    assert "139****9000" in page
    assert "13900139000" not in page


ORDER_HEADER = ["订单号", "手机号", "联系电话", "门诊", "日期", "项目编码", "金额", "支付方式"]


@pytest.mark.parametrize("dry_run", [False, True])
def test_orders_find_the_customer_by_the_fallback_where_the_phone_is_blank(tmp_path, chain, clinic_a, catalogue,
                                                                           dry_run):
    # given a patient known by a landline only
    patient = CustomerFactory(chain=chain, mobile="+8675586001234", home_clinic=clinic_a)
    CustomerFactory(chain=chain, mobile="+8613800138000", home_clinic=clinic_a)
    path = csv_write(tmp_path / "orders.csv", [
        ORDER_HEADER,
        ["A001", "", "0755-86001234", "静安门诊", "2024-03-05", "EX01", "50", "现金"],
        ["A002", "13800138000", "无", "静安门诊", "2024-03-05", "EX01", "50", "现金"],
        ["A003", "13800138000", "13900139000", "静安门诊", "2024-03-05", "EX01", "50", "现金"],
    ], encoding="gbk")

    # when
    report = orders_import(path=path, chain=chain, dry_run=dry_run)

    # then
    assert report.as_dict() == {
        "rows": 3, "created": 3, "merged": 0, "skipped": 0, "written": not dry_run, "errors": [],
        "fallback_columns": {"联系电话": "mobile"}, "fallback_used": 1, "fallback_kept": 0, "fallback_not_kept": 0,
        "fallback_skipped": 1, "fallback_shared": 0,
    }
    if not dry_run:
        assert Order.objects.get(external_id="A001").customer_id == patient.id


def test_an_order_whose_fallback_number_is_a_relatives_goes_by_the_pms_id_or_is_refused(tmp_path, chain, clinic_a,
                                                                                         catalogue):
    # given a mother holding the family line, and her son known by a PMS id
    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8675586001234", home_clinic=clinic_a)
    son = CustomerFactory(chain=chain, name="李小明", mobile=None, home_clinic=clinic_a)
    IdentityFactory(customer=son, kind=IdentityKind.PMS, external_id="P-9")
    path = csv_write(tmp_path / "orders.csv", [
        ["订单号", "手机", "联系电话", "姓名", "病历号", "日期", "项目编码"],
        ["A001", "", "0755-86001234", "周敏", "", "2024-03-05", "EX01"],
        ["A002", "", "0755-86001234", "李小明", "P-9", "2024-03-05", "CL01"],
        ["A003", "", "0755-86001234", "李小明", "", "2024-03-06", "CL01"],
    ])
    # when
    report = orders_import(path=path, chain=chain, skip_invalid=True)
    # then the mother's own bill is hers, the son's goes by his PMS id, and a bill naming him with only her line
    # is refused naming the column, not booked on her
    assert [(e["row"], e["column"]) for e in report.errors] == [(4, "联系电话")]
    assert "another name" in report.errors[0]["message"]
    assert Order.objects.get(external_id="A001").customer_id == mother.id
    assert Order.objects.get(external_id="A002").customer_id == son.id
    assert not Order.objects.filter(external_id="A003").exists()


def test_an_orders_row_found_by_nobody_through_the_fallback_names_the_fallback_column(tmp_path, chain, clinic_a,
                                                                                      catalogue):
    # given an XLSX without a phone column but with a landline column
    path = xlsx_write(tmp_path / "orders.xlsx", [["订单号", "座机", "日期", "项目编码"],
                                                 ["A001", "010-65521234", "2024-03-05", "EX01"],
                                                 ["A002", "无", "2024-03-05", "EX01"],
                                                 ["A003", "12345", "2024-03-05", "EX01"]])

    # when
    report = orders_import(path=path, chain=chain)

    # then
    assert report.errors == [
        {"row": 2, "column": "座机", "value": "010-65521234", "message": "no customer with this phone"},
        {"row": 3, "column": "座机", "value": "无", "message": "is required (phone or PMS id)"},
        {"row": 4, "column": "座机", "value": "12345", "message": "is not a valid phone number"},
    ]
    assert Order.objects.count() == 0


def test_an_orders_file_needs_a_phone_a_fallback_or_a_pms_id_column(tmp_path, chain):
    path = csv_write(tmp_path / "orders.csv", [["订单号", "日期", "项目编码"], ["A001", "2024-03-05", "EX01"]])
    with pytest.raises(ImportFileError, match="手机号/phone or 病历号/pms_id"):
        orders_import(path=path, chain=chain)


def test_the_preview_shows_the_fallback_column_in_the_staff_language(client, director_a, settings, tmp_path):
    # given
    settings.SMILELOOP_IMPORT_DIR = tmp_path / "imports"
    client.force_login(director_a.user)
    content = "姓名,手机,电话\n张三,,0755-86001234\n李四,13800138000,13900139000\n王五,13700137000,无\n".encode("gbk")

    # when
    response = client.post(reverse("imports:upload"),
                           {"kind": "customers", "file": SimpleUploadedFile("患者.csv", content)})
    en = client.get(response.url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    zh = client.get(response.url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()

    # then
    assert '<span class="pill">电话 → fallback for 手机</span>' in en
    assert '<span class="pill">电话 → 手机的备用号码</span>' in zh
    assert '<dd id="count-fallback-used">1</dd>' in en and '<dd id="count-fallback-kept">1</dd>' in en
    assert '<dd id="count-fallback-skipped">1</dd>' in en
    assert "13900139000" not in en and "75586001234" not in en
    assert ImportBatch.objects.get().report["fallback_columns"] == {"电话": "mobile"}


def test_the_command_maps_the_fallback_and_writes_it_in_the_report(tmp_path, chain, capsys):
    # given
    path = csv_write(tmp_path / "people.csv", [["姓名", "手机号", "家里电话"], ["张三", "", "010 6552 1234"]])
    out = tmp_path / "report.json"

    # when
    call_command("import", "customers", str(path), "--map", "家里电话=phone_fallback", "--report", str(out))

    # then
    report = json.loads(out.read_text(encoding="utf-8"))
    assert (report["fallback_columns"], report["fallback_used"], report["created"]) == ({"家里电话": "mobile"}, 1, 1)
    assert _phones(chain) == [("张三", "+861065521234", [])]
