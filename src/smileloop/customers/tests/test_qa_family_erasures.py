"""Two members of one family erased at the same moment, or one erased while two of its records are merged
(PostgreSQL): the second waits for the first, never a deadlock.

An erasure locks its person's row first and then takes them out of their family, which waits out the erasures of the
others (customers_erasures_wait) and locks every member. Two erasures in one family each held their own person and
waited for the other's: a deadlock, an error at one of the two desks. A merge of two members locked the lower one and
waited for the higher one the erasure held, which then waited for the lower one. Erasures and merges now first take
a lock per household their people are in (customers.services.households_lock, before any row of a person): one
waits for the other before it holds anyone."""


import pytest

from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.errors import Conflict
from smileloop.core.testing import postgresql_only, race
from smileloop.customers.models import Customer, Household, HouseholdMember
from smileloop.customers.services import ERASED_REFUSED, customer_merge, household_member_add
from smileloop.customers.tests.factories import CustomerFactory

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]


def _no_erased_in_a_family() -> None:
    erased = set(Customer.objects.filter(erased_at__isnull=False).values_list("pk", flat=True))
    assert not HouseholdMember.objects.filter(customer_id__in=erased).exists()
    assert not Household.objects.filter(head_id__in=erased).exists()
    for household in Household.objects.all():
        assert household.members.count() > 1, "a household of one is none"


@pytest.mark.parametrize("order", ["son_first", "daughter_first"])
def test_two_members_of_one_family_erased_at_once_are_both_erased(family_of_four, director_a, erasure, order):
    head, spouse, son, daughter = family_of_four
    first, then = (son, daughter) if order == "son_first" else (daughter, son)
    erase, reached = erasure(director_a, first)
    out = race(erase, erasure(director_a, then, pause=False)[0], reached)
    assert out.get("first") is True and out.get("then") is True, out
    assert set(Customer.objects.filter(erased_at__isnull=False).values_list("pk", flat=True)) == {son.pk, daughter.pk}
    assert set(HouseholdMember.objects.values_list("customer_id", flat=True)) == {head.pk, spouse.pk}
    _no_erased_in_a_family()


def test_the_head_and_a_child_erased_at_once_are_both_erased(family_of_four, director_a, erasure):
    """The head's erasure dissolves the family the child's erasure was waiting to leave (holding the child): that one
    then found no household any more and failed ("is in no household"). It now waits before it reads the family."""
    head, spouse, son, daughter = family_of_four
    erase, reached = erasure(director_a, head)
    out = race(erase, erasure(director_a, son, pause=False)[0], reached)
    assert out.get("first") is True and out.get("then") is True, out
    assert set(Customer.objects.filter(erased_at__isnull=False).values_list("pk", flat=True)) == {head.pk, son.pk}
    assert not HouseholdMember.objects.exists() and not Household.objects.exists()


def test_a_member_erased_while_their_duplicate_is_merged_into_them_is_not_a_deadlock(family_of_four, chain, clinic_a,
                                                                                     director_a, erasure):
    """The son's record imported twice, both linked to the family: staff merge the duplicate into the son while the
    duplicate is erased. The merge waits, then is refused (an erased record is never merged)."""
    head, spouse, son, daughter = family_of_four
    duplicate = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王小明")
    household_member_add(head=head, member=duplicate, relation="child")
    erase, reached = erasure(director_a, duplicate)
    out = race(erase, lambda: customer_merge(scope=scope_for_staff(director_a), survivor=Customer.objects.get(
        pk=son.pk), merged=Customer.objects.get(pk=duplicate.pk), actor=director_a), reached)
    assert out.get("first") is True, out
    error = out.get("then_error")
    assert isinstance(error, Conflict) and error.message == ERASED_REFUSED, out
    assert Customer.objects.get(pk=duplicate.pk).erased_at is not None
    assert Customer.objects.get(pk=duplicate.pk).merged_into_id is None
    assert set(HouseholdMember.objects.values_list("customer_id", flat=True)) == {head.pk, spouse.pk, son.pk,
                                                                                 daughter.pk}
    _no_erased_in_a_family()
