"""Hostile and broken files: each is refused with a message naming the row or the file problem, nothing is written,
and no file makes the import crash or hold gigabytes of memory."""

import codecs
import io
import zipfile

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from smileloop.core.bounds import MAX_FEN, MAX_QUANTITY
from smileloop.customers.models import Customer
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.imports.enums import BatchStatus
from smileloop.imports.errors import ImportFileError
from smileloop.imports.models import ImportBatch
from smileloop.imports.services import customers_import, orders_import
from smileloop.imports.services.batches import batch_path
from smileloop.imports.services.guards import XLSX_MAX_RATIO
from smileloop.imports.services.reading import table_open
from smileloop.imports.tests.files import csv_write
from smileloop.visits.models import Order, OrderLine

ORDER_HEADER = ["订单号", "手机号", "门诊", "日期", "项目编码", "数量", "单价"]


@pytest.fixture
def patient(chain, clinic_a):
    return CustomerFactory(chain=chain, name="张三", mobile="+8613800138000", home_clinic=clinic_a)


# --- CSV ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("content", [
    '姓名,手机号\n"张三,13800138000\n李四,13900139000\n王五,13700137000\n',  # never closed: the rest is one cell
    '姓名,手机号,备注\n张三,13800138000,"VIP\n李四,13900139000,"老客户",\n',  # closed by a later row's quote
])
def test_a_quote_that_is_never_closed_is_refused_naming_its_row_not_read_as_one_cell(tmp_path, chain, content):
    # given a CSV whose quoted cell swallows the rows after it
    path = tmp_path / "c.csv"
    path.write_text(content, encoding="utf-8")

    # when / then the file is refused on the row where the quote opens, and nothing is written
    with pytest.raises(ImportFileError) as caught:
        customers_import(path=path, chain=chain)
    assert "Row 2 of c.csv" in caught.value.message
    assert "quote" in caught.value.message
    assert Customer.objects.count() == 0


def test_a_utf8_file_with_one_damaged_byte_is_refused_naming_its_line_not_read_as_gbk(tmp_path, chain):
    # given a UTF-8 file of two-character names (which also decode as GB18030 pairs) and one Latin-1 byte on line 4
    text = "name,phone\n张明,13800138000\n李华,13900139000\n".encode() + b"Andr\xe9a,13700137000\n"
    assert text.decode("gb18030")  # before, the whole file was read as GBK: every name garbled, no error
    path = tmp_path / "c.csv"
    path.write_bytes(text)

    # when / then
    with pytest.raises(ImportFileError) as caught:
        customers_import(path=path, chain=chain)
    assert "line 4" in caught.value.message
    assert Customer.objects.count() == 0


def test_a_gbk_file_is_still_read_as_gbk(tmp_path, chain):
    # given
    path = tmp_path / "c.csv"
    path.write_bytes("姓名,手机号\n张三丰,13800138000\n欧阳娜娜,13900139000\n".encode("gbk"))

    # when
    customers_import(path=path, chain=chain)

    # then
    assert sorted(Customer.objects.values_list("name", flat=True)) == ["张三丰", "欧阳娜娜"]


# --- XLSX --------------------------------------------------------------------------------------------------------

