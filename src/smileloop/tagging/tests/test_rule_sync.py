import datetime as dt

import pytest

from smileloop.customers.models import Customer
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.tagging.enums import TagKind, TagSource
from smileloop.tagging.models import CustomerTag
from smileloop.tagging.services import rule_tag_sync
from smileloop.tagging.tests.factories import CustomerTagFactory, TagFactory

AT = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)


@pytest.fixture
def rule_tag(interests):
    return TagFactory(group=interests, code="high-value", kind=TagKind.RULE,
                      rule={"all": [{"field": "spend_fen_days", "op": "gte", "value": 1000000, "days": 365}]})


def _holders(tag):
    return dict(CustomerTag.objects.filter(tag=tag).values_list("customer_id", "source"))


def test_rule_tag_sync_adds_the_matching_customers_and_removes_rule_rows_that_no_longer_match(chain, rule_tag):
    # given
    rich, poor, was_rich = (CustomerFactory(chain=chain, lifetime_spend_fen=v) for v in (2_000_000, 100, 50))
    CustomerTagFactory(customer=was_rich, tag=rule_tag, source=TagSource.RULE)
    matching = Customer.objects.filter(chain=chain, lifetime_spend_fen__gte=1_000_000).values("id")
    # when
    result = rule_tag_sync(tag=rule_tag, customer_ids=matching, at=AT)
    # then
    assert result == {"added": 1, "removed": 1}
    assert _holders(rule_tag) == {rich.id: TagSource.RULE}
    row = CustomerTag.objects.get(tag=rule_tag, customer=rich)
    assert row.set_at == AT and row.set_by is None and row.chain_id == chain.id
    assert row.evidence == {"rule": True, "at": AT.isoformat()}
    assert poor.id not in _holders(rule_tag)


def test_rule_tag_sync_never_removes_a_tag_staff_set_by_hand(chain, rule_tag, front_desk_a):
    # given
    by_hand = CustomerFactory(chain=chain)
    CustomerTagFactory(customer=by_hand, tag=rule_tag, source=TagSource.MANUAL, set_by=front_desk_a)
    # when
    result = rule_tag_sync(tag=rule_tag, customer_ids=Customer.objects.none().values("id"), at=AT)
    # then
    assert result == {"added": 0, "removed": 0}
    assert _holders(rule_tag) == {by_hand.id: TagSource.MANUAL}


def test_rule_tag_sync_does_not_add_a_second_row_for_a_hand_set_tag_and_is_idempotent(chain, rule_tag):
    # given
    by_hand, other = CustomerFactory(chain=chain), CustomerFactory(chain=chain)
    CustomerTagFactory(customer=by_hand, tag=rule_tag, source=TagSource.MANUAL)
    everyone = Customer.objects.filter(chain=chain).values("id")
    # when
    first = rule_tag_sync(tag=rule_tag, customer_ids=everyone, at=AT)
    second = rule_tag_sync(tag=rule_tag, customer_ids=everyone, at=AT)
    # then
    assert first == {"added": 1, "removed": 0}
    assert second == {"added": 0, "removed": 0}
    assert _holders(rule_tag) == {by_hand.id: TagSource.MANUAL, other.id: TagSource.RULE}


def test_rule_tag_sync_skips_merged_records_and_other_chains(chain, rule_tag):
    # given
    survivor = CustomerFactory(chain=chain)
    tombstone = CustomerFactory(chain=chain, merged_into=survivor, mobile=None)
    stranger = CustomerFactory()  # another chain
    ids = Customer.objects.filter(pk__in=[survivor.id, tombstone.id, stranger.id]).values("id")
    # when
    result = rule_tag_sync(tag=rule_tag, customer_ids=ids, at=AT)
    # then
    assert result == {"added": 1, "removed": 0}
    assert set(_holders(rule_tag)) == {survivor.id}
