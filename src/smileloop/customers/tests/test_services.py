from unittest import mock

import pytest
from django.db import connection

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from smileloop.core.models import AuditEvent
from smileloop.core.sql import statistics_refresh
from smileloop.customers import services
from smileloop.customers.enums import Stage
from smileloop.customers.models import (
    Customer,
    CustomerMerge,
    CustomerSearchKey,
    HouseholdMember,
    Identity,
    Interaction,
)
from smileloop.customers.selectors import customer_get, customer_list, customer_page, merge_candidates_list
from smileloop.customers.services import (
    STAGE_NOT_SETTABLE,
    customer_mark_lost,
    customer_merge,
    customer_stage_advance,
    customer_update,
    customer_upsert,
    household_member_add,
    identity_add,
    phone_reveal,
)
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.visits.services import order_record


def test_upsert_by_differently_written_phone_never_makes_a_second_person(chain, clinic_a):
    # given
    first, created = customer_upsert(chain=chain, data={"name": "张三", "mobile": "138 0013 8000",
                                                        "home_clinic": clinic_a.code})
    # when
    again, created_again = customer_upsert(chain=chain, data={"name": "张三", "mobile": "+86-138-0013-8000",
                                                              "community": "静安花园"})
    # then
    assert created and not created_again
    assert again.id == first.id
    assert Customer.objects.count() == 1
    again.refresh_from_db()
    assert again.mobile == "+8613800138000" and again.mobile_tail == "8000"
    assert again.community == "静安花园"


def test_upsert_matches_by_identity_when_no_phone_given(chain):
    customer, _ = customer_upsert(chain=chain, data={"name": "李四"},
                                  identities=[{"kind": "wechat_openid", "external_id": "oABC"}])
    same, created = customer_upsert(chain=chain, data={"name": "李四", "mobile": "13900139000"},
                                    identities=[{"kind": "wechat_openid", "external_id": "oABC"}])
    assert not created and same.id == customer.id
    assert Customer.objects.get().mobile == "+8613900139000"


def test_a_new_person_gets_the_search_keys_and_the_timeline_row_with_it(chain, clinic_a, front_desk_a):
    # when
    customer, created = customer_upsert(chain=chain, data={"name": "张三", "mobile": "13800138000",
                                                           "home_clinic": clinic_a}, actor=front_desk_a)
    # then
    assert created
    assert set(CustomerSearchKey.objects.filter(customer=customer).values_list("kind", "value", "home_clinic_id",
                                                                               "chain_id")) == {
        ("i", "zs", clinic_a.id, chain.id), ("p", "zhangsan", clinic_a.id, chain.id)}
    [event] = Interaction.objects.filter(customer=customer)
    assert (event.kind, event.text, event.author_id, event.clinic_id, event.data) == (
        "system", "created (api)", front_desk_a.id, None, {})
    customer.refresh_from_db()
    assert customer.first_touch_staff_id == front_desk_a.id and customer.created_at is not None


def test_upsert_matches_a_person_whose_phone_identity_is_the_mobile(chain):
    # given a person known by a phone identity only (no mobile on the record)
    person, _ = customer_upsert(chain=chain, data={"name": "王五"},
                                identities=[{"kind": "phone", "external_id": "13700137000"}])
    # when
    same, created = customer_upsert(chain=chain, data={"name": "王五", "mobile": "137 0013 7000"})
    # then
    assert not created and same.id == person.id
    assert Customer.objects.count() == 1


def test_upsert_that_meets_a_concurrent_insert_of_the_phone_updates_that_person(chain):
    # given: the person was created after this request's match condition ran (simulated: the condition
    # finds nothing), so the INSERT meets the unique phone index instead
    first, _ = customer_upsert(chain=chain, data={"name": "张三", "mobile": "13800138000"})
    # when
    with mock.patch.object(services, "_match_sql", return_value=None):
        again, created = customer_upsert(chain=chain, data={"name": "张三", "mobile": "13800138000",
                                                            "community": "静安花园"})
    # then: a match, never a second person, and no second timeline row or search keys
    assert not created and again.id == first.id
    assert Customer.objects.count() == 1
    assert Customer.objects.get().community == "静安花园"
    assert Interaction.objects.count() == 1
    assert CustomerSearchKey.objects.filter(customer=first).count() == 2


def test_upsert_whose_match_vanishes_twice_is_a_transient_conflict_and_writes_nothing(chain):
    # given a person, whom the locked look-up then cannot find (merged away concurrently, simulated)
    customer_upsert(chain=chain, data={"name": "张三", "mobile": "13800138000"})
    # when / then
    with mock.patch.object(services, "_locked_match", return_value=None) as locked, \
            pytest.raises(Conflict) as err:
        customer_upsert(chain=chain, data={"name": "张三丰", "mobile": "13800138000"})
    assert err.value.code == "race"
    assert locked.call_count == 2
    assert list(Customer.objects.values_list("name", flat=True)) == ["张三"]


def test_upsert_refuses_when_phone_and_identity_name_two_people_and_changes_nothing(chain):
    a, _ = customer_upsert(chain=chain, data={"name": "甲", "mobile": "13800000001"})
    b, _ = customer_upsert(chain=chain, data={"name": "乙"}, identities=[{"kind": "douyin_openid", "external_id": "d1"}])
    with pytest.raises(Conflict):
        customer_upsert(chain=chain, data={"name": "甲改", "mobile": "13800000001"},
                        identities=[{"kind": "douyin_openid", "external_id": "d1"}])
    assert Customer.objects.get(pk=a.pk).name == "甲"
    assert Identity.objects.filter(customer=a).count() == 0


def test_upsert_lists_every_bad_field_and_writes_nothing(chain):
    with pytest.raises(ValidationFailed) as err:
        customer_upsert(chain=chain, data={"name": "", "mobile": "12345", "birthday": "2990-01-01", "gender": "x"})
    fields = {e.field for e in err.value.errors}
    assert fields == {"name", "mobile", "birthday", "gender"}
    assert Customer.objects.count() == 0


