"""Invariants of the customers and orders imports over random small files, against a reference model kept here.

Each example builds a pool (people with phones, a phone identity and a PMS id; an order imported before), writes a
file of valid and invalid rows (duplicates in the file, rows naming people of the pool, messy phone, date and gender
spellings) as CSV (UTF-8, UTF-8 with BOM, GBK) or XLSX with Chinese, English or `--map`ped headers, and checks:
the counts and every error's row and column against the model; a dry run writes nothing and reports what the real
run then reports; a refused file changes no row of any table; `skip_invalid` writes exactly the valid rows (each
phone and PMS id of the file names the person the model says, and no two people share a number); a re-import
creates only the phone-less people the rules say are new each time (orders: nothing).
"""

import datetime as dt
import itertools
import json
import zoneinfo

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smileloop.core.models import AuditEvent
from smileloop.customers.enums import IdentityKind
from smileloop.customers.models import Consent, Customer, CustomerSearchKey, Identity, Interaction
from smileloop.customers.tests.factories import CustomerFactory, IdentityFactory
from smileloop.imports.errors import ImportFileError
from smileloop.imports.services import customers_import, orders_import
from smileloop.imports.tests.files import csv_write, xlsx_write
from smileloop.visits.models import Order, OrderLine, Payment

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
_files = itertools.count()

# The pool: 张三 (phone A), 李四 (phone B, and C as a phone identity), 王五 (no phone, PMS id P-1)
PHONES = {"A": "13800138000", "B": "13900139000", "C": "13700137000", "N1": "13600136000", "N2": "13500135000"}
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def _e164(national: str) -> str:
    return f"+86{national}"


def _numbers(key: str) -> list[str]:
    """A row's phone key ("A", or "A/N2": a cell of two numbers) → its numbers, normalised."""
    return [_e164(PHONES[part]) for part in key.split("/")] if key and key[0] in "ABCN" else []


def _phone_cell(key: str, style: int, fmt: str):
    """The phone cell of a key: one number in any spelling; several separated by a slash, each spelled as text."""
    parts = key.split("/")
    if len(parts) == 1:
        return _phone_spell(PHONES[key], style if fmt == "xlsx" else style % 6)
    return "/".join(_phone_spell(PHONES[part], style % 5) for part in parts)


def _phone_spell(national: str, style: int):
    return [national, f"+86 {national[:3]}-{national[3:7]}-{national[7:]}", f"0086 {national}",
            national.translate(FULL_WIDTH), f"{national}.0", f"{national[:3]} {national[3:7]} {national[7:]}",
            int(national), float(national)][style]


def _table_rows():
    """Every table an import may write, counted: a refused file or a dry run changes none of them."""
    return {model.__name__: model.objects.count() for model in (
        Customer, CustomerSearchKey, Identity, Interaction, Consent, AuditEvent, Order, OrderLine, Payment)}


def _snapshot():
    return (_table_rows(), sorted(Customer.objects.values_list(
        "id", "name", "mobile", "gender", "birthday", "lifetime_spend_fen", "visit_count", "stage", "first_visit_at")))


def _write(tmp_path, fmt: str, rows: list[list]):
    number = next(_files)
    if fmt == "xlsx":
        return xlsx_write(tmp_path / f"f{number}.xlsx", rows)
    # a CSV holds text: a number cell is written as Excel would save it
    return csv_write(tmp_path / f"f{number}.csv", [["" if c is None else str(c) for c in row] for row in rows],
                     encoding=fmt)


def _in_rollback(check):
    """Run one example's writes in a savepoint rolled back afterwards: the next example starts from the same pool."""
    with transaction.atomic():
        check()
        transaction.set_rollback(True)


def _numbers_unique():
    """No two people share a normalised number (a phone or a phone identity)."""
    holders: dict[str, set[int]] = {}
    for number, customer_id in Customer.objects.filter(mobile__isnull=False).values_list("mobile", "id"):
        holders.setdefault(number, set()).add(customer_id)
    for number, customer_id in Identity.objects.filter(kind=IdentityKind.PHONE).values_list("external_id",
                                                                                           "customer_id"):
        holders.setdefault(number, set()).add(customer_id)
    shared = {number: ids for number, ids in holders.items() if len(ids) > 1}
    assert not shared


