"""households_join (an import's family links) locks its people HOUSEHOLDS_LOCK_CHUNK ids per statement (5,000: an
import may link thousands) and reads under the locks who was erased or merged away meanwhile. With a chunk of 2 the
outcomes and the families written are the ones a single statement gives: no id falls between two chunks."""

import pytest
from django.db import transaction
from django.utils import timezone

from smileloop.customers import services as customer_services
from smileloop.customers.enums import Relation
from smileloop.customers.models import Customer, HouseholdMember
from smileloop.customers.services import household_member_add, households_join
from smileloop.customers.tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


class _Undo(Exception):
    """Rolls a run back, so that the next one starts from the same pool."""


def _run(links) -> tuple[list[str], list[tuple]]:
    result = None
    try:
        with transaction.atomic():
            outcomes = households_join(links)
            result = (outcomes, sorted(HouseholdMember.objects.values_list(
                "customer_id", "household__head_id", "relation")))
            raise _Undo
    except _Undo:
        pass
    return result


def test_links_locked_in_small_chunks_give_what_one_statement_gives(chain, clinic_a, monkeypatch):
    # given nine mothers and their children, one household already (a mother heading her own mother), a mother
    # erased and another merged away since the file was read: ids interleaved so that every chunk holds some
    mothers = [CustomerFactory(chain=chain, home_clinic=clinic_a, name=f"母亲{i}") for i in range(9)]
    children = [CustomerFactory(chain=chain, home_clinic=clinic_a, name=f"孩子{i}", mobile=None) for i in range(9)]
    grandma = CustomerFactory(chain=chain, home_clinic=clinic_a, name="外婆")
    household_member_add(head=mothers[0], member=grandma, relation=Relation.PARENT)
    Customer.objects.filter(pk=mothers[4].pk).update(erased_at=timezone.now())
    Customer.objects.filter(pk=mothers[7].pk).update(merged_into=mothers[8])
    links = [(child.pk, mother.pk, Relation.PARENT) for child, mother in zip(children, mothers, strict=True)]
    links.append((grandma.pk, mothers[1].pk, Relation.CHILD))  # in another household already

    # when they are linked with one locking statement, and again two ids per statement
    whole = _run(links)
    monkeypatch.setattr(customer_services, "HOUSEHOLDS_LOCK_CHUNK", 2)
    chunked = _run(links)

    # then both give the same outcomes and the same families
    assert chunked == whole
    assert whole[0] == ["joined"] * 4 + ["erased", "joined", "joined", "merged", "joined", "elsewhere"]
    assert (children[0].pk, mothers[0].pk, Relation.CHILD) in whole[1]
