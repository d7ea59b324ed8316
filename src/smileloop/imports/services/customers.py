"""Import of existing patient data: one pass over the file, set-based writes per chunk.

Matching (never a second person):
- a row whose normalised phone or identity (openid, unionid, PMS id) is already in the pool merges into
  that person: blank fields are filled, nothing is overwritten;
- a row naming someone seen earlier in the same file merges into that row's person;
- a row with neither phone nor identity is a new person (phone-less leads are real), except that a
  second phone-less row with the same name and birthday as an earlier phone-less row of the same file
  is taken as the same person. Such rows are never matched against the pool by name: two people may
  share a name and birthday, and the merge-candidates list is where staff decide that. The exception is a row
  registered by a relative's number ('13800138000(妈妈)'): it names the one member of that relative's household
  with its name (and birthday, where both are known), and in the file the same name under the same number;
- a relative's number links the person into that relative's household at the end (households_link);
- a phone and an identity that name two different people is an invalid row (merge them first).

Scope: an importer whose role sees only some clinics (a clinic director) imports as the API upsert writes for
them — a row naming a person of another clinic is an invalid row (`belongs to a customer outside your clinics`,
nothing of that person is changed or shown), a clinic column must name one of their clinics, and a new person
without one gets the importer's clinic when they have exactly one (else the row needs a clinic).

Matching state lives in memory per file (keys → person token), so a dry run reports exactly what a
real run would, without writing anything.
"""

from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

from django.db import IntegrityError, OperationalError, connection
from django.utils import timezone
from django.utils.translation import gettext as _

from smileloop.clinics.models import Chain, Clinic, Staff
from smileloop.core.audit import audit_record
from smileloop.core.bulk import rows_insert
from smileloop.core.errors import database_busy, unique_clash_name
from smileloop.core.scoping import Scope
from smileloop.core.sql import select_in, statistics_refresh
from smileloop.customers.enums import Channel, Gender, IdentityKind, InteractionKind, Relation, Stage
from smileloop.customers.models import (
    Consent,
    Customer,
    CustomerSearchKey,
    Identity,
    Interaction,
)
from smileloop.customers.normalize import (
    birthday_parse,
    channel_parse,
    gender_from_title,
    gender_parse,
    kinship_parse,
    phone_national,
)
from smileloop.customers.selectors import family_member_named, family_members_of, scope_covers
from smileloop.customers.services import (
    TEXT_LIMITS,
    customers_erasures_wait,
    customers_lock_live,
    household_places,
    households_join,
    search_keys_home_clinic_sync,
)
from smileloop.customers.timeline import fields_text, timeline_format
from smileloop.imports.errors import ImportConflict, ImportFileError
from smileloop.imports.services.common import (
    CHUNK_ROWS,
    ClinicLookup,
    chain_of,
    gc_relaxed,
    import_transactions_run,
    limited_scope_of,
    lookup_key,
    staff_lookup_build,
    staff_of,
    user_of,
)
from smileloop.imports.services.headers import (
    CONSENT_FIELDS,
    CUSTOMER_ALIASES,
    CUSTOMER_IMPORT_FIELDS,
    IDENTITY_FIELDS,
)
from smileloop.imports.services.reading import cell_text, column_map_clean, table_open
from smileloop.imports.services.report import PREVIEW_ROWS, ImportReport
from smileloop.imports.services.values import (
    PinyinCache,
    bool_parse,
    decimal_parse,
    formula_or,
    name_clean,
    note_is_own,
    phone_cell_parse,
    phone_extension_parse,
    phone_fallback_parse,
    phone_is_placeholder,
    text_formula_value,
)
from smileloop.imports.timeline import IMPORT_FILLED, IMPORT_INTO_SURVIVOR, IMPORTED

# Model fields an import may fill on an existing person, and what counts as blank there.
_FILLABLE_BLANK = {
    "mobile": (None, ""), "gender": (Gender.UNKNOWN, "", None), "birthday": (None,), "address": ("",),
    "community": ("",), "latitude": (None,), "longitude": (None,), "home_clinic_id": (None,),
    "consultant_id": (None,), "notes": ("",), "first_touch_channel": ("",), "first_touch_campaign": ("",),
}

_FILLABLE_FIELDS = ["id", "chain_id", "name", "mobile_tail", "first_touch_at",
                    *(a.removesuffix("_id") for a in _FILLABLE_BLANK)]

# Row errors and warnings are English, as the JSON report; the staff page shows them in its reader's language
# (imports.messages), whoever ran the check.
OUT_OF_SCOPE = "belongs to a customer outside your clinics; a colleague who sees every clinic can import this row"
CLINIC_REQUIRED = "is required: you see only your clinics' patients, so name one of them"
# A link whose relative (or person) was erased or merged away while the import ran: nothing linked (households_link)
HOUSEHOLD_ERASED = ("is the number of a relative: they or this row's patient were erased during the import, no "
                    "household was linked")
HOUSEHOLD_MERGED = ("is the number of a relative: they or this row's patient were merged into another record during the "
                    "import, no household was linked; link them from the kept record's page")
# A row naming a person an earlier chunk of the file matched or created, erased (PIPL) or merged away since that chunk
# was written (a file written one transaction per chunk): refused, its value not quoted (row_apply)
PERSON_ERASED = ("belongs to a patient whose personal information was erased during the import: the row is not "
                 "imported")
PERSON_MERGED = "belongs to a patient merged into another record during the import: import this row again"
# A row naming a person an earlier chunk matched or created, merged into another record since: the same person, so the
# row goes into the record kept (pool_lock), said on the row and on that record's timeline (IMPORT_INTO_SURVIVOR)
PERSON_MERGED_INTO = ("belongs to a patient merged into another record during the import: the row is imported into the "
                      "record kept")
# How many merges of merges are followed to the record kept (as customers.selectors.customer_survivor_get does)
_MERGE_HOPS = 10
NAME_DIFFERS = ("differs from the name of the person with this phone ({name}): the row is merged into them, and their "
                "name is kept")


@dataclass(slots=True)
class _Row:
    number: int
    values: dict  # model attribute → value
    mobile: str | None
    idents: list[tuple[str, str, str]]  # (kind, external id, header)
    consents: list[tuple[str, bool]]
    dedupe_key: str | None = None
    mobile_header: str | None = None  # the fallback column's header when the phone came from it
    second: str | None = None  # the fallback column's number when it differs from the phone
    more: tuple[str, ...] = ()  # further numbers of the phone cell itself ('138…/139…'), kept like a second number
    relative_number: bool = False  # the phone cell held a relative's number ('…(妈妈)'): kept in the notes only
    relative: tuple[str, str] | None = None  # (that number, what its holder is to the person: Relation.PARENT, …)
    fallback_skipped: bool = False  # the fallback cell held no number ('无', '-')
    mobile_cell: str = ""  # the cell the phone came from, as written: what a message about the number shows
    extension: bool = False  # the phone cell named a line with an extension: the cell is in the notes already


