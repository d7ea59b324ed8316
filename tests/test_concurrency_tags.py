"""Tags written at once on PostgreSQL: one new code created by several clients is one tag and refusals (never a
500); bulk tagging of one tag at once counts and audits only what each request added."""

import pytest

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.core.errors import ValidationFailed
from smileloop.core.models import AuditEvent
from smileloop.core.testing import held, postgresql_only, race, writers_run
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.tagging.models import CustomerTag, Tag
from smileloop.tagging.services import tag_create, tag_group_create, tags_bulk_apply

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]



def test_one_new_tag_code_created_at_once_is_one_tag_and_refusals(chain):
    group = tag_group_create(chain=chain.id, data={"code": "interest", "name": "兴趣", "kind": "interest"})

    def writer(i):
        try:
            tag_create(chain=chain.id, data={"group": group, "code": "price-sensitive", "name": f"价格敏感{i}"})
        except ValidationFailed as exc:
            return [exc.errors[0].field]
        return ["created"]

    results, errors = writers_run(writer, 8)
    assert errors == []
    assert results.count("created") == 1 and set(results) == {"created", "code"}
    assert Tag.objects.filter(code="price-sensitive").count() == 1


def test_bulk_tagging_one_tag_at_once_counts_what_each_added(chain, clinic_a):
    group = tag_group_create(chain=chain.id, data={"code": "interest", "name": "兴趣", "kind": "interest"})
    tag = tag_create(chain=chain.id, data={"group": group, "code": "vip", "name": "重点客户"})
    scope = scope_for_staff(StaffFactory(chain=chain, role=Role.CHAIN_ADMIN, user__username="tagger"))
    ids = [CustomerFactory(chain=chain, home_clinic=clinic_a).id for _ in range(30)]

    def writer(i):
        return [tags_bulk_apply(scope=scope, customer_ids=ids, tag=tag, actor=None)]

    results, errors = writers_run(writer, 6)
    assert errors == []
    assert sorted(results) == [0, 0, 0, 0, 0, 30]
    assert CustomerTag.objects.filter(tag=tag).count() == 30
    assert sorted(e.detail["added"] for e in AuditEvent.objects.filter(action="tag.bulk_apply")) == [0, 0, 0, 0, 0, 30]


def test_a_rule_tag_synced_by_two_workers_at_once_adds_each_row_once_and_fails_neither(chain, clinic_a):
    # given a rule tag that 20 patients match, and two syncs of it (the nightly job run by two workers): the first
    # has inserted its rows but not committed when the second reads what is missing and inserts the same rows
    import threading

    from smileloop.customers.models import Customer
    from smileloop.tagging.enums import TagKind, TagSource
    from smileloop.tagging.services import rule_tag_sync

    group = tag_group_create(chain=chain.id, data={"code": "value", "name": "价值", "kind": "value"})
    tag = Tag.objects.create(chain=chain, group_id=group.pk, code="high-value", name="高价值", kind=TagKind.RULE,
                             rule={"field": "stage", "op": "in", "value": ["lead"]})
    ids = [CustomerFactory(chain=chain, home_clinic=clinic_a).id for _ in range(20)]
    reached = threading.Event()

    def sync():
        return rule_tag_sync(tag=tag, customer_ids=Customer.objects.filter(pk__in=ids).values("id"))

    # the second's INSERT waits on the first's uncommitted rows' unique index entries
    outcomes = race(held(sync, reached), sync, reached, atomic=False)
    # then neither failed, the rows were added once, and each says what it added
    assert set(outcomes) == {"first", "then"}, outcomes
    assert (outcomes["first"]["added"], outcomes["then"]["added"]) == (20, 0)
    assert CustomerTag.objects.filter(tag=tag, source=TagSource.RULE).count() == 20