# --- customers ------------------------------------------------------------------------------------------------

CUSTOMER_HEADERS = {
    # a second phone column is the phone's per-row fallback (电话 beside 手机号)
    "zh": (["姓名", "手机号", "性别", "出生日期", "病历号", "电话"], None),
    "en": (["Name", "Phone", "Gender", "Birthday", "PMS ID", "Tel"], None),
    "map": (["姓名", "联络号码", "性别", "出生日期", "病历号", "家里座机"],
            {"联络号码": "mobile", "家里座机": "mobile_fallback"}),
}
BIRTHDAYS = [dt.date(1990, 1, 5), dt.date(1985, 6, 15)]


def _birthday_spell(day: dt.date, style: int, fmt: str):
    serial = (day - dt.date(1899, 12, 30)).days
    return [day.isoformat(), f"{day.year}/{day.month}/{day.day}", f"{day.year}年{day.month}月{day.day}日",
            day.strftime("%Y%m%d"), str(serial), serial if fmt == "xlsx" else f"{day.year}.{day.month}.{day.day}",
            dt.datetime.combine(day, dt.time()) if fmt == "xlsx" else day.isoformat()][style]


customer_row = st.fixed_dictionaries({
    "name": st.sampled_from(["张三", "李四", "王五", "赵六", "赵六"]),
    "phone": st.sampled_from(["A", "B", "C", "N1", "N2", "N2", "", "无", "A/N2", "N1/N2", "N2/C"]),
    "phone_style": st.integers(0, 7),
    "gender": st.sampled_from(["", "男", "女", "M", "F", "female"]),
    "birthday": st.sampled_from([None, 0, 0, 1]),
    "birthday_style": st.integers(0, 6),
    "pms": st.sampled_from(["", "", "", "P-1", "N-1", "12"]),  # 12: a number cell in a workbook
    "fallback": st.sampled_from(["", "", "", "", "A", "N1", "N2", "C", "无"]),
    # most rows are valid; a broken one has one field wrong, or is blank (a row of nothing is no row)
    "fault": st.sampled_from([None] * 6 + ["name", "phone", "gender", "birthday", "year", "blank", "fallback"]),
}).map(lambda row: {**row, "name": "", "phone": "", "gender": "", "birthday": None, "pms": "", "fallback": ""}
       if row["fault"] == "blank" else row)


def _customer_cells(row: dict, fmt: str) -> list:
    fault = row["fault"]
    phone = {"": "", "无": "无"}.get(row["phone"])
    if fault == "phone":
        phone = "12345"
    elif phone is None:
        phone = _phone_cell(row["phone"], row["phone_style"], fmt)
    birthday = "" if row["birthday"] is None else _birthday_spell(BIRTHDAYS[row["birthday"]], row["birthday_style"], fmt)
    birthday = {"birthday": "1990-13-45", "year": "1990"}.get(fault, birthday)
    pms = int(row["pms"]) if fmt == "xlsx" and row["pms"].isdigit() else row["pms"]
    fallback = "12345" if fault == "fallback" else _phone_cell(row["fallback"], (row["phone_style"] + 1) % 8, fmt) \
        if row["fallback"] not in ("", "无") else row["fallback"]
    return ["" if fault == "name" else row["name"], phone, "xyz" if fault == "gender" else row["gender"], birthday,
            pms, fallback]


