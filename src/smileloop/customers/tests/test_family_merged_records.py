"""A family write about a record merged away since the page was read (the desk's 360 page of a duplicate that a
colleague merged meanwhile) is NotFound, as the record's page is, and changes nothing: the merged record got a
household of its own, or joined one, on the tombstone, out of everyone's sight. On PostgreSQL the merge committing
while the write waits for its lock is read under the lock."""

import threading

import pytest
from django.db import connection

from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.errors import NotFound
from smileloop.core.testing import held, race
from smileloop.customers.models import Customer, Household, HouseholdMember
from smileloop.customers.services import customer_merge, household_member_add, household_relative_add
from smileloop.customers.tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def people(chain, clinic_a):
    """Two records of one mother (the duplicate to be merged away) and her son."""
    kept, duplicate, son = [CustomerFactory(chain=chain, home_clinic=clinic_a, name=name)
                            for name in ("李秀英", "李秀英", "王小明")]
    return kept, duplicate, son


def _merge(chain_admin, kept, duplicate):
    return customer_merge(scope=scope_for_staff(chain_admin), survivor=Customer.objects.get(pk=kept.pk),
                          merged=Customer.objects.get(pk=duplicate.pk), actor=chain_admin, reason="重复建档")


def _nothing_written():
    assert not Household.objects.exists() and not HouseholdMember.objects.exists()


@pytest.mark.parametrize("write", [
    lambda stale, son: household_member_add(head=stale, member=son, relation="child"),
    lambda stale, son: household_member_add(head=son, member=stale, relation="parent"),
    lambda stale, son: household_relative_add(customer=stale, relative=son, relation="child"),
    lambda stale, son: household_relative_add(customer=son, relative=stale, relation="parent"),
], ids=["head", "member", "relative-add-from", "relative-add-to"])
def test_a_family_write_naming_a_record_merged_away_since_the_page_is_not_found(people, chain_admin, write):
    kept, duplicate, son = people
    stale = Customer.objects.get(pk=duplicate.pk)  # the page, read before the merge
    _merge(chain_admin, kept, duplicate)
    with pytest.raises(NotFound):
        write(stale, son)
    _nothing_written()
    # the record kept takes the family link
    household_member_add(head=Customer.objects.get(pk=kept.pk), member=son, relation="child")
    assert Household.objects.get().head_id == kept.pk


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers: PostgreSQL only")
def test_a_family_link_waiting_for_a_merge_of_its_head_is_not_found_once_it_commits(people, chain_admin):
    kept, duplicate, son = people
    stale = Customer.objects.get(pk=duplicate.pk)
    reached = threading.Event()
    out = race(held(lambda: _merge(chain_admin, kept, duplicate), reached),
               lambda: household_member_add(head=stale, member=Customer.objects.get(pk=son.pk), relation="child"),
               reached)
    assert "first" in out and isinstance(out.get("then_error"), NotFound), out
    assert Customer.objects.get(pk=duplicate.pk).merged_into_id == kept.pk
    _nothing_written()
