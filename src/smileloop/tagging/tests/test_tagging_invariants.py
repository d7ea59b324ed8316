"""Invariants of tagging checked against simple references (hypothesis), on SQLite and PostgreSQL.

- keyword matching: the automaton's counts equal a naive leftmost-longest scan with str.startswith per tag;
- the keyword scan: KeywordHit holds, per local (chain time zone) day, every keyword said exactly once however
  the messages are spread over runs; the tag is on exactly when some window of `window_days` local days reaches
  the threshold;
- rule_tag_sync: rule rows become the live rule result minus patients tagged another way, counts are the
  difference, a second run changes nothing, no other row is touched;
- bulk tagging: the count reported is the rows added or removed, a replay changes nothing, scope is enforced.
"""

import datetime as dt
import zoneinfo

import pytest
from django.db import transaction
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from smileloop.core.errors import NotFound, ValidationFailed
from smileloop.customers.models import Customer, Interaction
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.tagging import keywords as keyword_module
from smileloop.tagging.enums import TagKind, TagSource
from smileloop.tagging.keywords import keyword_automaton_build, keyword_matches, keyword_tags_scan
from smileloop.tagging.models import CustomerTag, KeywordHit, KeywordScanState
from smileloop.tagging.services import rule_tag_sync, tag_update, tags_bulk_apply, tags_bulk_remove
from smileloop.tagging.tests.factories import CustomerTagFactory, InteractionFactory, TagFactory

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
# The last midnight in Shanghai before the scan's `until`; UTC midnight is 8 hours later.
BASE = dt.datetime(2026, 3, 1, 0, 0, tzinfo=SH)
UNTIL = dt.datetime(2026, 3, 20, 12, 0, tzinfo=SH)
BOUNDED = settings(max_examples=40, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _rolled_back(body):
    """Run one hypothesis example in a savepoint that is always rolled back (the test's own transaction stays)."""
    keyword_module._MATCHERS.clear()
    with transaction.atomic():
        body()
        transaction.set_rollback(True)


def _scan(chain):
    # settle 0: nothing else writes here; on a shared PostgreSQL server other databases' transactions need no wait
    return keyword_tags_scan(chain=chain, until=UNTIL, settle_seconds=0)


# --- 1. keyword matching against a naive reference -----------------------------------------------------------


def reference_counts(tag_keywords: dict[int, list[str]], text: str) -> dict[int, dict[str, int]]:
    """Per tag: walk the lower-cased text, at each position take the longest keyword starting there (its first
    spelling in the tag's list) and jump past it; else move one character."""
    low = text.lower()
    result = {}
    for tag_id, words in tag_keywords.items():
        spelling: dict[str, str] = {}
        for word in words:
            if word.strip():
                spelling.setdefault(word.strip().lower(), word.strip())
        counts: dict[str, int] = {}
        pos = 0
        while pos < len(low):
            here = [key for key in spelling if low.startswith(key, pos)]
            if here:
                key = max(here, key=len)
                counts[spelling[key]] = counts.get(spelling[key], 0) + 1
                pos += len(key)
            else:
                pos += 1
        if counts:
            result[tag_id] = counts
    return result


# Chinese keywords inside one another, Latin case variants, an emoji and an astral-plane (CJK Ext. B) character.
ATOMS = ["种", "植", "牙", "种植", "种植牙", "a", "A", "b", "ab", "AB", "😀", "𠀀", " ", "，", "İ", "ß"]
WORDS = st.lists(st.sampled_from(ATOMS), min_size=1, max_size=3).map("".join)
TAG_KEYWORDS = st.dictionaries(st.integers(1, 4), st.lists(WORDS, min_size=1, max_size=4), min_size=1, max_size=4)
TEXTS = st.lists(st.sampled_from(ATOMS + ["x", "牙套"]), max_size=30).map("".join)


@settings(max_examples=60, deadline=None)
@given(TAG_KEYWORDS, st.lists(TEXTS, min_size=1, max_size=4))
def test_the_automaton_counts_what_a_naive_leftmost_longest_scan_counts(tag_keywords, texts):
    automaton = keyword_automaton_build(tag_keywords)
    found = keyword_matches(automaton, texts)
    assert found == [reference_counts(tag_keywords, text) for text in texts]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["种植", "种植牙", "牙", "😀", "𠀀a"]), st.integers(0, 3000), st.integers(0, 5))
