"""Writes over tags: the catalogue (groups and tags), tags on patients (one, in bulk, from rules), merges.

Invariants: a patient carries a tag at most once (UniqueConstraint customer+tag); every row says who or what
set it (`source`, `set_by`) and when (`set_at`); a rule sync never removes a tag staff set by hand.
"""

import datetime as dt
import json
import re
from collections.abc import Callable

from django.core.exceptions import EmptyResultSet
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_noop

from smileloop.clinics.enums import Perm
from smileloop.clinics.models import Chain, Staff
from smileloop.core.audit import audit_record
from smileloop.core.bounds import BIGINT_MAX, CONTROL_CHARACTERS, has_control
from smileloop.core.errors import Conflict, FieldError, NotFound, PermissionDenied, ValidationFailed
from smileloop.core.scoping import Scope
from smileloop.customers.enums import InteractionKind
from smileloop.customers.models import Customer
from smileloop.customers.selectors import customer_queryset
from smileloop.customers.services import (
    ERASED_REFUSED,
    customer_lock_live,
    customers_erasures_wait,
    customers_lock,
    interaction_add,
)
from smileloop.customers.timeline import timeline_format
from smileloop.tagging.catalogue import tag_catalogue_install  # noqa: F401 (a service of this app)
from smileloop.tagging.enums import TagGroupKind, TagKind, TagSource
from smileloop.tagging.keywords import (  # noqa: F401 (re-exported)
    KEYWORD_IDS_KEPT,
    keyword_fold,
    keyword_tag_recheck,
    keyword_tags_merged,
    keyword_tags_scan,
)
from smileloop.tagging.models import CustomerTag, KeywordHit, Tag, TagGroup
from smileloop.tagging.rules import rule_check, rule_normalise, rule_users, rule_uses_tag

# Stored in English, shown in the reader's language (customers.timeline; registered in apps.py).
TAG_ADDED = gettext_noop("Tag added: %(tag)s")
TAG_REMOVED = gettext_noop("Tag removed: %(tag)s")
_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_SCANNABLE_KINDS = {InteractionKind.CHAT, InteractionKind.CALL, InteractionKind.SMS, InteractionKind.NOTE,
                    InteractionKind.FORM, InteractionKind.VISIT}


def _chain_id(chain: Chain | int) -> int:
    return chain if isinstance(chain, int) else chain.pk



# --- catalogue ---------------------------------------------------------------------------------------


def _group_clean(*, chain_id: int, data: dict, group: TagGroup | None) -> dict:
    errors: list[FieldError] = []
    code = str(data.get("code", group.code if group else "") or "").strip().lower()
    name = str(data.get("name", group.name if group else "") or "").strip()
    kind = str(data.get("kind", group.kind if group else "") or "")
    ordering = data.get("ordering", group.ordering if group else 0)
    if not _CODE.match(code):
        errors.append(FieldError("code", "must be 1–40 lower-case letters, digits, '-' or '_'", code))
    elif TagGroup.objects.filter(chain_id=chain_id, code=code).exclude(pk=group.pk if group else None).exists():
        errors.append(FieldError("code", "is already used by another tag group", code))
    if not name or len(name) > 60:
        errors.append(FieldError("name", "is required (at most 60 characters)", name))
    elif has_control(name):
        errors.append(FieldError("name", CONTROL_CHARACTERS, name[:40]))
    if kind not in TagGroupKind.values:
        errors.append(FieldError("kind", f"must be one of {', '.join(TagGroupKind.values)}", kind))
    try:
        ordering = int(ordering or 0)
        if not 0 <= ordering <= 32767:
            raise ValueError
    except (TypeError, ValueError):
        errors.append(FieldError("ordering", "must be a whole number from 0 to 32767", str(ordering)))
    if errors:
        raise ValidationFailed(errors)
    return {"code": code, "name": name, "kind": kind, "ordering": ordering}


