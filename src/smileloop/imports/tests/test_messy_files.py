"""Real exports from other systems and Excel: title rows, extra sheets, claimed used ranges, UTF-16, renamed files,
invisible characters, scientific notation, formulas in number columns."""

import codecs
import datetime as dt
import re
import zipfile
import zoneinfo

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import translation

from smileloop.customers.enums import Gender, InteractionKind
from smileloop.customers.models import Customer, Interaction
from smileloop.customers.templatetags.customers_ui import interaction_text
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.imports.errors import ImportFileError
from smileloop.imports.services import customers_import, orders_import
from smileloop.imports.services.reading import cell_text, table_open
from smileloop.imports.services.values import FORMULA
from smileloop.imports.tests.files import csv_write, xlsx_write
from smileloop.visits.models import Order

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def test_a_title_row_and_a_notes_sheet_before_the_data_keep_spreadsheet_row_numbers(tmp_path, chain):
    # given a workbook whose first sheet is a note and whose data sheet has a title and a blank row above the header
    workbook = openpyxl.Workbook()
    workbook.active.title = "说明"
    workbook.active.append(["本表由旧系统导出，请勿修改"])
    sheet = workbook.create_sheet("客户")
    sheet.append(["客户名单（2024年导出）"])
    sheet.append([])
    sheet.append(["姓名", "手机号"])
    sheet.append(["张三", "13800138000"])
    sheet.append(["李四", "12345"])
    workbook.save(tmp_path / "客户.xlsx")

    # when
    report = customers_import(path=tmp_path / "客户.xlsx", chain=chain, skip_invalid=True)

    # then the header is row 3 of the sheet "客户", and the bad row is reported as row 5, as Excel shows it
    assert (report.created, report.skipped) == (1, 1)
    assert [(e["row"], e["column"], e["value"]) for e in report.as_dict()["errors"]] == [(5, "手机号", "12345")]
    assert Customer.objects.get().name == "张三"


def test_a_title_row_above_the_header_of_a_csv(tmp_path, chain):
    # given
    path = csv_write(tmp_path / "c.csv", [["客户导出 2024-01-01"], ["姓名", "手机号"], ["张三", "bad"]])

    # when
    report = customers_import(path=path, chain=chain, dry_run=True)

    # then
    assert [(e["row"], e["value"]) for e in report.as_dict()["errors"]] == [(3, "bad")]


def test_summary_lines_of_an_export_are_set_aside_not_imported_as_people(tmp_path, chain):
    # given an export with a subtotal after each clinic's block, a count, and who made it and when
    path = xlsx_write(tmp_path / "c.xlsx", [
        ["序号", "姓名", "手机号"],
        [1, "张三", "13800138000"],
        [None, "小计", None],
        [2, "李四", "13900139000"],
        ["合计：2人", None, None],
        ["共 2 条"],
        ["制表人：王芳", None, "导出时间：2026-12-01"],
        ["Total: 2"],
    ])

    # when
    report = customers_import(path=path, chain=chain)

    # then only the two people are rows; the summary lines are reported with their row numbers, not as people
    assert (report.rows, report.created, report.skipped) == (2, 2, 0)
    assert sorted(Customer.objects.values_list("name", flat=True)) == ["张三", "李四"]
    assert report.as_dict()["summary_rows"] == [
        {"row": 3, "value": "小计"}, {"row": 5, "value": "合计：2人"}, {"row": 6, "value": "共 2 条"},
        {"row": 7, "value": "制表人：王芳"}, {"row": 8, "value": "Total: 2"}]


@pytest.mark.parametrize("name", ["总", "共三", "小明", "Sum Ka Wai", "Totally Real", "合欢"])
def test_names_that_only_look_like_summary_words_are_people(tmp_path, chain, name):
    path = csv_write(tmp_path / "c.csv", [["姓名", "手机号"], [name, "13800138000"]])
    report = customers_import(path=path, chain=chain)
    assert (report.created, report.as_dict().get("summary_rows")) == (1, None)
    assert Customer.objects.get().name == name


