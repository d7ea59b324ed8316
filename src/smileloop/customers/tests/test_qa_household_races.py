"""Staff changing a family while one of its members is erased (PostgreSQL): one waits for the other, never a
deadlock.

Taking someone out of a family locks every member's row in id order (household_member_remove). The erasure locks
its person first, then takes them out of their family the same way: holding member 5, it waited for member 3,
which the staff member's removal held while it waited for 5 — a deadlock, a 500 for one of the two. The family
writes now wait out the members' erasures first (customers_erasures_wait, FOR KEY SHARE, which the erasure's own
locks of the others do not wait for)."""


import pytest

from smileloop.core.testing import postgresql_only, race
from smileloop.customers.models import Customer, HouseholdMember
from smileloop.customers.services import household_member_remove, household_relative_add
from smileloop.customers.tests.factories import CustomerFactory

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]


def test_a_member_taken_out_while_another_is_erased_is_not_a_deadlock(family_of_four, director_a, erasure):
    head, spouse, son, daughter = family_of_four
    erase, reached = erasure(director_a, son)
    out = race(erase, lambda: household_member_remove(member=Customer.objects.get(pk=daughter.pk)), reached)
    assert "first_error" not in out and "then_error" not in out, out
    assert Customer.objects.get(pk=son.pk).erased_at is not None
    assert set(HouseholdMember.objects.values_list("customer_id", flat=True)) == {head.pk, spouse.pk}


def test_a_relative_linked_while_a_member_is_erased_is_not_a_deadlock(family_of_four, chain, clinic_a, director_a,
                                                                      erasure):
    head, spouse, son, daughter = family_of_four
    grandma = CustomerFactory(chain=chain, home_clinic=clinic_a, name="张桂兰")
    erase, reached = erasure(director_a, son)
    out = race(erase, lambda: household_relative_add(customer=Customer.objects.get(pk=head.pk),
                                                     relative=Customer.objects.get(pk=grandma.pk),
                                                     relation="parent"), reached)
    assert "first_error" not in out and "then_error" not in out, out
    assert Customer.objects.get(pk=son.pk).erased_at is not None
    assert not HouseholdMember.objects.filter(customer_id=son.pk).exists()
    assert HouseholdMember.objects.filter(customer_id=grandma.pk).exists()