def test_identity_of_another_person_is_a_conflict(chain):
    a, _ = customer_upsert(chain=chain, data={"name": "甲"}, identities=[{"kind": "pms", "external_id": "P1"}])
    b, _ = customer_upsert(chain=chain, data={"name": "乙", "mobile": "13800000002"})
    with pytest.raises(Conflict):
        identity_add(customer=b, kind="pms", external_id="P1")
    assert identity_add(customer=a, kind="pms", external_id="P1").customer_id == a.id


def test_search_by_pinyin_initials_full_pinyin_and_phone_tail(chain, clinic_a, admin_scope):
    zs, _ = customer_upsert(chain=chain, data={"name": "张三", "mobile": "13800138000", "home_clinic": clinic_a})
    zeng, _ = customer_upsert(chain=chain, data={"name": "曾小明", "mobile": "13900139001", "home_clinic": clinic_a})
    shan, _ = customer_upsert(chain=chain, data={"name": "单田芳", "mobile": "13700137002", "home_clinic": clinic_a})
    ids = lambda q: {c.id for c in customer_list(admin_scope, q=q)}  # noqa: E731
    assert ids("zs") == {zs.id}
    assert ids("zhangsan") == {zs.id}
    assert ids("zxm") == ids("cxm") == {zeng.id}
    assert ids("stf") == ids("dtf") == {shan.id}
    assert ids("8000") == {zs.id}
    assert ids("13900139001") == {zeng.id}
    assert ids("张") == {zs.id}


def test_a_search_for_a_surname_finds_that_surname_not_a_rare_reading_of_another(chain, clinic_a, admin_scope):
    yu, _ = customer_upsert(chain=chain, data={"name": "于洋", "home_clinic": clinic_a})
    customer_upsert(chain=chain, data={"name": "王洋", "home_clinic": clinic_a})
    shan, _ = customer_upsert(chain=chain, data={"name": "单洋", "home_clinic": clinic_a})
    customer_upsert(chain=chain, data={"name": "邓洋", "home_clinic": clinic_a})
    ids = lambda q: {c.id for c in customer_list(admin_scope, q=q)}  # noqa: E731
    assert ids("yuyang") == ids("yy") == {yu.id}
    assert ids("shanyang") == {shan.id}


def test_the_migration_rebuilds_the_keys_of_surnames_read_too_many_ways(chain, clinic_a):
    import importlib

    from django.apps import apps

    from smileloop.customers.models import CustomerSearchKey
    wang, _ = customer_upsert(chain=chain, data={"name": "王洋", "home_clinic": clinic_a})
    zhang, _ = customer_upsert(chain=chain, data={"name": "张三", "home_clinic": clinic_a})
    # given the keys as they were written before: 王 read wang and yu
    CustomerSearchKey.objects.create(customer=wang, chain_id=chain.id, home_clinic_id=clinic_a.id, kind="i",
                                     value="yy")
    untouched = set(CustomerSearchKey.objects.filter(customer=zhang).values_list("pk", flat=True))
    # when
    importlib.import_module("smileloop.customers.migrations.0018_surname_search_keys")._rebuild(apps, None)
    # then
    assert set(CustomerSearchKey.objects.filter(customer=wang).values_list("kind", "value")) == {
        ("i", "wy"), ("p", "wangyang")}
    assert set(CustomerSearchKey.objects.filter(customer=zhang).values_list("pk", flat=True)) == untouched


def test_search_by_a_full_number_finds_the_person_a_second_number_belongs_to(chain, clinic_a, clinic_b, admin_scope,
                                                                            scope_a):
    # given a patient with a landline on file as a phone identity, and one of another clinic with another
    zs, _ = customer_upsert(chain=chain, data={"name": "张三", "mobile": "13800138000", "home_clinic": clinic_a})
    identity_add(customer=zs, kind="phone", external_id="+862161234567")
    other, _ = customer_upsert(chain=chain, data={"name": "李四", "mobile": "13900139000", "home_clinic": clinic_b})
    identity_add(customer=other, kind="phone", external_id="+862161230000")
    ids = lambda scope, q: {c.id for c in customer_list(scope, q=q)}  # noqa: E731
    # then the landline, typed as staff type it, finds its person; the mobile still finds its own
    assert ids(admin_scope, "021-6123 4567") == ids(admin_scope, "02161234567") == {zs.id}
    assert ids(admin_scope, "13800138000") == {zs.id}
    # and a second number of another clinic's patient stays out of a clinic's search
    assert ids(scope_a, "02161230000") == set() and ids(admin_scope, "02161230000") == {other.id}


def test_clinic_staff_get_not_found_for_other_clinics_patients(chain, clinic_a, clinic_b, scope_a, admin_scope):
    mine, _ = customer_upsert(chain=chain, data={"name": "甲", "home_clinic": clinic_a})
    theirs, _ = customer_upsert(chain=chain, data={"name": "乙", "home_clinic": clinic_b})
    assert customer_get(scope_a, mine.id).id == mine.id
    with pytest.raises(NotFound):
        customer_get(scope_a, theirs.id)
    assert {c.id for c in customer_list(scope_a)} == {mine.id}
    assert customer_get(admin_scope, theirs.id).id == theirs.id


