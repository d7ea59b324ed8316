"""Keyword tags from the timeline: "种植" said ≥ 2 times in 30 days → interest: implant.

One Aho-Corasick automaton holds every keyword of every active keyword tag of a chain, so each message is
read once whatever the number of tags. The scan reads timeline rows after a per-chain watermark
(`KeywordScanState`), adds the hits per (patient, tag, day) to `KeywordHit`, and tags the patients whose hits
inside the tag's window reach its threshold. Idempotent: the watermark moves in the same transaction as the
hits it produced, so a second run reads nothing twice.

Overlaps: within one tag, matches are taken leftmost-longest without overlap ("种植牙" with keywords 种植 and
种植牙 is one hit of 种植牙); different tags each see their own keywords (tag A: 种植, tag B: 种植牙 → both hit).
"""

import datetime as dt
import json
import logging
import time
import unicodedata
import zoneinfo
from dataclasses import dataclass

import ahocorasick
from django.db import connection, transaction
from django.db.models import Count, Max, Sum
from django.utils import timezone

from smileloop.clinics.models import Chain
from smileloop.customers.models import Customer, Interaction
from smileloop.tagging.enums import TagKind, TagSource
from smileloop.tagging.models import CustomerTag, KeywordHit, KeywordScanState, Tag

logger = logging.getLogger(__name__)

KEYWORD_IDS_KEPT = 20  # message ids kept as evidence per patient, tag and day
_CHUNK = 1000  # patient ids per IN (…) list


@dataclass(frozen=True)
class KeywordTagSpec:
    tag_id: int
    code: str
    threshold: int
    window_days: int
    kinds: frozenset[str]


@dataclass(frozen=True)
class KeywordMatcher:
    """A chain's automaton and the keyword tags it serves."""

    automaton: "ahocorasick.Automaton | None"
    tags: dict[int, KeywordTagSpec]
    kinds: frozenset[str]


def keyword_fold(text: str) -> str:
    """The form keywords and texts are compared in: NFKC (a Chinese IME's full-width ＶＩＰ or ２ is the same letter
    as the half-width one) and case-folded."""
    return unicodedata.normalize("NFKC", text).casefold()


def keyword_automaton_build(tag_keywords: dict[int, list[str]]) -> "ahocorasick.Automaton | None":
    """One automaton for all tags: each keyword, folded (`keyword_fold`), maps to the tags that list it, each with
    its own spelling (tag A's "Invisalign" and tag B's "invisalign" are one word; each tag's evidence names its own)."""
    owners: dict[str, dict[int, str]] = {}
    for tag_id, keywords in tag_keywords.items():
        for keyword in keywords:
            key = keyword_fold(keyword.strip())
            if key:
                owners.setdefault(key, {}).setdefault(tag_id, keyword.strip())
    if not owners:
        return None
    automaton = ahocorasick.Automaton()
    for key, spellings in owners.items():
        automaton.add_word(key, (len(key), tuple(spellings.items())))
    automaton.make_automaton()
    return automaton


def _match(automaton, text: str) -> dict[int, dict[str, int]]:
    """{tag id: {keyword: hits}} for one text: one pass of the automaton, overlaps resolved per tag."""
    spans: dict[int, list[tuple[int, int, str]]] = {}
    for end, (length, spellings) in automaton.iter(keyword_fold(text)):
        for tag_id, keyword in spellings:
            spans.setdefault(tag_id, []).append((end - length + 1, end, keyword))
    result: dict[int, dict[str, int]] = {}
    for tag_id, found in spans.items():
        if len(found) == 1:
            result[tag_id] = {found[0][2]: 1}
            continue
        found.sort(key=lambda s: (s[0], -s[1]))  # leftmost, then longest
        counts: dict[str, int] = {}
        last_end = -1
        for start, end, keyword in found:
            if start > last_end:
                counts[keyword] = counts.get(keyword, 0) + 1
                last_end = end
        result[tag_id] = counts
    return result


