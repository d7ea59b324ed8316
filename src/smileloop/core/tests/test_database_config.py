"""DATABASE_URL → Django's DATABASES entry: PostgreSQL binds parameters on the server and prepares the
statements a connection repeats (switchable for poolers), SQLite keeps its own options."""

import pytest
from django.db import connection
from django.db.utils import ConnectionHandler

from config.env import PREPARE_THRESHOLD, EnvError, database_config


def test_postgres_binds_on_the_server_and_prepares_repeated_statements(monkeypatch):
    monkeypatch.delenv("DATABASE_PREPARED_STATEMENTS", raising=False)
    options = database_config("postgres://app@db:5432/smileloop")["OPTIONS"]
    assert options["server_side_binding"] is True
    assert options["prepare_threshold"] == PREPARE_THRESHOLD == 5
    assert options["options"] == "-c jit=off"


@pytest.mark.parametrize("value", ["false", "off", "0"])
def test_prepared_statements_can_be_switched_off_for_a_pooler(monkeypatch, value):
    monkeypatch.setenv("DATABASE_PREPARED_STATEMENTS", value)
    options = database_config("postgresql://app@pgbouncer:6432/smileloop")["OPTIONS"]
    assert options["prepare_threshold"] is None  # psycopg: never prepare
    assert options["server_side_binding"] is True


def test_a_bad_switch_value_stops_start_up_with_its_name(monkeypatch):
    monkeypatch.setenv("DATABASE_PREPARED_STATEMENTS", "sometimes")
    with pytest.raises(EnvError, match="DATABASE_PREPARED_STATEMENTS='sometimes'"):
        database_config("postgres://app@db/smileloop")


def test_sqlite_gets_none_of_the_postgres_options():
    options = database_config("sqlite:///var/x.sqlite3")["OPTIONS"]
    assert "server_side_binding" not in options and "prepare_threshold" not in options
    assert options["transaction_mode"] == "IMMEDIATE"


def test_a_sqlite_connection_outlives_the_request(tmp_path, django_db_blocker):
    """Django ends every request with close_if_unusable_or_obsolete: the worker's SQLite connection must survive
    it (a new one re-reads the schema and re-prepares every statement; measured as 2/3 of an API upsert)."""
    config = database_config(f"sqlite:///{tmp_path / 'pool.sqlite3'}")
    for max_age, kept in ((config["CONN_MAX_AGE"], True), (0, False)):
        wrapper = ConnectionHandler({"default": {**config, "CONN_MAX_AGE": max_age}})["default"]
        with django_db_blocker.unblock():
            try:
                with wrapper.cursor() as cursor:
                    cursor.execute("PRAGMA journal_mode")
                    assert cursor.fetchone() == ("wal",)
                raw = wrapper.connection
                wrapper.close_if_unusable_or_obsolete()  # what request_finished runs
                assert (wrapper.connection is raw) is kept, max_age
            finally:
                wrapper.close()


@pytest.mark.django_db
def test_a_postgres_connection_the_server_dropped_is_replaced_before_the_next_request_uses_it(django_db_blocker):
    """A kept connection whose backend was terminated (a server restart, a failover) is health-checked at the next
    request's first query and reopened: without the check that request fails."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    s = connection.settings_dict
    url = f"postgres://{s['USER']}@{s['HOST'] or 'localhost'}:{s['PORT'] or 5432}/{s['NAME']}"
    config = database_config(url)
    assert config["CONN_HEALTH_CHECKS"] is True
    for checks, survives in ((True, True), (False, False)):
        wrapper = ConnectionHandler({"default": {**config, "CONN_HEALTH_CHECKS": checks}})["default"]
        with django_db_blocker.unblock():
            try:
                with wrapper.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    pid = cursor.fetchone()[0]
                with connection.cursor() as cursor:  # another session ends it, as a restart would
                    cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
                wrapper.close_if_unusable_or_obsolete()  # the request boundary
                try:
                    with wrapper.cursor() as cursor:
                        cursor.execute("SELECT 1")
                        answered = cursor.fetchone() == (1,)
                except Exception:  # noqa: BLE001 (the dropped connection's error, whatever psycopg calls it)
                    answered = False
                assert answered is survives, checks
            finally:
                wrapper.close()


@pytest.mark.django_db
def test_a_statement_repeated_on_a_postgres_connection_is_prepared_once():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    sql = "SELECT count(*) FROM core_idempotencyrecord WHERE user_id = %s AND key = %s"
    with connection.cursor() as cursor:
        for i in range(PREPARE_THRESHOLD + 2):
            cursor.execute(sql, [i, f"key-{i}"])
            assert cursor.fetchone() == (0,)
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s",
                       ["%core_idempotencyrecord WHERE user_id = $1 AND key = $2%"])
        prepared = cursor.fetchall()
    assert len(prepared) == 1
