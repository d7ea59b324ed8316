"""Reads over the patient pool. Every function takes the staff member's Scope first."""

import datetime as dt
import functools
import operator
import re
from dataclasses import dataclass

from django.core.exceptions import FieldDoesNotExist
from django.db import connection
from django.db.models import BooleanField, Count, Exists, F, Func, OuterRef, Q, QuerySet, Subquery

from smileloop.core.errors import NotFound
from smileloop.core.scoping import Scope
from smileloop.core.sql import page_clause, select_in, select_model, select_models
from smileloop.customers.enums import IdentityKind, Relation
from smileloop.customers.models import (
    Consent,
    Customer,
    CustomerSearchKey,
    Household,
    HouseholdMember,
    Identity,
    Interaction,
)
from smileloop.customers.normalize import name_masked, phone_normalize, prefix_upper_bound, to_halfwidth


def customer_queryset(scope: Scope) -> QuerySet[Customer]:
    """Live (not merged) customers this scope may see: its clinics' patients, or the ones it owns."""
    qs = Customer.objects.filter(chain_id=scope.chain_id, merged_into__isnull=True)
    if scope.clinic_ids is not None:
        # a scope without a staff member owns no one (consultant_id=None would read as IS NULL: every unowned patient)
        owned = Q(consultant_id=scope.staff_id) if scope.staff_id is not None else Q(pk__in=[])
        qs = qs.filter(Q(home_clinic_id__in=scope.clinic_ids) | owned)
    return qs


def erased_ids(chain_id: int) -> QuerySet:
    """The chain's erased people (customers.privacy.customer_erase) as a one-column subquery: a few rows, read from
    the partial index customer_erased."""
    return Customer.objects.filter(chain_id=chain_id, erased_at__isnull=False).order_by().values("id")


def without_erased(qs: QuerySet, *, chain_id: int, column: str = "pk") -> QuerySet:
    """`qs` without the rows whose `column` (a customer id) is an erased person: what segments and the follow-up
    engine target. An erased person is kept as an anonymous record of their bills, never marketed to again."""
    return qs.exclude(**{f"{column}__in": erased_ids(chain_id)})


def scope_covers(scope: Scope, *, chain_id: int, home_clinic_id: int | None, consultant_id: int | None) -> bool:
    """Whether a customer with these facts is one `scope` may see or change (the rule of customer_queryset, for
    callers that hold the facts already: imports, upserts)."""
    if scope.chain_id != chain_id:
        return False
    return scope.clinic_ids is None or home_clinic_id in scope.clinic_ids or (
        consultant_id is not None and consultant_id == scope.staff_id)


def customer_visible(scope: Scope, customer: Customer) -> bool:
    """Whether `customer_queryset(scope)` holds this customer (live, and in the scope), on a row already read."""
    return customer.merged_into_id is None and scope_covers(
        scope, chain_id=customer.chain_id, home_clinic_id=customer.home_clinic_id,
        consultant_id=customer.consultant_id)


def name_for(reader: Scope | None, customer: Customer) -> str:
    """Another patient's name as the reader of a message may see it: in full in their scope, else (or with no
    reader) masked, 张* (PIPL)."""
    return customer.name if reader is not None and customer_visible(reader, customer) else name_masked(customer.name)


def customer_get(scope: Scope, customer_id) -> Customer:
    """Raises NotFound for ids outside the scope, so other clinics' patients are indistinguishable from none."""
    try:
        customer_id = int(customer_id)
    except (TypeError, ValueError):
        raise NotFound("Customer not found")
    if not 0 < customer_id < 2**63:  # no such key (and nothing the database could compare with a bigint)
        raise NotFound("Customer not found")
    # Every page and API call about one patient starts here: one plain read (core.sql) of the row and the
    # staff and clinic it names, then the scope's rule on it.
    customer = select_model(Customer, "t0.id = %s AND t0.chain_id = %s", [customer_id, scope.chain_id],
                            related=("home_clinic", "consultant", "first_touch_staff", "last_touch_staff"))
    if customer is None or not customer_visible(scope, customer):
        raise NotFound("Customer not found")
    return customer


_MERGE_HOPS = 20  # merges of merges followed at most (a record merged into one merged later, and so on)


