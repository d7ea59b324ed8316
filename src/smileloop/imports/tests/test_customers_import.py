import datetime as dt

import pytest
from django.db import connection
from django.utils import translation

from smileloop.core.models import AuditEvent
from smileloop.customers.enums import Channel, ConsentPurpose, Gender, IdentityKind, InteractionKind, Stage
from smileloop.customers.models import Consent, Customer, CustomerSearchKey, Identity, Interaction
from smileloop.customers.templatetags.customers_ui import interaction_text
from smileloop.customers.tests.factories import CustomerFactory, IdentityFactory
from smileloop.imports.errors import ImportFileError
from smileloop.imports.services import customers_import
from smileloop.imports.tests.files import csv_write, xlsx_write

HEADER = ["姓名", "手机号", "性别", "出生日期", "所属门诊", "来源", "小区", "地址", "备注"]


def _people(chain):
    return {c.mobile or c.name: c for c in Customer.objects.filter(chain=chain)}


def _snapshot():
    return (Customer.objects.count(), CustomerSearchKey.objects.count(), Identity.objects.count(),
            Interaction.objects.count(), Consent.objects.count(), AuditEvent.objects.count())


def test_gbk_csv_with_chinese_headers_creates_people_with_normalised_values(tmp_path, chain, clinic_a, clinic_b):
    # given a GBK file as Chinese Excel writes it, with messy phones and dates
    path = csv_write(tmp_path / "患者.csv", [
        HEADER,
        ["张三", "+86 138-0013-8000", "男", "1990/1/5", "静安门诊", "抖音", "静安花园", "上海市静安区1号", "怕疼"],
        ["李四", "0086 139 0013 9000", "女", "1985年6月15日", "SH02", "转介绍", "", "", ""],
        ["王五", "１３７００１３７０００", "M", "19900105", "", "", "", "", ""],
        ["赵六", "13600136000.0", "female", "1990-01-05", "", "美团", "", "", ""],
    ], encoding="gbk")

    # when
    report = customers_import(path=path, chain=chain)

    # then
    assert report.as_dict() == {"rows": 4, "created": 4, "merged": 0, "skipped": 0, "written": True, "errors": []}
    people = _people(chain)
    assert sorted(people) == ["+8613600136000", "+8613700137000", "+8613800138000", "+8613900139000"]
    zhang = people["+8613800138000"]
    assert (zhang.name, zhang.gender, zhang.birthday, zhang.home_clinic_id, zhang.first_touch_channel,
            zhang.community, zhang.address, zhang.notes, zhang.mobile_tail, zhang.stage) == (
        "张三", Gender.MALE, dt.date(1990, 1, 5), clinic_a.id, Channel.DOUYIN, "静安花园", "上海市静安区1号", "怕疼",
        "8000", Stage.LEAD)
    li = people["+8613900139000"]
    assert (li.gender, li.birthday, li.home_clinic_id, li.first_touch_channel) == (
        Gender.FEMALE, dt.date(1985, 6, 15), clinic_b.id, Channel.REFERRAL)
    wang = people["+8613700137000"]
    assert (wang.gender, wang.birthday, wang.home_clinic_id, wang.first_touch_channel) == (
        Gender.MALE, dt.date(1990, 1, 5), None, Channel.IMPORT)
    assert people["+8613600136000"].gender == Gender.FEMALE
    assert set(CustomerSearchKey.objects.filter(customer=zhang).values_list("kind", "value")) == {
        ("i", "zs"), ("p", "zhangsan")}
    assert Interaction.objects.filter(kind=InteractionKind.IMPORT).count() == 4
    assert zhang.first_touch_at is not None


def test_utf8_bom_csv_with_english_headers_is_read(tmp_path, chain):
    # given
    path = csv_write(tmp_path / "leads.csv", [["Name", "Phone", "Gender", "Birthday", "Source"],
                                              ["Li Lei", "13800138000", "male", "1990-01-05", "website"]],
                     encoding="utf-8-sig")

    # when
    report = customers_import(path=path, chain=chain)

    # then
    assert report.as_dict()["created"] == 1
    person = Customer.objects.get(chain=chain)
    assert (person.name, person.mobile, person.gender, person.first_touch_channel) == (
        "Li Lei", "+8613800138000", Gender.MALE, Channel.WEBSITE)


