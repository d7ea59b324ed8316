import json

import pytest
from django.core.management import CommandError, call_command

from smileloop.clinics.tests.factories import ChainFactory
from smileloop.core.models import AuditEvent
from smileloop.customers.enums import IdentityKind
from smileloop.customers.models import Customer
from smileloop.customers.tests.factories import CustomerFactory, IdentityFactory
from smileloop.imports.tests.files import csv_write, two_sheets_write
from smileloop.visits.models import Order


def _import(*args):
    call_command("import", *args)


@pytest.fixture
def bad_file(tmp_path):
    return csv_write(tmp_path / "bad.csv", [["姓名", "手机号"], ["张三", "13800138000"], ["李四", "12"]])


def test_the_command_imports_customers_and_writes_the_report(tmp_path, chain, capsys):
    # given
    path = csv_write(tmp_path / "ok.csv", [["姓名", "手机号"], ["张三", "13800138000"], ["张三", "138 0013 8000"]])
    report = tmp_path / "report.json"

    # when
    _import("customers", str(path), "--report", str(report))

    # then
    assert json.loads(report.read_text(encoding="utf-8")) == {
        "rows": 2, "created": 1, "merged": 1, "skipped": 0, "written": True, "errors": []}
    assert capsys.readouterr().out == "customers: 2 rows, 1 created, 1 merged, 0 skipped (written)\n"
    assert Customer.objects.count() == 1


def test_invalid_rows_make_the_command_exit_1_and_write_nothing(bad_file, tmp_path, chain, capsys):
    # given
    report = tmp_path / "report.json"

    # when
    with pytest.raises(CommandError) as exc:
        _import("customers", str(bad_file), "--report", str(report))

    # then
    assert exc.value.returncode == 1
    assert str(exc.value) == ("1 error(s) in 1 row(s); nothing was written (fix the file, or use --skip-invalid "
                              "to write the valid rows)")
    assert json.loads(report.read_text(encoding="utf-8")) == {
        "rows": 2, "created": 1, "merged": 0, "skipped": 1, "written": False,
        "errors": [{"row": 3, "column": "手机号", "value": "12", "message": "is not a phone number"}]}
    assert capsys.readouterr().err == "row 3, 手机号 '12': is not a phone number\n"
    assert (Customer.objects.count(), AuditEvent.objects.count()) == (0, 0)


def test_skip_invalid_writes_the_valid_rows_and_exits_0(bad_file, chain):
    # when
    _import("customers", str(bad_file), "--skip-invalid")

    # then
    assert list(Customer.objects.values_list("name", flat=True)) == ["张三"]


def test_dry_run_writes_nothing(tmp_path, chain, capsys):
    # given
    path = csv_write(tmp_path / "ok.csv", [["姓名", "手机号"], ["张三", "13800138000"]])

    # when
    _import("customers", str(path), "--dry-run")

    # then
    assert capsys.readouterr().out == "customers: 1 rows, 1 created, 0 merged, 0 skipped (dry run, nothing written)\n"
    assert Customer.objects.count() == 0


def test_map_clinic_and_user_options_are_applied(tmp_path, chain, clinic_a, director_a):
    # given
    path = csv_write(tmp_path / "m.csv", [["客户名", "电话"], ["张三", "13800138000"]])

    # when
    _import("customers", str(path), "--map", "客户名=name", "--clinic", "SH01", "--user", "director_a",
            "--chain", str(chain.id))

    # then
    person = Customer.objects.get()
    assert (person.name, person.home_clinic_id, person.first_touch_staff_id) == ("张三", clinic_a.id, director_a.id)
    assert AuditEvent.objects.get().actor_id == director_a.user_id


def test_the_command_imports_orders(tmp_path, chain, clinic_a, catalogue):
    # given
    CustomerFactory(chain=chain, mobile="+8613800138000", home_clinic=clinic_a)
    path = csv_write(tmp_path / "o.csv", [["订单号", "手机号", "日期", "项目编码"],
                                          ["A1", "13800138000", "2024-01-01", "EX01"]])

    # when
    _import("orders", str(path))

    # then
    assert list(Order.objects.values_list("external_id", "amount_fen")) == [("A1", 5000)]


@pytest.mark.parametrize(("args", "message"), [
    (["customers", "/nonexistent/x.csv"], "File not found: /nonexistent/x.csv"),
    (["customers", "{tmp}/x.xls"], "Unsupported file type “.xls”: save the sheet as .xlsx or .csv"),
    (["customers", "{tmp}/ok.csv", "--map", "nonsense"], "--map 'nonsense': use COLUMN=FIELD, e.g. --map '联系方式=mobile'"),
    (["customers", "{tmp}/ok.csv", "--user", "nobody"], "No staff member with login 'nobody' in chain {chain}"),
    (["customers", "{tmp}/ok.csv", "--clinic", "火星"], "--clinic '火星' is not a clinic of this chain"),
])
def test_unusable_input_is_a_command_error(tmp_path, chain, args, message):
    # given
    csv_write(tmp_path / "ok.csv", [["姓名"], ["张三"]])
    (tmp_path / "x.xls").write_bytes(b"\xd0\xcf")

    # when
    with pytest.raises(CommandError) as exc:
        _import(*[a.format(tmp=tmp_path) for a in args])

    # then
    assert str(exc.value) == message.format(chain=chain.id)
    assert Customer.objects.count() == 0


