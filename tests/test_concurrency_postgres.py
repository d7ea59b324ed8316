"""Concurrent writes of one person on PostgreSQL: upserts end as one person, merges and family links wait for each
other instead of deadlocking or failing, identities answer as a sequence would (run only on PostgreSQL)."""

import pytest

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.core.errors import Conflict, NotFound
from smileloop.core.testing import postgresql_only, writers_run
from smileloop.customers.models import Customer, Household, HouseholdMember, Identity
from smileloop.customers.services import customer_merge, customer_upsert, household_relative_add, identity_add

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]


def test_eight_concurrent_upserts_of_one_phone_make_one_person(chain):
    # given eight writers released at once
    def writer(i):
        customer, created = customer_upsert(chain=chain.id, data={"name": "并发", "mobile": "13800138000",
                                                                  "community": f"小区{i}"})
        return [(customer.id, created)]

    # when
    results, errors = writers_run(writer, 8)
    # then
    assert errors == []
    assert Customer.objects.count() == 1
    assert {cid for cid, _ in results} == {Customer.objects.get().id}
    assert sum(created for _, created in results) == 1


def test_two_merges_of_one_pair_in_opposite_directions_do_not_deadlock(chain):
    # two staff members (or a double submit after Back) merge one pair at once, each keeping a different record
    scope = scope_for_staff(StaffFactory(chain=chain, role=Role.CHAIN_ADMIN, user__username="merger"))
    pairs = []
    for n in range(4):
        first, _ = customer_upsert(chain=chain.id, data={"name": "重复", "mobile": f"1380013800{n}"})
        second, _ = customer_upsert(chain=chain.id, data={"name": "重复", "mobile": f"1390013900{n}"})
        pairs.append((first, second))

    def writer(i):
        first, second = pairs[i // 2]
        survivor, merged = (first, second) if i % 2 == 0 else (second, first)
        try:
            customer_merge(scope=scope, survivor=survivor, merged=merged, reason="同一人")
        except NotFound:  # the other merge of the pair went first: this record is gone
            return ["refused"]
        return ["merged"]

    # when
    results, errors = writers_run(writer, 8)
    # then each pair is merged once, one way, and nobody met a deadlock
    assert errors == []
    assert sorted(results) == ["merged"] * 4 + ["refused"] * 4
    assert Customer.objects.filter(merged_into__isnull=True).count() == 4


def test_concurrent_attaches_of_one_identity_answer_as_one_after_another_would(chain):
    # a mini-program and the front desk attach the same WeChat identity at once, to one person and to another
    person, _ = customer_upsert(chain=chain.id, data={"name": "本人", "mobile": "13800138000"})
    other, _ = customer_upsert(chain=chain.id, data={"name": "别人", "mobile": "13900139000"})

    def writer(i):
        try:
            identity = identity_add(customer=person, kind="wechat_openid", external_id="o-same")
        except Conflict as exc:
            return [exc.code]
        return [identity.customer_id]

    # when six attach it to the same person
    results, errors = writers_run(writer, 6)
    # then every one is answered with the identity, as a repeated attach is (idempotent), never a "retry"
    assert errors == []
    assert results == [person.id] * 6
    assert Identity.objects.filter(kind="wechat_openid").count() == 1

    def either(i):
        try:
            identity_add(customer=person if i % 2 else other, kind="wechat_openid", external_id="o-new")
        except Conflict as exc:
            return [exc.code]
        return ["attached"]

    # when three attach a new one to one person and three to the other
    results, errors = writers_run(either, 6)
    # then one person has it; the others are refused: it belongs to another, or (caught mid-write) retry
    assert errors == []
    assert results.count("attached") == 3
    assert set(results) - {"attached"} <= {"identity_conflict", "race"}
    assert Identity.objects.filter(external_id="o-new").count() == 1


def test_concurrent_family_links_to_one_person_make_one_household(chain):
    # the front desk and the API link relatives to one mother at once; she heads no household yet
    mother, _ = customer_upsert(chain=chain.id, data={"name": "妈妈", "mobile": "13800138000"})
    children = [customer_upsert(chain=chain.id, data={"name": f"孩子{n}", "mobile": f"1390013900{n}"})[0]
                for n in range(6)]
    father, _ = customer_upsert(chain=chain.id, data={"name": "爸爸", "mobile": "13700137000"})

    def writer(i):
        household_relative_add(customer=mother, relative=children[i], relation="child")
        return ["joined"]

    # when six children are linked at once
    results, errors = writers_run(writer, 6)
    # then they all joined her one household
    assert errors == []
    assert Household.objects.count() == 1
    assert HouseholdMember.objects.filter(household=Household.objects.get()).count() == 7

    def same(i):
        try:
            household_relative_add(customer=mother, relative=father, relation="spouse")
        except Conflict as exc:
            return [exc.code]
        return ["joined"]

    # when one link is sent six times at once (a retry with a new key, a double submit)
    results, errors = writers_run(same, 6)
    # then it is made once and the others are told he is already in this household
    assert errors == []
    assert sorted(results) == ["household_same"] * 5 + ["joined"]


def test_concurrent_upserts_of_one_new_identity_all_answer_with_its_one_person(chain):
    # a mini-program login fires the same WeChat identity at once, some requests with the phone and some without
    for n in range(5):
        external_id = f"o-login-{n}"

        def writer(i, external_id=external_id, n=n):
            data = {"name": "登录", **({"mobile": f"1380013800{n}"} if i % 2 else {})}
            try:
                customer, _ = customer_upsert(chain=chain.id, data=data,
                                              identities=[{"kind": "wechat_openid", "external_id": external_id}])
            except Conflict as exc:
                return [exc.code]
            return [customer.id]

        # when eight requests arrive together
        results, errors = writers_run(writer, 8)
        # then every request answers with the one person, as they would one after another: none is told the
        # identity is another person's (stored under the Idempotency-Key, a retry would replay that for ever),
        # and none has to retry (each waits for the identity's first writer)
        assert errors == []
        owner = Identity.objects.get(external_id=external_id).customer_id
        assert results == [owner] * 8, results
