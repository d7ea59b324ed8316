import pytest

from smileloop.core.errors import ValidationFailed
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.segments import services
from smileloop.segments.models import Segment
from smileloop.segments.selectors import segment_customers, segment_get, segment_list
from smileloop.segments.tests.factories import SegmentFactory

pytestmark = pytest.mark.django_db
LEADS = {"all": [{"field": "stage", "op": "eq", "value": "lead"}]}


def test_segment_create_saves_the_rule_and_who_saved_it(chain, marketing):
    segment = services.segment_create(chain=chain, name=" 线索 ", rule=LEADS, description="未到店", actor=marketing)
    assert (segment.name, segment.rule, segment.created_by, segment.updated_by) == ("线索", LEADS, marketing, marketing)


def test_a_rejected_create_writes_nothing_and_reports_every_field(chain, marketing):
    with pytest.raises(ValidationFailed) as caught:
        services.segment_create(chain=chain, name="", actor=marketing,
                                rule={"all": [{"field": "tag", "op": "any_of", "value": ["nosuch"]}]})
    assert [(e.field, e.message) for e in caught.value.errors] == [
        ("name", "is required (at most 100 characters)"), ("rule.all[0]", "unknown tag 'nosuch'")]
    assert Segment.objects.count() == 0


def test_names_are_unique_per_chain_among_live_segments(chain, marketing):
    SegmentFactory(chain=chain, name="沉睡")
    with pytest.raises(ValidationFailed) as caught:
        services.segment_create(chain=chain, name="沉睡", rule=LEADS, actor=marketing)
    assert caught.value.errors[0].field == "name"
    SegmentFactory(chain=CustomerFactory().chain, name="沉睡")  # another chain may use it


def test_a_rejected_update_changes_nothing(chain, marketing):
    segment = SegmentFactory(chain=chain, name="原名", rule=LEADS)
    with pytest.raises(ValidationFailed):
        services.segment_update(segment=segment, name="新名", rule={"any": []}, actor=marketing)
    segment.refresh_from_db()
    assert (segment.name, segment.rule) == ("原名", LEADS)


def test_update_changes_only_what_is_given(chain, marketing):
    segment = SegmentFactory(chain=chain, name="原名", description="说明", rule=LEADS)
    services.segment_update(segment=segment, description="新说明", actor=marketing)
    segment.refresh_from_db()
    assert (segment.name, segment.description, segment.rule, segment.updated_by) == ("原名", "新说明", LEADS, marketing)


def test_deleted_segments_are_gone_from_the_selectors(chain, admin_scope, marketing):
    segment = SegmentFactory(chain=chain)
    services.segment_delete(segment=segment, actor=marketing)
    assert list(segment_list(admin_scope)) == []
    with pytest.raises(Exception) as caught:
        segment_get(admin_scope, segment.id)
    assert caught.value.__class__.__name__ == "NotFound"


def test_segment_customers_works_for_a_chain_or_a_scope(chain, clinic_a, clinic_b, scope_a):
    segment = SegmentFactory(chain=chain, rule=LEADS)
    mine = CustomerFactory(chain=chain, home_clinic=clinic_a)
    other = CustomerFactory(chain=chain, home_clinic=clinic_b)
    assert set(segment_customers(chain, segment)) == {mine, other}
    assert list(segment_customers(scope_a, segment)) == [mine]


def test_demo_load_saves_the_demo_segments_once(chain, located, tags, today):
    from smileloop.segments.demo import demo_load

    first = demo_load(chain=chain, today=today)
    second = demo_load(chain=chain, today=today)
    assert first == {"segments": 6, "skipped": 0}
    assert second == {"segments": 0, "skipped": 0}
    names = set(Segment.objects.filter(chain=chain).values_list("name", flat=True))
    assert {"种植意向未到店", "高价值沉睡客户", "3公里内未到店线索", "治疗未完成", "会员生日下月"} <= names


def test_a_rule_naming_clinics_by_code_is_stored_with_their_ids(chain, marketing, located):
    # given a rule naming clinic A by code twice (a home clinic, a distance's origin)
    rule = {"all": [{"field": "clinic", "op": "in", "value": ["SH01"]},
                    {"field": "distance_km", "op": "lte", "value": 5, "clinic": "SH01"}]}
    # when saved, then changed to clinic B's code
    segment = services.segment_create(chain=chain, name="静安附近", rule=rule, actor=marketing)
    stored = Segment.objects.get(pk=segment.pk).rule
    services.segment_update(segment=segment, actor=marketing,
                            rule={"all": [{"field": "distance_km", "op": "lte", "value": 5, "clinic": "SH02"}]})
    # then the stored rules name each clinic by id only
    assert stored == {"all": [{"field": "clinic", "op": "in", "value": [located[0].pk]},
                              {"field": "distance_km", "op": "lte", "value": 5, "clinic": located[0].pk}]}
    assert Segment.objects.get(pk=segment.pk).rule == {
        "all": [{"field": "distance_km", "op": "lte", "value": 5, "clinic": located[1].pk}]}


def test_a_rule_naming_an_unknown_clinic_code_saves_nothing_and_names_the_path(chain, marketing, located):
    rule = {"any": [{"field": "age", "op": "gte", "value": 60},
                    {"field": "distance_km", "op": "lte", "value": 5, "clinic": "BJ01"}]}
    with pytest.raises(ValidationFailed) as caught:
        services.segment_create(chain=chain, name="北京附近", rule=rule, actor=marketing)
    assert [(e.field, e.message) for e in caught.value.errors] == [("rule.any[1]", "unknown clinic code 'BJ01'")]
    assert Segment.objects.count() == 0
