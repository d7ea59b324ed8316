import datetime as dt

from smileloop.customers.models import Interaction
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.tagging.demo import demo_load
from smileloop.tagging.enums import TagSource
from smileloop.tagging.models import CustomerTag, Tag

TODAY = dt.date(2026, 3, 2)


def test_the_demo_installs_the_catalogue_tags_patients_by_hand_and_by_keyword_and_loads_once(
        chain, clinic_a, front_desk_a):
    CustomerFactory.create_batch(150, chain=chain, home_clinic=clinic_a, first_touch_channel="wecom")
    first = demo_load(chain=chain, today=TODAY)
    rows_after_first = (CustomerTag.objects.count(), Interaction.objects.count())
    second = demo_load(chain=chain, today=TODAY)
    assert "种植" in Tag.objects.get(chain=chain, code="implant").keywords
    assert first["manual_tags"] > 0 and first["messages"] > 0 and first["keyword_tagged"] > 0
    assert CustomerTag.objects.filter(source=TagSource.MANUAL, set_by=front_desk_a).exists()
    for row in CustomerTag.objects.filter(source=TagSource.KEYWORD):
        assert row.evidence["hits"] >= row.evidence["threshold"]
    assert second["manual_tags"] == 0 and second["messages"] == 0 and second["keyword_tagged"] == 0
    assert (CustomerTag.objects.count(), Interaction.objects.count()) == rows_after_first
