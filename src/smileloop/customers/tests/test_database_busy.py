"""A write that meets a database another writer holds (a long import in the worker) is a 503 that says to retry,
on the staff pages and the API, and writes nothing; the same request succeeds once the lock is gone."""

import json
import sqlite3
from contextlib import contextmanager

import psycopg
import pytest
from django.db import connection
from django.test import Client

from smileloop.clinics.services import token_create
from smileloop.core.models import IdempotencyRecord
from smileloop.customers.models import Customer, Interaction
from smileloop.customers.tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def _database_held_by_another_writer():
    """Another connection holds the write lock: SQLite's one writer, or PostgreSQL table locks that block writes
    (not reads) while this connection waits at most 300 ms for a lock."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        other = sqlite3.connect(s["NAME"], uri=True, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '300ms'")
    other = psycopg.connect(host=s["HOST"] or "localhost", port=s["PORT"] or 5432, user=s["USER"],
                            password=s["PASSWORD"] or None, dbname=s["NAME"])
    try:
        other.execute("LOCK TABLE customers_customer, customers_interaction, core_idempotencyrecord IN EXCLUSIVE MODE")
        yield
    finally:
        other.rollback()
        other.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")


def test_a_staff_save_that_meets_a_busy_database_says_so_and_saves_nothing(chain, chain_admin, clinic_a):
    customer = CustomerFactory(chain=chain, name="张三", mobile="+8613800138000", home_clinic=clinic_a)
    client = Client(headers={"Accept-Language": "zh-hans"})
    client.force_login(chain_admin.user)
    url = f"/customers/{customer.id}/notes/"
    before = Interaction.objects.filter(customer=customer).count()
    with _database_held_by_another_writer():
        response = client.post(url, {"text": "来电：下周三复查"})
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    page = response.content.decode()
    assert 'data-testid="database-busy"' in page and "没有保存" in page
    assert Interaction.objects.filter(customer=customer).count() == before
    # The same save, once the other writer is done, goes through.
    assert client.post(url, {"text": "来电：下周三复查"}).status_code == 302
    assert Interaction.objects.filter(customer=customer, text="来电：下周三复查").count() == 1


def test_an_api_write_that_meets_a_busy_database_is_a_503_whose_key_stays_free(chain_admin):
    token = token_create(username=chain_admin.user.username)
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "pos-0001"}
    body = json.dumps({"name": "李四", "mobile": "13900139000"})
    client = Client()
    with _database_held_by_another_writer():
        response = client.post("/api/customers/upsert", data=body, content_type="application/json", headers=headers)
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "5"
    assert response.json()["code"] == "busy" and "Idempotency-Key" in response.json()["message"]
    assert Customer.objects.count() == 0 and IdempotencyRecord.objects.count() == 0
    # The client's retry with the same key is the first real write, not a replay of the 503.
    retry = client.post("/api/customers/upsert", data=body, content_type="application/json", headers=headers)
    assert retry.status_code == 201 and "Idempotent-Replayed" not in retry
    assert Customer.objects.get().name == "李四"


def test_a_database_error_that_is_not_a_busy_database_is_not_taken_for_one():
    from django.db import DatabaseError

    from smileloop.core.errors import database_busy

    with pytest.raises(DatabaseError) as raised, connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table_here")
    assert not database_busy(raised.value)


def test_a_busy_database_is_logged_with_what_the_database_said(chain, chain_admin, clinic_a, caplog):
    # given a page save and an API write that both meet another writer's lock
    customer = CustomerFactory(chain=chain, name="张三", mobile="+8613800138000", home_clinic=clinic_a)
    client = Client()
    client.force_login(chain_admin.user)
    token = token_create(username=chain_admin.user.username)
    caplog.set_level("WARNING", logger="smileloop.database")
    with _database_held_by_another_writer():
        page = client.post(f"/customers/{customer.id}/notes/", {"text": "来电"})
        api = client.post("/api/customers/upsert", data=json.dumps({"name": "李四", "mobile": "13900139000"}),
                          content_type="application/json",
                          headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "pos-0002"})
    # then each 503 leaves a line that says why (a lock timeout here; a deadlock reads "40P01: deadlock detected"),
    # not only Django's "Service Unavailable: <path>"
    assert (page.status_code, api.status_code) == (503, 503)
    said = "55P03: canceling statement due to lock timeout" if connection.vendor == "postgresql" else "locked"
    lines = [r.getMessage() for r in caplog.records if r.name == "smileloop.database"]
    assert len(lines) == 2
    assert lines[0].startswith(f"Database busy, answered 503: POST /customers/{customer.id}/notes/ (")
    assert lines[1].startswith("Database busy, answered 503: POST /api/customers/upsert (")
    assert all(said in line for line in lines), lines
