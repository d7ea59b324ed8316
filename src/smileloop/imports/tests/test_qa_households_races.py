"""An import linking people into their relatives' households while the family changes (PostgreSQL).

households_join read everyone's place once, unlocked, planned, then inserted: a head change committing in between
left the child's relation stored to the old head; a relative erased or merged away meanwhile headed a new household
(an erased person, a tombstone, in a family). It now waits out the erasures of everyone it links, locks them in id
order and reads their places (and who is erased or merged away) under the locks, as every family writer does."""

import threading

import pytest

from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.errors import Conflict
from smileloop.core.testing import paused, postgresql_only, race
from smileloop.customers import services as customer_services
from smileloop.customers.enums import Relation
from smileloop.customers.models import Customer, Household, HouseholdMember
from smileloop.customers.services import (
    customer_merge,
    household_head_set,
    household_member_add,
    household_relative_add,
)
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.imports.services import customers as import_customers
from smileloop.imports.services import customers_import
from smileloop.imports.tests.files import csv_write

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]


@pytest.fixture
def family(chain, clinic_a):
    """The mother heads a household her own mother is in (the child's grandmother)."""
    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    grandma = CustomerFactory(chain=chain, name="张桂兰", mobile="+8613900139000", home_clinic=clinic_a)
    household_member_add(head=mother, member=grandma, relation=Relation.PARENT)
    return mother, grandma


def _child_file(tmp_path):
    return csv_write(tmp_path / "c.csv", [["姓名", "手机号", "出生日期"], ["李小宝", "13800138000(妈妈)", "2019-05-01"]])


def _import(path, chain):
    def run():
        return customers_import(path=path, chain=chain)

    return run


def _place(name: str) -> tuple[int, str] | None:
    member = HouseholdMember.objects.select_related("household").filter(customer__name=name).first()
    return None if member is None else (member.household.head_id, member.relation)


def test_a_child_linked_while_the_household_head_changes_takes_the_relation_to_the_new_head(
        tmp_path, chain, family, monkeypatch):
    # given an import that has planned the child into the mother's household and is about to write it
    mother, grandma = family
    reached = threading.Event()
    monkeypatch.setattr(customer_services, "_households_write",
                        paused(customer_services._households_write, reached, before=True))

    # when the grandmother is made head meanwhile (the mother becomes her child)
    out = race(_import(_child_file(tmp_path), chain),
               lambda: household_head_set(new_head=Customer.objects.get(pk=grandma.pk)), reached)

    # then the head change waited for the import and derived the child's relation too: her grandchild, not the
    # "child" the import planned against the mother as head
    assert "first_error" not in out and "then_error" not in out, out
    assert out["first"].households_linked == 1
    assert Household.objects.get().head_id == grandma.pk
    assert _place("周敏") == (grandma.pk, Relation.CHILD)
    assert _place("李小宝") == (grandma.pk, Relation.GRANDCHILD)


def test_an_import_arriving_during_a_head_change_waits_and_reads_the_new_head_without_a_deadlock(
        tmp_path, chain, family, monkeypatch):
    # given a head change holding the family's rows, paused before it derives the relations
    mother, grandma = family
    reached = threading.Event()
    monkeypatch.setattr(customer_services, "household_head_relations",
                        paused(customer_services.household_head_relations, reached))

    # when an import links the child to the mother meanwhile
    out = race(lambda: household_head_set(new_head=Customer.objects.get(pk=grandma.pk)),
               _import(_child_file(tmp_path), chain), reached, atomic=False)

    # then it waited for the head change and linked the child to the grandmother's household as her grandchild
    assert "first_error" not in out and "then_error" not in out, out
    assert out["then"].households_linked == 1
    assert _place("李小宝") == (grandma.pk, Relation.GRANDCHILD)