@transaction.atomic
def _saved_once(save: Callable[[], object], *, what: str):
    """`save()` in a savepoint: a code or name taken by a concurrent save between the check and the write is the
    refusal a sequential save gets, not a 500."""
    try:
        with transaction.atomic():
            return save()
    except IntegrityError as exc:
        text = str(exc)
        if "name" in text:
            raise ValidationFailed([FieldError("name", f"is already used by another {what} in this group")]) from exc
        if "code" in text:
            raise ValidationFailed([FieldError("code", f"is already used by another {what}")]) from exc
        raise


def tag_group_create(*, chain: Chain | int, data: dict) -> TagGroup:
    chain_id = _chain_id(chain)
    clean = _group_clean(chain_id=chain_id, data=data, group=None)
    return _saved_once(lambda: TagGroup.objects.create(chain_id=chain_id, **clean), what="tag group")


@transaction.atomic
def tag_group_update(*, group: TagGroup, data: dict) -> TagGroup:
    clean = _group_clean(chain_id=group.chain_id, data=data, group=group)
    for name, value in clean.items():
        setattr(group, name, value)
    group.save(update_fields=[*clean, "updated_at"])
    return group


def _keywords_clean(value) -> list[str] | None:
    """Accept a list or a string separated by commas, '，', '、' or new lines; None when not a list of text."""
    if value is None:
        return []
    if isinstance(value, str):
        value = re.split(r"[,，、;；\n]+", value)
    if not isinstance(value, (list, tuple)) or not all(isinstance(k, str) for k in value):
        return None
    seen: dict[str, None] = {}
    for keyword in value:
        keyword = keyword.strip()
        if keyword:
            seen.setdefault(keyword, None)
    return list(seen)


def _int_field(errors: list[FieldError], name: str, value, *, low: int, high: int, message: str) -> int:
    try:
        number = int(value)
        if not low <= number <= high or isinstance(value, bool):
            raise ValueError
        return number
    except (TypeError, ValueError):
        errors.append(FieldError(name, message, str(value)))
        return low


