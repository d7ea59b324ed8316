"""A tag put on or taken off a patient while they are erased (PostgreSQL): one waits for the other.

Taking a tag off locked its row (the DELETE), then needed the patient's row (the timeline entry's foreign key,
checked at commit); the erasure held the patient's row and waited for the tag row (its hook deletes the tags): a
deadlock, a 500. Putting one on inserted a row the erasure's DELETE could not see, so the erased person kept a tag
(a marketing profile) and a "tagged" timeline entry. Both now lock the patient first, the erasure's order."""

import threading

import pytest

from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.errors import Conflict
from smileloop.core.testing import paused, postgresql_only, race
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
    monkeypatch.setattr(tagging_services, "interaction_add",
                        paused(tagging_services.interaction_add, reached, before=True))

    def erase():
        customer_erase(scope=scope_for_staff(director_a), customer=Customer.objects.get(pk=patient.pk),
                       actor=director_a, reason="本人申请")
        return True

    return race(write, erase, reached)


@pytest.mark.django_db(transaction=True)
@postgresql_only
def test_a_tag_taken_off_while_the_patient_is_erased_is_not_a_deadlock(chain, patient_a, director_a, monkeypatch):
    tag = TagFactory(chain=chain)
    CustomerTagFactory(customer=patient_a, tag=tag)
    out = _race(monkeypatch, lambda: tag_remove(customer=patient_a, tag=tag, actor=director_a), patient_a,
                director_a)
    assert out.get("then") and "first_error" not in out, out
    assert Customer.objects.get(pk=patient_a.pk).erased_at is not None
    assert not CustomerTag.objects.filter(customer=patient_a).exists()


@pytest.mark.django_db(transaction=True)
@postgresql_only
def test_a_tag_put_on_while_the_patient_is_erased_is_refused_or_erased(chain, patient_a, director_a, monkeypatch):
    tag = TagFactory(chain=chain)
    out = _race(monkeypatch, lambda: tag_apply(customer=patient_a, tag=tag, actor=director_a), patient_a,
                director_a)
    assert out.get("then") and "then_error" not in out, out
    error = out.get("first_error")
    assert error is None or (isinstance(error, Conflict) and str(error.message) == ERASED_REFUSED), out
    # whichever went first, the erased person carries no tag (their marketing profile went with them)
    assert not CustomerTag.objects.filter(customer=patient_a).exists()
