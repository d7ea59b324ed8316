"""core.sql builds the same instances as the ORM: every concrete field equal (booleans, dates, datetimes,
decimals and JSON converted as the ORM converts them on this database), related rows cached like
select_related, nullable joins as None."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import F, Value
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from smileloop.core.sql import in_clause, json_object, select_model, select_models, select_rows
from smileloop.customers.models import Customer
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.membership.models import Membership
from smileloop.membership.tests.factories import MembershipFactory, TierFactory
from smileloop.tagging.models import CustomerTag
from smileloop.tagging.tests.factories import CustomerTagFactory, TagFactory, TagGroupFactory

pytestmark = pytest.mark.django_db


def fields_of(obj):
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


def test_instances_equal_the_orm_ones_field_by_field(chain, clinic_a):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a, birthday=dt.date(1990, 1, 5),
                               latitude=Decimal("31.230416"), longitude=Decimal("121.473701"))
    tier = TierFactory(plan__chain=chain, excluded_categories=["oral_care_product", "whitening"],
                       points_multiplier=Decimal("1.50"), exclude_special_price=False)
    membership = MembershipFactory(customer=customer, tier=tier, expires_at=timezone.now() + dt.timedelta(days=30))

    orm = Membership.objects.select_related("plan", "tier").get(pk=membership.pk)
    raw = select_model(Membership, "t0.id = %s", [membership.pk], related=("plan", "tier"))
    assert fields_of(raw) == fields_of(orm)
    assert isinstance(raw.expires_at, dt.datetime) and raw.expires_at.tzinfo is not None
    with CaptureQueriesContext(connection) as queries:
        assert fields_of(raw.tier) == fields_of(orm.tier)
        assert raw.tier.excluded_categories == ["oral_care_product", "whitening"]
        assert raw.tier.points_multiplier == Decimal("1.50") and raw.tier.exclude_special_price is False
        assert fields_of(raw.plan) == fields_of(orm.plan)
    assert len(queries) == 0, "related rows are cached, as select_related caches them"
    assert not raw._state.adding and raw._state.db == "default"

    person = select_model(Customer, "t0.id = %s", [customer.pk], related=("home_clinic", "consultant"))
    assert fields_of(person) == fields_of(Customer.objects.get(pk=customer.pk))
    assert person.birthday == dt.date(1990, 1, 5) and person.latitude == Decimal("31.230416")
    assert person.home_clinic == clinic_a
    with CaptureQueriesContext(connection) as queries:
        assert person.consultant is None  # a null foreign key: joined, cached as None
    assert len(queries) == 0


def test_lists_order_and_in_clause(chain):
    people = [CustomerFactory(chain=chain, name=n) for n in ("甲", "乙", "丙")]
    where, params = in_clause("t0.id", [people[2].pk, people[0].pk])
    found = select_models(Customer, where, params, tail="ORDER BY t0.id DESC")
    assert [c.pk for c in found] == [people[2].pk, people[0].pk]
    where, params = in_clause("t0.id", [])
    assert select_models(Customer, where, params) == []
    assert select_model(Customer, "t0.id = %s", [-1]) is None
    assert select_rows("SELECT COUNT(*) FROM customers_customer WHERE chain_id = %s", [chain.pk]) == [(3,)]


def test_a_field_that_is_not_a_forward_key_is_refused():
    with pytest.raises(ValueError, match="not a forward foreign key"):
        select_models(Customer, "1 = 1", related=("name",))


def test_a_related_path_follows_a_key_from_a_joined_row(chain, clinic_a, chain_admin):
    """`a__b` joins b from a's row (what select_related("a__b") caches), whether a's row is there or not."""
    group_a, group_b = TagGroupFactory(chain=chain, ordering=2), TagGroupFactory(chain=chain, ordering=1)
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    tags = [CustomerTagFactory(customer=patient, tag=TagFactory(group=group_a, name="乙"), set_by=chain_admin),
            CustomerTagFactory(customer=patient, tag=TagFactory(group=group_b, name="甲"), set_by=None)]
    rows = select_models(CustomerTag, "t0.customer_id = %s", [patient.pk], related=["tag", "tag__group", "set_by"],
                         tail="ORDER BY t2.ordering, t1.name")
    orm = list(CustomerTag.objects.filter(customer=patient).select_related("tag__group", "set_by")
               .order_by("tag__group__ordering", "tag__name"))
    assert [r.pk for r in rows] == [r.pk for r in orm] == [tags[1].pk, tags[0].pk]
    with CaptureQueriesContext(connection) as queries:
        assert [(fields_of(r.tag), fields_of(r.tag.group), r.set_by and fields_of(r.set_by)) for r in rows] == [
            (fields_of(r.tag), fields_of(r.tag.group), r.set_by and fields_of(r.set_by)) for r in orm]
    assert len(queries) == 0
    # below a nullable link (no setter here), a further link is a LEFT JOIN too, and the rows stay
    assert len(select_models(CustomerTag, "t0.customer_id = %s", [patient.pk],
                             related=["set_by", "set_by__user"])) == 2
    with pytest.raises(ValueError, match="before it"):
        select_models(CustomerTag, "1 = 1", related=["tag__group"])


def test_json_object_types_its_constants_and_keeps_column_expressions(chain):
    customer = CustomerFactory(chain=chain, name="张三")
    data = Customer.objects.filter(pk=customer.pk).annotate(data=json_object(
        name=F("name"), trigger="recall", year=Value(2026), flag=True, source=Value("import"),
    )).values_list("data", flat=True).get()
    assert data == {"name": "张三", "trigger": "recall", "year": 2026, "flag": True, "source": "import"}


# --- planner statistics (SQLite) ------------------------------------------------------------------------

sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="PostgreSQL keeps its own statistics")


def _stat(index: str) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT stat FROM sqlite_stat1 WHERE idx = %s", [index])
        row = cursor.fetchone()
    return row[0] if row else None


@sqlite_only
def test_statistics_are_complete_not_sampled(chain, clinic_a):
    from smileloop.core.sql import statistics_refresh

    # given 2,500 customers of one chain (more than a sampled ANALYZE reads of an index)
    Customer.objects.bulk_create(Customer(chain=chain, name="李四", home_clinic=clinic_a) for _ in range(2500))
    # when the statistics are refreshed
    assert statistics_refresh()
    # then `chain_id = ?` is known to match all 2,500 (a sampled ANALYZE wrote 1,001, and SQLite then took the
    # chain's index for selective)
    assert _stat("customer_last_visit").split()[:2] == ["2500", "2500"]


@sqlite_only
def test_a_write_refreshes_the_statistics_of_a_table_without_any_or_grown_by_a_tenth(chain, clinic_a):
    from smileloop.core.sql import statistics_refresh

    Customer.objects.bulk_create(Customer(chain=chain, name="李四", home_clinic=clinic_a) for _ in range(1000))
    # a table without statistics is analysed after any write that added rows; none added, nothing done
    assert not statistics_refresh({Customer: 0})
    assert statistics_refresh({Customer: 1000})
    assert _stat("customer_last_visit").startswith("1000 ")
    # then 120 more rows (≤ 50 + 10 % of 1,000) leave the statistics as they are ...
    Customer.objects.bulk_create(Customer(chain=chain, name="王五", home_clinic=clinic_a) for _ in range(120))
    assert not statistics_refresh({Customer: 120})
    assert _stat("customer_last_visit").startswith("1000 ")
    # ... and 31 more (151 since, > 150) bring them up to date
    Customer.objects.bulk_create(Customer(chain=chain, name="王五", home_clinic=clinic_a) for _ in range(31))
    assert statistics_refresh({Customer: 151})
    assert _stat("customer_last_visit").startswith("1151 ")
