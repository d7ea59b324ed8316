"""The bulk spend-based enrolment meeting a staff enrolment of one of its customers at the same moment, on PostgreSQL
(threads, each with its own connection): the job skips her and enrols the others, never aborting on the
one-active-membership index. SQLite serialises writers, so this runs on PostgreSQL only."""

import threading
import time

import pytest
from django.db import connection, transaction

from smileloop.core.testing import postgresql_only
from smileloop.membership import services
from smileloop.membership.enums import MembershipStatus
from smileloop.membership.models import Membership
from smileloop.membership.tests.conftest import patient

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]



def test_the_bulk_enrolment_skips_a_customer_staff_enrol_meanwhile_and_enrols_the_others(chain, clinic_a, wang,
                                                                                          paid_plan, annual_tier,
                                                                                          family_plan, family_tier):
    others = [patient(chain, clinic_a, f"客户{i}", spend=3_100_000) for i in range(3)]
    enrolled_by_staff = threading.Event()
    outcome: dict = {}

    def staff():
        # a desk enrols her in the paid plan; its transaction is still open when the nightly job reads its candidates
        try:
            with transaction.atomic():
                services.membership_enrol(customer=wang, plan=paid_plan)
                enrolled_by_staff.set()
                time.sleep(1.5)
            outcome["staff"] = "ok"
        finally:
            connection.close()

    def job():
        try:
            enrolled_by_staff.wait(10)
            outcome["job"] = services.spend_based_enrol_all(chain=chain)
        except Exception as exc:  # noqa: BLE001 - asserted below
            outcome["job"] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=staff), threading.Thread(target=job)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then the job waited for her row, saw her new membership and skipped her; the others are enrolled
    assert outcome == {"staff": "ok", "job": 3}
    active = dict(Membership.objects.filter(status=MembershipStatus.ACTIVE).values_list("customer_id", "plan_id"))
    assert active == {wang.id: paid_plan.id, **{c.id: family_plan.id for c in others}}