def customer_survivor_get(scope: Scope, customer_id) -> Customer:
    """The live record a merged-away `customer_id` became (through merges of merges), when `scope` may see it.

    NotFound otherwise, as customer_get: for an id that was never merged (customer_get answers those), of another
    chain, or whose survivor is outside the scope, so an old link tells nothing about a record the reader may not
    see. One small read a merge followed, then customer_get."""
    try:
        current = int(customer_id)
    except (TypeError, ValueError):
        raise NotFound("Customer not found")
    if not 0 < current < 2**63:
        raise NotFound("Customer not found")
    start = current
    for _hop in range(_MERGE_HOPS + 1):
        rows = list(Customer.objects.filter(pk=current, chain_id=scope.chain_id)
                    .values_list("merged_into_id", flat=True)[:1])
        if not rows:
            raise NotFound("Customer not found")
        if rows[0] is None:
            break
        current = rows[0]
    else:
        raise NotFound("Customer not found")
    if current == start:
        raise NotFound("Customer not found")
    return customer_get(scope, current)


class _IdAnyOf(Func):
    """`id = ANY(ARRAY(<subquery>))` (PostgreSQL): the subquery becomes an InitPlan run once, the rows
    are fetched through the primary key."""

    arg_joiner = " = ANY(ARRAY("
    template = "(%(expressions)s)))"
    output_field = BooleanField()


_DIGITS = re.compile(r"^\+?\d+$")
_ASCII_WORD = re.compile(r"^[a-z]+$")


def customer_search(qs: QuerySet[Customer], *, chain_id: int, q: str, clinic_ids=None,
                    staff_id: int | None = None) -> QuerySet[Customer]:
    """Search by phone (full or last 4 digits), name prefix, pinyin initials or full pinyin.

    Every branch is an index range scan: no LIKE '%…%' over a million rows.
    """
    text = _search_text(q)
    if not text:
        return qs
    if _DIGITS.match(text):
        if len(text) == 4:
            return qs.filter(mobile_tail=text)
        if len(text) >= 7:
            try:
                phone = phone_normalize(text)
            except ValueError:
                pass
            else:
                # A second number on file (an imported landline, a phone identity) finds its person too. Its
                # owners are read first (the unique identity index), so the query is two index lookups OR-ed,
                # not a subquery PostgreSQL would probe for every row.
                owners = list(Identity.objects.filter(chain_id=chain_id, kind=IdentityKind.PHONE, external_id=phone)
                              .values_list("customer_id", flat=True))
                return qs.filter(Q(mobile=phone) | Q(pk__in=owners)) if owners else qs.filter(mobile=phone)
        digits = text.lstrip("+")
        prefix = "+86" + digits if not text.startswith("+") else text
        return qs.filter(mobile__gte=prefix, mobile__lt=prefix_upper_bound(prefix))
    lowered = text.lower()
    if _ASCII_WORD.match(lowered):
        kind = CustomerSearchKey.INITIALS if len(lowered) <= 4 else CustomerSearchKey.FULL
        keys = CustomerSearchKey.objects.filter(chain_id=chain_id, value__gte=lowered,
                                                value__lt=prefix_upper_bound(lowered))
        if kind == CustomerSearchKey.FULL:
            keys = keys.filter(kind=kind)
        else:
            keys = keys.filter(kind__in=[CustomerSearchKey.INITIALS, CustomerSearchKey.FULL])
        if clinic_ids is None:
            if len(lowered) >= 2:
                # The matching ids from the covering key index alone, then the newest by primary key: bounded
                # by the matches (zs: 10,900 keys, 5 ms at 1M), where walking the primary key newest-first
                # against the keys depends on how many recent people match (15 ms for zs, far more for rare
                # initials; on SQLite at 120k: 4–62 ms walking, 0.2–1.5 ms with `id IN (ids)`). A single
                # letter matches a tenth of the pool, and that walk stops at once.
                return _with_ids(qs, keys.values("customer_id"))
            return qs.filter(Exists(keys.filter(customer_id=OuterRef("pk"))))
        # Clinic staff: filter on the key's copy of the home clinic inside the index; customers they own
        # as consultant in other clinics are matched too. One id list (a UNION ALL of the two), not an OR
        # of two EXISTS, so the query is driven by the clinic's matching keys (an index-only range on
        # search_key_clinic) instead of walking the clinic's customers newest-first and probing each
        # (EXPLAIN at 200k customers: 10,454 rows filtered away for 20; bench p95 250 ms).
        ids = keys.filter(home_clinic_id__in=clinic_ids).values("customer_id")
        if staff_id:
            # The people they own outside their clinics (usually none: the clinic's keys above hold the rest),
            # from the (consultant, home clinic) index, and then their keys by customer id. Matching the
            # chain's keys against everyone they own probed every chain-wide match (a consultant's "zs" at
            # 1.1M customers on PostgreSQL: 8,682 probes, 60 ms). No chain condition: the chain is not in that
            # index, and the keys and the outer query already hold it.
            owned = (Customer.objects.filter(consultant_id=staff_id).exclude(home_clinic_id__in=clinic_ids)
                     .order_by().values("id"))
            ids = ids.union(_with_ids(keys, owned, column="customer_id").values("customer_id"), all=True)
        return _with_ids(qs, ids)
    names = dict(chain_id=chain_id, name__gte=text, name__lt=prefix_upper_bound(text))
    if len(text) >= 2 or connection.vendor == "sqlite":
        # Two characters or more match a few thousand people at most: their ids come from the name index alone
        # (it includes the id), and the page is the newest of them by primary key. Walking the primary key
        # newest-first and filtering by name instead skipped ~200k rows for 王静 at 1M customers (87.7 ms vs
        # 1.0 ms). A lone surname (王) matches tens of thousands, and on PostgreSQL that walk finds 20 of them
        # at once. SQLite, with complete statistics, answered a plain filter by reading every match's row and
        # sorting them all (at 1.1M customers: 欧阳 193 ms, 王 897 ms); by ids: 3 ms and 35 ms (王 is ~7 % of
        # the pool, the worst case), and a rare surname 1 ms where a walk would read the whole pool.
        return _with_ids(qs, Customer.objects.filter(**names).order_by().values("id"))
    return qs.filter(**names)