def _new_value(person: dict, attr: str):
    """A field of an unsaved person as it will be stored: an absent field takes its blank default."""
    return person.get(attr, _FILLABLE_BLANK[attr][0]) if attr in _FILLABLE_BLANK else person.get(attr)


# A model attribute's name in the preview (the import field it comes from)
_PREVIEW_FIELDS = {"home_clinic_id": "home_clinic", "consultant_id": "consultant", "first_touch_channel": "source"}
_EMPTY = object()
_MISSING = object()
# Columns whose parsed value depends only on the cell: parsed once per distinct value.
_MEMO_FIELDS = {"gender": "gender", "birthday": "birthday", "home_clinic": "home_clinic_id",
                "consultant": "consultant_id", "source": "first_touch_channel"}


@dataclass
class _Chunk:
    new: dict[int, dict] = field(default_factory=dict)  # token (< 0) → unsaved person's column values
    new_rows: dict[int, int] = field(default_factory=dict)  # token → row number that created it
    new_keys: list[str] = field(default_factory=list)
    dirty: dict[int, set[str]] = field(default_factory=dict)  # customer id → filled fields
    identities: list[tuple[int, str, str]] = field(default_factory=list)  # (token or id, kind, external id)
    consents: list[tuple[int, str, bool]] = field(default_factory=list)
    links: list[tuple[int, str, str, int]] = field(default_factory=list)  # (token or id, relative's number, kin, row)
    moved: list[tuple[int, int, int]] = field(default_factory=list)  # (record kept, row, id merged into it): survivor_note


def customers_import(*, path, chain, actor: Staff | None = None, column_map: dict[str, str] | None = None,
                     skip_invalid: bool = False, dry_run: bool = False, progress=None, name: str | None = None,
                     default_clinic: Clinic | None = None) -> ImportReport:
    """Import people from a CSV/XLSX file into `chain`'s pool.

    All-or-nothing unless `skip_invalid`: one invalid row and nothing is written (one transaction per
    file); with `skip_invalid` the valid rows are written one transaction per chunk. `dry_run` reads
    and matches everything against the pool and writes nothing. Raises ImportFileError for a file
    that cannot be read at all. `progress(n)` is called with the number of rows done since the last call.
    """
    chain = chain_of(chain)
    mapping = column_map_clean(column_map, aliases=CUSTOMER_ALIASES, fields=CUSTOMER_IMPORT_FIELDS)
    if default_clinic is not None and default_clinic.chain_id != chain.id:
        raise ImportFileError(_("The default clinic is not a clinic of this chain"), code="bad_clinic")
    scope = limited_scope_of(actor)
    if default_clinic is not None and scope is not None and not scope.allows_clinic(default_clinic.id):
        raise ImportFileError(_("The default clinic is not one of your clinics"), code="bad_clinic")
    with table_open(path, name=name) as table, _sqlite_cache(), gc_relaxed():
        table.map_columns(aliases=CUSTOMER_ALIASES, fields=CUSTOMER_IMPORT_FIELDS, column_map=mapping)
        if table.header_for("name") is None:
            raise ImportFileError(_("%(name)s has no name column (姓名/name)") % {"name": table.name},
                                  code="missing_column")
        run = _CustomerImport(chain=chain, actor=actor, table=table, default_clinic=default_clinic,
                              write=not dry_run, skip_invalid=skip_invalid, scope=scope)
        try:
            import_transactions_run(chain_id=chain.id, run=run, chunks=table.chunks(CHUNK_ROWS), skip_invalid=skip_invalid,
                                    dry_run=dry_run, progress=progress)
        except IntegrityError as exc:  # a concurrent import or registration took a phone or an identity first
            # Named by the constraint only: the database's text quotes the clashing phone in full, and the page shows
            # this to staff who may not see full numbers.
            raise ImportConflict(_("The patient pool changed during the import (%(error)s); nothing more was "
                                   "written, run it again") % {"error": unique_clash_name(exc)})
        except OperationalError as exc:  # a concurrent import holding the rows (or SQLite's lock) past the timeout
            if not database_busy(exc):
                raise
            raise ImportConflict(_("The database was busy with another write (%(error)s); nothing more was written, "
                                   "run it again") % {"error": exc})
    if run.report.written:
        # SQLite: a first big import would otherwise leave the planner guessing (the rows of the other tables
        # grow with the people created; the timeline and consents with the rows)
        statistics_refresh({Customer: run.report.created, CustomerSearchKey: run.report.created,
                            Identity: run.report.created, Interaction: run.report.rows, Consent: run.report.rows})
    return run.report


@contextmanager
def _sqlite_cache(kib: int = 262_144):
    """SQLite: a 256 MiB page cache for the import's connection while it runs (the default 2 MiB makes
    every insert into the big indexes of a large pool a page miss), restored afterwards."""
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        before = cursor.fetchone()[0]
        cursor.execute(f"PRAGMA cache_size = {-int(kib)}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA cache_size = {int(before)}")