def customers_model(rows: list[dict], cells: list[list], headers: list[str], known: dict) -> dict:
    """What the import should report, and the people it leaves (`known`: "m:+86…" / "i:P-1" → person, updated with
    the file's valid rows). A person of the file is a new object(); the pool's are their ids."""
    name_h, phone_h, gender_h, birthday_h, pms_h, fallback_h = headers
    out = {"rows": 0, "created": 0, "merged": 0, "skipped": 0, "errors": []}
    file_keys: dict[str, object] = {}  # name+birthday of phone-less rows: this file only, never the pool
    created_bare = 0  # people created with neither phone nor PMS id: a re-import makes them again
    for number, (row, raw) in enumerate(zip(rows, cells, strict=True), start=2):
        nothing_else = row["phone"] in ("", "无") and not row["gender"] and row["birthday"] is None and \
            not row["pms"] and row["fallback"] in ("", "无")
        if row["fault"] == "blank" or (row["fault"] == "name" and nothing_else):
            continue  # a row of nothing (无 is no number) is no row
        out["rows"] += 1
        errors = []
        if row["fault"] == "name":
            errors.append((number, name_h, ""))
        if row["fault"] == "phone":
            errors.append((number, phone_h, "12345"))
        if row["fault"] == "gender":
            errors.append((number, gender_h, "xyz"))
        if row["fault"] in ("birthday", "year"):
            errors.append((number, birthday_h, str(raw[3])))
        if row["fault"] == "fallback":  # digits that are no number: an error even beside a good phone
            errors.append((number, fallback_h, "12345"))
        if errors:
            out["errors"] += errors
            out["skipped"] += 1
            continue
        phone, *more = _numbers(row["phone"]) or [None]
        pms = row["pms"] or None
        second = (_numbers(row["fallback"]) or [None])[0]
        if not phone and second:
            # the fallback's number stands in for the phone: it names its holder only under the same name (a
            # family's line is not the child's); else the row is imported without it (no name+birthday match)
            holder = known.get(f"m:{second}")
            if holder is not None and known[_name_key(holder)] != row["name"]:
                second = None
            else:
                phone, second = second, None
            dedupe_ok = False
        else:
            dedupe_ok = True
        dedupe = None
        if not phone and not pms and row["birthday"] is not None and dedupe_ok:
            dedupe = f"{row['name']}|{BIRTHDAYS[row['birthday']]}"
        targets = []
        if phone and f"m:{phone}" in known:
            targets.append(known[f"m:{phone}"])
        if pms and f"i:{pms}" in known:
            targets.append(known[f"i:{pms}"])
        if dedupe and dedupe in file_keys:
            targets.append(file_keys[dedupe])
        if len({id(t) for t in targets}) > 1:
            out["errors"].append((number, pms_h, pms))  # the phone names one person, the PMS id another
            out["skipped"] += 1
            continue
        if targets:
            person = targets[0]
            out["merged"] += 1
        else:
            person = object()
            known[_name_key(person)] = row["name"]
            out["created"] += 1
            created_bare += not phone and not pms
        if phone:
            known[f"m:{phone}"] = person
        if pms:
            known[f"i:{pms}"] = person
        if dedupe:
            file_keys[dedupe] = person
        for number_ in [*more, *[second] * bool(second)]:  # further numbers: theirs unless someone else's
            known.setdefault(f"m:{number_}", person)
    out["created_bare"] = created_bare
    return out


def _name_key(person) -> str:
    """The model's key of a person's name: the pool's by id, the file's new people by their object."""
    return f"name:{person if isinstance(person, int) else id(person)}"


def _customer_of(key: str) -> int | None:
    kind, value = key.split(":", 1)
    if kind == "i":
        return Identity.objects.filter(kind=IdentityKind.PMS, external_id=value).values_list(
            "customer_id", flat=True).first()
    found = Customer.objects.filter(mobile=value).values_list("id", flat=True).first()
    return found or Identity.objects.filter(kind=IdentityKind.PHONE, external_id=value).values_list(
        "customer_id", flat=True).first()


@pytest.fixture
def customer_pool(chain):
    def build():
        zhang = CustomerFactory(chain=chain, name="张三", mobile=_e164(PHONES["A"]))
        li = CustomerFactory(chain=chain, name="李四", mobile=_e164(PHONES["B"]))
        IdentityFactory(customer=li, kind=IdentityKind.PHONE, external_id=_e164(PHONES["C"]))
        wang = CustomerFactory(chain=chain, name="王五", mobile=None, mobile_tail="")
        IdentityFactory(customer=wang, kind=IdentityKind.PMS, external_id="P-1")
        return {f"m:{_e164(PHONES['A'])}": zhang.id, f"m:{_e164(PHONES['B'])}": li.id,
                f"m:{_e164(PHONES['C'])}": li.id, "i:P-1": wang.id,
                f"name:{zhang.id}": "张三", f"name:{li.id}": "李四", f"name:{wang.id}": "王五"}
    return build