def _with_ids(qs: QuerySet, ids: QuerySet, *, column: str = "pk") -> QuerySet:
    """The rows of `qs` whose `column` (default the id) `ids` (a one-column subquery) yields. PostgreSQL would
    walk the primary key newest-first against a semi-join (LIMIT makes that look cheap); `id = ANY(ARRAY(
    subquery))` runs the subquery once and fetches rows by id. SQLite does the same with `id IN (subquery)`."""
    if connection.vendor == "postgresql":
        return qs.filter(_IdAnyOf(F(column), Subquery(ids)))
    return qs.filter(**{f"{column}__in": ids})


def customer_list(scope: Scope, *, q: str = "", clinic_id: int | None = None, stage: str = "",
                  source: str = "", tag_id: int | None = None, has_mobile: bool | None = None) -> QuerySet[Customer]:
    qs = customer_queryset(scope)
    qs = customer_search(qs, chain_id=scope.chain_id, q=q, clinic_ids=scope.clinic_ids, staff_id=scope.staff_id)
    if clinic_id:
        qs = qs.filter(home_clinic_id=clinic_id)
    if stage:
        qs = qs.filter(stage=stage)
    if source:
        qs = qs.filter(first_touch_channel=source)
    if tag_id:
        qs = _tagged(qs, tag_id)
    if has_mobile is not None:
        qs = qs.filter(mobile__isnull=not has_mobile)
    if connection.vendor == "postgresql" and _searches_by_ids(q, clinic_ids=scope.clinic_ids):
        # The query runs as "fetch the matching ids, walk them newest-first, stop at the page": joins on
        # top make PostgreSQL fetch and sort every match instead (EXPLAIN at 200k customers, 2,290
        # matches: 139 ms with the joins, 1.5 ms without), so the page's clinics and consultants come in
        # two small follow-up queries.
        return qs.prefetch_related("home_clinic", "consultant").order_by("-id")
    return qs.select_related("home_clinic", "consultant").order_by("-id")


# --- tags (the tagging app, a higher layer, owns them) ---------------------------------------------------------


def _tagging_models() -> tuple[type | None, type | None]:
    """The tagging app's CustomerTag and Tag, found through the model registry (the reverse relation `Customer.tags`
    and its `tag`), as customer_merge finds later apps' rows: this app sits below tagging and never imports it (the
    layers rule). (None, None) where the tagging app is not installed."""
    try:
        customer_tag = Customer._meta.get_field("tags").related_model
    except FieldDoesNotExist:
        return None, None
    return customer_tag, customer_tag._meta.get_field("tag").related_model