def keyword_matches(automaton, texts) -> list[dict[int, dict[str, int]]]:
    """Pure matching (no database): for each text, {tag id: {keyword: hits}} (empty dict when none)."""
    if automaton is None:
        return [{} for _ in texts]
    return [_match(automaton, text) if text else {} for text in texts]


_MATCHERS: dict[int, tuple[tuple, KeywordMatcher]] = {}


def keyword_matcher_for_chain(chain_id: int) -> KeywordMatcher:
    """The chain's matcher, built once and cached until any of its tags changes (count or latest updated_at)."""
    key = tuple(Tag.objects.filter(chain_id=chain_id).aggregate(n=Count("id"), latest=Max("updated_at")).values())
    cached = _MATCHERS.get(chain_id)
    if cached and cached[0] == key:
        return cached[1]
    tags = list(Tag.objects.filter(chain_id=chain_id, kind=TagKind.KEYWORD, is_active=True)
                .values("id", "code", "keywords", "keyword_threshold", "keyword_window_days", "keyword_kinds"))
    specs = {t["id"]: KeywordTagSpec(tag_id=t["id"], code=t["code"], threshold=t["keyword_threshold"],
                                     window_days=t["keyword_window_days"], kinds=frozenset(t["keyword_kinds"] or []))
             for t in tags if t["keywords"]}
    automaton = keyword_automaton_build({t["id"]: t["keywords"] for t in tags if t["id"] in specs})
    matcher = KeywordMatcher(automaton=automaton, tags=specs,
                             kinds=frozenset().union(*(s.kinds for s in specs.values())) if specs else frozenset())
    _MATCHERS[chain_id] = (key, matcher)
    return matcher


# --- the scan ---------------------------------------------------------------------------------------------


def scan_until(chain: Chain, today: dt.date | None) -> dt.datetime:
    """The scan's bound for a day: now for today (or no day), the end of `today` in the chain's zone for a
    past day (replays, tests, the demo)."""
    now = timezone.now()
    if today is None:
        return now
    tz = zoneinfo.ZoneInfo(chain.time_zone or "Asia/Shanghai")
    end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time.min, tzinfo=tz) - dt.timedelta(microseconds=1)
    return min(end, now) if today >= timezone.localdate(timezone=tz) else end


def keyword_tags_scan(*, chain: Chain | int, until: dt.datetime | None = None, batch_size: int = 20_000,
                      settle_seconds: float = 60.0) -> dict:
    """Read the chain's new chat/call messages (after the watermark, up to `until`, default now), count
    keyword hits and tag patients over the threshold. Messages dated just after `until` wait for a later run.
    Returns counts for the job log.

    An id watermark must not pass a message whose transaction commits after a later id was read (on PostgreSQL
    ids are taken at insert and seen at commit): the scan's end is read with a snapshot, and the scan waits
    (up to `settle_seconds`) until every transaction that was running then has ended, so every id up to that
    end is committed or gone (`_settled_upper`). On SQLite writes are serialised and there is nothing to wait
    for."""
    chain = chain if isinstance(chain, Chain) else Chain.objects.get(pk=chain)
    until = until or timezone.now()
    tz = zoneinfo.ZoneInfo(chain.time_zone or "Asia/Shanghai")
    matcher = keyword_matcher_for_chain(chain.pk)
    KeywordScanState.objects.get_or_create(chain_id=chain.pk)
    totals = {"chain": chain.pk, "messages": 0, "matched": 0, "hits": 0, "tagged": 0}
    upper = _settled_upper(settle_seconds)  # the timeline's end now (a primary-key look-up), once settled
    while upper is not None:
        with transaction.atomic():
            # Under the row lock, so two runs never count the same messages.
            state = KeywordScanState.objects.select_for_update().get(chain_id=chain.pk)
            if state.last_interaction_id >= upper:
                break
            if matcher.automaton is None:
                # No keyword tag: nothing to count; keep the watermark current so a new tag starts from now.
                batch: list = []
            else:
                batch = _batch_read(chain_id=chain.pk, after=state.last_interaction_id, upper=upper,
                                    kinds=sorted(matcher.kinds), until=until, size=batch_size)
            # A full batch ends at its last row; a short one saw every scanned kind up to `upper`, so the
            # rows of other kinds (visits, notes …) up to there are passed too.
            more = len(batch) == batch_size
            last = batch[-1][0] if more else upper
            # Ids follow insertion, not `occurred_at`: a scanned message dated (shortly) after `until` holds the
            # watermark before it, so the run that reaches its date reads it rather than skipping it. One dated
            # more than a day ahead (a bad clock or import) does not hold the chain back: it counts on its day.
            held = next((i for i, row in enumerate(batch) if row[5]), None)
            if held is not None:
                last, batch, more = batch[held][0] - 1, batch[:held], False
            counts = _batch_apply(matcher=matcher, rows=batch, tz=tz, until=until)
            for name in ("matched", "hits", "tagged"):
                totals[name] += counts[name]
            totals["messages"] += len(batch)
            KeywordScanState.objects.filter(pk=state.pk).update(last_interaction_id=last, scanned_at=timezone.now())
            if not more:
                break
    totals["watermark"] = KeywordScanState.objects.get(chain_id=chain.pk).last_interaction_id
    return totals


