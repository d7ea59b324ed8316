"""A bill paid while someone it is about is erased (PostgreSQL): one waits for the other, never a deadlock, never a
payment recorded about an erased record after its erasure.

The family wallet: a member paying from the holder's wallet locked the payer only; the holder's row was needed only
at commit (the family-use record's foreign key). An erasure of the holder (forfeiting the stored value) in progress
was not waited for: the bill spent the erased holder's wallet under a consent the erasure had just revoked, and
recorded the family use after it; with the two in one household the erasure waited for the payer's row (it takes
the holder out of the household) while the bill waited for the holder's: a deadlock. The bill now waits out an
erasure of the holder first (FOR KEY SHARE, before the payer's row) and refuses an erased holder (409 `erased`).

The gift card: the payer's row is locked first and an erased payer refused, so the "first used by" event naming
them is either refused or written before the erasure, whose hook rewrites it (regression tests). But two bills paid
with one new card at once each wrote "first used by <payer>": the second's UPDATE of the holder found one set and
changed nothing, yet its event named its payer on a card neither given nor held by them, which their erasure's hook
(cards they gave or hold) never rewrote. Only the payer who became the holder is named now."""

import threading

import pytest

from smileloop.checkout.models import Settlement
from smileloop.checkout.services import checkout_pay, checkout_price
from smileloop.checkout.services import pay as pay_services
from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.audit import AuditEvent
from smileloop.core.errors import Conflict
from smileloop.core.testing import paused, postgresql_only, race
from smileloop.customers import privacy
from smileloop.customers.enums import Relation
from smileloop.customers.models import Customer
from smileloop.customers.privacy import customer_erase
from smileloop.customers.services import ERASED_REFUSED, household_member_add
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.giftcards.models import GiftCardEvent
from smileloop.ledger.enums import AccountKind
from smileloop.ledger.models import Account
from smileloop.loyalty.models import WalletShareUse
from smileloop.membership.enums import WalletShareMode
from smileloop.membership.services import family_bind, wallet_share_consent_grant

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]


def _erase(person: Customer, director):
    def erase():
        customer_erase(scope=scope_for_staff(director), customer=Customer.objects.get(pk=person.pk), actor=director,
                       reason="本人申请", forfeit=True)
        return True

    return erase


def _erasure_first(monkeypatch, person: Customer, director, then) -> dict:
    """The erasure of `person` holds their row (paused after its obligations check); `then` runs meanwhile."""
    reached = threading.Event()
    monkeypatch.setattr(privacy, "erase_obligations", paused(privacy.erase_obligations, reached, hold=1.5))
    return race(_erase(person, director), then, reached)


def _bill_first(monkeypatch, person: Customer, director, first) -> dict:
    """`first` (a pay) pauses after posting its ledger movements; the erasure of `person` starts meanwhile."""
    reached = threading.Event()
    monkeypatch.setattr(pay_services, "ledger_post_many", paused(pay_services.ledger_post_many, reached, hold=1.5))
    return race(first, _erase(person, director), reached)


def _principal(customer: Customer) -> int:
    return Account.objects.get(customer=customer, kind=AccountKind.WALLET_PRINCIPAL).balance


@pytest.fixture
def spouse(chain, clinic_a, alice, wallet):
    """Alice's husband, bound to her family card, who may pay from her wallet (standing consent)."""
    spouse = CustomerFactory(chain=chain, name="李强", home_clinic=clinic_a)
    family_bind(holder=alice, member=spouse, relation="spouse", consent_source="paper", consent_evidence="F-1")
    wallet_share_consent_grant(holder=alice, member=spouse, mode=WalletShareMode.STANDING, source="paper")
    return spouse


def _family_pay(clinic_a, alice, spouse):
    bill = checkout_price(customer=spouse, clinic=clinic_a, lines=[{"item_code": "CL01"}],
                          wallet={"holder": alice, "amount_fen": 5000})
    return lambda: checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}],
                                key="family-pay")


