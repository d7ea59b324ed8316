"""Migration operations Django lacks.

`FieldIndexDrop`: set a foreign key to db_index=False without touching its constraint. Django's AlterField
does it by dropping the foreign-key constraint, dropping the index and adding the constraint back, and adding
it back makes PostgreSQL check every row of the table under a lock (minutes at 10 million orders). Here the
state changes as AlterField would and the database only loses the single-column index.

`IndexCover`: turn an index with `include` into a core.indexes.CoveringIndex, rebuilding it only on SQLite.
`IndexAnalyze`: after AddIndex, the new indexes' planner statistics on SQLite (dropping an index drops them).
"""

from django.db import migrations, models

from smileloop.core.sql import sqlite_analysed, sqlite_analyze


class _AppLabelled(migrations.SeparateDatabaseAndState):
    """Remembers its app's label, which the RunPython parts need to look the model up."""

    def state_forwards(self, app_label, state):
        self.app_label = app_label
        super().state_forwards(app_label, state)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        self.app_label = app_label
        super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        self.app_label = app_label
        super().database_backwards(app_label, schema_editor, from_state, to_state)


class FieldIndexDrop(_AppLabelled):
    """AlterField(model_name, name, field) in the state; in the database, DROP INDEX of the field's own
    single-column, non-unique index (whatever its generated name); the reverse creates it again."""

    def __init__(self, model_name: str, name: str, field):
        self.model_name, self.name, self.field = model_name, name, field
        super().__init__(
            state_operations=[migrations.AlterField(model_name=model_name, name=name, field=field)],
            database_operations=[migrations.RunPython(self._drop, self._create, elidable=False)])

    def _parts(self, apps, schema_editor):
        model = apps.get_model(self.app_label, self.model_name)
        return model, model._meta.get_field(self.name).column

    def _drop(self, apps, schema_editor):
        model, column = self._parts(apps, schema_editor)
        table = model._meta.db_table
        with schema_editor.connection.cursor() as cursor:
            constraints = schema_editor.connection.introspection.get_constraints(cursor, table)
        for name, info in constraints.items():
            if (info["index"] and info["columns"] == [column] and not info["unique"] and not info["primary_key"]
                    and not info.get("foreign_key")):
                schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")

    def _create(self, apps, schema_editor):
        model, column = self._parts(apps, schema_editor)
        table = model._meta.db_table
        name = schema_editor._create_index_name(table, [column])
        schema_editor.execute(f"CREATE INDEX {schema_editor.quote_name(name)} ON {schema_editor.quote_name(table)} "
                              f"({schema_editor.quote_name(column)})")

    def deconstruct(self):
        return self.__class__.__qualname__, [], {"model_name": self.model_name, "name": self.name,
                                                 "field": self.field}

    def describe(self):
        return f"Drop the single-column index of {self.model_name}.{self.name}"


def index_statistics_refresh(schema_editor, names) -> None:
    """SQLite: planner statistics for indexes a migration just (re)built, when the database has statistics.

    Dropping an index drops its statistics, and SQLite then misjudges it beside indexes it knows: a wider
    recency index was taken over the coordinate index for a distance segment (0.45 → 1.6 s at 1M customers).
    Complete, as core.sql.statistics_refresh (seconds at 10M orders). A database without any statistics is
    left without (the first seed, import or nightly job analyses everything)."""
    if schema_editor.connection.vendor != "sqlite":
        return
    with schema_editor.connection.cursor() as cursor:
        if sqlite_analysed(cursor):
            sqlite_analyze(cursor, names)


class IndexAnalyze(migrations.RunPython):
    """After AddIndex on SQLite: give the new indexes their statistics (index_statistics_refresh)."""

    def __init__(self, *names: str):
        self.names = names
        super().__init__(self._analyze, migrations.RunPython.noop, elidable=False)

    def _analyze(self, apps, schema_editor):
        index_statistics_refresh(schema_editor, self.names)

    def deconstruct(self):
        return self.__class__.__qualname__, list(self.names), {}

    def describe(self):
        return f"Planner statistics for {', '.join(self.names)} (SQLite)"


class IndexCover(_AppLabelled):
    """Swap a models.Index with `include` for the same core.indexes.CoveringIndex. The state swaps the
    index; the database changes only where INCLUDE is unsupported (SQLite), where the index is rebuilt with
    the included columns as trailing keys. PostgreSQL already has the right index and is not touched."""

    def __init__(self, model_name: str, index):
        self.model_name, self.index = model_name, index
        super().__init__(
            state_operations=[migrations.RemoveIndex(model_name=model_name, name=index.name),
                              migrations.AddIndex(model_name=model_name, index=index)],
            database_operations=[migrations.RunPython(self._keyed, self._plain, elidable=False)])

    def _rebuild(self, apps, schema_editor, index):
        if schema_editor.connection.features.supports_covering_indexes:
            return
        model = apps.get_model(self.app_label, self.model_name)
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(index.name)}")
        schema_editor.execute(index.create_sql(model, schema_editor))
        index_statistics_refresh(schema_editor, [index.name])

    def _keyed(self, apps, schema_editor):
        self._rebuild(apps, schema_editor, self.index)

    def _plain(self, apps, schema_editor):
        _path, args, kwargs = self.index.deconstruct()
        self._rebuild(apps, schema_editor, models.Index(*args, **kwargs))

    def deconstruct(self):
        return self.__class__.__qualname__, [], {"model_name": self.model_name, "index": self.index}

    def describe(self):
        return f"Make {self.index.name} on {self.model_name} covering on every database"
