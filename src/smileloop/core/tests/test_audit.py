"""The audit record names its time as the chain's staff read every other time: in local time."""

import datetime as dt

import pytest

from smileloop.core.audit import audit_record
from smileloop.core.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_an_audit_event_is_named_with_its_local_time():
    """The admin titles a record with its name: a reveal at 07:22 in Shanghai read '23:22' of the day before (UTC)."""
    event = audit_record(actor=None, action="phone.reveal", object_type="customer", object_id=7)
    AuditEvent.objects.filter(pk=event.pk).update(created_at=dt.datetime(2026, 12, 4, 23, 22, tzinfo=dt.UTC))
    event.refresh_from_db()
    assert str(event) == "2026-12-05 07:22 None phone.reveal customer:7"