def _tagged(qs: QuerySet[Customer], tag_id: int) -> QuerySet[Customer]:
    """The customers of `qs` carrying the tag: a semi-join on the tag's rows (`id IN (SELECT customer_id … WHERE
    tag_id = …)`, read from the (tag, customer) index alone), so PostgreSQL picks the side to drive from and SQLite
    drives from the tag's patients. The scope stays `qs`'s: a tag names no one outside it."""
    customer_tag, _tag = _tagging_models()
    if customer_tag is None:
        return qs.none()
    return qs.filter(pk__in=customer_tag.objects.filter(tag_id=tag_id).order_by().values("customer_id"))


def tag_options(scope: Scope) -> list[tuple[str, list[tuple[int, str]]]]:
    """The chain's tags by group, [(group name, [(tag id, tag name), …]), …] in the tag pages' order: what the customer
    list filters by (any staff member of the chain sees its tag catalogue; the patients shown stay their scope's).
    One query."""
    _customer_tag, tag = _tagging_models()
    if tag is None:
        return []
    groups: dict[int, tuple[str, list[tuple[int, str]]]] = {}
    for tag_id, name, group_id, group_name in (
            tag.objects.filter(chain_id=scope.chain_id)
            .order_by("group__ordering", "group_id", "name", "id")
            .values_list("id", "name", "group_id", "group__name")):
        groups.setdefault(group_id, (group_name, []))[1].append((tag_id, name))
    return list(groups.values())


def customer_page(scope: Scope, *, start: int, size: int, **filters) -> list[Customer]:
    """One page of `customer_list` (newest first). On SQLite in two reads: the page's ids, then those rows. SQLite
    sorts whatever its plan collects; with the rows' columns (and their clinic and consultant) in the sort, a
    clinic's list sorted ~37,000 wide rows for 21 (300k customers: 80 ms; ids alone 18 ms)."""
    qs = customer_list(scope, **filters)
    if connection.vendor != "sqlite":
        return list(qs[start:start + size])
    ids = list(qs.order_by("-id").values_list("id", flat=True)[start:start + size])
    rows = {c.id: c for c in Customer.objects.filter(id__in=ids).select_related("home_clinic", "consultant")}
    return [rows[i] for i in ids]


def _search_text(q: str) -> str:
    """The query as customer_search reads it: half-width, without spaces and dashes."""
    return to_halfwidth(q or "").strip().replace(" ", "").replace("-", "")


def _is_pinyin(q: str) -> bool:
    text = _search_text(q)
    return bool(text) and not _DIGITS.match(text) and bool(_ASCII_WORD.match(text.lower()))


def _searches_by_ids(q: str, *, clinic_ids) -> bool:
    """Whether customer_search answers `q` on PostgreSQL as `id = ANY(ARRAY(matching ids))` (pinyin for clinic
    staff; pinyin and names of two characters or more chain-wide)."""
    text = _search_text(q)
    if not text or _DIGITS.match(text):
        return False
    return (_is_pinyin(text) and clinic_ids is not None) or len(text) >= 2


def customer_match(*, chain_id: int, mobile: str | None, identities: list[tuple[str, str]] = ()) -> dict:
    """Existing people that the given phone and identities name: {"mobile": Customer|None, "identities": {...}}."""
    by_mobile = None
    if mobile:
        by_mobile = Customer.objects.filter(chain_id=chain_id, mobile=mobile, merged_into__isnull=True).first()
        if by_mobile is None:
            ident = Identity.objects.filter(chain_id=chain_id, kind="phone", external_id=mobile).select_related(
                "customer").first()
            by_mobile = ident.customer if ident else None
    by_identity = {}
    for kind, external_id in identities:
        ident = Identity.objects.filter(chain_id=chain_id, kind=kind, external_id=external_id).select_related(
            "customer").first()
        if ident:
            by_identity[(kind, external_id)] = ident.customer
    return {"mobile": by_mobile, "identities": by_identity}


