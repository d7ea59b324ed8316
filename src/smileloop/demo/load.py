"""Bulk writing of generated rows: PostgreSQL COPY, or executemany on SQLite's own cursor.

Rows arrive with their primary keys already set (see generate.Ids), so parents and children are
written table by table without reading anything back. Both paths bypass the ORM on purpose: model
instances cost ~10× more than tuples, and at 10 million orders that is the difference between
minutes and an hour. The column lists in generate.COLUMNS are checked against the models first, so
a NOT NULL column added later fails here with a clear message instead of half-way through a load.
"""

import os

from django.apps import apps
from django.db import connection
from django.db.models.fields import NOT_PROVIDED

from smileloop.core.sql import statistics_refresh
from smileloop.demo.generate import COLUMNS, TABLE_ORDER


class SchemaMismatch(RuntimeError):
    pass


def _models_by_table():
    return {m._meta.db_table: m for m in apps.get_models()}


def columns_check() -> None:
    """Every generated column exists, and every NOT NULL column of the model is generated."""
    models = _models_by_table()
    for table, columns in COLUMNS.items():
        model = models[table]
        fields = {f.column: f for f in model._meta.concrete_fields}
        unknown = set(columns) - set(fields)
        missing = [c for c, f in fields.items() if c not in columns and not f.null and f.db_default is NOT_PROVIDED]
        if unknown or missing:
            raise SchemaMismatch(f"{table}: the seed does not match the model (unknown columns {sorted(unknown)}, "
                                 f"missing NOT NULL columns {missing}); update smileloop/demo/generate.py")


