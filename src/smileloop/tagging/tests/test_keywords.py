import datetime as dt
import threading

import pytest
from django.db import connection, connections
from django.db import transaction as db_transaction
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from smileloop.customers.tests.factories import CustomerFactory
from smileloop.tagging.enums import TagKind, TagSource
from smileloop.tagging.keywords import (
    keyword_automaton_build,
    keyword_matches,
    keyword_tag_recheck,
    keyword_tags_scan,
)
from smileloop.tagging.models import CustomerTag, KeywordHit, KeywordScanState
from smileloop.tagging.services import tag_update
from smileloop.tagging.tasks import keyword_tags_job
from smileloop.tagging.tests.factories import CustomerTagFactory, InteractionFactory, TagFactory

SH = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=SH)


def days_ago(n: int, hour: int = 10) -> dt.datetime:
    return NOW.replace(hour=hour) - dt.timedelta(days=n)


@pytest.fixture
def implant(interests):
    return TagFactory(group=interests, code="implant", name="种植意向", kind=TagKind.KEYWORD,
                      keywords=["种植", "种牙"], keyword_threshold=2, keyword_window_days=30)


@pytest.fixture
def ortho(interests):
    return TagFactory(group=interests, code="ortho", name="正畸意向", kind=TagKind.KEYWORD,
                      keywords=["矫正", "牙套", "隐适美"], keyword_threshold=1, keyword_window_days=30)


def say(customer, text, at, kind="chat"):
    return InteractionFactory(customer=customer, text=text, occurred_at=at, kind=kind)


# --- pure matching ---


def test_keyword_matches_counts_each_tag_once_per_overlap_and_both_tags_see_their_own_words():
    # given: tag 1 lists 种植 and 种植牙, tag 2 only 种植牙, tag 3 only 种植
    automaton = keyword_automaton_build({1: ["种植", "种植牙"], 2: ["种植牙"], 3: ["种植"]})
    # when
    result = keyword_matches(automaton, ["我想做种植牙，种植要多久？", "洗牙", ""])
    # then
    assert result[0] == {1: {"种植牙": 1, "种植": 1}, 2: {"种植牙": 1}, 3: {"种植": 2}}
    assert result[1] == {} and result[2] == {}


def test_keyword_matches_finds_every_keyword_of_every_tag_in_one_pass_and_ignores_case():
    automaton = keyword_automaton_build({1: ["种植", "种牙"], 2: ["矫正", "Invisalign"]})
    assert keyword_matches(automaton, ["种牙还是矫正？invisalign 和种植都问了"]) == [
        {1: {"种牙": 1, "种植": 1}, 2: {"矫正": 1, "Invisalign": 1}}]


def test_full_width_letters_and_digits_match_half_width_keywords_both_ways():
    # given: a tag listing VIP and 3M in half-width, another listing ｉｎｖｉｓａｌｉｇｎ typed on a full-width IME
    automaton = keyword_automaton_build({1: ["VIP", "3M"], 2: ["ｉｎｖｉｓａｌｉｇｎ"]})
    # when: the chat types them the other way round
    result = keyword_matches(automaton, ["我是ＶＩＰ，想问３Ｍ牙套", "Invisalign 多少钱"])
    # then: each tag's evidence names its own spelling
    assert result == [{1: {"VIP": 1, "3M": 1}}, {2: {"ｉｎｖｉｓａｌｉｇｎ": 1}}]


@given(st.lists(st.sampled_from(["种植", "牙", "好", "矫正", "种", "植"]), max_size=12))
def test_keyword_matches_counts_never_exceed_non_overlapping_occurrences(parts):
    text = "".join(parts)
    automaton = keyword_automaton_build({1: ["种植"], 2: ["矫正"]})
    result = keyword_matches(automaton, [text])[0]
    assert result.get(1, {}).get("种植", 0) == text.count("种植")
    assert result.get(2, {}).get("矫正", 0) == text.count("矫正")


# --- the scan ---


def test_a_keyword_said_twice_within_the_window_tags_the_patient_with_evidence(patient_a, implant):
    # given
    first = say(patient_a, "请问种植牙多少钱", days_ago(20))
    second = say(patient_a, "我还是想种牙", days_ago(1), kind="call")
    # when
    result = keyword_tags_scan(chain=patient_a.chain, until=NOW)
    # then
    row = CustomerTag.objects.get(customer=patient_a, tag=implant)
    assert row.source == TagSource.KEYWORD and row.set_by is None and row.set_at == NOW
    assert row.evidence["keywords"] == {"种植": 1, "种牙": 1}
    assert row.evidence["interaction_ids"] == [first.id, second.id]
    assert row.evidence["hits"] == 2 and row.evidence["threshold"] == 2
    assert result["tagged"] == 1 and result["messages"] == 2 and result["hits"] == 2