def test_headers_match_after_trimming_and_full_width_conversion(tmp_path, chain):
    # given headers with spaces and full-width letters
    path = csv_write(tmp_path / "x.csv", [[" 姓名 ", "ＰＨＯＮＥ"], ["张三", "13800138000"]])

    # when
    report = customers_import(path=path, chain=chain)

    # then
    assert report.columns == {"姓名": "name", "ＰＨＯＮＥ": "mobile"}
    assert Customer.objects.get().mobile == "+8613800138000"


def test_xlsx_with_numeric_phones_serial_dates_and_datetime_cells_is_normalised(tmp_path, chain):
    # given phones stored as numbers (int and float) and dates as Excel serials and datetime cells
    path = xlsx_write(tmp_path / "export.xlsx", [
        ["姓名", "手机", "生日", "性别"],
        ["张三", 13800138000, 32878, "男"],
        ["李四", 13900139000.0, dt.datetime(1985, 6, 15), "F"],
        ["王五", "137 0013 7000", "1990年1月5日", None],
    ])

    # when
    report = customers_import(path=path, chain=chain)

    # then
    assert report.as_dict() == {"rows": 3, "created": 3, "merged": 0, "skipped": 0, "written": True, "errors": []}
    assert {(c.mobile, c.birthday, c.gender) for c in Customer.objects.filter(chain=chain)} == {
        ("+8613800138000", dt.date(1990, 1, 5), Gender.MALE),
        ("+8613900139000", dt.date(1985, 6, 15), Gender.FEMALE),
        ("+8613700137000", dt.date(1990, 1, 5), Gender.UNKNOWN),
    }


def test_the_same_person_twice_in_the_file_becomes_one_person(tmp_path, chain):
    # given the same phone written two ways; the second row adds a birthday
    path = csv_write(tmp_path / "dup.csv", [["姓名", "手机号", "出生日期"],
                                            ["张三", "13800138000", ""],
                                            ["张三", "+86 138 0013 8000", "1990-01-05"]])

    # when
    report = customers_import(path=path, chain=chain)

    # then
    assert (report.rows, report.created, report.merged) == (2, 1, 1)
    person = Customer.objects.get(chain=chain)
    assert (person.mobile, person.birthday) == ("+8613800138000", dt.date(1990, 1, 5))
    assert CustomerSearchKey.objects.filter(customer=person).count() == 2


def test_a_person_already_in_the_pool_is_merged_filling_only_blank_fields(tmp_path, chain, clinic_a):
    # given a patient with a name and gender but no birthday or community
    existing = CustomerFactory(chain=chain, name="张三", mobile="+8613800138000", gender=Gender.FEMALE)
    path = csv_write(tmp_path / "pool.csv", [["姓名", "手机号", "性别", "出生日期", "小区", "门诊"],
                                             ["张叁", "138 0013 8000", "男", "1990-01-05", "静安花园", "静安门诊"]])

    # when
    report = customers_import(path=path, chain=chain)

    # then the blanks are filled, the name and gender are kept
    assert (report.rows, report.created, report.merged) == (1, 0, 1)
    existing.refresh_from_db()
    assert (existing.name, existing.gender, existing.birthday, existing.community, existing.home_clinic_id) == (
        "张三", Gender.FEMALE, dt.date(1990, 1, 5), "静安花园", clinic_a.id)
    assert Customer.objects.filter(chain=chain).count() == 1
    note = Interaction.objects.get(customer=existing, kind=InteractionKind.IMPORT)
    assert note.text == "import from pool.csv filled: birthday, community, home_clinic_id"
    with translation.override("zh-hans"):
        assert interaction_text(note) == "从 pool.csv 导入时补充了：生日、小区、所属门诊"


def test_a_pms_id_already_in_the_pool_merges_and_adds_the_new_phone(tmp_path, chain):
    # given a person known by PMS id, without a phone
    existing = CustomerFactory(chain=chain, name="张三", mobile=None, mobile_tail="")
    IdentityFactory(customer=existing, kind=IdentityKind.PMS, external_id="P-001")
    path = csv_write(tmp_path / "pms.csv", [["姓名", "手机号", "病历号"], ["张三", "13800138000", "P-001"]])

    # when
    report = customers_import(path=path, chain=chain)

    # then
    assert (report.created, report.merged) == (0, 1)
    existing.refresh_from_db()
    assert (existing.mobile, existing.mobile_tail) == ("+8613800138000", "8000")