class Loader:
    """Writes row batches for one database connection (the default one)."""

    def __init__(self, *, bulk: bool = False):
        self.vendor = connection.vendor
        if self.vendor not in ("postgresql", "sqlite"):
            raise RuntimeError(f"seeding supports PostgreSQL and SQLite, not {self.vendor}")
        self.bulk = bulk
        self.written: dict[str, int] = dict.fromkeys(TABLE_ORDER, 0)
        self._dropped: list[tuple[str, str]] = []  # (index name, CREATE INDEX statement)
        self._cache_size: int | None = None  # SQLite: the connection's page cache before the load, put back after

    def next_ids(self) -> dict[str, int]:
        """max(id) + 1 per table: the first key this load may use."""
        with connection.cursor() as cursor:
            out = {}
            for table in TABLE_ORDER:
                cursor.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}")
                out[table] = cursor.fetchone()[0]
        return out

    def prepare(self) -> None:
        """Session settings for a bulk load; with `bulk`, set the secondary indexes aside.

        Bulk mode is for a database nobody else is using (the benchmark's own, a fresh demo):
        foreign-key checks are skipped for this session (PostgreSQL: session_replication_role = replica,
        as pg_restore --disable-triggers does; SQLite: PRAGMA foreign_keys = OFF; the generator guarantees
        the references) and the non-unique indexes of the loaded tables are dropped and rebuilt once at
        the end, which is several times faster than maintaining them row by row. Primary keys and unique
        constraints stay in place throughout.
        """
        self.session_setup()
        if not self.bulk:
            return
        with connection.cursor() as cursor:
            if self.vendor == "sqlite":
                # Indexes SQLite made for PRIMARY KEY / UNIQUE have no SQL; partial unique indexes stay too.
                cursor.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND "
                    f"instr(upper(sql), 'CREATE UNIQUE') != 1 AND tbl_name IN ({', '.join(['%s'] * len(TABLE_ORDER))})",
                    list(TABLE_ORDER))
                self._dropped = cursor.fetchall()
                for name, _definition in self._dropped:
                    cursor.execute(f'DROP INDEX "{name}"')
                return
            cursor.execute(
                "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                "JOIN pg_class t ON t.oid = i.indrelid WHERE t.relname = ANY(%s) AND t.relkind = 'r' "
                "AND NOT i.indisprimary AND NOT i.indisunique AND t.relnamespace = 'public'::regnamespace",
                [list(TABLE_ORDER)])
            self._dropped = cursor.fetchall()
            for name, _definition in self._dropped:
                cursor.execute(f"DROP INDEX {name}")

    def session_setup(self) -> None:
        """The load's settings on the current connection (a worker process calls it on its own)."""
        with connection.cursor() as cursor:
            if self.vendor == "sqlite":
                if self._cache_size is None:
                    cursor.execute("PRAGMA cache_size")
                    self._cache_size = cursor.fetchone()[0]
                cursor.execute("PRAGMA cache_size = -262144")  # 256 MB page cache for index maintenance
                if self.bulk:
                    # Only outside a transaction does this take effect (SQLite ignores it inside one).
                    cursor.execute("PRAGMA foreign_keys = OFF")
                return
            cursor.execute("SET synchronous_commit = off")
            if self.bulk:
                cursor.execute("SET session_replication_role = replica")
                cursor.execute("SET maintenance_work_mem = '512MB'")

    def write(self, rows: dict[str, list[tuple]]) -> None:
        """Write one chunk; call inside a transaction."""
        for table in TABLE_ORDER:
            batch = rows.get(table)
            if not batch:
                continue
            columns = COLUMNS[table]
            if self.vendor == "postgresql":
                with connection.cursor() as cursor:
                    with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        write_row = copy.write_row
                        for row in batch:
                            write_row(row)
            else:
                connection.ensure_connection()
                placeholders = ", ".join("?" * len(columns))
                connection.connection.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", batch)
            self.written[table] += len(batch)

    def finish(self) -> None:
        """Move each sequence past the keys we assigned (PostgreSQL), then refresh planner statistics.

        PostgreSQL: ANALYZE and then VACUUM, unless inside a transaction (tests), where VACUUM cannot run. Rows
        just copied in are not yet marked all-visible, so every index-only scan (search keys, the covering
        customer and order indexes) still visits the heap for each entry until a vacuum does that: at 1M
        customers the chain-wide pinyin search had p95 94 ms before and 23 ms after (~20 s of VACUUM for the
        whole seed). Autovacuum would get there eventually, or never where it is off."""
        if self.vendor != "postgresql":
            self.indexes_restore()
            if self.bulk:
                with connection.cursor() as cursor:
                    cursor.execute("PRAGMA foreign_keys = ON")
            statistics_refresh()
            if self._cache_size is not None:
                with connection.cursor() as cursor:
                    cursor.execute(f"PRAGMA cache_size = {int(self._cache_size)}")
            return
        with connection.cursor() as cursor:
            self.indexes_restore()
            if self.bulk:
                cursor.execute("SET session_replication_role = origin")
            for table in TABLE_ORDER:
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 1), "
                               f"MAX(id) IS NOT NULL) FROM {table}")
            # The load's session settings end here: whatever this process does next (the foundation bench
            # imports and serves the API right after its seed) runs with the server's own.
            cursor.execute("RESET synchronous_commit")
            for table in TABLE_ORDER:
                cursor.execute(f"ANALYZE {table}")
            if not connection.in_atomic_block:
                # After ANALYZE, whose synchronous commits flush the WAL of the load's asynchronous ones: until
                # then VACUUM may not set those rows' commit hint bits, and without them no page is all-visible.
                for table in TABLE_ORDER:
                    cursor.execute(f"VACUUM {table}")
            cursor.execute("RESET maintenance_work_mem")

    def indexes_restore(self) -> None:
        """Rebuild the indexes `prepare` set aside (also called when a bulk load fails half-way)."""
        if not self._dropped:
            return
        with connection.cursor() as cursor:
            if self.vendor == "sqlite":
                cursor.execute(f"PRAGMA threads = {min(4, os.cpu_count() or 1)}")  # helper threads sort for CREATE INDEX
            for _name, definition in self._dropped:
                cursor.execute(definition.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1))
        self._dropped = []
