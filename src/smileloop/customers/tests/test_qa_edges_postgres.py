"""Two staff changing one family at once (PostgreSQL: row locks and concurrent writers)."""

import pytest

from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.errors import Conflict, ValidationFailed
from smileloop.core.testing import postgresql_only, writers_run
from smileloop.customers.enums import Relation
from smileloop.customers.models import Customer, Household, HouseholdMember
from smileloop.customers.services import (
    customer_register,
    customer_update,
    household_member_add,
    household_member_remove,
    household_relative_add,
)
from smileloop.customers.tests.factories import CustomerFactory

pytestmark = [postgresql_only, pytest.mark.django_db(transaction=True)]


def _households() -> list[list[tuple[int, str]]]:
    """Every household's members as (customer id, relation), sorted."""
    return [sorted(HouseholdMember.objects.filter(household=h).values_list("customer_id", "relation"))
            for h in Household.objects.order_by("pk")]


def test_two_relatives_taken_out_of_a_family_of_three_at_once_dissolve_it(chain, clinic_a):
    # given a head with two children
    head, first, second = (CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(3))
    household_member_add(head=head, member=first, relation=Relation.CHILD)
    household_member_add(head=head, member=second, relation=Relation.CHILD)

    # when two staff members each take one child out at the same moment
    def leave(i):
        return [household_member_remove(member=Customer.objects.get(pk=(first, second)[i].pk))]

    outcomes, errors = writers_run(leave, 2)
    # then the second saw the first's removal and dissolved the household (each saw two others and left the head
    # alone in a household of one)
    assert errors == []
    assert sorted(outcomes) == [False, True]
    assert _households() == []


def test_a_relative_linked_while_the_head_leaves_a_family_of_two_leaves_no_broken_family(chain, clinic_a):
    # given a head and his wife, and a child not yet linked
    head, wife, child = (CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(3))
    household_member_add(head=head, member=wife, relation=Relation.SPOUSE)

    # when one staff member takes the head out while another links the child from the wife's page
    def write(i):
        try:
            if i == 0:
                household_member_remove(member=Customer.objects.get(pk=head.pk))
            else:
                household_relative_add(customer=Customer.objects.get(pk=wife.pk),
                                       relative=Customer.objects.get(pk=child.pk), relation=Relation.CHILD)
        except Conflict as exc:  # the head of three (the child came first) is refused, in words
            return [exc.code]
        return [i]

    outcomes, errors = writers_run(write, 2)
    # then one waited for the other: no database error, and every family left has a head and someone else
    assert errors == []
    families = _households()
    assert families in ([], [sorted([(wife.pk, Relation.HEAD), (child.pk, Relation.CHILD)])],
                        [sorted([(head.pk, Relation.HEAD), (wife.pk, Relation.SPOUSE), (child.pk, Relation.CHILD)])])
    assert all(len(family) >= 2 and [r for _c, r in family].count(Relation.HEAD) == 1 for family in families)


def test_a_child_without_a_phone_registered_twice_at_once_with_a_parent_is_one_record(chain, clinic_a, front_desk_a):
    # given a mother at the desk
    mother = CustomerFactory(chain=chain, name="李梅", home_clinic=clinic_a)
    scope = scope_for_staff(front_desk_a)

    # when the registration of her phone-less son is sent twice at once (a double click, two desks)
    def register(_i):
        try:
            customer, _created = customer_register(
                scope=scope, data={"name": "王小宝", "gender": "U", "home_clinic": clinic_a}, relative=mother,
                relation=Relation.PARENT, actor=front_desk_a)
        except Conflict as exc:
            return [exc.code]
        return [customer.pk]

    outcomes, errors = writers_run(register, 2)
    # then the second waited for the first and was refused as a member of her family already, not a second son
    assert errors == []
    children = list(Customer.objects.filter(name="王小宝").values_list("pk", flat=True))
    assert sorted(outcomes, key=str) == sorted([children[0], "family_member_exists"], key=str)
    assert _households() == [sorted([(mother.pk, Relation.HEAD), (children[0], Relation.CHILD)])]


def test_two_records_edited_to_one_new_number_at_once_give_one_the_number_and_refuse_the_other(chain, clinic_a):
    # given two patients
    first, second = (CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(2))
    before = {c.pk: c.mobile for c in (first, second)}

    # when two staff members edit each to the same new number at the same moment
    def edit(i):
        try:
            customer_update(customer=Customer.objects.get(pk=(first, second)[i].pk), data={"mobile": "13700137000"})
        except ValidationFailed as exc:
            return [[(e.field, e.message) for e in exc.errors]]
        return [i]

    outcomes, errors = writers_run(edit, 2)
    # then one has it and the other is refused on the mobile, as when the number was taken before (not a 500)
    assert errors == []
    refused = [o for o in outcomes if isinstance(o, list)]
    assert refused == [[("mobile", "belongs to another customer; merge them instead")]]
    [winner] = [o for o in outcomes if isinstance(o, int)]
    loser = (first, second)[1 - winner]
    assert Customer.objects.get(pk=(first, second)[winner].pk).mobile == "+8613700137000"
    assert Customer.objects.get(pk=loser.pk).mobile == before[loser.pk]