def _tag_clean(*, chain_id: int, data: dict, tag: Tag | None) -> dict:
    """Every field checked and reported at once (the form and the API show them per field)."""

    def current(name, default):
        return data[name] if name in data else (getattr(tag, name) if tag else default)

    errors: list[FieldError] = []
    code = str(current("code", "") or "").strip().lower()
    name = str(current("name", "") or "").strip()
    kind = str(current("kind", TagKind.MANUAL) or "")
    colour = str(current("colour", "#64748b") or "#64748b").strip()
    description = str(current("description", "") or "").strip()
    is_active = bool(current("is_active", True))
    rule = current("rule", None)
    group = data.get("group", tag.group if tag else None)
    if isinstance(group, (int, str)) and not isinstance(group, bool):
        text = str(group)
        lookup = ({"pk": int(text)} if text.isascii() and text.isdigit() and int(text) <= BIGINT_MAX
                  else {"code": text})
        # a NUL is no group's code (and PostgreSQL refuses it in a query)
        group = TagGroup.objects.filter(chain_id=chain_id, **lookup).first() if "\x00" not in str(group) else None
    if not isinstance(group, TagGroup) or group.chain_id != chain_id:
        errors.append(FieldError("group", "is not a tag group of this chain", str(data.get("group"))))
        group = None
    if not _CODE.match(code):
        errors.append(FieldError("code", "must be 1–40 lower-case letters, digits, '-' or '_'", code))
    elif Tag.objects.filter(chain_id=chain_id, code=code).exclude(pk=tag.pk if tag else None).exists():
        errors.append(FieldError("code", "is already used by another tag", code))
    elif tag is not None and code != tag.code:
        # Rules name tags by code: renaming one that another rule tag tests would leave that rule naming nobody
        # (refused when saved, skipped each night from then on).
        users = [t.name for t in Tag.objects.filter(chain_id=chain_id, kind=TagKind.RULE).exclude(pk=tag.pk)
                 if rule_uses_tag(t.rule, tag.code)]
        if users:
            errors.append(FieldError("code", f"is tested by the rules of {', '.join(sorted(users))}; "
                                             "change those rules first", code))
        segments = rule_users(chain_id=chain_id, code=tag.code)
        if segments:
            errors.append(FieldError("code", f"is tested by the segments {', '.join(segments)}; "
                                             "change those segments first", code))
    if not name or len(name) > 60:
        errors.append(FieldError("name", "is required (at most 60 characters)", name))
    elif "\x00" in name:  # PostgreSQL cannot store it (the segment builder's "save as a rule tag" sends it as typed)
        errors.append(FieldError("name", "Null characters are not allowed.", ""))
    elif has_control(name):
        errors.append(FieldError("name", CONTROL_CHARACTERS, name[:40]))
    elif group and keyword_fold(name) in {keyword_fold(other) for other in Tag.objects.filter(
            chain_id=chain_id, group=group).exclude(pk=tag.pk if tag else None).values_list("name", flat=True)}:
        # "ＶＩＰ", "vip" and "VIP" read as one tag in a picker (and the keyword scan folds them alike): one per group.
        errors.append(FieldError("name", "is already used by another tag in this group", name))
    if kind not in TagKind.values:
        errors.append(FieldError("kind", f"must be one of {', '.join(TagKind.values)}", kind))
    if not _COLOUR.match(colour):
        errors.append(FieldError("colour", "must be a colour like #2563eb", colour))
    if len(description) > 255:
        errors.append(FieldError("description", "must be at most 255 characters", description[:40]))
    elif has_control(description):
        errors.append(FieldError("description", CONTROL_CHARACTERS, description[:40]))
    rule_unreadable = False
    if isinstance(rule, str):
        text = rule.strip()
        try:
            rule = json.loads(text) if text else None
        except ValueError as exc:
            errors.append(FieldError("rule", f"is not valid JSON ({exc.msg}, line {exc.lineno})", text[:80]))
            rule, rule_unreadable = None, True
    if rule_unreadable:
        pass
    elif kind == TagKind.RULE and not rule:
        errors.append(FieldError("rule", "is required for a rule tag", None))
    elif rule is not None and not isinstance(rule, dict):
        errors.append(FieldError("rule", "must be a rule tree object such as {\"all\": [...]}", str(rule)[:80]))
    elif rule is not None:
        # The segment rule language (fields, operators, the chain's clinics, tags and tiers): refused here with
        # the validator's path and message, not saved to be skipped by the nightly job.
        errors += rule_check(rule, chain_id=chain_id, code=code)
    keywords = _keywords_clean(current("keywords", []))
    if keywords is None:
        errors.append(FieldError("keywords", "must be a list of words", str(data.get("keywords"))[:80]))
        keywords = []
    elif kind == TagKind.KEYWORD and not keywords:
        errors.append(FieldError("keywords", "at least one keyword is required for a keyword tag", ""))
    elif any(len(k) > 40 for k in keywords):
        errors.append(FieldError("keywords", "each keyword must be at most 40 characters",
                                 next(k for k in keywords if len(k) > 40)))
    elif any(has_control(k) for k in keywords):
        errors.append(FieldError("keywords", CONTROL_CHARACTERS, next(k for k in keywords if has_control(k))[:40]))
    threshold = _int_field(errors, "keyword_threshold", current("keyword_threshold", 2), low=1, high=1000,
                           message="must be a whole number of at least 1")
    window = _int_field(errors, "keyword_window_days", current("keyword_window_days", 30), low=1, high=3650,
                        message="must be a whole number of days of at least 1")
    kinds = current("keyword_kinds", ["chat", "call"])
    if isinstance(kinds, str):
        kinds = [k.strip() for k in kinds.split(",") if k.strip()]
    if not isinstance(kinds, (list, tuple)) or not kinds or any(k not in _SCANNABLE_KINDS for k in kinds):
        errors.append(FieldError("keyword_kinds", "must list timeline kinds among "
                                 + ", ".join(sorted(_SCANNABLE_KINDS)), str(kinds)))
        kinds = ["chat", "call"]
    if errors:
        raise ValidationFailed(errors)
    if rule:  # checked: stored as the segments app stores rules (clinics by id)
        rule = rule_normalise(rule, chain_id=chain_id)
    return {"group": group, "code": code, "name": name, "kind": kind, "colour": colour, "description": description,
            "is_active": is_active, "rule": rule if kind == TagKind.RULE else (rule or None),
            "keywords": keywords, "keyword_threshold": threshold, "keyword_window_days": window,
            "keyword_kinds": list(dict.fromkeys(kinds))}


