"""Import of POS orders: rows sharing an order number form one order with several lines.

An order number already in the chain is skipped as a duplicate, so re-importing a file is harmless.
A row that is invalid makes its whole order invalid (the order's other rows are listed too). Rows of
one order must be adjacent-enough to fall in one chunk: the reader never splits a run of rows with
the same order number across chunks (unless it is longer than a bill may be), and an order number that reappears
after its order was written is reported as an error rather than silently split into two bills.

After writing, the customers' denormalised figures (lifetime spend, first/last visit, lead → patient)
are updated set-based: one UPDATE per 500 customers, and the stage events order_record would write (one per customer
moved to treated) with one INSERT per chunk.
"""

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field

from django.db import IntegrityError, OperationalError, connection
from django.utils import timezone
from django.utils.translation import gettext as _

from smileloop.clinics.models import Staff
from smileloop.core.audit import audit_record
from smileloop.core.bounds import BIGINT_MAX, EARLIEST_RECORD_DATE, MAX_BILL_LINES
from smileloop.core.bulk import rows_insert
from smileloop.core.errors import ValidationFailed, database_busy, unique_clash_name
from smileloop.core.money import fen_to_yuan
from smileloop.core.sql import db_datetime, select_rows, statistics_refresh
from smileloop.core.sql import execute as sql_execute
from smileloop.customers.enums import IdentityKind, InteractionKind, Stage
from smileloop.customers.models import Customer, Identity, Interaction
from smileloop.customers.normalize import phone_national
from smileloop.customers.selectors import family_member_named, family_members_of, scope_covers
from smileloop.customers.services import customers_erasures_wait, stage_after_events
from smileloop.customers.timeline import timeline_format
from smileloop.imports.errors import ImportConflict, ImportFileError
from smileloop.imports.services.common import (
    CHUNK_ROWS,
    ClinicLookup,
    chain_of,
    gc_relaxed,
    import_transactions_run,
    limited_scope_of,
    lookup_key,
    staff_of,
    user_of,
)
from smileloop.imports.services.headers import ORDER_ALIASES, ORDER_IMPORT_FIELDS
from smileloop.imports.services.reading import cell_text, column_map_clean, table_open
from smileloop.imports.services.report import PREVIEW_ROWS, ImportReport
from smileloop.imports.services.values import (
    _scientific_digits,
    datetime_parse,
    formula_or,
    note_is_own,
    payment_method_parse,
    phone_cell_parse,
    phone_fallback_parse,
    quantity_parse,
    text_formula_value,
    yuan_parse,
)
from smileloop.lifecycle.services import revival_cutoff
from smileloop.visits.models import Order, OrderLine, Payment, ServiceItem
from smileloop.visits.services import PAID


def _typed_placeholders() -> tuple[str, str]:
    """Placeholders for a bigint and a timestamp in a VALUES list: PostgreSQL types an untyped parameter there as
    text, SQLite needs no cast (and would turn a date string into a number with one)."""
    if connection.vendor == "postgresql":
        return "CAST(%s AS bigint)", "CAST(%s AS timestamptz)"
    return "%s", "%s"


SPEND_PAST_BOUND = "would take the customer's lifetime spend past the most it can hold"  # imports.messages.FIXED
TOOTH_MAX_LENGTH = OrderLine._meta.get_field("tooth").max_length


@dataclass(slots=True)
class _Line:
    number: int
    order_no: str
    mobile: str | None
    pms_id: str | None
    clinic_id: int | None
    ordered_at: object
    item: ServiceItem
    quantity: int
    unit_fen: int
    discount_fen: int
    amount_fen: int
    method: str | None
    tooth: str
    notes: str
    mobile_header: str | None = None  # the fallback column's header when the phone came from it
    fallback_skipped: bool = False  # the fallback cell held no number ('无', '-')
    name: str = ""  # the name column's, when the file has one
    more: tuple[str, ...] = ()  # further numbers of the phone cell ('138…/139…'): the bill goes by the one known
    relative: tuple[str, str] | None = None  # a relative's number and its words ('…(妈妈)'): see line_resolve
    customer_id: int | None = None  # the patient found through that relative's family
    mobile_cell: str = ""  # the cell the phone came from, as written: what a message about the number shows
    date_cell: str = ""  # the date cell as written: what a message about the bill's day shows


@dataclass
class _Group:
    order_no: str
    lines: list[_Line] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)  # every row of the order, valid or not
    invalid_rows: list[int] = field(default_factory=list)