def test_new_identities_are_attached_to_the_new_person(tmp_path, chain):
    # given
    path = csv_write(tmp_path / "ids.csv", [["姓名", "手机号", "openid", "病历号"],
                                            ["张三", "13800138000", "oABC", "P-9"]])

    # when
    customers_import(path=path, chain=chain)

    # then
    person = Customer.objects.get(chain=chain)
    assert set(Identity.objects.filter(customer=person).values_list("kind", "external_id", "source")) == {
        (IdentityKind.WECHAT_OPENID, "oABC", "import"), (IdentityKind.PMS, "P-9", "import")}


def test_a_phone_and_an_identity_of_two_different_people_is_an_invalid_row(tmp_path, chain):
    # given
    CustomerFactory(chain=chain, mobile="+8613800138000")
    other = CustomerFactory(chain=chain, mobile="+8613900139000")
    IdentityFactory(customer=other, kind=IdentityKind.PMS, external_id="P-1")
    path = csv_write(tmp_path / "conflict.csv", [["姓名", "手机号", "病历号"], ["张三", "13800138000", "P-1"]])
    before = _snapshot()

    # when
    report = customers_import(path=path, chain=chain)

    # then
    assert report.as_dict() == {"rows": 1, "created": 0, "merged": 0, "skipped": 1, "written": False, "errors": [
        {"row": 2, "column": "病历号", "value": "P-1",
         "message": "belongs to a different person than 手机号 13800138000; merge them first"}]}
    assert _snapshot() == before


def test_phoneless_leads_are_created_and_a_repeated_name_and_birthday_is_one_person(tmp_path, chain):
    # given three phone-less rows: two alike, one with the same name but no birthday
    path = csv_write(tmp_path / "leads.csv", [["姓名", "出生日期"], ["张三", "1990-01-05"], ["张三", "1990-01-05"],
                                              ["张三", ""]])

    # when
    report = customers_import(path=path, chain=chain)

    # then
    assert (report.rows, report.created, report.merged) == (3, 2, 1)
    assert sorted(str(c.birthday) for c in Customer.objects.filter(chain=chain)) == ["1990-01-05", "None"]


def test_a_phone_cell_saying_there_is_none_is_a_blank_one_and_other_words_are_still_an_error(tmp_path, chain):
    # given a clinic's export that writes 无 / 暂无 / - for walk-ins who gave no number (each stopped the whole file)
    path = csv_write(tmp_path / "walkins.csv", [["姓名", "手机号", "电话"], ["孙女士", "无", ""], ["周先生", "暂无", ""],
                                                ["吴女士", " - ", "0755-86001234"], ["郑先生", "abc", ""]])

    # when
    report = customers_import(path=path, chain=chain, skip_invalid=True)

    # then: three phone-less people (the landline column still stands in for a blank phone), and 'abc' refused
    assert [(e["row"], e["value"], e["message"]) for e in report.errors] == [(5, "abc", "is not a phone number")]
    assert sorted((c.name, c.mobile) for c in Customer.objects.filter(chain=chain)) == [
        ("吴女士", "+8675586001234"), ("周先生", None), ("孙女士", None)]


def test_a_file_with_an_invalid_row_writes_nothing_and_lists_every_error(tmp_path, chain):
    # given one good row and two bad ones
    CustomerFactory(chain=chain, name="王五", mobile="+8613700137000")
    path = csv_write(tmp_path / "bad.csv", [
        ["姓名", "手机号", "性别", "出生日期", "门诊"],
        ["张三", "13800138000", "男", "1990-01-05", ""],
        ["李四", "12345", "x", "1990-02-30", "火星门诊"],
        ["", "13900139000", "", "", ""],
        ["王五", "13700137000", "", "", ""],
    ])
    before = _snapshot()

    # when
    report = customers_import(path=path, chain=chain)

    # then
    assert report.as_dict() == {"rows": 4, "created": 1, "merged": 1, "skipped": 2, "written": False, "errors": [
        {"row": 3, "column": "手机号", "value": "12345", "message": "is not a valid phone number"},
        {"row": 3, "column": "性别", "value": "x", "message": "is not a gender (use 男/女, M/F or male/female)"},
        {"row": 3, "column": "出生日期", "value": "1990-02-30", "message": "is not a real calendar date"},
        {"row": 3, "column": "门诊", "value": "火星门诊", "message": "is not a clinic of this chain"},
        {"row": 4, "column": "姓名", "value": "", "message": "is required"},
    ]}
    assert _snapshot() == before


