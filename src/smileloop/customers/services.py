"""Writes to the patient pool. Every create goes through `customer_upsert` (the API's `customer_ingest` through its
savepoint-free core `_upsert`), which never makes a second person."""

import datetime as dt
import functools
from decimal import Decimal, InvalidOperation

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, models, transaction
from django.db.models import Case, F, OuterRef, QuerySet, Subquery, Value, When
from django.db.models.functions import Cast, Concat
from django.forms.models import model_to_dict
from django.utils import timezone
from django.utils.translation import gettext_noop

from smileloop.clinics.enums import Perm
from smileloop.clinics.models import Chain, Clinic, Staff
from smileloop.core.audit import audit_record
from smileloop.core.bounds import CONTROL_CHARACTERS, has_control, row_named
from smileloop.core.bulk import rows_insert
from smileloop.core.errors import Conflict, FieldError, NotFound, PermissionDenied, ValidationFailed
from smileloop.core.scoping import Scope
from smileloop.core.sql import db_datetime, json_object, select_in
from smileloop.core.sql import execute as sql_execute
from smileloop.customers.enums import (
    STAGE_PROGRESS,
    STAGE_REVIVING,
    STAGE_SIDE,
    ConsentPurpose,
    IdentityKind,
    InteractionKind,
    Relation,
    Stage,
)
from smileloop.customers.models import (
    Consent,
    Customer,
    CustomerMerge,
    CustomerSearchKey,
    Household,
    HouseholdMember,
    Identity,
    Interaction,
)
from smileloop.customers.normalize import (
    IDENTITY_KINDS_SHOWN,
    INVISIBLE,
    MaskUnresolved,
    birthday_parse,
    channel_parse,
    gender_parse,
    name_han_gaps_drop,
    name_masked,
    notes_unmasked,
    phone_normalize,
    pinyin_keys,
    to_halfwidth,
)
from smileloop.customers.selectors import family_member_find, recent_walk_in_namesakes, scope_covers
from smileloop.customers.timeline import (
    CONTACTED_BY,
    FAMILY_ADDED,
    FAMILY_HEAD_HANDED,
    FAMILY_HEAD_TAKEN,
    FAMILY_REMOVED,
    MARKED_LOST,
    MERGED,
    MERGED_BECAUSE,
    UPDATED,
    created_text,
    fields_text,
    timeline_format,
)

# A name's zero-width spaces and direction marks are dropped: "\u200b" alone was taken as a name, and a stray
# right-to-left mark reverses how the rest of a name is shown.
_DROP_INVISIBLE = str.maketrans("", "", INVISIBLE)
TEXT_LIMITS = {"name": 50, "address": 255, "community": 100, "first_touch_campaign": 100}
CUSTOMER_FIELDS = [
    "name", "mobile", "gender", "birthday", "address", "community", "latitude", "longitude", "home_clinic",
    "consultant", "notes", "source", "campaign",
]
# The lifecycle stage is not an input of any write path (form, API, import): services derive it from events
# (customer_stage_advance); the one decision staff take by hand is `customer_mark_lost`.
STAGE_NOT_SETTABLE = ("is derived from events (contact, booking, arrival, payment, membership, referral) and "
                      "cannot be set; to mark a patient lost use POST /api/customers/{id}/lost")


def clinic_resolve(*, chain_id: int, value) -> Clinic:
    """A clinic by id, code or name within the chain. A number (JSON) is an id first; a text is a code or a name
    first, then an id: a chain whose clinic codes are digits had its clinic "10" read as the clinic of id 10, and a
    patient put in another clinic (as clinics.api reads them)."""
    text = to_halfwidth(str(value)).strip()
    clinic = row_named(Clinic.objects.filter(chain_id=chain_id), value, ("code", "name"), text=text)
    if clinic is None:
        raise ValueError("is not a clinic of this chain")
    return clinic


def _staff_resolve(*, chain_id: int, value) -> Staff | None:
    """A staff member of the chain by id, username or name; as clinic_resolve, a text is a username (a job number
    such as "1001") or a name before it is an id."""
    return row_named(Staff.objects.filter(chain_id=chain_id), value, ("user__username", "name"))


def customer_input_clean(*, chain_id: int, data: dict, partial: bool = False) -> dict:
    """Validate and normalise customer fields. Raises ValidationFailed listing every bad field.

    Returns only the fields present in `data` (all required fields when not partial), as model values.
    """
    errors: list[FieldError] = []
    out: dict = {}

    def fail(field, message, value):
        errors.append(FieldError(field, message, None if value is None else str(value)[:100]))

    def present(key):
        return key in data and data[key] is not None and str(data[key]).strip() != ""

    name = " ".join(to_halfwidth(str(data["name"])).translate(_DROP_INVISIBLE).split()) if present("name") else ""
    name = name_han_gaps_drop(name)  # 张　三 is 张三
    if name:
        if len(name) > TEXT_LIMITS["name"]:
            fail("name", f"is longer than {TEXT_LIMITS['name']} characters", name)
        elif has_control(name):  # "\x07\x07" was a name that showed as nothing
            fail("name", CONTROL_CHARACTERS, name)
        else:
            out["name"] = name
    elif not partial or "name" in data:
        fail("name", "is required", data.get("name"))
    if present("mobile"):
        try:
            out["mobile"] = phone_normalize(data["mobile"])
        except ValueError as exc:
            fail("mobile", str(exc), data["mobile"])
    elif "mobile" in data:
        out["mobile"] = None
    if present("gender"):
        try:
            out["gender"] = gender_parse(data["gender"])
        except ValueError as exc:
            fail("gender", str(exc), data["gender"])
    if present("birthday"):
        try:
            out["birthday"] = birthday_parse(data["birthday"])
        except ValueError as exc:
            fail("birthday", str(exc), data["birthday"])
    elif "birthday" in data:
        out["birthday"] = None
    for key in ("address", "community", "notes"):
        if key in data and data[key] is not None:
            text = str(data[key]).strip()
            limit = TEXT_LIMITS.get(key)
            if limit and len(text) > limit:
                fail(key, f"is longer than {limit} characters", text)
            elif has_control(text, allowed="\t\r\n" if key == "notes" else ""):
                fail(key, CONTROL_CHARACTERS, text)
            else:
                out[key] = text
    for key, bound in (("latitude", 90), ("longitude", 180)):
        if present(key):
            try:
                value = Decimal(str(data[key])).quantize(Decimal("0.000001"))
                if not -bound <= value <= bound:
                    raise InvalidOperation
                out[key] = value
            except (InvalidOperation, ValueError):
                fail(key, f"must be a number between -{bound} and {bound}", data[key])
    if present("home_clinic"):
        value = data["home_clinic"]
        if isinstance(value, Clinic):
            out["home_clinic"] = value
        else:
            try:
                out["home_clinic"] = clinic_resolve(chain_id=chain_id, value=value)
            except ValueError as exc:
                fail("home_clinic", str(exc), value)
    elif "home_clinic" in data:
        out["home_clinic"] = None  # cleared (a form's empty choice, or null)
    if present("consultant"):
        value = data["consultant"]
        if isinstance(value, Staff):
            out["consultant"] = value
        else:
            staff = _staff_resolve(chain_id=chain_id, value=value)
            if staff is None:
                fail("consultant", "is not a staff member of this chain", value)
            else:
                out["consultant"] = staff
    elif "consultant" in data:
        out["consultant"] = None
    if "stage" in data:
        fail("stage", STAGE_NOT_SETTABLE, data["stage"])
    if present("source"):
        try:
            out["first_touch_channel"] = channel_parse(data["source"])
        except ValueError as exc:
            fail("source", str(exc), data["source"])
    if present("campaign"):
        campaign = str(data["campaign"]).strip()
        if len(campaign) > TEXT_LIMITS["first_touch_campaign"]:
            fail("campaign", f"is longer than {TEXT_LIMITS['first_touch_campaign']} characters", campaign)
        elif has_control(campaign):
            fail("campaign", CONTROL_CHARACTERS, campaign)
        else:
            out["first_touch_campaign"] = campaign
    if errors:
        raise ValidationFailed(errors)
    return out


def customer_search_keys_refresh(*, customers: list[Customer], new: bool = False) -> None:
    """Rebuild the pinyin search keys of the given customers (bulk: one delete, one insert).
    `new`: the customers were just inserted and have no keys yet (the delete is skipped)."""
    if not customers:
        return
    if not new:
        CustomerSearchKey.objects.filter(customer_id__in=[c.id for c in customers]).delete()
    rows = [{"customer_id": customer.id, **row} for customer in customers for row in _search_key_rows(customer)]
    for start in range(0, len(rows), 500):
        _rows_insert(CustomerSearchKey, rows[start:start + 500])


def _search_key_rows(customer: Customer) -> list[dict]:
    """The customer's search-key rows, without customer_id (so they can be built before the INSERT)."""
    initials, full = pinyin_keys(customer.name)
    return [{"chain_id": customer.chain_id, "kind": kind, "value": v[:64], "home_clinic_id": customer.home_clinic_id}
            for kind, values in (("i", initials), ("p", full)) for v in values]


def _rows_insert(model: type[models.Model], rows: list[dict]) -> None:
    """One multi-row INSERT of plain column values, without model instances or returned ids: the write
    path of every new customer (search keys, timeline row) spends most of its time in the ORM otherwise.
    Values go through each field's own get_db_prep_save, as Model.save would send them."""
    if not rows:
        return
    fields = [model._meta.get_field(name) for name in rows[0]]
    qn = connection.ops.quote_name
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params = [field.get_db_prep_save(row[field.name if field.name in row else field.attname], connection)
              for row in rows for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
                       f"VALUES {', '.join([one] * len(rows))}", params)


def _new_row_insert(instance: models.Model, *, unless: tuple[str, list] | None = None,
                    children: list[tuple[type[models.Model], str, list[dict]]] = ()) -> bool:
    """INSERT a new instance as Model.save() would (each field's pre_save, e.g. the auto_now stamps, then
    get_db_prep_save; the pre_save/post_save signals), without the ORM's query compiler, as one
    `INSERT … ON CONFLICT DO NOTHING RETURNING id`: True, and the instance has its id, or False and
    nothing is written.

    False when the row would break a unique constraint (a clash is an answer, not an IntegrityError that
    would need a savepoint to recover from) or when the SQL condition `unless` = (sql, params), a query,
    finds a row (it runs in the same statement). Any other database error is raised as usual.
    `children` = [(model, foreign key attname, rows)]: rows inserted with the new id, only if the row was;
    on PostgreSQL in the same statement (data-modifying CTEs), elsewhere as one more INSERT each.
    """
    meta = instance._meta
    db = connections[DEFAULT_DB_ALIAS]  # resolved once: each `connection.` goes through a thread-local proxy
    instance._prepare_related_fields_for_save(operation_name="save")
    models.signals.pre_save.send(sender=type(instance), instance=instance, raw=False, using=db.alias,
                                 update_fields=None)
    qn = db.ops.quote_name
    pk = qn(meta.auto_field.column)
    fields, params = [], []
    for f in _insert_fields(type(instance)):
        value = f.pre_save(instance, True)
        if value is None and f.db_default is models.NOT_PROVIDED:
            continue  # the column's default is NULL: a shorter statement (psycopg caches those of ≤ 50 params)
        fields.append(f)
        params.append(f.get_db_prep_save(value, db))
    holes = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
    if unless:
        # INSERT … SELECT: PostgreSQL coerces the untyped parameters to the target columns as with VALUES.
        sql += f"SELECT {holes} WHERE NOT EXISTS ({unless[0]})"
        params += unless[1]
    else:
        sql += f"VALUES ({holes})"
    sql += f" ON CONFLICT DO NOTHING RETURNING {pk}"
    inline = bool(children) and db.vendor == "postgresql"
    if inline:
        ctes = [f"new AS ({sql})"]
        for model, fk, rows in children:
            if not rows:
                continue
            # Each child table's rows as one typed array per column, zipped by unnest: the statement's text
            # and parameter count do not depend on how many rows there are, so psycopg's query cache (≤ 50
            # parameters, ≤ 4 KB) keeps it parsed instead of splitting a new statement on every request.
            names = tuple(rows[0])
            child, insert = _child_insert(model, fk, names, pk)
            ctes.append(f"c{len(ctes)} AS ({insert})")
            params += [[f.get_db_prep_save(row[name], db) for row in rows] for f, name in zip(child, names, strict=True)]
        sql = f"WITH {', '.join(ctes)} SELECT {pk} FROM new"
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    setattr(instance, meta.auto_field.attname, row[0])
    instance._state.adding, instance._state.db = False, db.alias
    if not inline:
        for model, fk, rows in children:
            _rows_insert(model, [{fk: row[0], **child} for child in rows])
    models.signals.post_save.send(sender=type(instance), instance=instance, created=True, update_fields=None,
                                  raw=False, using=db.alias)
    return True