def test_one_keyword_is_counted_as_often_as_str_count_finds_it_even_in_very_long_notes(keyword, filler, times):
    text = ("x" * filler + keyword) * times + "y" * filler
    [found] = keyword_matches(keyword_automaton_build({7: [keyword]}), [text])
    assert found.get(7, {}).get(keyword, 0) == text.count(keyword) == times


def test_each_tag_reports_its_own_spelling_of_a_keyword_another_tag_spells_differently():
    # given: two tags list the same word in different case
    automaton = keyword_automaton_build({1: ["Invisalign"], 2: ["invisalign"], 3: ["INVISALIGN", "矫正"]})
    # when
    [found] = keyword_matches(automaton, ["想问 INVISALIGN 和矫正"])
    # then: each tag's evidence names its own keyword
    assert found == {1: {"Invisalign": 1}, 2: {"invisalign": 1}, 3: {"INVISALIGN": 1, "矫正": 1}}


def test_empty_and_whitespace_keywords_match_nothing_and_empty_notes_have_no_hits():
    assert keyword_automaton_build({1: ["", "  "]}) is None
    automaton = keyword_automaton_build({1: ["种植"]})
    assert keyword_matches(automaton, ["", "种植"]) == [{}, {1: {"种植": 1}}]


# --- 2. the keyword scan: hits per local day, the window, the watermark ------------------------------------------


def _reaches(day_hits: dict[dt.date, int], *, threshold: int, window_days: int) -> bool:
    """Some window of `window_days` consecutive local days holds `threshold` hits."""
    return any(sum(n for d, n in day_hits.items() if end - dt.timedelta(days=window_days - 1) <= d <= end) >= threshold
               for end in day_hits)


MESSAGE = st.tuples(
    st.integers(0, 1),  # patient
    st.integers(0, 5),  # local day after BASE
    st.sampled_from([-61, -1, 0, 1, 59, 8 * 60 - 1, 8 * 60, 16 * 60 + 30]),  # minutes from local midnight
    st.lists(st.sampled_from(["种植", "种牙", "种植牙", "牙", "你好", "😀"]), max_size=4).map("".join),
    st.sampled_from(["chat", "call", "note"]),
    st.integers(0, 20),  # insertion rank: ids need not follow the dates (backdated calls and notes)
)


@BOUNDED
@given(messages=st.lists(MESSAGE, min_size=2, max_size=12), threshold=st.integers(2, 4), window=st.integers(1, 4),
       cuts=st.lists(st.integers(1, 8), min_size=1, max_size=3))
@example(messages=[(0, 5, 0, "种植", "chat", 0), (0, 3, 0, "种牙", "call", 1)], threshold=2, window=4, cuts=[1])
def test_hits_are_counted_once_per_local_day_and_the_tag_is_on_exactly_when_a_window_reaches_the_threshold(
        chain, clinic_a, interests, messages, threshold, window, cuts):
    order = sorted(range(len(messages)), key=lambda i: messages[i][-1])

    def body():
        tag = TagFactory(group=interests, code="implant", kind=TagKind.KEYWORD, keywords=["种植", "种牙"],
                         keyword_threshold=threshold, keyword_window_days=window)
        patients = [CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(2)]
        _scan(chain)  # the watermark starts at the timeline's end
        expected: dict[int, dict[dt.date, int]] = {0: {}, 1: {}}
        start = 0
        for cut in sorted({*cuts, len(order)}):
            for i in order[start:cut]:
                who, day, minutes, text, kind, _rank = messages[i]
                at = BASE + dt.timedelta(days=day, minutes=minutes)
                InteractionFactory(customer=patients[who], kind=kind, text=text, occurred_at=at)
                hits = sum(reference_counts({1: ["种植", "种牙"]}, text).get(1, {}).values())
                if hits and kind != "note":
                    local = at.astimezone(SH).date()
                    expected[who][local] = expected[who].get(local, 0) + hits
            start = max(start, cut)
            _scan(chain)
            _scan(chain)  # a second run reads nothing new
        for who, patient in enumerate(patients):
            stored = dict(KeywordHit.objects.filter(customer=patient, tag=tag).values_list("day", "hits"))
            assert stored == expected[who]
            tagged = CustomerTag.objects.filter(customer=patient, tag=tag, source=TagSource.KEYWORD).exists()
            assert tagged == _reaches(expected[who], threshold=threshold, window_days=window), (expected[who])

    _rolled_back(body)