def test_merge_moves_everything_and_records_audit(chain, clinic_a, director_a, director_scope, catalogue):
    # given two records of one person, each with history
    a, _ = customer_upsert(chain=chain, data={"name": "王五", "mobile": "13800000011", "home_clinic": clinic_a})
    b, _ = customer_upsert(chain=chain, data={"name": "王五", "mobile": "13800000022", "home_clinic": clinic_a,
                                               "birthday": "1980-02-03"},
                           identities=[{"kind": "wechat_openid", "external_id": "oW5"}])
    kid, _ = customer_upsert(chain=chain, data={"name": "王小五", "home_clinic": clinic_a})
    household_member_add(head=b, member=kid, relation="child")
    order_record(customer=b, clinic=clinic_a, ordered_at=__import__("django.utils.timezone").utils.timezone.now(),
                 lines=[{"item_code": "CL01"}], payments=[{"method": "cash", "amount_fen": 30000}])
    # when
    record = customer_merge(scope=director_scope, survivor=a, merged=b, actor=director_a, reason="same person")
    # then
    a.refresh_from_db()
    b.refresh_from_db()
    assert b.merged_into_id == a.id and b.mobile is None
    assert a.birthday.isoformat() == "1980-02-03"
    assert a.orders.count() == 1 and a.lifetime_spend_fen == 30000
    assert Identity.objects.get(kind="wechat_openid").customer_id == a.id
    assert Identity.objects.get(kind="phone").external_id == "+8613800000022"
    assert a.headed_households.count() == 1
    assert a.household_membership.relation == "head"
    assert CustomerMerge.objects.get() == record
    assert AuditEvent.objects.filter(action="customer.merge", object_id=str(a.id)).count() == 1
    assert Interaction.objects.filter(customer=a, kind="merge").exists()
    # the old phone still finds the survivor
    again, created = customer_upsert(chain=chain, data={"name": "王五", "mobile": "13800000022"})
    assert not created and again.id == a.id


def test_merge_is_refused_without_permission_and_changes_nothing(chain, clinic_a, scope_a):
    a, _ = customer_upsert(chain=chain, data={"name": "甲", "home_clinic": clinic_a})
    b, _ = customer_upsert(chain=chain, data={"name": "甲", "home_clinic": clinic_a})
    with pytest.raises(PermissionDenied):
        customer_merge(scope=scope_a, survivor=a, merged=b)
    assert Customer.objects.filter(merged_into__isnull=False).count() == 0


def test_merge_candidates_find_same_name_and_birthday(chain, clinic_a, admin_scope):
    a, _ = customer_upsert(chain=chain, data={"name": "赵六", "birthday": "1990-01-05", "home_clinic": clinic_a})
    b, _ = customer_upsert(chain=chain, data={"name": "赵六", "birthday": "1990/1/5", "mobile": "13800000033"})
    customer_upsert(chain=chain, data={"name": "赵六", "birthday": "1991-01-05"})
    groups = merge_candidates_list(admin_scope)
    assert [(g.reason, [c.id for c in g.customers]) for g in groups] == [("same_name_birthday", [a.id, b.id])]


def test_merge_candidates_find_every_kind_of_likely_duplicate_in_the_scope_only(chain, clinic_a, clinic_b, admin_scope,
                                                                                  scope_a):
    import datetime as dt

    from smileloop.customers.tests.factories import IdentityFactory

    bd = dt.date(1990, 1, 5)
    # same name and birthday (clinic A), and a merged record of the same person that no longer counts
    a1 = CustomerFactory(chain=chain, home_clinic=clinic_a, name="张三", birthday=bd)
    a2 = CustomerFactory(chain=chain, home_clinic=clinic_a, name="张三", birthday=bd)
    CustomerFactory(chain=chain, home_clinic=clinic_a, name="张三", birthday=bd, merged_into=a1)
    # same name and phone tail (clinic A)
    t1 = CustomerFactory(chain=chain, home_clinic=clinic_a, name="李四", mobile="+8613800005678")
    t2 = CustomerFactory(chain=chain, home_clinic=clinic_a, name="李四", mobile="+8613900005678")
    # a phone identity of one person that is another person's mobile (clinic A)
    owner = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王五", mobile="+8613700001111")
    holder = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王小五", mobile=None, mobile_tail="")
    IdentityFactory(customer=holder, kind="phone", external_id="+8613700001111")
    # same name and birthday in clinic B
    b1 = CustomerFactory(chain=chain, home_clinic=clinic_b, name="赵六", birthday=bd)
    b2 = CustomerFactory(chain=chain, home_clinic=clinic_b, name="赵六", birthday=bd)

    def found(scope):
        return {(g.reason, tuple(c.id for c in g.customers)) for g in merge_candidates_list(scope)}

    # then the chain sees every group, and clinic A's staff only the groups of clinic A
    clinic_a_groups = {("same_name_birthday", (a1.id, a2.id)), ("same_name_phone_tail", (t1.id, t2.id)),
                       ("same_identity", (owner.id, holder.id))}
    assert found(admin_scope) == clinic_a_groups | {("same_name_birthday", (b1.id, b2.id))}
    assert found(scope_a) == clinic_a_groups


def test_merge_candidates_come_strongest_evidence_first_and_one_kind_can_be_listed_alone(chain, clinic_a, admin_scope):
    import datetime as dt

    from smileloop.customers.tests.factories import IdentityFactory

    # given two same-name-and-birthday pairs, one same-name-and-tail pair and one phone held as another's identity
    bd = dt.date(1990, 1, 5)
    births = [tuple(CustomerFactory(chain=chain, home_clinic=clinic_a, name=name, birthday=bd).id for _ in range(2))
              for name in ("甲一", "乙二")]
    tails = tuple(CustomerFactory(chain=chain, home_clinic=clinic_a, name="李四", mobile=mobile).id
                  for mobile in ("+8613800005678", "+8613900005678"))
    owner = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王五", mobile="+8613700001111")
    holder = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王小五", mobile=None, mobile_tail="")
    IdentityFactory(customer=holder, kind="phone", external_id=owner.mobile)

    def found(**kwargs):
        return [(g.reason, tuple(c.id for c in g.customers)) for g in merge_candidates_list(admin_scope, **kwargs)]

    # then the near-certain identity match comes first and the weakest evidence last, so a chain with thousands of
    # same-name-and-birthday pairs still sees the others; the limit cuts the weakest
    everything = found()
    assert everything[:2] == [("same_identity", (owner.id, holder.id)), ("same_name_phone_tail", tails)]
    assert sorted(everything[2:]) == [("same_name_birthday", b) for b in births]  # in name order (the collation's)
    assert found(limit=3) == everything[:3]
    # and each kind can be listed alone
    assert found(reason="same_name_birthday") == everything[2:]
    assert found(reason="same_identity") == [("same_identity", (owner.id, holder.id))]
    with pytest.raises(ValueError):
        merge_candidates_list(admin_scope, reason="same_shoe_size")