def consent_current(customer: Customer) -> dict[str, Consent]:
    """Latest consent row per purpose."""
    current: dict[str, Consent] = {}
    for consent in select_models(Consent, "t0.customer_id = %s", [customer.pk], related=["recorded_by"],
                                 tail="ORDER BY t0.recorded_at DESC, t0.id DESC"):
        current.setdefault(consent.purpose, consent)
    return current


@dataclass
class MergeCandidate:
    reason: str
    customers: list[Customer]


# Strongest evidence first: a record's phone held as another record's identity is near-certain; a shared name
# and phone tail is likely; a shared name and birthday only suggests (a chain of 1M has thousands of those, and
# they must not crowd the other two off the page).
MERGE_REASONS = ("same_identity", "same_name_phone_tail", "same_name_birthday", "same_name_family")
_GROUPINGS = {
    "same_name_birthday": (("name", "birthday"), Q(birthday__isnull=False)),
    "same_name_phone_tail": (("mobile_tail", "name"), ~Q(mobile_tail="")),
}


def merge_candidates_list(scope: Scope, *, reason: str | None = None, limit: int = 100) -> list[MergeCandidate]:
    """Likely duplicates, strongest evidence first (MERGE_REASONS), or those of one `reason`: a phone identity
    equal to another record's mobile, same name + phone tail, same name + birthday, same name in one family.
    Grouped in SQL; only the groups are loaded, and a kind is not queried once `limit` groups are found."""
    if reason is not None and reason not in MERGE_REASONS:
        raise ValueError(f"unknown merge reason {reason!r}")
    base = customer_queryset(scope)
    candidates: list[MergeCandidate] = []
    seen: set[frozenset[int]] = set()
    for kind in [reason] if reason else MERGE_REASONS:
        room = limit - len(candidates)
        if room <= 0:
            break
        found = (_identity_twins(scope, base, room) if kind == "same_identity"
                 else _family_namesakes(scope, base, room) if kind == "same_name_family"
                 else _grouped(scope, base, kind, room))
        for members in found:
            key = frozenset(c.id for c in members)
            if len(members) > 1 and key not in seen:
                seen.add(key)
                candidates.append(MergeCandidate(kind, members))
    return candidates[:limit]


def _duplicate_keys(scope: Scope, base: QuerySet, fields: tuple[str, ...], cond: Q, limit: int) -> list[tuple]:
    """The first `limit` keys (in key order) that more than one customer of the scope share.

    Chain-wide: one ordered walk of the index that holds the grouping and the scope's columns (customer_name:
    chain, name, birthday; customer_mobile_tail: chain, tail, name), stopping at `limit` groups: at 1.1M customers
    on SQLite 13–14 ms each, where grouping the whole chain took 2.4–2.9 s. COUNT(*), not COUNT(id): the tail index
    does not hold the id on PostgreSQL, and counting ids made the walk visit every customer row.
    A clinic's staff: that walk would cross the whole chain to find the clinic's few groups (0.5–1.5 s at 1.1M on
    PostgreSQL), so the clinic's people (through the index led by the home clinic) and the ones the staff member
    owns elsewhere are read as two branches of one UNION ALL and grouped together."""
    if scope.clinic_ids is None:
        return [tuple(g[f] for f in fields) for g in (
            base.filter(cond).values(*fields).annotate(n=Count("*")).filter(n__gt=1).order_by(*fields)[:limit])]
    live = Customer.objects.filter(chain_id=scope.chain_id, merged_into__isnull=True).filter(cond)
    live = live.order_by()  # no sort of each branch by the model's default ordering
    rows = live.filter(home_clinic_id__in=scope.clinic_ids).values(*fields)
    if scope.staff_id is not None:
        # Whom they own outside their clinics, from the (consultant, home clinic) index alone: a consultant owns
        # tens of thousands at 1M, nearly all in their own clinics, and filtering those rows read each one.
        owned = Customer.objects.filter(consultant_id=scope.staff_id).exclude(home_clinic_id__in=scope.clinic_ids)
        rows = rows.union(_with_ids(live, owned.values("pk")).values(*fields), all=True)
    sql, params = rows.query.sql_with_params()
    qn = connection.ops.quote_name
    columns = ", ".join(qn(Customer._meta.get_field(f).column) for f in fields)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM ({sql}) u GROUP BY {columns} HAVING COUNT(*) > 1 "
                       f"ORDER BY {columns} LIMIT %s", [*params, limit])
        return [tuple(row) for row in cursor.fetchall()]