def _report_check(report, expected, *, written: bool):
    got = report.as_dict()
    assert (got["rows"], got["created"], got["merged"], got["skipped"], got["written"]) == (
        expected["rows"], expected["created"], expected["merged"], expected["skipped"], written)
    assert got["rows"] == got["created"] + got["merged"] + got["skipped"]
    assert [(e["row"], e["column"], e["value"]) for e in got["errors"]] == expected["errors"]
    assert all(e["message"] for e in got["errors"])


@SETTINGS
@given(rows=st.lists(customer_row, min_size=1, max_size=8),
       fmt=st.sampled_from(["utf-8", "utf-8-sig", "gbk", "xlsx"]),
       headers=st.sampled_from(sorted(CUSTOMER_HEADERS)),
       skip_invalid=st.booleans())
def test_a_customers_import_does_what_the_model_says_and_all_or_nothing_holds(tmp_path, chain, customer_pool, rows,
                                                                             fmt, headers, skip_invalid):
    header, column_map = CUSTOMER_HEADERS[headers]

    def check():
        pool = customer_pool()
        cells = [_customer_cells(row, fmt) for row in rows]
        path = _write(tmp_path, fmt, [header, *cells])
        known = dict(pool)
        expected = customers_model(rows, cells, header, known)
        valid = not expected["errors"]
        writes = valid or (skip_invalid and expected["skipped"] < expected["rows"])
        before = _snapshot()
        if not expected["rows"]:  # no row holds anything: refused as a file without data rows, dry run or not
            for dry_run in (True, False):
                with pytest.raises(ImportFileError):
                    customers_import(path=path, chain=chain, column_map=column_map, skip_invalid=skip_invalid,
                                     dry_run=dry_run)
            assert _snapshot() == before
            return

        # a dry run writes nothing, and says what the real run then says
        dry = customers_import(path=path, chain=chain, column_map=column_map, skip_invalid=skip_invalid,
                               dry_run=True)
        _report_check(dry, expected, written=False)
        assert _snapshot() == before

        real = customers_import(path=path, chain=chain, column_map=column_map, skip_invalid=skip_invalid)
        _report_check(real, expected, written=writes)
        assert {k: v for k, v in real.as_dict().items() if k != "written"} == {
            k: v for k, v in dry.as_dict().items() if k != "written"}
        if not writes:
            assert _snapshot() == before  # refused: not one row of any table changed
            return
        assert Customer.objects.count() == before[0]["Customer"] + expected["created"]
        assert AuditEvent.objects.count() == before[0]["AuditEvent"] + 1
        # every number and PMS id of a valid row names the person the model says: one person per model person
        people: dict[int, int] = {}
        for key, person in known.items():
            if key.startswith("name:"):
                continue
            customer_id = _customer_of(key)
            assert customer_id is not None, key
            assert people.setdefault(id(person) if not isinstance(person, int) else person, customer_id) == customer_id
            if isinstance(person, int):
                assert customer_id == person
        assert len(set(people.values())) == len(people)
        _numbers_unique()

        # a re-import creates only the people without phone or PMS id (never matched against the pool)
        again = customers_model(rows, cells, header, {k: v for k, v in known.items()})
        assert again["created"] == again["created_bare"]
        count = Customer.objects.count()
        report = customers_import(path=path, chain=chain, column_map=column_map, skip_invalid=True)
        got = report.as_dict()
        assert (got["created"], got["merged"], got["skipped"]) == (again["created"], again["merged"],
                                                                  again["skipped"])
        assert Customer.objects.count() == count + again["created"]
        _numbers_unique()

    _in_rollback(check)


