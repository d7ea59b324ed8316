"""followups_ui.task_anchor: what triggered a task, in the reader's words, never its internal key."""

import pytest
from django.utils import translation

from smileloop.followups.models import FollowupTask
from smileloop.followups.templatetags.followups_ui import task_anchor


@pytest.mark.parametrize(("key", "context", "chinese", "english"), [
    ("birthday:2026", {}, "生日", "the birthday"),
    ("birthday:2026-11", {}, "生日", "the birthday"),
    ("giftcard-reminder:12", {"card_code": "4DX8-G2W5-YFSP"}, "亲友储值卡 4DX8-G2W5-YFSP 的提醒",
     "a reminder about friends-and-family card 4DX8-G2W5-YFSP"),
    ("giftcard-reminder:12", {}, "亲友储值卡提醒", "a friends-and-family card reminder"),
    ("segment:3", {}, "进入分群", "joining the segment"),
])
def test_the_birthday_gift_card_and_segment_anchors_are_named_not_shown_as_keys(key, context, chinese, english):
    # given a task of the birthday, gift-card reminder or segment playbook (the task page read "birthday:2026")
    task = FollowupTask(anchor_key=key, context=context)
    # when its page names the trigger, then it is words in the reader's language
    with translation.override("zh-hans"):
        assert task_anchor(task) == {"text": chinese}
    with translation.override("en"):
        assert task_anchor(task) == {"text": english}


@pytest.mark.parametrize(("context", "chinese", "english"), [
    ({"procedure": "初诊咨询"}, "2026-12-04 的初诊咨询", "初诊咨询 on 2026-12-04"),
    ({}, "2026-12-04 的咨询", "a consultation on 2026-12-04"),
])
def test_the_consultation_anchor_is_named_with_its_day_not_shown_as_its_key(context, chinese, english):
    # given a task of the 咨询未成交 playbook (its page read "咨询未成交 · consult:2026-12-04")
    task = FollowupTask(anchor_key="consult:2026-12-04", context=context)
    # when its page names the trigger, then it is the consultation and its day, in the reader's language
    with translation.override("zh-hans"):
        assert task_anchor(task) == {"text": chinese}
    with translation.override("en"):
        assert task_anchor(task) == {"text": english}


def test_a_key_no_playbook_writes_is_still_shown_as_stored():
    assert task_anchor(FollowupTask(anchor_key="pms:991", context={})) == {"text": "pms:991"}