def _bomb(path, megabytes: int):
    """A valid workbook whose sheet holds one cell of `megabytes` MiB of one letter: a few hundred KiB zipped."""
    workbook = openpyxl.Workbook()
    workbook.active.append(["姓名", "手机号"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    source = zipfile.ZipFile(buffer)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
        for item in source.infolist():
            if item.filename != "xl/worksheets/sheet1.xml":
                out.writestr(item, source.read(item.filename))
                continue
            with out.open(item.filename, "w", force_zip64=True) as sheet:
                sheet.write(b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org'
                            b'/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>name</t>'
                            b'</is></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>')
                block = b"A" * (1 << 20)
                for _ in range(megabytes):
                    sheet.write(block)
                sheet.write(b"</t></is></c></row></sheetData></worksheet>")
    return path


def test_a_decompression_bomb_is_refused_before_it_is_inflated(tmp_path, chain):
    # given a workbook of 64 KiB that inflates to 64 MiB (a real one can inflate to gigabytes the same way)
    path = _bomb(tmp_path / "bomb.xlsx", 64)
    assert path.stat().st_size < 1 << 20

    # when / then it is refused as such, by its name
    with pytest.raises(ImportFileError) as caught:
        table_open(path)
    assert "bomb.xlsx" in caught.value.message
    assert caught.value.code == "bad_file"


def test_an_ordinary_workbook_is_far_below_the_compression_limit(tmp_path):
    # given a workbook of 2,000 rows of repetitive data (the same clinic and source on every row)
    workbook = openpyxl.Workbook()
    workbook.active.append(["姓名", "手机号", "所属门诊", "来源"])
    for i in range(2000):
        workbook.active.append([f"患者{i}", f"138{i:08d}", "静安门诊", "抖音"])
    workbook.save(tmp_path / "c.xlsx")

    # when
    entries = zipfile.ZipFile(tmp_path / "c.xlsx").infolist()

    # then
    assert max(e.file_size / e.compress_size for e in entries if e.compress_size) < XLSX_MAX_RATIO / 4
    with table_open(tmp_path / "c.xlsx"):
        pass


def test_a_password_protected_workbook_is_named_as_such_not_as_an_old_xls(tmp_path, chain):
    # given what Excel writes for an .xlsx with a password: an OLE container holding the encrypted package
    path = tmp_path / "c.xlsx"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 1000 + "EncryptedPackage".encode("utf-16-le")
                     + b"\0" * 1000)

    # when / then
    with pytest.raises(ImportFileError) as caught:
        customers_import(path=path, chain=chain)
    assert "password" in caught.value.message
    assert "97-2003" not in caught.value.message


# --- orders: amounts and quantities within the API's bounds ---------------------------------------------------

@pytest.mark.parametrize(("quantity", "price", "column", "message"), [
    ("10000000000", "1000000", "数量", f"must be at most {MAX_QUANTITY}"),  # times the price: a traceback
    ("3000000000", "1", "数量", f"must be at most {MAX_QUANTITY}"),  # overflowed PostgreSQL's integer
    ("1", "10000000000.01", "单价", "must be at most 10000000000.00"),
])
def test_a_quantity_or_amount_beyond_the_apis_bounds_is_its_rows_error(tmp_path, chain, clinic_a, catalogue, patient,
                                                                        quantity, price, column, message):
    # given
    assert MAX_FEN == 10**12
    path = csv_write(tmp_path / "o.csv", [ORDER_HEADER, ["A1", "13800138000", "静安门诊", "2024-03-01", "CL01",
                                                         quantity, price]])

    # when
    report = orders_import(path=path, chain=chain)

    # then
    assert [(e["row"], e["column"], e["message"]) for e in report.as_dict()["errors"]] == [(2, column, message)]
    assert (Order.objects.count(), OrderLine.objects.count()) == (0, 0)


def test_the_largest_quantity_and_price_are_imported(tmp_path, chain, clinic_a, catalogue, patient):
    # given
    path = csv_write(tmp_path / "o.csv", [ORDER_HEADER, ["A1", "13800138000", "静安门诊", "2024-03-01", "CL01",
                                                         str(MAX_QUANTITY), "10000000000"]])

    # when
    report = orders_import(path=path, chain=chain)

    # then
    assert report.written and report.error_count == 0
    assert Order.objects.get().amount_fen == MAX_QUANTITY * MAX_FEN


# --- the staff page --------------------------------------------------------------------------------------------

def test_confirming_a_batch_whose_file_is_gone_says_so_without_the_servers_path(client, director_a, settings,
                                                                                 tmp_path):
    # given a previewed upload whose stored file has since gone (deleted by hand, or a lost disk)
    settings.SMILELOOP_IMPORT_DIR = str(tmp_path)
    client.force_login(director_a.user)
    client.post(reverse("imports:upload"), {"kind": "customers", "file": SimpleUploadedFile(
        "patients.csv", "姓名,手机号\n张三,13800138000\n".encode(), content_type="text/csv")})
    batch = ImportBatch.objects.get()
    batch_path(batch).unlink()

    # when
    response = client.post(reverse("imports:confirm", args=[batch.id]))

    # then the page says the file is gone, not where it was kept, and nothing is written
    assert response.status_code == 409
    page = response.content.decode()
    assert str(tmp_path) not in page
    assert "upload it again" in page
    assert Customer.objects.count() == 0
    batch.refresh_from_db()
    assert batch.status == BatchStatus.FAILED


def test_an_upload_without_the_csrf_token_is_refused(director_a):
    # given a browser that does not send the form's token
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(director_a.user)

    # when
    response = browser.post(reverse("imports:upload"), {"kind": "customers", "file": SimpleUploadedFile(
        "c.csv", "姓名,手机号\n张三,13800138000\n".encode(), content_type="text/csv")})

    # then
    assert response.status_code == 403
    assert ImportBatch.objects.count() == 0


def test_utf16_with_its_bom_keeps_working(tmp_path, chain):
    # given what Excel writes as "Unicode text"
    path = tmp_path / "c.csv"
    path.write_bytes(codecs.BOM_UTF16_LE + "姓名\t手机号\n张三\t13800138000\n".encode("utf-16-le"))

    # when
    customers_import(path=path, chain=chain)

    # then
    assert Customer.objects.get().name == "张三"


# --- column maps ---------------------------------------------------------------------------------------------------

def test_two_columns_mapped_to_one_field_is_an_error_naming_both(tmp_path, chain):
    # given a file with two phone columns, both mapped to the phone (the second was ignored without a word)
    path = csv_write(tmp_path / "c.csv", [["姓名", "联系方式", "电话"], ["张三", "13800138000", "13900139000"]])

    # when / then
    with pytest.raises(ImportFileError) as caught:
        customers_import(path=path, chain=chain, column_map={"联系方式": "mobile", "电话": "phone"})
    assert caught.value.code == "duplicate_field"
    assert "“联系方式” and “电话” are both mapped to mobile" in caught.value.message
    assert Customer.objects.count() == 0


def test_the_command_refuses_a_column_mapped_twice(tmp_path, chain):
    # given
    path = csv_write(tmp_path / "c.csv", [["姓名", "联系方式"], ["张三", "13800138000"]])

    # when / then (before, the last --map won silently, and the import said it had no name column)
    with pytest.raises(CommandError, match="names the column '姓名' twice"):
        call_command("import", "customers", str(path), "--map", "姓名=name", "--map", "姓名=mobile")
    assert Customer.objects.count() == 0


def test_formula_looking_cells_are_stored_as_text_and_neutralised_in_the_errors_csv(client, director_a, clinic_a,
                                                                                     settings, tmp_path):
    # given a file whose cells look like spreadsheet formulas, one of them in the phone column (an error)
    settings.SMILELOOP_IMPORT_DIR = str(tmp_path)
    client.force_login(director_a.user)
    content = ('姓名,手机号,备注\n"=HYPERLINK(""http://evil"",""x"")",13800138000,-1+1\n'
               '@SUM(A1),=1+1,+cmd\n').encode()
    client.post(reverse("imports:upload"), {"kind": "customers", "default_clinic": clinic_a.id,
                                            "file": SimpleUploadedFile("c.csv", content, content_type="text/csv")})
    batch = ImportBatch.objects.get()

    # when the errors are downloaded, and the valid row imported
    download = b"".join(client.post(reverse("imports:errors_csv", args=[batch.id])).streaming_content).decode()
    client.post(reverse("imports:confirm", args=[batch.id]), {"skip_invalid": "on"})

    # then the formula is a quoted text cell of the download, never one a spreadsheet runs
    assert "'=1+1" in download and ",=1+1" not in download
    # and the cells are stored exactly as written, as text
    person = Customer.objects.get()
    assert (person.name, person.notes) == ('=HYPERLINK("http://evil","x")', "-1+1")


# --- values --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("year", ["1990", 1990])
def test_a_birth_year_alone_is_named_as_such_not_read_as_an_excel_day_in_1905(tmp_path, chain, year):
    # given a sheet that knows only the year of birth (a text cell, or a number in a workbook)
    path = tmp_path / "c.xlsx"
    workbook = openpyxl.Workbook()
    workbook.active.append(["姓名", "手机号", "生日"])
    workbook.active.append(["张三", "13800138000", year])
    workbook.save(path)

    # when
    report = customers_import(path=path, chain=chain)

    # then
    assert [(e["row"], e["column"], e["message"]) for e in report.as_dict()["errors"]] == [
        (2, "生日", "is a year, not a date of birth: write the whole date (1990-01-05)")]
    assert Customer.objects.count() == 0


def test_a_birthday_as_an_excel_day_number_is_still_read(tmp_path, chain):
    # given
    path = csv_write(tmp_path / "c.csv", [["姓名", "手机号", "生日"], ["张三", "13800138000", "33000"]])

    # when
    customers_import(path=path, chain=chain)

    # then
    assert Customer.objects.get().birthday.isoformat() == "1990-05-07"


def test_a_line_of_more_cells_than_a_sheet_has_is_refused_before_its_cells_are_made(tmp_path, chain):
    # given a row of 50,000 commas (100 MB of them made 100 million empty cells: 2.6 GiB)
    path = tmp_path / "c.csv"
    path.write_text("姓名,手机号\n张三,13800138000\n李四,13900139000" + "," * 50_000 + "\n", encoding="utf-8")

    # when / then
    with pytest.raises(ImportFileError) as caught:
        customers_import(path=path, chain=chain)
    assert "Line 3 of c.csv has more than 16384 cells" in caught.value.message
    assert Customer.objects.count() == 0


def test_a_sheet_of_many_columns_is_read(tmp_path, chain):
    # given 5,000 columns, most of them not the import's
    path = tmp_path / "c.csv"
    path.write_text(",".join(["姓名", "手机号", *(f"c{i}" for i in range(5000))]) + "\n"
                    + ",".join(["张三", "13800138000", *("x" * 5000)]) + "\n", encoding="utf-8")

    # when
    report = customers_import(path=path, chain=chain)

    # then
    assert report.created == 1 and len(report.ignored_columns) == 5000


def _damaged(path, row_xml: bytes):
    """A workbook of a header and 张三, with `row_xml` added as its sheet's third row, as no Excel writes it."""
    workbook = openpyxl.Workbook()
    workbook.active.append(["姓名", "手机号"])
    workbook.active.append(["张三", "13800138000"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    source = zipfile.ZipFile(buffer)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"</sheetData>", row_xml + b"</sheetData>")
            out.writestr(item, data)
    return path


DAMAGED_ROWS = [
    b'<row r="3"><c r="A3" t="inlineStr"><is><t><b>broken</t></is></c></row>',  # XML that does not parse
    b'<row r="3"><c r="A3" t="inlineStr"><is><t>&#xD800;</t></is></c></row>',  # a lone surrogate
    b'<row r="3"><c r="A3" t="s"><v>99999</v></c></row>',  # a shared text that is not there
    b'<row r="3"><c r="A3" t="n"><v>abc</v></c></row>',  # a number that is not one
    b'<row r="3"><c r="ZZZZZZ3" t="inlineStr"><is><t>x</t></is></c></row>',  # a column beyond any sheet's
]


@pytest.mark.parametrize("row_xml", DAMAGED_ROWS)
def test_a_damaged_sheet_is_refused_naming_the_row_where_it_breaks(tmp_path, chain, row_xml):
    # given
    path = _damaged(tmp_path / "c.xlsx", row_xml)

    # when / then (each was a traceback)
    with pytest.raises(ImportFileError) as caught:
        customers_import(path=path, chain=chain)
    assert caught.value.message.startswith("Row 3 of the sheet “Sheet” of c.xlsx cannot be read")
    assert Customer.objects.count() == 0


def test_uploading_a_damaged_workbook_is_a_form_error_not_a_500(client, director_a, settings, tmp_path):
    # given
    settings.SMILELOOP_IMPORT_DIR = str(tmp_path / "imports")
    client.force_login(director_a.user)
    content = _damaged(tmp_path / "c.xlsx", DAMAGED_ROWS[0]).read_bytes()

    # when
    response = client.post(reverse("imports:upload"), {"kind": "customers", "file": SimpleUploadedFile(
        "客户.xlsx", content, content_type="application/octet-stream")})

    # then
    assert response.status_code == 400
    assert "客户.xlsx cannot be read" in response.content.decode()
    assert ImportBatch.objects.count() == 0
    assert list((tmp_path / "imports").iterdir()) == []


@pytest.mark.parametrize("part", ["xl/workbook.xml", "xl/styles.xml", "[Content_Types].xml", "docProps/core.xml"])
def test_a_workbook_with_a_damaged_part_is_refused_as_not_valid(tmp_path, chain, part):
    # given a workbook one of whose parts is cut in half (it was a traceback: the XML parser's error was not caught)
    buffer = io.BytesIO()
    workbook = openpyxl.Workbook()
    workbook.active.append(["姓名", "手机号"])
    workbook.save(buffer)
    source = zipfile.ZipFile(buffer)
    with zipfile.ZipFile(tmp_path / "c.xlsx", "w", zipfile.ZIP_DEFLATED) as out:
        for name in source.namelist():
            data = source.read(name)
            out.writestr(name, data[:len(data) // 2] if name == part else data)

    # when / then
    with pytest.raises(ImportFileError) as caught:
        customers_import(path=tmp_path / "c.xlsx", chain=chain)
    assert caught.value.message.startswith("c.xlsx is not a valid .xlsx workbook")


# --- rows wider than the header ------------------------------------------------------------------------------------

def test_a_csv_row_wider_than_its_header_is_its_rows_error_naming_the_column(tmp_path, chain):
    # given an address with an unquoted comma: its second half moved into the notes, and the notes were dropped
    path = tmp_path / "c.csv"
    path.write_text("姓名,手机号,地址,备注\n张三,13800138000,上海市,静安区,VIP\n李四,13900139000,北京市,,\n",
                    encoding="utf-8")

    # when
    report = customers_import(path=path, chain=chain, skip_invalid=True)

    # then the row is refused by the first cell beyond the header (column E), and the row with empty extra cells is not
    assert [(e["row"], e["column"], e["value"]) for e in report.as_dict()["errors"]] == [(2, "E", "VIP")]
    assert report.as_dict()["errors"][0]["message"].startswith("has 5 cells, more than the header's 4")
    assert list(Customer.objects.values_list("name", "address")) == [("李四", "北京市")]


def test_an_orders_csv_row_wider_than_its_header_is_refused(tmp_path, chain, clinic_a, catalogue, patient):
    # given
    path = csv_write(tmp_path / "o.csv", [ORDER_HEADER, ["A1", "13800138000", "静安门诊", "2024-03-01", "CL01", "1",
                                                         "1,000", "x"]])

    # when
    report = orders_import(path=path, chain=chain)

    # then
    assert [(e["row"], e["column"]) for e in report.as_dict()["errors"]] == [(2, "H")]
    assert Order.objects.count() == 0


def test_a_workbooks_filled_column_without_a_header_is_not_an_error(tmp_path, chain):
    # given a note the sheet's owner wrote in a column beyond the header
    workbook = openpyxl.Workbook()
    workbook.active.append(["姓名", "手机号"])
    workbook.active.append(["张三", "13800138000", "已回访"])
    workbook.save(tmp_path / "c.xlsx")

    # when
    report = customers_import(path=tmp_path / "c.xlsx", chain=chain)

    # then
    assert (report.created, report.error_count) == (1, 0)


def test_a_tooth_or_campaign_longer_than_stored_is_refused_not_cut_short(tmp_path, chain, clinic_a, catalogue,
                                                                          patient):
    # given a tooth of 33 characters and a campaign of 101 (both were cut short without a word)
    orders = csv_write(tmp_path / "o.csv", [[*ORDER_HEADER, "牙位"], ["A1", "13800138000", "静安门诊", "2024-03-01",
                                                                     "CL01", "1", "", "1" * 33]])
    people = csv_write(tmp_path / "c.csv", [["姓名", "手机号", "活动"], ["李四", "13900139000", "活" * 101]])

    # when
    order_report = orders_import(path=orders, chain=chain)
    people_report = customers_import(path=people, chain=chain)

    # then
    assert [(e["column"], e["message"]) for e in order_report.as_dict()["errors"]] == [
        ("牙位", "is longer than 32 characters")]
    assert [(e["column"], e["message"]) for e in people_report.as_dict()["errors"]] == [
        ("活动", "is longer than 100 characters")]
    assert (Order.objects.count(), Customer.objects.count()) == (0, 1)


def test_a_background_check_whose_file_is_gone_fails_without_the_servers_path(director_a, settings, tmp_path):
    # given an upload queued for the worker, whose stored file went before the check ran
    from smileloop.imports.services.batches import batch_check

    settings.SMILELOOP_IMPORT_DIR = str(tmp_path)
    batch = ImportBatch.objects.create(chain=director_a.chain, kind="customers", original_name="病人.csv",
                                       extension=".csv", uploaded_by=director_a, status=BatchStatus.CHECKING,
                                       queued_at=timezone.now())

    # when
    batch_check(batch_id=str(batch.id), queued_at=batch.queued_at.isoformat())

    # then
    batch.refresh_from_db()
    assert batch.status == BatchStatus.FAILED
    assert batch.error == "File not found: 病人.csv"


@pytest.mark.parametrize(("price", "message"), [
    ("1e999999999", "must be at most 10000000000.00"),  # decimal.Overflow: a traceback
    ("-1e999999999", "must not be negative"),
    ("1" * 100_000, "must be a number of yuan"),  # Decimal's arithmetic on it took seconds
])
def test_an_amount_beyond_any_number_is_its_rows_error(tmp_path, chain, clinic_a, catalogue, patient, price, message):
    # given
    path = csv_write(tmp_path / "o.csv", [ORDER_HEADER, ["A1", "13800138000", "静安门诊", "2024-03-01", "CL01", "1",
                                                         price]])

    # when
    report = orders_import(path=path, chain=chain)

    # then
    assert [(e["column"], e["message"]) for e in report.as_dict()["errors"]] == [("单价", message)]


@pytest.mark.parametrize(("column", "value"), [
    ("手机号", ":" * 20_000 + "1"),  # 9 s before, quadratic in its length
    ("电话", " " * 5_000 + "1" + " " * 20_000 + "x1"),
    ("生日", "1990-01-01" + " " * 20_000 + "x"),
])
def test_a_long_cell_is_refused_at_once_not_after_seconds_of_pattern_matching(tmp_path, chain, column, value):
    # given
    import time

    path = csv_write(tmp_path / "c.csv", [["姓名", "手机号", "电话", "生日"], ["张三", "13800138000", "", ""]])
    path.write_text(path.read_text(encoding="utf-8").replace(
        "13800138000,,", {"手机号": f"{value},,", "电话": f"13800138000,{value},", "生日": f"13800138000,,{value}"}[column]),
        encoding="utf-8")
    path.write_text(f"合计{' ' * 20_000}x,\n" + path.read_text(encoding="utf-8"), encoding="utf-8")  # a long first cell
    started = time.perf_counter()

    # when
    report = customers_import(path=path, chain=chain)

    # then
    assert time.perf_counter() - started < 5
    assert [e["column"] for e in report.as_dict()["errors"]] == [column]


def test_an_order_number_on_every_row_is_read_in_bounded_chunks_each_extra_row_an_error(tmp_path, chain, clinic_a,
                                                                                         catalogue, patient,
                                                                                         monkeypatch):
    # given chunks of 100 rows and a file of 400 rows of one order number (a whole file was one chunk: its memory
    # grew with the file, 1.2 KiB a row)
    from smileloop.imports.services import orders as orders_module

    monkeypatch.setattr(orders_module, "CHUNK_ROWS", 100)
    sizes = []
    chunk = orders_module._OrderImport.chunk
    monkeypatch.setattr(orders_module._OrderImport, "chunk", lambda self, rows: (sizes.append(len(rows)),
                                                                                 chunk(self, rows))[1])
    path = csv_write(tmp_path / "o.csv", [ORDER_HEADER] + [["Z1", "13800138000", "静安门诊", "2024-03-01", "CL01",
                                                            "1", "100"]] * 400)

    # when
    report = orders_import(path=path, chain=chain)

    # then no chunk holds more than 100 + 50 rows, and every row beyond the 50th says it is one line too many
    assert max(sizes) <= 150 and sum(sizes) == 400
    assert report.error_count == 400  # one a row
    messages = {e["row"]: e["message"] for e in report.as_dict()["errors"]}
    assert messages[52] == "an order has at most 50 lines (this is its line 51)"
    assert messages[401] == "an order has at most 50 lines (this is its line 400)"
    assert not any("appears again" in m for m in messages.values())
    assert Order.objects.count() == 0


@pytest.mark.parametrize(("message", "chinese"), [
    ("must be at most 10000", "不能超过 10000"),
    ("an order has at most 50 lines (this is its line 51)", "一个订单最多 50 行（这是第 51 行）"),
    ("is a year, not a date of birth: write the whole date (1990-01-05)", "是年份，不是出生日期：请填写完整日期（1990-01-05）"),
    ("has 5 cells, more than the header's 4: a cell holding the delimiter (a comma) without quotes moved the cells "
     "after it; quote that cell, or save the file again from Excel", "有 5 个单元格，多于表头的 4 个"),
])
def test_the_new_row_messages_read_in_chinese_on_the_page(message, chinese):
    from django.utils import translation

    from smileloop.imports.messages import message_display

    with translation.override("zh-hans"):
        assert message_display(message).startswith(chinese)


def test_a_file_of_summary_lines_keeps_a_bounded_list_of_them(tmp_path, chain, capsys):
    # given 3,000 summary lines around one person (each was kept, in memory and in the stored report)
    path = tmp_path / "c.csv"
    path.write_text("姓名,手机号\n张三,13800138000\n" + "合计：1人,\n" * 3000, encoding="utf-8")

    # when
    report = customers_import(path=path, chain=chain, dry_run=True)
    call_command("import", "customers", str(path))

    # then
    assert (report.rows, len(report.summary_rows), report.summary_rows[-1]["row"]) == (1, 1000, 1002)
    assert Customer.objects.count() == 1
    assert "and 995+ more" in capsys.readouterr().out