def test_the_command_reports_a_refused_file_by_spreadsheet_row_and_writes_nothing(tmp_path, chain, customer_pool):
    # given a file with a duplicate, a pool person by full-width phone, and an invalid date on row 4
    customer_pool()
    path = csv_write(tmp_path / "c.csv", [
        ["姓名", "手机号", "性别", "出生日期"],
        ["赵六", "0086 136-0013-6000", "女", "1990年1月5日"],
        ["张三", "１３８００１３８０００", "M", "32878"],
        ["赵六", "13600136000.0", "F", "1990-02-30"],
        ["赵六", "+86 136 0013 6000", "", ""],
    ], encoding="gbk")
    before = _snapshot()
    report_path = tmp_path / "r.json"

    # when
    with pytest.raises(CommandError):
        call_command("import", "customers", str(path), "--report", str(report_path))

    # then
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert (report["rows"], report["created"], report["merged"], report["skipped"], report["written"]) == (
        4, 1, 2, 1, False)
    assert [(e["row"], e["column"], e["value"]) for e in report["errors"]] == [(4, "出生日期", "1990-02-30")]
    assert _snapshot() == before

    # and with --skip-invalid exactly the valid rows are written: 赵六 once, 张三 merged
    call_command("import", "customers", str(path), "--skip-invalid", "--report", str(report_path))
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert (report["created"], report["merged"], report["skipped"], report["written"]) == (1, 2, 1, True)
    assert Customer.objects.count() == before[0]["Customer"] + 1
    assert Customer.objects.get(mobile="+8613600136000").birthday == dt.date(1990, 1, 5)


# --- orders ---------------------------------------------------------------------------------------------------

ORDER_HEADERS = {
    "zh": (["订单号", "手机号", "病历号", "门诊", "日期", "项目编码", "数量"], None),
    "en": (["Order No", "Phone", "PMS ID", "Clinic", "Date", "Item Code", "Qty"], None),
    "map": (["订单号", "客户号码", "病历号", "门诊", "日期", "项目编码", "数量"], {"客户号码": "mobile"}),
}
PRICES = {"EX01": 5000, "CL01": 30000}

# Rows mostly name their order's customer ("order"): O1 张三 by phone, O2 李四 by his second number (his bills need a
# clinic: he has no home clinic), O3 王五 by PMS id
ORDER_WHO = {"O1": ("A", ""), "O2": ("C", ""), "O3": ("", "P-1"), "1001": ("B", ""), "OLD-1": ("A", "")}
ORDER_CLINIC = {"O1": "", "O2": "静安门诊", "O3": "SH02", "1001": "SH02", "OLD-1": ""}

order_row = st.fixed_dictionaries({
    "order": st.sampled_from(["O1", "O1", "O2", "O3", "1001", "OLD-1"]),
    "who": st.sampled_from(["order"] * 6 + [("A", ""), ("B", ""), ("N1", ""), ("", "P-9"), ("A", "P-1"),
                                            ("A", "P-9"), ("N1/A", ""), ("A/C", ""), ("C/N1", "P-1")]),
    "phone_style": st.integers(0, 7),
    "clinic": st.sampled_from(["order"] * 4 + ["", "静安门诊", "SH02"]),
    "date": st.sampled_from(["2024-03-05 14:30", "2024/3/5", "20240305", "45356", "serial", "cell"]),
    "item": st.sampled_from(["EX01", "CL01", "cl01"]),
    "quantity": st.sampled_from(["", "1", "2"]),
    "fault": st.sampled_from([None] * 8 + ["order", "phone", "nophone", "clinic", "date", "nodate", "item", "qty"]),
}).map(lambda row: {**row, "phone": (ORDER_WHO[row["order"]] if row["who"] == "order" else row["who"])[0],
                    "pms": (ORDER_WHO[row["order"]] if row["who"] == "order" else row["who"])[1],
                    "clinic": ORDER_CLINIC[row["order"]] if row["clinic"] == "order" else row["clinic"]})


