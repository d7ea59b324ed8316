"""A tag put on or taken off a patient while they are erased (PostgreSQL): one waits for the other.

Taking a tag off locked its row (the DELETE), then needed the patient's row (the timeline entry's foreign key,
checked at commit); the erasure held the patient's row and waited for the tag row (its hook deletes the tags): a
deadlock, a 500. Putting one on inserted a row the erasure's DELETE could not see, so the erased person kept a tag
(a marketing profile) and a "tagged" timeline entry. Both now lock the patient first, the erasure's order."""

import threading
import time

import pytest
from django.db import connections, transaction

from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.errors import Conflict
from smileloop.core.testing import postgresql_only
from smileloop.customers.models import Customer
from smileloop.customers.privacy import customer_erase
from smileloop.customers.services import ERASED_REFUSED
from smileloop.tagging import services as tagging_services
from smileloop.tagging.models import CustomerTag
from smileloop.tagging.services import tag_apply, tag_remove
from smileloop.tagging.tests.factories import CustomerTagFactory, TagFactory


def _race(monkeypatch, write, patient, director_a) -> dict:
    """`write` runs up to its timeline entry, pauses there; the erasure starts meanwhile on another thread."""
    reached = threading.Event()
    real = tagging_services.interaction_add

    def paused(*args, **kwargs):
        reached.set()
        time.sleep(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(tagging_services, "interaction_add", paused)
    out: dict = {}

    def writer():
        try:
            out["write"] = write()
        except Exception as exc:  # noqa: BLE001 - returned to the test
            out["write_error"] = exc
        finally:
            reached.set()
            connections.close_all()

    def erase():
        try:
            assert reached.wait(20)
            time.sleep(0.1)
            with transaction.atomic():
                customer_erase(scope=scope_for_staff(director_a), customer=Customer.objects.get(pk=patient.pk),
                               actor=director_a, reason="本人申请")
            out["erased"] = True
        except Exception as exc:  # noqa: BLE001 - returned to the test
            out["erase_error"] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer), threading.Thread(target=erase)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return out


@pytest.mark.django_db(transaction=True)
@postgresql_only
def test_a_tag_taken_off_while_the_patient_is_erased_is_not_a_deadlock(chain, patient_a, director_a, monkeypatch):
    tag = TagFactory(chain=chain)
    CustomerTagFactory(customer=patient_a, tag=tag)
    out = _race(monkeypatch, lambda: tag_remove(customer=patient_a, tag=tag, actor=director_a), patient_a,
                director_a)
    assert out.get("erased") and "write_error" not in out, out
    assert Customer.objects.get(pk=patient_a.pk).erased_at is not None
    assert not CustomerTag.objects.filter(customer=patient_a).exists()


@pytest.mark.django_db(transaction=True)
@postgresql_only
def test_a_tag_put_on_while_the_patient_is_erased_is_refused_or_erased(chain, patient_a, director_a, monkeypatch):
    tag = TagFactory(chain=chain)
    out = _race(monkeypatch, lambda: tag_apply(customer=patient_a, tag=tag, actor=director_a), patient_a,
                director_a)
    assert out.get("erased") and "erase_error" not in out, out
    error = out.get("write_error")
    assert error is None or (isinstance(error, Conflict) and str(error.message) == ERASED_REFUSED), out
    # whichever went first, the erased person carries no tag (their marketing profile went with them)
    assert not CustomerTag.objects.filter(customer=patient_a).exists()
