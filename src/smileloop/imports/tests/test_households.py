"""A relative's number in a phone cell ('13800138000(妈妈)') links the person into that relative's household."""

import pytest

from smileloop.clinics.selectors import scope_for_staff
from smileloop.customers.enums import IdentityKind, Relation
from smileloop.customers.models import Customer, Household, HouseholdMember, Identity, Interaction
from smileloop.customers.normalize import kinship_parse
from smileloop.customers.selectors import guardians_for
from smileloop.customers.services import household_member_add, household_relation_through
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.imports.services import customers_import
from smileloop.imports.tests.files import csv_write


def _place(customer) -> tuple[int, str, str] | None:
    """(head id, head name, relation) of the customer's household, or None."""
    member = HouseholdMember.objects.select_related("household__head").filter(customer=customer).first()
    return None if member is None else (member.household.head_id, member.household.head.name, member.relation)


@pytest.mark.parametrize(("note", "kin"), [
    ("妈妈", Relation.PARENT), ("爸爸的手机", Relation.PARENT), ("家长电话", Relation.PARENT), ("Mom", Relation.PARENT),
    ("奶奶", Relation.GRANDPARENT), ("外婆手机", Relation.GRANDPARENT), ("老公", Relation.SPOUSE),
    ("女儿", Relation.CHILD), ("姐姐", Relation.SIBLING), ("王女士", None), ("单位", None), ("", None),
])
def test_kinship_words_say_what_the_numbers_holder_is_to_the_person(note, kin):
    assert kinship_parse(note) == kin


@pytest.mark.parametrize(("kin", "relative_place", "relation"), [
    (Relation.PARENT, Relation.HEAD, Relation.CHILD),  # the mother heads: her child
    (Relation.PARENT, Relation.SPOUSE, Relation.CHILD),  # the mother is the head's wife: the head's child too
    (Relation.PARENT, Relation.CHILD, Relation.GRANDCHILD),  # the mother is the head's daughter: a grandchild
    (Relation.GRANDPARENT, Relation.HEAD, Relation.GRANDCHILD),
    (Relation.SPOUSE, Relation.HEAD, Relation.SPOUSE),
    (Relation.CHILD, Relation.HEAD, Relation.PARENT),
    (Relation.SIBLING, Relation.CHILD, Relation.CHILD),
    (Relation.PARENT, Relation.GRANDPARENT, None),  # the child of the head's grandparent: a parent or an uncle
    (Relation.GRANDPARENT, Relation.CHILD, None),
])
def test_the_relation_to_the_head_follows_from_the_relatives_place(kin, relative_place, relation):
    assert household_relation_through(kin, relative_place) == relation


def test_a_child_registered_with_the_mothers_number_joins_her_household(tmp_path, chain, clinic_a, chain_admin):
    # given the mother in the pool, and a sheet listing her child with her number, marked as hers
    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    path = csv_write(tmp_path / "c.csv", [
        ["姓名", "手机号", "出生日期"],
        ["李小宝", "13800138000(妈妈)", "2019-05-01"],
        ["李小贝", "奶奶的手机：13800138000", "2021-03-02"],
    ])

    # when
    report = customers_import(path=path, chain=chain, actor=chain_admin)

    # then both children are in her household, which she heads, and she is whom the follow-ups call
    assert (report.created, report.relative_numbers, report.households_linked, report.households_not_linked) == (
        2, 2, 1 + 1, 0)
    assert report.as_dict()["households_linked"] == 2
    first, second = Customer.objects.get(name="李小宝"), Customer.objects.get(name="李小贝")
    assert _place(mother) == (mother.pk, "周敏", Relation.HEAD)
    assert _place(first) == (mother.pk, "周敏", Relation.CHILD)
    assert _place(second) == (mother.pk, "周敏", Relation.GRANDCHILD)  # '奶奶的手机': the number's holder is a grandmother
    assert first.mobile is None and first.notes == "手机号：13800138000(妈妈)"  # the number is still not the child's
    assert guardians_for(scope_for_staff(chain_admin), [first.pk, second.pk]) == {first.pk: mother, second.pk: mother}
    # and the head's timeline says who joined, masked
    assert Interaction.objects.filter(customer=mother, text__contains="李**").exists()


def test_the_relative_may_stand_later_in_the_same_file(tmp_path, chain, clinic_a):
    path = csv_write(tmp_path / "c.csv", [
        ["姓名", "手机号", "门诊"],
        ["石子轩", "13800138000(爸爸)", "静安门诊"],
        ["石磊", "13800138000", "静安门诊"],
    ])

    report = customers_import(path=path, chain=chain)

    father, child = Customer.objects.get(name="石磊"), Customer.objects.get(name="石子轩")
    assert (report.created, report.households_linked) == (2, 1)
    assert _place(child) == (father.pk, "石磊", Relation.CHILD)
    assert Household.objects.get(head=father).name == "石磊家"