def test_local_midnight_in_shanghai_not_utc_midnight_separates_the_days(chain, clinic_a, interests):
    # given: a one-day window, two hits a minute apart around Shanghai midnight (16:00 UTC, the same UTC day)
    tag = TagFactory(group=interests, code="implant", kind=TagKind.KEYWORD, keywords=["种植"], keyword_threshold=2,
                     keyword_window_days=1)
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    InteractionFactory(customer=patient, text="种植", occurred_at=dt.datetime(2026, 3, 4, 15, 59, tzinfo=dt.UTC))
    InteractionFactory(customer=patient, text="种植", occurred_at=dt.datetime(2026, 3, 4, 16, 0, tzinfo=dt.UTC))
    # when
    _scan(chain)
    # then: two local days of one hit each, below the threshold
    assert dict(KeywordHit.objects.filter(tag=tag).values_list("day", "hits")) == {
        dt.date(2026, 3, 4): 1, dt.date(2026, 3, 5): 1}
    assert not CustomerTag.objects.filter(tag=tag).exists()
    # and: a third hit on the Shanghai day of 00:00 reaches it
    InteractionFactory(customer=patient, text="种植", occurred_at=dt.datetime(2026, 3, 5, 15, 59, tzinfo=dt.UTC))
    _scan(chain)
    assert CustomerTag.objects.get(tag=tag).evidence["from"] == "2026-03-05"


def test_a_backdated_message_completes_a_window_with_a_later_day_already_counted(chain, clinic_a, interests):
    # given: a hit on day 5 counted by an earlier run
    tag = TagFactory(group=interests, code="implant", kind=TagKind.KEYWORD, keywords=["种植"], keyword_threshold=2,
                     keyword_window_days=7)
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    InteractionFactory(customer=patient, text="种植", occurred_at=BASE + dt.timedelta(days=5, hours=10))
    _scan(chain)
    # when: a call logged later, dated day 3 (inside the same 7-day window)
    InteractionFactory(customer=patient, kind="call", text="种植", occurred_at=BASE + dt.timedelta(days=3, hours=10))
    _scan(chain)
    # then
    row = CustomerTag.objects.get(customer=patient, tag=tag)
    assert (row.evidence["hits"], row.evidence["from"], row.evidence["to"]) == (2, "2026-03-04", "2026-03-06")


def test_notes_of_a_merged_record_count_once_for_the_survivor_before_or_after_the_scan(
        chain, clinic_a, interests, admin_scope):
    from smileloop.customers.services import customer_merge

    # given: each record said 种植 on the same day; the merged one also later, not scanned yet
    tag = TagFactory(group=interests, code="implant", kind=TagKind.KEYWORD, keywords=["种植"], keyword_threshold=4,
                     keyword_window_days=30)
    survivor = CustomerFactory(chain=chain, home_clinic=clinic_a)
    merged = CustomerFactory(chain=chain, home_clinic=clinic_a)
    day = BASE + dt.timedelta(days=2, hours=10)
    InteractionFactory(customer=survivor, text="种植", occurred_at=day)
    InteractionFactory(customer=merged, text="种植", occurred_at=day)
    _scan(chain)
    InteractionFactory(customer=merged, text="种植 种植", occurred_at=day + dt.timedelta(days=1))
    # when
    customer_merge(scope=admin_scope, survivor=survivor, merged=merged)
    result = _scan(chain)
    _scan(chain)
    # then: the shared day folded, the unscanned message read once, for the survivor
    assert result["messages"] == 1
    assert dict(KeywordHit.objects.filter(tag=tag).values_list("day", "hits")) == {
        dt.date(2026, 3, 3): 2, dt.date(2026, 3, 4): 2}
    assert set(KeywordHit.objects.filter(tag=tag).values_list("customer_id", flat=True)) == {survivor.id}
    assert CustomerTag.objects.get(tag=tag).customer_id == survivor.id