@functools.cache
def _insert_fields(model: type[models.Model]) -> tuple:
    """The columns an INSERT of a new `model` row may set (not the auto id, not generated columns)."""
    meta = model._meta
    return tuple(f for f in meta.local_concrete_fields if f is not meta.auto_field and not f.generated)


@functools.cache
def _child_insert(model: type[models.Model], fk: str, names: tuple[str, ...], pk: str) -> tuple[tuple, str]:
    """(fields, SQL) of the CTE that inserts a new row's children from one typed array per column; built once
    per shape (the column types cost a walk through Django's type tables on every call otherwise)."""
    db = connections[DEFAULT_DB_ALIAS]
    qn = db.ops.quote_name
    child = tuple(model._meta.get_field(name) for name in names)
    arrays = ", ".join(f"%s::{f.db_type(db)}[]" for f in child)
    return child, (f"INSERT INTO {qn(model._meta.db_table)} ({qn(model._meta.get_field(fk).column)}, "
                   f"{', '.join(qn(f.column) for f in child)}) SELECT new.{pk}, t.* FROM new, unnest({arrays}) AS t")


def search_keys_home_clinic_sync(*, customer_ids) -> None:
    """Copy customers' home clinic onto their search keys (one UPDATE) after a home-clinic change."""
    ids = list(customer_ids)
    if ids:
        CustomerSearchKey.objects.filter(customer_id__in=ids).update(
            home_clinic_id=Subquery(Customer.objects.filter(pk=OuterRef("customer_id")).values("home_clinic_id")[:1]))


def households_name_follow(*, head: Customer) -> None:
    """A household is called after its head ("张三家", made so by household_relative_add, the import and the seed;
    nothing else names one): a renamed head, or a merge survivor taking a household over, renames it, or the 360
    page and the family card went on calling the family by the old name."""
    Household.objects.filter(head=head).exclude(name=f"{head.name}家").update(name=f"{head.name}家",
                                                                              updated_at=timezone.now())


def _keys_follow(customer: Customer, changed) -> None:
    if "name" in changed:
        customer_search_keys_refresh(customers=[customer])
        households_name_follow(head=customer)
    elif "home_clinic" in changed:
        search_keys_home_clinic_sync(customer_ids=[customer.id])


def _apply(customer: Customer, values: dict, *, fill_only: bool) -> list[str]:
    changed = []
    for key, value in values.items():
        current = getattr(customer, key)
        if fill_only and current not in (None, "", Customer._meta.get_field(key).default):
            continue
        if current != value:
            setattr(customer, key, value)
            changed.append(key)
    if "mobile" in changed:
        customer.mobile_tail = (customer.mobile or "")[-4:]
        changed.append("mobile_tail")
    return changed


NOTES_MASKS = {
    "mask_unknown": "holds a masked number, {mask}, that stands for none of the numbers in the stored notes: a masked "
                    "number cannot be changed; send it as read, or the full number",
    "mask_ambiguous": "holds different numbers masked alike ({mask}) and a copy of one was added or removed: which "
                      "number each stands for cannot be told",
}


def _notes_unmasked(sent: str, stored: str) -> str:
    """A caller who may not see phones read the notes masked (the API's answer masks them): what it sends back has
    each mask written back as the stored number it stood for, never stored over it (normalize.notes_unmasked)."""
    try:
        return notes_unmasked(sent, stored)
    except MaskUnresolved as exc:
        raise ValidationFailed([FieldError("notes", NOTES_MASKS[exc.code].format(mask=exc.mask), exc.mask)])


def _identities_clean(identities, *, single: bool = False) -> list[tuple[str, str, str]]:
    """(kind, external id, app id) of each identity, phones normalised. `single`: one identity given as the
    request's own fields (identity_add), so errors name `kind` / `external_id`, not `identities[0].…`."""
    errors, out = [], []
    for i, item in enumerate(identities or []):
        at = "" if single else f"identities[{i}]."
        kind = str(item.get("kind", "")).strip()
        external_id = str(item.get("external_id", "")).strip()
        if kind not in IdentityKind.values:
            errors.append(FieldError(f"{at}kind", f"must be one of {', '.join(IdentityKind.values)}", kind))
        if not external_id or len(external_id) > 128:
            errors.append(FieldError(f"{at}external_id", "must be 1–128 characters", external_id))
        elif has_control(external_id):  # "oABC\x1b" would be a second identity beside "oABC"
            errors.append(FieldError(f"{at}external_id", CONTROL_CHARACTERS, external_id))
        if kind == IdentityKind.PHONE and external_id:
            try:
                external_id = phone_normalize(external_id)
            except ValueError as exc:
                errors.append(FieldError(f"{at}external_id", str(exc), external_id))
        out.append((kind, external_id, str(item.get("app_id", "") or "")[:64]))
    if errors:
        raise ValidationFailed(errors)
    return out


@transaction.atomic
def customer_upsert(*, chain: Chain | int, data: dict, identities: list[dict] | None = None,
                    actor: Staff | None = None, source: str = "api", fill_only: bool = False,
                    scope: Scope | None = None) -> tuple[Customer, bool]:
    """Create or update the one person named by `data['mobile']` or any of `identities`.

    Matching is by normalised phone, then by identity. If the phone and an identity name two different
    people, nothing is written (Conflict): merge them first. `fill_only` keeps existing values (import).
    All or nothing (its own savepoint when called inside a transaction, so a caller may carry on after
    a refusal).
    """
    return _upsert(chain_id=chain if isinstance(chain, int) else chain.id, data=data, identities=identities,
                   actor=actor, source=source, fill_only=fill_only, scope=scope)


def _upsert(*, chain_id: int, data: dict, identities: list[dict] | None, actor: Staff | None, source: str,
            fill_only: bool, scope: Scope | None, default_home_clinic_id: int | None = None,
            _retry: bool = False) -> tuple[Customer, bool]:
    """customer_upsert's work, inside the caller's atomic block and without a savepoint of its own: a
    refusal raised here fails the caller's whole transaction. `default_home_clinic_id`: the home clinic of
    a person created without one."""
    idents = _identities_clean(identities)
    values = customer_input_clean(chain_id=chain_id, data=data, partial=False)
    mobile = values.get("mobile")
    now = timezone.now()
    customer = Customer(chain_id=chain_id, **values)
    customer.mobile_tail = (customer.mobile or "")[-4:]
    if customer.first_touch_channel:
        customer.first_touch_at = now
        customer.last_touch_channel = customer.first_touch_channel
        customer.last_touch_campaign = customer.first_touch_campaign
        customer.last_touch_at = now
    if actor and not customer.first_touch_staff_id:
        customer.first_touch_staff = actor
    if customer.home_clinic_id is None and default_home_clinic_id is not None:
        customer.home_clinic_id = default_home_clinic_id
    kind = (InteractionKind.IMPORT if source == "import" else InteractionKind.FORM if source == "form"
            else InteractionKind.SYSTEM)
    timeline = {"kind": kind, "author_id": actor.id if actor else None,
                "text": created_text(source=source, channel=customer.first_touch_channel,
                                     campaign=customer.first_touch_campaign),
                "clinic_id": None, "occurred_at": now, "data": {}}
    # The common case, a new person, is one statement: the INSERT runs only if neither the mobile nor an
    # identity names anyone yet (the match probe is its condition), and does nothing if a concurrent
    # request inserted the same mobile first (the unique index waits for that one to commit). The search
    # keys and the timeline row come with it.
    _identities_lock(chain_id, idents)
    if _new_row_insert(customer, unless=_match_sql(chain_id=chain_id, mobile=mobile, idents=idents),
                       children=[(CustomerSearchKey, "customer_id", _search_key_rows(customer)),
                                 (Interaction, "customer_id", [timeline])]):
        created = True
    else:
        # Someone has this phone or identity (or just created it): update them, never make a second person.
        match = _locked_match(chain_id=chain_id, mobile=mobile, idents=idents)
        if match is None:
            # They were there a moment ago but not now (merged or deleted meanwhile): try once more.
            if _retry:
                raise Conflict("A customer with this mobile was created at the same time; retry", code="race")
            return _upsert(chain_id=chain_id, data=data, identities=identities, actor=actor, source=source,
                           fill_only=fill_only, scope=scope, default_home_clinic_id=default_home_clinic_id,
                           _retry=True)
        if scope is not None and not _in_scope(scope, match):
            # The person exists but belongs to another clinic: an upsert may not reveal or change them.
            raise Conflict("This phone or identity belongs to a customer outside your clinics", code="out_of_scope")
        customer = match
        if "notes" in values and scope is not None and not fill_only and not scope.can(Perm.PHONE_VIEW):
            values["notes"] = _notes_unmasked(values["notes"], customer.notes)
        new_channel = values.pop("first_touch_channel", None)
        new_campaign = values.pop("first_touch_campaign", None)
        changed = _apply(customer, values, fill_only=fill_only)
        if new_channel:
            if not customer.first_touch_channel:
                customer.first_touch_channel, customer.first_touch_at = new_channel, now
                customer.first_touch_campaign = new_campaign or ""
                changed += ["first_touch_channel", "first_touch_at", "first_touch_campaign"]
            customer.last_touch_channel, customer.last_touch_at = new_channel, now
            customer.last_touch_campaign = new_campaign or ""
            changed += ["last_touch_channel", "last_touch_at", "last_touch_campaign"]
        if changed:
            customer.save(update_fields=[*set(changed), "updated_at"])
            _keys_follow(customer, changed)
        created = False
    for kind, external_id, app_id in idents:
        try:
            identity_add(customer=customer, kind=kind, external_id=external_id, app_id=app_id, source=source)
        except Conflict as exc:
            if not created or exc.code != "identity_conflict":
                raise
            # The insert's probe found nobody holding it a moment ago: a concurrent upsert of this identity created
            # its person meanwhile. A transient `race` (retry: it then matches them), never the stored refusal
            # that this identity is another person's.
            raise Conflict(f"identity {kind}:{external_id} was attached concurrently; retry", code="race")
    return customer, created


def _identities_lock(chain_id: int, idents) -> None:
    """On PostgreSQL, a transaction-scoped advisory lock per identity an upsert carries, taken in one order. A
    mini-program login fires one new WeChat identity several times at once, often without a phone: no unique index
    makes the later requests wait for the first (an identity row comes after its person), so their probes all found
    nobody and all but one answered `race`. Now each waits for the one before it to commit and then finds the person
    it created. Upserts without identities (a POS sending a phone) take no lock. SQLite has one writer anyway."""
    if not idents or connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for key in sorted({f"{chain_id}:{kind}:{external_id}" for kind, external_id, _app in idents}):
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])


def _in_scope(scope: Scope, customer: Customer) -> bool:
    return scope_covers(scope, chain_id=customer.chain_id, home_clinic_id=customer.home_clinic_id,
                        consultant_id=customer.consultant_id)


# Shown translated on pages (core.messages.message_display).
ERASED_REFUSED = gettext_noop("This patient's personal information was erased")


def _refuse_erased(*customers: Customer, field: str = "customer") -> None:
    """An erased record (customers.privacy) stays anonymous: it is never merged, linked to a family or given a name,
    a phone, an identity or a marketing consent again (Conflict `erased`)."""
    if any(c.erased_at is not None for c in customers):
        raise Conflict(ERASED_REFUSED, code="erased", field=field)


def customers_refuse_erased(*customer_ids: int, field: str = "customer", locked: frozenset[int] | None = None) -> None:
    """Refuse (Conflict `erased`) a new sale, top-up, award or bill for an erased record: its care and money stay as
    an anonymous record, but nobody can come back as it (a returning patient is a new record). Call it with the rows
    locked (customers_lock), so an erasure that committed while the write waited is seen; `locked`: what that lock
    answered (the erased ids among them), so nothing is read again."""
    if locked is not None:
        erased = any(pk in locked for pk in customer_ids)
    else:
        erased = Customer.objects.filter(pk__in=customer_ids, erased_at__isnull=False).exists()
    if erased:
        raise Conflict(ERASED_REFUSED, code="erased", field=field)


