"""Plain-SQL reads that still hand back model instances, for the few paths where the ORM's per-query work
is most of the time (checkout: about 25 small reads per bill).

Why: compiling a queryset costs 0.4 ms of CPU for `Model.objects.filter(id__in=…)` and 0.9 ms for a
`select_related(…).first()` on this machine, against 0.05 ms to run the same SELECT on the driver and build
the instances with `Model.from_db`. Here the column list, joins and value converters of a (model, related)
shape are worked out once per process; each call only formats the WHERE the caller wrote and converts rows
exactly as the ORM would (the backend's and the fields' `from_db_value` converters: SQLite booleans,
datetimes and decimals, JSON on both databases), so instances are indistinguishable from ORM ones.

The WHERE clause uses `t0` for the model's table and the related tables' own aliases (`t1`, `t2`, … in the
order `related` names them); parameters are `%s` on both databases (Django's cursor translates for SQLite).
`in_clause` writes a list membership test that works on both (= ANY on PostgreSQL, IN (…) on SQLite).
"""

from collections.abc import Mapping, Sequence

from django.db import connection, models
from django.db.models import Value
from django.db.models.functions import Cast, JSONObject

_SHAPES: dict[tuple, "_Shape"] = {}


class _Shape:
    def __init__(self, model: type[models.Model], related: tuple[str, ...]):
        quote = connection.ops.quote_name
        self.model = model
        # (model, attnames, start, stop, forward field that links it to its parent row or None, parent's index)
        self.parts = []
        columns, joins, start = [], [], 0
        tables = [(model, None, None)]
        aliases = {"": (0, model, False)}  # path → (alias number, model, reached through a LEFT JOIN)
        for i, path in enumerate(related, start=1):
            parent_path, _, name = path.rpartition("__")
            if parent_path not in aliases:
                raise ValueError(f"{path}: name {parent_path!r} in `related` before it")
            parent_alias, parent_model, parent_outer = aliases[parent_path]
            field = parent_model._meta.get_field(name)
            if not (field.many_to_one or field.one_to_one) or not field.concrete:
                raise ValueError(f"{parent_model.__name__}.{name} is not a forward foreign key")
            target = field.related_model
            # A nullable link, or any link below one, may find no row: LEFT JOIN keeps the main row.
            outer = field.null or parent_outer
            kind = "LEFT JOIN" if outer else "JOIN"
            joins.append(f"{kind} {quote(target._meta.db_table)} t{i} ON t{i}.{quote(field.target_field.column)} "
                         f"= t{parent_alias}.{quote(field.column)}")
            tables.append((target, field, parent_alias))
            aliases[path] = (i, target, outer)
        self.converters = []
        for alias, (table_model, link, parent) in enumerate(tables):
            fields = table_model._meta.concrete_fields
            for n, f in enumerate(fields):
                columns.append(f"t{alias}.{quote(f.column)}")
                col = f.get_col(f"t{alias}")
                found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
                if found:
                    self.converters.append((start + n, found, col))
            self.parts.append((table_model, [f.attname for f in fields], start, start + len(fields), link, parent))
            start += len(fields)
        self.head = f"SELECT {', '.join(columns)} FROM {quote(model._meta.db_table)} t0 {' '.join(joins)}"

    def build(self, row: Sequence) -> models.Model:
        if self.converters:
            row = list(row)
            for index, converters, col in self.converters:
                value = row[index]
                for converter in converters:
                    value = converter(value, col, connection)
                row[index] = value
        main_model, attnames, start, stop, _link, _parent = self.parts[0]
        built = [main_model.from_db(connection.alias, attnames, row[start:stop])]
        for table_model, attnames, start, stop, link, parent in self.parts[1:]:
            values = row[start:stop]
            related = None if all(v is None for v in values) else table_model.from_db(connection.alias, attnames,
                                                                                       values)
            if built[parent] is not None:
                link.set_cached_value(built[parent], related)
            built.append(related)
        return built[0]


