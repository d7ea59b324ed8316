"""Plain-SQL bulk inserts for the import fast path.

Django's bulk_create spends most of its time compiling SQL per object and field (about 80% of an
import's time in a profile of 20,000 rows) and on SQLite is held to 999 parameters per statement.
Here each model's columns, defaults and value adapters are worked out once, rows are plain dicts,
and the SQL is one multi-row INSERT … RETURNING id per batch (when ids are needed) or one
executemany. Values still go through each field's get_db_prep_save where the type needs it (dates,
datetimes, decimals, JSON), and unspecified fields take the model default, so a field added to a
model later is filled correctly without touching this module.
"""

from django.db import connection, models

_MISSING = object()
_PREPARED_TYPES = {"DateField", "DateTimeField", "DecimalField", "JSONField", "UUIDField", "TimeField",
                   "DurationField"}


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
            self.defaults.append(None if default is None else f.get_db_prep_save(default, connection))
        self.prepare = [f.get_internal_type() in _PREPARED_TYPES for f in self.fields]
        quote = connection.ops.quote_name
        self.insert_head = f"INSERT INTO {quote(self.table)} ({', '.join(quote(c) for c in self.columns)}) VALUES "
        self.placeholders = "(" + ", ".join(["%s"] * len(self.columns)) + ")"
        self.pk_column = quote(meta.pk.column)

    def values(self, rows: list[dict]) -> list[list]:
        """Rows as parameter lists in column order; adapters run once per distinct value object in a
        column (an import's `now` is one object repeated on every row)."""
        pairs = [(a, _MISSING if prepare else default)
                 for a, default, prepare in zip(self.attnames, self.defaults, self.prepare, strict=True)]
        out = [[row.get(a, d) for a, d in pairs] for row in rows]
        for i, field in enumerate(self.fields):
            if not self.prepare[i]:
                continue
            default, last, prepared = self.defaults[i], _MISSING, None
            for values in out:
                value = values[i]
                if value is _MISSING:
                    values[i] = default
                elif value is not None:
                    if value is not last:
                        last, prepared = value, field.get_db_prep_save(value, connection)
                    values[i] = prepared
        return out


_PLANS: dict[type, _Plan] = {}


def _plan(model) -> _Plan:
    plan = _PLANS.get(model)
    if plan is None or plan.model is not model:
        plan = _PLANS[model] = _Plan(model)
    return plan


def _max_params() -> int:
    return 30_000 if connection.vendor == "sqlite" else 60_000


def rows_insert(model: type[models.Model], rows: list[dict], *, returning_ids: bool = False) -> list[int]:
    """Insert rows (attname → value; missing attnames take the model default). Returns the new ids, in
    order, when `returning_ids` (INSERT … RETURNING, as Django's own bulk_create relies on)."""
    if not rows:
        return []
    plan = _plan(model)
    if returning_ids and not connection.features.can_return_rows_from_bulk_insert:
        objs = [model(**row) for row in rows]
        model._default_manager.bulk_create(objs)
        return [obj.pk for obj in objs]
    ids: list[int] = []
    with connection.cursor() as cursor:
        if not returning_ids:
            cursor.executemany(plan.insert_head + plan.placeholders, plan.values(rows))
            return ids
        size = max(1, _max_params() // len(plan.columns))
        values = plan.values(rows)
        for start in range(0, len(values), size):
            batch = values[start:start + size]
            params = [value for row in batch for value in row]
            cursor.execute(plan.insert_head + ", ".join([plan.placeholders] * len(batch))
                           + f" RETURNING {plan.pk_column}", params)
            ids += [r[0] for r in cursor.fetchall()]
    return ids