def _match_sql(*, chain_id: int, mobile: str | None, idents) -> tuple[str, list] | None:
    """(sql, params) of a query over the unique indexes that finds a row when the mobile or any identity
    names an existing person; None when there is nothing to match by."""
    qn = connection.ops.quote_name
    customer, identity = qn(Customer._meta.db_table), qn(Identity._meta.db_table)
    parts, params = [], []
    if mobile:
        parts.append(f"SELECT 1 FROM {customer} WHERE {qn('chain_id')} = %s AND {qn('mobile')} = %s "
                     f"AND {qn('merged_into_id')} IS NULL")
        params += [chain_id, mobile]
    pairs = [(IdentityKind.PHONE, mobile)] if mobile else []
    pairs += [(kind, external_id) for kind, external_id, _app in idents]
    # a phone identity names whoever has that number as their mobile, too
    for number in {external_id for kind, external_id, _app in idents if kind == IdentityKind.PHONE} - {mobile}:
        parts.append(f"SELECT 1 FROM {customer} WHERE {qn('chain_id')} = %s AND {qn('mobile')} = %s "
                     f"AND {qn('merged_into_id')} IS NULL")
        params += [chain_id, number]
    for kind, external_id in pairs:
        parts.append(f"SELECT 1 FROM {identity} WHERE {qn('chain_id')} = %s AND {qn('kind')} = %s "
                     f"AND {qn('external_id')} = %s")
        params += [chain_id, str(kind), external_id]
    return (" UNION ALL ".join(parts), params) if parts else None


def _locked_match(*, chain_id: int, mobile: str | None, idents) -> Customer | None:
    """The one person the mobile or any identity names, locked for the update; None if nobody (any more).
    Two different people named is a Conflict."""
    by_mobile = None
    if mobile:
        by_mobile = (Customer.objects.select_for_update().filter(chain_id=chain_id, mobile=mobile,
                                                                  merged_into__isnull=True).first())
        if by_mobile is None:
            ident = Identity.objects.filter(chain_id=chain_id, kind=IdentityKind.PHONE, external_id=mobile).first()
            if ident:
                by_mobile = Customer.objects.select_for_update().get(pk=ident.customer_id)
    by_ident = None
    for kind, external_id, _app in idents:
        ident = Identity.objects.filter(chain_id=chain_id, kind=kind, external_id=external_id).first()
        owner_id = ident.customer_id if ident else None
        if owner_id is None and kind == IdentityKind.PHONE and external_id != mobile:
            # a phone identity names whoever has that number as their mobile, too
            owner_id = (Customer.objects.filter(chain_id=chain_id, mobile=external_id, merged_into__isnull=True)
                        .values_list("pk", flat=True).first())
        if owner_id is None:
            continue
        # No record ids in these messages: one of the two may be outside the caller's clinics.
        if by_ident is not None and by_ident.id != owner_id:
            raise Conflict(f"identity {kind}:{external_id} belongs to another customer than the other identities; "
                           "merge them first", code="identity_conflict", field="identities")
        by_ident = by_ident or Customer.objects.select_for_update().get(pk=owner_id)
    if by_mobile and by_ident and by_mobile.id != by_ident.id:
        raise Conflict("the mobile and an identity belong to two different customers; merge them first",
                       code="identity_conflict", field="mobile")
    return by_mobile or by_ident


@transaction.atomic
def customer_update(*, customer: Customer, data: dict, actor: Staff | None = None) -> Customer:
    """Edit fields of an existing customer; a phone already used by another person is refused, and so is any edit
    of an erased record (Conflict `erased`: it stays anonymous; the person comes back as a new record)."""
    _refuse_erased(customer)
    values = customer_input_clean(chain_id=customer.chain_id, data=data, partial=True)
    # Another's mobile, or a number kept as another's phone identity (an old mobile after a merge, a landline): the
    # upsert matches either to that person, so a second holder would be two people behind one number.
    if values.get("mobile") and (Customer.objects.filter(
        chain_id=customer.chain_id, mobile=values["mobile"], merged_into__isnull=True
    ).exclude(pk=customer.pk).exists() or Identity.objects.filter(
        chain_id=customer.chain_id, kind=IdentityKind.PHONE, external_id=values["mobile"]
    ).exclude(customer_id=customer.pk).exists()):
        raise ValidationFailed([FieldError("mobile", "belongs to another customer; merge them instead",
                                           values["mobile"])])
    if "first_touch_channel" in values:
        values["last_touch_channel"] = values["first_touch_channel"]
    changed = _apply(customer, values, fill_only=False)
    if changed:
        try:
            with transaction.atomic():
                customer.save(update_fields=[*set(changed), "updated_at"])
        except IntegrityError:
            if "mobile" not in changed:
                raise
            # Another record took the number between the check above and this write (a registration at another
            # desk, an edit of someone else): the same refusal, not a server error.
            raise ValidationFailed([FieldError("mobile", "belongs to another customer; merge them instead",
                                               values["mobile"])])
        _keys_follow(customer, changed)
        interaction_add(customer=customer, kind=InteractionKind.FORM, author=actor,
                        text=timeline_format(UPDATED, fields=fields_text(changed)))
    return customer


@transaction.atomic
def identity_add(*, customer: Customer, kind: str, external_id: str, app_id: str = "",
                 source: str = "") -> Identity:
    """Attach an identity; idempotent for the same person, a Conflict if it belongs to another (or `erased`: an
    erased record is never linked to a person again)."""
    _refuse_erased(customer)
    # The patient's row first, then erased read under it: an identity inserted while the erasure ran was not seen by
    # its DELETE and outlived it. A record merged away meanwhile is refused.
    customers_refuse_erased(customer.pk, locked=customer_lock_live(customer.pk))
    [(kind, external_id, app_id)] = _identities_clean([{"kind": kind, "external_id": external_id, "app_id": app_id}],
                                                      single=True)
    existing = Identity.objects.filter(chain_id=customer.chain_id, kind=kind, external_id=external_id).first()
    if existing:
        if existing.customer_id != customer.id:
            raise Conflict(f"identity {kind}:{external_id} belongs to another customer; merge them first",
                           code="identity_conflict", field="external_id")
        return existing
    if kind == IdentityKind.PHONE and Customer.objects.filter(
            chain_id=customer.chain_id, mobile=external_id, merged_into__isnull=True).exclude(pk=customer.pk).exists():
        # a number is one person's: as another's mobile it names them (the upsert matches it so)
        raise Conflict(f"identity {kind}:{external_id} is the mobile of another customer; merge them first",
                       code="identity_conflict", field="external_id")
    try:
        with transaction.atomic():
            return Identity.objects.create(chain_id=customer.chain_id, customer=customer, kind=kind,
                                           external_id=external_id, app_id=app_id, source=source[:64])
    except IntegrityError:
        # A concurrent request attached it and has committed. To this person: the same answer as a repeated attach.
        # To another: a transient `race`, not `identity_conflict` (stored under an Idempotency-Key): the other may be
        # a person a concurrent upsert of this identity has just created, whom a retry of this upsert then matches.
        existing = Identity.objects.filter(chain_id=customer.chain_id, kind=kind, external_id=external_id).first()
        if existing is None or existing.customer_id != customer.id:
            raise Conflict(f"identity {kind}:{external_id} was attached concurrently; retry", code="race")
        return existing


def _consent_text_errors(source: str, evidence: str, at: str = "") -> list[FieldError]:
    """A consent's source and evidence are what a regulator reads: refused when they would be cut (they were, at 64
    and 255 characters, silently) or hold invisible characters."""
    errors = []
    for field, value, limit in (("source", source, 64), ("evidence", evidence, 255)):
        if len(value) > limit:
            errors.append(FieldError(f"{at}{field}", f"is longer than {limit} characters", value[:100]))
        elif has_control(value):
            errors.append(FieldError(f"{at}{field}", CONTROL_CHARACTERS, value[:100]))
    return errors


def consent_record(*, customer: Customer, purpose: str, granted: bool, source: str, actor: Staff | None = None,
                   evidence: str = "", at: dt.datetime | None = None) -> Consent:
    if purpose not in ConsentPurpose.values:
        raise ValidationFailed([FieldError("purpose", f"must be one of {', '.join(ConsentPurpose.values)}", purpose)])
    if not source:
        raise ValidationFailed([FieldError("source", "is required (where the consent was given)", source)])
    if errors := _consent_text_errors(source, evidence):
        raise ValidationFailed(errors)
    if granted:
        _refuse_erased(customer)
    with transaction.atomic():
        # A grant locks the patient's row first, erased read under it: one written while the erasure ran was not
        # seen by its evidence blanking and kept "张三签字 138…" on the erased record. A withdrawal locks it too: one
        # written while a merge ran stayed on the tombstone and the survivor's grant still counted. Merged: refused.
        if customer_lock_live(customer.pk) and granted:
            raise Conflict(ERASED_REFUSED, code="erased", field="customer")
        return Consent.objects.create(customer=customer, purpose=purpose, granted=bool(granted),
                                      source=source[:64], evidence=evidence[:255], recorded_by=actor,
                                      recorded_at=at or timezone.now())


def interaction_add(*, customer: Customer, kind: str, text: str = "", author: Staff | None = None,
                    clinic: Clinic | None = None, occurred_at: dt.datetime | None = None,
                    data: dict | None = None) -> Interaction:
    if kind not in InteractionKind.values:
        raise ValidationFailed([FieldError("kind", f"must be one of {', '.join(InteractionKind.values)}", kind)])
    interaction = Interaction.objects.create(customer=customer, kind=kind, text=text, author=author, clinic=clinic,
                                             occurred_at=occurred_at or timezone.now(), data=data or {})
    if author is not None and kind in CONTACT_KINDS:
        customer_stage_advance(customer=customer, to=Stage.CONTACTED,
                               cause=timeline_format(CONTACTED_BY, kind=kind, name=author.name),
                               at=interaction.occurred_at, actor=author)
    return interaction


# A staff call, chat or SMS makes a lead "contacted" (a patient's own message, with no author, does not).
CONTACT_KINDS = (InteractionKind.CALL, InteractionKind.CHAT, InteractionKind.SMS)


@transaction.atomic
def household_member_add(*, head: Customer, member: Customer, relation: str, actor: Staff | None = None) -> HouseholdMember:
    """Put `member` into `head`'s household (created on first use). A person belongs to one household."""
    if relation not in Relation.values or relation == Relation.HEAD:
        raise ValidationFailed([FieldError("relation", "must be a family relation (spouse, child, parent, …)", relation)])
    if head.chain_id != member.chain_id or head.id == member.id:
        raise ValidationFailed([FieldError("member", "must be another customer of the same chain", str(member.id))])
    _refuse_erased(head, member, field="member")
    # Both rows first (id order), erased read under them: a member row inserted while the erasure ran was not seen
    # by its _household_leave and put the erased person into a family.
    if _family_lock(head.pk, member.pk, live=(head.pk, member.pk)):
        raise Conflict(ERASED_REFUSED, code="erased", field="member")
    membership = HouseholdMember.objects.select_related("household").filter(customer=head).first()
    if membership is None:
        household = Household.objects.create(chain_id=head.chain_id, head=head, name=f"{head.name}家")
        HouseholdMember.objects.create(household=household, customer=head, relation=Relation.HEAD)
    else:
        household = membership.household
    existing = HouseholdMember.objects.filter(customer=member).first()
    if existing:
        if existing.household_id == household.id:
            if existing.relation != relation:
                existing.relation = relation
                existing.save(update_fields=["relation", "updated_at"])
            return existing
        raise Conflict(f"{member.name} already belongs to another household", code="household_conflict",
                       field="member")
    hm = HouseholdMember.objects.create(household=household, customer=member, relation=relation)
    # The head's timeline is read by whoever sees the head, maybe not the relative (another clinic's patient):
    # the note names them masked (PIPL), as the family section names only the relatives in the reader's scope.
    interaction_add(customer=head, kind=InteractionKind.NOTE, author=actor,
                    text=timeline_format(FAMILY_ADDED, name=name_masked(member.name), relation=relation),
                    data={"relation": relation})
    return hm