def select_models(model: type[models.Model], where: str, params: Sequence = (), *, related: Sequence[str] = (),
                  tail: str = "") -> list:
    """Instances of `model` (with the forward foreign keys in `related` joined and cached, like select_related;
    `a__b` follows `b` from the row `a` names, which must come before it) matching `where` (SQL over alias t0
    and t1… in the order of `related`); `tail` is appended verbatim (ORDER BY, LIMIT, FOR UPDATE)."""
    key = (model, tuple(related), connection.vendor)
    shape = _SHAPES.get(key)
    if shape is None or shape.model is not model:
        shape = _SHAPES[key] = _Shape(model, tuple(related))
    with connection.cursor() as cursor:
        cursor.execute(f"{shape.head} WHERE {where} {tail}", list(params))
        rows = cursor.fetchall()
    return [shape.build(row) for row in rows]


def select_model(model: type[models.Model], where: str, params: Sequence = (), *, related: Sequence[str] = (),
                 order_by: str = "t0.id", lock: str = "") -> models.Model | None:
    """The first instance by `order_by` (as `.order_by(…).first()`), or None. `lock`: `lock_clause(…)`."""
    found = select_models(model, where, params, related=related, tail=f"ORDER BY {order_by} LIMIT 1{lock}")
    return found[0] if found else None


def children_attach(parents: Sequence[models.Model], model: type[models.Model], fk: str, *, related: Sequence[str] = (),
                    order_by: str = "t0.id") -> None:
    """Read the `model` rows whose foreign key `fk` points at `parents` (one plain read, `related` joined) and
    hand each parent its own as the prefetched result of that reverse relation, as
    `prefetch_related(<related_name>)` would: `parent.<related_name>.all()` then reads no database. The
    prefetched value is a list (what the templates iterate), not a queryset."""
    field = model._meta.get_field(fk)
    cache_name = field.remote_field.cache_name
    by_parent: dict = {parent.pk: [] for parent in parents}
    if by_parent:
        where, params = in_clause(f"t0.{connection.ops.quote_name(field.column)}", list(by_parent))
        for child in select_models(model, where, params, related=related, tail=f"ORDER BY {order_by}"):
            by_parent[getattr(child, field.attname)].append(child)
    for parent in parents:
        children = by_parent[parent.pk]
        for child in children:
            field.set_cached_value(child, parent)
        parent.__dict__.setdefault("_prefetched_objects_cache", {})[cache_name] = children


def page_clause(offset: int, limit: int) -> str:
    """`LIMIT … OFFSET …` for a `tail` (integers written into the SQL, so they are forced to int)."""
    return f"LIMIT {int(limit)} OFFSET {int(offset)}"