def test_merge_candidates_find_two_of_one_name_in_one_family_whatever_their_birthdays(chain, clinic_a, clinic_b,
                                                                                       admin_scope, scope_a):
    import datetime as dt

    from smileloop.customers.services import household_member_add

    # given a mother whose son was entered twice without a phone (once with a birthday), a namesake of the son in
    # another family, and a family of clinic A with a namesake pair of which one is clinic B's
    mother = CustomerFactory(chain=chain, home_clinic=clinic_a, name="周敏", mobile="+8613800138000")
    son = CustomerFactory(chain=chain, home_clinic=clinic_a, name="李小宝", mobile=None, birthday=None)
    again = CustomerFactory(chain=chain, home_clinic=clinic_a, name="李小宝", mobile=None,
                            birthday=dt.date(2019, 5, 1))
    daughter = CustomerFactory(chain=chain, home_clinic=clinic_a, name="李小贝", mobile=None)
    for member in (son, again, daughter):
        household_member_add(head=mother, member=member, relation="child")
    household_member_add(head=CustomerFactory(chain=chain, home_clinic=clinic_a, name="吴芳"),
                         member=CustomerFactory(chain=chain, home_clinic=clinic_a, name="李小宝"), relation="child")
    father = CustomerFactory(chain=chain, home_clinic=clinic_a, name="郑强")
    girl = CustomerFactory(chain=chain, home_clinic=clinic_a, name="郑好", mobile=None)
    girl_b = CustomerFactory(chain=chain, home_clinic=clinic_b, name="郑好", mobile=None)
    for member in (girl, girl_b):
        household_member_add(head=father, member=member, relation="child")
    # and namesake sisters with two birthdays (never the same person), and a merged record, no longer a candidate
    aunt = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王丽")
    for year in (2015, 2018):
        household_member_add(head=aunt, member=CustomerFactory(chain=chain, home_clinic=clinic_a, name="王佳",
                                                               birthday=dt.date(year, 1, 1)), relation="child")
    gone = CustomerFactory(chain=chain, home_clinic=clinic_a, name="李小贝", mobile=None, merged_into=daughter)
    # (a place kept from before a merge dropped it: family writes refuse a merged record now)
    HouseholdMember.objects.create(household=HouseholdMember.objects.get(customer=mother).household, customer=gone,
                                   relation="child")

    def found(scope, **kwargs):
        return [(g.reason, tuple(c.id for c in g.customers)) for g in merge_candidates_list(scope, **kwargs)]

    # then the chain sees both families' pairs, clinic A only the pair it can see whole
    assert found(admin_scope) == [("same_name_family", (son.id, again.id)), ("same_name_family", (girl.id, girl_b.id))]
    assert found(scope_a) == [("same_name_family", (son.id, again.id))]
    assert found(scope_a, reason="same_name_family") == found(scope_a)


def test_a_consultants_duplicates_include_the_people_they_own_in_other_clinics(chain, clinic_a, clinic_b):
    import datetime as dt

    from smileloop.clinics.enums import Role
    from smileloop.clinics.selectors import scope_for_staff
    from smileloop.clinics.tests.factories import StaffFactory

    consultant = StaffFactory(chain=chain, role=Role.CONSULTANT, clinics=[clinic_a])
    bd = dt.date(1988, 8, 8)
    # given a patient of clinic A and the same person registered at clinic B, owned by the consultant
    here = CustomerFactory(chain=chain, home_clinic=clinic_a, name="周七", birthday=bd)
    owned = CustomerFactory(chain=chain, home_clinic=clinic_b, name="周七", birthday=bd, consultant=consultant)
    # and a pair at clinic B that nobody in clinic A owns, and one at clinic A whose twin has no clinic
    CustomerFactory.create_batch(2, chain=chain, home_clinic=clinic_b, name="吴八", birthday=bd)
    clinic_twin = CustomerFactory(chain=chain, home_clinic=clinic_a, name="郑九", birthday=bd)
    unplaced_twin = CustomerFactory(chain=chain, home_clinic=None, name="郑九", birthday=bd, consultant=consultant)
    groups = merge_candidates_list(scope_for_staff(consultant))
    # then the consultant sees the pairs they can see whole, and nothing of clinic B's own pair
    assert {g.customers[0].name: [c.id for c in g.customers] for g in groups} == {
        "周七": [here.id, owned.id], "郑九": [clinic_twin.id, unplaced_twin.id]}


def test_merge_candidates_load_every_group_in_a_fixed_number_of_queries(chain, clinic_a, admin_scope,
                                                                        django_assert_max_num_queries):
    import datetime as dt

    # given 30 same-name-and-birthday pairs, and people who share a listed name *or* a listed birthday but not both
    bd = dt.date(1990, 1, 1)
    pairs = []
    for i in range(30):
        day = bd + dt.timedelta(days=i)
        pairs.append(tuple(CustomerFactory(chain=chain, home_clinic=clinic_a, name=f"钱{i}", birthday=day).id
                           for _ in range(2)))
    CustomerFactory(chain=chain, home_clinic=clinic_a, name="钱0", birthday=bd + dt.timedelta(days=1))
    CustomerFactory(chain=chain, home_clinic=clinic_a, name="钱1", birthday=bd)
    # when the candidates are listed
    with django_assert_max_num_queries(6):
        groups = merge_candidates_list(admin_scope)
        clinics = {c.home_clinic.name for g in groups for c in g.customers}  # loaded with the read, not one query each
    # then each pair is one group with exactly its two people: the other combinations of listed names and birthdays
    # are not groups
    assert sorted(tuple(c.id for c in g.customers) for g in groups if g.reason == "same_name_birthday") == sorted(pairs)
    assert clinics == {clinic_a.name}


