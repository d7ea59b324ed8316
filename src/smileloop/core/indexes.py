"""Index types Django lacks.

`CoveringIndex`: an index with included (non-key) columns on every database. PostgreSQL stores them with
INCLUDE; SQLite has no INCLUDE, and Django then silently creates the index without them (system check
models.W040), so a query the index was meant to answer alone visits the table for every entry instead.
Here SQLite gets the included columns as trailing key columns: the same queries are index-only there too.
At 1.2M customers and 10M orders that was the difference between ~6 s and well under 1 s for a spend
segment on SQLite (docs/benchmarks.md). The primary key is skipped on SQLite: every index there already
carries the rowid.
"""

from django.db import models


class CoveringIndex(models.Index):
    """models.Index whose `include` columns also cover on databases without INCLUDE (as trailing keys)."""

    def create_sql(self, model, schema_editor, using="", **kwargs):
        if self.include and not schema_editor.connection.features.supports_covering_indexes:
            return self.keyed(model).create_sql(model, schema_editor, using=using, **kwargs)
        return super().create_sql(model, schema_editor, using=using, **kwargs)

    def keyed(self, model) -> models.Index:
        """The same index with the included columns appended to its key (the primary key left out)."""
        pk = model._meta.pk
        extra = [name for name in self.include if name not in (pk.name, pk.attname)]
        return models.Index(fields=[*self.fields, *extra], name=self.name, db_tablespace=self.db_tablespace,
                            condition=self.condition)
