"""Two staff writing one patient's membership or family card at once, on PostgreSQL (threads behind a barrier, each
with its own connection): one membership comes out, the other write is refused with its reason (never a 500 from
the database's unique indexes). SQLite serialises writers, so these run on PostgreSQL only."""

import datetime as dt
import json
import threading
import time

import pytest
from django.db import transaction
from django.test import Client

from smileloop.clinics.services import token_create
from smileloop.core.errors import Conflict
from smileloop.core.testing import postgresql_only, writers_run
from smileloop.membership import services
from smileloop.membership.enums import EventKind, MembershipStatus
from smileloop.membership.models import FamilyBinding, Membership, MembershipEvent
from smileloop.membership.tests.conftest import patient

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]
BASE = "/api/membership/customers"



def _post(url, body, *, token, key):
    return Client().post(url, data=json.dumps(body), content_type="application/json",
                         headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})


def test_two_staff_enrolling_one_patient_at_once_make_one_membership(front_desk_a, director_a, wang, paid_plan,
                                                                      annual_tier):
    tokens = [token_create(username=front_desk_a.user.username), token_create(username=director_a.user.username)]

    # when two desks enrol her at the same moment, each with its own key
    def writer(i):
        return [_post(f"{BASE}/{wang.id}/enrol", {"plan_id": paid_plan.id}, token=tokens[i], key=f"enrol-{i}")]

    results, errors = writers_run(writer, 2)
    # then one enrols her, the other is told she is a member already; one membership, one event
    assert errors == []
    assert sorted(r.status_code for r in results) == [201, 409]
    assert [r.json()["code"] for r in results if r.status_code == 409] == ["membership_exists"]
    assert Membership.objects.filter(customer=wang).count() == 1
    assert MembershipEvent.objects.filter(kind=EventKind.ENROLLED).count() == 1


def test_renewing_an_expired_membership_while_another_desk_enrols_her_leaves_one_active(wang, paid_plan, annual_tier,
                                                                                         family_plan, family_tier):
    # given her paid membership expired last year
    old = services.membership_enrol(customer=wang, plan=paid_plan,
                                    as_of=dt.datetime(2024, 3, 1, 10, tzinfo=dt.UTC))
    services.memberships_expire(as_of=dt.datetime(2025, 3, 2, tzinfo=dt.UTC))

    # when one desk renews the old card and another enrols her in the family plan at once
    def writer(i):
        try:
            if i == 0:
                services.membership_renew(membership=old)
            else:
                services.membership_enrol(customer=wang, plan=family_plan)
        except Conflict as exc:
            return [exc.code]
        return ["ok"]

    results, errors = writers_run(writer, 2)
    # then whichever came first wins and the other is refused: she holds exactly one active membership
    assert errors == []
    assert sorted(results) == ["membership_exists", "ok"]
    assert Membership.objects.filter(customer=wang, status=MembershipStatus.ACTIVE).count() == 1


def test_two_renewals_of_one_card_at_once_extend_it_twice_in_turn(wang, paid_plan, annual_tier):
    membership = services.membership_enrol(customer=wang, plan=paid_plan)
    first_expiry = membership.expires_at

    # when two desks each renew (two payments, two keys) at once
    def writer(i):
        return [services.membership_renew(membership=membership, key=f"desk-{i}").expires_at]

    results, errors = writers_run(writer, 2)
    # then they were serialised: one year, then another, never both from the same expiry
    assert errors == []
    membership.refresh_from_db()
    assert len(set(results)) == 2 and membership.expires_at == max(results)
    assert membership.expires_at.year == first_expiry.year + 2
    assert membership.fee_fen == 3 * 89_900
    assert Membership.objects.filter(customer=wang).count() == 1


def test_one_relative_bound_to_two_cards_at_once_is_bound_to_one_and_refused_by_the_other(chain, clinic_a, wang,
                                                                                          spouse, family_plan,
                                                                                          family_tier, paid_plan,
                                                                                          annual_tier):
    # given two holders of cards of two plans (their tiers' rows are not a lock the two binds share)
    other = patient(chain, clinic_a, "张伟", birthday=dt.date(1975, 4, 4))
    services.membership_enrol(customer=wang, plan=family_plan)
    services.membership_enrol(customer=other, plan=paid_plan)

    # when two desks bind the same adult to each card at the same moment: the second desk checks whether he is bound
    # while the first desk's transaction, which bound him, is still open (its answer not sent yet)
    bound = threading.Event()

    def writer(i):
        try:
            with transaction.atomic():
                if i == 1:
                    bound.wait(10)
                services.family_bind(holder=(wang, other)[i], member=spouse, relation="spouse",
                                     consent_source="paper", consent_evidence=f"F-{i}")
                if i == 0:
                    bound.set()
                    time.sleep(1)
        except Conflict as exc:
            return [(i, exc.code)]
        return [(i, "ok")]

    results, errors = writers_run(writer, 2)
    # then one binds him and the other is told he is bound already (not the unique index's IntegrityError)
    assert errors == []
    assert sorted(results) == [(0, "ok"), (1, "already_bound")]
    assert FamilyBinding.objects.filter(member=spouse, unbound_at__isnull=True).count() == 1
