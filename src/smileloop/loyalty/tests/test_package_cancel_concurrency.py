"""A cancellation and redemptions of the same package at the same moment, on PostgreSQL: each redemption either
happened before the cancellation (and is counted as used in its refund) or is refused; none slips in after it."""

import datetime as dt

import pytest
from django.db import connection

from smileloop.core.testing import writers_run
from smileloop.loyalty.enums import PurchaseStatus
from smileloop.loyalty.errors import NotCovered
from smileloop.loyalty.models import EntitlementUse, PackageCancellation, PackagePurchase
from smileloop.loyalty.services import entitlement_redeem, package_cancel, package_sell
from smileloop.visits.models import Order
from smileloop.visits.tests.factories import ServiceItemFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_redemptions_racing_a_cancellation_are_either_counted_in_its_refund_or_refused(
        chain, clinic_a, wang, spouse, family_package, catalogue, director_a, now):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers with row locks are exercised on PostgreSQL")
    # given a billed family package: 王芳 and her husband each have 2 cleanings and 2 exams
    ServiceItemFactory(chain=chain, code="PK01", name="家庭口腔护理套餐", category="exam", list_price_fen=298_000)
    family_package.item_code = "PK01"
    family_package.save(update_fields=["item_code"])
    purchase = package_sell(package=family_package, holder=wang, covered=[wang, spouse], key="sale-1",
                            clinic=clinic_a, at=now - dt.timedelta(days=30),
                            payments=[{"method": "cash", "amount_fen": 298_000}])
    people, items = [wang, spouse], [catalogue["CL01"], catalogue["EX01"]]

    def writer(i):
        if i == 0:
            package_cancel(purchase=purchase, key="cancel-1", reason="moving", actor=director_a)
            return ["cancelled"]
        try:
            entitlement_redeem(customer=people[i % 2], item=items[(i // 2) % 2], key=f"use-{i}")
            return ["used"]
        except NotCovered:
            return ["refused"]

    # when one director cancels while seven redemptions (which all would fit) run at once
    outcomes, errors = writers_run(writer, 8)
    # then no deadlock, every redemption that succeeded is counted in the cancellation, and none came after it
    assert errors == []
    cancellation = PackageCancellation.objects.get()
    used = outcomes.count("used")
    assert outcomes.count("cancelled") == 1 and used + outcomes.count("refused") == 7
    assert EntitlementUse.objects.count() == used == cancellation.units_used
    values = {"CL01": 30_000, "EX01": 5_000}
    counted = sum(values[u.item.code] for u in EntitlementUse.objects.select_related("item"))
    assert cancellation.used_value_fen == counted
    assert cancellation.refund_fen == 298_000 - counted == Order.objects.get().refunded_fen
    assert PackagePurchase.objects.get().status == PurchaseStatus.CANCELLED


def test_one_cancellation_sent_four_times_at_once_refunds_once(chain, clinic_a, wang, family_package, director_a):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers with row locks are exercised on PostgreSQL")
    ServiceItemFactory(chain=chain, code="PK01", name="家庭口腔护理套餐", category="exam", list_price_fen=298_000)
    family_package.item_code = "PK01"
    family_package.save(update_fields=["item_code"])
    purchase = package_sell(package=family_package, holder=wang, covered=[wang], key="sale-1", clinic=clinic_a,
                            payments=[{"method": "cash", "amount_fen": 298_000}])

    # when a double click and a retry send the same cancellation at once
    def writer(i):
        return [package_cancel(purchase=purchase, key="cancel-1", reason="moving", actor=director_a).id]

    ids, errors = writers_run(writer, 4)
    # then one cancellation, one refund of the whole price, and each sender answered with it
    assert errors == []
    assert len(set(ids)) == 1 and PackageCancellation.objects.count() == 1
    assert Order.objects.get().refunded_fen == 298_000


def test_one_sale_paid_from_stored_value_sent_three_times_at_once_sells_and_takes_the_money_once(
        chain, clinic_a, wang, family_package):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers with row locks are exercised on PostgreSQL")
    from smileloop.loyalty.selectors import wallet_balance
    from smileloop.loyalty.services import wallet_topup

    ServiceItemFactory(chain=chain, code="PK01", name="家庭口腔护理套餐", category="exam", list_price_fen=298_000)
    family_package.item_code = "PK01"
    family_package.save(update_fields=["item_code"])
    wallet_topup(customer=wang, amount_fen=500_000, method="cash", key="topup-1")

    # when a double click on the loyalty card sends the same sale (one key) at once
    def writer(i):
        return [package_sell(package=family_package, holder=wang, covered=[wang], key="web:sale-1", clinic=clinic_a,
                             payments=[{"method": "wallet", "amount_fen": 298_000}]).id]

    ids, errors = writers_run(writer, 3)
    # then every sender is answered with the one sale (the late ones clashed on the unique key: a 500)
    assert errors == []
    assert len(ids) == 3 and len(set(ids)) == 1
    assert PackagePurchase.objects.count() == 1 and Order.objects.count() == 1
    assert wallet_balance(wang).total == 500_000 - 298_000