def select_rows(sql: str, params: Sequence = ()) -> list[tuple]:
    """The rows of a plain SELECT (tuples, no conversion)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.fetchall()


def select_in(sql: str, params: list, values: set, batch: int = 5000) -> list[tuple]:
    """Rows of `sql` + " IN (values)" (or = ANY on PostgreSQL), in batches; plain SQL on the driver's
    cursor, for lookups of thousands of keys (an import's chunk): Django builds one parameter per value, and
    SQLite caps the parameters of one statement."""
    if not values:
        return []
    values = list(values)
    out = []
    with connection.cursor() as cursor:
        raw = cursor.cursor
        for start in range(0, len(values), batch):
            part = values[start:start + batch]
            if connection.vendor == "postgresql":
                raw.execute(sql + " = ANY(%s)", [*params, part])
            else:
                raw.execute((sql + " IN (" + ", ".join(["%s"] * len(part)) + ")").replace("%s", "?"),
                            [*params, *part])
            out += raw.fetchall()
    return out


def in_clause(column: str, values: Sequence) -> tuple[str, list]:
    """`column` is one of `values`, as SQL and its parameters (an empty list matches nothing)."""
    values = list(values)
    if not values:
        return "FALSE" if connection.vendor == "postgresql" else "0", []
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [values]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", values


def lock_clause(*, no_key: bool = False) -> str:
    """The row-lock suffix of a SELECT on this database ('' on SQLite, where the write transaction serialises)."""
    if connection.vendor != "postgresql":
        return ""
    return " FOR NO KEY UPDATE" if no_key else " FOR UPDATE"


def db_datetime(value):
    """A datetime as a parameter of plain SQL on this database (SQLite stores UTC text; PostgreSQL takes it as is)."""
    return connection.ops.adapt_datetimefield_value(value)


def execute(sql: str, params: Sequence = ()) -> int:
    """Run a plain-SQL write; the number of rows it touched."""
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.rowcount


# A table is analysed again once it has grown by more than this since its statistics were taken (PostgreSQL's
# autovacuum_analyze_threshold and _scale_factor defaults).
STALE_ROWS, STALE_FRACTION = 50, 0.1


def statistics_refresh(grown: Mapping[type[models.Model], int] | None = None) -> bool:
    """Fresh table statistics for SQLite's query planner; True when it analysed anything (always False on
    PostgreSQL, whose autovacuum keeps its own).

    SQLite has none until ANALYZE runs, and without them it takes any indexed equality to be selective: at 1M
    customers it answered a pinyin search by walking the chain's whole customer index (`chain_id = ?`) instead
    of fetching the matching ids (p95 418 ms; 4–12 ms with statistics).

    The analysis is complete, not sampled: with `analysis_limit` SQLite wrote ~1,001 rows per value for every
    index led by a column of few values (`chain_id = ?` taken to match 1,001 of 1.1M customers), and a
    front-desk pinyin search then walked the whole chain to find the clinic's consultant's patients (1.8 s).
    Complete statistics of a 1M-customer chain take ~25 s on this VM, so every table is analysed only where
    that is cheap or rare (the end of a seed, the nightly `core.statistics` job); a write that added rows
    passes `grown` (model → rows added) and only a table without statistics yet, or grown by more than 50
    rows + 10 % since, is analysed (PostgreSQL's autovacuum rule)."""
    if connection.vendor != "sqlite":
        return False
    with connection.cursor() as cursor:
        if grown is None:
            sqlite_analyze(cursor)
            return True
        analysed = sqlite_analysed(cursor)
        stale = sorted({model._meta.db_table for model, rows in grown.items()
                        if rows > 0 and (model._meta.db_table not in analysed
                                         or rows > STALE_ROWS + STALE_FRACTION * analysed[model._meta.db_table])})
        if stale:
            sqlite_analyze(cursor, stale)
    return bool(stale)


def sqlite_analysed(cursor) -> dict[str, int]:
    """SQLite: table → its row count when last analysed (the first number of each sqlite_stat1 row); {} before
    any ANALYZE."""
    cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'")
    if cursor.fetchone() is None:
        return {}
    cursor.execute("SELECT tbl, MAX(CAST(stat AS INTEGER)) FROM sqlite_stat1 GROUP BY tbl")
    return {table: rows or 0 for table, rows in cursor.fetchall()}


def sqlite_analyze(cursor, targets: Sequence[str] = ()) -> None:
    """SQLite: complete statistics (never sampled, see statistics_refresh) of the given tables or indexes, or
    of everything."""
    cursor.execute("PRAGMA analysis_limit = 0")
    if not targets:
        cursor.execute("ANALYZE")
    for target in targets:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(target)}")


def choices_from(field, model: type[models.Model], where: str, params: Sequence = (), *,
                 related: Sequence[str] = (), tail: str = "") -> None:
    """Give a ModelChoiceField its options from one plain read (`select_models`), labelled by the field's
    `label_from_instance`. The ORM would compile the field's queryset on every render (1.3–1.9 ms each on the
    360 page); the queryset stays on the field to validate what is posted, so the WHERE must say the same."""
    rows = select_models(model, where, params, related=related, tail=tail)
    head = [] if field.empty_label is None else [("", field.empty_label)]
    field.choices = head + [(obj.pk, field.label_from_instance(obj)) for obj in rows]


def json_object(**fields) -> JSONObject:
    """`JSONObject` whose constant values (Python str, int, bool, or such a `Value`) are cast to their type; a
    plain str is a constant here, not a field name as in `JSONObject`.
    PostgreSQL's JSONB_BUILD_OBJECT takes "any", so a parameter bound on the server (config/env.py) would
    have no type there; expressions over columns pass through unchanged."""
    return JSONObject(**{key: _typed(value) for key, value in fields.items()})


def _typed(value):
    constant = value.value if isinstance(value, Value) else value
    if isinstance(constant, bool):
        field = models.BooleanField()
    elif isinstance(constant, int):
        field = models.BigIntegerField()
    elif isinstance(constant, str):
        field = models.TextField()
    else:
        return value
    return Cast(Value(constant), output_field=field)
