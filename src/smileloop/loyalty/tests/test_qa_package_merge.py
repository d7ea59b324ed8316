"""A package sale covering family members while one of them is merged away or erased.

`package_sell` locked the holder's row only: the people the package covers were read from the page and their
household read unlocked (a merge or erasure committed before the sale began was refused only as "not a member of the
household"). A covered person merged
into another record while the sale ran was still covered: the cover and its grants stayed on the tombstone, out of
everyone's sight, and the record kept was not covered. A covered person's erasure meanwhile deadlocked with the sale
(it holds the person, then locks their family: the holder the sale held), and the sale went through. The sale now
waits out an erasure of everyone it touches (FOR KEY SHARE), locks the holder and the covered people in id order
(FOR NO KEY UPDATE) and reads their state under that lock: a holder merged away is NotFound (as before), a covered
person merged away or erased is refused on `covered[i]`, nothing written."""

import datetime as dt
import threading

import pytest
from django.utils import timezone

from smileloop.checkout.models import MovementRole, SettlementMovement
from smileloop.checkout.services import checkout_pay
from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.errors import NotFound, ValidationFailed
from smileloop.core.testing import paused, postgresql_only, race, writers_run
from smileloop.customers import privacy
from smileloop.customers.models import Customer
from smileloop.customers.privacy import customer_erase
from smileloop.customers.services import customer_merge
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.customers.tests.test_qa_merge_across_apps_postgres import merge_while
from smileloop.ledger.selectors import ledger_check
from smileloop.loyalty.models import EntitlementGrant, PackageCover, PackagePurchase
from smileloop.loyalty.services import package_sell, wallet_balance, wallet_topup
from smileloop.membership.enums import WalletShareMode
from smileloop.membership.services import family_bind, wallet_share_consent_grant
from smileloop.visits.tests.factories import ServiceItemFactory

PRICE = 298_000


@pytest.fixture
def spouse_twin(chain, clinic_a):
    """A second record of 李强 (registered again at the front desk), outside the family."""
    return CustomerFactory(chain=chain, home_clinic=clinic_a, name="李强", mobile="+8613900000041")


def _covered_error(outcome, index: int) -> str:
    assert isinstance(outcome, ValidationFailed), outcome
    messages = {e.field: e.message for e in outcome.errors}
    assert f"covered[{index}]" in messages, messages
    return messages[f"covered[{index}]"]


def _nothing_sold(*people):
    assert not PackagePurchase.objects.exists()
    assert not PackageCover.objects.filter(customer__in=people).exists()
    assert not EntitlementGrant.objects.filter(customer__in=people).exists()


# --- the page read before a merge or an erasure committed (either database) ----------------------------------------

@pytest.mark.django_db
def test_a_covered_person_merged_since_the_page_was_read_is_refused(wang, spouse, spouse_twin, family_package,
                                                                    chain_admin):
    stale = Customer.objects.get(pk=spouse.pk)
    customer_merge(scope=scope_for_staff(chain_admin), survivor=spouse_twin, merged=spouse, reason="重复")
    with pytest.raises(ValidationFailed) as refused:
        package_sell(package=family_package, holder=wang, covered=[wang, stale], key="sale-1")
    assert "merged into another record" in _covered_error(refused.value, 1)
    _nothing_sold(spouse, spouse_twin, wang)


@pytest.mark.django_db
def test_a_covered_person_erased_since_the_page_was_read_is_refused(wang, spouse, family_package, director_a):
    stale = Customer.objects.get(pk=spouse.pk)
    customer_erase(scope=scope_for_staff(director_a), customer=Customer.objects.get(pk=spouse.pk), actor=director_a,
                   reason="本人书面申请")
    with pytest.raises(ValidationFailed) as refused:
        package_sell(package=family_package, holder=wang, covered=[wang, stale], key="sale-1")
    assert "erased" in _covered_error(refused.value, 1)
    _nothing_sold(spouse, wang)


# --- races (PostgreSQL) ----------------------------------------------------------------------------------------------

@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_sale_covering_a_person_merged_meanwhile_leaves_nothing_on_the_tombstone(wang, spouse, spouse_twin,
                                                                                   family_package, chain_admin):
    # when 李强's duplicate record is merged into the one kept while 王芳's family package (covering him) is sold
    outcome = merge_while(spouse_twin, spouse, chain_admin, lambda stale: package_sell(
        package=family_package, holder=wang, covered=[wang, stale], key="sale-race"))
    # then the sale is refused on him (the page showed a record that no longer is one), nothing written
    assert "merged into another record" in _covered_error(outcome, 1)
    _nothing_sold(spouse, spouse_twin, wang)


