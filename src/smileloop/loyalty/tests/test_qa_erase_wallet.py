"""A wallet spend by or for a holder whose personal information was erased, or is being erased.

An erasure goes ahead while stored value is owed only when it is forfeited on purpose (`forfeit=True`); the balance
then stays on the anonymous record. `wallet_spend` locked the payer's row but refused no erased record: the erased
holder's forfeited wallet could still be spent (also by an erasure in progress: the spend waited for it, then went
on), and a family member's spend from the wallet of a holder being erased read the holder's consent before the
erasure revoked it and recorded the family use after it (the holder's row was needed only at commit). The spend now
waits out an erasure of the holder first (FOR KEY SHARE, before the payer's row) and refuses an erased payer or
holder (409 `erased`), as a bill does. A package sale paid from a family wallet (`package_sell(wallet_holder=…)`)
did the same, and now does the same."""

import threading

import pytest

from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.errors import Conflict
from smileloop.core.testing import paused, postgresql_only, race
from smileloop.customers import privacy
from smileloop.customers.models import Customer
from smileloop.customers.privacy import customer_erase
from smileloop.customers.services import ERASED_REFUSED
from smileloop.ledger.enums import AccountKind
from smileloop.ledger.models import Account
from smileloop.loyalty.models import PackagePurchase, WalletShareUse
from smileloop.loyalty.services import package_sell, wallet_spend, wallet_topup
from smileloop.membership.enums import WalletShareMode
from smileloop.membership.services import family_bind, wallet_share_consent_grant
from smileloop.visits.tests.factories import ServiceItemFactory

REASON = "本人书面申请 2026-12-01"


@pytest.fixture
def topped_up(wang):
    wallet_topup(customer=wang, amount_fen=100_000, method="cash", key="topup-wang")
    return wang


@pytest.fixture
def bound_spouse(topped_up, spouse, family_membership):
    """李强 is bound to 王芳's family card and may pay from her wallet (standing consent)."""
    family_bind(holder=topped_up, member=spouse, relation="spouse", consent_source="paper", consent_evidence="F-1")
    wallet_share_consent_grant(holder=topped_up, member=spouse, mode=WalletShareMode.STANDING, source="paper")
    return spouse


def _principal(customer: Customer) -> int:
    return Account.objects.get(customer=customer, kind=AccountKind.WALLET_PRINCIPAL).balance


def _erase(customer: Customer, director):
    customer_erase(scope=scope_for_staff(director), customer=Customer.objects.get(pk=customer.pk), actor=director,
                   reason=REASON, forfeit=True)
    return True


def _refused_as_erased(error) -> bool:
    return isinstance(error, Conflict) and (error.code, str(error.message)) == ("erased", ERASED_REFUSED)


@pytest.mark.django_db
def test_the_forfeited_wallet_of_an_erased_holder_cannot_be_spent(topped_up, director_a):
    _erase(topped_up, director_a)
    with pytest.raises(Conflict) as refused:
        wallet_spend(payer=Customer.objects.get(pk=topped_up.pk), amount_fen=10_000, key="s1", source="order:1")
    assert _refused_as_erased(refused.value) and refused.value.field == "customer_id"
    assert _principal(topped_up) == 100_000


@pytest.mark.django_db
def test_a_family_spend_from_an_erased_holders_wallet_is_refused_as_erased(topped_up, bound_spouse, director_a):
    _erase(topped_up, director_a)
    with pytest.raises(Conflict) as refused:
        wallet_spend(payer=bound_spouse, holder=Customer.objects.get(pk=topped_up.pk), amount_fen=10_000, key="s1",
                     source="order:1")
    assert _refused_as_erased(refused.value) and refused.value.field == "holder_id"
    assert (_principal(topped_up), WalletShareUse.objects.count()) == (100_000, 0)


def _erasure_first(monkeypatch, person: Customer, director, then) -> dict:
    """The erasure of `person` holds their row (paused after its obligations check); `then` runs meanwhile."""
    reached = threading.Event()
    monkeypatch.setattr(privacy, "erase_obligations", paused(privacy.erase_obligations, reached, hold=1.5))
    return race(lambda: _erase(person, director), then, reached)


@pytest.mark.django_db(transaction=True)
@postgresql_only
def test_a_spend_during_the_holders_erasure_waits_and_is_refused(topped_up, director_a, monkeypatch):
    out = _erasure_first(monkeypatch, topped_up, director_a,
                         lambda: wallet_spend(payer=topped_up, amount_fen=10_000, key="s1", source="order:1"))
    assert out.get("first") and _refused_as_erased(out.get("then_error")), out
    assert _principal(topped_up) == 100_000


@pytest.mark.django_db(transaction=True)
@postgresql_only
def test_a_family_spend_during_the_holders_erasure_waits_and_is_refused(topped_up, bound_spouse, director_a,
                                                                       monkeypatch):
    out = _erasure_first(monkeypatch, topped_up, director_a,
                         lambda: wallet_spend(payer=bound_spouse, holder=topped_up, amount_fen=10_000, key="s1",
                                              source="order:1"))
    assert out.get("first") and _refused_as_erased(out.get("then_error")), out
    # nothing spent from the erased holder's wallet, no family use recorded after the erasure
    assert (_principal(topped_up), WalletShareUse.objects.count()) == (100_000, 0)


@pytest.mark.django_db(transaction=True)
@postgresql_only
def test_a_package_paid_from_the_holders_wallet_during_her_erasure_waits_and_is_refused(
        chain, topped_up, bound_spouse, family_package, clinic_a, front_desk_a, director_a, monkeypatch):
    ServiceItemFactory(chain=chain, code="PK01", name="家庭口腔护理套餐", category="exam", list_price_fen=298_000)
    family_package.item_code = "PK01"
    family_package.save(update_fields=["item_code"])

    def sell():
        return package_sell(package=family_package, holder=bound_spouse, covered=[bound_spouse], key="sale-1",
                            actor=front_desk_a, clinic=clinic_a, wallet_holder=topped_up,
                            payments=[{"method": "wallet", "amount_fen": 50_000},
                                      {"method": "cash", "amount_fen": 248_000}])

    out = _erasure_first(monkeypatch, topped_up, director_a, sell)
    assert out.get("first") and _refused_as_erased(out.get("then_error")), out
    assert (_principal(topped_up), WalletShareUse.objects.count(), PackagePurchase.objects.count()) == (100_000, 0, 0)