def test_on_sqlite_duplicate_groups_are_an_ordered_walk_of_an_index_not_a_sort_of_the_chain(chain, clinic_a,
                                                                                            admin_scope):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's query plan")
    from django.db.models import Count

    from smileloop.customers.selectors import customer_queryset

    Customer.objects.bulk_create(Customer(chain=chain, name=f"李{i % 50}", mobile_tail=f"{i % 97:04d}",
                                          home_clinic=clinic_a) for i in range(2000))
    assert statistics_refresh()
    base = customer_queryset(admin_scope)
    for fields in (["name", "birthday"], ["mobile_tail", "name"]):  # merge_candidates_list's two groupings
        qs = base.values(*fields).annotate(n=Count("id")).filter(n__gt=1).order_by(*fields)[:100]
        sql, params = qs.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            plan = [row[-1] for row in cursor.fetchall()]
        # then SQLite reads one index in order, alone, and can stop at the 100th group (grouping the whole chain
        # in a temporary B-tree took 2.4–2.9 s at 1.1M customers)
        assert len(plan) == 1 and plan[0].startswith("SEARCH customers_customer USING COVERING INDEX"), plan


def test_on_sqlite_a_clinics_duplicate_groups_read_only_the_clinics_entries_of_a_covering_index(chain, clinic_a,
                                                                                              clinic_b, scope_a):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's query plan")

    Customer.objects.bulk_create(Customer(chain=chain, name=f"李{i % 50}", mobile_tail=f"{i % 97:04d}",
                                          home_clinic=clinic_a if i % 4 == 0 else clinic_b) for i in range(2000))
    assert statistics_refresh()
    groupings = []

    def capture(execute, sql, params, many, context):
        if "HAVING COUNT" in sql:
            groupings.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        for reason in ("same_name_phone_tail", "same_name_birthday"):
            merge_candidates_list(scope_a, reason=reason)
    assert len(groupings) == 2
    for sql, params in groupings:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            plan = [row[-1] for row in cursor.fetchall()]
        # then each grouping reads clinic A's entries of the clinic index alone, not the whole chain's name or tail
        # index (0.5–1.5 s for one clinic at 1.1M customers on PostgreSQL), and what the staff member owns elsewhere
        # by the ids the consultant index alone yields (not by reading every row they own)
        reads = [step for step in plan if step.startswith(("SEARCH", "SCAN")) and step != "SCAN u"]  # u: the union
        assert reads == ["SEARCH customers_customer USING COVERING INDEX customer_clinic_stage (home_clinic_id=?)",
                         "SEARCH customers_customer USING INTEGER PRIMARY KEY (rowid=?)",
                         "SEARCH U0 USING COVERING INDEX customer_consultant (consultant_id=?)"], plan


def test_phone_reveal_is_audited_and_needs_a_reason(chain, clinic_a, scope_a):
    c, _ = customer_upsert(chain=chain, data={"name": "甲", "mobile": "13800138000", "home_clinic": clinic_a})
    with pytest.raises(ValidationFailed):
        phone_reveal(scope=scope_a, customer=c, reason=" ")
    assert AuditEvent.objects.count() == 0
    assert phone_reveal(scope=scope_a, customer=c, reason="callback") == "+8613800138000"
    assert AuditEvent.objects.get().action == "phone.reveal"


def test_a_consultant_finds_by_pinyin_the_clinics_patients_and_the_ones_they_own_elsewhere(chain, clinic_a, clinic_b):
    # given a consultant of clinic A who owns a patient of clinic B and one without a home clinic
    consultant = StaffFactory(chain=chain, role=Role.CONSULTANT, clinics=[clinic_a])
    other = StaffFactory(chain=chain, role=Role.CONSULTANT, clinics=[clinic_b])
    at_a, _ = customer_upsert(chain=chain, data={"name": "张三", "home_clinic": clinic_a})
    owned_b, _ = customer_upsert(chain=chain, data={"name": "张森", "home_clinic": clinic_b})
    owned_none, _ = customer_upsert(chain=chain, data={"name": "赵帅"})
    not_mine, _ = customer_upsert(chain=chain, data={"name": "周硕", "home_clinic": clinic_b})
    theirs, _ = customer_upsert(chain=chain, data={"name": "张帅", "home_clinic": clinic_b})
    Customer.objects.filter(pk__in=[owned_b.pk, owned_none.pk]).update(consultant=consultant)
    Customer.objects.filter(pk=theirs.pk).update(consultant=other)
    scope = scope_for_staff(consultant)

    def found(q):
        return {c.id for c in customer_list(scope, q=q)}

    # then initials and full pinyin find the clinic's patients and the ones they own, wherever they are registered
    assert found("zs") == {at_a.id, owned_b.id, owned_none.id}
    assert found("zhangsen") == {owned_b.id}
    assert found("zhaoshuai") == {owned_none.id}
    # and never another clinic's patients they do not own
    assert not_mine.id not in found("zs") and theirs.id not in found("zs")
    assert found("zhoushuo") == set()


def test_clinic_scoped_pinyin_search_follows_a_home_clinic_change(chain, clinic_a, clinic_b, scope_a):
    # given a patient of clinic A found by initials
    c, _ = customer_upsert(chain=chain, data={"name": "张三", "home_clinic": clinic_a})
    assert [x.id for x in customer_list(scope_a, q="zs")] == [c.id]
    # when the patient moves to clinic B
    from smileloop.customers.services import customer_update

    customer_update(customer=c, data={"home_clinic": clinic_b.code})
    # then clinic A staff no longer find them, and the keys carry the new clinic
    assert list(customer_list(scope_a, q="zs")) == []
    assert set(c.search_keys.values_list("home_clinic_id", flat=True)) == {clinic_b.id}


# --- the lifecycle stage is derived, not typed ----------------------------------------------------------