def test_an_erased_persons_unscanned_messages_and_hits_count_for_nothing(chain, clinic_a, interests, admin_scope,
                                                                          chain_admin):
    from smileloop.customers.privacy import customer_erase

    tag = TagFactory(group=interests, code="implant", kind=TagKind.KEYWORD, keywords=["种植"], keyword_threshold=2,
                     keyword_window_days=30)
    person = CustomerFactory(chain=chain, home_clinic=clinic_a)
    InteractionFactory(customer=person, text="种植", occurred_at=BASE + dt.timedelta(days=1))
    _scan(chain)
    InteractionFactory(customer=person, text="种植 种植", occurred_at=BASE + dt.timedelta(days=2))
    customer_erase(scope=admin_scope, customer=person, actor=chain_admin, reason="本人申请注销")
    _scan(chain)
    assert not KeywordHit.objects.filter(tag=tag).exists()
    assert not CustomerTag.objects.filter(tag=tag).exists()


def test_changed_keywords_count_from_the_next_scan_and_past_messages_are_not_read_again(chain, clinic_a, interests):
    # given: 种植 counted once
    tag = TagFactory(group=interests, code="implant", kind=TagKind.KEYWORD, keywords=["种植"], keyword_threshold=1,
                     keyword_window_days=30)
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    InteractionFactory(customer=patient, text="种植 种牙", occurred_at=BASE)
    assert _scan(chain)["hits"] == 1
    tag_update(tag=tag, data={"keywords": ["种牙"]})
    # when: a re-run (nothing new), then a new message naming both words
    again = _scan(chain)
    InteractionFactory(customer=patient, text="种植 种牙", occurred_at=BASE + dt.timedelta(days=1))
    later = _scan(chain)
    # then: the old message is not re-read; the new one counts only the new word
    assert (again["messages"], later["messages"], later["hits"]) == (0, 1, 1)
    assert list(KeywordHit.objects.filter(tag=tag).order_by("day").values_list("counts", flat=True)) == [
        {"种植": 1}, {"种牙": 1}]
    assert KeywordScanState.objects.get(chain=chain).last_interaction_id == Interaction.objects.order_by("-id")[0].id


# --- 3. rule_tag_sync ----------------------------------------------------------------------------------------------


SOURCES = st.sampled_from([None, TagSource.RULE, TagSource.MANUAL, TagSource.KEYWORD, TagSource.API])