def _order_cells(row: dict, fmt: str) -> list:
    fault = row["fault"]
    phone = _phone_cell(row["phone"], row["phone_style"], fmt) if row["phone"] else ""
    date = row["date"]
    if date == "serial":
        date = 45356 if fmt == "xlsx" else "45356.0"
    elif date == "cell":  # a date-time cell of a workbook; a CSV has its text
        date = dt.datetime(2024, 3, 5, 9, 30) if fmt == "xlsx" else "2024-03-05 09:30:00"
    order_no = int(row["order"]) if fmt == "xlsx" and row["order"].isdigit() else row["order"]
    return ["" if fault == "order" else order_no, "12345" if fault == "phone" else "" if fault == "nophone" else phone,
            "" if fault == "nophone" else row["pms"], "火星门诊" if fault == "clinic" else row["clinic"],
            {"date": "2024-02-30", "nodate": ""}.get(fault, date), "ZZ99" if fault == "item" else row["item"],
            "x" if fault == "qty" else row["quantity"]]


def orders_model(rows: list[dict], cells: list[list], headers: list[str], pool: dict, existing: set[str]) -> dict:
    """What the orders import should report (`pool`: "m:+86…" / "i:P-1" → customer id, "home:<id>" → home clinic id,
    "clinic:<name>" → clinic id, "name:<id>" → clinic name), and the spend each customer's new bills add."""
    order_h, phone_h, pms_h, clinic_h, date_h, item_h, qty_h = headers
    out = {"rows": len(rows), "created": 0, "merged": 0, "skipped": 0, "duplicates": 0, "errors": [], "spend": {},
           "orders": set(), "lines": 0}
    groups: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        groups.setdefault("" if row["fault"] == "order" else row["order"], []).append(index)
    errors: dict[int, list] = {}
    for order_no, indexes in groups.items():
        if order_no and order_no in existing:  # imported before: the whole order is a duplicate, read or not …
            differs = _on_file_differs(order_no, [rows[i] for i in indexes], pool)
            out["skipped"] += len(indexes)
            if differs:  # … unless it reads as another customer's bill, or another amount, than the one on file
                out["errors"] += [(index + 2, order_h, order_no) for index in indexes]
            else:
                out["duplicates"] += len(indexes)
            continue
        lines = []
        for index in indexes:
            row, raw, own = rows[index], cells[index], []
            fault = row["fault"]
            if fault == "order":
                own.append((order_h, ""))
            elif fault == "phone":
                own.append((phone_h, "12345"))
            elif fault == "nophone":
                own.append((phone_h, ""))
            elif fault == "clinic":
                own.append((clinic_h, "火星门诊"))
            elif fault == "date":
                own.append((date_h, "2024-02-30"))
            elif fault == "nodate":
                own.append((date_h, ""))
            elif fault == "item":
                own.append((item_h, "ZZ99"))
            elif fault == "qty":
                own.append((qty_h, "x"))
            if own:
                errors[index] = own
            else:
                lines.append(index)
        customer = clinic = None  # of the order's first line that resolves
        for index in lines:
            row, raw = rows[index], cells[index]
            numbers = _numbers(row["phone"])
            # a cell of several numbers goes by the one known; numbers of two customers are refused
            phone = next((n for n in numbers if f"m:{n}" in pool), numbers[0] if numbers else None)
            by_phone = pool.get(f"m:{phone}") if phone else None
            by_pms = pool.get(f"i:{row['pms']}") if row["pms"] else None
            if len({pool[f"m:{n}"] for n in numbers if f"m:{n}" in pool}) > 1:
                errors[index] = [(phone_h, _text(raw[1]))]
                continue
            own = []
            if phone and by_phone is None:
                own.append((phone_h, _text(raw[1])))
            if row["pms"] and by_pms is None and not phone:
                own.append((pms_h, row["pms"]))
            if by_phone and by_pms and by_phone != by_pms:
                own.append((pms_h, row["pms"]))
            if own:
                errors[index] = own
                continue
            cid = by_phone if phone else by_pms
            if customer is None:
                customer = cid
            elif cid != customer:
                own.append((phone_h, _text(raw[1])) if phone else (pms_h, row["pms"]))
            line_clinic = pool.get(f"clinic:{row['clinic']}") if row["clinic"] else pool.get(f"home:{cid}")
            if line_clinic is None:
                own.append((clinic_h, ""))
            elif clinic is None:
                clinic = line_clinic
            elif line_clinic != clinic:
                own.append((clinic_h, pool[f"name:{line_clinic}"]))
            if own:
                errors[index] = own
        if any(index in errors for index in indexes):
            out["skipped"] += len(indexes)
            for index in indexes:
                out["errors"] += [(index + 2, column, value) for column, value in errors.get(index, [(order_h, order_no)])]
            continue
        out["created"] += 1
        out["merged"] += len(indexes) - 1
        out["orders"].add(order_no)
        out["lines"] += len(indexes)
        spend = sum(PRICES[rows[i]["item"].upper()] * int(rows[i]["quantity"] or 1) for i in indexes)
        out["spend"][customer] = out["spend"].get(customer, 0) + spend
    out["errors"].sort(key=lambda e: e[0])
    return out


