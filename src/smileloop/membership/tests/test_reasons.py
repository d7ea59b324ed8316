"""membership.reasons: one stored message renders the English audit text and the reader's language; a stored
message that does not fit its template falls back to the stored text instead of breaking the page."""

import re
from types import SimpleNamespace

import pytest
from django.utils import translation

from smileloop.membership import reasons


def sample_args(template: str) -> dict:
    return {name: "measure" if name == "measure" else f"<{name}>" for name in re.findall(r"%\((\w+)\)s", template)}


@pytest.mark.parametrize("key", sorted(reasons.MESSAGES))
def test_every_message_renders_in_english_and_chinese(key):
    args = sample_args(reasons.MESSAGES[key])
    if "measure" in args:
        args["measure"] = "spend_based"
    msg = reasons.with_suffix(reasons.message(key, **args), "lifetime")
    event = SimpleNamespace(reason=reasons.english(msg), data={"msg": msg})
    assert event.reason.endswith(", lifetime") and "%(" not in event.reason
    with translation.override("zh-hans"):
        chinese = reasons.reason_display(event)
    assert chinese != event.reason and chinese.endswith("，终身有效") and "%(" not in chinese
    assert all(v in chinese for k, v in args.items() if k not in ("measure", "why"))
    if "measure" in args:
        assert "累计消费" in chinese


def test_suffixes_add_their_arguments():
    msg = reasons.with_suffix(reasons.message("enrolled_fee", plan="年卡", tier="银卡", fee="899.00", day="2026-03-02"),
                              "valid_until", until="2027-03-02")
    event = SimpleNamespace(reason=reasons.english(msg), data={"msg": msg})
    assert event.reason == "enrolled in 年卡 · 银卡: fee 899.00 paid on 2026-03-02, valid until 2027-03-02"
    with translation.override("zh-hans"):
        assert reasons.reason_display(event) == "2026-03-02 加入年卡 · 银卡：已付会费 ¥899.00，有效期至 2027-03-02"


def test_an_empty_staff_reason_reads_as_a_staff_decision_in_each_language():
    msg = reasons.message("upgraded_by_staff", tier="家庭会员", why="", day="2026-03-02")
    event = SimpleNamespace(reason=reasons.english(msg), data={"msg": msg})
    assert event.reason == "upgraded to 家庭会员: staff decision on 2026-03-02"
    with translation.override("zh-hans"):
        assert reasons.reason_display(event) == "2026-03-02 升级为家庭会员：员工决定"


def test_unknown_keys_are_refused_at_write_and_bad_stored_messages_fall_back():
    with pytest.raises(KeyError):
        reasons.message("no_such_reason")
    with pytest.raises(KeyError):
        reasons.with_suffix(reasons.message("cancelled", day="d", why="w"), "no_such_suffix")
    broken = SimpleNamespace(reason="stored text", data={"msg": {"key": "cancelled", "args": {"day": "d"}}})
    assert reasons.reason_display(broken) == "stored text"
    assert reasons.reason_display(SimpleNamespace(reason="old", data={})) == "old"


@pytest.mark.parametrize("stored, chinese", [
    ("staff decision by 前台小王 on 2026-03-02", "前台小王 于 2026-03-02 决定"),
    ("staff decision on 2026-03-02", "员工于 2026-03-02 决定"),
    ("treatment plan 种植修复 half done (2 of 4 steps) on 2026-03-02", "治疗计划 种植修复 已完成一半（4 步中 2 步），2026-03-02"),
    ("treatment plan 种植修复 finished (4 of 4 steps) on 2026-03-02", "治疗计划 种植修复 已完成（4 步中 4 步），2026-03-02"),
    ("birthday month (2026-07)", "生日月（2026-07）"),
    ("visit no. 5 reached (6 visits) on 2026-07-10", "第 5 次到店已达成（共 6 次），2026-07-10"),
    ("visit no. 1 reached (1 visit) on 2026-07-10", "第 1 次到店已达成（共 1 次），2026-07-10"),
    ("老客户回馈", "老客户回馈"),  # typed by staff: kept as typed
])
def test_a_reveals_detail_reads_in_the_readers_language(stored, chinese):
    from django.utils import translation

    from smileloop.membership.reasons import reveal_detail_display

    with translation.override("zh-hans"):
        assert reveal_detail_display(stored) == chinese
    with translation.override("en"):
        assert reveal_detail_display(stored) == stored


def test_the_nth_visit_detail_counts_one_visit_in_the_singular():
    # the reveal's reason read "(1 visits)" in English
    from smileloop.membership.reasons import reveal_detail_display, reveal_nth_visit

    with translation.override("zh-hans"):  # stored in English whatever the writer's language
        assert reveal_nth_visit(n=1, visits=1, day="2026-07-10") == "visit no. 1 reached (1 visit) on 2026-07-10"
        assert reveal_nth_visit(n=5, visits=6, day="2026-07-10") == "visit no. 5 reached (6 visits) on 2026-07-10"
    with translation.override("en"):  # a detail stored before the fix reads right too
        assert reveal_detail_display("visit no. 1 reached (1 visits) on 2026-07-10") == \
            "visit no. 1 reached (1 visit) on 2026-07-10"


@pytest.mark.parametrize(("key", "measure", "chinese"), [
    ("enrolled_figure", "stored_value", "2026-09-05 加入金卡：累计充值 ¥10,000.00 ≥ ¥10,000.00"),
    ("enrolled_figure", "spend_based", "2026-09-05 加入金卡：累计消费 ¥10,000.00 ≥ ¥10,000.00"),
    ("enrolled_fee", None, "2026-09-05 加入年卡 · 金卡：已付会费 ¥899.00"),
])
def test_an_enrolment_as_the_cause_of_a_stage_change_reads_in_chinese_on_the_timeline(key, measure, chinese):
    # The 360 page's timeline read "阶段 已治疗 → 会员：enrolled in 金卡: cumulative top-up 10,000.00 ≥ …": the enrolment's
    # English reason is the stage change's cause (enrolment._create), and customers.timeline did not know it.
    from smileloop.customers.timeline import STAGE_EVENT, timeline_format, timeline_text

    # given the stage event an enrolment writes
    args = {"tier": "金卡", "day": "2026-09-05"}
    args.update({"measure": measure, "figure": "10,000.00", "threshold": "10,000.00"} if measure
                else {"plan": "年卡", "fee": "899.00"})
    cause = reasons.english(reasons.message(key, **args))
    stored = timeline_format(STAGE_EVENT, stage_from="treated", stage_to="member", cause=cause)
    # when a Chinese reader's page shows it
    with translation.override("zh-hans"):
        shown = timeline_text(stored)
    # then every word is Chinese, and the English page keeps the stored sentence
    assert shown == f"阶段 已治疗 → 会员：{chinese}"
    with translation.override("en"):
        assert timeline_text(stored) == f"stage Treated → Member: {cause}"