@transaction.atomic
def tag_create(*, chain: Chain | int, data: dict) -> Tag:
    """Create a tag. `data`: group (object, id or code), code, name, kind, colour, rule, keywords,
    keyword_threshold, keyword_window_days, keyword_kinds, description, is_active."""
    chain_id = _chain_id(chain)
    clean = _tag_clean(chain_id=chain_id, data=data, tag=None)
    return _saved_once(lambda: Tag.objects.create(chain_id=chain_id, **clean), what="tag")


@transaction.atomic
def tag_update(*, tag: Tag, data: dict) -> Tag:
    """Change a tag. Changing a keyword tag's keywords applies from the next scan on (no re-scan of the past);
    making it easier to reach (a lower threshold, a wider window, switched on again) tags at once every patient
    whose hits already counted reach it (`keyword_tag_recheck`)."""
    was = (tag.kind, tag.is_active, tag.keyword_threshold, tag.keyword_window_days)
    clean = _tag_clean(chain_id=tag.chain_id, data=data, tag=tag)
    for name, value in clean.items():
        setattr(tag, name, value)
    tag.save(update_fields=[*clean, "updated_at"])
    kind, active, threshold, window = was
    if tag.kind == TagKind.KEYWORD and tag.is_active and (
            kind != TagKind.KEYWORD or not active or tag.keyword_threshold < threshold
            or tag.keyword_window_days > window):
        keyword_tag_recheck(tag=tag)
    return tag


# --- tags on patients ----------------------------------------------------------------------------------


# Sources of a tag put on by a person (a page, an integration, a file): a rule tag is its rule's to set, since a
# row set so would outlive the rule (the nightly sync never removes a tag set another way).
_HAND_SOURCES = frozenset({TagSource.MANUAL, TagSource.API, TagSource.IMPORT})
_RULE_OWNED = "is a rule tag: its rule puts it on and takes it off every night; change the rule instead"


def _not_rule_kind(tag: Tag) -> None:
    if tag.kind == TagKind.RULE:
        raise ValidationFailed([FieldError("tag", _RULE_OWNED, tag.code)])


def _same_chain(*, customer: Customer, tag: Tag) -> None:
    if customer.chain_id != tag.chain_id:
        raise NotFound("Tag not found", field="tag")


@transaction.atomic
def tag_apply(*, customer: Customer, tag: Tag, actor: Staff | None, source: str = TagSource.MANUAL,
              evidence: dict | None = None, at: dt.datetime | None = None) -> CustomerTag:
    """Put `tag` on `customer`. Idempotent: a tag already there is returned unchanged (its first setter kept).

    A hand-set tag (source manual) writes one timeline entry, so the patient's story says who tagged them;
    automatic and bulk tagging do not (they would drown the timeline; the tag row carries who/when/why).
    """
    if source not in TagSource.values:
        raise ValidationFailed([FieldError("source", f"must be one of {', '.join(TagSource.values)}", source)])
    _same_chain(customer=customer, tag=tag)
    if customer.merged_into_id:
        raise NotFound("Customer not found")
    # The patient's row first, the erasure's order: a tag inserted meanwhile outlived the erasure (its DELETE could
    # not see it). An erasure committed while this waited is read under the lock, and so is a merge (NotFound).
    if customer.erased_at is not None or customer_lock_live(customer.pk):  # their marketing profile went with them
        raise Conflict(ERASED_REFUSED, code="erased", field="customer")
    if not tag.is_active:
        raise ValidationFailed([FieldError("tag", "is not active", tag.code)])
    if source in _HAND_SOURCES:
        _not_rule_kind(tag)
    row, created = CustomerTag.objects.get_or_create(
        customer=customer, tag=tag,
        defaults={"chain_id": customer.chain_id, "source": source, "set_by": actor, "set_at": at or timezone.now(),
                  "evidence": evidence or {}})
    if created and source == TagSource.MANUAL:
        interaction_add(customer=customer, kind=InteractionKind.SYSTEM, author=actor, occurred_at=row.set_at,
                        text=timeline_format(TAG_ADDED, tag=tag.name),
                        data={"tag": tag.code, "action": "tag.add"})
    return row


