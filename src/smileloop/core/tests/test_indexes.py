"""Covered columns stay covered on SQLite (core.indexes.CoveringIndex): Django drops INCLUDE there, silently."""

import datetime as dt

import pytest
from django.apps import apps
from django.db import connection

from smileloop.core.indexes import CoveringIndex
from smileloop.visits.models import Order


def _ours():
    return [m for m in apps.get_models() if m.__module__.startswith("smileloop.")]


def test_every_index_that_includes_more_than_the_primary_key_is_a_covering_index():
    # given every index of our models that includes columns
    plain = []
    for model in _ours():
        pk = model._meta.pk
        for index in model._meta.indexes:
            extra = [name for name in index.include if name not in (pk.name, pk.attname)]
            if extra and not isinstance(index, CoveringIndex):
                plain.append((model.__name__, index.name))
    # then none would lose its included columns on SQLite
    assert plain == []


@pytest.mark.parametrize(("name", "keys", "included"), [
    ("order_customer_spend", ["customer_id", "ordered_at"], ["amount_fen", "refunded_fen"]),
    ("customer_last_visit", ["chain_id", "last_visit_at"], ["id", "lifetime_spend_fen", "merged_into_id"]),
])
def test_the_migrated_index_carries_its_included_columns(db, name, keys, included):
    # given the test database, migrated
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM pragma_index_info(%s) ORDER BY seqno", [name])
            columns = [row[0] for row in cursor.fetchall()]
            # then SQLite has them as trailing key columns (but the primary key, which is its rowid)
            assert columns == keys + [c for c in included if c != "id"]
        else:
            cursor.execute("SELECT pg_get_indexdef(%s::regclass)", [name])
            definition = cursor.fetchone()[0]
            # then PostgreSQL has them as INCLUDE columns
            assert definition.endswith(f"INCLUDE ({', '.join(included)})")


def test_the_index_sql_django_writes_when_it_rebuilds_a_table_keeps_them(db):
    # given the index as Django creates it (also when SQLite's ALTER TABLE makes a new table and its indexes)
    index = next(i for i in Order._meta.indexes if i.name == "order_customer_spend")
    editor = connection.schema_editor(atomic=False)  # not entered: only its SQL is wanted
    sql = str(index.create_sql(Order, editor))
    # then the covered columns are in it, as keys on SQLite and as INCLUDE elsewhere
    if connection.vendor == "sqlite":
        assert sql.endswith('("customer_id", "ordered_at" DESC, "amount_fen", "refunded_fen")')
    else:
        assert 'INCLUDE ("amount_fen", "refunded_fen")' in sql


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's query plan")
def test_a_customers_spend_in_a_window_is_read_from_the_index_alone_on_sqlite(db):
    # given the per-customer spend probe of spend segments (segments.rules.leaves.aggregate_leaf)
    sql = ("EXPLAIN QUERY PLAN SELECT SUM(amount_fen - refunded_fen) FROM visits_order "
           "WHERE customer_id = 1 AND ordered_at >= '2026-01-01' AND ordered_at < '2026-12-01'")
    with connection.cursor() as cursor:
        cursor.execute(sql)
        plan = " ".join(row[-1] for row in cursor.fetchall())
    # then SQLite answers it without visiting the order rows
    assert "USING COVERING INDEX order_customer_spend" in plan


@pytest.mark.skipif(connection.vendor != "sqlite", reason="only SQLite rebuilds the index")
def test_index_cover_rebuilds_the_index_with_its_statistics_on_sqlite(db):
    # given an Order index as a plain models.Index (what Django made on SQLite before), and planner statistics
    from django.apps import apps as django_apps

    from smileloop.core.migration_ops import IndexCover
    from smileloop.demo.services import chain_seed

    chain_seed(customers=30, clinics=1, years=1, seed=3, today=dt.date(2026, 11, 23))  # some orders to analyse
    index = next(i for i in Order._meta.indexes if i.name == "order_customer_spend")
    op = IndexCover("order", index)
    op.app_label = "visits"
    editor = connection.schema_editor(atomic=False)
    op._plain(django_apps, editor)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute("DELETE FROM sqlite_stat1 WHERE idx = 'order_customer_spend'")
    # when the migration operation runs forwards
    op._keyed(django_apps, editor)
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pragma_index_info('order_customer_spend') ORDER BY seqno")
        columns = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT COUNT(*) FROM sqlite_stat1 WHERE idx = 'order_customer_spend'")
        stats = cursor.fetchone()[0]
    # then the index covers amount and refund, and the planner knows it again
    assert columns == ["customer_id", "ordered_at", "amount_fen", "refunded_fen"]
    assert stats == 1