def test_hits_further_apart_than_the_window_do_not_tag(patient_a, implant):
    say(patient_a, "种植", days_ago(40))
    say(patient_a, "种植", days_ago(1))
    keyword_tags_scan(chain=patient_a.chain, until=NOW)
    assert not CustomerTag.objects.filter(tag=implant).exists()
    assert KeywordHit.objects.filter(customer=patient_a, tag=implant).count() == 2


def test_one_hit_below_the_threshold_does_not_tag_until_a_later_run_brings_the_second(patient_a, implant):
    # given
    say(patient_a, "种植多少钱", days_ago(3))
    keyword_tags_scan(chain=patient_a.chain, until=NOW)
    assert not CustomerTag.objects.filter(tag=implant).exists()
    # when: a later message, a later run (history comes from KeywordHit, not a re-read)
    say(patient_a, "种植要几次", days_ago(0))
    result = keyword_tags_scan(chain=patient_a.chain, until=NOW + dt.timedelta(hours=1))
    # then
    assert result["messages"] == 1 and result["tagged"] == 1
    assert CustomerTag.objects.get(tag=implant).evidence["keywords"] == {"种植": 2}


def test_lowering_the_threshold_or_widening_the_window_tags_at_once_who_already_reaches_it(
        chain, clinic_a, patient_a, patient_b, implant, front_desk_a):
    # given: one mention each for A and B (threshold 2), C's two mentions 40 days apart (window 30), and D, who
    # reaches any threshold but was tagged by hand
    say(patient_a, "种植多少钱", days_ago(3))
    say(patient_b, "种牙", days_ago(5))
    patient_c = CustomerFactory(chain=chain, home_clinic=clinic_a)
    say(patient_c, "种植", days_ago(45))
    say(patient_c, "种植", days_ago(5))
    patient_d = CustomerFactory(chain=chain, home_clinic=clinic_a)
    say(patient_d, "种植", days_ago(2))
    keyword_tags_scan(chain=chain, until=NOW)
    CustomerTagFactory(customer=patient_d, tag=implant, source=TagSource.MANUAL, set_by=front_desk_a)
    assert list(CustomerTag.objects.filter(tag=implant).values_list("customer_id", flat=True)) == [patient_d.id]
    # when: the window widens to 60 days, C's two mentions fall in one window: tagged now, not at their next one
    tag_update(tag=implant, data={"keyword_window_days": 60})
    row = CustomerTag.objects.get(tag=implant, customer=patient_c)
    assert row.source == TagSource.KEYWORD and row.evidence["hits"] == 2 and row.evidence["window_days"] == 60
    assert row.evidence["from"] == days_ago(45).date().isoformat()
    # when: the threshold drops to 1, A and B are tagged with their one mention as evidence; D keeps the hand row
    tag_update(tag=implant, data={"keyword_threshold": 1})
    tags = {t.customer_id: t for t in CustomerTag.objects.filter(tag=implant)}
    assert set(tags) == {patient_a.id, patient_b.id, patient_c.id, patient_d.id}
    assert tags[patient_a.id].evidence["keywords"] == {"种植": 1} and tags[patient_b.id].evidence["keywords"] == {
        "种牙": 1}
    assert tags[patient_d.id].source == TagSource.MANUAL
    # raising it again takes nobody off (the tag was earned), and a rename re-checks nothing
    assert keyword_tag_recheck(tag=implant) == 0
    tag_update(tag=implant, data={"keyword_threshold": 3, "name": "种植意向（高）"})
    assert CustomerTag.objects.filter(tag=implant).count() == 4


def test_switching_a_keyword_tag_back_on_tags_who_reached_it_while_it_was_off(chain, patient_a, implant):
    say(patient_a, "种植", days_ago(3))
    keyword_tags_scan(chain=chain, until=NOW)
    tag_update(tag=implant, data={"is_active": False, "keyword_threshold": 1})
    assert not CustomerTag.objects.filter(tag=implant).exists()
    tag_update(tag=implant, data={"is_active": True})
    assert CustomerTag.objects.filter(tag=implant, customer=patient_a, source=TagSource.KEYWORD).exists()