def test_the_relatives_place_in_a_household_decides_the_relation(tmp_path, chain, clinic_a):
    # given a household headed by the grandfather, whose daughter is the mother of the child in the sheet
    grandfather = CustomerFactory(chain=chain, name="周建国", mobile="+8613700137000", home_clinic=clinic_a)
    mother = CustomerFactory(chain=chain, name="周敏", mobile=None, home_clinic=clinic_a)
    Identity.objects.create(chain=chain, customer=mother, kind=IdentityKind.PHONE, external_id="+8613800138000")
    household_member_add(head=grandfather, member=mother, relation=Relation.CHILD)
    path = csv_write(tmp_path / "c.csv", [["姓名", "手机号"], ["李小宝", "13800138000（妈妈）"]])

    report = customers_import(path=path, chain=chain)

    # then the child joins the grandfather's household as his grandchild (the mother's number was a phone identity)
    assert report.households_linked == 1
    assert _place(Customer.objects.get(name="李小宝")) == (grandfather.pk, "周建国", Relation.GRANDCHILD)


def test_nothing_is_linked_where_no_relation_follows_or_the_person_has_a_household(tmp_path, chain, clinic_a):
    # given the child's mother, a man with a household whose head is his grandmother, and a woman named in a cell
    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    great = CustomerFactory(chain=chain, name="王奶奶", mobile="+8613600136000", home_clinic=clinic_a)
    grandson = CustomerFactory(chain=chain, name="王强", mobile="+8613500135000", home_clinic=clinic_a)
    household_member_add(head=great, member=grandson, relation=Relation.GRANDCHILD)
    path = csv_write(tmp_path / "c.csv", [
        ["姓名", "手机号", "病历号"],
        ["王小明", "13500135000(爸爸)", ""],  # the child of the head's grandchild: not a relation we know
        ["李小宝", "13800138000 王女士", ""],  # a name is no relation
        ["李小贝", "13900139000(妈妈)", ""],  # a number nobody in the pool or the file has
    ])

    report = customers_import(path=path, chain=chain)

    assert (report.created, report.relative_numbers, report.households_linked, report.households_not_linked) == (
        3, 3, 0, 1)
    assert not HouseholdMember.objects.filter(customer__name__in=["王小明", "李小宝", "李小贝"]).exists()
    assert not HouseholdMember.objects.filter(customer=mother).exists()
    # and a re-import of someone in another household already leaves them there
    other = CustomerFactory(chain=chain, name="赵六", mobile="+8613300133000", home_clinic=clinic_a)
    head = CustomerFactory(chain=chain, name="赵老", mobile="+8613200132000", home_clinic=clinic_a)
    household_member_add(head=head, member=other, relation=Relation.CHILD)
    Identity.objects.create(chain=chain, customer=other, kind=IdentityKind.PMS, external_id="P-1")
    path = csv_write(tmp_path / "d.csv", [["姓名", "手机号", "病历号"], ["赵六", "13800138000(妈妈)", "P-1"]])
    report = customers_import(path=path, chain=chain)
    assert (report.merged, report.households_linked, report.households_not_linked) == (1, 0, 1)
    assert _place(other) == (head.pk, "赵老", Relation.CHILD)


def test_a_relative_outside_the_importers_clinics_is_not_linked(tmp_path, chain, clinic_a, clinic_b, director_a):
    # given the mother, a patient of another clinic
    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_b)
    path = csv_write(tmp_path / "c.csv", [["姓名", "手机号"], ["李小宝", "13800138000(妈妈)"]])

    # when the director of clinic A imports the child
    report = customers_import(path=path, chain=chain, actor=director_a)

    # then the child is imported into clinic A without touching her household
    assert (report.created, report.households_linked, report.households_not_linked) == (1, 0, 1)
    assert Customer.objects.get(name="李小宝").home_clinic_id == clinic_a.pk
    assert not Household.objects.filter(head=mother).exists()


def test_a_dry_run_counts_the_links_and_writes_none(tmp_path, chain, clinic_a):
    CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    path = csv_write(tmp_path / "c.csv", [
        ["姓名", "手机号"],
        ["李小宝", "13800138000(妈妈)"],
        ["石子轩", "13700137000(爸爸)"],
        ["石磊", "13700137000"],
    ])

    report = customers_import(path=path, chain=chain, dry_run=True)

    assert (report.written, report.households_linked, report.households_not_linked) == (False, 2, 0)
    assert not Household.objects.exists() and not HouseholdMember.objects.exists()
    assert Customer.objects.count() == 1


