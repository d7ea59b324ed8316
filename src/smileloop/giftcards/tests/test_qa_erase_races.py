"""A friend registering as a gift card's holder while their erasure runs (PostgreSQL): the two are serialised on the
person's row, never both done.

The registration read "not erased" without a lock, then wrote the card's holder and an event naming them; the
erasure, running meanwhile, found no card of theirs (the holder was not yet written), blanked the person and
committed; the registration then committed too: a card held by the erased record and an event with their real
name that no hook would ever rewrite. The registration now locks the person first, the erasure's order."""

import threading

import pytest

from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.testing import paused, postgresql_only, race
from smileloop.customers.models import Customer
from smileloop.customers.privacy import customer_erase
from smileloop.giftcards import services as giftcard_services
from smileloop.giftcards.models import GiftCard, GiftCardEvent
from smileloop.giftcards.services import friend_card_issue, giftcard_holder_register


@pytest.mark.django_db(transaction=True)
@postgresql_only
def test_a_holder_registered_while_erased_leaves_no_name_and_no_card_of_the_erased_record(
        member, friend, programme, director_a, monkeypatch):
    card = friend_card_issue(member=member, programme=programme, trigger="t", key="k1")
    name = friend.name
    reached = threading.Event()
    # after the registration's erased check, before its writes: the erasure lands here
    monkeypatch.setattr(giftcard_services, "_lots_expiry_remove",
                        paused(giftcard_services._lots_expiry_remove, reached, before=True))

    def erase():
        return customer_erase(scope=scope_for_staff(director_a), customer=Customer.objects.get(pk=friend.pk),
                              actor=director_a, reason="本人申请")

    out = race(lambda: giftcard_holder_register(card=card, customer=friend), erase, reached)
    # the registration went first (it held the person): the card is theirs, with value on it, so the erasure waits
    # for it (an obligation) instead of leaving a live card and a named event about an erased record
    assert "first" in out and "then_error" in out, out
    assert getattr(out["then_error"], "code", None) == "erase_obligations", out
    assert Customer.objects.get(pk=friend.pk).erased_at is None
    assert GiftCard.objects.get(pk=card.pk).holder_id == friend.pk
    erased = Customer.objects.filter(pk=friend.pk, erased_at__isnull=False).exists()
    named = GiftCardEvent.objects.filter(card=card, detail__contains=name).exists()
    assert not (erased and named)