def _on_file_differs(order_no: str, rows: list[dict], pool: dict) -> bool:
    """Whether rows of an order number on file name another bill than OLD-1 (张三's, one EX01): every row reads and
    finds its customer, and they are not all 张三's or the amount is not 50.00. Orders the file wrote before are the
    same bills again."""
    if order_no != "OLD-1" or any(row["fault"] for row in rows):
        return False
    customers = set()
    for row in rows:
        numbers = _numbers(row["phone"])
        if len({pool[f"m:{n}"] for n in numbers if f"m:{n}" in pool}) > 1:
            return False
        phone = next((n for n in numbers if f"m:{n}" in pool), numbers[0] if numbers else None)
        by_phone = pool.get(f"m:{phone}") if phone else None
        by_pms = pool.get(f"i:{row['pms']}") if row["pms"] else None
        if (phone and by_phone is None) or (row["pms"] and by_pms is None and not phone) or (
                by_phone and by_pms and by_phone != by_pms):
            return False
        customers.add(by_phone if phone else by_pms)
    total = sum(PRICES[row["item"].upper()] * int(row["quantity"] or 1) for row in rows)
    return customers != {pool[f"m:{_e164(PHONES['A'])}"]} or total != PRICES["EX01"]


def _text(value) -> str:
    return str(value).strip() if not isinstance(value, float) else str(int(value))


@pytest.fixture
def order_pool(chain, clinic_a, clinic_b, catalogue):
    from smileloop.visits.services import order_record

    def build():
        zhang = CustomerFactory(chain=chain, name="张三", mobile=_e164(PHONES["A"]), home_clinic=clinic_a)
        li = CustomerFactory(chain=chain, name="李四", mobile=_e164(PHONES["B"]), home_clinic=None)
        IdentityFactory(customer=li, kind=IdentityKind.PHONE, external_id=_e164(PHONES["C"]))
        wang = CustomerFactory(chain=chain, name="王五", mobile=None, mobile_tail="", home_clinic=clinic_b)
        IdentityFactory(customer=wang, kind=IdentityKind.PMS, external_id="P-1")
        order_record(customer=zhang, clinic=clinic_a, ordered_at=dt.datetime(2024, 1, 9, 9, 0, tzinfo=SHANGHAI),
                     lines=[{"item_code": "EX01"}], payments=[], external_id="OLD-1")
        return {f"m:{_e164(PHONES['A'])}": zhang.id, f"m:{_e164(PHONES['B'])}": li.id,
                f"m:{_e164(PHONES['C'])}": li.id, "i:P-1": wang.id,
                f"home:{zhang.id}": clinic_a.id, f"home:{li.id}": None, f"home:{wang.id}": clinic_b.id,
                "clinic:静安门诊": clinic_a.id, "clinic:SH02": clinic_b.id,
                f"name:{clinic_a.id}": clinic_a.name, f"name:{clinic_b.id}": clinic_b.name}
    return build


def _order_report_check(report, expected, *, written: bool):
    got = report.as_dict()
    assert (got["rows"], got["created"], got["merged"], got["skipped"], got["written"], report.duplicates) == (
        expected["rows"], expected["created"], expected["merged"], expected["skipped"], written,
        expected["duplicates"])
    assert got["rows"] == got["created"] + got["merged"] + got["skipped"]
    assert [(e["row"], e["column"], e["value"]) for e in got["errors"]] == expected["errors"]