@transaction.atomic
def tag_remove(*, customer: Customer, tag: Tag, actor: Staff | None) -> bool:
    """Take `tag` off `customer`. True if it was there; writes a timeline entry then. A row a rule tag's rule set is
    refused (the next sync would put it back): one set by hand before the tag became a rule tag may go, and so
    may one its rule set before it became a manual tag or was switched off (no sync touches it any more)."""
    _same_chain(customer=customer, tag=tag)
    # The patient's row before the tag row, the erasure's order (it holds the patient, then deletes the tags): the
    # other way round the two deadlocked, the timeline entry's foreign key waiting at commit for the patient.
    customers_lock(customer.pk)
    if tag.kind == TagKind.RULE and tag.is_active and CustomerTag.objects.filter(customer=customer, tag=tag,
                                                                                 source=TagSource.RULE).exists():
        raise ValidationFailed([FieldError("tag", _RULE_OWNED, tag.code)])
    removed, _ = CustomerTag.objects.filter(customer=customer, tag=tag).delete()
    if removed:
        interaction_add(customer=customer, kind=InteractionKind.SYSTEM, author=actor,
                        text=timeline_format(TAG_REMOVED, tag=tag.name),
                        data={"tag": tag.code, "action": "tag.remove"})
    return bool(removed)


def _bulk_targets(*, scope: Scope, customer_ids, tag: Tag, erasures_wait: bool = False) -> tuple[list[int], list[int]]:
    """The ids, deduplicated, after checking every one is a live patient inside `scope` (else nothing happens), and
    those of them whose personal information was erased (read in the same query; after waiting out the erasures in
    progress of them when `erasures_wait`)."""
    if not scope.can(Perm.TAG_APPLY):
        raise PermissionDenied("Your role may not tag patients")
    if tag.chain_id != scope.chain_id:
        raise NotFound("Tag not found", field="tag")
    try:
        if isinstance(customer_ids, (str, bytes)) or any(isinstance(i, (bool, float)) for i in customer_ids):
            raise TypeError  # True is not customer 1, nor 1.5 customer 1
        ids = sorted({int(i) for i in customer_ids})
    except (TypeError, ValueError):
        raise ValidationFailed([FieldError("customer_ids", "must be a list of customer ids", str(customer_ids)[:80])])
    if not ids:
        raise ValidationFailed([FieldError("customer_ids", "select at least one customer", "")])
    if len(ids) > 10_000:
        raise ValidationFailed([FieldError("customer_ids", "at most 10,000 customers at a time", str(len(ids)))])
    if erasures_wait:
        # Their rows first (the erasure's order; one statement, id order, FOR KEY SHARE), the erased read under them:
        # rows inserted for someone erased meanwhile outlived the erasure (its DELETE could not see them).
        customers_erasures_wait(Customer.objects.filter(pk__in=[i for i in ids if 0 < i <= BIGINT_MAX]).values("pk"))
    found: set[int] = set()
    erased: list[int] = []
    for start in range(0, len(ids), 900):
        chunk = [i for i in ids[start:start + 900] if 0 < i <= BIGINT_MAX]  # past the key column: no one (a 500)
        for pk, erased_at in customer_queryset(scope).filter(pk__in=chunk).values_list("id", "erased_at"):
            found.add(pk)
            if erased_at is not None:
                erased.append(pk)
    missing = [i for i in ids if i not in found]
    if missing:
        shown = ", ".join(str(i) for i in missing[:20]) + (" …" if len(missing) > 20 else "")
        raise ValidationFailed([FieldError("customer_ids", f"not found or outside your clinics: {shown}",
                                           ",".join(str(i) for i in missing[:100]))])
    return ids, sorted(erased)


ERASED_NOT_TAGGED = "personal information erased, so not tagged"


