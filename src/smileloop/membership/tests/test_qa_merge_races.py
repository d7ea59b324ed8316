"""A membership enrolled for a record while another desk merges it away (PostgreSQL).

The enrolment locks the person's row and reads it afresh under the lock (`_locked_enrollable`): it waits for the
merge, then refuses the merged record on `customer_id` (code `merged`), so no membership is left on the tombstone,
where no bill would ever find its discount (regression test)."""

import pytest

from smileloop.core.testing import postgresql_only
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.customers.tests.test_qa_merge_across_apps_postgres import merge_while
from smileloop.membership.errors import MembershipInputError
from smileloop.membership.models import Membership
from smileloop.membership.services import membership_enrol

pytestmark = [postgresql_only, pytest.mark.django_db(transaction=True)]


def test_a_membership_enrolled_while_the_record_is_merged_is_never_left_on_the_tombstone(
        chain, clinic_a, spouse, paid_plan, annual_tier, chain_admin):
    survivor = CustomerFactory(chain=chain, home_clinic=clinic_a, name="李强")
    outcome = merge_while(survivor, spouse, chain_admin, lambda stale: membership_enrol(
        customer=stale, plan=paid_plan))
    assert isinstance(outcome, MembershipInputError) and (outcome.code, outcome.field) == ("merged", "customer_id")
    assert not Membership.objects.filter(customer_id__in=[spouse.pk, survivor.pk]).exists()
