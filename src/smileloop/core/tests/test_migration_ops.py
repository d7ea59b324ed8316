"""The tables that grow with the patient pool carry no index another index already covers, and FieldIndexDrop
removed those indexes without removing the foreign keys."""

from django.apps import apps
from django.db import connection

GROWING = ("customers_", "visits_")


def _constraints(table):
    with connection.cursor() as cursor:
        return connection.introspection.get_constraints(cursor, table)


def test_no_single_column_index_repeats_the_leading_column_of_another_index_on_the_growing_tables(db):
    # given every table of the customers and visits apps
    tables = sorted({m._meta.db_table for m in apps.get_models() if m._meta.db_table.startswith(GROWING)})
    redundant = []
    for table in tables:
        indexes = {name: info for name, info in _constraints(table).items() if info["index"] or info["unique"]}
        for name, info in indexes.items():
            if info["unique"] or info["primary_key"] or len(info["columns"]) != 1:
                continue
            column = info["columns"][0]
            covering = [other for other, o in indexes.items()
                        if other != name and len(o["columns"]) > 1 and o["columns"][0] == column]
            if covering:
                redundant.append((table, name, covering))
    # then none is left (partial indexes are listed without their condition by SQLite's introspection, so the
    # check is about whole-column indexes, which is what Django's db_index makes)
    assert redundant == []


def test_the_dropped_indexes_kept_their_foreign_keys(db):
    # given the foreign keys whose own index FieldIndexDrop removed
    expected = {("visits_order", "customer_id"), ("visits_order", "clinic_id"), ("visits_appointment", "customer_id"),
                ("customers_interaction", "customer_id"), ("customers_consent", "customer_id"),
                ("customers_identity", "chain_id")}
    # then each is still a foreign key, and no single-column index of it remains
    for table, column in expected:
        constraints = _constraints(table).values()
        assert any(c["foreign_key"] and c["columns"] == [column] for c in constraints), (table, column)
        assert not any(c["index"] and c["columns"] == [column] and not c["unique"] for c in constraints), (table, column)
