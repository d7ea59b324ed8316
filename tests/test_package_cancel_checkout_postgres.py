"""A package cancelled while a covered family member pays a visit at checkout from the holder's wallet, on PostgreSQL:
the checkout locks the wallet's accounts, then the purchase (redeeming an entitlement of it); the cancellation must
take them in the same order (it refunds the package's stored-value part to that wallet), or the two deadlock. Each
bill either went through before the cancellation (its use counted) or is refused; never a deadlock."""

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from smileloop.checkout.services import checkout_pay
from smileloop.core.errors import DomainError
from smileloop.core.testing import writers_run
from smileloop.customers.enums import Relation, Stage
from smileloop.customers.services import household_member_add
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.ledger.selectors import ledger_check
from smileloop.loyalty.models import EntitlementUse, PackageCancellation
from smileloop.loyalty.services import package_cancel, package_sell, wallet_topup
from smileloop.loyalty.tests.factories import PackageEntitlementFactory, PackageFactory
from smileloop.membership.enums import WalletShareMode
from smileloop.membership.services import family_bind, wallet_share_consent_grant
from smileloop.membership.tests.factories import MembershipFactory, PlanFactory, TierFactory
from smileloop.visits.tests.factories import ServiceItemFactory

pytestmark = pytest.mark.django_db(transaction=True)

PRICE = 298_000
ROUNDS = 6  # the deadlock needs the two to interleave; before the fix about one round in three met it


def test_a_cancellation_and_family_bills_paid_from_the_holders_wallet_never_deadlock(chain, clinic_a, catalogue,
                                                                                   director_a):
    if connection.vendor != "postgresql":
        pytest.skip("row locks and concurrent writers are exercised on PostgreSQL only")
    # given 王芳 with a family card, her husband bound to it and allowed to pay from her wallet, and ¥10,000 in it
    wang, spouse = (CustomerFactory(chain=chain, home_clinic=clinic_a, name=name, stage=Stage.TREATED)
                    for name in ("王芳", "李强"))
    household_member_add(head=wang, member=spouse, relation=Relation.SPOUSE)
    tier = TierFactory(plan=PlanFactory(chain=chain, name="家庭会员计划"), rank=1, name="家庭会员", family_slots=3)
    MembershipFactory(customer=wang, tier=tier, started_at=timezone.now() - dt.timedelta(days=30))
    family_bind(holder=wang, member=spouse, relation="spouse", consent_source="paper", consent_evidence="F-1")
    wallet_share_consent_grant(holder=wang, member=spouse, mode=WalletShareMode.STANDING, source="paper")
    wallet_topup(customer=wang, amount_fen=2_000_000, method="cash", key="topup-1")
    ServiceItemFactory(chain=chain, code="PK01", name="家庭口腔护理套餐", category="exam", list_price_fen=PRICE)
    package = PackageFactory(chain=chain, name="家庭口腔护理套餐", validity_months=12, price_fen=PRICE,
                             item_code="PK01")
    PackageEntitlementFactory(package=package, label="洁牙", category="cleaning", quantity=2)

    for n in range(ROUNDS):
        # a package for both, paid from her wallet
        sale = package_sell(package=package, holder=wang, covered=[wang, spouse], key=f"sale-{n}", clinic=clinic_a,
                            payments=[{"method": "wallet", "amount_fen": PRICE}])

        # when the director cancels it while her husband pays a cleaning (from the package) and a filling (from
        # her wallet)
        def writer(i, n=n, sale=sale):
            if i == 0:
                package_cancel(purchase=sale, key=f"cancel-{n}", reason="moving", actor=director_a)
                return ["cancelled"]
            try:
                checkout_pay(priced={"customer": spouse, "clinic": clinic_a,
                                     "lines": [{"item_code": "CL01"}, {"item_code": "FI01"}],
                                     "wallet": {"holder": wang, "amount_fen": 60_000}},
                             payments=[], key=f"pay-{n}-{i}")
                return ["paid"]
            except DomainError:  # priced with the cleaning from the package, which was cancelled meanwhile
                return ["refused"]

        outcomes, errors = writers_run(writer, 3)
        # then no deadlock: each bill was paid before the cancellation (its cleaning counted as used) or refused
        assert errors == []
        assert outcomes.count("cancelled") == 1
        cancellation = PackageCancellation.objects.get(purchase=sale)
        assert cancellation.units_used == EntitlementUse.objects.filter(grant__purchase=sale).count()
    assert ledger_check(chain_id=chain.id) == []