def test_skip_invalid_writes_the_valid_rows_and_lists_the_invalid_ones(tmp_path, chain):
    # given
    path = csv_write(tmp_path / "bad.csv", [["姓名", "手机号"], ["张三", "13800138000"], ["李四", "110"]])

    # when
    report = customers_import(path=path, chain=chain, skip_invalid=True)

    # then
    assert report.as_dict() == {"rows": 2, "created": 1, "merged": 0, "skipped": 1, "written": True, "errors": [
        {"row": 3, "column": "手机号", "value": "110", "message": "is not a phone number"}]}
    assert list(Customer.objects.filter(chain=chain).values_list("name", flat=True)) == ["张三"]


def test_a_dry_run_reports_what_would_happen_and_writes_nothing(tmp_path, chain):
    # given
    CustomerFactory(chain=chain, name="张三", mobile="+8613800138000")
    path = csv_write(tmp_path / "dry.csv", [["姓名", "手机号"], ["张三", "13800138000"], ["李四", "13900139000"],
                                            ["李四", "13900139000"]])
    before = _snapshot()

    # when
    report = customers_import(path=path, chain=chain, dry_run=True)

    # then
    assert report.as_dict() == {"rows": 3, "created": 1, "merged": 2, "skipped": 0, "written": False, "errors": []}
    assert [p["outcome"] for p in report.preview] == ["merge", "create", "merge"]
    assert _snapshot() == before


@pytest.mark.parametrize("dry_run", [False, True])
def test_people_repeated_across_chunks_are_still_one_person(tmp_path, chain, monkeypatch, dry_run):
    # given chunks of two rows, and a person whose rows fall in different chunks
    monkeypatch.setattr("smileloop.imports.services.customers.CHUNK_ROWS", 2)
    path = csv_write(tmp_path / "chunks.csv", [["姓名", "手机号", "病历号"], ["张三", "13800138000", ""],
                                               ["李四", "13900139000", ""], ["王五", "", "P-1"],
                                               ["王五", "13700137000", "P-1"], ["张三", "138 0013 8000", ""],
                                               ["王五", "13700137000", ""]])

    # when
    report = customers_import(path=path, chain=chain, dry_run=dry_run)

    # then
    assert (report.rows, report.created, report.merged, report.skipped) == (6, 3, 3, 0)
    expected = [] if dry_run else [("张三", "+8613800138000"), ("李四", "+8613900139000"), ("王五", "+8613700137000")]
    assert list(Customer.objects.filter(chain=chain).order_by("id").values_list("name", "mobile")) == expected


@pytest.mark.parametrize("chunk_rows", [5000, 2])
@pytest.mark.parametrize("dry_run", [False, True])
def test_a_repeat_fills_the_blank_fields_of_the_first_row_wherever_it_falls(tmp_path, chain, monkeypatch, chunk_rows,
                                                                            dry_run):
    # given a person whose first row leaves community, address and notes blank, repeated in the same chunk
    # (or, with chunks of two rows, in the next one) with them filled; and a person whose repeat differs
    monkeypatch.setattr("smileloop.imports.services.customers.CHUNK_ROWS", chunk_rows)
    path = csv_write(tmp_path / "repeat.csv", [
        ["姓名", "手机号", "小区", "地址", "备注"],
        ["张三", "13800138000", "", "", ""],
        ["李四", "13900139000", "静安花园", "", "怕疼"],
        ["张三", "138 0013 8000", "静安花园", "上海市静安区1号", "怕疼"],
        ["李四", "13900139000", "浦东小区", "浦东大道2号", "不怕疼"],
    ])

    # when
    report = customers_import(path=path, chain=chain, dry_run=dry_run)

    # then the blanks are filled and nothing filled is overwritten; a dry run reports the same
    assert report.as_dict() == {"rows": 4, "created": 2, "merged": 2, "skipped": 0, "written": not dry_run,
                                "errors": []}
    expected = [] if dry_run else [("张三", "静安花园", "上海市静安区1号", "怕疼"), ("李四", "静安花园", "浦东大道2号", "怕疼")]
    assert list(Customer.objects.filter(chain=chain).order_by("id").values_list(
        "name", "community", "address", "notes")) == expected