def test_a_totals_line_of_an_orders_export_is_not_an_invalid_order(tmp_path, chain, clinic_a, catalogue):
    CustomerFactory(chain=chain, name="张三", mobile="+8613800138000", home_clinic=clinic_a)
    path = csv_write(tmp_path / "o.csv", [
        ["订单号", "手机号", "日期", "项目编码", "单价", "金额"],
        ["A1", "13800138000", "2024-01-05", "EX01", "50", "50"],
        ["合计", "", "", "", "", "50"],
    ])

    report = orders_import(path=path, chain=chain)

    assert (report.rows, report.created, report.error_count) == (1, 1, 0)
    assert report.as_dict()["summary_rows"] == [{"row": 3, "value": "合计"}]
    assert Order.objects.count() == 1


def test_a_workbook_claiming_the_whole_sheet_as_its_used_range_is_read_at_its_real_size(tmp_path):
    # given a workbook whose dimension says A1:XFD1048576 (as some writers and Excel itself leave it)
    xlsx_write(tmp_path / "src.xlsx", [["姓名", "手机号"], ["张三", "13800138000"]])
    with zipfile.ZipFile(tmp_path / "src.xlsx") as source, zipfile.ZipFile(tmp_path / "big.xlsx", "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = re.sub(rb'<dimension ref="[^"]*" ?/>', b'<dimension ref="A1:XFD1048576"/>', data)
            target.writestr(item, data)

    # when
    with table_open(tmp_path / "big.xlsx") as table:
        table.map_columns(aliases={"姓名": "name", "手机号": "mobile"}, fields={"name", "mobile"}, column_map={})
        rows = list(table.rows())

    # then rows are not padded to 16,384 cells
    assert len(table.headers) == 2
    assert [(number, len(cells)) for number, cells in rows] == [(2, 2)]


def test_excel_unicode_text_utf16_tab_separated_is_read(tmp_path, chain):
    # given what Excel's "Unicode text" writes: UTF-16 with a BOM, tab-separated, CRLF
    path = tmp_path / "u.csv"
    path.write_bytes(codecs.BOM_UTF16_LE + "姓名\t手机号\r\n𠮷野\t13800138000\r\n".encode("utf-16-le"))

    # when
    report = customers_import(path=path, chain=chain)

    # then
    assert (report.created, report.errors) == (1, [])
    assert Customer.objects.get().name == "𠮷野"


def test_an_xlsx_saved_under_a_csv_name_is_read_as_a_workbook(tmp_path, chain):
    # given
    xlsx_write(tmp_path / "x.xlsx", [["姓名", "手机号"], ["张三", 13800138000]])
    (tmp_path / "x.csv").write_bytes((tmp_path / "x.xlsx").read_bytes())

    # when
    report = customers_import(path=tmp_path / "x.csv", chain=chain)

    # then
    assert (report.created, Customer.objects.get().mobile) == (1, "+8613800138000")


@pytest.mark.parametrize(("name", "content", "message"), [
    ("old.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600,
     "old.xlsx is an old Excel 97-2003 (.xls) workbook: open it in Excel and save it as .xlsx"),
    ("old.csv", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600,
     "old.csv is an old Excel 97-2003 (.xls) workbook: open it in Excel and save it as .xlsx"),
    ("zip.csv", None, "zip.csv is not a valid .xlsx workbook"),
    ("header.csv", "姓名,手机号\r\n,\r\n".encode(), "header.csv has a header but no data rows"),
    ("blank.csv", b"\r\n \r\n", "blank.csv is empty"),
    ("nul.csv", "姓名\n张\0三\n".encode(), "nul.csv contains NUL bytes, which no CSV text has"),
])
def test_files_that_are_not_what_they_claim_get_a_clear_message(tmp_path, chain, name, content, message):
    # given
    path = tmp_path / name
    if content is None:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("a.txt", "hello")
    else:
        path.write_bytes(content)

    # when / then
    with pytest.raises(ImportFileError) as exc:
        customers_import(path=path, chain=chain)
    assert str(exc.value.message).startswith(message)


def test_invisible_characters_genders_in_words_and_exact_scientific_phones_are_normalised(tmp_path, chain):
    # given cells copied from chat apps and web pages, and a CSV Excel saved with a phone in scientific notation
    path = csv_write(tmp_path / "c.csv", [
        ["姓名", "手机号", "性别"],
        ["李\u200b四\ufeff", "139\u200b0013\u200b9000", "女士"],
        ["王五", "\u202d13700137000\u202c", "男性"],
        ["赵六", "1.3600136001E+10", "先生"],
    ])

    # when
    report = customers_import(path=path, chain=chain)

    # then
    assert report.errors == []
    assert sorted(Customer.objects.values_list("name", "mobile", "gender")) == [
        ("李四", "+8613900139000", Gender.FEMALE), ("王五", "+8613700137000", Gender.MALE),
        ("赵六", "+8613600136001", Gender.MALE)]


def test_a_phone_whose_digits_scientific_notation_lost_is_refused_as_such(tmp_path, chain):
    # given
    path = csv_write(tmp_path / "c.csv", [["姓名", "手机号"], ["张三", "1.38001E+10"]])

    # when
    report = customers_import(path=path, chain=chain)

    # then
    assert report.as_dict()["errors"] == [{"row": 2, "column": "手机号", "value": "1.38001E+10", "message": (
        "is in scientific notation, so its last digits are lost; in Excel format the column as text or a number "
        "without decimals and save the file again")}]
    assert Customer.objects.count() == 0


def test_excel_floats_are_read_as_excel_shows_them():
    # Excel stores 17 significant digits of a computed 259.2, and shows 15
    assert (cell_text(259.20000000000005), cell_text(0.30000000000000004), cell_text(13800138000.0)) == (
        "259.2", "0.3", "13800138000")


@pytest.fixture
def patient(chain, clinic_a):
    return CustomerFactory(chain=chain, name="张三", mobile="+8613800138000", home_clinic=clinic_a)


def test_orders_with_yuan_suffix_lower_case_codes_and_excel_date_times(tmp_path, chain, clinic_a, catalogue, patient):
    # given
    path = xlsx_write(tmp_path / "o.xlsx", [
        ["订单号", "手机号", "日期", "项目编码", "单价", "金额"],
        ["A1", "13800138000", 45296.6, "ex01", "50元", "50.00 元"],
        ["A2", "13800138000", "2024-01-05", "ＥＸ01", 259.20000000000005, 259.20000000000005],
    ])

    # when
    report = orders_import(path=path, chain=chain)

    # then
    assert report.as_dict()["errors"] == []
    assert sorted(Order.objects.values_list("external_id", "amount_fen", "ordered_at")) == [
        ("A1", 5000, dt.datetime(2024, 1, 5, 14, 24, tzinfo=SHANGHAI)),
        ("A2", 25920, dt.datetime(2024, 1, 5, tzinfo=SHANGHAI))]


def test_an_order_dated_in_the_future_or_before_1980_and_a_formula_amount_are_errors(tmp_path, chain, clinic_a,
                                                                                     catalogue, patient):
    # given
    path = xlsx_write(tmp_path / "o.xlsx", [
        ["订单号", "手机号", "日期", "项目编码", "单价", "金额"],
        ["A1", "13800138000", "2042-01-05", "EX01", "50", "50"],
        ["A2", "13800138000", "2024-01-05", "EX01", "50", "=E3*1"],
        ["A3", "13800138000", "1924-01-05", "EX01", "50", "50"],
    ])

    # when
    report = orders_import(path=path, chain=chain)

    # then
    assert [(e["row"], e["column"], e["message"]) for e in report.as_dict()["errors"]] == [
        (2, "日期", "is in the future"), (3, "金额", FORMULA), (4, "日期", "is before 1980-01-01")]
    assert Order.objects.count() == 0


def test_a_formula_saved_by_excel_with_its_result_is_still_read_as_its_text(tmp_path, chain, clinic_a, catalogue,
                                                                            patient):
    # given formulas as Excel saves them: with the last computed result cached beside the formula (openpyxl writes
    # none, so it is added here); a reader that returns cached results would import 50 and "2"
    xlsx_write(tmp_path / "src.xlsx", [["订单号", "手机号", "日期", "项目编码", "单价", "金额", "备注"],
                                       ["A1", "13800138000", "2024-01-05", "EX01", "50", "=E2*1", "=1+1"]])
    with zipfile.ZipFile(tmp_path / "src.xlsx") as source, zipfile.ZipFile(tmp_path / "o.xlsx", "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"<f>E2*1</f><v />", b"<f>E2*1</f><v>50</v>")
                data = data.replace(b"<f>1+1</f><v />", b'<f>1+1</f><v>2</v>')
                assert data.count(b"</f><v>") == 2
            target.writestr(item, data)

    # when
    report = orders_import(path=tmp_path / "o.xlsx", chain=chain)

    # then the amount is refused as a formula, not imported as its cached 50
    assert [(e["row"], e["column"], e["value"], e["message"]) for e in report.as_dict()["errors"]] == [
        (2, "金额", "=E2*1", FORMULA)]
    assert Order.objects.count() == 0


def test_an_excel_error_value_is_read_as_such_not_as_a_blank_cell(tmp_path, chain):
    # given a broken lookup pasted back as values: the phone cell holds the error #N/A (openpyxl writes it as one)
    path = xlsx_write(tmp_path / "c.xlsx", [["姓名", "手机号"], ["张三", "#N/A"]])
    assert b't="e"' in zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml")

    # when
    report = customers_import(path=path, chain=chain)

    # then the row is refused with the error's text, not imported as a patient without a phone
    assert [(e["row"], e["column"], e["value"]) for e in report.as_dict()["errors"]] == [(2, "手机号", "#N/A")]
    assert Customer.objects.count() == 0


def test_the_page_names_the_uploaded_file_in_messages_and_in_what_it_writes(client, director_a, settings, tmp_path):
    # given
    settings.SMILELOOP_IMPORT_DIR = tmp_path / "imports"
    client.force_login(director_a.user)

    # when a file without a header is uploaded, the message names it as its owner does
    response = client.post(reverse("imports:upload"), {"kind": "customers", "file": SimpleUploadedFile(
        "旧系统.csv", b"foo,bar\n1,2\n")})
    assert "No recognisable header in the first 10 rows of 旧系统.csv" in response.content.decode()

    # when a good file is uploaded and confirmed
    response = client.post(reverse("imports:upload"), {"kind": "customers", "file": SimpleUploadedFile(
        "患者.csv", "姓名,手机号\n张三,13800138000\n".encode())})
    client.post(response.url + "confirm/")

    # then the timeline says which file the person came from
    assert list(Interaction.objects.filter(kind=InteractionKind.IMPORT).values_list("text", "data")) == [
        ("imported from 患者.csv", {"file": "患者.csv", "row": 2})]
    with translation.override("zh-hans"):
        assert interaction_text(Interaction.objects.get(kind=InteractionKind.IMPORT)) == "从 患者.csv 导入"


def test_a_clinic_named_short_is_found_when_only_one_clinic_has_that_name(tmp_path, chain, clinic_a, clinic_b):
    # given clinics 静安门诊 and 浦东门诊, and a sheet that writes them as exports and people shorten them
    from smileloop.clinics.tests.factories import ClinicFactory

    ClinicFactory(chain=chain, code="SH03", name="静安寺口腔诊所")
    path = csv_write(tmp_path / "c.csv", [
        ["姓名", "手机号", "门诊"],
        ["张一", "13800138001", "浦东店"],
        ["张二", "13800138002", "浦东分院"],
        ["张三", "13800138003", "静安寺"],
        ["张四", "13800138004", "静安"],
        ["张五", "13800138005", "门诊"],
    ])

    # when
    report = customers_import(path=path, chain=chain, skip_invalid=True)

    # then the unambiguous short names are found; 静安 names two clinics and a bare suffix names none
    assert sorted(Customer.objects.values_list("name", "home_clinic__name")) == [
        ("张一", "浦东门诊"), ("张三", "静安寺口腔诊所"), ("张二", "浦东门诊")]
    assert [(e["row"], e["message"]) for e in report.as_dict()["errors"]] == [
        (5, "matches several clinics (静安门诊, 静安寺口腔诊所); use the full name"),
        (6, "is not a clinic of this chain")]
    with translation.override("zh-hans"):
        from smileloop.imports.messages import message_display
        assert message_display(report.as_dict()["errors"][0]["message"]) == \
            "对应多个门诊（静安门诊, 静安寺口腔诊所），请写全称"


def test_a_lead_noted_as_surname_and_title_gets_the_gender_it_says_unless_a_gender_is_given(tmp_path, chain):
    path = csv_write(tmp_path / "c.csv", [["姓名", "手机号", "性别"], ["王女士", "13800138001", ""],
                                          ["李先生", "13800138002", ""], ["赵先生", "13800138003", "女"]])
    customers_import(path=path, chain=chain)
    assert dict(Customer.objects.values_list("name", "gender")) == {
        "王女士": Gender.FEMALE, "李先生": Gender.MALE, "赵先生": Gender.FEMALE}


@pytest.mark.parametrize(("content", "encoding"), [
    ("姓名\t手机号\t地址\r\n张三\t13800138000\t上海市静安区, 南京西路 1 号\r\n", "utf-8"),
    ("姓名\t手机号\t地址\r\n张三\t13800138000\t\"上海市, 静安区\"\r\n", "utf-16"),  # Excel's "Unicode text"
    ("姓名,手机号,备注\r\n张三,13800138000,过敏;高血压;糖尿病;吸烟\r\n", "utf-8"),
    ("姓名;手机号;地址\r\n张三;13800138000;\"上海市, 静安区\"\r\n", "utf-8"),
    ("sep=;\r\n姓名;手机号;备注\r\n张三;13800138000;a,b,c\r\n", "utf-8"),  # Excel's own delimiter line
    ("客户导出, 2024\r\n\r\n姓名|手机号\r\n张三|13800138000\r\n", "utf-8"),
])
def test_the_delimiter_is_the_one_the_header_reads_under(tmp_path, chain, content, encoding):
    # given a tab file with commas in an address, a comma file with semicolons in its notes, …
    path = tmp_path / "c.csv"
    path.write_bytes(content.encode(encoding))

    # when
    report = customers_import(path=path, chain=chain)

    # then
    assert (report.created, report.errors) == (1, [])
    assert list(Customer.objects.values_list("name", "mobile")) == [("张三", "+8613800138000")]


def test_the_excel_sep_line_is_not_counted_as_a_row(tmp_path, chain):
    path = tmp_path / "c.csv"
    path.write_bytes("sep=;\n姓名;手机号\n张三;13800138000\n李四;12345\n".encode())

    report = customers_import(path=path, chain=chain, dry_run=True)

    assert [(e["row"], e["value"]) for e in report.as_dict()["errors"]] == [(3, "12345")]


def test_an_eight_digit_date_typed_as_a_number_in_excel_is_a_date(tmp_path, chain, clinic_a, catalogue):
    # given YYYYMMDD dates stored as numbers (Excel's serials of real dates have 5 digits)
    CustomerFactory(chain=chain, name="张三", mobile="+8613800138000", home_clinic=clinic_a)
    people = xlsx_write(tmp_path / "c.xlsx", [["姓名", "手机号", "生日"], ["李四", "13900139000", 19900105],
                                             ["王五", "13700137000", 19900230]])
    orders = xlsx_write(tmp_path / "o.xlsx", [["订单号", "手机号", "日期", "项目编码", "金额"],
                                             ["A1", "13800138000", 20240303, "EX01", "50"]])

    # when
    report = customers_import(path=people, chain=chain, skip_invalid=True)
    orders_import(path=orders, chain=chain)

    # then
    assert Customer.objects.get(name="李四").birthday == dt.date(1990, 1, 5)
    assert [(e["row"], e["message"]) for e in report.as_dict()["errors"]] == [(3, "is not a real calendar date")]
    assert Order.objects.get().ordered_at == dt.datetime(2024, 3, 3, tzinfo=SHANGHAI)


def test_a_name_of_invisible_characters_only_is_missing(tmp_path, chain):
    # given names that are a zero-width space, a BOM, a word joiner
    path = csv_write(tmp_path / "c.csv", [["姓名", "手机号"], ["\u200b", "13800138000"], ["\ufeff", "13900139000"],
                                          ["\u2060 \u200b", "13700137000"]])

    # when
    report = customers_import(path=path, chain=chain, skip_invalid=True)

    # then
    assert [(e["row"], e["column"], e["message"]) for e in report.as_dict()["errors"]] == [
        (2, "姓名", "is required"), (3, "姓名", "is required"), (4, "姓名", "is required")]
    assert Customer.objects.count() == 0


def test_the_other_sheets_of_a_workbook_are_named_as_not_read(tmp_path, chain):
    # given a note sheet, the data sheet, another data sheet, an empty sheet and a hidden sheet with data
    workbook = openpyxl.Workbook()
    workbook.active.title = "说明"
    workbook.active.append(["本表由旧系统导出"])
    workbook.create_sheet("客户").append(["姓名", "手机号"])
    workbook["客户"].append(["张三", "13800138000"])
    workbook.create_sheet("第二批").append(["姓名", "手机号"])
    workbook["第二批"].append(["李四", "13900139000"])
    workbook.create_sheet("空")
    workbook.create_sheet("隐藏").append(["x"])
    workbook["隐藏"].sheet_state = "hidden"
    workbook.save(tmp_path / "c.xlsx")

    # when
    report = customers_import(path=tmp_path / "c.xlsx", chain=chain)

    # then
    data = report.as_dict()
    assert (data["sheet"], data["sheets_skipped"]) == ("客户", ["说明", "第二批", "隐藏"])
    assert list(Customer.objects.values_list("name", flat=True)) == ["张三"]
    # and a workbook of one sheet reports as before
    single = customers_import(path=xlsx_write(tmp_path / "d.xlsx", [["姓名"], ["王五"]]), chain=chain)
    assert "sheet" not in single.as_dict() and "sheets_skipped" not in single.as_dict()


@pytest.mark.parametrize("headers", [["姓名（必填）", "手机号(必填)", "备注（选填）"], ["*姓名 (required)", "Phone [optional]",
                                                                            "notes【选填】"]])
def test_a_required_or_optional_note_after_a_header_is_ignored(tmp_path, chain, headers):
    path = csv_write(tmp_path / "c.csv", [headers, ["张三", "13800138000", "怕疼"]])

    report = customers_import(path=path, chain=chain)

    assert (report.created, report.ignored_columns) == (1, [])
    assert list(Customer.objects.values_list("name", "mobile", "notes")) == [("张三", "+8613800138000", "怕疼")]


def test_a_note_naming_a_relative_after_a_header_is_no_header_note(tmp_path, chain):
    # '电话（家长）' is the parent's phone, not the patient's: only required/optional notes are dropped
    path = csv_write(tmp_path / "c.csv", [["姓名", "电话（家长）"], ["张三", "13800138000"]])

    report = customers_import(path=path, chain=chain)

    assert (report.ignored_columns, Customer.objects.get().mobile) == (["电话（家长）"], None)


def test_a_column_map_naming_a_column_the_file_lacks_is_an_error(tmp_path, chain):
    path = csv_write(tmp_path / "c.csv", [["Customer", "Tel No"], ["张三", "13800138000"]])

    with pytest.raises(ImportFileError) as exc:
        customers_import(path=path, chain=chain, column_map={"Customer": "name", "Telephone": "mobile"})

    assert exc.value.code == "unknown_column"
    assert exc.value.message == "Column map: c.csv has no column “Telephone” (its columns: Customer, Tel No)"
    assert Customer.objects.count() == 0


def test_a_cell_longer_than_the_csv_modules_limit_is_its_rows_error_not_the_files(tmp_path, chain):
    # given a name cell of 200,000 characters (the csv module's default limit is 131,072) between two good rows
    path = csv_write(tmp_path / "c.csv", [["姓名", "手机号"], ["张三", "13800138000"], ["长" * 200_000, "13900139000"],
                                          ["李四", "13700137000"]])

    # when
    report = customers_import(path=path, chain=chain, skip_invalid=True)

    # then only that row is refused, by its column, and its value is cut short in the report
    errors = report.as_dict()["errors"]
    assert [(e["row"], e["column"], e["message"]) for e in errors] == [(3, "姓名", "is longer than 50 characters")]
    assert len(errors[0]["value"]) == 200
    assert sorted(Customer.objects.values_list("name", flat=True)) == ["张三", "李四"]


def test_a_negative_unit_price_is_one_error_not_also_the_amounts(tmp_path, chain, clinic_a, catalogue, patient):
    # given a line whose unit price is negative, with and without an amount
    path = csv_write(tmp_path / "o.csv", [
        ["订单号", "手机号", "日期", "项目编码", "单价", "金额"],
        ["A1", "13800138000", "2024-01-05", "EX01", "-50", "-50"],
        ["A2", "13800138000", "2024-01-05", "EX01", "-50", ""],
    ])

    # when
    report = orders_import(path=path, chain=chain)

    # then each row has the one error that explains it
    assert [(e["row"], e["column"], e["message"]) for e in report.as_dict()["errors"]] == [
        (2, "单价", "must not be negative"), (3, "单价", "must not be negative")]
    assert Order.objects.count() == 0


def test_data_only_on_a_hidden_sheet_is_named_not_called_unrecognisable(tmp_path, chain):
    # given a workbook whose visible sheet is a note and whose patients are on a hidden sheet
    workbook = openpyxl.Workbook()
    workbook.active.title = "说明"
    workbook.active.append(["本表由旧系统导出"])
    workbook.create_sheet("客户").append(["姓名", "手机号"])
    workbook["客户"].append(["张三", "13800138000"])
    workbook["客户"].sheet_state = "hidden"
    workbook.save(tmp_path / "c.xlsx")

    # when / then the message names the hidden sheet and what to do
    with pytest.raises(ImportFileError, match="hidden sheet “客户”, which is not read: unhide it") as caught:
        customers_import(path=tmp_path / "c.xlsx", chain=chain)
    assert caught.value.code == "hidden_sheet"
    assert Customer.objects.count() == 0


@pytest.mark.parametrize("text", ["NaN", "nan", "-NaN", "sNaN", "Infinity", "-inf"])
def test_a_coordinate_that_is_not_a_number_is_its_rows_error(tmp_path, chain, text):
    # given a latitude column with what a script's export writes for a missing number
    path = csv_write(tmp_path / "c.csv", [["姓名", "手机号", "纬度", "经度"], ["张三", "13800138000", text, "121.47"],
                                          ["李四", "13900139000", "31.23", "121.47"]])

    # when
    report = customers_import(path=path, chain=chain)

    # then: an error on its cell, nothing written (not a traceback that stops the import)
    assert report.as_dict()["errors"] == [{"row": 2, "column": "纬度", "value": text,
                                           "message": "must be a number between -90 and 90"}]
    assert Customer.objects.count() == 0
