"""The imports take their locks in the project's order (docs/architecture.md, "Writes about a person"): the erasures
of everyone written about waited out first (FOR KEY SHARE), then their rows in id order (PostgreSQL).

Before: the customers import updated the people whose blank fields a file filled as it found them, and locked the
family it links in id order only at its end, so it held a mother's row while it waited for her child's, which a
staff link of the two held while waiting for hers; the heads whose timelines get the "joined" note were not waited
on, so a head's erasure and the note's foreign-key check waited for each other at commit; and the orders import
locked a family's lower id while the erasure of a higher one, holding that person, went on to lock the family.
Each was a deadlock (PostgreSQL aborts one side: "deadlock detected")."""

import threading

import pytest

from smileloop.core.errors import Conflict
from smileloop.core.testing import paused, postgresql_only, race
from smileloop.customers.enums import Relation
from smileloop.customers.models import Customer, HouseholdMember, Interaction
from smileloop.customers.services import household_member_add, household_relative_add
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.imports.services import customers as import_customers
from smileloop.imports.services import customers_import, orders_import
from smileloop.imports.tests.files import csv_write
from smileloop.visits.models import Order

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]

ORDER_HEADER = ["订单号", "手机号", "门诊", "日期", "项目编码", "数量", "单价", "折扣", "金额", "支付方式"]


def _place(customer_id: int) -> tuple[int, str] | None:
    member = HouseholdMember.objects.select_related("household").filter(customer_id=customer_id).first()
    return None if member is None else (member.household.head_id, member.relation)


def test_an_import_filling_a_mother_while_staff_link_her_child_to_her_is_not_a_deadlock(
        tmp_path, chain, clinic_a, monkeypatch):
    # given a child (his notes kept: the import fills nothing of his) and his mother (a higher id, her address
    # blank), and a file that fills her address and gives the child's guardian number as hers; the import paused
    # once it has written the chunk, before it links them
    child = CustomerFactory(chain=chain, name="李小宝", mobile="+8613700137000", home_clinic=clinic_a,
                            notes="青霉素过敏")
    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a, address="")
    path = csv_write(tmp_path / "c.csv", [["姓名", "手机号", "地址", "监护人电话"],
                                          ["周敏", "13800138000", "静安区愚园路1号", ""],
                                          ["李小宝", "13700137000", "", "13800138000"]])
    reached = threading.Event()
    monkeypatch.setattr(import_customers, "households_join",
                        paused(import_customers.households_join, reached, before=True))

    # when staff link the child to his mother meanwhile (both rows locked, in id order: the child's first)
    out = race(lambda: customers_import(path=path, chain=chain),
               lambda: household_relative_add(customer=Customer.objects.get(pk=child.pk),
                                              relative=Customer.objects.get(pk=mother.pk), relation=Relation.PARENT),
               reached)

    # then no deadlock: the link waited for the import, and is told the two are linked already
    assert "first_error" not in out, out
    assert out["first"].households_linked == 1
    assert isinstance(out.get("then_error"), Conflict) and out["then_error"].code == "household_same", out
    assert Customer.objects.get(pk=mother.pk).address == "静安区愚园路1号"
    assert Customer.objects.get(pk=child.pk).notes == "青霉素过敏"
    assert _place(child.pk) == (mother.pk, Relation.CHILD)


@pytest.fixture
def parents(chain, clinic_a):
    """The father heads a household his wife is in."""
    father = CustomerFactory(chain=chain, name="李强", mobile="+8613900139000", home_clinic=clinic_a)
    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    household_member_add(head=father, member=mother, relation=Relation.SPOUSE)
    return father, mother


def test_a_child_imported_onto_his_mother_while_the_head_is_erased_is_not_a_deadlock(
        tmp_path, chain, parents, director_a, erasure):
    # given the father's erasure holding his row, about to dissolve the household he heads
    father, mother = parents
    erase, reached = erasure(director_a, father)
    path = csv_write(tmp_path / "c.csv", [["姓名", "手机号", "出生日期"], ["李小宝", "13800138000(妈妈)", "2019-05-01"]])

    # when an import links a child to the mother's number meanwhile (its note would go on the father's timeline)
    out = race(erase, lambda: customers_import(path=path, chain=chain), reached, atomic=False)

    # then the import waited for the erasure: the mother heads a new household with her child, and nothing of
    # the child is on the erased father's timeline
    assert "first_error" not in out and "then_error" not in out, out
    assert out["then"].households_linked == 1
    child = Customer.objects.get(name="李小宝")
    assert _place(mother.pk) == (mother.pk, Relation.HEAD)
    assert _place(child.pk) == (mother.pk, Relation.CHILD)
    assert not Interaction.objects.filter(customer_id=father.pk, data__relation__isnull=False).exists()


def test_staff_linking_a_child_to_his_mother_while_the_head_is_erased_is_not_a_deadlock(
        chain, clinic_a, parents, director_a, erasure):
    # given the father's erasure holding his row, about to dissolve the household he heads
    father, mother = parents
    child = CustomerFactory(chain=chain, name="李小宝", home_clinic=clinic_a)
    erase, reached = erasure(director_a, father)

    # when staff link the child to his mother meanwhile (households_join: the note goes on the head's timeline)
    out = race(erase, lambda: household_relative_add(customer=Customer.objects.get(pk=child.pk),
                                                     relative=Customer.objects.get(pk=mother.pk),
                                                     relation=Relation.PARENT), reached)

    # then the link waited out the head's erasure and read the family after it: the mother heads her own now
    assert "first_error" not in out and "then_error" not in out, out
    assert _place(child.pk) == (mother.pk, Relation.CHILD)
    assert not Interaction.objects.filter(customer_id=father.pk, data__relation__isnull=False).exists()


def test_a_family_s_bills_imported_while_a_member_is_erased_are_not_a_deadlock(
        tmp_path, chain, clinic_a, catalogue, director_a, erasure):
    # given a mother heading a household her son (a higher id) is in, and his erasure holding his row, about to
    # take him out of it (which locks her row too)
    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    son = CustomerFactory(chain=chain, name="李小宝", mobile="+8613700137000", home_clinic=clinic_a)
    household_member_add(head=mother, member=son, relation=Relation.CHILD)
    erase, reached = erasure(director_a, son)
    path = csv_write(tmp_path / "o.csv", [
        ORDER_HEADER,
        ["A001", "13800138000", "静安门诊", "2024-03-05 10:00", "EX01", "1", "50", "0", "50", "现金"],
        ["A002", "13700137000", "静安门诊", "2024-03-05 11:00", "EX01", "1", "50", "0", "50", "现金"],
    ])

    # when both their bills are imported meanwhile
    out = race(erase, lambda: orders_import(path=path, chain=chain, skip_invalid=True), reached, atomic=False)

    # then the import waited for the erasure: the mother's bill is written, the erased son is given none
    assert "first_error" not in out and "then_error" not in out, out
    report = out["then"]
    assert (report.created, [(e["row"], e["message"]) for e in report.errors]) == (
        1, [(3, "no customer with this phone")])
    assert list(Order.objects.values_list("external_id", "customer_id")) == [("A001", mother.pk)]