@transaction.atomic
def tags_bulk_apply(*, scope: Scope, customer_ids: list[int], tag: Tag, actor: Staff | None,
                    source: str = TagSource.MANUAL) -> int:
    """Tag a list selection: all or nothing. Returns how many patients newly got the tag."""
    ids, erased = _bulk_targets(scope=scope, customer_ids=customer_ids, tag=tag, erasures_wait=True)
    if not tag.is_active:
        raise ValidationFailed([FieldError("tag", "is not active", tag.code)])
    if source in _HAND_SOURCES:
        _not_rule_kind(tag)
    if erased:  # (the list page leaves them out; a forged or stale selection does not)
        shown = ", ".join(str(i) for i in erased[:20]) + (" …" if len(erased) > 20 else "")
        raise ValidationFailed([FieldError("customer_ids", f"{ERASED_NOT_TAGGED}: {shown}",
                                           ",".join(str(i) for i in erased[:20]))])
    # One bulk tagging of a tag at a time: two at once each counted (and audited) the rows it meant to add, though
    # the database kept only one of each (ignore_conflicts); serialised, each reads what the other added.
    list(Tag.objects.select_for_update(no_key=True).filter(pk=tag.pk).values_list("pk", flat=True))
    now = timezone.now()
    have = set()
    for start in range(0, len(ids), 900):
        have.update(CustomerTag.objects.filter(tag=tag, customer_id__in=ids[start:start + 900])
                    .values_list("customer_id", flat=True))
    rows = [CustomerTag(customer_id=i, tag=tag, chain_id=tag.chain_id, source=source, set_by=actor, set_at=now,
                        evidence={"bulk": True}) for i in ids if i not in have]
    CustomerTag.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
    audit_record(actor=_user(scope), action="tag.bulk_apply", object_type="tag", object_id=tag.pk,
                 detail={"tag": tag.code, "added": len(rows), "customer_ids": ids})  # all (≤ 10,000): the audit
    # log page finds the event by any of them (core.audit.PATIENT_LIST_ACTIONS)
    return len(rows)


@transaction.atomic
def tags_bulk_remove(*, scope: Scope, customer_ids: list[int], tag: Tag, actor: Staff | None) -> int:
    """Untag a list selection: all or nothing. Returns how many patients lost the tag."""
    ids, _erased = _bulk_targets(scope=scope, customer_ids=customer_ids, tag=tag)  # untagging them is fine
    if tag.kind == TagKind.RULE and tag.is_active:  # a switched-off rule's rows: no sync touches them any more
        for start in range(0, len(ids), 900):
            if CustomerTag.objects.filter(tag=tag, source=TagSource.RULE,
                                          customer_id__in=ids[start:start + 900]).exists():
                raise ValidationFailed([FieldError("tag", _RULE_OWNED, tag.code)])
    removed = 0
    for start in range(0, len(ids), 900):
        removed += CustomerTag.objects.filter(tag=tag, customer_id__in=ids[start:start + 900]).delete()[0]
    audit_record(actor=_user(scope), action="tag.bulk_remove", object_type="tag", object_id=tag.pk,
                 detail={"tag": tag.code, "removed": removed, "customer_ids": ids})  # all, as above
    return removed


def _user(scope: Scope):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(pk=scope.user_id).first() if scope.user_id else None


# --- rule tags -------------------------------------------------------------------------------------------


def _json_param(value: dict) -> tuple[str, str]:
    """A placeholder and its parameter for a JSON value in raw SQL on SQLite and PostgreSQL."""
    if connection.vendor == "postgresql":
        return "CAST(%s AS jsonb)", json.dumps(value)
    return "%s", json.dumps(value)