def test_column_map_maps_headers_the_import_does_not_know(tmp_path, chain):
    # given
    path = csv_write(tmp_path / "map.csv", [["客户", "联系人手机", "随便"], ["张三", "13800138000", "x"]])

    # when
    report = customers_import(path=path, chain=chain, column_map={"客户": "name", "联系人手机": "phone"})

    # then
    assert (report.columns, report.ignored_columns) == ({"客户": "name", "联系人手机": "mobile"}, ["随便"])
    assert Customer.objects.get(chain=chain).mobile == "+8613800138000"


def test_an_unknown_field_in_the_column_map_is_an_error_before_reading(tmp_path, chain):
    # given
    path = tmp_path / "does-not-matter.csv"

    # when / then
    with pytest.raises(ImportFileError) as exc:
        customers_import(path=path, chain=chain, column_map={"客户": "shoe_size"})
    assert exc.value.code == "unknown_field"
    assert Customer.objects.count() == 0


@pytest.mark.parametrize("header", ["阶段", "客户阶段", "stage", "Stage", "lifecycle stage"])
def test_a_stage_column_is_not_imported_new_people_are_leads_and_known_ones_keep_their_stage(
        tmp_path, chain, clinic_a, header):
    # given a patient already treated, and a file from another system with a stage column
    known = CustomerFactory(chain=chain, name="张三", mobile="+8613800138000", home_clinic=clinic_a,
                            stage=Stage.TREATED)
    path = csv_write(tmp_path / "crm.csv", [["姓名", "手机号", header],
                                            ["张三", "13800138000", "流失"],
                                            ["李四", "13900139000", "member"]])

    # when
    report = customers_import(path=path, chain=chain)

    # then the column is reported as ignored and no stage is taken from it
    assert (report.created, report.merged, report.errors) == (1, 1, [])
    assert report.ignored_columns == [header]
    assert "stage" not in report.columns.values()
    known.refresh_from_db()
    assert (known.stage, known.stage_reached) == (Stage.TREATED, Stage.TREATED)
    new = Customer.objects.get(mobile="+8613900139000")
    assert (new.stage, new.stage_reached) == (Stage.LEAD, Stage.LEAD)


def test_mapping_a_column_to_the_stage_is_an_error_before_reading(tmp_path, chain):
    # given
    path = csv_write(tmp_path / "crm.csv", [["姓名", "阶段"], ["张三", "member"]])

    # when / then: the stage is derived from events, so it is not an import field
    with pytest.raises(ImportFileError) as exc:
        customers_import(path=path, chain=chain, column_map={"阶段": "stage"})
    assert exc.value.code == "unknown_field"
    assert "“stage”" in str(exc.value)
    assert Customer.objects.count() == 0


@pytest.mark.parametrize("writer", [csv_write, xlsx_write])
def test_formula_like_free_text_is_stored_as_text(tmp_path, chain, writer):
    # given cells a spreadsheet would evaluate
    path = writer(tmp_path / f"f.{'csv' if writer is csv_write else 'xlsx'}", [
        ["姓名", "手机号", "备注", "地址"],
        ["张三", "13800138000", '=HYPERLINK("http://evil.example","点我")', "=1+1"],
    ])

    # when
    customers_import(path=path, chain=chain)

    # then
    person = Customer.objects.get(chain=chain)
    assert (person.notes, person.address) == ('=HYPERLINK("http://evil.example","点我")', "=1+1")