@transaction.atomic
def household_member_remove(*, member: Customer, actor: Staff | None = None) -> bool:
    """Take `member` out of their household: a link made by mistake (a wrong number in an import), or a family
    that parted. A household left with one person is dissolved. The head of three or more is refused (Conflict
    `household_head`): the others would be left without a head, so another member is made head first
    (household_head_set). The head's timeline says who left, masked like FAMILY_ADDED. True when the household was
    dissolved."""
    own = HouseholdMember.objects.filter(customer=member).first()
    if own is not None:
        # Every member's row locked (id order, as household_relative_add locks the two it links), then the family
        # read again: two staff taking two people out of a family of three at once each saw two others and left the
        # head alone in a household of one; a relative linked meanwhile through a member waits, or is seen here.
        _family_lock(*HouseholdMember.objects.filter(household_id=own.household_id)
                     .values_list("customer_id", flat=True))
        own = HouseholdMember.objects.select_related("household").filter(customer=member).first()
    if own is None:
        raise Conflict(f"{member.name} is in no household", code="no_household", field="member")
    others = list(HouseholdMember.objects.filter(household_id=own.household_id).exclude(pk=own.pk))
    if own.relation == Relation.HEAD and len(others) > 1:
        raise Conflict(f"{member.name} heads a household of {len(others) + 1}; make another member head first",
                       code="household_head", field="member")
    household = own.household
    head_id = household.head_id if own.relation != Relation.HEAD else (others[0].customer_id if others else None)
    own.delete()
    if head_id is not None:
        Interaction.objects.create(customer_id=head_id, kind=InteractionKind.NOTE, author=actor,
                                   occurred_at=timezone.now(), data={"relation": own.relation},
                                   text=timeline_format(FAMILY_REMOVED, name=name_masked(member.name),
                                                        relation=own.relation))
    if len(others) <= 1:  # one person is no family
        HouseholdMember.objects.filter(household_id=household.pk).delete()
        household.delete()
    return len(others) <= 1


# A person's relation to a household's head, given what a relative of theirs is to them (`kin`: the relative is
# their PARENT, SPOUSE, …) and to the head (HEAD for the head): (kin, relative's relation) → the person's relation.
# Only what follows for certain; the child of the head's grandparent may be a parent or an uncle, so staff decide.
_RELATION_THROUGH = {
    (Relation.PARENT, Relation.HEAD): Relation.CHILD, (Relation.PARENT, Relation.SPOUSE): Relation.CHILD,
    (Relation.PARENT, Relation.CHILD): Relation.GRANDCHILD, (Relation.PARENT, Relation.PARENT): Relation.SIBLING,
    (Relation.PARENT, Relation.SIBLING): Relation.OTHER,
    (Relation.GRANDPARENT, Relation.HEAD): Relation.GRANDCHILD,
    (Relation.GRANDPARENT, Relation.SPOUSE): Relation.GRANDCHILD,
    (Relation.SPOUSE, Relation.HEAD): Relation.SPOUSE, (Relation.SPOUSE, Relation.PARENT): Relation.PARENT,
    (Relation.SPOUSE, Relation.GRANDPARENT): Relation.GRANDPARENT, (Relation.SPOUSE, Relation.CHILD): Relation.OTHER,
    (Relation.SPOUSE, Relation.SIBLING): Relation.OTHER, (Relation.SPOUSE, Relation.GRANDCHILD): Relation.OTHER,
    (Relation.CHILD, Relation.HEAD): Relation.PARENT, (Relation.CHILD, Relation.CHILD): Relation.SPOUSE,
    (Relation.CHILD, Relation.PARENT): Relation.GRANDPARENT, (Relation.CHILD, Relation.SPOUSE): Relation.OTHER,
    (Relation.SIBLING, Relation.HEAD): Relation.SIBLING, (Relation.SIBLING, Relation.SIBLING): Relation.SIBLING,
    (Relation.SIBLING, Relation.CHILD): Relation.CHILD, (Relation.SIBLING, Relation.GRANDCHILD): Relation.GRANDCHILD,
    (Relation.SIBLING, Relation.SPOUSE): Relation.OTHER, (Relation.SIBLING, Relation.PARENT): Relation.OTHER,
    (Relation.SIBLING, Relation.GRANDPARENT): Relation.OTHER,
    (Relation.GRANDCHILD, Relation.HEAD): Relation.GRANDPARENT,
    **{(Relation.OTHER, place): Relation.OTHER for place in Relation.values},  # a relative of theirs is one of ours
}
# What the customer is to a relative, given what the relative is to them.
_RELATION_INVERSE = {
    Relation.PARENT: Relation.CHILD, Relation.CHILD: Relation.PARENT, Relation.GRANDPARENT: Relation.GRANDCHILD,
    Relation.GRANDCHILD: Relation.GRANDPARENT, Relation.SPOUSE: Relation.SPOUSE, Relation.SIBLING: Relation.SIBLING,
    Relation.OTHER: Relation.OTHER,
}


def household_relation_through(kin: str, relative_relation: str) -> str | None:
    """The relation to the head of `relative`'s household that a person takes whose relative (their `kin`) is
    in it as `relative_relation` (HEAD for the head, or for a relative without a household, who will head
    one); None when it does not follow for certain."""
    return _RELATION_THROUGH.get((kin, relative_relation))


def _refuse_merged(customer: Customer) -> None:
    merged_into = Customer.objects.filter(pk=customer.pk).values_list("merged_into_id", flat=True).first()
    if merged_into is not None:
        raise Conflict(f"{customer.name} (#{customer.pk}) was merged into #{merged_into}; use the surviving record",
                       code="merged", field="new_head")


def household_head_relations(places: dict[int, str], new_head_id: int) -> dict[int, str | None]:
    """Each member's relation once `new_head_id` heads the household, from `places` (customer id → relation to the
    current head, HEAD for the head): the new head HEAD; the old head the inverse of the new head's relation (the
    head's son heads: the old head is his parent); everyone else what follows for certain through the old
    head (household_relation_through: the head's spouse is the head's child's parent), else None (the head's
    grandchild may be their child or a nephew: staff say)."""
    old_head_now = _RELATION_INVERSE.get(places[new_head_id])  # what the old head is to the new one
    found: dict[int, str | None] = {}
    for customer_id, relation in places.items():
        if customer_id == new_head_id:
            found[customer_id] = Relation.HEAD
        elif relation == Relation.HEAD:
            found[customer_id] = old_head_now
        elif old_head_now is None or relation not in _RELATION_INVERSE:
            found[customer_id] = None
        else:  # the old head is their `kin`, and is `old_head_now` in the household the new head heads
            found[customer_id] = household_relation_through(_RELATION_INVERSE[relation], old_head_now)
    return found


@transaction.atomic
def household_head_set(*, new_head: Customer, relations: dict[int, str] | None = None,
                       actor: Staff | None = None) -> Household:
    """Make `new_head` head of the household they belong to (the head moved away or died, or the desk picked the
    wrong person): every relation is stored to the head, so each member's is derived again
    (household_head_relations); `relations` (customer id → relation to the new head) gives those that do not follow
    for certain, and wins over what follows (staff know the family; what follows is only what is certain).
    ValidationFailed, nothing written, naming `relations.<id>` for each relation missing or not a family relation,
    or an id not of another member. The household's head and name ("<new head>家") follow; the old and the new
    head's timelines say so, each naming the other masked (as FAMILY_ADDED). Conflict `no_household` when they are
    in none, `erased` / `merged` for a record erased or merged away. The head already: nothing is written and the
    household is returned (a double click, a retry), whatever `relations` says.

    Locking: the family's advisory lock (households_lock, as an erasure or a merge), then as
    household_member_remove every member's row (_family_lock, id order, erasures waited out), then the family read
    again, until no one joined meanwhile; a relative linked or removed at the same moment waits."""
    relations = dict(relations or {})
    _refuse_erased(new_head, field="new_head")
    # The family's advisory lock first, as an erasure or a merge in it takes it before any person's row.
    households = households_lock(new_head.pk)
    locked: set[int] = set()
    erased: frozenset[int] = frozenset()
    while True:
        own = HouseholdMember.objects.select_related("household").filter(customer_id=new_head.pk).first()
        if own is None:
            _refuse_merged(new_head)  # a merge dropped the merged record's place: say so, not "in no household"
            raise Conflict(f"{new_head.name} is in no household", code="no_household", field="new_head")
        members = list(HouseholdMember.objects.select_related("customer").filter(household_id=own.household_id)
                       .order_by("pk"))
        ids = {m.customer_id for m in members} | {new_head.pk}
        if ids <= locked:
            break
        erased = _family_lock(*ids)
        households = households_lock(new_head.pk, held=households)  # a household they joined meanwhile
        locked |= ids
    _refuse_merged(new_head)
    if erased & {m.customer_id for m in members}:
        raise Conflict(ERASED_REFUSED, code="erased", field="new_head" if new_head.pk in erased else "member")
    household = own.household
    if household.head_id == new_head.pk and own.relation == Relation.HEAD:
        return household
    places = {m.customer_id: m.relation for m in members}
    derived = household_head_relations(places, new_head.pk)
    people = {m.customer_id: m.customer for m in members}
    problems = []
    for key, value in relations.items():
        if key not in places or key == new_head.pk:
            problems.append(FieldError(f"relations.{key}", "is not another member of this household", str(key)))
        elif value not in Relation.values or value == Relation.HEAD:
            problems.append(FieldError(f"relations.{key}", "must be a family relation (spouse, child, parent, …)",
                                       str(value)))
    for customer_id, relation in derived.items():
        if relation is None and customer_id not in relations:
            problems.append(FieldError(
                f"relations.{customer_id}", f"does not follow for certain: say what {people[customer_id].name} is "
                                            f"to {new_head.name} (parent, child, spouse, …)"))
    if problems:
        raise ValidationFailed(problems)
    final = {**derived, **relations}
    now = timezone.now()
    changes: dict[str, list[int]] = {}
    for member in members:
        if final[member.customer_id] != member.relation:
            changes.setdefault(final[member.customer_id], []).append(member.pk)
    for relation, pks in changes.items():
        HouseholdMember.objects.filter(pk__in=pks).update(relation=relation, updated_at=now)
    old_head = people.get(household.head_id)
    head = Customer.objects.only("id", "name").get(pk=new_head.pk)  # the name as it is now (renamed meanwhile)
    Household.objects.filter(pk=household.pk).update(head_id=head.pk, name=f"{head.name}家", updated_at=now)
    if old_head is not None:
        # Each timeline names the other head masked (PIPL: its reader may not see them), with what the old head is
        # now to the new one.
        was = final[old_head.pk]
        Interaction.objects.bulk_create([
            Interaction(customer_id=old_head.pk, kind=InteractionKind.NOTE, author=actor, occurred_at=now,
                        data={"relation": was}, text=timeline_format(FAMILY_HEAD_HANDED,
                                                                    name=name_masked(head.name), relation=was)),
            Interaction(customer_id=head.pk, kind=InteractionKind.NOTE, author=actor, occurred_at=now,
                        data={"relation": was}, text=timeline_format(FAMILY_HEAD_TAKEN,
                                                                    name=name_masked(old_head.name), relation=was)),
        ])
    household.refresh_from_db()
    return household


@transaction.atomic
def household_join_through(*, member: Customer, relative: Customer, kin: str,
                           actor: Staff | None = None) -> HouseholdMember | None:
    """Put `member` into the household of `relative`, who is their `kin` (the mother of a child registered with
    her number): `relative` heads a new household when they have none. None when no relation to the head follows
    (household_relation_through); Conflict when `member` belongs to another household already. A member of
    that household already stays as they are."""
    outcome = households_join([(member.pk, relative.pk, kin)], actor=actor)[0]
    if outcome == "merged":  # merged away since the caller read them (households_join read it under the lock)
        raise NotFound("Customer not found")
    if outcome == "erased":  # an erasure that committed after the caller's check: no family for them
        raise Conflict(ERASED_REFUSED, code="erased", field="relative")
    if outcome == "elsewhere":
        raise Conflict(f"{member.name} already belongs to another household", code="household_conflict",
                       field="member")
    return None if outcome == "unclear" else HouseholdMember.objects.get(customer=member)


