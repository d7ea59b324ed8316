"""Changing a family's head while another family write lands (PostgreSQL): the second waits for the first and reads
the family as it left it, so every relation stays one to the one head.

household_head_set locks every member's row (_family_lock) before it reads the relations it derives from; the other
household writes lock the rows of the people they touch. Without that, a second head change derived its relations
from the family as it was before the first (two heads, relations to the wrong one), and a relative linked through
the old head was stored as the old head's child under the new one."""

import threading

import pytest

from smileloop.core.testing import paused, postgresql_only, race
from smileloop.customers import services
from smileloop.customers.enums import Relation
from smileloop.customers.models import Customer, Household, HouseholdMember
from smileloop.customers.services import household_head_set, household_member_add, household_relative_add
from smileloop.customers.tests.factories import CustomerFactory

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]


@pytest.fixture
def family(chain, clinic_a):
    """王峰 heads his wife 郑佳琪 and their children 王锦程 and 王锦溪."""
    people = {name: CustomerFactory(chain=chain, name=name, home_clinic=clinic_a)
              for name in ["王峰", "郑佳琪", "王锦程", "王锦溪"]}
    for name, relation in (("郑佳琪", Relation.SPOUSE), ("王锦程", Relation.CHILD), ("王锦溪", Relation.CHILD)):
        household_member_add(head=people["王峰"], member=people[name], relation=relation)
    return people


def _relations() -> dict[str, str]:
    return {m.customer.name: m.relation for m in HouseholdMember.objects.select_related("customer")}


def _first_paused(monkeypatch, person):
    """household_head_set(new_head=person), paused with the family's rows locked, after deriving the relations."""
    reached = threading.Event()
    monkeypatch.setattr(services, "household_head_relations", paused(services.household_head_relations, reached))
    return (lambda: household_head_set(new_head=Customer.objects.get(pk=person.pk))), reached


def test_two_head_changes_at_once_leave_one_head_and_relations_to_them(family, monkeypatch):
    from smileloop.customers.models import Interaction

    first, reached = _first_paused(monkeypatch, family["郑佳琪"])

    out = race(first, lambda: household_head_set(new_head=Customer.objects.get(pk=family["王锦程"].pk)), reached)

    assert "first_error" not in out and "then_error" not in out, out
    # the wife headed first; her son then took over from her (not from his father, who no longer headed)
    assert _relations() == {"王锦程": Relation.HEAD, "郑佳琪": Relation.PARENT, "王峰": Relation.PARENT,
                            "王锦溪": Relation.SIBLING}
    assert list(Household.objects.values_list("head_id", "name")) == [(family["王锦程"].pk, "王锦程家")]
    assert Interaction.objects.filter(customer=family["王锦程"], text="family head taken over from 郑** (parent)").exists()


def test_a_relative_linked_through_the_old_head_meanwhile_is_related_to_the_new_one(family, chain, clinic_a,
                                                                                   monkeypatch):
    baby = CustomerFactory(chain=chain, name="王小妹", home_clinic=clinic_a)
    first, reached = _first_paused(monkeypatch, family["王锦程"])

    # from 王峰's page: 王小妹 is his child; by the time it lands, 王锦程 heads and she is his sister
    out = race(first, lambda: household_relative_add(customer=Customer.objects.get(pk=family["王峰"].pk),
                                                     relative=Customer.objects.get(pk=baby.pk),
                                                     relation=Relation.CHILD), reached)

    assert "first_error" not in out and "then_error" not in out, out
    assert _relations()["王小妹"] == Relation.SIBLING and _relations()["王锦程"] == Relation.HEAD


def test_a_head_change_while_a_member_is_erased_waits_for_it_and_is_not_a_deadlock(family, director_a, erasure):
    erase, reached = erasure(director_a, family["王锦程"])
    out = race(erase, lambda: household_head_set(new_head=Customer.objects.get(pk=family["王锦溪"].pk)), reached)

    assert "first_error" not in out and "then_error" not in out, out
    # the son erased (out of the family) first; his sister then heads her parents
    assert _relations() == {"王锦溪": Relation.HEAD, "王峰": Relation.PARENT, "郑佳琪": Relation.PARENT}
