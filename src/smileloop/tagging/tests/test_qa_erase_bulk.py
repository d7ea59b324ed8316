"""A bulk tagging of a list selection while one of the selected patients is erased (PostgreSQL).

`tags_bulk_apply` read which of the selection were erased, then inserted the tag rows, locking no patient (the
rows' foreign keys are checked at commit). An erasure that committed between the read and the insert, or that ran
while the rows were still uncommitted (its DELETE could not see them), left the erased person with a tag: a
marketing profile of an anonymous record. The bulk writer now waits out erasures in progress of the whole selection
(customers_erasures_wait: one statement, id order, FOR KEY SHARE), reads the erased under that lock, and an erasure
that starts later waits for it and deletes the tags itself."""

import threading

import pytest

from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.errors import ValidationFailed
from smileloop.core.testing import paused, postgresql_only, race
from smileloop.customers import privacy
from smileloop.customers.models import Customer
from smileloop.customers.privacy import customer_erase
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.tagging import services as tagging_services
from smileloop.tagging.models import CustomerTag
from smileloop.tagging.services import ERASED_NOT_TAGGED, tags_bulk_apply
from smileloop.tagging.tests.factories import TagFactory

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]


def _race(monkeypatch, where: str, selection: list[Customer], erased: Customer, tag, director) -> dict:
    """The bulk tagging of `selection`, paused after `where` (a name in tagging.services), and the erasure of
    `erased` started on another connection during the pause."""
    reached = threading.Event()
    monkeypatch.setattr(tagging_services, where, paused(getattr(tagging_services, where), reached, hold=1.5))

    def bulk():
        return tags_bulk_apply(scope=scope_for_staff(director), customer_ids=[c.pk for c in selection], tag=tag,
                               actor=director)

    def erase():
        customer_erase(scope=scope_for_staff(director), customer=Customer.objects.get(pk=erased.pk), actor=director,
                       reason="本人申请")
        return True

    return race(bulk, erase, reached)


@pytest.fixture
def selection(chain, clinic_a, patient_a):
    return [patient_a, *(CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(3))]


def test_a_bulk_tagging_during_an_erasure_waits_for_it_and_is_refused(chain, selection, director_a, monkeypatch):
    tag = TagFactory(chain=chain)
    erased = selection[2]
    reached = threading.Event()
    # the erasure holds the patient's row (paused after its obligations check); the bulk tagging starts meanwhile
    monkeypatch.setattr(privacy, "erase_obligations", paused(privacy.erase_obligations, reached, hold=1.5))

    def erase():
        customer_erase(scope=scope_for_staff(director_a), customer=Customer.objects.get(pk=erased.pk),
                       actor=director_a, reason="本人申请")
        return True

    out = race(erase, lambda: tags_bulk_apply(scope=scope_for_staff(director_a), customer_ids=[c.pk for c in selection],
                                              tag=tag, actor=director_a), reached)
    assert out.get("first") and "first_error" not in out, out
    error = out.get("then_error")
    # it waited, then refused as a selection holding an erased patient is (all or nothing): no deadlock, no tag
    assert isinstance(error, ValidationFailed) and ERASED_NOT_TAGGED in error.errors[0].message, out
    assert not CustomerTag.objects.filter(tag=tag).exists()


def test_a_patient_erased_after_the_selection_was_checked_is_not_tagged(chain, selection, director_a,
                                                                        monkeypatch):
    tag = TagFactory(chain=chain)
    erased = selection[2]
    # paused right after the selection was read (none erased yet), before the INSERT: the erasure starts meanwhile
    out = _race(monkeypatch, "_bulk_targets", selection, erased, tag, director_a)
    assert out.get("first") == len(selection) and out.get("then"), out
    assert Customer.objects.get(pk=erased.pk).erased_at is not None
    # the erasure waited for the bulk tagging, then deleted the tag; never a tag kept by an erased person
    assert not CustomerTag.objects.filter(customer=erased).exists()
    assert CustomerTag.objects.filter(tag=tag).count() == len(selection) - 1


def test_a_patient_erased_while_the_tags_are_written_loses_the_tag(chain, selection, director_a, monkeypatch):
    tag = TagFactory(chain=chain)
    erased = selection[0]
    # paused after the INSERT of the tag rows, before the commit: the erasure starts meanwhile
    out = _race(monkeypatch, "audit_record", selection, erased, tag, director_a)
    assert out.get("first") == len(selection) and out.get("then"), out
    assert Customer.objects.get(pk=erased.pk).erased_at is not None
    # the erasure waited for the bulk tagging, then deleted the tag with the rest of the profile; the others keep it
    assert not CustomerTag.objects.filter(customer=erased).exists()
    assert set(CustomerTag.objects.filter(tag=tag).values_list("customer_id", flat=True)) == {
        c.pk for c in selection if c.pk != erased.pk}