def test_running_the_scan_twice_counts_nothing_twice(patient_a, implant, ortho):
    say(patient_a, "种植", days_ago(2))
    say(patient_a, "牙套", days_ago(2))
    first = keyword_tags_scan(chain=patient_a.chain, until=NOW)
    hits_before = list(KeywordHit.objects.order_by("id").values_list("tag_id", "hits"))
    second = keyword_tags_scan(chain=patient_a.chain, until=NOW)
    assert first["messages"] == 2 and second["messages"] == 0 and second["tagged"] == 0
    assert list(KeywordHit.objects.order_by("id").values_list("tag_id", "hits")) == hits_before
    assert set(CustomerTag.objects.values_list("tag_id", flat=True)) == {ortho.id}


def test_only_the_tags_kinds_are_scanned_and_notes_are_skipped(patient_a, implant):
    say(patient_a, "种植", days_ago(2), kind="note")
    say(patient_a, "种植", days_ago(1), kind="sms")
    say(patient_a, "种植", days_ago(1), kind="chat")
    result = keyword_tags_scan(chain=patient_a.chain, until=NOW)
    assert result["messages"] == 1
    assert not CustomerTag.objects.filter(tag=implant).exists()


def test_a_follow_up_outcome_counts_only_the_staff_members_note_not_the_playbooks_name(
        patient_a, implant, front_desk_a):
    # given: three calls of the implant post-op playbook recorded on the timeline as followups writes them
    # ("种植术后回访: reached — note"; the playbook's name holds the keyword 种植); only the last note repeats
    # what the patient said
    from smileloop.followups.services.tasks import task_done_text

    for n, note in enumerate(["恢复良好", "", "想给妈妈也种牙"], start=1):
        InteractionFactory(customer=patient_a, kind="call", author=front_desk_a, occurred_at=days_ago(4 - n),
                           text=task_done_text(playbook="种植术后回访", outcome="reached", note=note),
                           data={"followup_task_id": n, "playbook": "postop_implant", "outcome": "reached",
                                 "channel": "call"})
    # when
    result = keyword_tags_scan(chain=patient_a.chain, until=NOW)
    # then: one hit (种牙, said once), below the threshold of 2: the playbook's name is not what anyone said
    assert (result["messages"], result["hits"]) == (3, 1)
    assert list(KeywordHit.objects.values_list("counts", flat=True)) == [{"种牙": 1}]
    assert not CustomerTag.objects.filter(tag=implant).exists()


def test_messages_dated_after_until_wait_for_a_later_run(patient_a, implant):
    say(patient_a, "种植", days_ago(1))
    say(patient_a, "种植", NOW + dt.timedelta(days=1))
    assert keyword_tags_scan(chain=patient_a.chain, until=NOW)["messages"] == 1
    result = keyword_tags_scan(chain=patient_a.chain, until=NOW + dt.timedelta(days=2))
    assert result["messages"] == 1 and result["tagged"] == 1


def test_a_batch_boundary_inside_a_run_changes_nothing(patient_a, patient_b, implant):
    for n in range(5):
        say(patient_a, "种植", days_ago(n))
        say(patient_b, "你好", days_ago(n))
    result = keyword_tags_scan(chain=patient_a.chain, until=NOW, batch_size=3)
    assert result["messages"] == 10 and result["tagged"] == 1
    assert sum(KeywordHit.objects.values_list("hits", flat=True)) == 5
    assert KeywordScanState.objects.get(chain=patient_a.chain).last_interaction_id == result["watermark"]


def test_a_patient_already_tagged_by_hand_keeps_the_hand_set_row(patient_a, implant, front_desk_a):
    CustomerTagFactory(customer=patient_a, tag=implant, source=TagSource.MANUAL, set_by=front_desk_a)
    say(patient_a, "种植 种植", days_ago(1))
    assert keyword_tags_scan(chain=patient_a.chain, until=NOW)["tagged"] == 0
    assert CustomerTag.objects.get(tag=implant).source == TagSource.MANUAL


def test_the_cached_automaton_is_rebuilt_when_a_tag_changes(patient_a, implant):
    say(patient_a, "想做美白", days_ago(1))
    keyword_tags_scan(chain=patient_a.chain, until=NOW)
    tag_update(tag=implant, data={"keywords": ["美白"], "keyword_threshold": 1})
    say(patient_a, "美白多少钱", days_ago(0))
    keyword_tags_scan(chain=patient_a.chain, until=NOW + dt.timedelta(hours=1))
    assert CustomerTag.objects.get(tag=implant).evidence["keywords"] == {"美白": 1}