def orders_import(*, path, chain, actor: Staff | None = None, column_map: dict[str, str] | None = None,
                  skip_invalid: bool = False, dry_run: bool = False, progress=None, name: str | None = None) -> ImportReport:
    """Import POS bills. Same transaction rules as customers_import; idempotent on the order number. An importer
    whose role sees only some clinics records orders as the API does for them: at their clinics, for their
    clinics' customers (another clinic's customer reads as unknown, as the API's 404 does)."""
    chain = chain_of(chain)
    mapping = column_map_clean(column_map, aliases=ORDER_ALIASES, fields=ORDER_IMPORT_FIELDS)
    with table_open(path, name=name) as table, gc_relaxed():
        table.map_columns(aliases=ORDER_ALIASES, fields=ORDER_IMPORT_FIELDS, column_map=mapping)
        missing = [label for fields, label in ((["order_no"], "订单号/order_no"), (["date"], "日期/date"),
                                               (["item_code"], "项目编码/item_code"),
                                               (["mobile", "mobile_fallback", "pms_id"],
                                                "手机号/phone or 病历号/pms_id"))
                   if all(table.header_for(f) is None for f in fields)]
        if missing:
            raise ImportFileError(_("%(name)s lacks the column(s): %(columns)s")
                                  % {"name": table.name, "columns": ", ".join(missing)}, code="missing_column")
        run = _OrderImport(chain=chain, actor=actor, table=table, write=not dry_run, skip_invalid=skip_invalid)
        try:
            import_transactions_run(chain_id=chain.id, run=run, chunks=run.chunks(), skip_invalid=skip_invalid,
                                    dry_run=dry_run, progress=progress)
        except IntegrityError as exc:
            raise ImportConflict(_("Orders changed during the import (%(error)s); run it again")
                                 % {"error": unique_clash_name(exc)})
        except OperationalError as exc:  # a concurrent import holding the rows (or SQLite's lock) past the timeout
            if not database_busy(exc):
                raise
            raise ImportConflict(_("The database was busy with another write (%(error)s); nothing more was written, "
                                   "run it again") % {"error": exc})
    if run.report.written:
        # SQLite: a first big import would otherwise leave the planner guessing
        statistics_refresh({Order: run.report.created, OrderLine: run.report.rows, Payment: run.report.created})
    return run.report