@BOUNDED
@given(before=st.lists(SOURCES, min_size=6, max_size=6), chosen=st.lists(st.booleans(), min_size=8, max_size=8))
def test_rule_tag_sync_makes_rule_rows_the_live_result_counts_the_difference_and_is_idempotent(
        chain, clinic_a, interests, before, chosen):
    def body():
        tag = TagFactory(group=interests, code="hv", kind=TagKind.RULE,
                         rule={"all": [{"field": "spend_fen_days", "op": "gte", "value": 1, "days": 365}]})
        other_tag = TagFactory(group=interests, code="other", kind=TagKind.MANUAL)
        patients = [CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in before]
        tombstone = CustomerFactory(chain=chain, home_clinic=clinic_a, merged_into=patients[0], mobile=None)
        stranger = CustomerFactory()  # another chain
        for patient, source in zip(patients, before, strict=True):
            CustomerTagFactory(customer=patient, tag=other_tag)  # never touched
            if source:
                CustomerTagFactory(customer=patient, tag=tag, source=source)
        everyone = [*patients, tombstone, stranger]
        result_ids = {c.id for c, yes in zip(everyone, chosen, strict=True) if yes}
        rows_before = {r["customer_id"]: r for r in CustomerTag.objects.filter(tag=tag).values()}
        timeline = Interaction.objects.count()
        # when
        counts = rule_tag_sync(tag=tag, customer_ids=Customer.objects.filter(pk__in=result_ids).values("id"))
        again = rule_tag_sync(tag=tag, customer_ids=Customer.objects.filter(pk__in=result_ids).values("id"))
        # then
        after = {r["customer_id"]: r for r in CustomerTag.objects.filter(tag=tag).values()}
        expected = {}
        for patient, source in zip(patients, before, strict=True):
            if source and source != TagSource.RULE:
                expected[patient.id] = source
            elif patient.id in result_ids:
                expected[patient.id] = TagSource.RULE
        assert {k: r["source"] for k, r in after.items()} == expected
        for k, row in rows_before.items():  # rows kept are kept as they were (setter, time, evidence)
            if k in after:
                assert after[k] == row
        had_rule = {k for k, r in rows_before.items() if r["source"] == TagSource.RULE}
        has_rule = {k for k, r in after.items() if r["source"] == TagSource.RULE}
        assert counts == {"added": len(has_rule - had_rule), "removed": len(had_rule - has_rule)}
        assert again == {"added": 0, "removed": 0}
        assert CustomerTag.objects.filter(tag=other_tag).count() == len(patients)
        assert Interaction.objects.count() == timeline  # rule tagging writes no timeline entry

    _rolled_back(body)


# --- 4. bulk tagging ------------------------------------------------------------------------------------------------


@BOUNDED
@given(before=st.lists(st.sampled_from([None, TagSource.MANUAL, TagSource.KEYWORD]), min_size=5, max_size=5),
       picks=st.lists(st.integers(0, 4), min_size=1, max_size=8), outsider=st.sampled_from([None, "clinic", "chain"]),
       remove=st.booleans())
def test_bulk_counts_are_the_rows_changed_replays_change_nothing_and_scope_is_all_or_nothing(
        chain, clinic_a, clinic_b, interests, front_desk_a, scope_a, before, picks, outsider, remove):
    def body():
        tag = TagFactory(group=interests, code="vip", kind=TagKind.MANUAL)
        patients = [CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in before]
        for patient, source in zip(patients, before, strict=True):
            if source:
                CustomerTagFactory(customer=patient, tag=tag, source=source)
        ids = [patients[i].id for i in picks]
        if outsider == "clinic":
            ids.append(CustomerFactory(chain=chain, home_clinic=clinic_b).id)
        elif outsider == "chain":
            ids.append(CustomerFactory().id)
        rows_before = set(CustomerTag.objects.filter(tag=tag).values_list("customer_id", flat=True))
        timeline = Interaction.objects.count()
        run = tags_bulk_remove if remove else tags_bulk_apply
        if outsider:
            with pytest.raises(ValidationFailed):
                run(scope=scope_a, customer_ids=[str(i) for i in ids], tag=tag, actor=front_desk_a)
            assert set(CustomerTag.objects.filter(tag=tag).values_list("customer_id", flat=True)) == rows_before
            return
        changed = run(scope=scope_a, customer_ids=[str(i) for i in ids], tag=tag, actor=front_desk_a)
        replay = run(scope=scope_a, customer_ids=ids, tag=tag, actor=front_desk_a)
        rows_after = set(CustomerTag.objects.filter(tag=tag).values_list("customer_id", flat=True))
        expected = rows_before - set(ids) if remove else rows_before | set(ids)
        assert rows_after == expected
        assert changed == len(rows_before ^ rows_after) and replay == 0
        assert Interaction.objects.count() == timeline  # bulk tagging writes no timeline entry

    _rolled_back(body)