def test_the_acting_login_is_matched_ignoring_case_and_must_be_active(tmp_path, chain, front_desk_a):
    from smileloop.core.models import AuditEvent

    path = csv_write(tmp_path / "ok.csv", [["姓名"], ["张三"]])
    front_desk_a.is_active = False
    front_desk_a.save(update_fields=["is_active"])
    with pytest.raises(CommandError) as exc:
        _import("customers", str(path), "--user", front_desk_a.user.username.upper())
    assert str(exc.value) == (f"The login {front_desk_a.user.username.upper()!r} is deactivated: give an active "
                              "staff member's")
    assert Customer.objects.count() == 0
    front_desk_a.is_active = True
    front_desk_a.save(update_fields=["is_active"])
    _import("customers", str(path), "--user", front_desk_a.user.username.upper())
    assert Customer.objects.count() == 1
    assert AuditEvent.objects.get(action="import.customers").actor_id == front_desk_a.user_id


def test_with_two_chains_the_chain_must_be_given(tmp_path, chain):
    # given
    ChainFactory()
    path = csv_write(tmp_path / "ok.csv", [["姓名"], ["张三"]])

    # when / then
    with pytest.raises(CommandError, match="Give --chain ID: there is more than one chain"):
        _import("customers", str(path))


def test_on_a_new_installation_the_command_says_to_set_up_the_chain_first(tmp_path, db):
    path = csv_write(tmp_path / "ok.csv", [["姓名"], ["张三"]])
    with pytest.raises(CommandError, match=r"^There is no chain yet: add the chain and its clinics in the admin"):
        _import("customers", str(path))
    assert Customer.objects.count() == 0


def test_the_command_speaks_english_throughout_like_its_json_report(tmp_path, chain, catalogue, settings, capsys):
    # given a Chinese-first installation and an orders file naming nobody in the pool
    settings.LANGUAGE_CODE = "zh-hans"
    path = csv_write(tmp_path / "o.csv", [["订单号", "手机号", "日期", "项目编码"],
                                          ["A1", "13800138000", "2024-01-01", "EX01"]])
    report = tmp_path / "r.json"

    # when
    with pytest.raises(CommandError):
        _import("orders", str(path), "--report", str(report))

    # then the matching error reads as the parse errors do, in English, on the terminal and in the report
    assert "no customer with this phone" in capsys.readouterr().err
    assert json.loads(report.read_text())["errors"][0]["message"] == "no customer with this phone"


@pytest.mark.parametrize("where", ["{tmp}/missing/r.json", "{tmp}"])
def test_a_report_that_cannot_be_written_stops_the_command_before_anything_is_imported(tmp_path, chain, where):
    # given a file that would import, and a report path in a folder that does not exist (or a folder)
    path = csv_write(tmp_path / "ok.csv", [["姓名", "手机号"], ["张三", "13800138000"]])

    # when
    with pytest.raises(CommandError) as exc:
        _import("customers", str(path), "--report", where.format(tmp=tmp_path))

    # then
    assert exc.value.returncode == 1
    assert str(exc.value).endswith("nothing was imported")
    assert (Customer.objects.count(), AuditEvent.objects.count()) == (0, 0)


def test_the_errors_are_printed_in_row_order(tmp_path, chain, capsys):
    # given a row with a parse error after one with a matching error (found later, when the chunk is matched)
    CustomerFactory(chain=chain, name="王五", mobile="+8613800138000")
    IdentityFactory(customer=CustomerFactory(chain=chain, name="赵六"), kind=IdentityKind.PMS, external_id="P-1")
    path = csv_write(tmp_path / "c.csv", [["姓名", "手机号", "病历号"], ["王五", "13800138000", "P-1"],
                                          ["李四", "12", ""]])

    # when
    with pytest.raises(CommandError):
        _import("customers", str(path))

    # then
    assert [line.split(",")[0] for line in capsys.readouterr().err.splitlines()] == ["row 2", "row 3"]


def test_skip_invalid_with_every_row_invalid_writes_nothing_and_says_so(tmp_path, chain, capsys):
    # given
    path = csv_write(tmp_path / "c.csv", [["姓名", "手机号"], ["张三", "123"], ["李四", "12"]])
    report = tmp_path / "r.json"

    # when
    _import("customers", str(path), "--skip-invalid", "--report", str(report))

    # then no write is reported or audited
    assert json.loads(report.read_text(encoding="utf-8"))["written"] is False
    assert capsys.readouterr().out == "customers: 2 rows, 0 created, 0 merged, 2 skipped (nothing written)\n"
    assert (Customer.objects.count(), AuditEvent.objects.count()) == (0, 0)


def test_the_command_names_the_sheet_it_read_and_the_sheets_it_did_not(tmp_path, chain, capsys):
    # given a workbook of two sheets of people
    two_sheets_write(tmp_path / "c.xlsx")
    report = tmp_path / "r.json"

    # when
    _import("customers", str(tmp_path / "c.xlsx"), "--report", str(report))

    # then
    assert capsys.readouterr().out.splitlines()[1] == ("read the sheet “一月”; other sheets not read: “二月” (one sheet is "
                                                       "imported per file)")
    data = json.loads(report.read_text(encoding="utf-8"))
    assert (data["sheet"], data["sheets_skipped"]) == ("一月", ["二月"])


def test_a_map_naming_a_column_the_file_lacks_is_a_command_error(tmp_path, chain):
    path = csv_write(tmp_path / "c.csv", [["客户名", "电话"], ["张三", "13800138000"]])

    with pytest.raises(CommandError) as exc:
        _import("customers", str(path), "--map", "客户姓名=name")

    assert str(exc.value) == "Column map: c.csv has no column “客户姓名” (its columns: 客户名, 电话)"
    assert Customer.objects.count() == 0