def households_join(links: list[tuple[int, int, str]], *, actor: Staff | None = None,
                    write: bool = True) -> list[str]:
    """household_join_through for many people at once (an import's children and their parents' numbers): for
    each (member id, relative id, kin), in order, the member joins the relative's household, which the relative
    heads when they have none, with the relation to the head that follows. Later links see what earlier ones
    made: two children of one new mother share one household. One outcome per link: "joined", "already" (in
    that household), "elsewhere" (in another household: staff decide), "unclear" (no relation follows for certain),
    "erased" / "merged" (either of the two was erased or merged away meanwhile: nothing linked).

    One read of everyone's place, then one insert per table (the new households, their heads, the members, the
    heads' timeline notes, as household_member_add writes them); `write=False` only plans (a dry run; ids may then
    be an import's placeholders for people not written).

    Locking (`write`): as every family writer (_family_lock), the erasures of everyone linked waited out, then their
    rows locked in id order, one statement per chunk, and their places read under the locks: a head change or a
    removal in their household (which locks every member) waits for this or is seen, and an erasure or a merge
    committed meanwhile answers "erased" / "merged" instead of putting its record into a family."""
    ids = {i for member, relative, _k in links for i in (member, relative) if i > 0}
    if not write:
        erased, gone = frozenset(), frozenset()
        places, heads = household_places(ids)
    else:
        # The heads of their households are waited out too: the joined note goes on a head's timeline, and a head
        # being erased held their row while the note's foreign-key check waited for it at commit, and the erasure
        # then waited for this writer's hold on their household (a deadlock). Their heads as read unlocked first,
        # then again under the locks until no new head shows (one who took over meanwhile).
        waited = ids | set(household_places(ids)[1].values())
        erased, gone = _households_join_lock(ids, heads=waited - ids)
        while True:
            places, heads = household_places(ids)
            late = set(heads.values()) - waited
            if not late:
                break
            customers_erasures_wait(Customer.objects.filter(pk__in=sorted(late)).values("pk"))
            waited |= late
    new_heads: list[int] = []
    joined: list[tuple[object, int, str]] = []  # (household key, member id, relation to the head)
    outcomes = []
    for member, relative, kin in links:
        if gone & {member, relative}:
            outcomes.append("merged")
            continue
        if erased & {member, relative}:
            outcomes.append("erased")
            continue
        key, through = places.get(relative, (("new", relative), Relation.HEAD))
        own = places.get(member)
        if own is not None:
            outcomes.append("already" if own[0] == key else "elsewhere")
            continue
        relation = household_relation_through(kin, through)
        if relation is None or member in (relative, heads.get(key)):
            outcomes.append("unclear")
            continue
        if relative not in places:
            new_heads.append(relative)
            places[relative], heads[key] = (key, Relation.HEAD), relative
        places[member] = (key, relation)
        joined.append((key, member, relation))
        outcomes.append("joined")
    if write and joined:
        _households_write(new_heads, joined, heads, actor)
    return outcomes


HOUSEHOLDS_LOCK_CHUNK = 5000  # ids per locking statement: an import may link thousands


def household_places(ids: set[int]) -> tuple[dict[int, tuple[object, str]], dict[object, int]]:
    """(customer id → (household id, relation to its head), household id → head id) of these people, one read."""
    places: dict[int, tuple[object, str]] = {}  # customer id → (household id, or ("new", head id); relation)
    heads: dict[object, int] = {}  # household key → head id
    members, households = (connection.ops.quote_name(m._meta.db_table) for m in (HouseholdMember, Household))
    for customer_id, household_id, relation, head_id in select_in(
            f"SELECT m.customer_id, m.household_id, m.relation, h.head_id FROM {members} m "
            f"JOIN {households} h ON h.id = m.household_id WHERE m.customer_id", [], ids):
        places[customer_id], heads[household_id] = (household_id, relation), head_id
    return places, heads


def _households_join_lock(ids: set[int], heads: set[int] = frozenset()) -> tuple[frozenset[int], frozenset[int]]:
    """households_join's locks: the erasures of all these people and of `heads` (whose timelines get the notes)
    waited out (customers_erasures_wait), then the people's rows locked in id order (customers_lock_live), a chunk
    of ids per statement. Returns (erased ids, ids merged away or gone), read under the locks."""
    ordered = sorted(ids)
    chunks = [ordered[i:i + HOUSEHOLDS_LOCK_CHUNK] for i in range(0, len(ordered), HOUSEHOLDS_LOCK_CHUNK)]
    waits = sorted(ids | set(heads))
    for start in range(0, len(waits), HOUSEHOLDS_LOCK_CHUNK):
        customers_erasures_wait(Customer.objects.filter(pk__in=waits[start:start + HOUSEHOLDS_LOCK_CHUNK])
                                .values("pk"))
    erased: set[int] = set()
    gone: set[int] = set()
    for chunk in chunks:
        chunk_erased, chunk_gone = customers_lock_live(*chunk)
        erased |= chunk_erased
        gone |= chunk_gone
    return frozenset(erased), frozenset(gone)


def _households_write(new_heads: list[int], joined: list[tuple[object, int, str]], heads: dict,
                      actor: Staff | None) -> None:
    """households_join's writes: one plain-SQL insert per table (core.bulk), as an import may link thousands."""
    people = {pk: (name, chain_id) for pk, name, chain_id in select_in(
        f"SELECT id, name, chain_id FROM {connection.ops.quote_name(Customer._meta.db_table)} WHERE id", [],
        set(new_heads) | {member for _k, member, _r in joined})}
    now = timezone.now()
    stamps = {"created_at": now, "updated_at": now}
    made = rows_insert(Household, [{"chain_id": people[h][1], "head_id": h, "name": f"{people[h][0]}家", **stamps}
                                   for h in new_heads], returning_ids=True)
    keys = {("new", h): pk for h, pk in zip(new_heads, made, strict=True)}
    rows_insert(HouseholdMember,
                [{"household_id": keys[("new", h)], "customer_id": h, "relation": Relation.HEAD, **stamps}
                 for h in new_heads]
                + [{"household_id": keys.get(key, key), "customer_id": member, "relation": relation, **stamps}
                   for key, member, relation in joined])
    # The head's timeline names the relative masked, as household_member_add does (PIPL: the head's reader may
    # not see them).
    rows_insert(Interaction, [
        {"customer_id": heads[key], "kind": InteractionKind.NOTE, "author_id": actor.pk if actor else None,
         "occurred_at": now, "text": timeline_format(FAMILY_ADDED, name=name_masked(people[member][0]),
                                                     relation=relation), "data": {"relation": relation}}
        for key, member, relation in joined])


@transaction.atomic
def household_relative_add(*, customer: Customer, relative: Customer, relation: str,
                           actor: Staff | None = None) -> HouseholdMember:
    """Link `relative` as what they are to `customer` (`relation`: her PARENT, his SPOUSE, …), as staff say it on
    the customer's page, whoever heads the household. Whichever of the two has a household brings the other into
    it, with the relation to its head that follows (household_relation_through); when neither has one, a parent
    or grandparent heads the new household, else the customer does. ValidationFailed when no relation to the head
    follows for certain (a child's grandmother may be the head's mother or mother-in-law: add her from the head's
    page); Conflict when both are in a household already."""
    if relation not in _RELATION_INVERSE:
        raise ValidationFailed([FieldError("relation", "must be a family relation (spouse, child, parent, …)", relation)])
    if customer.chain_id != relative.chain_id or customer.pk == relative.pk:
        raise ValidationFailed([FieldError("relative", "must be another customer of the same chain",
                                           str(relative.pk))])
    _refuse_erased(customer, relative, field="relative")
    # Both people's rows locked: two links involving one person at once (the API and the front desk, a retry with a
    # new key) run one after the other, and the second reads the household the first made instead of founding a
    # second one for the same head.
    _family_lock(customer.pk, relative.pk, live=(customer.pk, relative.pk))
    places = {m.customer_id: m for m in HouseholdMember.objects.filter(customer__in=[customer, relative])}
    own, theirs = places.get(customer.pk), places.get(relative.pk)
    if own is not None and theirs is not None:
        same = own.household_id == theirs.household_id
        raise Conflict(f"{relative.name} is already in {'this' if same else 'another'} household",
                       code="household_same" if same else "household_conflict", field="relative")
    if own is None and (theirs is not None or relation in (Relation.PARENT, Relation.GRANDPARENT)):
        joined = household_join_through(member=customer, relative=relative, kin=relation, actor=actor)
    else:
        joined = household_join_through(member=relative, relative=customer, kin=_RELATION_INVERSE[relation],
                                        actor=actor)
    if joined is None:
        raise ValidationFailed([FieldError(
            "relation", "does not say for certain how they are related to the head of the household; add them from "
                        "the head's page", relation)])
    return joined


def customers_lock(*customer_ids: int) -> frozenset[int]:
    """Lock these customers' rows for the rest of the transaction, in id order (two writers never deadlock), FOR NO
    KEY UPDATE: rows that merely reference them (an order, a tag) are written without waiting. What serialises two
    writes about one person that would each find nothing and both create (a household, a record by external id, a
    top-up by key). Rows fetched, not counted: Django drops FOR UPDATE from a count(), which would lock nothing.
    Returns the ids among them that are erased, read under the lock (a caller refusing erased records asks no
    second query: customers_refuse_erased)."""
    return customers_lock_live(*customer_ids)[0]


def _family_lock(*customer_ids: int, live: tuple[int, ...] = ()) -> frozenset[int]:
    """customers_lock of the people a family write touches, after waiting out an erasure of any of them
    (customers_erasures_wait). The erasure locks its person first and then the rest of their family (taking them out
    of it): locking the family in id order straight away, a write held member 3 and waited for member 5 the erasure
    held while it waited for 3, a deadlock. Its own locks of the others do not wait for this FOR KEY SHARE.
    `live`: the people the write names, NotFound when one was merged away (a page read before the merge): the
    tombstone got a household of its own, or joined one, out of everyone's sight."""
    customers_erasures_wait(Customer.objects.filter(pk__in=customer_ids).values("pk"))
    erased, gone = customers_lock_live(*customer_ids)
    if gone & set(live):
        raise NotFound("Customer not found")
    return erased


def households_lock(*customer_ids: int, held: frozenset[int] = frozenset()) -> frozenset[int]:
    """On PostgreSQL, a transaction-scoped advisory lock per household these people are in or head (id order), taken
    by an erasure and a merge before they lock any person: two of them in one family wait for each other before either
    holds anyone. Each locks its own people first and then the family's others, so two erasures of two members held
    one each and waited for the other's (a deadlock), and a merge of two members held the lower one the erasure of the
    higher one then waited for. Called again with `held` (what the first call returned) once the people are locked,
    for a household joined meanwhile. Returns the households locked. SQLite has one writer anyway."""
    if connection.vendor != "postgresql":
        return frozenset()
    ids = set(HouseholdMember.objects.filter(customer_id__in=customer_ids).values_list("household_id", flat=True))
    ids.update(Household.objects.filter(head_id__in=customer_ids).values_list("pk", flat=True))
    with connection.cursor() as cursor:
        for pk in sorted(ids - held):
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"household:{pk}"])
    return held | ids


def customer_lock_live(customer_id: int) -> frozenset[int]:
    """customers_lock of one record that must still be a live one: NotFound when it was merged away meanwhile (a
    page read before a merge committed), as customer_get answers then; what was written for it would stay on the
    tombstone, out of everyone's sight (a withdrawn consent that no longer counts). Returns what customers_lock
    does: {customer_id} when it is erased, else empty (false), for customers_refuse_erased(locked=)."""
    erased, gone = customers_lock_live(customer_id)
    if gone:
        raise NotFound("Customer not found")
    return erased


def customers_lock_live(*customer_ids: int) -> tuple[frozenset[int], frozenset[int]]:
    """customers_lock (the one locking statement behind it) of several records that must still be live ones (a write
    about a family: a package's holder and the people it covers), answering under the lock (erased ids, ids merged
    away meanwhile or gone): the caller refuses the latter as customer_lock_live does (NotFound) or names the field
    that showed them."""
    ids = sorted(set(customer_ids))
    rows = {pk: (merged_into_id, erased_at) for pk, merged_into_id, erased_at in (
        Customer.objects.select_for_update(no_key=True).filter(pk__in=ids).order_by("pk")
        .values_list("pk", "merged_into_id", "erased_at"))}
    gone = frozenset(pk for pk in ids if pk not in rows or rows[pk][0] is not None)
    return frozenset(pk for pk, (_merged, erased_at) in rows.items() if erased_at is not None), gone


def customers_erasures_wait(customer_ids: QuerySet) -> None:
    """Wait out any erasure in progress of these customers (`customer_ids`: a query of ids), before a bulk writer reads
    which of them are erased and removes what it wrote about those. On PostgreSQL their rows are locked FOR KEY SHARE,
    in id order, which is what the (deferred) foreign-key check of the bulk INSERT takes at commit anyway: an erasure
    in progress is waited for, one that starts later waits for the writer and cleans up after it by its own hook.
    Elsewhere writes are serialised already."""
    if connection.vendor != "postgresql":
        return
    sql, params = customer_ids.order_by().query.sql_with_params()
    table = connection.ops.quote_name(Customer._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE id IN ({sql}) ORDER BY id "
                       f"FOR KEY SHARE) AS locked", params)