@postgresql_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kept", ["holder", "covered"])
def test_a_sale_while_the_holder_and_a_covered_person_are_merged_is_refused(wang, spouse, family_package,
                                                                            chain_admin, kept):
    # when the holder and the person covered turn out to be one person, merged while the sale runs
    if kept == "holder":
        outcome = merge_while(wang, spouse, chain_admin, lambda stale: package_sell(
            package=family_package, holder=wang, covered=[wang, stale], key="sale-race"))
        assert "merged into another record" in _covered_error(outcome, 1)
    else:
        outcome = merge_while(spouse, wang, chain_admin, lambda stale: package_sell(
            package=family_package, holder=stale, covered=[stale, spouse], key="sale-race"))
        assert isinstance(outcome, NotFound), outcome
    _nothing_sold(wang, spouse)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_sale_covering_a_person_erased_meanwhile_waits_and_is_refused(wang, spouse, family_package, director_a,
                                                                        monkeypatch):
    # when 李强's erasure holds his row (past its obligations check) while 王芳's family package is sold
    reached = threading.Event()
    monkeypatch.setattr(privacy, "erase_obligations", paused(privacy.erase_obligations, reached, hold=1.5))
    out = race(lambda: customer_erase(scope=scope_for_staff(director_a), customer=Customer.objects.get(pk=spouse.pk),
                                      actor=director_a, reason="本人书面申请"),
               lambda: package_sell(package=family_package, holder=wang, covered=[wang, spouse], key="sale-race"),
               reached)
    # then the erasure goes through, and the sale waited for it and is refused on him: no new package for an
    # erased record (nor a deadlock)
    assert "first" in out, out
    assert "erased" in _covered_error(out.get("then_error"), 1)
    assert Customer.objects.get(pk=spouse.pk).erased_at is not None
    _nothing_sold(spouse, wang)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_family_sales_from_the_family_wallet_and_family_bills_never_deadlock(chain, clinic_a, catalogue, wang, spouse,
                                                                             child, family_membership,
                                                                             family_package):
    # given 李强 bound to 王芳's family card, paying from her wallet; the package billed as PK01
    family_bind(holder=wang, member=spouse, relation="spouse", consent_source="paper", consent_evidence="F-1")
    wallet_share_consent_grant(holder=wang, member=spouse, mode=WalletShareMode.STANDING, source="paper")
    wallet_topup(customer=wang, amount_fen=10_000_000, method="cash", key="topup-1")
    ServiceItemFactory(chain=chain, code="PK01", name="家庭口腔护理套餐", category="exam", list_price_fen=PRICE)
    family_package.item_code = "PK01"
    family_package.save(update_fields=["item_code"])
    family_package.max_covered = 0
    family_package.save(update_fields=["max_covered"])
    at = timezone.now() - dt.timedelta(minutes=1)
    rounds = 3
    for n in range(rounds):
        # when, at once, 王芳 buys a package covering her family from her wallet, 李强 buys one covering himself and
        # his child from her wallet, and he pays a filling from it at checkout
        def writer(i, n=n):
            if i == 0:
                package_sell(package=family_package, holder=wang, covered=[child, spouse, wang], key=f"w-{n}",
                             clinic=clinic_a, payments=[{"method": "wallet", "amount_fen": PRICE}], at=at)
            elif i == 1:
                package_sell(package=family_package, holder=spouse, covered=[child, spouse], key=f"s-{n}",
                             clinic=clinic_a, payments=[{"method": "wallet", "amount_fen": PRICE}],
                             wallet_holder=wang, at=at)
            else:
                checkout_pay(priced={"customer": spouse, "clinic": clinic_a, "lines": [{"item_code": "FI01"}],
                                     "wallet": {"holder": wang, "amount_fen": 60_000}}, payments=[], key=f"pay-{n}")
            return [i]

        outcomes, errors = writers_run(writer, 3)
        # then all of it went through, one after the other
        assert errors == [], errors
    assert PackagePurchase.objects.count() == 2 * rounds
    assert PackageCover.objects.filter(customer=child).count() == 2 * rounds
    bills = sum(SettlementMovement.objects.filter(role=MovementRole.WALLET).values_list("value_fen", flat=True))
    assert SettlementMovement.objects.filter(role=MovementRole.WALLET).count() == rounds
    assert wallet_balance(wang).total == 10_000_000 - 2 * rounds * PRICE - bills
    assert ledger_check(chain_id=chain.id) == []