@transaction.atomic
def rule_tag_sync(*, tag: Tag, customer_ids: QuerySet, at: dt.datetime | None = None,
                  among: list[int] | None = None) -> dict:
    """Make the rule-set rows of `tag` match `customer_ids` (a queryset of customer ids, e.g. a compiled
    segment's `.values("id")`), in two statements: INSERT … SELECT of the missing ones and DELETE of rule
    rows no longer matching. Rows set any other way (by hand, API, keyword) are never removed; a patient
    who already carries the tag by hand is not given a second row. `among`: only these customers' rows are
    added or removed (a merge re-checks its survivor); None: the whole chain's."""
    at = at or timezone.now()
    # An erased person is never profiled again, whatever the ids given (segments leave them out too).
    live = Customer.objects.filter(pk__in=customer_ids, chain_id=tag.chain_id, merged_into__isnull=True,
                                   erased_at__isnull=True)
    if among is not None:
        live = live.filter(pk__in=among)
    missing = live.exclude(Exists(CustomerTag.objects.filter(tag_id=tag.pk, customer_id=OuterRef("pk")))).values("id")
    added = 0
    try:
        select_sql, select_params = missing.query.sql_with_params()
    except EmptyResultSet:  # an empty queryset (`.none()`): nothing to add
        select_sql = None
    if select_sql:
        json_sql, json_value = _json_param({"rule": True, "at": at.isoformat()})
        table = CustomerTag._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                # ON CONFLICT: a row another writer added since `missing` was read (the nightly job run twice at
                # once by two workers, a hand-set tag) is left as it is instead of failing the whole job. SQLite
                # needs the WHERE to read ON CONFLICT as the upsert clause, not as a join's ON.
                f"INSERT INTO {table} (customer_id, tag_id, chain_id, source, set_at, evidence) "
                f"SELECT sub.id, %s, %s, %s, %s, {json_sql} FROM ({select_sql}) sub WHERE 1 = 1 "
                f"ON CONFLICT DO NOTHING",
                [tag.pk, tag.chain_id, TagSource.RULE, connection.ops.adapt_datetimefield_value(at), json_value,
                 *select_params],
            )
            added = max(cursor.rowcount, 0)
    stale = CustomerTag.objects.filter(tag_id=tag.pk, source=TagSource.RULE)
    if among is not None:
        stale = stale.filter(customer_id__in=among)
    removed, _ = (stale.exclude(Exists(Customer.objects.filter(pk__in=customer_ids, pk=OuterRef("customer_id"))))
                  .delete())
    return {"added": added, "removed": removed}


# --- merges ---------------------------------------------------------------------------------------------


def tagging_merge_hook(*, survivor: Customer, merged: Customer) -> None:
    """Before customers' generic foreign-key move: drop the merged record's tags the survivor already has
    (the survivor's row and its setter win, unless its rule set it and the merged record's was set another way)
    and fold keyword-hit days both share into the survivor's rows,
    so the move cannot break the unique constraints; then set the keyword tags their hits together reach."""
    # A row its rule set yields to one set any other way: kept, the rule row would be removed by the next sync
    # that no longer matches, taking the hand-set tag with it.
    hand_set = CustomerTag.objects.filter(customer=merged).exclude(source=TagSource.RULE).values("tag_id")
    CustomerTag.objects.filter(customer=survivor, source=TagSource.RULE, tag_id__in=hand_set).delete()
    survivor_tags = CustomerTag.objects.filter(customer=survivor).values("tag_id")
    CustomerTag.objects.filter(customer=merged, tag_id__in=survivor_tags).delete()
    shared = KeywordHit.objects.filter(customer=merged, tag_id=OuterRef("tag_id"), day=OuterRef("day"))
    theirs = {(h.tag_id, h.day): h for h in KeywordHit.objects.filter(customer=merged)}
    if theirs:
        for hit in KeywordHit.objects.filter(customer=survivor).filter(Exists(shared)):
            other = theirs[(hit.tag_id, hit.day)]
            counts = dict(hit.counts)
            for keyword, n in other.counts.items():
                counts[keyword] = counts.get(keyword, 0) + n
            KeywordHit.objects.filter(pk=hit.pk).update(
                hits=F("hits") + other.hits, counts=counts,
                interaction_ids=(hit.interaction_ids + other.interaction_ids)[:KEYWORD_IDS_KEPT])
            other.delete()
        # Hits of both records may now reach a window neither reached alone.
        keyword_tags_merged(survivor=survivor, merged=merged)


def tagging_erase_hook(*, customer: Customer, actor: Staff | None = None) -> dict:
    """Before a person's personal information is erased (customers.privacy): their tags (a profile of interests,
    value and behaviour, what marketing selects by) and their keyword-hit counts go. Rule tags do not come back:
    segments leave erased people out."""
    tags, _ = CustomerTag.objects.filter(customer=customer).delete()
    KeywordHit.objects.filter(customer=customer).delete()
    return {"tags_removed": tags}