def customer_visit_stats_apply(*, customer_id: int, visit_at: dt.datetime | None = None, spend_delta_fen: int = 0,
                               count_visit_unless: tuple[str, list] | None = None, visit_delta: int = 0) -> None:
    """Keep the denormalised visit/spend figures current with one UPDATE (called by visits services; plain
    SQL, as compiling the CASE expressions through the ORM cost more than running it on every paid bill).

    `count_visit_unless` = (SQL condition, its parameters): count the visit unless the condition holds (the
    visits app knows when a day was counted already), in the same statement. `visit_delta`: visits to add or take
    back (a visit corrected to another status or day; never below 0)."""
    sets, params = [], []
    if visit_delta:
        sets.append("visit_count = CASE WHEN visit_count + %s < 0 THEN 0 ELSE visit_count + %s END")
        params += [int(visit_delta), int(visit_delta)]
    if spend_delta_fen:
        sets.append("lifetime_spend_fen = lifetime_spend_fen + %s")
        params.append(int(spend_delta_fen))
    if count_visit_unless is not None:
        sets.append(f"visit_count = visit_count + CASE WHEN {count_visit_unless[0]} THEN 0 ELSE 1 END")
        params += list(count_visit_unless[1])
    if visit_at is not None:
        # The lifecycle stage is advanced by the caller (customer_stage_advance), which knows the event.
        at = db_datetime(visit_at)
        sets += ["first_visit_at = CASE WHEN first_visit_at IS NULL OR first_visit_at > %s THEN %s "
                 "ELSE first_visit_at END",
                 "last_visit_at = CASE WHEN last_visit_at IS NULL OR last_visit_at < %s THEN %s ELSE last_visit_at END"]
        params += [at, at, at, at]
    if sets:
        sql_execute(f"UPDATE {Customer._meta.db_table} SET {', '.join(sets)} WHERE id = %s", [*params, customer_id])


# --- lifecycle stages ----------------------------------------------------------------------------------


def stage_rank(stage: str) -> int:
    """Position on the progress ladder (lead 0 … referrer 6); side states (dormant, lost) are -1."""
    return STAGE_PROGRESS.index(stage) if stage in STAGE_PROGRESS else -1


def stage_move_values(*, to: str, at: dt.datetime) -> tuple[list[str], dict]:
    """The from-stages a move to `to` is allowed from and the UPDATE values that perform it, as SQL
    expressions over the row, so one conditional UPDATE moves one customer or a million.

    Progress (lead < contacted < booked < arrived < treated < member < referrer) only goes up. A dormant or
    lost customer comes back on a booking, arrival, paid order, enrolment or referral, to the higher of the
    event's stage and the highest stage they had reached (`stage_reached`). A staff contact alone does not
    bring them back. `dormant` is entered from any progress stage; `lost` from any stage but lost."""
    allowed, higher = _stage_rule(to)
    if higher is not None:
        values = {
            "stage": Case(When(stage_reached__in=higher, then=F("stage_reached")), default=Value(to)),
            "stage_reached": Case(When(stage_reached__in=higher + [to], then=F("stage_reached")), default=Value(to)),
        }
    else:
        values = {"stage": Value(to)}
    # Right-hand sides read the row before the update (SQL semantics), so stage_prev gets the old stage.
    values.update(stage_prev=F("stage"), stage_changed_at=Value(at), updated_at=Value(at))
    return allowed, values


def _stage_rule(to: str) -> tuple[list[str], list[str] | None]:
    """The rule behind a move to `to` (see stage_move_values): the stages it is allowed from, and for a progress
    stage the higher ones a returning customer keeps (`stage_reached`); None for a side state."""
    if to in STAGE_PROGRESS:
        rank = STAGE_PROGRESS.index(to)
        allowed = list(STAGE_PROGRESS[:rank]) + (list(STAGE_SIDE) if to in STAGE_REVIVING else [])
        return allowed, list(STAGE_PROGRESS[rank + 1:])
    if to == Stage.DORMANT:
        return list(STAGE_PROGRESS), None
    if to == Stage.LOST:
        return [*STAGE_PROGRESS, Stage.DORMANT], None
    raise ValidationFailed([FieldError("to", f"must be one of {', '.join(Stage.values)}", to)])


def stage_after_events(*, stage: str, reached: str, changed_at: dt.datetime | None, events_at, to: str,
                       now: dt.datetime, cutoff) -> tuple[int, str, str] | None:
    """The stage after events of `to` (paid bills: treated) at `events_at`, oldest first, recorded one by one as
    customer_stage_advance(to=…, event_at=…) records each (`_stage_rule`, `_revives`), without the database: (the
    index of the event that moves the customer, stage, stage reached), or None when none does. A customer in a side
    state comes back only on an event newer than `now` - SURELY_RECENT or than `cutoff()` (the chain's revival cutoff,
    called only when needed) and, when lost, after they were set lost. For bulk writers (the orders import) that
    compute moves for many customers and write them in one statement."""
    allowed, higher = _stage_rule(to)
    if higher is None:
        raise ValueError(f"{to} is no progress stage")
    recent_from = now - SURELY_RECENT
    for index, at in enumerate(events_at):
        if stage not in allowed:
            return None  # at `to` or higher: an event changes nothing
        if stage in STAGE_SIDE:
            if at < recent_from and at < cutoff():
                continue  # dormant still by the facts: a later event may be recent enough
            if stage == Stage.LOST and changed_at is not None and changed_at >= at:
                continue  # set lost after this event: it is nothing new since
        return (index, reached if reached in higher else to, reached if reached in [*higher, to] else to)
    return None


def stage_events_insert(*, customers: QuerySet, cause: str | None = None, cause_expr=None, at: dt.datetime,
                        actor_id: int | None = None) -> int:
    """Write one timeline event (kind system) per customer in `customers` for its last stage change, in one
    INSERT … SELECT (no rows travel through Python): text "stage <from> → <to>: <cause>", data
    {stage_from, stage_to, cause}. `cause_expr` (an SQL expression) gives a per-customer cause instead."""
    cause_sql = cause_expr if cause_expr is not None else Value(cause or "")
    select = customers.order_by().annotate(
        _customer=F("id"), _kind=Value(InteractionKind.SYSTEM),
        _text=Concat(Value("stage "), F("stage_prev"), Value(" → "), F("stage"), Value(": "), cause_sql,
                     output_field=models.TextField()),
        _author=Cast(Value(actor_id), output_field=models.BigIntegerField()),
        _clinic=Cast(Value(None), output_field=models.BigIntegerField()),
        _at=Value(at, output_field=models.DateTimeField()),
        _data=json_object(stage_from=F("stage_prev"), stage_to=F("stage"), cause=cause_sql),
    ).values_list("_customer", "_kind", "_text", "_author", "_clinic", "_at", "_data")
    sql, params = select.query.sql_with_params()
    qn = connection.ops.quote_name
    columns = ", ".join(qn(Interaction._meta.get_field(name).column)
                        for name in ("customer", "kind", "text", "author", "clinic", "occurred_at", "data"))
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {qn(Interaction._meta.db_table)} ({columns}) {sql}", params)
        return cursor.rowcount


@transaction.atomic(savepoint=False)
def customer_stage_advance(*, customer: Customer | int, to: str, cause: str, at: dt.datetime | None = None,
                           actor: Staff | None = None, event_at: dt.datetime | None = None) -> bool:
    """Move a customer's lifecycle stage on an event (rules in `stage_move_values`). Returns whether it
    changed; a change writes one timeline event with the cause.

    `event_at`: the event is a visit, a bill or an enrolment of that time, which brings a dormant or lost customer
    back only when it is one `stages_derive` would count: not older than the chain's dormant threshold, and for a
    lost customer after they were set lost. A bill sent in late (a PMS back-filling last year) had brought them
    back, and the next night's run set them dormant or lost again: two stage sentences, and a patient marked lost
    by hand was active again for a bill paid before the marking.

    Cheap on the hot paths (checkout, API): one conditional UPDATE that matches nothing when the stage does
    not move; the timeline INSERT only on a change. Pass an id to avoid a fetch; a passed instance gets its
    stage fields updated in memory after a change (so a later save() does not write the old stage back). An erased
    record (PIPL) is never moved: it is an anonymous record of past care, not a person to profile."""
    at = at or timezone.now()
    customer_id = customer if isinstance(customer, int) else customer.pk
    revives = _revives(customer, to=to, event_at=event_at) if event_at is not None else True
    if not _stage_move_one(customer_id, to=to, at=at, revives=revives):
        return False
    stage_events_insert(customers=Customer.objects.filter(pk=customer_id), cause=cause[:500], at=at,
                        actor_id=actor.pk if actor else None)
    if isinstance(customer, Customer):
        _stage_follow(customer, to=to, at=at)
    return True


# How far back a visit still brings a dormant customer back, per chain (registered by lifecycle, which owns the
# chain's thresholds and sits above this app): chain id → the earliest such time as of now.
_REVIVAL_CUTOFFS: list = []


def stage_revival_cutoff_register(cutoff) -> None:
    """Called by lifecycle's AppConfig.ready with `cutoff(chain_id) -> datetime`."""
    if cutoff not in _REVIVAL_CUTOFFS:
        _REVIVAL_CUTOFFS.append(cutoff)


# Every chain's dormant threshold is at least a month: a visit of the last 28 days is recent whatever the chain set,
# so the hot path (a bill paid now) never reads the settings.
SURELY_RECENT = dt.timedelta(days=28)


def _revives(customer: Customer | int, *, to: str, event_at: dt.datetime) -> bool | dt.datetime:
    """Whether an event at `event_at` may bring a customer in a side state back: False when it is older than their
    chain's dormant threshold (they would still be dormant by the facts), else the time a lost customer must have
    been set lost before (`_stage_move_one`)."""
    if to not in STAGE_REVIVING or event_at >= timezone.now() - SURELY_RECENT or not _REVIVAL_CUTOFFS:
        return event_at
    chain_id = (customer.chain_id if isinstance(customer, Customer)
                else Customer.objects.filter(pk=customer).values_list("chain_id", flat=True).first())
    if chain_id is not None and any(event_at < cutoff(chain_id) for cutoff in _REVIVAL_CUTOFFS):
        return False
    return event_at


def _stage_move_one(customer_id: int, *, to: str, at: dt.datetime, revives: bool | dt.datetime = True) -> bool:
    """`stage_move_values` for one customer as one plain UPDATE (the same rule, `_stage_rule`, and the same SQL;
    the ORM's compilation of its CASE expressions cost more than the update on every paid bill). Whether the
    row moved. `revives` (`_revives`): True, a side state is left as the rule says; False, not at all; a time, a
    lost customer is left only if set lost before it."""
    allowed, higher = _stage_rule(to)
    if revives is False:
        allowed = [stage for stage in allowed if stage not in STAGE_SIDE]
    at_db = db_datetime(at)
    if higher is not None:
        if higher:
            keep = ", ".join(["%s"] * len(higher))
            sets = (f"stage = CASE WHEN stage_reached IN ({keep}) THEN stage_reached ELSE %s END, "
                    f"stage_reached = CASE WHEN stage_reached IN ({keep}, %s) THEN stage_reached ELSE %s END")
            params = [*higher, to, *higher, to, to]
        else:
            sets, params = "stage = %s, stage_reached = %s", [to, to]
    else:
        sets, params = "stage = %s", [to]
    allowed_in = ", ".join(["%s"] * len(allowed))
    since, since_params = "", []
    if isinstance(revives, dt.datetime) and Stage.LOST in allowed:
        # set lost (by hand or by a run) after this visit: it is not something new since (as stages_derive reads)
        since, since_params = (" AND (stage <> %s OR stage_changed_at IS NULL OR stage_changed_at < %s)",
                               [Stage.LOST, db_datetime(revives)])
    return bool(sql_execute(
        f"UPDATE {Customer._meta.db_table} SET {sets}, stage_prev = stage, stage_changed_at = %s, updated_at = %s "
        f"WHERE id = %s AND stage IN ({allowed_in}) AND erased_at IS NULL{since}",  # an erased record keeps its stage
        [*params, at_db, at_db, customer_id, *allowed, *since_params]))


def _stage_follow(customer: Customer, *, to: str, at: dt.datetime) -> None:
    """Apply the move just written to the passed instance too (computed, not re-read: no extra query), so a
    later save() of it does not write the old stage back."""
    customer.stage_prev, customer.stage_changed_at = customer.stage, at
    if to in STAGE_PROGRESS:
        if stage_rank(to) > stage_rank(customer.stage_reached):
            customer.stage_reached = to
        customer.stage = customer.stage_reached
    else:
        customer.stage = to


LOST_REASON_LIMIT = 200


