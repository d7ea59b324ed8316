"""A phone cell holding several numbers ('138…/139…'), as PMS exports and hand-kept sheets write them."""

import pytest
from django.utils import translation

from smileloop.customers.enums import IdentityKind
from smileloop.customers.models import Customer, Identity
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.imports.messages import message_display
from smileloop.imports.services import customers_import, orders_import
from smileloop.imports.services.values import FORMULA, note_is_own, phone_numbers_parse
from smileloop.imports.tests.files import csv_write
from smileloop.visits.models import Order


@pytest.mark.parametrize(("cell", "numbers"), [
    ("13800138000", ["+8613800138000"]),
    ("138 0013 8000", ["+8613800138000"]),
    ("13800138000/13900139000", ["+8613800138000", "+8613900139000"]),
    ("13800138000，139-0013-9000", ["+8613800138000", "+8613900139000"]),
    ("13800138000、0755-86001234", ["+8613800138000", "+8675586001234"]),
    ("0755-86001234/13800138000", ["+8613800138000", "+8675586001234"]),  # the mobile is the phone
    ("13800138000 或 13900139000", ["+8613800138000", "+8613900139000"]),
    ("13800138000 13900139000", ["+8613800138000", "+8613900139000"]),
    ("13800138000/13800138000", ["+8613800138000"]),
])
def test_a_cell_of_one_or_several_numbers(cell, numbers):
    assert phone_numbers_parse(cell) == numbers


@pytest.mark.parametrize(("cell", "message"), [
    ("13800138000/12345", "holds several numbers, and “12345” is not a valid phone number"),
    ("13800138000 12", "is not a valid phone number"),  # spaces alone never make a list of a number and a fragment
    ("13800138000/13900139000/13700137000/13600136000", "holds 4 numbers; at most 3 are read from one cell"),
    ("abc", "is not a phone number"),
    ("bad/13800138000", "holds several numbers, and “bad” is not a phone number"),
])
def test_a_cell_that_is_no_list_of_numbers_says_which_part_is_wrong(cell, message):
    with pytest.raises(ValueError) as exc:
        phone_numbers_parse(cell)
    assert str(exc.value) == message


def test_the_staff_page_reads_a_several_numbers_error_in_chinese():
    with translation.override("zh-hans"):
        assert message_display("holds several numbers, and “12345” is not a valid phone number") == \
            "含多个号码，其中“12345”不是有效的手机号码"
        assert message_display("holds 4 numbers; at most 3 are read from one cell") == \
            "含 4 个号码；一个单元格最多读取 3 个"


def test_customers_the_first_number_is_the_phone_and_the_others_are_kept_unless_someone_elses(tmp_path, chain):
    # given a pool where 13700137000 is someone's phone
    other = CustomerFactory(chain=chain, name="赵六", mobile="+8613700137000")
    path = csv_write(tmp_path / "c.csv", [
        ["姓名", "手机号"],
        ["张三", "13800138000/13900139000"],
        ["李四", "13600136000，13700137000"],
        ["王五", "13500135000/bad"],
    ])

    # when
    report = customers_import(path=path, chain=chain, skip_invalid=True)

    # then
    data = report.as_dict()
    assert (report.created, report.skipped) == (2, 1)
    assert [(e["row"], e["column"], e["message"]) for e in data["errors"]] == [
        (4, "手机号", "holds several numbers, and “bad” is not a phone number")]
    assert (data["more_numbers_kept"], data["more_numbers_not_kept"]) == (1, 1)
    zhang = Customer.objects.get(name="张三")
    assert zhang.mobile == "+8613800138000"
    assert list(Identity.objects.filter(customer=zhang, kind=IdentityKind.PHONE).values_list(
        "external_id", flat=True)) == ["+8613900139000"]
    li = Customer.objects.get(name="李四")
    assert li.mobile == "+8613600136000" and not Identity.objects.filter(customer=li, kind=IdentityKind.PHONE)
    assert Customer.objects.get(pk=other.pk).name == "赵六"

    # and a later file naming 张三 by his second number finds him, not a new person
    again = customers_import(path=csv_write(tmp_path / "d.csv", [["姓名", "手机号"], ["张三", "13900139000"]]),
                             chain=chain)
    assert (again.created, again.merged) == (0, 1)