def _grouped(scope: Scope, base: QuerySet, kind: str, limit: int) -> list[list[Customer]]:
    fields, cond = _GROUPINGS[kind]
    dupes = _duplicate_keys(scope, base, fields, cond, limit)
    if not dupes:
        return []
    # The groups' members in one read, an OR of the groups' whole keys, each with the chain so that every
    # branch is one probe of the grouping's index (one query per group was most of the page's time; each
    # column IN its values let SQLite read every holder of the common names in the list instead).
    keys = functools.reduce(operator.or_, (Q(chain_id=scope.chain_id, **dict(zip(fields, g, strict=True)))
                                           for g in dupes))
    by_key: dict[tuple, list[Customer]] = {}
    for c in base.filter(keys).select_related("home_clinic").order_by("id"):
        by_key.setdefault(tuple(getattr(c, f) for f in fields), []).append(c)
    return [by_key.get(group, []) for group in dupes]


def _family_namesakes(scope: Scope, base: QuerySet, limit: int) -> list[list[Customer]]:
    """Members of one household with one name and no two birthdays (one known at most): a phone-less child entered
    twice (by two PMS ids through the API, say), whom the other kinds miss while a birthday is unknown. Grouped by
    (household, name) in SQL; all must be in the scope.

    Chain-wide, the household members are walked in household order, each joined to its person (CROSS JOIN keeps
    SQLite from driving from the customers' name index and looking up every customer's household: 2.2–2.9 s at
    1M, against 0.8–0.9 s). "At most one birthday" is MIN = MAX, not COUNT(DISTINCT), which PostgreSQL can only
    aggregate sorted in one process (1.5 → 0.85 s chain-wide at 1M, 0.7 → 0.31 s for a clinic)."""
    members = connection.ops.quote_name(HouseholdMember._meta.db_table)
    if scope.clinic_ids is None:
        tables, in_scope, params = f"{members} m CROSS JOIN customers_customer c", "", []
    else:
        tables = f"{members} m JOIN customers_customer c ON c.id = m.customer_id"
        sql, params = base.order_by().values("pk").query.sql_with_params()
        in_scope = f"AND c.id IN ({sql}) "
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT m.household_id, c.name FROM {tables} "
            f"WHERE c.id = m.customer_id AND c.chain_id = %s AND c.merged_into_id IS NULL {in_scope}"
            "GROUP BY m.household_id, c.name "
            "HAVING COUNT(*) > 1 AND (MIN(c.birthday) IS NULL OR MIN(c.birthday) = MAX(c.birthday)) "
            "ORDER BY m.household_id, c.name LIMIT %s",
            [scope.chain_id, *params, limit])
        groups = [tuple(row) for row in cursor.fetchall()]
    if not groups:
        return []
    by_key: dict[tuple, list[Customer]] = {}
    for c in (base.filter(household_membership__household_id__in={h for h, _ in groups})
              .annotate(household_id=F("household_membership__household_id"))
              .select_related("home_clinic").order_by("id")):
        by_key.setdefault((c.household_id, c.name), []).append(c)
    return [by_key.get(group, []) for group in groups]


def _identity_twins(scope: Scope, base: QuerySet, limit: int) -> list[list[Customer]]:
    """Pairs where one record's phone identity is another record's mobile. Driven by the chain's phone identities
    (few), each probing its customer and the (chain, mobile) index; starting from the scope's customers read all
    of them first (1.4 s at 1.1M on SQLite). In phone order, the order of the identity index: ordered by id,
    SQLite scanned all 1.6M identities (170 ms) to avoid a sort."""
    twins = base.filter(mobile=OuterRef("external_id")).exclude(pk=OuterRef("customer_id"))
    phone_idents = list(Identity.objects.filter(chain_id=scope.chain_id, kind="phone")
                        .filter(Exists(base.filter(pk=OuterRef("customer_id"))), Exists(twins))
                        .select_related("customer").order_by("external_id")[:limit])
    by_mobile = {c.mobile: c for c in base.filter(mobile__in=[i.external_id for i in phone_idents])}
    pairs = []
    for ident in phone_idents:
        twin = by_mobile.get(ident.external_id)
        if twin and twin.id != ident.customer_id:
            pairs.append(sorted([twin, ident.customer], key=lambda c: c.id))
    return pairs