@transaction.atomic
def customer_mark_lost(*, scope: Scope, customer: Customer, reason: str, actor: Staff) -> Customer:
    """Mark a patient lost by hand (moved away, chose another clinic, asked not to be contacted …): the one
    stage decision staff take themselves. Goes through `customer_stage_advance`, so it writes the timeline
    event with its cause ("marked lost by <staff>: <reason>") and keeps `stage_reached` (a later booking,
    arrival or payment brings the patient back to it; `lifecycle.stages_derive` keeps them lost until then).

    Needs customer.edit and a reason; a patient outside the scope is NotFound; one already lost is a
    Conflict `already_lost` (nothing is written). Returns the customer with its new stage."""
    if not scope.can(Perm.CUSTOMER_EDIT):
        raise PermissionDenied("Your role may not change customers")
    text = " ".join(str(reason or "").split())
    if not text:
        raise ValidationFailed([FieldError("reason", "is required to mark a patient lost", reason)])
    if len(text) > LOST_REASON_LIMIT:
        raise ValidationFailed([FieldError("reason", f"is longer than {LOST_REASON_LIMIT} characters", text)])
    locked = Customer.objects.select_for_update(no_key=True).filter(pk=customer.pk).first()
    if locked is None or locked.merged_into_id or not _in_scope(scope, locked):
        raise NotFound("Customer not found")
    if locked.erased_at is not None:
        raise Conflict(ERASED_REFUSED, code="erased")
    if locked.stage == Stage.LOST:
        raise Conflict("This patient is already marked lost", code="already_lost")
    customer_stage_advance(customer=locked, to=Stage.LOST,
                           cause=timeline_format(MARKED_LOST, name=actor.name, reason=text),
                           actor=actor)
    return locked


def phone_reveal(*, scope: Scope, customer: Customer, reason: str, ip_address: str | None = None) -> str:
    """Return the full phone number and write the audit row. Refused without the permission or a reason."""
    return phones_reveal(scope=scope, customer=customer, reason=reason, ip_address=ip_address, others=False)[0]


def phones_reveal(*, scope: Scope, customer: Customer, reason: str, ip_address: str | None = None,
                  others: bool = True) -> list[str]:
    """The full mobile (first, "" when none) and, with `others`, the person's other numbers on file (phone
    identities: a landline kept from an import, an old mobile after a merge), with one audit row that says how
    many numbers were shown. Refused without the permission or a reason."""
    if not scope.can("customer.phone_view"):
        raise PermissionDenied("Your role may not see full phone numbers")
    if not reason or not reason.strip():
        raise ValidationFailed([FieldError("reason", "is required to reveal a phone number", reason)])
    numbers = [customer.mobile or ""]
    if others:
        numbers += list(Identity.objects.filter(customer=customer, kind=IdentityKind.PHONE)
                        .exclude(external_id=customer.mobile or "").order_by("id").values_list("external_id", flat=True))
    audit_record(actor=_user(scope), action="phone.reveal", object_type="customer", object_id=customer.id,
                 reason=reason.strip(), ip_address=ip_address, clinic_id=customer.home_clinic_id,
                 detail={"numbers": len([n for n in numbers if n])} if others else None)
    return numbers


def identities_reveal(*, scope: Scope, customer: Customer, reason: str,
                      ip_address: str | None = None) -> list[Identity]:
    """The person's external identities in full (WeChat openid / unionid, WeCom external_userid, Douyin id, PMS id;
    shown masked otherwise, `normalize.identity_mask`), by the phones' rule: the same permission (a role that may
    reveal phones), a reason, and one audit row (`identity.reveal`: who, whose, when, why, and how many of which
    kind, never the values). Phone identities are left to `phones_reveal`."""
    if not scope.can("customer.phone_view"):
        raise PermissionDenied("Your role may not reveal a patient's identities")
    if not reason or not reason.strip():
        raise ValidationFailed([FieldError("reason", "is required to reveal an identity", reason)])
    identities = [i for i in Identity.objects.filter(customer=customer).order_by("kind", "id")
                  if i.kind != IdentityKind.PHONE]
    kinds: dict[str, int] = {}
    for identity in identities:
        if identity.kind not in IDENTITY_KINDS_SHOWN:  # a PMS id was shown all along: nothing revealed
            kinds[identity.kind] = kinds.get(identity.kind, 0) + 1
    audit_record(actor=_user(scope), action="identity.reveal", object_type="customer", object_id=customer.id,
                 reason=reason.strip(), ip_address=ip_address, clinic_id=customer.home_clinic_id,
                 detail={"identities": sum(kinds.values()), "kinds": kinds})
    return identities


def _user(scope: Scope):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(pk=scope.user_id).first()


# --- merging -------------------------------------------------------------------------------------------

_MERGE_HOOKS: list = []


def merge_hook_register(func) -> None:
    """Higher apps (ledger, membership) register a hook(survivor, merged) for rows that need more than a
    foreign-key move (e.g. summing balances). Called inside the merge transaction before the generic move."""
    _MERGE_HOOKS.append(func)


_MERGE_AFTER_HOOKS: list = []


def merge_after_hook_register(func) -> None:
    """Higher apps register a hook(survivor, merged, actor) that must see the merged survivor (its summed spend and
    visits, every row moved), e.g. membership re-evaluating the tier the two records' spend reaches together.
    Called inside the merge transaction, last."""
    _MERGE_AFTER_HOOKS.append(func)


_FILLABLE = ["mobile", "gender", "birthday", "address", "community", "latitude", "longitude", "home_clinic",
             "consultant"]
_FIRST_TOUCH = ["first_touch_channel", "first_touch_campaign", "first_touch_staff", "first_touch_at"]
_LAST_TOUCH = ["last_touch_channel", "last_touch_campaign", "last_touch_staff", "last_touch_at"]


def _merged_stage(one: Customer, other: Customer, *, reached: str) -> str:
    """The stage of two records that are one person. An active record wins over dormant. Lost is kept unless the
    other record was booked, seen or paid after it was set lost, as an event would bring them back
    (`customer_stage_advance`): a patient marked lost by hand ("moved away", "asked not to be contacted") came back
    active, and into the follow-ups, on a duplicate's visits of before the mark; and lost is never left for dormant."""
    lost = [r for r in (one, other) if r.stage == Stage.LOST]
    if lost:
        marks = [r.stage_changed_at for r in lost]
        mark = None if None in marks else max(marks)

        def new_since(record: Customer) -> bool:
            seen = [t for t in (record.stage_changed_at, record.last_visit_at) if t is not None]
            return mark is not None and bool(seen) and max(seen) > mark

        back = any(r.stage in STAGE_REVIVING and new_since(r) for r in (one, other))
        return reached if back else Stage.LOST
    if one.stage in STAGE_PROGRESS or other.stage in STAGE_PROGRESS:
        return reached
    return Stage.DORMANT


def _touches_fill(survivor: Customer, merged: Customer, fill: dict) -> None:
    """Attribution moves as a whole touch (channel, campaign, staff, time), never field by field, which would pair
    one record's channel with the other's campaign. The person's first touch is the earlier of the two records'
    known ones, their last touch the later: the merged record's lead from a Douyin ad a year before the survivor's
    walk-in is what acquired them."""
    def known(c: Customer, prefix: str) -> bool:
        return bool(getattr(c, f"{prefix}_channel"))

    for prefix, fields, earlier in (("first_touch", _FIRST_TOUCH, True), ("last_touch", _LAST_TOUCH, False)):
        if not known(merged, prefix):
            continue
        mine, theirs = getattr(survivor, f"{prefix}_at"), getattr(merged, f"{prefix}_at")
        take = not known(survivor, prefix) or (
            mine is not None and theirs is not None and (theirs < mine if earlier else theirs > mine))
        if take:
            fill.update({name: getattr(merged, name) for name in fields})
    if "first_touch_staff" not in fill and not survivor.first_touch_staff_id and merged.first_touch_staff_id:
        fill["first_touch_staff"] = merged.first_touch_staff  # who entered the person, where no channel was known


@transaction.atomic
def _merge_households(survivor: Customer, merged: Customer, moved: dict) -> None:
    """A person belongs to one household, and every member's relation is to its head. The two records are one
    person, so: the survivor keeps their own household; a household the merged record heads joins it when the
    survivor heads theirs (the members' relations are to the same person); the merged record's place in a household
    it does not head is dropped. Refused (Conflict, nothing written) when the merged record heads a family and the
    survivor is a member of another: no head would be left whom the family's relations describe."""
    surv_hm = HouseholdMember.objects.select_related("household").filter(customer=survivor).first()
    merged_hm = HouseholdMember.objects.select_related("household").filter(customer=merged).first()
    if merged_hm and surv_hm:
        household = merged_hm.household
        others = HouseholdMember.objects.filter(household=household).exclude(pk=merged_hm.pk)
        if merged_hm.household_id == surv_hm.household_id:
            if household.head_id == merged.id:  # the head's two records: the survivor heads it
                surv_hm.relation = Relation.HEAD
                surv_hm.save(update_fields=["relation", "updated_at"])
        elif household.head_id == merged.id and others.exists():
            if surv_hm.household.head_id != survivor.id:
                raise Conflict(
                    f"{merged.name} (#{merged.id}) heads the household {household.name} and {survivor.name} "
                    f"(#{survivor.id}) is a member of another one ({surv_hm.household.name}); make another member head "
                    f"of {household.name} or take one of them out of their household on their page first",
                    code="household_conflict", field="merged")
            moved["customers.householdmember.household"] = others.update(household=surv_hm.household)
        merged_hm.delete()
        moved["household_membership_dropped"] = 1
        if household.head_id == merged.id and merged_hm.household_id != surv_hm.household_id:
            household.delete()  # its members (if any) have joined the survivor's household
        elif household.members.count() == 1:
            # the merged record's household had only it and one relative: a household of one is none
            household.members.all().delete()
            household.delete()
    if Household.objects.filter(head=merged).update(head=survivor):
        households_name_follow(head=survivor)