def test_a_written_import_records_one_audit_event_with_the_counts(tmp_path, chain, director_a):
    # given
    path = csv_write(tmp_path / "a.csv", [["姓名", "手机号"], ["张三", "13800138000"]])

    # when
    customers_import(path=path, chain=chain, actor=director_a)

    # then
    event = AuditEvent.objects.get()
    assert (event.action, event.actor_id, event.object_type, event.object_id, event.detail) == (
        "import.customers", director_a.user_id, "chain", str(chain.id),
        {"file": "a.csv", "rows": 1, "created": 1, "merged": 0, "skipped": 0})
    person = Customer.objects.get(chain=chain)
    assert person.first_touch_staff_id == director_a.id


def test_the_default_clinic_applies_to_rows_without_a_clinic(tmp_path, chain, clinic_a, clinic_b):
    # given
    path = csv_write(tmp_path / "c.csv", [["姓名", "手机号", "门诊"], ["张三", "13800138000", ""],
                                          ["李四", "13900139000", "浦东门诊"]])

    # when
    customers_import(path=path, chain=chain, default_clinic=clinic_a)

    # then
    assert dict(Customer.objects.values_list("name", "home_clinic_id")) == {"张三": clinic_a.id, "李四": clinic_b.id}


def test_a_consent_column_records_consents_from_the_import(tmp_path, chain):
    # given
    path = csv_write(tmp_path / "c.csv", [["姓名", "手机号", "短信营销"], ["张三", "13800138000", "是"],
                                          ["李四", "13900139000", "否"]])

    # when
    customers_import(path=path, chain=chain)

    # then
    assert set(Consent.objects.values_list("customer__name", "purpose", "granted", "source")) == {
        ("张三", ConsentPurpose.MARKETING_SMS, True, "import"), ("李四", ConsentPurpose.MARKETING_SMS, False, "import")}


@pytest.mark.parametrize(("name", "content", "code"), [
    ("missing.csv", None, "missing_file"),
    ("old.xls", b"\xd0\xcf\x11\xe0", "unsupported_file"),
    ("noheader.csv", b"foo,bar\n1,2\n", "no_header"),
    ("broken.xlsx", b"not a zip", "bad_file"),
])
def test_a_file_that_cannot_be_read_is_refused_with_a_clear_error(tmp_path, chain, name, content, code):
    # given
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)

    # when / then
    with pytest.raises(ImportFileError) as exc:
        customers_import(path=path, chain=chain)
    assert exc.value.code == code
    assert Customer.objects.count() == 0


# --- scope: a clinic director imports as the API upsert writes for them ------------------------------------


def test_a_clinic_director_cannot_merge_into_or_create_patients_of_another_clinic(tmp_path, chain, clinic_a,
                                                                                  clinic_b, director_a):
    # given a patient of clinic B with blanks an import could fill
    other = CustomerFactory(chain=chain, name="赵敏", mobile="+8613900139000", home_clinic=clinic_b, community="")
    path = csv_write(tmp_path / "a.csv", [
        HEADER,
        ["赵敏", "13900139000", "", "", "", "", "浦东花园", "", ""],    # names B's patient
        ["钱七", "13700137000", "", "", "浦东门诊", "", "", "", ""],    # a new patient put in clinic B
        ["孙八", "13600136000", "", "", "", "", "", "", ""],            # no clinic: the director's own
    ])
    before = _snapshot()

    # when the director of clinic A imports it
    report = customers_import(path=path, chain=chain, actor=director_a)

    # then the file is refused row by row and nothing is written or shown of B's patient
    assert not report.written and report.skipped == 2 and _snapshot() == before
    assert [(e["row"], e["column"], e["message"]) for e in report.as_dict()["errors"]] == [
        (2, "手机号", "belongs to a customer outside your clinics; a colleague who sees every clinic can import "
                     "this row"),
        (3, "所属门诊", "is not one of your clinics")]
    assert not any("浦东花园" in str(p) for p in report.preview if p["outcome"] != "invalid")
    other.refresh_from_db()
    assert other.community == ""

    # when the valid row is imported on its own, it lands in the director's clinic
    only = csv_write(tmp_path / "b.csv", [HEADER, ["孙八", "13600136000", "", "", "", "", "", "", ""]])
    assert customers_import(path=only, chain=chain, actor=director_a).created == 1
    assert Customer.objects.get(mobile="+8613600136000").home_clinic_id == clinic_a.id