def _settled_upper(settle_seconds: float) -> int | None:
    """The timeline's highest id, returned once no message at or below it can still appear.

    PostgreSQL: MAX(id) and the snapshot it was read under come from one statement; the transactions that
    snapshot saw in progress (`pg_snapshot_xip`) are the only ones that can hold an unseen id at or below it (an
    id taken later is higher). Wait until each has committed or aborted (`pg_xact_status`). A transaction still
    open after `settle_seconds` (an idle session holding one open) is logged and not waited for any longer, so
    one stuck connection cannot stop tagging; the job's next run sees the messages it commits only if their ids
    are above that run's watermark (the old limit, now confined to that case)."""
    if connection.vendor != "postgresql":
        return Interaction.objects.aggregate(m=Max("id"))["m"]
    table = connection.ops.quote_name(Interaction._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MAX(id), pg_current_snapshot()::text FROM {table}")
        upper, snapshot = cursor.fetchone()
        deadline = time.monotonic() + settle_seconds
        while True:
            cursor.execute("SELECT COUNT(*) FROM pg_snapshot_xip(%s::pg_snapshot) AS x "
                           "WHERE pg_xact_status(x) = 'in progress' AND x IS DISTINCT FROM pg_current_xact_id_if_assigned()",
                           [snapshot])
            if not cursor.fetchone()[0]:
                return upper
            if time.monotonic() >= deadline:
                logger.warning("keyword scan: transactions open since %s s; scanning up to id %s without them",
                               settle_seconds, upper)
                return upper
            time.sleep(0.05)


def _batch_read(*, chain_id: int, after: int, upper: int, kinds: list[str], until: dt.datetime,
                size: int) -> list[tuple]:
    """The next `size` scanned messages of the chain's live patients (not merged away, not erased: a message logged
    after an erasure must not profile the person again) after id `after`, in id order, as raw rows
    (id, customer, kind, occurred_at, text, ahead, follow-up outcome). `ahead` = dated within a day after
    `until`; the follow-up outcome is the outcome code of an entry a completed follow-up task wrote (its
    `data.followup_task_id`), else None.

    Plain SQL on purpose: the timeline is walked by primary key (CROSS JOIN keeps SQLite from driving the
    join from the chain's patients, which would sort the whole remaining range for every batch), and
    `occurred_at` comes back as text on SQLite so only matched rows pay for parsing."""
    ops = connection.ops
    interaction, customer = Interaction._meta.db_table, Customer._meta.db_table
    if connection.vendor == "postgresql":
        at = "i.occurred_at"
        outcome = "CASE WHEN i.data -> 'followup_task_id' IS NOT NULL THEN i.data ->> 'outcome' END"
    else:
        at = "CAST(i.occurred_at AS TEXT)"
        outcome = ("CASE WHEN json_extract(i.data, '$.followup_task_id') IS NOT NULL "
                   "THEN json_extract(i.data, '$.outcome') END")
    marks = ", ".join(["%s"] * len(kinds))
    sql = (f"SELECT i.id, i.customer_id, i.kind, {at}, i.text, "
           f"CASE WHEN i.occurred_at > %s AND i.occurred_at <= %s THEN 1 ELSE 0 END, {outcome} "
           f"FROM {interaction} i CROSS JOIN {customer} c "
           f"WHERE c.id = i.customer_id AND i.id > %s AND i.id <= %s AND i.kind IN ({marks}) "
           f"AND c.chain_id = %s AND c.merged_into_id IS NULL AND c.erased_at IS NULL ORDER BY i.id LIMIT %s")
    params = [ops.adapt_datetimefield_value(until), ops.adapt_datetimefield_value(until + dt.timedelta(days=1)),
              after, upper, *kinds, chain_id, size]
    with connection.cursor() as cursor:
        return _fetch(cursor, sql, params)


def followup_note(text: str, outcome: str) -> str:
    """What was said in a follow-up outcome's timeline entry ("种植术后回访: reached — 想给妈妈也种牙", written by
    followups' task_done_text): the staff member's note only. The playbook's name and the outcome are the system's
    words; scanned, every call of "种植术后回访" would count as the patient asking about implants."""
    _head, separator, note = text.partition(f": {outcome} — ")
    return note if separator else ""


def _batch_apply(*, matcher: KeywordMatcher, rows: list, tz, until: dt.datetime) -> dict:
    """Count one batch's hits into KeywordHit and tag the patients it takes over a threshold."""
    automaton, specs = matcher.automaton, matcher.tags
    new: dict[tuple[int, int, dt.date], list] = {}  # (customer, tag, day) -> [hits, {keyword: n}, [ids]]
    matched = hits = 0
    for pk, customer_id, kind, occurred_at, text, _ahead, followup_outcome in rows:
        if followup_outcome is not None:
            text = followup_note(text, followup_outcome)
        if not text:
            continue
        found = _match(automaton, text)
        if not found:
            continue
        day = None
        for tag_id, counts in found.items():
            if kind not in specs[tag_id].kinds:
                continue
            if day is None:
                day = _aware(occurred_at).astimezone(tz).date()
                matched += 1
            entry = new.setdefault((customer_id, tag_id, day), [0, {}, []])
            for keyword, n in counts.items():
                entry[0] += n
                entry[1][keyword] = entry[1].get(keyword, 0) + n
                hits += n
            if len(entry[2]) < KEYWORD_IDS_KEPT:
                entry[2].append(pk)
    if not new:
        return {"matched": 0, "hits": 0, "tagged": 0}
    tagged = _hits_apply(specs=specs, new=new, until=until)
    return {"matched": matched, "hits": hits, "tagged": tagged}


# The hot path runs plain SQL on the cursor (no model instances, no per-value ORM work): ids are integers
# this module produced, inlined in IN lists; dates and JSON go through the backend's adapters.


_KEYWORD_JSON: dict[str, str] = {}


def _counts_json(counts: dict[str, int]) -> str:
    """json.dumps of {keyword: n} with each keyword's JSON string cached (tens of thousands per batch)."""
    parts = []
    for keyword, n in counts.items():
        key = _KEYWORD_JSON.get(keyword)
        if key is None:
            key = _KEYWORD_JSON.setdefault(keyword, json.dumps(keyword))
        parts.append(f"{key}: {n}")
    return "{" + ", ".join(parts) + "}"


def _aware(value) -> dt.datetime:
    """A raw timestamp column: a datetime on PostgreSQL, naive-UTC text on SQLite."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _day(value) -> dt.date:
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def _json(value):
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _ints(values) -> str:
    return ",".join(str(int(v)) for v in values)


def _chunks(values: list, size: int = _CHUNK):
    for i in range(0, len(values), size):
        yield values[i:i + size]


def _json_sql() -> str:
    return "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"


def _fetch(cursor, sql: str, params=()) -> list[tuple]:
    cursor.execute(sql, params)
    return cursor.fetchall()


def _hits_apply(*, specs: dict[int, KeywordTagSpec], new: dict, until: dt.datetime) -> int:
    """Add the batch's day counts to KeywordHit and tag the (patient, tag) pairs whose hits in a window ending
    on a newly hit day reach the threshold. Per chunk of patients: one read of their stored day rows in the
    window span (both "which rows exist" and the history), one read of their tags; then one prepared INSERT
    and one UPDATE over all rows (executemany). Pairs already tagged, by anyone, are left alone."""
    hit_t, tag_t, ops = KeywordHit._meta.db_table, CustomerTag._meta.db_table, connection.ops
    customers = sorted({k[0] for k in new})
    tag_ids = _ints(sorted({k[1] for k in new}))
    oldest = min(k[2] - dt.timedelta(days=specs[k[1]].window_days - 1) for k in new)
    # A backdated message's day can complete a window with days counted before it (ids do not follow dates).
    newest = max(k[2] + dt.timedelta(days=specs[k[1]].window_days - 1) for k in new)
    stored: dict[tuple[int, int, dt.date], tuple[int, int]] = {}  # key -> (row id, hits)
    tagged: set[tuple[int, int]] = set()
    with connection.cursor() as cursor:
        for chunk in _chunks(customers):
            ids = _ints(chunk)
            for pk, customer_id, tag_id, day, n in _fetch(
                    cursor, f"SELECT id, customer_id, tag_id, CAST(day AS TEXT), hits FROM {hit_t} WHERE customer_id IN ({ids}) "
                            f"AND tag_id IN ({tag_ids}) AND day >= %s AND day <= %s",
                    [ops.adapt_datefield_value(oldest), ops.adapt_datefield_value(newest)]):
                stored[(customer_id, tag_id, _day(day))] = (pk, n)
            tagged.update(_fetch(cursor, f"SELECT customer_id, tag_id FROM {tag_t} WHERE customer_id IN ({ids}) "
                                         f"AND tag_id IN ({tag_ids})"))
        # Merge with rows stored by earlier runs (the same day scanned twice: rare, read by id).
        again = [stored[k][0] for k in new if k in stored]
        previous = {}
        for chunk in _chunks(again):
            for pk, counts, ids in _fetch(cursor, f"SELECT id, counts, interaction_ids FROM {hit_t} "
                                                  f"WHERE id IN ({_ints(chunk)})"):
                previous[pk] = (_json(counts), _json(ids))
        js = _json_sql()
        inserts, updates = [], []
        evidence: dict[tuple, tuple[dict, list]] = {}  # key -> (keyword counts, message ids) known in memory
        for key, (n, counts, ids) in new.items():
            if key not in stored:
                inserts.append((key[0], key[1], ops.adapt_datefield_value(key[2]), n, _counts_json(counts),
                                "[" + ",".join(map(str, ids)) + "]"))
                stored[key] = (None, n)
                evidence[key] = (counts, ids)
                continue
            pk, before = stored[key]
            merged, old_ids = dict(previous[pk][0]), previous[pk][1]
            for keyword, m in counts.items():
                merged[keyword] = merged.get(keyword, 0) + m
            all_ids = (old_ids + ids)[:KEYWORD_IDS_KEPT]
            updates.append((before + n, json.dumps(merged), json.dumps(all_ids), pk))
            stored[key] = (pk, before + n)
            evidence[key] = (merged, all_ids)
        if inserts:
            cursor.executemany(f"INSERT INTO {hit_t} (customer_id, tag_id, day, hits, counts, interaction_ids) "
                               f"VALUES (%s, %s, %s, %s, {js}, {js})", inserts)
        if updates:
            cursor.executemany(f"UPDATE {hit_t} SET hits = %s, counts = {js}, interaction_ids = {js} WHERE id = %s",
                               updates)
        # Windows: the pair's stored days (now including this batch), tested at each newly hit day.
        pairs: dict[tuple[int, int], set[dt.date]] = {}
        for customer_id, tag_id, day in new:
            if (customer_id, tag_id) not in tagged:
                pairs.setdefault((customer_id, tag_id), set()).add(day)
        if not pairs:
            return 0
        history: dict[tuple[int, int], list[tuple[dt.date, int, tuple]]] = {}
        for (customer_id, tag_id, day), (_pk, n) in stored.items():
            if (customer_id, tag_id) in pairs:
                history.setdefault((customer_id, tag_id), []).append((day, n, (customer_id, tag_id, day)))
        reached = {}
        for pair, days in pairs.items():
            window = _window_reaching(sorted(history[pair]), days, specs[pair[1]])
            if window is not None:
                reached[pair] = window
        if not reached:
            return 0
        # Evidence of older day rows in the reaching windows (the batch's own are in memory).
        missing = [stored[key][0] for window in reached.values() for _d, _n, key in window if key not in evidence]
        by_id = {}
        for chunk in _chunks(sorted(set(missing))):
            for pk, counts, ids in _fetch(cursor, f"SELECT id, counts, interaction_ids FROM {hit_t} "
                                                  f"WHERE id IN ({_ints(chunk)})"):
                by_id[pk] = (_json(counts), _json(ids))
        chain_id = Tag.objects.filter(pk=next(iter(reached))[1]).values_list("chain_id", flat=True).get()
        set_at = ops.adapt_datetimefield_value(until)
        rows = []
        for (customer_id, tag_id), window in reached.items():
            spec = specs[tag_id]
            counts: dict[str, int] = {}
            message_ids: list[int] = []
            for *_, key in window:
                day_counts, day_ids = evidence.get(key) or by_id[stored[key][0]]
                for keyword, n in day_counts.items():
                    counts[keyword] = counts.get(keyword, 0) + n
                message_ids.extend(day_ids)
            rows.append((customer_id, tag_id, chain_id, TagSource.KEYWORD, set_at, json.dumps({
                "keywords": counts, "interaction_ids": message_ids[-KEYWORD_IDS_KEPT:], "hits": sum(counts.values()),
                "threshold": spec.threshold, "window_days": spec.window_days,
                "from": window[0][0].isoformat(), "to": window[-1][0].isoformat()}, ensure_ascii=False)))
        # The pairs were read untagged inside this transaction; a tag set by hand meanwhile makes the unique
        # constraint fail the batch, which rolls back with its watermark and is read again by the next run.
        cursor.executemany(f"INSERT INTO {tag_t} (customer_id, tag_id, chain_id, source, set_at, evidence) "
                           f"VALUES (%s, %s, %s, %s, %s, {js})", rows)
    return len(rows)


def _window_reaching(history: list[tuple[dt.date, int, tuple]], new_days: set[dt.date], spec: KeywordTagSpec):
    """The latest window of `window_days` holding a newly hit day whose hits reach the threshold, as its
    (day, hits, key) entries; None when no such window exists. Such a window ends on a day with hits from the
    new day on: on the new day itself, or on a later day counted earlier (the new day was backdated)."""
    span = dt.timedelta(days=spec.window_days - 1)
    ends = {h[0] for h in history if any(d <= h[0] <= d + span for d in new_days)}
    for end in sorted(ends, reverse=True):
        begin = end - dt.timedelta(days=spec.window_days - 1)
        window = [h for h in history if begin <= h[0] <= end]
        if sum(h[1] for h in window) >= spec.threshold:
            return window
    return None


def keyword_tags_merged(*, survivor: Customer, merged: Customer, at: dt.datetime | None = None) -> int:
    """A merge (customers' merge hook, after the hit days both records share were folded, before the rest moves):
    the active keyword tags neither record carries whose hits of both records together reach a window get set on
    the survivor. The scan tests windows only on a newly hit day, so it would wait for the next hit. Returns how
    many tags were set."""
    people = [survivor.pk, merged.pk]
    have = CustomerTag.objects.filter(customer_id__in=people).values("tag_id")
    tags = {t.pk: t for t in Tag.objects.filter(chain_id=survivor.chain_id, kind=TagKind.KEYWORD, is_active=True)
            .exclude(pk__in=have)}
    history: dict[int, list] = {}
    for hit in KeywordHit.objects.filter(customer_id__in=people, tag_id__in=list(tags)).order_by("day", "id"):
        history.setdefault(hit.tag_id, []).append((hit.day, hit.hits, hit))
    rows = []
    for tag_id, days in history.items():
        row = _keyword_row(customer_id=survivor.pk, tag=tags[tag_id], days=days, at=at, merged_id=merged.pk)
        if row is not None:
            rows.append(row)
    CustomerTag.objects.bulk_create(rows)
    return len(rows)


def _keyword_row(*, customer_id: int, tag: Tag, days: list, at: dt.datetime | None,
                 merged_id: int | None = None) -> CustomerTag | None:
    """The keyword tag row for one patient whose stored hit days (`(day, hits, KeywordHit)`, in day order) reach
    `tag`'s window anywhere, with the latest such window as evidence; None when none does."""
    spec = KeywordTagSpec(tag_id=tag.pk, code=tag.code, threshold=tag.keyword_threshold,
                          window_days=tag.keyword_window_days, kinds=frozenset())
    window = _window_reaching(days, {d for d, _n, _h in days}, spec)
    if window is None:
        return None
    counts: dict[str, int] = {}
    message_ids: list[int] = []
    for _d, _n, hit in window:
        for keyword, n in hit.counts.items():
            counts[keyword] = counts.get(keyword, 0) + n
        message_ids.extend(hit.interaction_ids)
    evidence = {"keywords": counts, "interaction_ids": message_ids[-KEYWORD_IDS_KEPT:], "hits": sum(counts.values()),
                "threshold": spec.threshold, "window_days": spec.window_days, "from": window[0][0].isoformat(),
                "to": window[-1][0].isoformat()}
    if merged_id is not None:
        evidence["merged_id"] = merged_id
    return CustomerTag(customer_id=customer_id, tag=tag, chain_id=tag.chain_id, source=TagSource.KEYWORD,
                       set_at=at or timezone.now(), evidence=evidence)


def keyword_tag_recheck(*, tag: Tag, at: dt.datetime | None = None, chunk: int = 2_000) -> int:
    """A keyword tag made easier to reach (threshold lowered, window widened, switched on again): tag now every
    patient whose stored hit days already reach it. The scan tests windows only on a newly hit day, so without
    this they would wait for their next mention. Only patients whose hits add up to the threshold at all are
    read (one grouped query); a tag set meanwhile by hand keeps its row. Returns how many were tagged."""
    if tag.kind != TagKind.KEYWORD or not tag.is_active:
        return 0
    tagged = CustomerTag.objects.filter(tag_id=tag.pk).values("customer_id")
    candidates = list(KeywordHit.objects.filter(tag_id=tag.pk, customer__chain_id=tag.chain_id,
                                                customer__merged_into__isnull=True)
                      .exclude(customer_id__in=tagged).values("customer_id")
                      .annotate(total=Sum("hits")).filter(total__gte=tag.keyword_threshold)
                      .order_by("customer_id").values_list("customer_id", flat=True))
    before = CustomerTag.objects.filter(tag_id=tag.pk).count()
    for part in _chunks(candidates, chunk):
        history: dict[int, list] = {}
        for hit in KeywordHit.objects.filter(tag_id=tag.pk, customer_id__in=part).order_by("customer_id", "day"):
            history.setdefault(hit.customer_id, []).append((hit.day, hit.hits, hit))
        rows = [row for customer_id, days in history.items()
                if (row := _keyword_row(customer_id=customer_id, tag=tag, days=days, at=at)) is not None]
        CustomerTag.objects.bulk_create(rows, ignore_conflicts=True)
    return CustomerTag.objects.filter(tag_id=tag.pk).count() - before