def _stage_events(customer):
    return list(Interaction.objects.filter(customer=customer, kind="system", data__has_key="stage_to")
                .order_by("id"))


def test_a_new_person_is_a_lead(chain, clinic_a):
    customer, created = customer_upsert(chain=chain, data={"name": "王五", "mobile": "13700137000"})
    customer.refresh_from_db()
    assert created
    assert (customer.stage, customer.stage_reached) == (Stage.LEAD, Stage.LEAD)


@pytest.mark.parametrize("stage", ["member", "lost", "", None])
def test_a_stage_sent_to_upsert_is_refused_naming_the_field_and_writes_nothing(chain, stage):
    # when
    with pytest.raises(ValidationFailed) as err:
        customer_upsert(chain=chain, data={"name": "王五", "mobile": "13700137000", "stage": stage})
    # then
    assert [(e.field, e.message) for e in err.value.errors] == [("stage", STAGE_NOT_SETTABLE)]
    assert "POST /api/customers/{id}/lost" in str(err.value)
    assert Customer.objects.count() == 0
    assert Interaction.objects.count() == 0


def test_a_stage_sent_to_an_update_is_refused_and_changes_nothing(chain, clinic_a):
    # given
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a, stage=Stage.BOOKED, community="旧小区")
    # when
    with pytest.raises(ValidationFailed) as err:
        customer_update(customer=customer, data={"community": "静安花园", "stage": "treated"})
    # then
    assert [e.field for e in err.value.errors] == ["stage"]
    customer.refresh_from_db()
    assert (customer.stage, customer.stage_reached, customer.community) == ("booked", "booked", "旧小区")
    assert not Interaction.objects.filter(customer=customer).exists()


@pytest.fixture
def treated(chain, clinic_a):
    return CustomerFactory(chain=chain, home_clinic=clinic_a, name="张三", stage=Stage.TREATED)


def test_marking_lost_writes_the_timeline_event_with_its_cause_and_keeps_the_stage_reached(
        treated, front_desk_a, scope_a):
    # when
    result = customer_mark_lost(scope=scope_a, customer=treated, reason="  搬家到北京了 ", actor=front_desk_a)
    # then
    treated.refresh_from_db()
    assert (treated.stage, treated.stage_reached, treated.stage_prev) == ("lost", "treated", "treated")
    assert treated.stage_changed_at is not None
    assert (result.id, result.stage, result.stage_reached) == (treated.id, "lost", "treated")
    [event] = _stage_events(treated)
    assert event.author_id == front_desk_a.id
    assert event.text == "stage treated → lost: marked lost by 前台小王: 搬家到北京了"
    assert event.data == {"stage_from": "treated", "stage_to": "lost", "cause": "marked lost by 前台小王: 搬家到北京了"}


def test_a_patient_marked_lost_comes_back_to_the_stage_reached_on_a_new_booking(treated, front_desk_a, scope_a):
    # given
    customer_mark_lost(scope=scope_a, customer=treated, reason="选择了其他诊所", actor=front_desk_a)
    # when
    customer_stage_advance(customer=treated.id, to=Stage.BOOKED, cause="appointment booked")
    # then
    treated.refresh_from_db()
    assert treated.stage == "treated"


@pytest.mark.parametrize("reason", ["", "   ", None])
def test_marking_lost_needs_a_reason_and_changes_nothing(treated, front_desk_a, scope_a, reason):
    with pytest.raises(ValidationFailed) as err:
        customer_mark_lost(scope=scope_a, customer=treated, reason=reason, actor=front_desk_a)
    assert [(e.field, e.message) for e in err.value.errors] == [("reason", "is required to mark a patient lost")]
    treated.refresh_from_db()
    assert treated.stage == "treated"
    assert _stage_events(treated) == []


def test_a_reason_longer_than_200_characters_is_refused(treated, front_desk_a, scope_a):
    with pytest.raises(ValidationFailed) as err:
        customer_mark_lost(scope=scope_a, customer=treated, reason="搬" * 201, actor=front_desk_a)
    assert [(e.field, e.message) for e in err.value.errors] == [("reason", "is longer than 200 characters")]
    assert Customer.objects.get(pk=treated.pk).stage == "treated"


def test_marking_an_already_lost_patient_is_a_conflict_and_writes_nothing(treated, front_desk_a, scope_a):
    # given
    customer_mark_lost(scope=scope_a, customer=treated, reason="搬家", actor=front_desk_a)
    changed_at = Customer.objects.get(pk=treated.pk).stage_changed_at
    # when
    with pytest.raises(Conflict) as err:
        customer_mark_lost(scope=scope_a, customer=treated, reason="again", actor=front_desk_a)
    # then
    assert err.value.code == "already_lost"
    assert len(_stage_events(treated)) == 1
    assert Customer.objects.get(pk=treated.pk).stage_changed_at == changed_at


def test_marking_lost_a_patient_of_another_clinic_is_not_found(chain, clinic_b, front_desk_a, scope_a):
    other = CustomerFactory(chain=chain, home_clinic=clinic_b, stage=Stage.ARRIVED)
    with pytest.raises(NotFound):
        customer_mark_lost(scope=scope_a, customer=other, reason="搬家", actor=front_desk_a)
    assert Customer.objects.get(pk=other.pk).stage == "arrived"


def test_marking_lost_needs_the_customer_edit_permission(chain, clinic_a, treated):
    doctor = StaffFactory(chain=chain, role=Role.DOCTOR, clinics=[clinic_a])
    with pytest.raises(PermissionDenied):
        customer_mark_lost(scope=scope_for_staff(doctor), customer=treated, reason="搬家", actor=doctor)
    assert Customer.objects.get(pk=treated.pk).stage == "treated"



def _customer_access(qs) -> list[str]:
    """How SQLite's plan for `qs` reaches the customers table (EXPLAIN QUERY PLAN lines that name it)."""
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return [row[-1] for row in cursor.fetchall() if "customers_customer" in row[-1]]


