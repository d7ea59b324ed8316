"""Plain-SQL bulk inserts: the imports' fast path, and other set-based writes of many rows (the households an
import links).

Django's bulk_create spends most of its time compiling SQL per object and field (about 80% of an
import's time in a profile of 20,000 rows) and on SQLite is held to 999 parameters per statement.
Here each model's columns, defaults and value adapters are worked out once, rows are plain dicts,
and the rows go to the database in one statement per table and chunk:
- PostgreSQL: COPY … FROM STDIN through psycopg's copy (`write_row`); new ids, when the caller
  needs them, are taken from the table's sequence first (`nextval` over generate_series), so
  children can point at their parents without a round trip per row.
- SQLite: one executemany of a prepared single-row INSERT on the driver's cursor; new ids are
  max(ever used, max(id)) + 1 … under the import's write transaction (sqlite_sequence moves past
  explicit ids by itself, so AUTOINCREMENT never hands them out again).
Both go around Django's cursor wrapper on purpose: with DEBUG on it renders every executed statement
with its parameters (on SQLite by running a quoting query per parameter batch), which cost more than
the inserts themselves. The driver's errors are still raised as Django's (`connection.wrap_database_errors`, as the
wrapper does): a unique violation of a concurrent writer is an `IntegrityError`, which callers turn into their
"changed during the import, run it again" (psycopg's own UniqueViolation escaped them as a traceback). Values still
go through each field's get_db_prep_save where the type needs it
(dates, datetimes, decimals), JSON is serialised the way Django's JSONField does, and unspecified
fields take the model default, so a field added to a model later is filled correctly without touching
this module.
"""

import json

from django.db import connection, models

_MISSING = object()
_PREPARED_TYPES = {"DateField", "DateTimeField", "DecimalField", "UUIDField", "TimeField", "DurationField"}


class _Plan:
    def __init__(self, model: type[models.Model]):
        meta = model._meta
        self.model = model
        self.table = meta.db_table
        self.fields = [f for f in meta.concrete_fields if not (f.primary_key and isinstance(f, models.AutoField))]
        self.columns = [f.column for f in self.fields]
        self.attnames = [f.attname for f in self.fields]
        self.defaults = []
        for f in self.fields:
            default = f.get_default() if f.has_default() or not f.null else None
            if default is not None and isinstance(f, models.JSONField):
                default = json.dumps(default, cls=f.encoder)
            elif default is not None:
                default = f.get_db_prep_save(default, connection)
            self.defaults.append(default)
        self.prepare = [f.get_internal_type() in _PREPARED_TYPES for f in self.fields]
        self.json = [isinstance(f, models.JSONField) for f in self.fields]
        # One generated function per model turns a row dict into its parameter list: a single list
        # display of dict.get calls instead of a Python loop over ~30 columns for every row.
        namespace = {"_MISSING": _MISSING}
        items = []
        for i, (attname, default) in enumerate(zip(self.attnames, self.defaults, strict=True)):
            namespace[f"d{i}"] = _MISSING if self.prepare[i] or self.json[i] else default
            items.append(f"get({attname!r}, d{i})")
        source = f"def row_values(row):\n    get = row.get\n    return [{', '.join(items)}]\n"
        exec(compile(source, f"<bulk plan {self.table}>", "exec"), namespace)  # noqa: S102 (attnames of a model)
        self.row_values = namespace["row_values"]
        quote = connection.ops.quote_name
        self.pk_column = quote(meta.pk.column)
        self.column_list = ", ".join(quote(c) for c in self.columns)

    def values(self, rows: list[dict], ids: list[int] | None = None) -> list[list]:
        """Rows as parameter lists in column order (the id first when `ids` is given); adapters run once
        per distinct value object in a column (an import's `now` is one object repeated on every row)."""
        row_values = self.row_values
        out = [row_values(row) for row in rows]
        for i, field in enumerate(self.fields):
            if not (self.prepare[i] or self.json[i]):
                continue
            default, last, prepared = self.defaults[i], _MISSING, None
            encoder = field.encoder if self.json[i] else None
            for values in out:
                value = values[i]
                if value is _MISSING:
                    values[i] = default
                elif value is not None:
                    if value is not last:
                        last = value
                        prepared = (json.dumps(value, cls=encoder) if self.json[i]
                                    else field.get_db_prep_save(value, connection))
                    values[i] = prepared
        if ids is not None:
            for values, pk in zip(out, ids, strict=True):
                values.insert(0, pk)
        return out


_PLANS: dict[type, _Plan] = {}


def _plan(model) -> _Plan:
    plan = _PLANS.get(model)
    if plan is None or plan.model is not model:
        plan = _PLANS[model] = _Plan(model)
    return plan


def ids_reserve(model: type[models.Model], n: int) -> list[int]:
    """n new primary keys for `model`, in increasing order. Call inside the transaction that inserts them."""
    if n <= 0:
        return []
    table = model._meta.db_table
    column = model._meta.pk.column
    with connection.cursor() as cursor, connection.wrap_database_errors:
        raw = cursor.cursor
        if connection.vendor == "postgresql":
            raw.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                        [table, column, n])
            return sorted(r[0] for r in raw.fetchall())
        quote = connection.ops.quote_name
        raw.execute(f"SELECT MAX(x) FROM (SELECT seq AS x FROM sqlite_sequence WHERE name = ? "
                    f"UNION ALL SELECT MAX({quote(column)}) FROM {quote(table)})", [table])
        first = (raw.fetchone()[0] or 0) + 1
        return list(range(first, first + n))


def rows_insert(model: type[models.Model], rows: list[dict], *, returning_ids: bool = False) -> list[int]:
    """Insert rows (attname → value; missing attnames take the model default). Returns the new ids, in
    order, when `returning_ids`."""
    if not rows:
        return []
    plan = _plan(model)
    vendor = connection.vendor
    if vendor not in ("postgresql", "sqlite"):
        objs = [model(**row) for row in rows]
        model._default_manager.bulk_create(objs, batch_size=500)
        return [obj.pk for obj in objs] if returning_ids else []
    ids = ids_reserve(model, len(rows)) if returning_ids else None
    values = plan.values(rows, ids)
    columns = (plan.pk_column + ", " + plan.column_list) if ids is not None else plan.column_list
    quote = connection.ops.quote_name
    with connection.cursor() as cursor, connection.wrap_database_errors:
        raw = cursor.cursor
        if vendor == "postgresql":
            with raw.copy(f"COPY {quote(plan.table)} ({columns}) FROM STDIN") as copy:
                write_row = copy.write_row
                for row in values:
                    write_row(row)
        else:
            placeholders = ", ".join(["?"] * (len(plan.columns) + (ids is not None)))
            connection.connection.executemany(f"INSERT INTO {quote(plan.table)} ({columns}) VALUES ({placeholders})",
                                              values)
    return ids or []