def test_the_job_scans_every_chain_and_is_idempotent(patient_a, implant):
    say(patient_a, "种植", days_ago(3))
    say(patient_a, "种牙", days_ago(2))
    first = keyword_tags_job(today=NOW.date())
    second = keyword_tags_job(today=NOW.date())
    assert first["tagged"] == 1 and first["chains"] >= 1
    assert second["messages"] == 0 and second["tagged"] == 0


def test_a_second_message_on_the_same_day_in_a_later_run_adds_to_that_days_row(patient_a, implant):
    first = say(patient_a, "种植", NOW.replace(hour=9))
    keyword_tags_scan(chain=patient_a.chain, until=NOW)
    second = say(patient_a, "种牙", NOW.replace(hour=11))
    result = keyword_tags_scan(chain=patient_a.chain, until=NOW.replace(hour=12))
    hit = KeywordHit.objects.get(customer=patient_a, tag=implant)
    assert (hit.day, hit.hits, hit.counts, hit.interaction_ids) == (NOW.date(), 2, {"种植": 1, "种牙": 1},
                                                                    [first.id, second.id])
    assert result["tagged"] == 1
    assert CustomerTag.objects.get(tag=implant).evidence["interaction_ids"] == [first.id, second.id]


def test_a_message_dated_far_in_the_future_does_not_hold_the_scan_back(patient_a, implant):
    say(patient_a, "种植", NOW + dt.timedelta(days=400))
    say(patient_a, "种植", days_ago(1))
    result = keyword_tags_scan(chain=patient_a.chain, until=NOW)
    assert result["messages"] == 2 and result["hits"] == 2


def test_keywords_with_quotes_are_stored_as_valid_json(patient_a, interests):
    tag = TagFactory(group=interests, code="quoted", kind=TagKind.KEYWORD, keywords=['"种植"'], keyword_threshold=1)
    say(patient_a, '他说"种植"两个字', days_ago(1))
    keyword_tags_scan(chain=patient_a.chain, until=NOW)
    assert KeywordHit.objects.get(tag=tag).counts == {'"种植"': 1}
    assert CustomerTag.objects.get(tag=tag).evidence["keywords"] == {'"种植"': 1}


def test_messages_of_merged_records_and_other_chains_are_not_read(patient_a, implant):
    stranger = InteractionFactory(text="种植 种植").customer  # another chain
    say(patient_a, "你好", days_ago(1))
    result = keyword_tags_scan(chain=patient_a.chain, until=NOW)
    assert result["messages"] == 1 and result["hits"] == 0
    assert not KeywordHit.objects.filter(customer=stranger).exists()


@pytest.mark.django_db(transaction=True)
def test_a_message_committed_after_a_later_one_is_not_passed_over(chain, clinic_a, interests):
    """PostgreSQL: a chat whose transaction is still open when the scan starts holds a lower id than a chat
    committed meanwhile; the scan waits for it instead of moving its watermark past it."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers: no transaction can commit a lower id later")
    tag = TagFactory(group=interests, code="implant", name="种植意向", kind=TagKind.KEYWORD, keywords=["种植"],
                     keyword_threshold=2, keyword_window_days=30)
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    keyword_tags_scan(chain=chain)  # the watermark starts at the current end of the timeline
    inserted, release, scanned = threading.Event(), threading.Event(), {}

    def slow_writer():
        try:
            with db_transaction.atomic():
                say(patient, "想了解种植", timezone.now())  # takes the lower id, commits last
                inserted.set()
                release.wait(10)
        finally:
            connections.close_all()

    def scanner():
        try:
            scanned.update(keyword_tags_scan(chain=chain.pk, settle_seconds=10))
        finally:
            connections.close_all()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert inserted.wait(10)
    say(patient, "种植多少钱", timezone.now())  # a higher id, committed at once
    scan = threading.Thread(target=scanner)
    scan.start()
    scan.join(0.5)
    assert scan.is_alive(), "the scan waits for the open transaction"
    release.set()
    writer.join(10)
    scan.join(10)
    assert scanned["messages"] == 2 and scanned["tagged"] == 1
    assert CustomerTag.objects.filter(customer=patient, tag=tag, source=TagSource.KEYWORD).exists()