class _OrderImport:
    def __init__(self, *, chain, actor, table, write: bool, skip_invalid: bool):
        self.chain = chain
        self.actor = staff_of(actor)
        self.scope = limited_scope_of(actor)  # None: every clinic of the chain
        self.names: dict[int, str] = {}  # the chunk's customers found by phone or PMS id → their names
        self.families: dict[int, list] = {}  # the chunk's relatives' numbers' holders → their family (common)
        self.table = table
        self.write = write
        self.skip_invalid = skip_invalid
        self.tz = zoneinfo.ZoneInfo(chain.time_zone)
        self.report = ImportReport.for_columns("orders", table)
        self.mobile_header = table.header_for("mobile")
        self.clinics = ClinicLookup(chain.id)
        self.items = {i.code: i for i in ServiceItem.objects.filter(chain_id=chain.id)}
        self.items_folded = {lookup_key(code): item for code, item in self.items.items()}  # 'cl01', 'ＣＬ01'
        self.latest = timezone.now() + dt.timedelta(days=1)  # a later order date is a typo (2042 for 2024)
        self.columns = [(index, name, header) for index, (name, header) in table.columns.items()]
        self.width = table.width
        self.order_col = next(i for i, (name, _h) in table.columns.items() if name == "order_no")
        self.done: set[str] = set()  # order numbers finished in this import
        self.split: dict[str, int] = {}  # an order too long for one chunk → its rows in the chunks before (chunks)
        self.now = timezone.now()
        # Each customer's lifetime spend with this import's accepted bills so far: bills at the bounds could take it
        # past a bigint (customer_stats_apply's UPDATE then failed: a traceback, not a row's error).
        self.spend: dict[int, int] = {}
        self.stages: dict[int, list] = {}  # the chunk's customers → [stage, stage reached, stage changed at]
        self._cutoff: dt.datetime | None = None

    def chunks(self):
        """CHUNK_ROWS-sized chunks that never split a run of rows with the same order number, unless the run is longer
        than a bill may be: a chunk holds at most CHUNK_ROWS + MAX_BILL_LINES rows (a file of one order number on
        every row was one chunk, 1.2 KiB of memory a row), and the rest of the run goes on in the next, each row an
        error (`split`: the order's rows in the chunks before)."""
        chunk, carry_key, run = [], None, 0
        for number, cells in self.table.rows():
            key = cell_text(text_formula_value(cells[self.order_col])) if self.order_col < len(cells) else ""
            run = run + 1 if key == carry_key else 1
            if len(chunk) >= CHUNK_ROWS and (key != carry_key or len(chunk) >= CHUNK_ROWS + MAX_BILL_LINES):
                yield chunk
                if key == carry_key:  # set once that chunk is done: the next one begins with this row
                    self.split[key] = run - 1
                chunk = []
            chunk.append((number, cells))
            carry_key = key
        if chunk:
            yield chunk

    def parse(self, number: int, cells: list) -> tuple[_Line | None, list, str]:
        raw = {}
        for index, name, header in self.columns:
            value = cells[index] if index < len(cells) else None
            if value is not None and not (isinstance(value, str) and not value.strip()):
                raw[name] = (value, header)
        errors = []

        def fail(name, message):
            value, header = raw.get(name, ("", self.table.header_for(name)))
            errors.append((header, value, message))

        def get(name, parser, default=None):
            if name not in raw:
                return default
            try:
                return parser(raw[name][0])
            except ValueError as exc:
                fail(name, formula_or(raw[name][0], str(exc)))
            except ValidationFailed as exc:
                fail(name, formula_or(raw[name][0], exc.errors[0].message))
            return default

        # '="000123"': Excel's way of keeping a number's zeros in a CSV, read as its text
        order_no = cell_text(text_formula_value(raw["order_no"][0])) if "order_no" in raw else ""
        if not order_no:
            fail("order_no", "is required")
        elif len(order_no) > 64:
            fail("order_no", "is longer than 64 characters")
        else:
            try:  # '2.02403E+15': Excel showed a long number so and saved the CSV as shown; every such bill was one
                order_no = _scientific_digits(order_no)
            except ValueError as exc:
                fail("order_no", str(exc))
        cell = get("mobile", phone_cell_parse)
        mobile, *more = cell.numbers if cell else [None]
        pms_id = cell_text(text_formula_value(raw["pms_id"][0])) if "pms_id" in raw else None
        name = " ".join(cell_text(raw["name"][0]).split()) if "name" in raw else ""
        relative = None
        if cell and not note_is_own(cell.note, name):
            # a relative's number ('…(妈妈)') is not the patient's: the bill goes by the PMS id, else by the member
            # of that relative's family with the row's name (line_resolve), else it is refused
            if not pms_id and name:
                relative = (mobile, cell.note)
            elif not pms_id:
                fail("mobile", f"is the number of a relative ({cell.note}): give the patient's own phone or PMS id")
            mobile, more = None, []
        # the fallback column (电话 beside 手机): its number where the phone cell is blank; a cell without a
        # number ('无') is skipped; orders keep no second number (customers_import keeps it on the person)
        found = len(errors)
        second = get("mobile_fallback", phone_fallback_parse)
        second_failed = len(errors) > found
        mobile_header = None
        if "mobile" not in raw and second:
            mobile, mobile_header = second, raw["mobile_fallback"][1]
        mobile_cell = cell_text(raw["mobile_fallback" if mobile_header else "mobile"][0]) if (
            mobile_header or "mobile" in raw) else ""
        if not mobile and "mobile" not in raw and not pms_id and not second_failed and relative is None:
            column = ("mobile" if self.mobile_header else "mobile_fallback" if self.table.header_for("mobile_fallback")
                      else "pms_id")
            fail(column, "is required (phone or PMS id)")
        clinic_id = get("clinic", self.clinics.resolve)
        ordered_at = get("date", lambda v: datetime_parse(v, tz=self.tz))
        if ordered_at is not None and ordered_at > self.latest:
            fail("date", "is in the future")
        elif ordered_at is not None and ordered_at.date() < EARLIEST_RECORD_DATE:
            fail("date", f"is before {EARLIEST_RECORD_DATE:%Y-%m-%d}")  # a typo (1924 for 2024), as the API says
        if "date" not in raw:
            fail("date", "is required")
        item = None
        if "item_code" in raw:
            code = cell_text(raw["item_code"][0])
            item = self.items.get(code) or self.items_folded.get(lookup_key(code))
            if item is None:
                fail("item_code", "is not in the service catalogue")
        else:
            fail("item_code", "is required")
        quantity = get("quantity", quantity_parse, 1)
        unit = get("unit_price", lambda v: yuan_parse(v, field="unit_price"))
        discount = get("discount", lambda v: yuan_parse(v, field="discount"), 0)
        amount = get("amount", lambda v: yuan_parse(v, field="amount"))
        method = get("payment_method", payment_method_parse)
        tooth = cell_text(raw["tooth"][0]) if "tooth" in raw else ""
        if len(tooth) > TOOTH_MAX_LENGTH:  # as at checkout: it was cut short without a word
            fail("tooth", f"is longer than {TOOTH_MAX_LENGTH} characters")
        if self.width is not None and len(cells) > self.width and (overflow := self.table.overflow_error(cells)):
            errors.append(overflow)
        if errors or item is None:
            return None, errors, order_no
        if unit is None:
            unit = item.list_price_fen
        if unit < 0:  # the line's total is then negative too: its discount or amount is not a second error
            fail("unit_price", "must not be negative")
            return None, errors, order_no
        list_total = quantity * unit
        if "discount" not in raw and amount is not None:
            discount = list_total - amount
        if not 0 <= discount <= list_total:
            fail("discount" if "discount" in raw else "amount", "must be between 0 and the line's list total "
                 f"({fen_to_yuan(list_total)})")
        elif amount is not None and amount != list_total - discount:
            fail("amount", f"does not equal quantity × unit price − discount ({fen_to_yuan(list_total - discount)})")
        if errors:
            return None, errors, order_no
        if self.table.header_for("payment_method") is not None and method is None:
            method = "other"
        line = _Line(number=number, order_no=order_no, mobile=mobile, pms_id=pms_id, clinic_id=clinic_id,
                     ordered_at=ordered_at, item=item, quantity=quantity, unit_fen=unit, discount_fen=discount,
                     amount_fen=list_total - discount, method=method,
                     tooth=tooth,
                     notes=cell_text(raw["notes"][0]) if "notes" in raw else "", mobile_header=mobile_header,
                     fallback_skipped="mobile_fallback" in raw and second is None, more=tuple(more),
                     name=name, relative=relative, mobile_cell=mobile_cell, date_cell=cell_text(raw["date"][0]))
        return line, [], order_no

    def error(self, number: int, header, value, message: str) -> None:
        self.report.error_add(row=number, column=header or "", value=cell_text(value), message=message)

    def invalid_group(self, group: _Group, errors_by_row: dict[int, list]) -> None:
        """`errors_by_row` holds the whole chunk's errors: the message names this order's own first bad row."""
        first_bad = min(n for n in group.numbers if n in errors_by_row)
        for number in group.numbers:
            if number in errors_by_row:
                for header, value, message in errors_by_row[number]:
                    self.error(number, header, value, message)
            else:
                self.error(number, self.table.header_for("order_no"), group.order_no,
                           f"order has an invalid row (row {first_bad}); the whole order is skipped")
            self.preview_add(number, None, "invalid")
        self.report.skipped += len(group.numbers)
        if not self.skip_invalid:
            self.write = False

    def preview_add(self, number: int, line: _Line | None, outcome: str) -> None:
        if len(self.report.preview) >= PREVIEW_ROWS:
            return
        values = {}
        if line is not None:
            values = {"order_no": line.order_no, "mobile": line.mobile or "", "pms_id": line.pms_id or "",
                      "clinic": self.clinics.name_of(line.clinic_id), "date": line.ordered_at.isoformat(),
                      "item_code": line.item.code, "quantity": str(line.quantity),
                      "amount": fen_to_yuan(line.amount_fen), "payment_method": line.method or ""}
        self.report.preview.append({"row": number, "values": values, "outcome": outcome})

    def chunk(self, raw_rows: list[tuple[int, list]]) -> None:
        groups: dict[str, _Group] = {}
        errors_by_row: dict[int, list] = {}
        for number, cells in raw_rows:
            line, errors, order_no = self.parse(number, cells)
            self.report.rows += 1
            group = groups.setdefault(order_no, _Group(order_no=order_no))
            group.numbers.append(number)
            if errors:
                errors_by_row[number] = errors
            else:
                group.lines.append(line)
        # Find customers and existing orders for the whole chunk in a few queries.
        lines = [line for g in groups.values() for line in g.lines]
        mobiles = {line.mobile for line in lines if line.mobile} | {n for line in lines for n in line.more}
        mobiles |= {line.relative[0] for line in lines if line.relative}
        pms_ids = {line.pms_id for line in lines if line.pms_id}
        by_mobile = dict(Customer.objects.filter(chain_id=self.chain.id, mobile__in=mobiles,
                                                 merged_into__isnull=True).values_list("mobile", "id"))
        by_ident = {}
        idents = [(IdentityKind.PHONE, m) for m in mobiles - by_mobile.keys()] + [(IdentityKind.PMS, p) for p in pms_ids]
        if idents:
            wanted = set(idents)
            for kind, external_id, customer_id in Identity.objects.filter(
                chain_id=self.chain.id, kind__in={k for k, _e in idents}, external_id__in={e for _k, e in idents}
            ).values_list("kind", "external_id", "customer_id"):
                if (kind, external_id) in wanted:
                    by_ident[(kind, external_id)] = customer_id
        for mobile in mobiles - by_mobile.keys():
            if (IdentityKind.PHONE, mobile) in by_ident:
                by_mobile[mobile] = by_ident[(IdentityKind.PHONE, mobile)]
        self.families = family_members_of({by_mobile[line.relative[0]] for line in lines
                                           if line.relative and line.relative[0] in by_mobile})
        relatives = {member for members in self.families.values() for member, _n, _b in members}
        facts, names = {}, {}
        ids = set(by_mobile.values()) | set(by_ident.values()) | relatives
        found = Customer.objects.filter(id__in=ids, merged_into__isnull=True, erased_at__isnull=True)
        if self.write:
            # Locked (by id, as a bill through the API locks its patient) and read again: a patient erased or merged
            # since the lookups above is no longer found (their bill was written onto the erased record), and a bill
            # recorded for them meanwhile is seen when the visit days are counted (it counted the day twice). Their
            # erasures are waited out first, as every writer about several people does (docs/architecture.md): an
            # erasure holds its person and then locks the rest of the family, so locking a family's lower id first
            # held the row the erasure next waited for while this waited for the erased one (a deadlock).
            if ids:
                customers_erasures_wait(Customer.objects.filter(pk__in=sorted(ids)).values("pk"))
            found = found.select_for_update(no_key=True).order_by("pk")
        self.stages = {}
        for pk, home_clinic_id, consultant_id, name, spend, *stage in found.values_list(
                "id", "home_clinic_id", "consultant_id", "name", "lifetime_spend_fen", "stage", "stage_reached",
                "stage_changed_at"):
            facts[pk], names[pk] = (home_clinic_id, consultant_id), " ".join(name.split())
            self.spend.setdefault(pk, spend)
            self.stages[pk] = stage  # read under the lock when written: what stage_moves starts from
        self.names = names
        by_mobile = {m: pk for m, pk in by_mobile.items() if pk in facts}
        by_ident = {k: pk for k, pk in by_ident.items() if pk in facts}
        self.families = {holder: [m for m in members if m[0] in facts] for holder, members in self.families.items()}
        if self.scope is not None:  # another clinic's customer is unknown to this importer, as to the API
            visible = {pk for pk, (home_clinic_id, consultant_id) in facts.items()
                       if scope_covers(self.scope, chain_id=self.chain.id, home_clinic_id=home_clinic_id,
                                       consultant_id=consultant_id)}
            by_mobile = {m: pk for m, pk in by_mobile.items() if pk in visible}
            by_ident = {k: pk for k, pk in by_ident.items() if pk in visible}
            self.families = {holder: [m for m in members if m[0] in visible] for holder, members in self.families.items()}
        home = {pk: home_clinic_id for pk, (home_clinic_id, _consultant) in facts.items()}
        # order number → (customer, amount) of the bill on file: the same bill again is a duplicate, another one a
        # row's error (it was skipped as imported before: another customer's bill, or a corrected one, lost silently)
        existing = {external_id: (customer_id, amount) for external_id, customer_id, amount in Order.objects.filter(
            chain_id=self.chain.id, external_id__in=set(groups) - {""}).values_list("external_id", "customer_id",
                                                                                  "amount_fen")}
        to_write: list[tuple[_Group, int, int]] = []  # (group, customer id, clinic id)
        for order_no, group in groups.items():
            if group.order_no and group.order_no in existing and order_no not in self.done:
                if self.on_file_differs(group, existing[order_no], by_mobile, by_ident, errors_by_row):
                    self.invalid_group(group, errors_by_row)
                    continue
                self.report.skipped += len(group.numbers)
                self.report.duplicates += len(group.numbers)
                for number in group.numbers:
                    self.preview_add(number, None, "duplicate")
                continue
            before = None
            if group.order_no and order_no in self.done:
                before = self.split.get(order_no)  # the rest of an order longer than a chunk, not a reappearance
                for position, number in enumerate(group.numbers, (before or 0) + 1):
                    errors_by_row.setdefault(number, []).append((
                        self.table.header_for("order_no"), order_no,
                        f"an order has at most {MAX_BILL_LINES} lines (this is its line {position})" if before else
                        "order number appears again after other orders; keep the rows of one order together"))
            customer_id = clinic_id = None
            for line in group.lines:
                if (line.ordered_at.astimezone(self.tz).date()
                        != group.lines[0].ordered_at.astimezone(self.tz).date()):
                    # one bill is one day (its first row's time): a line of another day was booked on the first's
                    errors_by_row.setdefault(line.number, []).append((
                        self.table.header_for("date"), line.date_cell,
                        f"is another day than row {group.lines[0].number} of the same order"))
                errors = self.line_resolve(line, by_mobile, by_ident)
                if errors:
                    errors_by_row.setdefault(line.number, []).extend(errors)
                    continue
                cid = line.customer_id or (by_mobile.get(line.mobile) if line.mobile
                                           else by_ident.get((IdentityKind.PMS, line.pms_id)))
                if customer_id is None:
                    customer_id = cid
                    first = line
                elif cid != customer_id:
                    errors_by_row.setdefault(line.number, []).append((
                        (line.mobile_header or self.mobile_header) if line.mobile else self.table.header_for("pms_id"),
                        (line.mobile_cell or phone_national(line.mobile)) if line.mobile else line.pms_id,
                        f"names another customer than row {first.number} of the same order"))
                line_clinic = line.clinic_id or home.get(cid)
                if line_clinic is None:
                    errors_by_row.setdefault(line.number, []).append((
                        self.table.header_for("clinic") or "clinic", "",
                        "is required (the customer has no home clinic)"))
                elif self.scope is not None and not self.scope.allows_clinic(line_clinic):
                    errors_by_row.setdefault(line.number, []).append((
                        self.table.header_for("clinic") or "clinic", self.clinics.name_of(line_clinic),
                        "is not one of your clinics"))
                elif clinic_id is None:
                    clinic_id = line_clinic
                elif line_clinic != clinic_id:
                    errors_by_row.setdefault(line.number, []).append((
                        self.table.header_for("clinic"), self.clinics.name_of(line_clinic),
                        f"differs from row {first.number} of the same order"))
            for position, line in enumerate(group.lines[MAX_BILL_LINES:] if not before else (),  # as at checkout
                                            MAX_BILL_LINES + 1):
                errors_by_row.setdefault(line.number, []).append((  # and through the API: the total must fit
                    self.table.header_for("order_no"), order_no,
                    f"an order has at most {MAX_BILL_LINES} lines (this is its line {position})"))
            self.done.add(order_no)
            total = sum(line.amount_fen for line in group.lines)
            if (customer_id is not None and not any(n in errors_by_row for n in group.numbers)
                    and self.spend.get(customer_id, 0) + total > BIGINT_MAX):
                for line in group.lines:
                    errors_by_row.setdefault(line.number, []).append((
                        self.table.header_for("order_no") or "order_no", order_no, SPEND_PAST_BOUND))
            if any(n in errors_by_row for n in group.numbers):
                self.invalid_group(group, errors_by_row)
                continue
            if customer_id is not None:
                self.spend[customer_id] = self.spend.get(customer_id, 0) + total
            self.report.created += 1
            self.report.merged += len(group.numbers) - 1
            for line in group.lines:
                self.preview_add(line.number, line, "create" if line is group.lines[0] else "merge")
                if line.mobile_header is not None:
                    self.report.fallback_used += 1
                elif line.fallback_skipped:
                    self.report.fallback_skipped += 1
            to_write.append((group, customer_id, clinic_id))
        if self.write and to_write:
            self.flush(to_write)

    def on_file_differs(self, group: _Group, on_file: tuple[int, int], by_mobile, by_ident,
                        errors_by_row: dict[int, list]) -> bool:
        """Whether an order number already on file names another bill here: another customer's (the API's
        external_id_conflict) or another amount (a corrected export). Each row of the order then says so. Rows that
        do not read, or whose customer is not found (another clinic's, for a director), stay duplicates: a re-import
        of an old file is harmless, and reveals nothing."""
        if len(group.lines) != len(group.numbers):
            return False
        customers = set()
        for line in group.lines:
            if self.line_resolve(line, by_mobile, by_ident):
                return False
            customers.add(line.customer_id or (by_mobile.get(line.mobile) if line.mobile
                                               else by_ident.get((IdentityKind.PMS, line.pms_id))))
        customer_id, amount = on_file
        total = sum(line.amount_fen for line in group.lines)
        if customers != {customer_id}:
            message = "is already recorded for another customer; give this bill its own order number"
        elif total != amount:
            message = (f"is already recorded with another amount ({fen_to_yuan(amount)}, this file "
                       f"{fen_to_yuan(total)}); a recorded bill is not changed: refund it and import the corrected one "
                       "under a new order number")
        else:
            return False
        for number in group.numbers:
            errors_by_row.setdefault(number, []).append((self.table.header_for("order_no"), group.order_no, message))
        return True

    def line_resolve(self, line: _Line, by_mobile, by_ident) -> list:
        errors = []
        if line.relative is not None:
            # '13800138000(妈妈)' on 李小宝's bill: the member of that relative's family called 李小宝
            number, note = line.relative
            holder = by_mobile.get(number)
            line.customer_id = family_member_named(self.families.get(holder, []), line.name) if holder else None
            if line.customer_id is None:
                return [(self.mobile_header, line.mobile_cell or phone_national(number),
                         f"is the number of a relative ({note}), and no one named {line.name} is in that relative's "
                         "family: give the patient's own phone or PMS id")]
            return []
        if line.more:
            # a cell of several numbers ('138…/139…') names the customer whose number one of them is
            owners = {by_mobile[n] for n in (line.mobile, *line.more) if n in by_mobile}
            if len(owners) > 1:
                return [(self.mobile_header, line.mobile_cell or "/".join(map(phone_national, (line.mobile, *line.more))),
                         "holds the numbers of different customers; keep one number per row")]
            line.mobile = next((n for n in (line.mobile, *line.more) if n in by_mobile), line.mobile)
        by_phone = by_mobile.get(line.mobile) if line.mobile else None
        by_pms = by_ident.get((IdentityKind.PMS, line.pms_id)) if line.pms_id else None
        if by_phone is not None and line.mobile_header is not None and line.name and self.names.get(by_phone) not in (
                None, line.name):
            # A number from the fallback column under another name is a shared line (a parent's, the family's):
            # the bill is not that holder's. The PMS id decides if there is one, else the row is refused.
            if by_pms is None:
                return [(line.mobile_header, line.mobile_cell or phone_national(line.mobile),
                         "is the number of a customer with another name (a shared line?): give the patient's own "
                         "phone or PMS id")]
            line.mobile, line.mobile_header = None, None
            return []
        if line.mobile and by_phone is None:
            # named as the file wrote it, not as stored (+86…)
            errors.append((line.mobile_header or self.mobile_header, line.mobile_cell or phone_national(line.mobile),
                           "no customer with this phone"))
        if line.pms_id and by_pms is None and not line.mobile:
            errors.append((self.table.header_for("pms_id"), line.pms_id, "no customer with this PMS id"))
        if by_phone and by_pms and by_phone != by_pms:
            errors.append((self.table.header_for("pms_id"), line.pms_id,
                           "belongs to another customer than the phone; merge them first"))
        return errors

    def flush(self, to_write: list[tuple[_Group, int, int]]) -> None:
        orders = []
        for group, customer_id, clinic_id in to_write:
            lines = group.lines
            orders.append(Order(
                chain_id=self.chain.id, clinic_id=clinic_id, customer_id=customer_id, external_id=group.order_no,
                ordered_at=lines[0].ordered_at, list_total_fen=sum(x.quantity * x.unit_fen for x in lines),
                discount_fen=sum(x.discount_fen for x in lines), amount_fen=sum(x.amount_fen for x in lines),
                cashier=self.actor, notes="\n".join(x.notes for x in lines if x.notes),
                created_at=self.now, updated_at=self.now))
        new_days = self.visit_days_new([(o.customer_id, o.ordered_at) for o in orders])  # before they are written
        Order.objects.bulk_create(orders, batch_size=500)
        order_lines, payments = [], []
        stats: dict[int, list] = {}  # customer id → [spend, first, last]
        for order, (group, customer_id, _clinic) in zip(orders, to_write, strict=True):
            paid: dict[str, int] = {}
            for x in group.lines:
                order_lines.append(OrderLine(order_id=order.id, item=x.item, quantity=x.quantity,
                                             unit_price_fen=x.unit_fen, discount_fen=x.discount_fen,
                                             amount_fen=x.amount_fen, tooth=x.tooth))
                if x.method and x.amount_fen:
                    paid[x.method] = paid.get(x.method, 0) + x.amount_fen
            payments += [Payment(order_id=order.id, method=m, amount_fen=a, paid_at=order.ordered_at)
                         for m, a in paid.items()]
            entry = stats.setdefault(customer_id, [0, order.ordered_at, order.ordered_at])
            entry[0] += order.amount_fen
            entry[1] = min(entry[1], order.ordered_at)
            entry[2] = max(entry[2], order.ordered_at)
        OrderLine.objects.bulk_create(order_lines, batch_size=1000)
        Payment.objects.bulk_create(payments, batch_size=1000)
        moves = self.stage_moves(orders)
        for customer_id, entry in stats.items():
            entry.append(new_days.get(customer_id, 0))
            entry.append(moves.get(customer_id))
        self.customer_stats_apply(stats)
        # One stage event per customer moved, as order_record's customer_stage_advance writes it (stage_events_insert)
        author_id = self.actor.id if self.actor else None
        rows_insert(Interaction, [
            {"customer_id": customer_id, "kind": InteractionKind.SYSTEM, "author_id": author_id, "clinic_id": None,
             "occurred_at": at, "text": f"stage {before} → {stage}: {cause}",
             "data": {"stage_from": before, "stage_to": stage, "cause": cause}}
            for customer_id, (before, stage, _reached, at, cause) in moves.items()])

    def stage_moves(self, orders: list[Order]) -> dict[int, tuple]:
        """customer id → (stage before, stage, stage reached, when, cause) for each customer these bills move, as
        recording them one by one, oldest first, through visits.order_record would (customer_stage_advance to
        treated): `customers.services.stage_after_events`, the rule itself (_stage_rule) without the database, per
        customer: progress only goes up (a member stays one); a dormant or lost
        customer comes back, to the higher of treated and the stage they had reached, on a bill no older than the
        chain's dormant threshold (lifecycle.revival_cutoff) and, when lost, paid after they were set lost; the
        first bill that moves them is the one named, dated by its time. An erased record is never found here.
        Computed from the stages read under the customers' locks (chunk), written with the figures'
        UPDATE and one INSERT of the events: no per-customer service call."""
        bills: dict[int, list[Order]] = {}
        for order in sorted(orders, key=lambda o: (o.ordered_at, o.id)):
            bills.setdefault(order.customer_id, []).append(order)
        moves = {}
        for customer_id, theirs in bills.items():
            stage, reached, changed_at = self.stages[customer_id]
            after = stage_after_events(stage=stage, reached=reached, changed_at=changed_at, to=Stage.TREATED,
                                       events_at=[order.ordered_at for order in theirs], now=self.now,
                                       cutoff=self.revival_cutoff)
            if after is None:
                continue
            index, new_stage, new_reached = after
            order = theirs[index]
            cause = timeline_format(PAID, order=order.id, clinic=self.clinics.name_of(order.clinic_id),
                                    day=timezone.localdate(order.ordered_at))[:500]
            moves[customer_id] = (stage, new_stage, new_reached, order.ordered_at, cause)
        return moves

    def revival_cutoff(self) -> dt.datetime:
        """The chain's earliest bill that still brings a dormant or lost customer back (read once, when needed)."""
        if self._cutoff is None:
            self._cutoff = revival_cutoff(self.chain.id)
        return self._cutoff

    def visit_days_new(self, bills: list[tuple[int, dt.datetime]]) -> dict[int, int]:
        """customer id → how many local days of these bills (not yet written) no order and no arrived or completed
        appointment of theirs covers: each is a visit (visits.services counts a walk-in's bill the same way). A POS
        history imported without appointments would otherwise leave every patient at 0 visits. One query per
        2,000 (customer, day) pairs, each an index probe."""
        from smileloop.visits.enums import AppointmentStatus
        from smileloop.visits.models import Appointment

        pairs = sorted({(customer_id, at.astimezone(self.tz).date()) for customer_id, at in bills})
        big, ts = _typed_placeholders()
        order_table, visit_table = Order._meta.db_table, Appointment._meta.db_table
        covered: set[tuple[int, dt.date]] = set()
        for start in range(0, len(pairs), 2000):
            batch = pairs[start:start + 2000]
            params: list = []
            for customer_id, day in batch:
                low = dt.datetime.combine(day, dt.time.min, tzinfo=self.tz)
                high = dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=self.tz)
                params += [customer_id, db_datetime(low), db_datetime(high)]
            rows = select_rows(
                f"WITH d(customer_id, low, high) AS (VALUES {', '.join([f'({big}, {ts}, {ts})'] * len(batch))}) "
                f"SELECT d.customer_id, d.low FROM d WHERE "
                f"EXISTS (SELECT 1 FROM {order_table} o WHERE o.customer_id = d.customer_id "
                f"AND o.ordered_at >= d.low AND o.ordered_at < d.high) OR "
                f"EXISTS (SELECT 1 FROM {visit_table} a WHERE a.customer_id = d.customer_id "
                f"AND a.start_at >= d.low AND a.start_at < d.high AND a.status IN (%s, %s))",
                [*params, AppointmentStatus.ARRIVED, AppointmentStatus.COMPLETED])
            low_day = {db_datetime(dt.datetime.combine(day, dt.time.min, tzinfo=self.tz)): day for _c, day in batch}
            covered.update((customer_id, low_day[low]) for customer_id, low in rows)
        counts: dict[int, int] = {}
        for customer_id, day in pairs:
            if (customer_id, day) not in covered:
                counts[customer_id] = counts.get(customer_id, 0) + 1
        return counts

    def customer_stats_apply(self, stats: dict[int, list]) -> None:
        """Spend, first/last visit, visits and lead → patient for many customers, one UPDATE … FROM (VALUES …) per
        500 (`stats`: customer id → [spend, first bill, last bill, new visit days]).

        Plain SQL joined to a VALUES list: the ORM's form of this (one CASE branch per customer and column) cost
        Django ~10 ms to compile per customer and the database a scan of every branch per row, quadratic in the
        chunk's customers (a 50,000-order import into 4,000 patients took a minute, most of it here)."""
        table = Customer._meta.db_table
        big, ts = _typed_placeholders()
        text = "CAST(%s AS text)" if connection.vendor == "postgresql" else "%s"
        items = list(stats.items())
        for start in range(0, len(items), 500):
            batch = items[start:start + 500]
            values = ", ".join([f"({big}, {big}, {ts}, {ts}, {big}, {text}, {text}, {ts})"] * len(batch))
            params: list = []
            for customer_id, (spend, first, last, visits, move) in batch:
                stage, reached, moved_at = (None, None, None) if move is None else move[1:4]
                params += [customer_id, spend, db_datetime(first), db_datetime(last), visits, stage, reached,
                           None if moved_at is None else db_datetime(moved_at)]
            # Every SET reads the row as it was, so stage_prev gets the stage before it moves (stage_moves: NULL when
            # the customer's stage does not move).
            sql_execute(
                f"WITH s(id, spend, first_at, last_at, visits, stage, reached, moved_at) AS (VALUES {values}) "
                f"UPDATE {table} SET "
                f"lifetime_spend_fen = {table}.lifetime_spend_fen + s.spend, "
                f"first_visit_at = CASE WHEN {table}.first_visit_at IS NULL OR {table}.first_visit_at > s.first_at "
                f"THEN s.first_at ELSE {table}.first_visit_at END, "
                f"last_visit_at = CASE WHEN {table}.last_visit_at IS NULL OR {table}.last_visit_at < s.last_at "
                f"THEN s.last_at ELSE {table}.last_visit_at END, "
                f"visit_count = {table}.visit_count + s.visits, "
                f"stage_prev = CASE WHEN s.stage IS NULL THEN {table}.stage_prev ELSE {table}.stage END, "
                f"stage_changed_at = COALESCE(s.moved_at, {table}.stage_changed_at), "
                f"stage = COALESCE(s.stage, {table}.stage), "
                f"stage_reached = COALESCE(s.reached, {table}.stage_reached), "
                f"updated_at = %s "
                f"FROM s WHERE {table}.id = s.id",
                [*params, db_datetime(self.now)])

    def finish(self) -> None:
        report = self.report
        # With skip_invalid a file of invalid rows only writes nothing: not `written`, and no audit of a write (rows of
        # orders imported before are no invalid rows: a re-import is written, of nothing new)
        report.written = self.write and not (report.rows and report.skipped - report.duplicates == report.rows)
        if report.written:
            audit_record(actor=user_of(self.actor), action="import.orders", object_type="chain",
                         object_id=self.chain.id, reason=self.table.name,
                         detail={"file": self.table.name, "rows": report.rows, "created": report.created,
                                 "merged": report.merged, "skipped": report.skipped,
                                 "duplicates": report.duplicates})