def test_a_file_refused_for_an_invalid_row_links_nothing(tmp_path, chain, clinic_a):
    CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    path = csv_write(tmp_path / "c.csv", [
        ["姓名", "手机号"],
        ["李小宝", "13800138000(妈妈)"],
        ["坏行", "12345"],
    ])

    report = customers_import(path=path, chain=chain)

    assert report.written is False and report.error_count == 1
    assert not Household.objects.exists() and Customer.objects.count() == 1


def test_the_command_says_how_many_joined_a_household(tmp_path, chain, clinic_a, capsys):
    from django.core.management import call_command

    CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    path = csv_write(tmp_path / "c.csv", [["姓名", "手机号"], ["李小宝", "13800138000(妈妈)"],
                                          ["王小明", "13900139000(爸爸)"]])

    call_command("import", "customers", str(path))

    assert capsys.readouterr().out.splitlines()[1:] == [
        "2 relatives' numbers kept in the notes; 1 joined that relative's household, 0 left to staff"]


def test_the_import_page_shows_the_links_and_confirming_makes_them(client, director_a, clinic_a, chain, settings,
                                                                   tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    # given the mother, a patient of the director's clinic
    settings.SMILELOOP_IMPORT_DIR = tmp_path / "imports"
    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    client.force_login(director_a.user)
    content = "姓名,手机号\n李小宝,13800138000(妈妈)\n".encode()

    # when the file is uploaded, the preview counts the link in the staff's language and makes none
    response = client.post(reverse("imports:upload"),
                           {"kind": "customers", "file": SimpleUploadedFile("儿童.csv", content)})
    zh = client.get(response.url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "已加入号码所属亲属的家庭</dt><dd id=\"count-households-linked\">1</dd>" in zh
    assert '<dd id="count-households-not-linked">0</dd>' in zh
    assert not Household.objects.exists()

    # when confirmed, the child is in her household
    from smileloop.imports.models import ImportBatch

    client.post(reverse("imports:confirm", kwargs={"batch_id": ImportBatch.objects.get().id}))
    assert _place(Customer.objects.get(name="李小宝")) == (mother.pk, "周敏", Relation.CHILD)


def test_a_reimport_finds_the_children_in_their_relatives_family_instead_of_making_them_twice(tmp_path, chain,
                                                                                              clinic_a):
    # given a sheet of children written with their parents' numbers, imported once
    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    rows = [["姓名", "手机号", "出生日期", "小区"],
            ["李小宝", "13800138000(妈妈)", "2019-05-01", ""],
            ["李小贝", "13800138000(妈妈)", "", "阳光小区"],
            ["石子轩", "13700137000(爸爸)", "2020-01-01", ""],
            ["石磊", "13700137000", "", ""]]
    first = customers_import(path=csv_write(tmp_path / "a.csv", rows), chain=chain)
    assert (first.created, first.merged, first.households_linked) == (4, 0, 3)

    # when it is imported again, with a blank filled, a sibling added and a namesake of another birthday
    rows[2][3] = "阳光小区"
    rows[1][3] = "幸福里"
    rows += [["李小贝", "13800138000(妈妈)", "", ""],  # the same child twice in the file
             ["李小美", "13800138000（妈妈）", "2023-02-02", ""],
             ["石子轩", "13700137000(爸爸)", "2012-12-12", ""]]
    again = customers_import(path=csv_write(tmp_path / "b.csv", rows), chain=chain)

    # then the children already in the family are merged, and only the new sibling and the namesake are new
    assert (again.created, again.merged, again.households_linked, again.households_not_linked) == (2, 5, 6, 0)
    assert Customer.objects.filter(name="李小宝").count() == 1 and Customer.objects.filter(name="李小贝").count() == 1
    assert Customer.objects.get(name="李小宝").community == "幸福里"  # a blank filled, nothing overwritten
    assert _place(Customer.objects.get(name="李小美")) == (mother.pk, "周敏", Relation.CHILD)
    # the namesake of another birthday is another child: a new person
    assert Customer.objects.filter(name="石子轩").count() == 2


def test_a_bill_written_with_the_mothers_number_goes_to_her_child_of_that_name(tmp_path, chain, clinic_a, clinic_b,
                                                                               catalogue):
    from smileloop.imports.services import orders_import
    from smileloop.visits.models import Order

    # given the mother's household with her two children, and a namesake child in another family
    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    first = CustomerFactory(chain=chain, name="李小宝", home_clinic=clinic_a)
    second = CustomerFactory(chain=chain, name="李小贝", home_clinic=clinic_a)
    household_member_add(head=mother, member=first, relation=Relation.CHILD)
    household_member_add(head=mother, member=second, relation=Relation.CHILD)
    CustomerFactory(chain=chain, name="李小宝", home_clinic=clinic_a)
    path = csv_write(tmp_path / "o.csv", [
        ["订单号", "姓名", "手机号", "日期", "项目编码", "金额"],
        ["A1", "李小宝", "13800138000(妈妈)", "2024-01-05", "EX01", "50"],
        ["A2", "李小贝", "妈妈：138 0013 8000", "2024-01-06", "EX01", "50"],
        ["A3", "李小美", "13800138000(妈妈)", "2024-01-07", "EX01", "50"],  # no child of that name
        ["A4", "", "13800138000(妈妈)", "2024-01-08", "EX01", "50"],  # no name to go by
        ["A5", "王小明", "13900139000(爸爸)", "2024-01-08", "EX01", "50"],  # a number nobody has
    ])

    # when
    report = orders_import(path=path, chain=chain, skip_invalid=True)

    # then the children's bills are theirs, never the mother's, and the rest are refused saying why
    assert sorted(Order.objects.values_list("external_id", "customer_id")) == [("A1", first.id), ("A2", second.id)]
    assert [(e["row"], e["message"]) for e in report.as_dict()["errors"]] == [
        (4, "is the number of a relative (妈妈), and no one named 李小美 is in that relative's family: give the "
            "patient's own phone or PMS id"),
        (5, "is the number of a relative (妈妈): give the patient's own phone or PMS id"),
        (6, "is the number of a relative (爸爸), and no one named 王小明 is in that relative's family: give the "
            "patient's own phone or PMS id"),
    ]
    assert not Order.objects.filter(customer=mother).exists()

    # and a director of another clinic does not reach the family through the mother's number
    Order.objects.all().delete()
    from smileloop.clinics.enums import Role
    from smileloop.clinics.tests.factories import StaffFactory

    director_b = StaffFactory(chain=chain, role=Role.CLINIC_DIRECTOR, clinics=[clinic_b])
    report = orders_import(path=path, chain=chain, actor=director_b, skip_invalid=True)
    assert not Order.objects.exists() and report.error_count == 5


def test_the_guardian_columns_of_a_paediatric_export_link_the_child_into_the_family(tmp_path, chain, clinic_a):
    # given the mother and the grandfather in the pool, and an export with guardian columns
    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    grandfather = CustomerFactory(chain=chain, name="周建国", mobile="+8613700137000", home_clinic=clinic_a)
    path = csv_write(tmp_path / "c.csv", [
        ["姓名", "手机号", "监护人", "监护人电话", "与患者关系"],
        ["李小宝", "", "周敏", "138 0013 8000", "母子"],
        ["李小贝", "13600136000", "周建国", "13700137000", "爷爷"],  # a phone of her own, and her grandfather
        ["王小明", "", "", "13800138000", ""],  # no relation given: a parent
        ["赵六", "", "赵老", "13900139000", "朋友"],  # a number nobody has, and no relation we know
        ["钱七", "", "", "12345", ""],  # not a phone number
    ])

    # when
    report = customers_import(path=path, chain=chain, skip_invalid=True)

    # then the children are in their families, still without the guardian's number as theirs
    assert [(e["row"], e["column"], e["message"]) for e in report.errors] == [
        (6, "监护人电话", "is not a valid phone number")]
    assert (report.created, report.relative_numbers, report.households_linked, report.households_not_linked) == (
        4, 4, 3, 0)
    first, second, third = (Customer.objects.get(name=n) for n in ("李小宝", "李小贝", "王小明"))
    assert (_place(first), _place(third)) == ((mother.pk, "周敏", Relation.CHILD), (mother.pk, "周敏", Relation.CHILD))
    assert _place(second) == (grandfather.pk, "周建国", Relation.GRANDCHILD)
    assert first.mobile is None and second.mobile == "+8613600136000"
    assert first.notes == "监护人：周敏；监护人电话：138 0013 8000；与患者关系：母子"
    assert Customer.objects.get(name="赵六").notes == "监护人：赵老；监护人电话：13900139000；与患者关系：朋友"
    assert not Identity.objects.filter(external_id__in=["+8613800138000", "+8613700137000"]).exists()


def test_words_beside_a_guardians_number_that_name_no_one_leave_the_guardian_a_parent(tmp_path, chain, clinic_a):
    # given the mother in the pool, and her number in the guardian column with a note of hers
    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    path = csv_write(tmp_path / "c.csv", [["姓名", "监护人电话"], ["李小宝", "13800138000(微信同号)"]])

    # when
    report = customers_import(path=path, chain=chain)

    # then the child joins her household, as a guardian's number with no relation given does
    assert report.households_linked == 1
    assert _place(Customer.objects.get(name="李小宝")) == (mother.pk, "周敏", Relation.CHILD)