def test_orders_a_bill_goes_by_whichever_number_of_the_cell_is_known(tmp_path, chain, clinic_a, catalogue):
    known = CustomerFactory(chain=chain, name="张三", mobile="+8613800138000", home_clinic=clinic_a)
    CustomerFactory(chain=chain, name="李四", mobile="+8613900139000", home_clinic=clinic_a)
    path = csv_write(tmp_path / "o.csv", [
        ["订单号", "手机号", "日期", "项目编码", "金额"],
        ["A1", "13700137000/13800138000", "2024-01-05", "EX01", "50"],
        ["A2", "13800138000/13900139000", "2024-01-06", "EX01", "50"],
    ])

    report = orders_import(path=path, chain=chain, skip_invalid=True)

    assert [(e["row"], e["message"]) for e in report.as_dict()["errors"]] == [
        (3, "holds the numbers of different customers; keep one number per row")]
    assert list(Order.objects.values_list("external_id", "customer_id")) == [("A1", known.id)]


@pytest.mark.parametrize(("cell", "numbers", "note"), [
    ("13800138000(妈妈)", ["+8613800138000"], "妈妈"),
    ("爸爸：139 0013 9000", ["+8613900139000"], "爸爸"),
    ("13800138000 王女士", ["+8613800138000"], "王女士"),
    ("13800138000（本人）", ["+8613800138000"], "本人"),
    ("13800138000/13900139000（父母）", ["+8613800138000", "+8613900139000"], "父母"),
])
def test_words_beside_a_number_are_read_as_whose_it_is(cell, numbers, note):
    from smileloop.imports.services.values import phone_cell_parse

    parsed = phone_cell_parse(cell)
    assert (parsed.numbers, parsed.note) == (numbers, note)


def test_customers_a_relatives_number_is_kept_in_the_notes_not_as_the_phone(tmp_path, chain):
    # given the mother in the pool, and a sheet listing her child with her number, marked as hers
    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000")
    path = csv_write(tmp_path / "c.csv", [
        ["姓名", "手机号", "备注"],
        ["李小宝", "13800138000(妈妈)", "怕疼"],
        ["王芳", "13900139000（本人）", ""],
        ["张伟", "13700137000 张伟", ""],
    ])

    # when
    report = customers_import(path=path, chain=chain)

    # then the child is a person of their own, without the mother's number, which is kept as written in the notes
    assert (report.created, report.merged, report.as_dict()["relative_numbers"]) == (3, 0, 1)
    child = Customer.objects.get(name="李小宝")
    assert child.mobile is None and child.notes == "怕疼；手机号：13800138000(妈妈)"
    assert not Identity.objects.filter(customer=child).exists()
    assert Customer.objects.get(pk=mother.pk).name == "周敏"
    # and a number marked as the person's own (本人, or their own name) is their phone
    assert Customer.objects.get(name="王芳").mobile == "+8613900139000"
    assert Customer.objects.get(name="张伟").mobile == "+8613700137000"


def test_orders_a_relatives_number_goes_by_the_pms_id_or_is_refused(tmp_path, chain, clinic_a, catalogue):
    from smileloop.customers.enums import IdentityKind as Kind
    from smileloop.customers.tests.factories import IdentityFactory

    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    child = CustomerFactory(chain=chain, name="李小宝", home_clinic=clinic_a)
    IdentityFactory(customer=child, kind=Kind.PMS, external_id="P-7")
    path = csv_write(tmp_path / "o.csv", [
        ["订单号", "手机号", "患者编号", "日期", "项目编码", "金额"],
        ["A1", "13800138000(妈妈)", "P-7", "2024-01-05", "EX01", "50"],
        ["A2", "13800138000(妈妈)", "", "2024-01-06", "EX01", "50"],
    ])

    report = orders_import(path=path, chain=chain, skip_invalid=True)

    assert [(e["row"], e["message"]) for e in report.as_dict()["errors"]] == [
        (3, "is the number of a relative (妈妈): give the patient's own phone or PMS id")]
    assert list(Order.objects.values_list("external_id", "customer_id")) == [("A1", child.id)]
    assert not Order.objects.filter(customer=mother).exists()


@pytest.mark.parametrize("cell", ["bad/13800138000", "13800138000/bad", "13800138000，abc"])
def test_a_list_with_a_part_that_is_no_number_is_no_note(cell):
    from smileloop.imports.services.values import phone_cell_parse

    with pytest.raises(ValueError, match="holds several numbers"):
        phone_cell_parse(cell)


