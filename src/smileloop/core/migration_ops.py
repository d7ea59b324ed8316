"""Migration operations Django lacks.

`FieldIndexDrop`: set a foreign key to db_index=False without touching its constraint. Django's AlterField
does it by dropping the foreign-key constraint, dropping the index and adding the constraint back, and adding
it back makes PostgreSQL check every row of the table under a lock (minutes at 10 million orders). Here the
state changes as AlterField would and the database only loses the single-column index.
"""

from django.db import migrations


class FieldIndexDrop(migrations.SeparateDatabaseAndState):
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

    def state_forwards(self, app_label, state):
        self.app_label = app_label
        super().state_forwards(app_label, state)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        self.app_label = app_label
        super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        self.app_label = app_label
        super().database_backwards(app_label, schema_editor, from_state, to_state)

    def deconstruct(self):
        return self.__class__.__qualname__, [], {"model_name": self.model_name, "name": self.name,
                                                 "field": self.field}

    def describe(self):
        return f"Drop the single-column index of {self.model_name}.{self.name} (covered by a composite index)"
