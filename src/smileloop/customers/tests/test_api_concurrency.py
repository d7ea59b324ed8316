"""Concurrent API upserts with one Idempotency-Key on PostgreSQL: one write, every client the same answer."""

import json

import pytest
from django.db import connection
from django.test import Client

from smileloop.clinics.services import token_create
from smileloop.core.models import IdempotencyRecord
from smileloop.core.testing import writers_run
from smileloop.customers.models import Customer, CustomerSearchKey, Interaction

pytestmark = pytest.mark.django_db(transaction=True)


def _post_concurrently(token: str, body: dict, *, n: int = 6) -> list:
    def send(_i):
        return [Client().post("/api/customers/upsert", data=json.dumps(body), content_type="application/json",
                              headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "same"})]

    responses, errors = writers_run(send, n)
    assert errors == []
    return responses


@pytest.fixture
def token(chain_admin):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers are exercised on PostgreSQL only")
    return token_create(username=chain_admin.user.username)


def test_concurrent_requests_with_one_key_write_once_and_all_answer_the_first_answer(token):
    # when six clients send the same request with the same key at once
    responses = _post_concurrently(token, {"name": "并发", "mobile": "13800138000"})
    # then one wrote; the others waited for it and replayed its answer
    assert [r.status_code for r in responses] == [201] * 6
    assert sum("Idempotent-Replayed" not in r for r in responses) == 1
    assert all(r.json() == responses[0].json() for r in responses)
    assert Customer.objects.count() == 1
    assert Interaction.objects.count() == 1
    assert CustomerSearchKey.objects.count() == 2
    assert IdempotencyRecord.objects.get().status_code == 201


def test_concurrent_refused_requests_with_one_key_store_one_refusal_and_all_answer_it(token):
    # when six clients send the same invalid request with the same key at once
    responses = _post_concurrently(token, {"name": "并发", "mobile": "12345"})
    # then every one gets the one stored refusal, and nothing else was written
    assert [r.status_code for r in responses] == [422] * 6
    assert all(r.json() == responses[0].json() for r in responses)
    assert IdempotencyRecord.objects.get().status_code == 422
    assert Customer.objects.count() == 0