# --- the customer 360 page: reads off a customer already obtained through customer_get(scope, …) ------------


# Plain reads (core.sql) that build ordinary instances: the ORM's compilation of these small queries was
# most of their time on the 360 page.


def identity_list_for_customer(customer: Customer) -> list[Identity]:
    return select_models(Identity, "t0.customer_id = %s", [customer.pk], tail="ORDER BY t0.kind, t0.id")


def interaction_list_for_customer(customer: Customer, *, offset: int = 0, limit: int = 50) -> list[Interaction]:
    return select_models(Interaction, "t0.customer_id = %s", [customer.pk], related=["author", "clinic"],
                         tail=f"ORDER BY t0.occurred_at DESC, t0.id DESC {page_clause(offset, limit)}")


@dataclass(frozen=True)
class HouseholdInScope:
    """A household as a reader may see it: `members` all of them in order, `visible` those in the scope (named and
    linked), `hidden` how many are not. The head outside the scope has no `head_id`, and `name` (by default
    "<head's name>家") names them masked."""

    household: Household
    name: str
    head_id: int | None
    members: list[HouseholdMember]
    visible: list[HouseholdMember]
    hidden: int

    def member_id(self, member: HouseholdMember) -> int | None:
        """The member's customer id, or None for a relative outside the scope."""
        return member.customer_id if member in self.visible else None


def customer_find(scope: Scope, text: str) -> Customer | None:
    """The customer a staff member names in a field ("family member", "came with"): by customer number (#4999 or
    4999), else by mobile in any common format; None when `scope` holds no such customer."""
    # Half-width first (NFKC): a Chinese IME types "＃５０１７" or "＃5017" for #5017.
    text = to_halfwidth(text or "").strip().lstrip("#").strip()
    if text.isdigit() and len(text) < 11:
        try:
            return customer_get(scope, text)
        except NotFound:
            pass
    try:
        mobile = phone_normalize(text)
    except ValueError:
        return None
    return customer_list(scope, q=mobile).first() if mobile else None


def household_in_scope(scope: Scope, customer: Customer) -> HouseholdInScope | None:
    """The household of `customer` (obtained through a scoped selector) or None, as `scope` may see it.

    One plain read (core.sql): the household's members with their household and customer, each then marked by
    whether `customer_queryset(scope)` holds it (`customer_visible`, the same rule, on the row just read).
    """
    table = connection.ops.quote_name(HouseholdMember._meta.db_table)
    members = select_models(HouseholdMember, f"t0.household_id IN (SELECT household_id FROM {table} "
                                             f"WHERE customer_id = %s)", [customer.pk],
                            related=["household", "customer"], tail="ORDER BY t0.id")
    if not members:
        return None
    household = members[0].household
    visible = [m for m in members if customer_visible(scope, m.customer)]
    head = next((m.customer for m in members if m.customer_id == household.head_id), None)
    if head is not None and any(m.customer_id == head.pk for m in visible):
        name, head_id = household.name, head.pk
    elif head is not None and head.name.strip() and head.name.strip() in household.name:
        name, head_id = household.name.replace(head.name.strip(), name_masked(head.name)), None
    else:  # a head not among the members (not read): the name is not trusted to leave them out
        name, head_id = name_masked(household.name) if household.name else "", None
    return HouseholdInScope(household, name, head_id, members, visible, len(members) - len(visible))


# Whom to call for a patient without a phone (a child, most often), in order: the household's head, then the
# adults around them. Other children and grandchildren are never the contact.
_GUARDIAN_ORDER = (Relation.HEAD, Relation.SPOUSE, Relation.PARENT, Relation.GRANDPARENT, Relation.SIBLING,
                   Relation.OTHER)


