"""Package sales that earn points and pay from a family wallet, racing the family's checkout bills on the same wallet
and a cancellation, on PostgreSQL. A sale posts its wallet spend and its earn in one batch, as a bill does (every
account locked at once, in id order): posted one after the other, the sale held the wallet and SALES while waiting for
POINTS_ISSUED, which a bill locking in id order could already hold while waiting for the wallet."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from smileloop.checkout.models import MovementRole, SettlementMovement
from smileloop.checkout.services import checkout_pay
from smileloop.core.testing import writers_run
from smileloop.ledger.enums import AccountKind
from smileloop.ledger.models import LedgerTransaction
from smileloop.ledger.selectors import ledger_check
from smileloop.ledger.services import system_account
from smileloop.loyalty.models import PackagePurchase
from smileloop.loyalty.services import package_cancel, package_sell, wallet_balance, wallet_topup
from smileloop.loyalty.tests.factories import EarnRuleFactory
from smileloop.membership.enums import WalletShareMode
from smileloop.membership.services import family_bind, wallet_share_consent_grant
from smileloop.visits.tests.factories import ServiceItemFactory

pytestmark = pytest.mark.django_db(transaction=True)

PRICE = 298_000
ROUNDS = 5


def test_sales_earning_from_the_family_wallet_and_family_bills_never_deadlock(
        chain, clinic_a, catalogue, wang, spouse, family_membership, family_package, director_a):
    if connection.vendor != "postgresql":
        pytest.skip("row locks and concurrent writers are exercised on PostgreSQL only")
    # given the chain's POINTS_ISSUED account older (lower id) than 王芳's wallet, as in any chain that awarded
    # points before its first top-up; 1 point per yuan
    system_account(chain_id=chain.id, kind=AccountKind.POINTS_ISSUED)
    EarnRuleFactory(chain=chain, code="spend", points_per_yuan=Decimal(1), pending_days=0)
    family_bind(holder=wang, member=spouse, relation="spouse", consent_source="paper", consent_evidence="F-1")
    wallet_share_consent_grant(holder=wang, member=spouse, mode=WalletShareMode.STANDING, source="paper")
    wallet_topup(customer=wang, amount_fen=10_000_000, method="cash", key="topup-1")
    ServiceItemFactory(chain=chain, code="PK01", name="家庭口腔护理套餐", category="exam", list_price_fen=PRICE)
    family_package.item_code = "PK01"
    family_package.save(update_fields=["item_code"])
    earlier = package_sell(package=family_package, holder=spouse, covered=[spouse], key="sale-earlier",
                           clinic=clinic_a, payments=[{"method": "wallet", "amount_fen": PRICE}], wallet_holder=wang,
                           at=timezone.now() - dt.timedelta(days=1))

    for n in range(ROUNDS):
        # when, at once, 王芳 buys a package from her wallet, her husband buys one from it too, he pays a filling
        # from it at checkout, and the director cancels his earlier package (back into her wallet, points back)
        def writer(i, n=n):
            if i == 0:
                package_sell(package=family_package, holder=wang, covered=[wang], key=f"sale-w-{n}", clinic=clinic_a,
                             payments=[{"method": "wallet", "amount_fen": PRICE}])
            elif i == 1:
                package_sell(package=family_package, holder=spouse, covered=[spouse], key=f"sale-s-{n}",
                             clinic=clinic_a, payments=[{"method": "wallet", "amount_fen": PRICE}],
                             wallet_holder=wang)
            elif i == 2:
                checkout_pay(priced={"customer": spouse, "clinic": clinic_a, "lines": [{"item_code": "FI01"}],
                                     "wallet": {"holder": wang, "amount_fen": 60_000}},
                             payments=[], key=f"pay-{n}")
            elif n == 0:
                package_cancel(purchase=earlier, key="cancel-earlier", reason="moving", actor=director_a)
            return [i]

        outcomes, errors = writers_run(writer, 4)
        # then everything went through, one after the other: no deadlock
        assert errors == []
    # and every sale earned once, the wallet paid all of it and got the cancelled part back
    sales = PackagePurchase.objects.exclude(pk=earlier.pk)
    assert sales.count() == 2 * ROUNDS
    assert LedgerTransaction.objects.filter(idempotency_key__startswith="order:").count() == 2 * ROUNDS + 1 + ROUNDS
    bills = sum(SettlementMovement.objects.filter(role=MovementRole.WALLET).values_list("value_fen", flat=True))
    assert SettlementMovement.objects.filter(role=MovementRole.WALLET).count() == ROUNDS
    assert wallet_balance(wang).total == 10_000_000 - 2 * ROUNDS * PRICE - bills
    assert ledger_check(chain_id=chain.id) == []