def test_a_clinic_director_cannot_name_another_clinics_consultant(tmp_path, chain, clinic_a, clinic_b, director_a,
                                                                  chain_admin):
    # given a consultant of clinic B: the people they own are theirs to see wherever they are registered
    from smileloop.clinics.enums import Role
    from smileloop.clinics.tests.factories import StaffFactory

    theirs = StaffFactory(chain=chain, role=Role.CONSULTANT, name="浦东顾问", clinics=[clinic_b],
                          user__username="consultant_b")
    ours = StaffFactory(chain=chain, role=Role.CONSULTANT, name="静安顾问", clinics=[clinic_a],
                        user__username="consultant_a")
    path = csv_write(tmp_path / "a.csv", [["姓名", "手机号", "顾问"], ["钱七", "13700137000", "consultant_b"],
                                           ["孙八", "13600136000", "静安顾问"]])

    # when the director of clinic A imports it, then the row naming B's consultant is refused (as the API refuses
    # it, and the form does not offer them): it would have opened the new patient to clinic B
    report = customers_import(path=path, chain=chain, actor=director_a)
    assert not report.written
    assert [(e["row"], e["column"], e["message"]) for e in report.as_dict()["errors"]] == [
        (2, "顾问", "does not work at one of your clinics")]
    assert not Customer.objects.exists()

    # a chain admin may name anyone of the chain
    report = customers_import(path=path, chain=chain, actor=chain_admin)
    assert report.created == 2
    assert Customer.objects.get(mobile="+8613700137000").consultant_id == theirs.id
    assert Customer.objects.get(mobile="+8613600136000").consultant_id == ours.id
    # and the preview names them as the file did, not by their number
    assert [p["values"].get("consultant") for p in report.preview] == ["浦东顾问", "静安顾问"]


def test_a_chain_admin_merges_across_clinics_and_a_default_clinic_must_be_in_scope(tmp_path, chain, clinic_a,
                                                                                   clinic_b, chain_admin, director_a):
    other = CustomerFactory(chain=chain, name="赵敏", mobile="+8613900139000", home_clinic=clinic_b, community="")
    path = csv_write(tmp_path / "a.csv", [HEADER, ["赵敏", "13900139000", "", "", "", "", "浦东花园", "", ""]])
    report = customers_import(path=path, chain=chain, actor=chain_admin)
    assert (report.merged, report.errors) == (1, [])
    other.refresh_from_db()
    assert other.community == "浦东花园"
    with pytest.raises(ImportFileError, match="not one of your clinics"):
        customers_import(path=path, chain=chain, actor=director_a, default_clinic=clinic_b)


def _analyzed_tables() -> set[str]:
    from smileloop.core.sql import sqlite_analysed

    with connection.cursor() as cursor:
        return set(sqlite_analysed(cursor))


def test_on_sqlite_an_import_that_wrote_leaves_the_planner_statistics_and_a_dry_run_does_not(tmp_path, chain):
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL keeps its own statistics (autovacuum)")
    path = csv_write(tmp_path / "p.csv", [["姓名", "手机号"], ["张三", "13800138000"]])
    # when a dry run reads the file, then the import writes it
    customers_import(path=path, chain=chain, dry_run=True)
    before = _analyzed_tables()
    customers_import(path=path, chain=chain)
    # then only the write refreshed SQLite's statistics (a first big import must not leave the planner guessing)
    assert "customers_customer" not in before
    assert {"customers_customer", "customers_customersearchkey"} <= _analyzed_tables()


# --- what the preview and the report say of a merge ------------------------------------------------------------