@SETTINGS
@given(rows=st.lists(order_row, min_size=1, max_size=8),
       fmt=st.sampled_from(["utf-8", "utf-8-sig", "gbk", "xlsx"]),
       headers=st.sampled_from(sorted(ORDER_HEADERS)),
       skip_invalid=st.booleans())
def test_an_orders_import_does_what_the_model_says_and_all_or_nothing_holds(tmp_path, chain, order_pool, rows, fmt,
                                                                           headers, skip_invalid):
    header, column_map = ORDER_HEADERS[headers]

    def check():
        pool = order_pool()
        cells = [_order_cells(row, fmt) for row in rows]
        path = _write(tmp_path, fmt, [header, *cells])
        expected = orders_model(rows, cells, header, pool, {"OLD-1"})
        invalid = expected["skipped"] - expected["duplicates"]
        writes = not invalid or (skip_invalid and invalid < expected["rows"])
        before = _snapshot()
        spend_before = dict(Customer.objects.values_list("id", "lifetime_spend_fen"))
        visits_before = dict(Customer.objects.values_list("id", "visit_count"))

        dry = orders_import(path=path, chain=chain, column_map=column_map, skip_invalid=skip_invalid, dry_run=True)
        _order_report_check(dry, expected, written=False)
        assert _snapshot() == before

        real = orders_import(path=path, chain=chain, column_map=column_map, skip_invalid=skip_invalid)
        _order_report_check(real, expected, written=writes)
        assert {k: v for k, v in real.as_dict().items() if k != "written"} == {
            k: v for k, v in dry.as_dict().items() if k != "written"}
        if not writes:
            assert _snapshot() == before
            return
        tables = _table_rows()
        assert (tables["Order"], tables["OrderLine"], tables["Customer"]) == (
            before[0]["Order"] + expected["created"], before[0]["OrderLine"] + expected["lines"],
            before[0]["Customer"])
        assert set(Order.objects.exclude(external_id="OLD-1").values_list("external_id", flat=True)) == \
            expected["orders"]
        spend = dict(Customer.objects.values_list("id", "lifetime_spend_fen"))
        assert {pk: spend[pk] - spend_before[pk] for pk in spend if spend[pk] != spend_before[pk]} == \
            expected["spend"]
        # every bill of the file is of 5 March 2024 (Shanghai), a day no bill of theirs covered: one visit each
        visits = dict(Customer.objects.values_list("id", "visit_count"))
        assert {pk: visits[pk] - visits_before[pk] for pk in visits if visits[pk] != visits_before[pk]} == \
            dict.fromkeys(expected["spend"], 1)

        # a re-import writes no order: those written are duplicates now
        again = orders_model(rows, cells, header, pool, {"OLD-1"} | expected["orders"])
        report = orders_import(path=path, chain=chain, column_map=column_map, skip_invalid=True)
        assert (report.created, report.skipped, report.duplicates) == (0, again["skipped"], again["duplicates"])
        assert again["created"] == 0
        assert _table_rows()["Order"] == tables["Order"]
        assert dict(Customer.objects.values_list("id", "lifetime_spend_fen")) == spend
        assert dict(Customer.objects.values_list("id", "visit_count")) == visits

    _in_rollback(check)


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_customers_file_whose_rows_hold_nothing_but_ignored_cells_is_refused_like_one_without_rows(
        tmp_path, chain, dry_run):
    # given a template numbered down its 序号 column (ignored) and a phone cell saying there is none, no person
    path = csv_write(tmp_path / "空表.csv", [["序号", "姓名", "手机号"], ["1", "", ""], ["2", "", "无"]])
    before = _snapshot()

    # when / then: refused as a file without data rows, as one with the header alone is (it was "written": an audit
    # event of an import of 0 rows, and the staff page's batch `written`)
    with pytest.raises(ImportFileError) as exc:
        customers_import(path=path, chain=chain, dry_run=dry_run)
    assert (exc.value.code, str(exc.value.message)) == ("no_rows", "空表.csv has a header but no data rows")
    assert _snapshot() == before
