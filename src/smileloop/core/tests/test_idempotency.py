"""core.idempotency without a domain app: a write is an AuditEvent row, refusals are core errors."""

import json
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from smileloop.core import idempotency
from smileloop.core.audit import audit_record
from smileloop.core.errors import Conflict, FieldError, PermissionDenied, ValidationFailed
from smileloop.core.models import AuditEvent, IdempotencyRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def user():
    return get_user_model().objects.create_user(username="writer")


def call(user, run, *, key="k-1", body=None):
    request = RequestFactory().post("/api/things", data=json.dumps(body or {"a": 1}), content_type="application/json")
    return idempotency.idempotent_call(request=request, user_id=user.id, key=key, operation="things.add", run=run)


def write_then(outcome):
    """A write that inserts a row and then answers `outcome` (a (status, body) pair) or raises it."""
    calls = []

    def run():
        calls.append(audit_record(actor=None, action="thing.add", object_type="thing"))
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    run.calls = calls
    return run


def test_a_write_is_stored_once_and_replayed_without_running_again(user):
    # given
    run = write_then((201, {"id": 7}))
    first = call(user, run)
    # when
    again = call(user, run)
    # then
    assert first == (201, {"id": 7}, False)
    assert again == (201, {"id": 7}, True)
    assert len(run.calls) == 1
    assert AuditEvent.objects.count() == 1
    assert IdempotencyRecord.objects.get().status_code == 201


def test_a_replay_gives_the_answers_fields_in_the_first_answers_order(user):
    # given: an answer whose keys are not in the order PostgreSQL's jsonb keeps (shortest first)
    answer = {"customer": {"updated_at": "2026-12-05T08:00:00+08:00", "id": 7, "name": "张三"}, "created": True,
              "lines": [{"amount_fen": 100, "id": 1}]}
    first = call(user, write_then((201, answer)))
    # when
    again = call(user, write_then((201, {"other": 1})))
    # then: the same JSON text, byte for byte
    assert again[2] is True
    assert json.dumps(again[1], ensure_ascii=False) == json.dumps(first[1], ensure_ascii=False)


def test_a_record_stored_as_an_object_before_the_text_is_still_replayed(user):
    # given
    request = RequestFactory().post("/api/things", data=json.dumps({"a": 1}), content_type="application/json")
    IdempotencyRecord.objects.create(user_id=user.id, key="k-1", operation="things.add", status_code=201,
                                     request_hash=idempotency.request_fingerprint(request), response={"id": 9})
    # when
    again = call(user, write_then((201, {"id": 10})))
    # then
    assert again == (201, {"id": 9}, True)


def test_a_stored_refusal_after_a_write_rolls_the_write_back_and_is_replayed(user):
    # given: the write inserts a row, then is refused (422)
    run = write_then(ValidationFailed([FieldError("a", "is wrong", "1")]))
    # when
    first = call(user, run)
    again = call(user, run)
    # then: nothing of the write is left, the refusal is stored under the key and replayed
    assert first[0] == 422 and first[2] is False
    assert first[1]["errors"] == [{"field": "body.a", "message": "is wrong", "value": "1"}]
    assert again == (first[0], first[1], True)
    assert len(run.calls) == 1
    assert AuditEvent.objects.count() == 0
    record = IdempotencyRecord.objects.get()
    assert (record.status_code, json.loads(record.response)) == (422, first[1])


def test_a_refusal_not_stored_leaves_nothing_and_keeps_the_key_free(user):
    # when
    with pytest.raises(PermissionDenied):
        call(user, write_then(PermissionDenied("no")))
    # then
    assert AuditEvent.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0
    assert call(user, write_then((201, {"id": 1}))) == (201, {"id": 1}, False)


def test_a_refused_request_whose_key_a_duplicate_took_meanwhile_answers_the_duplicates_stored_answer(user):
    # given: between the refused write's rollback and the record of its refusal, a concurrent duplicate
    # claimed the key, wrote and committed its answer
    real_claim = idempotency._claim
    request = RequestFactory().post("/api/things", data=json.dumps({"a": 1}), content_type="application/json")
    fingerprint = idempotency.request_fingerprint(request)

    def claim(**kwargs):
        if kwargs.get("status"):  # the refusal's own record: the duplicate got there first
            IdempotencyRecord.objects.create(user_id=user.id, key="k-1", operation="things.add",
                                             request_hash=fingerprint, status_code=201, response={"id": 9})
        return real_claim(**kwargs)

    # when
    with mock.patch.object(idempotency, "_claim", side_effect=claim):
        answer = call(user, write_then(Conflict("taken", code="already_done")))
    # then: the client is told what the key stores, never a different answer
    assert answer == (201, {"id": 9}, True)
    assert IdempotencyRecord.objects.count() == 1
    assert AuditEvent.objects.count() == 0


def test_a_successful_write_uses_no_savepoint_inside_its_transaction(user):
    # given a warm-up (content types, the user row)
    call(user, write_then((201, {"id": 1})), key="warm")
    # when
    with CaptureQueriesContext(connection) as captured:
        call(user, write_then((201, {"id": 2})))
    # then: claim, the write, the stored answer; one savepoint only because the test itself runs in a
    # transaction (in production the block is the transaction: BEGIN … COMMIT)
    sql = [q["sql"] for q in captured.captured_queries]
    assert sum(s.startswith("SAVEPOINT") for s in sql) == 1
    assert len([s for s in sql if not s.startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]) == 3