def guardians_for(scope: Scope, customer_ids) -> dict[int, Customer]:
    """customer id → the relative to contact instead, for patients without a phone: a member of their household
    with a phone whom `scope` may see (a relative of another clinic is not offered: their number is not this
    clinic's to use). One read of the households' members for all the ids (an inbox page at once)."""
    ids = sorted({int(i) for i in customer_ids})
    if not ids:
        return {}
    table = connection.ops.quote_name(HouseholdMember._meta.db_table)
    marks = ", ".join(["%s"] * len(ids))
    members = select_models(HouseholdMember, f"t0.household_id IN (SELECT household_id FROM {table} "
                                             f"WHERE customer_id IN ({marks}))", ids,
                            related=["customer"], tail="ORDER BY t0.id")
    by_household: dict[int, list[HouseholdMember]] = {}
    for member in members:
        by_household.setdefault(member.household_id, []).append(member)
    wanted = set(ids)
    found: dict[int, Customer] = {}
    for household in by_household.values():
        contacts = sorted((m for m in household if m.relation in _GUARDIAN_ORDER and m.customer.mobile
                           and customer_visible(scope, m.customer)),
                          key=lambda m: _GUARDIAN_ORDER.index(m.relation))
        for member in household:
            if member.customer_id in wanted:
                contact = next((c.customer for c in contacts if c.customer_id != member.customer_id), None)
                if contact is not None:
                    found[member.customer_id] = contact
    return found


# --- families: whom a phone-less person given with a relative may already be ---------------------------------


def family_members_of(holders: set[int]) -> dict[int, list[tuple[int, str, str | None]]]:
    """holder id → the other live members of their household as (id, name, birthday as ISO text or None), in one
    read: whom a relative's number ('13800138000(妈妈)') may stand for."""
    if not holders:
        return {}
    members = HouseholdMember._meta.db_table
    found: dict[int, list[tuple[int, str, str | None]]] = {}
    for holder, member, name, birthday in select_in(
        f"SELECT h.customer_id, m.customer_id, c.name, c.birthday FROM {members} h "
        f"JOIN {members} m ON m.household_id = h.household_id AND m.customer_id <> h.customer_id "
        "JOIN customers_customer c ON c.id = m.customer_id AND c.merged_into_id IS NULL WHERE h.customer_id",
        [], holders,
    ):
        found.setdefault(holder, []).append((member, name, None if birthday is None else str(birthday)))
    return found


def family_member_named(members: list[tuple[int, str, str | None]], name: str, birthday=None) -> int | None:
    """The one member of `members` (family_members_of) called `name`, with `birthday` where both are known."""
    name = " ".join(name.split())
    same = [member for member, their_name, their_birthday in members
            if " ".join(their_name.split()) == name
            and (birthday is None or their_birthday is None or their_birthday == birthday.isoformat())]
    return same[0] if len(same) == 1 else None


def family_member_find(*, relative_id: int, name: str, birthday: dt.date | None = None) -> int | None:
    """The one live member of `relative_id`'s household (not the relative) called `name`, with `birthday` where both
    are known: a phone-less person registered with that relative is this person, not a second record (the import
    matches a relative's number the same way)."""
    if not name or not name.strip():
        return None
    return family_member_named(family_members_of({relative_id}).get(relative_id, []), name, birthday)


def recent_walk_in_namesakes(scope: Scope, *, name: str, birthday: dt.date | None = None, staff_id: int | None,
                             clinic_id: int | None, since: dt.datetime, limit: int = 3) -> list[Customer]:
    """Phone-less patients called `name` (as stored: customer_input_clean's name), with `birthday` where both are
    known, whom staff member `staff_id` registered, or who joined `clinic_id`, since `since`, of those `scope` may
    see; newest first. A walk-in without a phone has nothing else to be matched on: the new-customer page names these
    before it registers a second one (the same form sent again from a page the browser fetched anew). One read along
    the name index."""
    if not name:
        return []
    who = Q(first_touch_staff_id=staff_id) if staff_id is not None else Q(pk__in=[])
    if clinic_id is not None:
        who |= Q(home_clinic_id=clinic_id)
    if birthday is not None:
        who &= Q(birthday__isnull=True) | Q(birthday=birthday)
    return list(customer_queryset(scope)
                .filter(who, name=name, mobile__isnull=True, erased_at__isnull=True, created_at__gte=since)
                .select_related("home_clinic").order_by("-created_at", "-id")[:limit])


def walk_ins_named(scope: Scope, ids) -> list[Customer]:
    """The patients a namesake warning named (recent_walk_in_namesakes' ids), read again when the warning page is
    shown again (Back): those `scope` may still see and not erased since; newest first."""
    return list(customer_queryset(scope).filter(pk__in=list(ids), erased_at__isnull=True)
                .select_related("home_clinic").order_by("-created_at", "-id"))