class _CustomerImport:
    def __init__(self, *, chain: Chain, actor, table, default_clinic, write: bool, skip_invalid: bool,
                 scope: Scope | None = None):
        self.chain = chain
        self.scope = scope  # None: every clinic of the chain
        only = sorted(scope.clinic_ids) if scope is not None else []
        self.own_clinic_id = only[0] if len(only) == 1 else None
        self.actor = staff_of(actor)
        self.actor_id = self.actor.id if self.actor else None
        self.table = table
        self.default_clinic_id = default_clinic.id if default_clinic else None
        self.write = write
        self.skip_invalid = skip_invalid
        self.report = ImportReport.for_columns("customers", table)
        self.mobile_header = table.header_for("mobile")
        self.clinics = ClinicLookup(chain.id)
        self.staff = staff_lookup_build(chain.id)
        # A clinic's importer may name only a consultant who works at one of their clinics, as the API and the form
        # allow: the consultant sees the people they own wherever they are registered (customers._consultant_within).
        self.consultants_allowed = None if scope is None else set(Staff.clinics.through.objects.filter(
            clinic_id__in=scope.clinic_ids).values_list("staff_id", flat=True))
        self.staff_names: dict[int, str] | None = None  # read once, for a preview that names a consultant
        self.pinyin = PinyinCache()
        self.known: dict[str, int] = {}  # "m:+86…" / "i:kind:id" / "n:name|birthday" → customer id or token
        self.next_token = -1
        self.token_names: dict[int, str] = {}  # a person created from this file (token) → their name
        self.links: list[tuple[int, str, str, int]] = []  # see households_link
        self.vanished: dict[str, str] = {}  # a relative's number → "erased" / "merged": its holder, meanwhile
        self.lost: dict[int, str] = {}  # a person locked erased / merged away by a later chunk (pool_lock) → which
        self.moved: dict[str, int] = {}  # a key of `known` moved to the record kept by a merge (pool_lock) → merged id
        self.preview_people: dict[int, int] = {}  # a preview row's number → its person (token, then id once written)
        self.now = timezone.now()
        self.columns = [(index, name, header) for index, (name, header) in table.columns.items()]
        self.width = table.width
        self.memo: dict[tuple[str, object], object] = {}
        self.today = timezone.localdate()

    # --- parsing ---------------------------------------------------------------------------------

    def parse(self, number: int, cells: list):
        """The row's model values, or None after recording its errors, or _EMPTY."""
        values: dict = {}
        errors = []
        mobile = second = None
        more: list[str] = []
        noted = None  # (PhoneCell, raw, header) of a phone cell with words beside its number
        extension = None  # (line, header) of a phone cell naming a line with an extension
        relative_number = False
        relative = None
        guardian, guardian_words = None, {}  # the guardian columns: (PhoneCell, raw, header); name → (text, header)
        idents, consents = [], []
        mobile_present = False
        mobile_cell = ""
        fallback = None  # (raw, header) of the fallback column's cell
        for index, name, header in self.columns:
            raw = cells[index] if index < len(cells) else None
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                continue
            try:
                if name in _MEMO_FIELDS:
                    key = (name, raw)
                    value = self.memo.get(key, _MISSING)
                    if value is _MISSING:
                        value = self.memo[key] = self.parse_value(name, raw)
                    values[_MEMO_FIELDS[name]] = value
                elif name == "name":
                    text = name_clean(raw)
                    if len(text) > TEXT_LIMITS["name"]:
                        raise ValueError(f"is longer than {TEXT_LIMITS['name']} characters")
                    if text:  # a cell of invisible characters only (a zero-width space, a BOM) names no one
                        values["name"] = text
                elif name == "mobile":
                    if phone_is_placeholder(raw):  # 无, 暂无, '-': the person gave no number, as a blank cell
                        continue
                    mobile_present = True
                    mobile_cell = cell_text(raw)
                    try:
                        cell = phone_cell_parse(raw)
                    except ValueError:
                        line = phone_extension_parse(raw)
                        if line is None:
                            raise
                        # a switchboard line with the patient's extension: shared by the office, so it names
                        # them only under the same name (as a fallback column's line does); the cell is noted
                        extension = (line, header)
                        values["mobile"] = mobile = line
                        continue
                    if cell.note:
                        noted = (cell, raw, header)  # whose number it is is decided below, with the name
                    else:
                        mobile, *more = cell.numbers
                        values["mobile"] = mobile
                elif name == "mobile_fallback":
                    fallback = (raw, header)
                    second = phone_fallback_parse(raw)
                elif name == "guardian_mobile":
                    guardian = (phone_cell_parse(raw), raw, header)  # '139…' or '139…(妈妈)'
                elif name in ("guardian_relation", "guardian_name"):
                    guardian_words[name] = (cell_text(raw)[:50], header)
                elif name == "campaign":  # as through the API and the form: it was cut short without a word
                    text = cell_text(raw)
                    if len(text) > TEXT_LIMITS["first_touch_campaign"]:
                        raise ValueError(f"is longer than {TEXT_LIMITS['first_touch_campaign']} characters")
                    values["first_touch_campaign"] = text
                elif name in ("address", "community"):
                    text = cell_text(raw)
                    if len(text) > TEXT_LIMITS[name]:
                        raise ValueError(f"is longer than {TEXT_LIMITS[name]} characters")
                    values[name] = text
                elif name == "notes":
                    values["notes"] = cell_text(raw)
                elif name in ("latitude", "longitude"):
                    values[name] = decimal_parse(raw, bound=90 if name == "latitude" else 180)
                elif name in IDENTITY_FIELDS:
                    external_id = cell_text(text_formula_value(raw))  # '="000123"': Excel keeping its zeros
                    if len(external_id) > 128:
                        raise ValueError("is longer than 128 characters")
                    idents.append((IDENTITY_FIELDS[name], external_id, header))
                elif name in CONSENT_FIELDS:
                    consents.append((CONSENT_FIELDS[name], bool_parse(raw)))
            except ValueError as exc:
                errors.append((header, raw, formula_or(raw, str(exc))))
        if self.width is not None and len(cells) > self.width and (overflow := self.table.overflow_error(cells)):
            errors.append(overflow)
        if noted is not None and not errors:
            cell, raw, header = noted
            if note_is_own(cell.note, values.get("name", "")):
                mobile, *more = cell.numbers
                values["mobile"] = mobile
            else:
                # A relative's number ('13800138000(妈妈)'): not this person's phone, so it identifies nobody here
                # and is not stored as theirs (the parent registering later would be merged into the child);
                # it is kept, as written, in the notes for the front desk.
                mobile_present = False
                line = f"{header}：{cell_text(raw)}"
                values["notes"] = f"{values['notes']}；{line}" if values.get("notes") else line
                relative_number = True
                kin = kinship_parse(cell.note)
                if kin is not None:  # '妈妈': the child joins her household when her number is known (finish)
                    relative = (cell.numbers[0], kin)
        if (guardian is not None or guardian_words) and not errors:
            relative = self.guardian_apply(values, guardian, guardian_words, relative)
            relative_number = relative_number or guardian is not None
        if "gender" not in values and values.get("name"):
            titled = gender_from_title(values["name"])  # '王女士' without a gender column: female
            if titled:
                values["gender"] = titled
        if "name" not in values:
            if not values and not idents and not consents and not errors and second is None:
                # only ignored columns (or a fallback cell without a number) are filled: not a row of people
                return _EMPTY
            name_header = self.table.header_for("name")
            if not any(error[0] == name_header for error in errors):  # a too-long name is that error alone
                errors.insert(0, (name_header, "", "is required"))
        if errors:
            self.invalid(number, errors)
            return None
        row = _Row(number=number, values=values, mobile=mobile, idents=idents, consents=consents, more=tuple(more),
                   relative_number=relative_number, relative=relative, mobile_cell=mobile_cell)
        if extension is not None:
            row.mobile_header, row.extension = extension[1], True
            line = f"{extension[1]}：{mobile_cell}"
            values["notes"] = f"{values['notes']}；{line}" if values.get("notes") else line
        if fallback is not None:
            if second is None:
                row.fallback_skipped = True
            elif not mobile_present:
                row.mobile = values["mobile"] = second
                row.mobile_header, row.mobile_cell = fallback[1], cell_text(fallback[0])
            elif second != mobile:
                row.second = second
        if not row.mobile and not idents and relative is not None:
            # registered by a relative's number: the same name (and birthday) under that number is the same person
            birthday = values["birthday"].isoformat() if values.get("birthday") else ""
            row.dedupe_key = f"r:{relative[0]}|{' '.join(values['name'].split())}|{birthday}"
        elif not row.mobile and not idents and values.get("birthday"):
            row.dedupe_key = f"n:{values['name']}|{values['birthday'].isoformat()}"
        return row

    @staticmethod
    def guardian_apply(values: dict, guardian, words: dict, relative):
        """A child's guardian columns (监护人, 监护人电话, 与患者关系): kept, as written, in the notes, and the number
        is the relative the child is linked through (a parent unless the relation column says otherwise) —
        unless the phone cell already named one. Returns the row's relative (number, kin) or None."""
        lines = [f"{header}：{text}" for text, header in [words.get("guardian_name", ("", ""))] if text]
        if guardian is not None:
            lines.append(f"{guardian[2]}：{cell_text(guardian[1])}")
        lines += [f"{header}：{text}" for text, header in [words.get("guardian_relation", ("", ""))] if text]
        if lines:
            line = "；".join(lines)
            values["notes"] = f"{values['notes']}；{line}" if values.get("notes") else line
        if guardian is None or relative is not None:
            return relative
        cell = guardian[0]
        # the relation column, else words beside the number that name one ('139…(奶奶)'; '139…(微信同号)' names none)
        stated = words.get("guardian_relation", ("", ""))[0] or ("" if note_is_own(cell.note) else cell.note)
        kin = kinship_parse(stated) if stated else Relation.PARENT
        return (cell.numbers[0], kin) if kin is not None else None

    def parse_value(self, name: str, raw):
        """Parsers for columns whose values repeat (genders, dates, clinics, sources): memoised per import."""
        if name == "gender":
            return gender_parse(cell_text(raw))
        if name == "birthday":
            return birthday_parse(raw.strip() if isinstance(raw, str) else raw, today=self.today)
        if name == "home_clinic":
            clinic_id = self.clinics.resolve(raw)
            if self.scope is not None and not self.scope.allows_clinic(clinic_id):
                raise ValueError("is not one of your clinics")
            return clinic_id
        if name == "consultant":
            staff_id = self.staff.get(lookup_key(raw))
            if staff_id is None:
                raise ValueError("is not a staff member of this chain")
            if self.consultants_allowed is not None and staff_id not in self.consultants_allowed:
                raise ValueError("does not work at one of your clinics")
            return staff_id
        return channel_parse(cell_text(raw))  # source

    def invalid(self, number: int, errors: list[tuple[str, object, str]]) -> None:
        for header, raw, message in errors:
            self.report.error_add(row=number, column=header, value=cell_text(raw), message=message)
        self.report.skipped += 1
        self.preview_add(number, {}, "invalid")
        if not self.skip_invalid:
            self.write = False  # all-or-nothing: keep reading to list every error, write nothing more

    def preview_add(self, number: int, values: dict, outcome: str, *, filled=(), kept: dict | None = None,
                    warning: str | None = None) -> None:
        """A preview row: `values` as they will be stored; of a merged row also the fields the file fills (`filled`),
        the file's values the person's own keep out (`kept`) and a warning (a name that differs)."""
        if len(self.report.preview) < PREVIEW_ROWS:
            entry = {"row": number, "values": self._shown(values), "outcome": outcome}
            if filled:
                entry["filled"] = sorted(_PREVIEW_FIELDS.get(attr, attr) for attr in filled
                                         if attr in values)
            if kept:
                entry["kept"] = self._shown(kept)
            if warning:
                entry["warning"] = warning
            self.report.preview.append(entry)

    def _staff_names(self) -> dict[int, str]:
        if self.staff_names is None:
            self.staff_names = dict(Staff.objects.filter(chain_id=self.chain.id).values_list("id", "name"))
        return self.staff_names

    def _shown(self, values: dict) -> dict:
        shown = {}
        for attr, value in values.items():
            if attr == "home_clinic_id":
                shown["home_clinic"] = self.clinics.name_of(value)
            elif attr == "consultant_id" and value is not None:  # the name, as the file and the 360 page say it
                shown["consultant"] = self._staff_names().get(value, str(value))
            else:
                shown[_PREVIEW_FIELDS.get(attr, attr)] = "" if value is None else str(value)
        return shown

    # --- matching and writing --------------------------------------------------------------------

    def chunk(self, raw_rows: list[tuple[int, list]]) -> None:
        rows = []
        for number, cells in raw_rows:
            row = self.parse(number, cells)
            if row is _EMPTY:
                continue
            self.report.rows += 1
            if row is not None:
                rows.append(row)
        mobiles = {r.mobile for r in rows if r.mobile and f"m:{r.mobile}" not in self.known}
        # second numbers (see row_apply) are looked up with the phones: whose mobile or phone identity they are
        numbers = mobiles | {r.second for r in rows if r.second and f"m:{r.second}" not in self.known}
        numbers |= {n for r in rows for n in r.more if f"m:{n}" not in self.known}
        # relatives' numbers: whose they are, to find a phone-less row's person among that relative's family, and to
        # lock the relatives a link will write about (pool_lock)
        numbers |= {r.relative[0] for r in rows if r.relative and f"m:{r.relative[0]}" not in self.known}
        ident_keys = {(k, e) for r in rows for k, e, _h in r.idents if f"i:{k}:{e}" not in self.known}
        by_mobile = dict(select_in(
            "SELECT mobile, id FROM customers_customer WHERE chain_id = %s AND merged_into_id IS NULL AND mobile",
            [self.chain.id], numbers))
        pending = [(IdentityKind.PHONE, m) for m in numbers - by_mobile.keys()]
        by_ident: dict[tuple[str, str], int] = {}
        lookups = ident_keys | set(pending)
        if lookups:
            kinds = sorted({k for k, _e in lookups})
            for kind, external_id, customer_id in select_in(
                "SELECT kind, external_id, customer_id FROM customers_identity WHERE chain_id = %s AND kind IN ("
                + ", ".join(["%s"] * len(kinds)) + ") AND external_id",
                [self.chain.id, *kinds], {e for _k, e in lookups},
            ):
                if (kind, external_id) in lookups:
                    by_ident[(kind, external_id)] = customer_id
        for kind, mobile in pending:
            if (kind, mobile) in by_ident:
                by_mobile[mobile] = by_ident[(kind, mobile)]
        wanted = {by_mobile[m] for m in mobiles if m in by_mobile} | set(by_ident.values())
        earlier = {t for r in rows for t in self._known_tokens(r) if t > 0}
        wanted |= earlier
        # People of earlier chunks merged into another record since (a file written one transaction per chunk; in one
        # transaction the earlier chunks' locks hold a merge off): the records kept, read here and locked with the
        # chunk's people (pool_lock); a merge committing after this read and before the lock leaves its row refused.
        survivors = _survivors_of(earlier) if self.write and self.skip_invalid and earlier else {}
        wanted |= set(survivors.values())
        families = family_members_of({by_mobile[r.relative[0]] for r in rows
                                      if r.relative and not r.mobile and not r.idents and r.relative[0] in by_mobile})
        wanted |= {member for members in families.values() for member, _n, _b in members}
        if self.write:
            gone = self.pool_lock(rows, wanted, by_mobile, survivors)
            if gone:  # erased or merged away since the look-ups: no longer found, as the orders import does
                wanted -= gone
                by_mobile = {m: pk for m, pk in by_mobile.items() if pk not in gone}
                by_ident = {k: pk for k, pk in by_ident.items() if pk not in gone}
                families = {holder: [m for m in members if m[0] not in gone]
                            for holder, members in families.items() if holder not in gone}
        people = Customer.objects.only(*_FILLABLE_FIELDS).in_bulk(wanted) if wanted else {}
        chunk = _Chunk()
        for row in rows:
            self.row_apply(row, chunk, by_mobile, by_ident, people, families)
        if self.write:
            self.flush(chunk, people)
        else:
            self.links += chunk.links

    def pool_lock(self, rows: list[_Row], wanted: set[int], by_mobile: dict,
                  survivors: dict[int, int] | None = None) -> set[int]:
        """Before a chunk writes anything about people of the pool, the project's lock order (docs/architecture.md,
        "Writes about a person"): the erasures of everyone it may write about waited out — the people its rows
        name, the relatives its links name and the heads of their households, whose timelines get the joined notes
        (customers_erasures_wait) — then their rows locked in id order in one statement, and read (erased, merged
        away) under the locks. The rows were updated as found, in file order, and the family was locked in id order
        only at the end (households_join): an import that had filled a mother's address held her row while it
        waited for her child's, which a staff link of the two held while it waited for hers (a deadlock). Returns
        the ids erased or merged away meanwhile. A file of several chunks locks each chunk's people in id order.

        A person of an earlier chunk merged away meanwhile whose record kept (`survivors`, locked with the rest) is
        live is the same person: the file's later rows go into that record (`known` moved to it, survivor_take); one
        erased, or merged away itself since it was read, is lost (row_apply refuses the rows)."""
        holder_of = {r.relative[0]: self.known.get(f"m:{r.relative[0]}") or by_mobile.get(r.relative[0])
                     for r in rows if r.relative}
        holders = set(holder_of.values()) - {None}
        ids = {pk for pk in wanted | holders if pk > 0}
        if not ids:
            return set()
        waits = set(ids)
        if holders:
            waits.update(household_places(ids)[1].values())  # their households' heads
        customers_erasures_wait(Customer.objects.filter(pk__in=sorted(waits)).values("pk"))
        erased, gone = customers_lock_live(*ids)
        moved = {pk: kept for pk, kept in (survivors or {}).items()
                 if pk in gone and pk not in erased and kept not in erased and kept not in gone}
        if moved:
            self.survivor_take(moved)
        # merged into a record erased since: the person is erased (their rows refused as erased ones are)
        erased_kept = {pk for pk, kept in (survivors or {}).items() if pk in gone and kept in erased}
        self.lost.update((pk, "erased" if pk in erased or pk in erased_kept else "merged")
                         for pk in erased | gone if pk not in moved)
        for number, holder in holder_of.items():  # said on the rows at the end (households_link)
            if holder in erased or holder in gone:
                self.vanished[number] = "erased" if holder in erased else "merged"
        return set(erased | gone)

    def survivor_take(self, moved: dict[int, int]) -> None:
        """`known` keys of people merged away (`moved`: merged id → record kept) now name the record kept; each is
        remembered (`moved`), so the rows they match say so (row_apply)."""
        for key, token in self.known.items():
            if token in moved:
                self.known[key] = moved[token]
                self.moved.setdefault(key, token)

    def _family_match(self, row: _Row, by_mobile: dict, families: dict) -> int | None:
        """The person a phone-less row registered by a relative's number names: the one member of that relative's
        household with the row's name (and birthday, where both are known). A re-import of a sheet of children
        written with their parents' numbers then merges instead of making every child twice."""
        holder = by_mobile.get(row.relative[0]) if row.relative and not row.mobile and not row.idents else None
        if holder is None:
            return None
        return family_member_named(families.get(holder, []), row.values["name"], row.values.get("birthday"))

    def _known_keys(self, row: _Row) -> list[str]:
        keys = [f"i:{k}:{e}" for k, e, _h in row.idents]
        if row.mobile:
            keys.append(f"m:{row.mobile}")
        if row.dedupe_key:
            keys.append(row.dedupe_key)
        return [k for k in keys if k in self.known]

    def _known_tokens(self, row: _Row) -> list[int]:
        return [self.known[k] for k in self._known_keys(row)]

    def _name_of(self, target: int, chunk: _Chunk, people) -> str | None:
        person = chunk.new.get(target) or people.get(target)
        if isinstance(person, dict):
            return person.get("name")
        return getattr(person, "name", None) or self.token_names.get(target)

    def row_apply(self, row: _Row, chunk: _Chunk, by_mobile, by_ident, people, families) -> None:
        mobile_header = row.mobile_header or self.mobile_header
        matches: list[tuple[int, str, str]] = []  # (customer id or token, header, value)
        by_phone = None  # the person the row's phone names
        if row.mobile:
            target = self.known.get(f"m:{row.mobile}") or by_mobile.get(row.mobile)
            if target and row.mobile_header is not None:
                # The number came from the fallback column (a home or office line, often shared), or the phone
                # column named a switchboard line with an extension: it names the
                # person who has it only under the same name. A child listed with the family's landline is not
                # merged into the parent who holds it; they are imported without a phone (counted), and the number
                # is kept in their notes, the way the front desk reaches them.
                owner = self._name_of(target, chunk, people)
                if owner is not None and " ".join(owner.split()) != " ".join(str(row.values.get("name", "")).split()):
                    self.report.fallback_shared += 1
                    if not row.extension:
                        line = f"{row.mobile_header}：{phone_national(row.mobile)}"
                        row.values["notes"] = f"{row.values['notes']}；{line}" if row.values.get("notes") else line
                    row.mobile, row.mobile_header = None, None
                    row.values.pop("mobile", None)
                    target = None
            if target:  # a message names the number as the file wrote it, not as stored (+86…)
                matches.append((target, mobile_header, row.mobile_cell or phone_national(row.mobile)))
                by_phone = target
        for kind, external_id, header in row.idents:
            target = self.known.get(f"i:{kind}:{external_id}") or by_ident.get((kind, external_id))
            if target:
                matches.append((target, header, external_id))
        if row.dedupe_key and row.dedupe_key in self.known:
            matches.append((self.known[row.dedupe_key], self.table.header_for("name"), row.values["name"]))
        elif not matches and (member := self._family_match(row, by_mobile, families)) is not None:
            matches.append((member, self.table.header_for("name"), row.values["name"]))
        targets = {m[0] for m in matches}
        lost = next((m for m in matches if m[0] in self.lost), None) if self.lost else None
        if lost is not None:
            # matched through this file's earlier rows (self.known) and erased or merged away since their chunk was
            # written: an erased record is not given data again, nor made a new patient from the file uploaded before
            # the erasure (which the erasure withdraws when it is still waiting); its value is not quoted
            self.invalid(row.number, [(lost[1], "***", PERSON_ERASED if self.lost[lost[0]] == "erased"
                                       else PERSON_MERGED)])
            return
        if len(targets) > 1:
            first, other = matches[0], next(m for m in matches if m[0] != matches[0][0])
            self.invalid(row.number, [(other[1], other[2],
                                       f"belongs to a different person than {first[1]} {first[2]}; merge them first")])
            return
        if targets and self.scope is not None:
            person = people.get(next(iter(targets)))
            if person is not None and not scope_covers(self.scope, chain_id=self.chain.id,
                                                       home_clinic_id=person.home_clinic_id,
                                                       consultant_id=person.consultant_id):
                self.invalid(row.number, [(matches[0][1], matches[0][2], OUT_OF_SCOPE)])
                return
        if not targets and self.scope is not None and not (row.values.get("home_clinic_id") or self.default_clinic_id
                                                           or self.own_clinic_id):
            self.invalid(row.number, [(self.table.header_for("home_clinic") or "门诊/clinic", "", CLINIC_REQUIRED)])
            return
        if targets:
            token = targets.pop()
            self.report.merged += 1
            if self.moved:
                self.survivor_note(row, token, chunk)
            filled = self.fill(token, row, chunk, people)
            warning = self.name_check(row, by_phone, chunk, people) if by_phone == token else None
            self.preview_merge(row, token, filled, warning, chunk, people)
        else:
            token = self.next_token
            self.next_token -= 1
            self.report.created += 1
            self.preview_add(row.number, row.values, "create")
            chunk.new[token] = self.person_new(row)
            chunk.new_rows[token] = row.number
            self.token_names[token] = row.values.get("name", "")
        if len(self.preview_people) < PREVIEW_ROWS:
            self.preview_people[row.number] = token
        existing_idents = {(k, e) for k, e, _h in row.idents if (k, e) in by_ident}
        for kind, external_id, _h in row.idents:
            key = f"i:{kind}:{external_id}"
            if key not in self.known and (kind, external_id) not in existing_idents:
                chunk.identities.append((token, kind, external_id))
            self.known[key] = token
            chunk.new_keys.append(key)
        if row.mobile:
            key = f"m:{row.mobile}"
            if key not in self.known and row.mobile not in by_mobile:
                person = chunk.new.get(token) or people.get(token)
                current = person.get("mobile") if isinstance(person, dict) else getattr(person, "mobile", None)
                if person is not None and current != row.mobile:
                    # Matched by identity and already has another phone: keep this one as a phone identity.
                    chunk.identities.append((token, IdentityKind.PHONE, row.mobile))
            self.known[key] = token
            chunk.new_keys.append(key)
        if row.dedupe_key:
            self.known[row.dedupe_key] = token
            chunk.new_keys.append(row.dedupe_key)
        self.fallback_apply(row, token, chunk, by_mobile)
        for purpose, granted in row.consents:
            chunk.consents.append((token, purpose, granted))
        if row.relative is not None:
            chunk.links.append((token, *row.relative, row.number))

    def survivor_note(self, row: _Row, token: int, chunk: _Chunk) -> None:
        """A row matched through a person of an earlier chunk merged into `token` since (survivor_take): said on the
        row (a warning) and on the timeline of the record kept (flush)."""
        merged = next((self.moved[k] for k in self._known_keys(row) if k in self.moved and self.known[k] == token),
                      None)
        if merged is None:
            return
        self.report.warning_add(row=row.number, column=self.table.header_for("name"), value=row.values["name"],
                                message=PERSON_MERGED_INTO)
        chunk.moved.append((token, row.number, merged))

    def fallback_apply(self, row: _Row, token: int, chunk: _Chunk, by_mobile: dict) -> None:
        """Count the row's use of the phone's fallback column, and keep a second number that differs from the
        phone (the fallback column's, or one more in the phone cell itself) as a phone identity of the person (so a
        later row or import with that phone finds them), unless it is already someone else's phone or phone
        identity — a landline is often a family's or a company's: then it is counted and left. A second number
        never decides whom its own row is."""
        report = self.report
        report.relative_numbers += row.relative_number
        if row.mobile_header is not None:
            report.fallback_used += 1
        elif row.fallback_skipped:
            report.fallback_skipped += 1
        for number in row.more:
            kept = self._second_keep(number, token, chunk, by_mobile)
            if kept is not None:
                report.more_numbers_kept += kept
                report.more_numbers_not_kept += not kept
        if row.second is not None and row.second not in row.more:
            kept = self._second_keep(row.second, token, chunk, by_mobile)
            if kept is not None:
                report.fallback_kept += kept
                report.fallback_not_kept += not kept

    def _second_keep(self, number: str, token: int, chunk: _Chunk, by_mobile: dict) -> bool | None:
        """Keep `number` as a phone identity of `token` unless it is someone else's: True kept, False someone
        else's, None the person's own already."""
        key = f"m:{number}"
        owner = self.known.get(key) or by_mobile.get(number)
        if owner is None:
            chunk.identities.append((token, IdentityKind.PHONE, number))
            self.known[key] = token
            chunk.new_keys.append(key)
            return True
        return None if owner == token else False

    def person_new(self, row: _Row) -> dict:
        """A new person as column values (see bulk.rows_insert); model defaults fill the rest."""
        values = row.values
        channel = values.get("first_touch_channel") or Channel.IMPORT
        campaign = values.get("first_touch_campaign", "")
        person = {
            "chain_id": self.chain.id, "name": values["name"], "mobile": row.mobile,
            "mobile_tail": (row.mobile or "")[-4:], "gender": values.get("gender", Gender.UNKNOWN),
            "home_clinic_id": values.get("home_clinic_id") or self.default_clinic_id or self.own_clinic_id,
            "stage": Stage.LEAD,
            "first_touch_channel": channel, "first_touch_campaign": campaign, "first_touch_at": self.now,
            "first_touch_staff_id": self.actor_id, "last_touch_channel": channel, "last_touch_campaign": campaign,
            "last_touch_at": self.now, "created_at": self.now, "updated_at": self.now,
        }
        for attr in ("birthday", "address", "community", "latitude", "longitude", "consultant_id", "notes"):
            if attr in values:
                person[attr] = values[attr]
        return person

    def _person(self, token: int, chunk: _Chunk, people: dict):
        """(get, put) of a person's fields as they will be stored, or None when the person is not in memory (created
        in an earlier chunk of a dry run)."""
        if token < 0:
            person = chunk.new.get(token)
            if person is None:
                return None
            # A new person's dict lacks the columns its first row left blank; the row would insert them
            # as the model default, which is what blank means here (a missing "" field is blank, not None).
            return partial(_new_value, person), person.__setitem__
        person = people.get(token)
        if person is None:
            return None
        return partial(getattr, person), partial(setattr, person)

    def fill(self, token: int, row: _Row, chunk: _Chunk, people: dict) -> set[str]:
        """Fill the person's blank fields from the row; never overwrite what is there. Returns the fields filled."""
        accessors = self._person(token, chunk, people)
        if accessors is None:
            return set()
        get, put = accessors
        values = dict(row.values)
        if self.default_clinic_id and "home_clinic_id" not in values:
            values["home_clinic_id"] = self.default_clinic_id
        changed = set()
        for attr, value in values.items():
            if attr not in _FILLABLE_BLANK or value in (None, ""):
                continue
            if attr == "mobile" and f"m:{value}" in self.known:
                continue
            if get(attr) in _FILLABLE_BLANK[attr]:
                put(attr, value)
                changed.add(attr)
        if "mobile" in changed:
            put("mobile_tail", values["mobile"][-4:])
            changed.add("mobile_tail")
        if "first_touch_channel" in changed and get("first_touch_at") is None:
            put("first_touch_at", self.now)
            changed.add("first_touch_at")
        if changed and token > 0:
            chunk.dirty.setdefault(token, set()).update(changed)
        return changed

    def name_check(self, row: _Row, token: int, chunk: _Chunk, people: dict) -> str | None:
        """A row merged by its phone into a person of another name (导入丁 on the phone of 导入甲): still that person —
        a phone names one — but the reader should know, as the person keeps their name. A warning, not an error."""
        owner = self._name_of(token, chunk, people)
        name = row.values.get("name", "")
        if not owner or "".join(owner.split()).casefold() == "".join(name.split()).casefold():  # 王芳 is 王 芳
            return None
        message = NAME_DIFFERS.format(name=owner)
        self.report.warning_add(row=row.number, column=self.table.header_for("name"), value=name, message=message)
        return message

    def preview_merge(self, row: _Row, token: int, filled: set[str], warning: str | None, chunk: _Chunk,
                      people: dict) -> None:
        """A merged row in the preview as the person will be stored: their own values where they have one (the
        file's value beside it, `kept`), the file's where theirs was blank (`filled`)."""
        if len(self.report.preview) >= PREVIEW_ROWS:
            return
        accessors = self._person(token, chunk, people)
        if accessors is None:
            self.preview_add(row.number, row.values, "merge", warning=warning)
            return
        get = accessors[0]
        stored, kept = {}, {}
        for attr in {**row.values, **dict.fromkeys(filled)}:
            if attr != "name" and attr not in _FILLABLE_BLANK:
                continue
            stored[attr] = value = get(attr)
            written = row.values.get(attr)
            if attr not in filled and written not in (None, "") and written != value:
                kept[attr] = written
        self.preview_add(row.number, stored, "merge", filled=filled, kept=kept, warning=warning)

    def flush(self, chunk: _Chunk, people: dict) -> None:
        tokens = list(chunk.new)
        ids = dict(zip(tokens, rows_insert(Customer, [chunk.new[t] for t in tokens], returning_ids=True),
                       strict=True))
        for key in chunk.new_keys:
            token = self.known[key]
            if token < 0:
                self.known[key] = ids.get(token, token)
        for number, token in self.preview_people.items():
            if token in ids:
                self.preview_people[number] = ids[token]

        def real(token):
            return ids[token] if token < 0 else token

        keys = []
        for token in tokens:
            customer_id = ids[token]
            initials, full = self.pinyin.keys(chunk.new[token]["name"])
            clinic_id = chunk.new[token].get("home_clinic_id")
            keys += [{"customer_id": customer_id, "chain_id": self.chain.id, "kind": CustomerSearchKey.INITIALS,
                      "value": v[:64], "home_clinic_id": clinic_id} for v in initials]
            keys += [{"customer_id": customer_id, "chain_id": self.chain.id, "kind": CustomerSearchKey.FULL,
                      "value": v[:64], "home_clinic_id": clinic_id} for v in full]
        keys.sort(key=lambda k: (k["kind"], k["value"]))  # neighbouring entries of the lookup index: fewer page misses
        rows_insert(CustomerSearchKey, keys)
        rows_insert(Identity, [
            {"chain_id": self.chain.id, "customer_id": real(t), "kind": kind, "external_id": external_id,
             "source": "import", "created_at": self.now, "updated_at": self.now}
            for t, kind, external_id in chunk.identities
        ])
        text = timeline_format(IMPORTED, file=self.table.name)
        interactions = [
            {"customer_id": ids[t], "kind": InteractionKind.IMPORT, "text": text, "author_id": self.actor_id,
             "clinic_id": chunk.new[t]["home_clinic_id"], "occurred_at": self.now,
             "data": {"file": self.table.name, "row": chunk.new_rows[t]}}
            for t in tokens
        ]
        if chunk.dirty:
            fields = sorted(set().union(*chunk.dirty.values()))
            for customer_id in chunk.dirty:
                people[customer_id].updated_at = self.now
            Customer.objects.bulk_update([people[i] for i in chunk.dirty], [*fields, "updated_at"], batch_size=500)
            if "home_clinic" in fields or "home_clinic_id" in fields:
                search_keys_home_clinic_sync(customer_ids=list(chunk.dirty))
            interactions += [
                {"customer_id": customer_id, "kind": InteractionKind.IMPORT, "author_id": self.actor_id,
                 "text": timeline_format(IMPORT_FILLED, file=self.table.name, fields=fields_text(filled)),
                 "occurred_at": self.now, "data": {"file": self.table.name}}
                for customer_id, filled in chunk.dirty.items()
            ]
        interactions += [
            {"customer_id": customer_id, "kind": InteractionKind.IMPORT, "author_id": self.actor_id,
             "text": timeline_format(IMPORT_INTO_SURVIVOR, file=self.table.name, row=number, merged=merged),
             "occurred_at": self.now, "data": {"file": self.table.name, "row": number, "merged": merged}}
            for customer_id, number, merged in chunk.moved
        ]
        rows_insert(Interaction, interactions)
        if chunk.consents:
            self.consents_write(chunk, real)
        self.links += [(real(t), number, kin, row) for t, number, kin, row in chunk.links]

    def consents_write(self, chunk: _Chunk, real) -> None:
        """A consent from the file is recorded unless the person already has one for that purpose
        (the latest row is the current state; an old export must not override a newer decision)."""
        pairs = [(real(t), purpose, granted) for t, purpose, granted in chunk.consents]
        existing = set(Consent.objects.filter(customer_id__in={p[0] for p in pairs}).values_list("customer_id",
                                                                                                  "purpose"))
        rows, seen = [], set()
        for customer_id, purpose, granted in pairs:
            if (customer_id, purpose) in existing or (customer_id, purpose) in seen:
                continue
            seen.add((customer_id, purpose))
            rows.append({"customer_id": customer_id, "purpose": purpose, "granted": granted, "source": "import",
                         "evidence": self.table.name[:255], "recorded_by_id": self.actor_id, "recorded_at": self.now})
        rows_insert(Consent, rows)

    def households_link(self) -> None:
        """Put each person whose phone cell gave a relative's number ('13800138000(妈妈)') into that relative's
        household, when the number is someone's in the pool or in this file, whom the importer sees: the follow-up
        inbox then calls the mother about her child. The relation to the head follows from the kinship word and
        the relative's own place (household_relation_through); where none follows for certain, or the person is
        in another household already, nothing is linked (counted) and the number stays in the notes. A dry run,
        or a file that is not written, counts what would be linked from the households as they are."""
        if not self.links:
            return
        report = self.report
        column = self.table.header_for("mobile") or ""
        if self.vanished:  # the relative was erased or merged away while the import ran (pool_lock): nothing linked
            for _p, number, _k, row in self.links:
                if number in self.vanished:
                    report.households_not_linked += 1
                    report.warning_add(row=row, column=column, value=number, message=HOUSEHOLD_ERASED
                                       if self.vanished[number] == "erased" else HOUSEHOLD_MERGED)
            self.links = [link for link in self.links if link[1] not in self.vanished]
        numbers = {number for _p, number, _k, _r in self.links}
        holders = {n: self.known[f"m:{n}"] for n in numbers if f"m:{n}" in self.known}
        holders.update(select_in("SELECT mobile, id FROM customers_customer WHERE chain_id = %s AND "
                                 "merged_into_id IS NULL AND mobile", [self.chain.id], numbers - holders.keys()))
        holders.update((external_id, customer_id) for external_id, customer_id in select_in(
            "SELECT external_id, customer_id FROM customers_identity WHERE chain_id = %s AND kind = %s AND external_id",
            [self.chain.id, IdentityKind.PHONE], numbers - holders.keys()))
        links = [(person, holders[number], kin, number, row) for person, number, kin, row in self.links
                 if holders.get(number) not in (None, person)]
        if self.scope is not None:  # a relative outside the importer's clinics: their household is not theirs to change
            relatives = select_in("SELECT id, home_clinic_id, consultant_id FROM customers_customer WHERE id", [],
                                  {h for _p, h, *_rest in links if h > 0})
            hidden = {pk for pk, home_clinic_id, consultant_id in relatives if not scope_covers(
                self.scope, chain_id=self.chain.id, home_clinic_id=home_clinic_id, consultant_id=consultant_id)}
            report.households_not_linked += sum(h in hidden for _p, h, *_rest in links)
            links = [link for link in links if link[1] not in hidden]
        outcomes = households_join([(p, h, kin) for p, h, kin, *_rest in links], actor=self.actor,
                                   write=self.write and all(p > 0 and h > 0 for p, h, *_rest in links))
        report.households_linked += sum(o in ("joined", "already") for o in outcomes)
        report.households_not_linked += sum(o in ("elsewhere", "unclear", "erased", "merged") for o in outcomes)
        # An erasure or a merge that committed while the import ran: said on the row, as nothing was linked there
        for (_p, _h, _k, number, row), outcome in zip(links, outcomes, strict=True):
            if outcome in ("erased", "merged"):
                report.warning_add(row=row, column=column, value=number,
                                   message=HOUSEHOLD_ERASED if outcome == "erased" else HOUSEHOLD_MERGED)

    def erased_previews_scrub(self) -> None:
        """Preview rows of people erased while the import ran (found by pool_lock): emptied, as the erasure's hook
        empties a stored report's (imports.services.erasure), which could not reach this report, not yet stored."""
        erased = {number for number, pk in self.preview_people.items() if self.lost.get(pk) == "erased"}
        if not erased:
            return
        self.report.preview = [{"row": entry["row"], "values": {}, "outcome": "erased"} if entry["row"] in erased
                               else entry for entry in self.report.preview]

    def finish(self) -> None:
        report = self.report
        if not report.rows:  # rows of ignored cells only (a numbered template, 无): no data, as a header alone is
            raise ImportFileError(_("%(name)s has a header but no data rows") % {"name": self.table.name},
                                  code="no_rows")
        self.households_link()
        self.erased_previews_scrub()
        # With skip_invalid a file of invalid rows only writes nothing: not `written`, and no audit of a write
        report.written = self.write and not (report.rows and report.skipped == report.rows)
        if report.written:
            audit_record(actor=user_of(self.actor), action="import.customers", object_type="chain",
                         object_id=self.chain.id, reason=self.table.name,
                         detail={"file": self.table.name, "rows": report.rows, "created": report.created,
                                 "merged": report.merged, "skipped": report.skipped})


def _survivors_of(ids: set[int]) -> dict[int, int]:
    """Of `ids`, those merged into another record: merged id → the record kept, merges of merges followed (at most
    _MERGE_HOPS). Read without locks (pool_lock locks them and checks again); one query a hop, none when nobody was
    merged."""
    into: dict[int, int] = {}
    frontier = set(ids)
    for _hop in range(_MERGE_HOPS):
        found = dict(Customer.objects.filter(pk__in=frontier, merged_into__isnull=False)
                     .values_list("pk", "merged_into_id"))
        if not found:
            break
        into.update(found)
        frontier = set(found.values())
    kept = {}
    for pk in ids:
        if pk not in into:
            continue
        current = pk
        for _hop in range(_MERGE_HOPS):
            if current not in into:
                break
            current = into[current]
        kept[pk] = current
    return kept