@pytest.mark.parametrize(("note", "name", "own"), [
    ("微信同号", "张红梅", True), ("常用", "张红梅", True), ("本人", "", True), ("手机", "", True), ("工作", "", True),
    ("单位", "", True), ("tel", "", True), ("TEL", "", True), ("WeChat", "", True), ("本人微信同号", "", True),
    ("张红梅", "张红梅", True),  # the row's own name
    ("妈妈", "李小宝", False), ("孩子妈", "李小宝", False), ("妈妈微信同号", "李小宝", False), ("奶奶的手机", "", False),
    ("家属", "", False), ("监护人", "", False), ("老公", "", False), ("女儿", "", False), ("Mom", "", False),
    ("emergency contact", "", False), ("王女士", "李小宝", False), ("周敏", "李小宝", False),  # another person named
    ("周敏的", "李小宝", False), ("老王", "", False),
])
def test_a_number_is_the_persons_own_unless_the_words_beside_it_name_someone_else(note, name, own):
    assert note_is_own(note, name) is own


def test_every_kinship_word_the_household_link_knows_makes_a_number_a_relatives():
    from smileloop.customers.normalize import _KINSHIP_WORDS

    # kinship_parse's words (what links a household) are all relatives' notes, in words of their own or inside others
    assert [word for word in _KINSHIP_WORDS if note_is_own(word) or note_is_own(f"孩子{word}")] == []


@pytest.mark.parametrize(("cell", "numbers", "note"), [
    ("13812372574(微信同号)", ["+8613812372574"], "微信同号"),
    ("tel:13812372574", ["+8613812372574"], "tel"),
    ('="13812372574"', ["+8613812372574"], ""),  # Excel's text formula: its text, not a note
    ('="0755-86001234"', ["+8675586001234"], ""),
])
def test_an_excel_text_formula_and_a_tel_prefix_are_read_as_the_number(cell, numbers, note):
    from smileloop.imports.services.values import phone_cell_parse

    parsed = phone_cell_parse(cell)
    assert (parsed.numbers, parsed.note) == (numbers, note)


def test_customers_a_patients_own_number_with_a_note_merges_into_the_pool_person(tmp_path, chain):
    # given a patient of the pool, and a sheet writing her number with a note, a prefix or as Excel keeps text
    patient = CustomerFactory(chain=chain, name="张红梅", mobile="+8613812372574", notes="")
    path = csv_write(tmp_path / "c.csv", [
        ["姓名", "手机号"],
        ["张红梅", "13812372574(微信同号)"],
        ["张红梅", "13812372574（常用）"],
        ["张红梅", "tel:13812372574"],
        ["张红梅", '="13812372574"'],
        ["李小宝", "13812372574(妈妈)"],  # her child, with her number: still a relative's
    ])

    # when
    report = customers_import(path=path, chain=chain)

    # then the four rows are hers, not four phone-less people; the child is a person of their own, without a phone
    assert (report.created, report.merged, report.as_dict().get("relative_numbers")) == (1, 4, 1)
    assert sorted(Customer.objects.values_list("name", "mobile")) == [("张红梅", "+8613812372574"), ("李小宝", None)]
    assert Customer.objects.get(pk=patient.pk).notes == ""


def test_a_formula_in_a_phone_cell_is_reported_as_one(tmp_path, chain):
    # given a real formula (not Excel's '="…"' text) in the phone column
    path = csv_write(tmp_path / "c.csv", [["姓名", "手机号"], ["张三", "=13800138000"], ["李四", '=A2&""']])

    # when
    report = customers_import(path=path, chain=chain, dry_run=True)

    # then
    assert [(e["row"], e["message"]) for e in report.as_dict()["errors"]] == [(2, FORMULA), (3, FORMULA)]


def test_orders_a_bill_written_with_the_patients_own_number_and_a_note_is_theirs(tmp_path, chain, clinic_a, catalogue):
    patient = CustomerFactory(chain=chain, name="张红梅", mobile="+8613812372574", home_clinic=clinic_a)
    path = csv_write(tmp_path / "o.csv", [
        ["订单号", "手机号", "姓名", "日期", "项目编码", "金额"],
        ["A1", "13812372574(微信同号)", "张红梅", "2024-01-05", "EX01", "50"],
        ["A2", '="13812372574"', "张红梅", "2024-01-06", "EX01", "50"],
    ])

    report = orders_import(path=path, chain=chain)

    assert report.as_dict()["errors"] == []
    assert list(Order.objects.order_by("external_id").values_list("external_id", "customer_id")) == [
        ("A1", patient.id), ("A2", patient.id)]