def test_the_preview_of_a_merge_shows_the_person_as_stored_not_the_files_values(tmp_path, chain, clinic_a, clinic_b):
    # given a pool patient with a clinic and a source, but no community
    CustomerFactory(chain=chain, name="导入甲", mobile="+8613800138000", home_clinic=clinic_a,
                    first_touch_channel=Channel.DOUYIN, community="")
    path = csv_write(tmp_path / "c.csv", [
        HEADER,
        ["导入丁", "13800138000", "", "", "浦东门诊", "美团", "静安花园", "", ""],
    ])

    # when
    report = customers_import(path=path, chain=chain, dry_run=True)

    # then the preview shows her own name, clinic and source (kept, the file's beside them) and the community filled
    assert report.preview == [{
        "row": 2, "outcome": "merge",
        "values": {"name": "导入甲", "mobile": "+8613800138000", "home_clinic": "静安门诊", "source": "douyin",
                   "community": "静安花园"},
        "filled": ["community"],
        "kept": {"name": "导入丁", "home_clinic": "浦东门诊", "source": "meituan"},
        "warning": "differs from the name of the person with this phone (导入甲): the row is merged into them, and "
                   "their name is kept"}]
    # and the name that differs on the same phone is a warning of the report, not an error
    assert report.as_dict()["errors"] == []
    assert report.as_dict()["warnings"] == [{
        "row": 2, "column": "姓名", "value": "导入丁",
        "message": "differs from the name of the person with this phone (导入甲): the row is merged into them, and "
                   "their name is kept"}]


def test_a_merge_under_the_same_name_spaced_otherwise_has_no_warning(tmp_path, chain):
    CustomerFactory(chain=chain, name="王 芳", mobile="+8613800138000")
    path = csv_write(tmp_path / "c.csv", [["姓名", "手机号"], ["王芳", "13800138000"], ["王 芳", "13800138000"],
                                          ["王方", "13800138000"]])

    report = customers_import(path=path, chain=chain)

    assert (report.merged, report.warning_count) == (3, 1)
    assert [(w["row"], w["value"]) for w in report.as_dict()["warnings"]] == [(4, "王方")]


def test_row_errors_are_english_whoever_checks_and_shown_in_the_readers_language(tmp_path, chain, clinic_b,
                                                                                 director_a):
    from smileloop.imports.messages import message_display

    # given a patient of another clinic, checked by a director whose page is in Chinese
    CustomerFactory(chain=chain, name="赵敏", mobile="+8613900139000", home_clinic=clinic_b)
    path = csv_write(tmp_path / "a.csv", [["姓名", "手机号"], ["赵敏", "13900139000"]])

    # when
    with translation.override("zh-hans"):
        report = customers_import(path=path, chain=chain, actor=director_a)

    # then the stored message is the stable English one, and each reader sees it in their own language
    message = report.as_dict()["errors"][0]["message"]
    assert message == "belongs to a customer outside your clinics; a colleague who sees every clinic can import this row"
    with translation.override("zh-hans"):
        assert message_display(message) == "属于其他门诊的客户；请由可查看全部门诊的同事导入此行"
    with translation.override("en"):
        assert message_display(message) == message


def test_the_unknown_channel_error_lists_channels_by_their_labels_in_chinese(tmp_path, chain):
    from smileloop.imports.messages import message_display

    path = csv_write(tmp_path / "c.csv", [["姓名", "来源"], ["张三", "火星"]])
    message = customers_import(path=path, chain=chain).as_dict()["errors"][0]["message"]

    with translation.override("zh-hans"):
        shown = message_display(message)
    assert shown.startswith("不是已知的来源渠道（微信公众号、企业微信、抖音、")
    assert shown.endswith("、其他，或 微信/抖音/小红书/转介绍/… 等说法）") and "wechat_oa" not in shown


def test_a_pool_that_changed_under_the_import_is_a_conflict_not_a_database_error(tmp_path, chain, monkeypatch):
    # given a phone that is someone's, which the import's lookup misses (another import wrote it meanwhile)
    from smileloop.imports.errors import ImportConflict
    from smileloop.imports.services import customers as module

    CustomerFactory(chain=chain, name="张三", mobile="+8613800138000")
    monkeypatch.setattr(module, "select_in", lambda *args, **kwargs: [])
    path = csv_write(tmp_path / "c.csv", [["姓名", "手机号"], ["张三", "13800138000"]])
    before = _snapshot()

    # when / then (on PostgreSQL the insert is a COPY, whose UniqueViolation is psycopg's, not Django's)
    with pytest.raises(ImportConflict) as exc:
        customers_import(path=path, chain=chain)
    assert exc.value.message.startswith("The patient pool changed during the import (")
    assert exc.value.message.endswith("nothing more was written, run it again")
    # named by the clash, never the database's text: that quotes the phone in full to whoever reads the page
    assert "13800138000" not in exc.value.message and "mobile" in exc.value.message
    assert _snapshot() == before