def test_bulk_tagging_with_another_chains_tag_is_not_found_and_changes_nothing(scope_a, front_desk_a, clinic_a,
                                                                                 chain):
    foreign = TagFactory()  # another chain's tag
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    with pytest.raises(NotFound):
        tags_bulk_apply(scope=scope_a, customer_ids=[patient.id], tag=foreign, actor=front_desk_a)
    assert not CustomerTag.objects.exists()


def test_a_merge_sets_the_keyword_tag_the_two_records_hits_reach_together(chain, clinic_a, interests, admin_scope):
    from smileloop.customers.services import customer_merge

    # given: one hit each, on different days, both scanned; the threshold is 2
    tag = TagFactory(group=interests, code="implant", kind=TagKind.KEYWORD, keywords=["种植"], keyword_threshold=2,
                     keyword_window_days=30)
    survivor = CustomerFactory(chain=chain, home_clinic=clinic_a)
    merged = CustomerFactory(chain=chain, home_clinic=clinic_a)
    first = InteractionFactory(customer=survivor, text="种植", occurred_at=BASE + dt.timedelta(hours=10))
    second = InteractionFactory(customer=merged, text="种植", occurred_at=BASE + dt.timedelta(days=1, hours=10))
    _scan(chain)
    assert not CustomerTag.objects.filter(tag=tag).exists()
    # when
    customer_merge(scope=admin_scope, survivor=survivor, merged=merged)
    # then: the survivor's two hits reach the window at once, not at some later hit
    row = CustomerTag.objects.get(tag=tag)
    assert (row.customer_id, row.source, row.evidence["hits"]) == (survivor.id, TagSource.KEYWORD, 2)
    assert sorted(row.evidence["interaction_ids"]) == [first.id, second.id]
    assert _scan(chain)["tagged"] == 0


@BOUNDED
@given(ops=st.lists(st.tuples(st.booleans(), st.integers(0, 1)), max_size=8))
def test_hand_tagging_writes_one_timeline_entry_per_actual_change_and_replays_change_nothing(
        chain, clinic_a, interests, front_desk_a, ops):
    from smileloop.tagging.services import tag_apply, tag_remove

    def body():
        tags = [TagFactory(group=interests, code=f"t{n}", kind=TagKind.MANUAL) for n in range(2)]
        patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
        timeline = Interaction.objects.filter(customer=patient).count()
        on: set[int] = set()
        changes = 0
        for add, which in ops:
            tag = tags[which]
            if add:
                row = tag_apply(customer=patient, tag=tag, actor=front_desk_a)
                assert row.tag_id == tag.pk
                changes += which not in on
                on.add(which)
            else:
                assert tag_remove(customer=patient, tag=tag, actor=front_desk_a) == (which in on)
                changes += which in on
                on.discard(which)
        assert set(CustomerTag.objects.filter(customer=patient).values_list("tag_id", flat=True)) == {
            tags[n].pk for n in on}
        assert Interaction.objects.filter(customer=patient).count() - timeline == changes

    _rolled_back(body)


@BOUNDED
@given(hours=st.lists(st.sampled_from([-50, -3, 0, 1, 23, 24, 25, 30, 24 * 40]), min_size=1, max_size=10),
       batch_size=st.integers(1, 4))
