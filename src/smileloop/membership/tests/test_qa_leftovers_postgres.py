"""The bulk spend-based enrolment meeting a staff enrolment of one of its customers at the same moment, on PostgreSQL
(threads, each with its own connection): the job skips her and enrols the others, never aborting on the
one-active-membership index. SQLite serialises writers, so this runs on PostgreSQL only."""

import threading

import pytest

from smileloop.core.testing import held, postgresql_only, race
from smileloop.membership import services
from smileloop.membership.enums import MembershipStatus
from smileloop.membership.models import Membership
from smileloop.membership.tests.conftest import patient

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]



def test_the_bulk_enrolment_skips_a_customer_staff_enrol_meanwhile_and_enrols_the_others(chain, clinic_a, wang,
                                                                                          paid_plan, annual_tier,
                                                                                          family_plan, family_tier):
    others = [patient(chain, clinic_a, f"客户{i}", spend=3_100_000) for i in range(3)]
    reached = threading.Event()
    # a desk enrols her in the paid plan; its transaction is still open when the nightly job reads its candidates
    outcome = race(held(lambda: services.membership_enrol(customer=wang, plan=paid_plan), reached, hold=1.5),
                   lambda: services.spend_based_enrol_all(chain=chain), reached, atomic=False)
    # then the job waited for her row, saw her new membership and skipped her; the others are enrolled
    assert set(outcome) == {"first", "then"} and outcome["then"] == 3, outcome
    active = dict(Membership.objects.filter(status=MembershipStatus.ACTIVE).values_list("customer_id", "plan_id"))
    assert active == {wang.id: paid_plan.id, **{c.id: family_plan.id for c in others}}