@pytest.mark.parametrize("household", [False, True], ids=["apart", "one-household"])
def test_a_family_wallet_bill_during_the_holders_erasure_waits_and_is_refused(
        chain, clinic_a, catalogue, alice, spouse, director_a, monkeypatch, household):
    if household:  # the erasure takes her out of his household: it locks his row too
        household_member_add(head=spouse, member=alice, relation=Relation.SPOUSE)
    out = _erasure_first(monkeypatch, alice, director_a, _family_pay(clinic_a, alice, spouse))
    assert out.get("first") and "first_error" not in out, out
    error = out.get("then_error")
    assert isinstance(error, Conflict) and (error.code, str(error.message)) == ("erased", ERASED_REFUSED), out
    # nothing spent from the erased holder's wallet, no family use recorded after the erasure
    assert (Settlement.objects.count(), WalletShareUse.objects.count(), _principal(alice)) == (0, 0, 10000)


def test_a_holder_erased_while_a_family_wallet_bill_is_paid_is_erased_after_it(
        chain, clinic_a, catalogue, alice, spouse, director_a, monkeypatch):
    out = _bill_first(monkeypatch, alice, director_a, _family_pay(clinic_a, alice, spouse))
    assert out.get("first") and out.get("then"), out
    assert WalletShareUse.objects.filter(holder=alice).count() == 1
    # the erasure waited for the bill: what it forfeited is what the bill left, not what it read before the spend
    forfeited = AuditEvent.objects.get(action="customer.erase").detail["forfeited"]
    assert [f["amount_fen"] for f in forfeited if f["code"] == "wallet"] == [_principal(alice)] == [5000]


def _card_pay(clinic_a, alice, card):
    bill = checkout_price(customer=alice, clinic=clinic_a, lines=[{"item_code": "CL01"}], gift_cards=[card.code])
    return lambda: checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}],
                                key="card-pay")


def _named(name: str) -> list[str]:
    return [d for d in GiftCardEvent.objects.values_list("detail", flat=True) if name in d]


def test_a_gift_card_bill_during_the_payers_erasure_waits_and_is_refused(chain, clinic_a, catalogue, alice, card,
                                                                         director_a, monkeypatch):
    out = _erasure_first(monkeypatch, alice, director_a, _card_pay(clinic_a, alice, card))
    assert out.get("first") and "first_error" not in out, out
    error = out.get("then_error")
    assert isinstance(error, Conflict) and error.code == "erased", out
    card.refresh_from_db()
    assert card.holder_id is None and not _named("王芳")


def test_a_payer_erased_while_a_gift_card_bill_is_paid_is_not_named_by_the_card(chain, clinic_a, catalogue, alice,
                                                                                card, director_a, monkeypatch):
    out = _bill_first(monkeypatch, alice, director_a, _card_pay(clinic_a, alice, card))
    assert out.get("first") and out.get("then"), out
    card.refresh_from_db()
    # the bill went first and made her the card's known holder; the erasure then rewrote the event naming her
    assert card.holder_id == alice.pk and not _named("王芳")
    assert GiftCardEvent.objects.filter(card=card, kind="holder_known").count() == 1


def test_a_card_first_used_by_two_payers_at_once_names_only_its_holder(chain, clinic_a, catalogue, alice, card,
                                                                       director_a, monkeypatch):
    other = CustomerFactory(chain=chain, name="钱多多", home_clinic=clinic_a)
    theirs = checkout_price(customer=other, clinic=clinic_a, lines=[{"item_code": "CL01"}], gift_cards=[card.code])
    hers = _card_pay(clinic_a, alice, card)  # both priced while the card has no holder yet
    reached = threading.Event()
    # the other payer's bill pauses after posting (the card's account locked); hers waits for it, then goes on
    monkeypatch.setattr(pay_services, "ledger_post_many", paused(pay_services.ledger_post_many, reached, hold=1.0))
    out = race(lambda: checkout_pay(priced=theirs, payments=[{"method": "cash", "amount_fen": theirs.cash_fen}],
                                    key="their-pay"), hers, reached)
    assert out.get("first") and out.get("then"), out
    card.refresh_from_db()
    assert card.holder_id == other.pk
    assert list(GiftCardEvent.objects.filter(card=card, kind="holder_known").values_list("detail", flat=True)) == [
        "first used by 钱多多"]
    _erase(alice, director_a)()
    assert not _named("王芳")  # nothing of hers is left on a card that is not hers