def test_messages_dated_around_until_are_each_counted_once_and_none_is_passed_over(
        chain, clinic_a, interests, hours, batch_size):
    def body():
        tag = TagFactory(group=interests, code="implant", kind=TagKind.KEYWORD, keywords=["种植"],
                         keyword_threshold=1000, keyword_window_days=30)
        patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
        noise = CustomerFactory(chain=chain, home_clinic=clinic_a)
        keyword_tags_scan(chain=chain, until=UNTIL, settle_seconds=0)
        for n, h in enumerate(hours):
            InteractionFactory(customer=patient, text="种植", occurred_at=UNTIL + dt.timedelta(hours=h))
            InteractionFactory(customer=noise, kind="visit" if n % 2 else "chat", text="你好",
                               occurred_at=UNTIL + dt.timedelta(hours=h))

        def counted():
            return sum(KeywordHit.objects.filter(tag=tag).values_list("hits", flat=True))

        # when: a run up to UNTIL, another, then one after every date
        keyword_tags_scan(chain=chain, until=UNTIL, batch_size=batch_size, settle_seconds=0)
        first = counted()
        keyword_tags_scan(chain=chain, until=UNTIL, batch_size=batch_size, settle_seconds=0)
        # then: nothing dated (shortly) after UNTIL was counted, nothing twice
        assert counted() == first <= sum(1 for h in hours if h <= 0 or h > 24)
        keyword_tags_scan(chain=chain, until=UNTIL + dt.timedelta(days=41), batch_size=batch_size, settle_seconds=0)
        keyword_tags_scan(chain=chain, until=UNTIL + dt.timedelta(days=41), batch_size=batch_size, settle_seconds=0)
        assert counted() == len(hours)

    _rolled_back(body)


def test_rows_a_former_rule_tags_rule_set_can_be_taken_off_by_hand_once_it_is_a_manual_tag(
        chain, clinic_a, interests, front_desk_a, scope_a, client):
    from django.urls import reverse

    from smileloop.tagging.services import tag_remove

    # given: a rule tag turned into a manual tag; its rule's rows stay (no sync touches a manual tag)
    tag = TagFactory(group=interests, code="hv", kind=TagKind.RULE,
                     rule={"all": [{"field": "spend_fen_days", "op": "gte", "value": 1, "days": 365}]})
    one, two, three = (CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(3))
    for patient in (one, two, three):
        CustomerTagFactory(customer=patient, tag=tag, source=TagSource.RULE)
    tag_update(tag=tag, data={"kind": TagKind.MANUAL, "rule": None})
    # when: one by the service, one on the 360 page, one in bulk (which allowed it already)
    removed = tag_remove(customer=one, tag=tag, actor=front_desk_a)
    client.force_login(front_desk_a.user)
    detail = client.get(reverse("customers:detail", args=[two.id]))
    assert 'name="tag" value="hv"' in detail.content.decode()  # the 360 page offers the × again
    page = client.post(reverse("tagging:customer_remove", args=[two.id]), {"tag": tag.code}, headers={"HX-Request": "true"})
    bulk = tags_bulk_remove(scope=scope_a, customer_ids=[three.id], tag=tag, actor=front_desk_a)
    # then: all three went, as any hand-set row of a manual tag does
    assert (removed, page.status_code, bulk) == (True, 200, 1)
    assert not CustomerTag.objects.filter(tag=tag).exists()


def test_a_merge_keeps_the_hand_set_row_over_a_rule_row_so_a_later_sync_cannot_take_the_tag_off(
        chain, clinic_a, interests, admin_scope, front_desk_a):
    from smileloop.customers.services import customer_merge

    # given: the survivor carries the rule tag by its rule, the merged record by hand
    tag = TagFactory(group=interests, code="hv", kind=TagKind.RULE,
                     rule={"all": [{"field": "spend_fen_days", "op": "gte", "value": 1, "days": 365}]})
    survivor = CustomerFactory(chain=chain, home_clinic=clinic_a)
    merged = CustomerFactory(chain=chain, home_clinic=clinic_a)
    CustomerTagFactory(customer=survivor, tag=tag, source=TagSource.RULE)
    CustomerTagFactory(customer=merged, tag=tag, source=TagSource.MANUAL, set_by=front_desk_a)
    # when: merged, then the rule no longer matches anyone
    customer_merge(scope=admin_scope, survivor=survivor, merged=merged)
    result = rule_tag_sync(tag=tag, customer_ids=Customer.objects.none().values("id"))
    # then: the hand-set row moved to the survivor and the sync left it
    row = CustomerTag.objects.get(tag=tag)
    assert (row.customer_id, row.source, row.set_by_id, result["removed"]) == (
        survivor.id, TagSource.MANUAL, front_desk_a.id, 0)
