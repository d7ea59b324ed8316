import pytest

from smileloop.customers.services import customer_merge
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.segments.tasks import rule_tags_job
from smileloop.tagging.models import CustomerTag
from smileloop.tagging.tests.factories import CustomerTagFactory, TagFactory

pytestmark = pytest.mark.django_db


def test_rule_tags_job_tags_the_matching_customers_once(chain, clinic_a, clinic_b, marketing, today):
    # given a rule tag "lifetime spend ≥ ¥30,000" and three customers
    tag = TagFactory(chain=chain, group__chain=chain, code="whale", kind="rule",
                     rule={"all": [{"field": "lifetime_spend_fen", "op": "gte", "value": 3_000_000}]})
    whale = CustomerFactory(chain=chain, home_clinic=clinic_a, lifetime_spend_fen=5_000_000)
    other_clinic_whale = CustomerFactory(chain=chain, home_clinic=clinic_b, lifetime_spend_fen=3_000_000)
    small = CustomerFactory(chain=chain, home_clinic=clinic_a, lifetime_spend_fen=100)
    CustomerTagFactory(customer=small, tag=tag, source="rule")  # matched once, no longer does
    by_hand = CustomerFactory(chain=chain, lifetime_spend_fen=0)
    CustomerTagFactory(customer=by_hand, tag=tag, source="manual", set_by=marketing)  # kept: set by staff
    # when
    first = rule_tags_job(today=today)
    second = rule_tags_job(today=today)
    # then the whole chain is tagged, stale rule rows go, hand-set rows stay, and a rerun changes nothing
    assert first == {"tags": 1, "added": 2, "removed": 1, "invalid": 0}
    assert second == {"tags": 1, "added": 0, "removed": 0, "invalid": 0}
    assert set(CustomerTag.objects.filter(tag=tag).values_list("customer_id", flat=True)) == {
        whale.id, other_clinic_whale.id, by_hand.id}


def test_rule_tags_job_skips_invalid_rules_and_inactive_tags(chain, today):
    TagFactory(chain=chain, group__chain=chain, kind="rule", rule={"all": [{"field": "nosuch"}]})
    TagFactory(chain=chain, group__chain=chain, kind="rule", is_active=False,
               rule={"all": [{"field": "visit_count", "op": "gte", "value": 0}]})
    CustomerFactory(chain=chain)
    assert rule_tags_job(today=today) == {"tags": 0, "added": 0, "removed": 0, "invalid": 1}
    assert CustomerTag.objects.count() == 0


def test_a_rule_tag_built_on_another_rule_tag_settles_in_one_run(chain, today):
    # given "loyal" (visits ≥ 3) and "loyal-lead" (tagged loyal and a lead), the second created first
    TagFactory(chain=chain, group__chain=chain, code="loyal-lead", kind="rule",
               rule={"all": [{"field": "tag", "op": "any_of", "value": ["loyal"]},
                             {"field": "stage", "op": "eq", "value": "lead"}]})
    TagFactory(chain=chain, group__chain=chain, code="loyal", kind="rule",
               rule={"all": [{"field": "visit_count", "op": "gte", "value": 3}]})
    customer = CustomerFactory(chain=chain, visit_count=5, stage="lead")
    # when
    rule_tags_job(today=today)
    # then both are set, and a second run changes nothing
    assert set(CustomerTag.objects.filter(customer=customer).values_list("tag__code", flat=True)) == {
        "loyal", "loyal-lead"}
    assert rule_tags_job(today=today) == {"tags": 2, "added": 0, "removed": 0, "invalid": 0}


def test_a_merge_re_checks_the_survivors_rule_tags_at_once_and_no_one_elses(chain, admin_scope):
    # given "big spender" (lifetime spend ≥ ¥1,000) and "lead" (stage lead) as rule tags
    big = TagFactory(chain=chain, group__chain=chain, code="big", kind="rule",
                     rule={"all": [{"field": "lifetime_spend_fen", "op": "gte", "value": 100_000}]})
    lead = TagFactory(chain=chain, group__chain=chain, code="lead", kind="rule",
                      rule={"all": [{"field": "stage", "op": "eq", "value": "lead"}]})
    # a patient who spent ¥600 and a lead record of the same person who spent ¥500 (tagged by the last night's run),
    # and another lead whose tag the nightly run set and no longer matches
    survivor = CustomerFactory(chain=chain, stage="treated", lifetime_spend_fen=60_000)
    merged = CustomerFactory(chain=chain, stage="lead", lifetime_spend_fen=50_000)
    CustomerTagFactory(customer=merged, tag=lead, source="rule")
    other = CustomerFactory(chain=chain, stage="treated")
    CustomerTagFactory(customer=other, tag=lead, source="rule")

    # when the two records are merged
    customer_merge(scope=admin_scope, survivor=survivor, merged=merged)

    # then the survivor is a big spender now (¥1,100 together) and no longer carries the lead's rule tag; the
    # other patient's rows wait for the nightly run
    assert set(CustomerTag.objects.filter(customer=survivor).values_list("tag__code", flat=True)) == {"big"}
    assert CustomerTag.objects.filter(customer=other, tag=lead).exists()
    assert not CustomerTag.objects.filter(tag=big).exclude(customer=survivor).exists()