def test_a_relative_erased_during_the_import_heads_no_household(tmp_path, chain, clinic_a, director_a, erasure):
    # given the mother (in no household) being erased: her row locked, about to take her out of her family
    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    erase, reached = erasure(director_a, mother)

    # when an import links her child to her number meanwhile
    out = race(erase, _import(_child_file(tmp_path), chain), reached, atomic=False)

    # then the import waited for the erasure: no family for the erased mother, and the row says why
    assert "first_error" not in out and "then_error" not in out, out
    assert Customer.objects.get(pk=mother.pk).erased_at is not None
    assert not Household.objects.exists() and not HouseholdMember.objects.exists()
    report = out["then"]
    assert (report.created, report.households_linked, report.households_not_linked) == (1, 0, 1)
    assert [(w["row"], w["value"], w["message"]) for w in report.warnings] == [
        (2, "+8613800138000", import_customers.HOUSEHOLD_ERASED)]


def test_a_relative_merged_away_during_the_import_joins_no_family(tmp_path, chain, clinic_a, chain_admin,
                                                                  monkeypatch):
    # given an import that has found the mother's number and is about to lock the people it writes about (from
    # then on a merge of hers waits for the import: see test_lock_order_postgres.py)
    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    kept = CustomerFactory(chain=chain, name="周敏", mobile="+8613700137000", home_clinic=clinic_a)
    reached = threading.Event()
    monkeypatch.setattr(import_customers._CustomerImport, "pool_lock",
                        paused(import_customers._CustomerImport.pool_lock, reached, before=True))

    # when the mother's record is merged into another meanwhile
    out = race(_import(_child_file(tmp_path), chain),
               lambda: customer_merge(scope=scope_for_staff(chain_admin), survivor=Customer.objects.get(pk=kept.pk),
                                      merged=Customer.objects.get(pk=mother.pk), reason="重复档案"), reached)

    # then the tombstone heads no household, and the row says to link from the kept record
    assert "first_error" not in out and "then_error" not in out, out
    assert Customer.objects.get(pk=mother.pk).merged_into_id == kept.pk
    assert not Household.objects.exists() and not HouseholdMember.objects.exists()
    report = out["first"]
    assert (report.households_linked, report.households_not_linked) == (0, 1)
    assert [(w["row"], w["message"]) for w in report.warnings] == [(2, import_customers.HOUSEHOLD_MERGED)]


def test_a_child_linked_while_another_member_is_erased_is_not_a_deadlock(tmp_path, chain, family, director_a,
                                                                       erasure):
    # given the grandmother's erasure holding her row, about to take her out of the mother's household
    mother, grandma = family
    erase, reached = erasure(director_a, grandma)

    # when an import links the child to the mother meanwhile
    out = race(erase, _import(_child_file(tmp_path), chain), reached, atomic=False)

    # then both went through: the grandmother left, the child joined the mother's household
    assert "first_error" not in out and "then_error" not in out, out
    assert out["then"].households_linked == 1
    assert _place("李小宝") == (mother.pk, Relation.CHILD)
    assert not HouseholdMember.objects.filter(customer_id=grandma.pk).exists()


def test_staff_linking_a_relative_being_erased_are_told_so(chain, clinic_a, director_a, erasure):
    # given the mother's erasure holding her row (household_relative_add read her before it committed)
    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    child = CustomerFactory(chain=chain, name="李小宝", home_clinic=clinic_a)
    erase, reached = erasure(director_a, mother)

    # when staff link the child to her as his parent meanwhile
    out = race(erase, lambda: household_relative_add(customer=Customer.objects.get(pk=child.pk),
                                                     relative=Customer.objects.get(pk=mother.pk),
                                                     relation=Relation.PARENT), reached)

    # then they are told she was erased (a 409, not a 500), and she heads no household
    assert "first_error" not in out, out
    assert isinstance(out.get("then_error"), Conflict) and out["then_error"].code == "erased", out
    assert not Household.objects.exists() and not HouseholdMember.objects.exists()