@transaction.atomic
def customer_merge(*, scope: Scope, survivor: Customer, merged: Customer, actor: Staff | None = None,
                   reason: str = "", ip_address: str | None = None) -> CustomerMerge:
    """Move everything of `merged` onto `survivor` and leave `merged` as a tombstone.

    Every row in any app that points at the merged customer is re-pointed (found through the model
    registry, so later apps are covered without touching this function).
    """
    if not scope.can("customer.merge"):
        raise PermissionDenied("Your role may not merge customers")
    if survivor.id == merged.id:
        raise ValidationFailed([FieldError("merged", "cannot merge a customer into itself", str(merged.id))])
    if has_control(reason or ""):  # the audit record's "why": a bell or an escape showed as nothing there
        raise ValidationFailed([FieldError("reason", CONTROL_CHARACTERS, reason[:100])])
    # Both rows locked in one order (by id), whichever is kept: two merges of one pair in opposite directions (two
    # staff members at once) wait for each other instead of deadlocking; the second then finds its record merged.
    # NO KEY: a bill being paid for either (a family member's, from the holder's wallet) checks its foreign keys to
    # them at commit (a KEY SHARE lock); a plain FOR UPDATE blocked that check while the merge waited for the
    # wallet the bill holds (ledger accounts_merge), a deadlock. Two merges still wait for each other.
    # Their households first: an erasure in either family holds its person, then locks the others (households_lock).
    households = households_lock(survivor.pk, merged.pk)
    locked = {c.pk: c for c in Customer.objects.select_for_update(no_key=True).filter(
        pk__in=[survivor.pk, merged.pk]).order_by("pk")}
    if len(locked) < 2:
        raise NotFound("Customer not found")
    households_lock(survivor.pk, merged.pk, held=households)
    survivor, merged = locked[survivor.pk], locked[merged.pk]
    for c in (survivor, merged):
        if c.merged_into_id or not _in_scope(scope, c):
            raise NotFound("Customer not found")
    # Either way a merge would tie an erased person's records to a named one again.
    _refuse_erased(survivor, merged, field="merged")
    snapshot = model_to_dict(merged, exclude=["latitude", "longitude"])
    snapshot = {k: (str(v) if v is not None and not isinstance(v, (int, str, bool)) else v) for k, v in snapshot.items()}
    for hook in _MERGE_HOOKS:
        hook(survivor=survivor, merged=merged)
    moved: dict[str, int] = {}
    _merge_households(survivor, merged, moved)
    # Every foreign key to a customer, hidden ones (related_name="+": a bill's settlement, a family wallet's use, a
    # keyword tag's hit counts) included: `related_objects` leaves those out, and a bill left on the merged record
    # could no longer be found or refunded. A record merged into this one earlier keeps pointing at it.
    for rel in Customer._meta.get_fields(include_hidden=True):
        if (not rel.auto_created or rel.concrete or rel.related_model in (Customer, CustomerMerge, CustomerSearchKey)
                or not (rel.one_to_many or rel.one_to_one)):
            continue
        model, field = rel.related_model, rel.field.name
        count = model._default_manager.filter(**{field: merged}).update(**{field: survivor})
        if count:
            moved[f"{model._meta.label_lower}.{field}"] = count
    stats = Customer.objects.filter(pk=merged.pk).values("visit_count", "lifetime_spend_fen").first()
    # Fill the survivor's blanks from the merged record before freeing the merged record's phone.
    fill = {}
    for name in _FILLABLE:
        mine, theirs = getattr(survivor, name), getattr(merged, name)
        if mine in (None, "", "U") and theirs not in (None, "", "U"):
            fill[name] = theirs
    _touches_fill(survivor, merged, fill)
    merged_mobile = merged.mobile
    CustomerSearchKey.objects.filter(customer=merged).delete()
    Customer.objects.filter(pk=merged.pk).update(merged_into=survivor, mobile=None, mobile_tail="")
    if merged_mobile and "mobile" not in fill and merged_mobile != survivor.mobile:
        Identity.objects.get_or_create(chain_id=survivor.chain_id, kind=IdentityKind.PHONE, external_id=merged_mobile,
                                       defaults={"customer": survivor, "source": "merge"})
    for name, value in fill.items():
        setattr(survivor, name, value)
    survivor.mobile_tail = (survivor.mobile or "")[-4:]
    survivor_was = Customer(stage=survivor.stage, stage_changed_at=survivor.stage_changed_at,
                            last_visit_at=survivor.last_visit_at)  # before the merged record's figures join
    survivor.visit_count += stats["visit_count"]
    survivor.lifetime_spend_fen += stats["lifetime_spend_fen"]
    if merged.first_visit_at and (not survivor.first_visit_at or merged.first_visit_at < survivor.first_visit_at):
        survivor.first_visit_at = merged.first_visit_at
    if merged.last_visit_at and (not survivor.last_visit_at or merged.last_visit_at > survivor.last_visit_at):
        survivor.last_visit_at = merged.last_visit_at
    # Lifecycle: the survivor keeps the higher progress reached; an active record wins over a side state.
    stage_before = survivor.stage
    if stage_rank(merged.stage_reached) > stage_rank(survivor.stage_reached):
        survivor.stage_reached = merged.stage_reached
    survivor.stage = _merged_stage(survivor_was, merged, reached=survivor.stage_reached)
    if merged.notes and merged.notes not in survivor.notes:
        survivor.notes = (survivor.notes + "\n" + merged.notes).strip()
    stage_moved = survivor.stage != stage_before
    if stage_moved:  # a stage change like any other: its previous stage, its time and one timeline event
        survivor.stage_prev, survivor.stage_changed_at = stage_before, timezone.now()
    survivor.save()
    if stage_moved:
        stage_events_insert(customers=Customer.objects.filter(pk=survivor.pk),
                            cause=timeline_format(MERGED, merged=merged.id, name=merged.name),
                            at=survivor.stage_changed_at, actor_id=actor.pk if actor else None)
    if "home_clinic" in fill:
        search_keys_home_clinic_sync(customer_ids=[survivor.id])
    record = CustomerMerge.objects.create(survivor=survivor, merged=merged, actor=actor, reason=reason[:255],
                                          moved=moved, merged_snapshot=snapshot)
    interaction_add(customer=survivor, kind=InteractionKind.MERGE, author=actor,
                    text=timeline_format(MERGED_BECAUSE if reason else MERGED, merged=merged.id, name=merged.name,
                                         reason=reason),
                    data={"merged_id": merged.id, "moved": moved})
    audit_record(actor=_user(scope), action="customer.merge", object_type="customer", object_id=survivor.id,
                 reason=reason, detail={"merged_id": merged.id, "moved": moved}, ip_address=ip_address,
                 clinic_id=survivor.home_clinic_id)
    if merged.home_clinic_id and merged.home_clinic_id != survivor.home_clinic_id:
        # the merged record's clinic reads in its log that its patient now lives on a record of another clinic
        audit_record(actor=_user(scope), action="customer.merge", object_type="customer", object_id=merged.id,
                     reason=reason, detail={"survivor_id": survivor.id}, ip_address=ip_address,
                     clinic_id=merged.home_clinic_id)
    for hook in _MERGE_AFTER_HOOKS:
        hook(survivor=survivor, merged=merged, actor=actor)
    return record


# --- ingestion (the API's upsert) ----------------------------------------------------------------------


@transaction.atomic(savepoint=False)
def customer_ingest(*, scope: Scope, data: dict, identities: list[dict] | None = None,
                    consents: list[dict] | None = None, actor: Staff | None = None,
                    source: str = "api") -> tuple[Customer, bool]:
    """customer_upsert within the caller's clinics, plus consent rows; all or nothing.

    A clinic-limited caller may name only its own clinics as home clinic, and a person it creates
    without one gets its single clinic, so it can read back what it wrote.

    No savepoint of its own (the API calls it once per request, inside the idempotency transaction): when
    called inside a transaction, a refusal fails that whole transaction, so the caller must not carry on
    in it (Django refuses further queries there until the atomic block ends).
    """
    if not scope.can("customer.edit"):
        raise PermissionDenied("Your role may not create or edit customers")
    errors: list[FieldError] = []
    for i, consent in enumerate(consents or []):
        if consent.get("purpose") not in ConsentPurpose.values:
            errors.append(FieldError(f"consents[{i}].purpose", f"must be one of {', '.join(ConsentPurpose.values)}",
                                     str(consent.get("purpose"))))
        if not str(consent.get("source") or "").strip():
            errors.append(FieldError(f"consents[{i}].source", "is required (where the consent was given)"))
        errors += _consent_text_errors(str(consent.get("source") or ""), str(consent.get("evidence") or ""),
                                       at=f"consents[{i}].")
    if errors:
        raise ValidationFailed(errors)
    home = data.get("home_clinic")
    if home is not None and str(home).strip() != "":
        if isinstance(home, Clinic):  # a form's choice, read already
            clinic = home if home.chain_id == scope.chain_id else None
        else:
            try:
                clinic = clinic_resolve(chain_id=scope.chain_id, value=home)
            except ValueError:
                clinic = None  # customer_upsert reports the field
        if clinic is not None:
            if not scope.allows_clinic(clinic.id):
                raise PermissionDenied(f"Clinic {home!r} is not one of your clinics", field="home_clinic")
            data = {**data, "home_clinic": clinic}  # resolved once
    elif "home_clinic" in data and not scope.is_chain_wide:
        # clearing it would take the person out of every clinic's sight, the caller's too
        raise PermissionDenied("Only chain-wide staff may clear a customer's home clinic", field="home_clinic")
    consultant = _consultant_within(scope, data.get("consultant"))
    if consultant is not None:
        data = {**data, "consultant": consultant}  # resolved once
    # A person created without a home clinic gets the caller's single clinic in the INSERT itself (so
    # its search keys carry the clinic too, and a clinic-scoped search finds it).
    default_home = next(iter(scope.clinic_ids)) if scope.clinic_ids and len(scope.clinic_ids) == 1 else None
    customer, created = _upsert(chain_id=scope.chain_id, data=data, identities=identities, actor=actor,
                                source=source, fill_only=False, scope=scope, default_home_clinic_id=default_home)
    for consent in consents or []:
        consent_record(customer=customer, purpose=consent["purpose"], granted=bool(consent.get("granted")),
                       source=str(consent["source"]), actor=actor, evidence=str(consent.get("evidence") or ""))
    return customer, created


def _consultant_within(scope: Scope, value) -> Staff | None:
    """The consultant `value` names (None for none, or for a name customer_input_clean will refuse). A clinic's
    staff may name only someone who works at one of their clinics: the consultant sees the people they own wherever
    those people's home clinic is, so naming one of another clinic would open the person to that clinic."""
    if value is None or str(value).strip() == "":
        return None
    staff = value if isinstance(value, Staff) else _staff_resolve(chain_id=scope.chain_id, value=value)
    if staff is None or scope.is_chain_wide:
        return staff
    if not any(scope.allows_clinic(clinic_id) for clinic_id in staff.clinics.values_list("pk", flat=True)):
        raise PermissionDenied(f"Consultant {value} does not work at one of your clinics", field="consultant")
    return staff


# A phone-less walk-in of a name registered this recently, by the same staff member or in the same clinic, is named
# before a second one is registered (customer_register's `namesakes_check`).
RECENT_NAMESAKE_MINUTES = 10


class RecentNamesakes(Conflict):
    """Phone-less patients of this name registered moments ago (`found`, newest first, of those the reader may see):
    nothing was written; the desk says whether the walk-in is one of them."""

    code = "recent_namesake"

    def __init__(self, found: list[Customer]):
        super().__init__("A phone-less patient of this name was registered moments ago", field="name")
        self.found = found


def _walk_in_namesakes(*, scope: Scope, data: dict, actor: Staff | None) -> list[Customer]:
    """recent_walk_in_namesakes of a phone-less walk-in about to be registered, read under a transaction-scoped lock
    on (chain, name as stored) that every such check takes. The check is a read: two desks (or two tabs, two form
    keys) sending the same name at the same moment each found nobody and both registered. Now the second waits for
    the first to commit and then finds its patient. Only these registrations take the lock, and only with each other
    of the same name: a registration with a phone, or with a relative (the family's check, under the relative's row
    lock), never waits for it. Lock order: after the form key's claim (core.idempotency), before anything about a
    person, which the caller does not yet hold; nothing else takes it. PostgreSQL only: SQLite has one writer, and
    the key's claim before it already made the second wait."""
    try:
        name = customer_input_clean(chain_id=scope.chain_id, data={"name": data.get("name")},
                                    partial=True).get("name", "")
    except ValidationFailed:
        return []  # customer_ingest refuses the name itself, saying why
    if not name:
        return []
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                           [f"walk-in:{scope.chain_id}:{name}"])
    home = data.get("home_clinic")
    birthday = data.get("birthday")
    return recent_walk_in_namesakes(
        scope, name=name, birthday=birthday if isinstance(birthday, dt.date) else None,
        staff_id=actor.id if actor is not None else None, clinic_id=home.id if isinstance(home, Clinic) else None,
        since=timezone.now() - dt.timedelta(minutes=RECENT_NAMESAKE_MINUTES))


@transaction.atomic
def customer_register(*, scope: Scope, data: dict, consents: list[dict] | None = None,
                      relative: Customer | None = None, relation: str | None = None,
                      actor: Staff | None = None, namesakes_check: bool = False) -> tuple[Customer, bool]:
    """A person registered at the front desk: the person (customer_ingest, source "form"), the consents they gave
    there, and the relative they came with (`relation`: what the relative is to them; household_relative_add).
    All or nothing: a relation that cannot be linked leaves no person behind.

    A phone-less person whose relative's family already has a member of that name (and birthday, where both are
    known) is that member: refused (Conflict "family_member_exists"), never a second record, as a known phone is.
    A child imported with a parent's number and registered again at the desk would otherwise be two children.

    With `namesakes_check` (the desk has not confirmed a second person of that name), a phone-less walk-in without a
    relative whose name (and birthday, where both are known) `actor` or the home clinic registered phone-less in the
    last RECENT_NAMESAKE_MINUTES is refused (RecentNamesakes, naming them), nothing written: a page fetched anew (a
    new form key) or a second desk would otherwise register the same person twice. Serialised per name
    (_walk_in_namesakes)."""
    birthday = data.get("birthday")
    if namesakes_check and relative is None and not data.get("mobile"):
        found = _walk_in_namesakes(scope=scope, data=data, actor=actor)
        if found:
            raise RecentNamesakes(found)
    if relative is not None and not data.get("mobile"):
        # The relative's row locked first: the same registration sent twice at once (a double click, two desks) found
        # no twin in either and made two children; now the second waits for the first and finds its child.
        customers_lock(relative.pk)
        twin = family_member_find(relative_id=relative.id, name=str(data.get("name") or ""),
                                  birthday=birthday if isinstance(birthday, dt.date) else None)
        if twin is not None:
            raise Conflict(f"{data.get('name')} is already a member of this relative's family (customer {twin})",
                           code="family_member_exists", field="name")
    customer, created = customer_ingest(scope=scope, data=data, consents=consents, actor=actor, source="form")
    if not created:
        # The phone is someone's already (registered at another desk a moment ago): their record is not overwritten
        # with this form's name and birthday, given its consents or linked to its relative. Nothing is written.
        raise Conflict("This mobile number already belongs to an existing customer", code="customer_exists",
                       field="mobile")
    if relative is not None:
        household_relative_add(customer=customer, relative=relative, relation=relation or "", actor=actor)
    return customer, created