def test_on_sqlite_with_statistics_a_pinyin_search_fetches_its_matches_by_id_not_the_whole_chain(
        chain, clinic_a, admin_scope):
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL keeps its own statistics (autovacuum)")
    Customer.objects.bulk_create(Customer(chain=chain, name="李四", home_clinic=clinic_a) for _ in range(2000))
    for i in range(3):
        customer_upsert(chain=chain, data={"name": "张三", "mobile": f"1380013{i:04d}", "home_clinic": clinic_a})
    page = customer_list(admin_scope, q="zs")[:20]
    # without statistics SQLite takes `chain_id = ?` for selective and walks the chain's customers (at 1M: p95
    # 418 ms); with them it fetches the few matching ids by primary key
    assert any("USING INDEX" in line for line in _customer_access(page))
    assert statistics_refresh()
    assert _customer_access(page) == ["SEARCH customers_customer USING INTEGER PRIMARY KEY (rowid=?)"]
    assert len(list(page)) == 3


def test_on_sqlite_a_name_search_of_one_character_reads_the_matching_ids_from_the_name_index(
        chain, clinic_a, admin_scope):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's query plan")
    Customer.objects.bulk_create(Customer(chain=chain, name=f"王{i % 7}", home_clinic=clinic_a) for i in range(2000))
    Customer.objects.bulk_create(Customer(chain=chain, name="李四", home_clinic=clinic_a) for _ in range(300))
    assert statistics_refresh()
    page = customer_list(admin_scope, q="王")[:20]
    # with complete statistics a plain name filter read every match's row and sorted them all (王 at 1.1M
    # customers: 897 ms); the matching ids come from the name index alone, the page by primary key (35 ms)
    assert _customer_access(page) == ["SEARCH customers_customer USING INTEGER PRIMARY KEY (rowid=?)"]
    rows = list(page)
    assert len(rows) == 20 and all(c.name.startswith("王") for c in rows)
    assert [c.id for c in rows] == sorted((c.id for c in rows), reverse=True)


def test_every_search_form_pages_newest_first_within_the_scope(chain, clinic_a, clinic_b, scope_a, admin_scope):
    """Whichever plan answers a query (a walk of the newest, or the matching ids first: PostgreSQL, two
    characters or more), the result is every live match in scope, newest first, page by page."""
    people = []
    for i, (name, clinic) in enumerate([("王静", clinic_a), ("王静怡", clinic_b), ("王五", clinic_a),
                                        ("汪静", clinic_a), ("王静", clinic_b), ("张三", clinic_a)] * 4):
        person, _ = customer_upsert(chain=chain, data={"name": name, "mobile": f"1380013{i:04d}",
                                                       "home_clinic": clinic})
        people.append(person)
    twin, _ = customer_upsert(chain=chain, data={"name": "王静", "mobile": "13900000001", "home_clinic": clinic_a})
    customer_merge(scope=admin_scope, survivor=people[0], merged=twin, actor=None, reason="重复")

    def expected(scope, match):
        live = Customer.objects.filter(chain=chain, merged_into__isnull=True).order_by("-id")
        return [c.id for c in live if match(c) and (scope.clinic_ids is None or c.home_clinic_id in scope.clinic_ids)]

    for q, match in (("王", lambda c: c.name.startswith("王")), ("王静", lambda c: c.name.startswith("王静")),
                     ("w", lambda c: c.name[0] in "王汪"), ("wj", lambda c: c.name[:2] in ("王静", "汪静")),
                     ("wangjing", lambda c: c.name[:2] in ("王静", "汪静"))):
        for scope in (admin_scope, scope_a):
            want = expected(scope, match)
            qs = customer_list(scope, q=q)
            assert qs.count() == len(want), (q, scope.clinic_ids)
            assert [c.id for c in qs[:5]] + [c.id for c in qs[5:50]] == want, (q, scope.clinic_ids)
            assert all(c.home_clinic.name for c in qs[:5])
    assert twin.id not in [c.id for c in customer_list(admin_scope, q="王静")]


@pytest.mark.parametrize("value", [str(2**63), "9" * 30, "²", "0"])
def test_a_clinic_or_consultant_named_by_digits_that_are_no_key_is_a_field_error(chain, clinic_a, value):
    for field in ("home_clinic", "consultant"):
        with pytest.raises(ValidationFailed) as exc:
            services.customer_upsert(chain=chain, data={"name": "王五", "mobile": "13900001111", field: value})
        assert [e.field for e in exc.value.errors] == [field]
    assert not Customer.objects.filter(mobile="+8613900001111").exists()


def test_a_page_of_the_list_is_the_lists_slice_read_in_two_queries(chain, clinic_a, clinic_b, front_desk_a,
                                                                   django_assert_num_queries):
    for n in range(30):
        CustomerFactory(chain=chain, home_clinic=clinic_a if n % 3 else clinic_b, name=f"客户{n}")
    scope = scope_for_staff(front_desk_a)
    for start, size in ((0, 21), (20, 21), (40, 21)):
        expected = [c.id for c in customer_list(scope)[start:start + size]]
        page = customer_page(scope, start=start, size=size)
        assert [c.id for c in page] == expected
    with django_assert_num_queries(2 if connection.vendor == "sqlite" else 1):
        page = customer_page(scope, start=0, size=21)
        assert all(c.home_clinic.name for c in page)  # the clinic came with the rows
    assert len(page) == 20 and {c.home_clinic_id for c in page} == {clinic_a.id}


def test_the_heads_timeline_names_a_relative_added_only_masked(chain, clinic_a, clinic_b):
    # given a head of clinic A and a relative of clinic B, linked by a chain role
    from smileloop.customers.services import household_member_add

    head = CustomerFactory(chain=chain, home_clinic=clinic_a, name="张三")
    relative = CustomerFactory(chain=chain, home_clinic=clinic_b, name="李四")
    # when
    household_member_add(head=head, member=relative, relation="spouse")
    # then the note on the head's timeline (read by clinic A's staff) names the relative masked
    note = Interaction.objects.get(customer=head, kind="note")
    assert "李四" not in note.text and "李*" in note.text and "spouse" in note.text


def test_a_merge_across_clinics_is_in_both_clinics_audit_logs(chain, clinic_a, clinic_b, chain_admin, admin_scope):
    # given: one person registered at clinic A and again at clinic B
    from smileloop.clinics.selectors import audit_event_list
    director_b = StaffFactory(chain=chain, role=Role.CLINIC_DIRECTOR, clinics=[clinic_b])
    a, _ = customer_upsert(chain=chain, data={"name": "王五", "mobile": "13800000011", "home_clinic": clinic_a})
    b, _ = customer_upsert(chain=chain, data={"name": "王五", "mobile": "13800000022", "home_clinic": clinic_b})
    # when headquarters merges B's record into A's
    customer_merge(scope=admin_scope, survivor=a, merged=b, actor=chain_admin, reason="same person")
    # then clinic B's director reads that their patient's record was merged, and into which
    events = list(audit_event_list(scope_for_staff(director_b), action="customer.merge"))
    assert [(e.object_id, e.clinic_id, e.detail) for e in events] == [(str(b.id), clinic_b.id, {"survivor_id": a.id})]
    # and the event about the survivor stays the one clinic A reads (with the merged record named)
    survivor_event = AuditEvent.objects.get(action="customer.merge", object_id=str(a.id))
    assert (survivor_event.clinic_id, survivor_event.detail["merged_id"]) == (clinic_a.id, b.id)


def test_a_clinic_scope_without_a_staff_member_owns_no_unowned_patient(chain, clinic_a, clinic_b):
    # given: a clinic-A patient, and a clinic-B patient nobody owns (consultant NULL)
    from smileloop.core.scoping import Scope
    from smileloop.customers.selectors import customer_queryset
    mine = CustomerFactory(chain=chain, home_clinic=clinic_a)
    CustomerFactory(chain=chain, home_clinic=clinic_b, consultant=None)
    # when a clinic scope carries no staff member (a job's, a script's)
    scope = Scope(user_id=None, staff_id=None, chain_id=chain.id, clinic_ids=frozenset({clinic_a.id}))
    # then it sees its clinic's patients only ("consultant = NULL" read as IS NULL let every unowned one in)
    assert list(customer_queryset(scope)) == [mine]


def test_a_merge_that_moves_the_survivors_stage_records_it_like_any_stage_change(chain, clinic_a, director_scope,
                                                                                  director_a):
    # given: a lead, and the same person's record that came and was treated
    lead = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王五", stage=Stage.LEAD, stage_reached=Stage.LEAD)
    treated = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王五", stage=Stage.TREATED,
                              stage_reached=Stage.TREATED)
    # when the treated record is merged into the lead
    customer_merge(scope=director_scope, survivor=lead, merged=treated, actor=director_a, reason="same person")
    # then the survivor is treated, with its previous stage, the time, and one stage event naming the merge
    lead.refresh_from_db()
    assert (lead.stage, lead.stage_prev, lead.stage_changed_at is not None) == (Stage.TREATED, Stage.LEAD, True)
    [event] = Interaction.objects.filter(customer=lead, data__stage_to=Stage.TREATED)
    assert (event.data["stage_from"], event.author_id) == (Stage.LEAD, director_a.pk)
    assert f"merged #{treated.id}" in event.data["cause"]


def test_a_merge_keeps_the_persons_earlier_first_touch_and_later_last_touch_each_whole(chain, clinic_a, director_a,
                                                                                      director_scope):
    # given: a lead from a Douyin ad in January, and the same person's walk-in record in March (another campaign)
    import datetime as dt

    from django.utils import timezone
    jan, mar = (timezone.make_aware(dt.datetime(2026, m, 5, 10)) for m in (1, 3))
    ad = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王五", first_touch_channel="douyin",
                         first_touch_campaign="洁牙9.9", first_touch_at=jan, first_touch_staff=None,
                         last_touch_channel="douyin", last_touch_campaign="洁牙9.9", last_touch_at=jan)
    walk_in = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王五", first_touch_channel="walk_in",
                              first_touch_campaign="", first_touch_at=mar, first_touch_staff=director_a,
                              last_touch_channel="walk_in", last_touch_campaign="", last_touch_at=mar)
    # when the ad's record is merged into the walk-in's
    customer_merge(scope=director_scope, survivor=walk_in, merged=ad, actor=director_a, reason="same person")
    # then the ad acquired them (its whole touch: channel, campaign, no staff, January) and the walk-in is the last
    walk_in.refresh_from_db()
    assert (walk_in.first_touch_channel, walk_in.first_touch_campaign, walk_in.first_touch_staff_id,
            walk_in.first_touch_at) == ("douyin", "洁牙9.9", None, jan)
    assert (walk_in.last_touch_channel, walk_in.last_touch_campaign, walk_in.last_touch_at) == ("walk_in", "", mar)
    # and the other way round: a later record merged in brings its last touch, not its first
    early = CustomerFactory(chain=chain, home_clinic=clinic_a, name="赵六", first_touch_channel="douyin",
                            first_touch_campaign="洁牙9.9", first_touch_at=jan, last_touch_channel="douyin",
                            last_touch_campaign="洁牙9.9", last_touch_at=jan)
    late = CustomerFactory(chain=chain, home_clinic=clinic_a, name="赵六", first_touch_channel="referral",
                           first_touch_campaign="老带新", first_touch_at=mar, last_touch_channel="referral",
                           last_touch_campaign="老带新", last_touch_at=mar)
    customer_merge(scope=director_scope, survivor=early, merged=late, actor=director_a, reason="same person")
    early.refresh_from_db()
    assert (early.first_touch_channel, early.first_touch_campaign, early.first_touch_at) == ("douyin", "洁牙9.9", jan)
    assert (early.last_touch_channel, early.last_touch_campaign, early.last_touch_at) == ("referral", "老带新", mar)
