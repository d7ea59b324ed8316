"""Cancelling a package: its entitlements end for everyone it covers, what was used stays used, and its bill is
refunded by the rule (the price less what was used at list price, or pro rata; staff may refund less), back to the
methods that paid it. The orders API refuses to refund an active package's bill on its own."""

import datetime as dt
import json

import pytest
from django.urls import reverse
from django.utils import translation

from smileloop.clinics.services import token_create
from smileloop.core.errors import Conflict, ValidationFailed
from smileloop.customers.models import Interaction
from smileloop.customers.timeline import timeline_text
from smileloop.ledger.selectors import ledger_check
from smileloop.loyalty.enums import PurchaseStatus, RefundRule
from smileloop.loyalty.errors import NotCovered, PackageNotActive
from smileloop.loyalty.models import EntitlementGrant, EntitlementUse, PackageCancellation, PackagePurchase
from smileloop.loyalty.selectors import entitlements_for_customer, entitlements_left
from smileloop.loyalty.services import (
    entitlement_redeem,
    entitlement_use_reverse,
    package_cancel,
    package_sell,
)
from smileloop.loyalty.tests.factories import order_with
from smileloop.visits.enums import OrderStatus
from smileloop.visits.models import Order, Refund
from smileloop.visits.services import order_record, refund_record
from smileloop.visits.tests.factories import ServiceItemFactory

pytestmark = pytest.mark.django_db

PRICE = 298_000


@pytest.fixture
def billed_package(chain, family_package):
    ServiceItemFactory(chain=chain, code="PK01", name="家庭口腔护理套餐", category="exam", list_price_fen=PRICE)
    family_package.item_code = "PK01"
    family_package.save(update_fields=["item_code"])
    return family_package


@pytest.fixture
def sale(billed_package, wang, spouse, clinic_a, front_desk_a, now):
    """王芳 bought the family package for herself and her husband a month ago: ¥2,000 by WeChat Pay, ¥980 cash.
    Each has 2 cleanings and 2 exams: 8 units."""
    return package_sell(package=billed_package, holder=wang, covered=[wang, spouse], key="sale-1", actor=front_desk_a,
                        clinic=clinic_a, at=now - dt.timedelta(days=30),
                        payments=[{"method": "wechat_pay", "amount_fen": 200_000},
                                  {"method": "cash", "amount_fen": 98_000}])


@pytest.fixture
def used(sale, wang, spouse, catalogue):
    """王芳's cleaning on a bill at ¥300 list price, her husband's exam (¥50 in the catalogue) with no bill line."""
    line = order_with(wang, [(catalogue["CL01"], 30_000)]).lines.get()
    return [entitlement_redeem(customer=wang, item=catalogue["CL01"], order_line=line, key="use-1"),
            entitlement_redeem(customer=spouse, item=catalogue["EX01"], key="use-2")]


def nothing_changed(sale):
    sale.refresh_from_db()
    assert sale.status == PurchaseStatus.ACTIVE
    assert not PackageCancellation.objects.exists() and not Refund.objects.exists()
    assert Order.objects.get(pk=sale.order_id).refunded_fen == 0


# --- the service --------------------------------------------------------------------------------------------------


def test_cancelling_refunds_the_price_less_what_was_used_at_list_price_to_the_methods_that_paid(
        sale, used, wang, director_a):
    # when
    cancellation = package_cancel(purchase=sale, key="cancel-1", reason="moving abroad", actor=director_a)
    # then: 298000 − (30000 + 5000), split 200000 : 98000 (largest remainder)
    assert (cancellation.rule, cancellation.used_value_fen, cancellation.computed_fen, cancellation.refund_fen) == (
        RefundRule.LIST_PRICE, 35_000, 263_000, 263_000)
    assert (cancellation.units_granted, cancellation.units_used) == (8, 2)
    assert sorted(Refund.objects.values_list("method", "amount_fen")) == [("cash", 86_490), ("wechat_pay", 176_510)]
    assert sorted(cancellation.refunds.values_list("amount_fen", flat=True)) == [86_490, 176_510]
    order = Order.objects.get(pk=sale.order_id)
    assert (order.refunded_fen, order.status) == (263_000, OrderStatus.PARTIALLY_REFUNDED)
    wang.refresh_from_db()
    assert wang.lifetime_spend_fen == PRICE - 263_000
    sale.refresh_from_db()
    assert sale.status == PurchaseStatus.CANCELLED


def test_a_cancelled_package_is_redeemed_by_no_one_and_what_was_used_stays_used(sale, used, wang, spouse, catalogue,
                                                                                director_a):
    uses_before = EntitlementUse.objects.count()
    # when
    package_cancel(purchase=sale, key="cancel-1", reason="moving abroad", actor=director_a)
    # then: nothing is left for either person, in checkout's pricing or at the desk
    for person in (wang, spouse):
        assert entitlements_left(person.pk, at=dt.datetime.now(dt.UTC)) == []
        assert entitlements_for_customer(person) == []
        with pytest.raises(NotCovered):
            entitlement_redeem(customer=person, item=catalogue["EX01"], key=f"late-{person.pk}")
    # and the history is kept as it was: the grants, the two uses, the detail of what was counted
    assert EntitlementUse.objects.count() == uses_before == 2
    assert EntitlementGrant.objects.filter(purchase=sale).count() == 4
    detail = PackageCancellation.objects.get().detail
    assert sorted(u["value_fen"] for u in detail["uses"]) == [5_000, 30_000]
    assert sorted((g["customer_id"], g["label"], g["used"]) for g in detail["grants"]) == sorted([
        (wang.id, "洁牙", 1), (wang.id, "口腔检查", 0), (spouse.id, "洁牙", 0), (spouse.id, "口腔检查", 1)])


def test_pro_rata_refunds_the_unused_share_of_the_units_at_the_packages_own_price(sale, used, director_a):
    cancellation = package_cancel(purchase=sale, key="cancel-1", reason="clinic closing", rule=RefundRule.PRO_RATA,
                                  actor=director_a)
    assert (cancellation.computed_fen, cancellation.refund_fen) == (223_500, 223_500)  # 298000 × 6/8


def test_staff_may_refund_less_by_one_method_but_never_more_than_the_rule_gives(sale, used, director_a):
    # when more than the rule gives
    with pytest.raises(ValidationFailed) as refused:
        package_cancel(purchase=sale, key="cancel-1", reason="moving", amount_fen=263_001, actor=director_a)
    # then nothing changed
    assert [e.field for e in refused.value.errors] == ["amount_fen"]
    nothing_changed(sale)
    # when less, in cash
    cancellation = package_cancel(purchase=sale, key="cancel-2", reason="goodwill agreed with the patient",
                                  amount_fen=100_000, method="cash", actor=director_a)
    # then
    assert (cancellation.computed_fen, cancellation.refund_fen) == (263_000, 100_000)
    assert list(Refund.objects.values_list("method", "amount_fen")) == [("cash", 100_000)]


def test_a_refusal_names_every_bad_field_and_changes_nothing(sale, director_a):
    with pytest.raises(ValidationFailed) as refused:
        package_cancel(purchase=sale, key="cancel-1", reason="   ", rule="half", method="gold", actor=director_a)
    assert sorted(e.field for e in refused.value.errors) == ["method", "reason", "rule"]
    nothing_changed(sale)


def test_cancelling_is_idempotent_on_its_key_and_a_second_cancellation_is_refused(sale, billed_package, wang,
                                                                                  clinic_a, director_a):
    first = package_cancel(purchase=sale, key="cancel-1", reason="moving", actor=director_a)
    again = package_cancel(purchase=sale, key="cancel-1", reason="moving", actor=director_a)
    assert again.pk == first.pk and Refund.objects.count() == 2
    with pytest.raises(PackageNotActive) as refused:
        package_cancel(purchase=sale, key="cancel-2", reason="moving", actor=director_a)
    assert refused.value.code == "package_not_active" and PackageCancellation.objects.count() == 1
    other = package_sell(package=billed_package, holder=wang, covered=[wang], key="sale-2", clinic=clinic_a,
                         payments=[{"method": "cash", "amount_fen": PRICE}])
    with pytest.raises(Conflict) as reused:
        package_cancel(purchase=other, key="cancel-1", reason="moving", actor=director_a)
    assert reused.value.code == "idempotency_key_reused"
    other.refresh_from_db()
    assert other.status == PurchaseStatus.ACTIVE


def test_the_same_key_with_another_rule_amount_or_method_is_refused_not_answered_as_done(sale, used, director_a):
    # the page submitted, Back, the amount or rule edited, submitted again with the form's key
    first = package_cancel(purchase=sale, key="cancel-1", reason="moving", actor=director_a, amount_fen=100_000)
    for changed in ({"amount_fen": 50_000}, {"rule": RefundRule.PRO_RATA}, {"method": "cash"}):
        with pytest.raises(Conflict) as reused:
            package_cancel(purchase=sale, key="cancel-1", reason="moving", actor=director_a,
                           **{"amount_fen": 100_000, **changed})
        assert reused.value.code == "idempotency_key_reused"
    assert package_cancel(purchase=sale, key="cancel-1", reason="moving", actor=director_a,
                          amount_fen=100_000).pk == first.pk
    assert sum(Refund.objects.values_list("amount_fen", flat=True)) == 100_000


def test_what_was_used_worth_more_than_the_price_refunds_nothing_never_below_zero(chain, billed_package, wang,
                                                                                  clinic_a, catalogue, director_a):
    billed_package.price_fen = 40_000
    billed_package.save(update_fields=["price_fen"])
    purchase = package_sell(package=billed_package, holder=wang, covered=[wang], key="sale-1", clinic=clinic_a,
                            payments=[{"method": "cash", "amount_fen": 40_000}])
    entitlement_redeem(customer=wang, item=catalogue["CL01"], key="use-1")
    entitlement_redeem(customer=wang, item=catalogue["CL01"], key="use-2")
    cancellation = package_cancel(purchase=purchase, key="cancel-1", reason="moving", actor=director_a)
    assert (cancellation.used_value_fen, cancellation.computed_fen, cancellation.refund_fen) == (60_000, 0, 0)
    assert not Refund.objects.exists() and Order.objects.get().refunded_fen == 0


def test_a_package_sold_without_a_bill_is_cancelled_refunding_nothing_here(family_package, wang, director_a):
    purchase = package_sell(package=family_package, holder=wang, covered=[wang], key="pos-sale")
    with pytest.raises(ValidationFailed) as refused:
        package_cancel(purchase=purchase, key="cancel-1", reason="moving", amount_fen=1000, actor=director_a)
    assert [e.field for e in refused.value.errors] == ["amount_fen"]
    cancellation = package_cancel(purchase=purchase, key="cancel-2", reason="moving", actor=director_a)
    # the rule's amount is kept as what to refund at the POS that recorded the sale
    assert (cancellation.computed_fen, cancellation.refund_fen) == (298_000, 0)
    assert not Refund.objects.exists()
    assert Interaction.objects.get(customer=wang, kind="system").text == (
        f"package {family_package.name} cancelled, sold without a bill here, nothing refunded: moving")


def test_a_package_whose_period_ended_cannot_be_cancelled(sale, director_a, now):
    PackagePurchase.objects.filter(pk=sale.pk).update(period_end=now - dt.timedelta(days=1))
    with pytest.raises(PackageNotActive) as refused:
        package_cancel(purchase=sale, key="cancel-1", reason="moving", actor=director_a)
    assert "ended with its period" in refused.value.message
    assert not PackageCancellation.objects.exists() and not Refund.objects.exists()


def test_the_holders_timeline_says_it_in_english_stored_and_in_chinese_shown(sale, used, wang, director_a):
    package_cancel(purchase=sale, key="cancel-1", reason="搬家", actor=director_a)
    entry = Interaction.objects.get(customer=wang, kind="system")
    assert entry.text == f"package {sale.package.name} cancelled, 263000 fen refunded: 搬家"
    with translation.override("zh-hans"):
        assert timeline_text(entry.text) == f"服务套餐 {sale.package.name} 已取消，退款 ¥2,630.00：搬家"


def test_a_use_given_back_after_the_cancellation_is_recorded_but_gives_nothing_spendable(sale, used, wang, catalogue,
                                                                                          director_a):
    package_cancel(purchase=sale, key="cancel-1", reason="moving", actor=director_a)
    entitlement_use_reverse(use=used[0], key="refund-visit")
    assert entitlements_for_customer(wang) == []
    with pytest.raises(NotCovered):
        entitlement_redeem(customer=wang, item=catalogue["CL01"], key="after")


def test_a_spend_tier_reached_with_the_packages_bill_comes_at_once_and_goes_with_its_refund(
        chain, billed_package, wang, clinic_a, director_a):
    from smileloop.membership.enums import MembershipStatus
    from smileloop.membership.models import Membership
    from smileloop.membership.tests.factories import PlanFactory, TierFactory

    # given a spend-based tier from ¥2,000 that may be left again
    plan = PlanFactory(chain=chain, spend_threshold_fen=200_000)
    TierFactory(plan=plan, rank=1, min_spend_fen=200_000, downgrade_allowed=True)
    # when 王芳 (no spend yet) buys the ¥2,980 package: she is a member at once, as after a checkout bill
    purchase = package_sell(package=billed_package, holder=wang, covered=[wang], key="sale-1", clinic=clinic_a,
                            payments=[{"method": "cash", "amount_fen": PRICE}])
    membership = Membership.objects.get(customer=wang)
    assert membership.status == MembershipStatus.ACTIVE
    # and when she cancels it unused, her spend is back to 0 and the tier it bought ends
    package_cancel(purchase=purchase, key="cancel-1", reason="changed her mind", actor=director_a)
    wang.refresh_from_db()
    membership.refresh_from_db()
    assert wang.lifetime_spend_fen == 0 and membership.status == MembershipStatus.CANCELLED


def test_the_ledger_still_reconciles_after_cancellations(chain, sale, used, director_a):
    package_cancel(purchase=sale, key="cancel-1", reason="moving", actor=director_a)
    assert ledger_check(chain_id=chain.id) == []


# --- paid from stored value -----------------------------------------------------------------------------------------


def _wallet(customer) -> int:
    from smileloop.loyalty.selectors import wallet_balance

    balance = wallet_balance(customer)
    return balance.principal + balance.bonus


def test_a_sale_paid_from_stored_value_takes_it_from_the_wallet_and_its_cancellation_gives_it_back(
        chain, billed_package, wang, spouse, clinic_a, front_desk_a, director_a, now):
    from smileloop.loyalty.services import wallet_topup

    wallet_topup(customer=wang, amount_fen=300_000, method="cash", key="topup-1")
    before = _wallet(wang)
    # when 王芳 pays ¥2,000 of the package from her stored value and ¥980 in cash
    sale = package_sell(package=billed_package, holder=wang, covered=[wang, spouse], key="sale-w", actor=front_desk_a,
                        clinic=clinic_a, at=now - dt.timedelta(days=1),
                        payments=[{"method": "wallet", "amount_fen": 200_000}, {"method": "cash", "amount_fen": 98_000}])
    # then the wallet paid its part (the bill's "stored value" line is real money out of her balance)
    assert _wallet(wang) == before - 200_000
    # and when the package is cancelled unused, the wallet's share goes back to the wallet, the cash share as cash
    package_cancel(purchase=sale, key="cancel-w", reason="changed her mind", actor=director_a)
    assert _wallet(wang) == before
    assert sorted(Refund.objects.values_list("method", "amount_fen")) == [("cash", 98_000), ("wallet", 200_000)]
    assert ledger_check(chain_id=chain.id) == []


def test_a_bill_paid_from_stored_value_is_never_refunded_through_the_orders_api_once_the_package_has_ended(
        client, chain, billed_package, wang, clinic_a, front_desk_a, now):
    # the orders API records a refund by a method and moves no stored value: the wallet's part would go out as cash
    from smileloop.loyalty.services import wallet_topup

    wallet_topup(customer=wang, amount_fen=300_000, method="cash", key="topup-1")
    sale = package_sell(package=billed_package, holder=wang, covered=[wang], key="sale-w", actor=front_desk_a,
                        clinic=clinic_a, at=now - dt.timedelta(days=400),
                        payments=[{"method": "wallet", "amount_fen": 200_000}, {"method": "cash", "amount_fen": 98_000}])
    PackagePurchase.objects.filter(pk=sale.pk).update(period_end=now - dt.timedelta(days=35))  # its year is over
    token = token_create(username=front_desk_a.user.username)
    response = client.post(f"/api/orders/{sale.order_id}/refunds", json.dumps({"whole": True, "method": "cash"}),
                           content_type="application/json",
                           headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "r-1"})
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "refund_elsewhere"
    assert "stored value" in response.json()["message"]
    assert not Refund.objects.exists()


def test_a_sale_from_a_wallet_without_enough_stored_value_sells_nothing(billed_package, wang, spouse, clinic_a,
                                                                       front_desk_a):
    from smileloop.loyalty.errors import InsufficientWallet

    with pytest.raises(InsufficientWallet):
        package_sell(package=billed_package, holder=wang, covered=[wang], key="sale-poor", actor=front_desk_a,
                     clinic=clinic_a, payments=[{"method": "wallet", "amount_fen": PRICE}])
    assert not PackagePurchase.objects.exists() and not Order.objects.exists()


def test_stored_value_cannot_take_back_more_than_the_bill_took_from_the_wallet(sale, director_a):
    # the fixture's sale was paid by WeChat Pay and cash
    with pytest.raises(ValidationFailed) as refused:
        package_cancel(purchase=sale, key="cancel-x", reason="moving", method="wallet", actor=director_a)
    assert [e.field for e in refused.value.errors] == ["method"]
    nothing_changed(sale)


def test_a_refund_by_a_chosen_method_still_gives_the_stored_value_part_back_to_the_wallet_not_as_money(
        chain, billed_package, bonus_rules, wang, clinic_a, director_a):
    from smileloop.loyalty.services import wallet_topup

    # given ¥5,000 topped up with a ¥400 bonus, and ¥2,000 of the package paid from it (principal and bonus in
    # proportion), ¥980 in cash
    wallet_topup(customer=wang, amount_fen=500_000, method="cash", key="topup-1")
    before = _wallet(wang)
    sale = package_sell(package=billed_package, holder=wang, covered=[wang], key="sale-w", clinic=clinic_a,
                        payments=[{"method": "wallet", "amount_fen": 200_000}, {"method": "cash", "amount_fen": 98_000}])
    # when the director cancels it unused, refunding "in cash"
    cancellation = package_cancel(purchase=sale, key="cancel-w", reason="moving", method="cash", actor=director_a)
    # then cash gives back what cash paid, and the stored value goes back to the wallet, bonus as bonus: paid out in
    # cash it would have turned the bonus share (¥148.15) into money
    assert sorted(Refund.objects.values_list("method", "amount_fen")) == [("cash", 98_000), ("wallet", 200_000)]
    assert cancellation.refund_fen == PRICE and _wallet(wang) == before
    assert ledger_check(chain_id=chain.id) == []


def test_a_chosen_method_gives_what_it_can_first_and_the_wallet_only_the_rest(chain, billed_package, wang, clinic_a,
                                                                              director_a):
    from smileloop.loyalty.services import wallet_topup

    wallet_topup(customer=wang, amount_fen=300_000, method="cash", key="topup-1")
    sale = package_sell(package=billed_package, holder=wang, covered=[wang], key="sale-w", clinic=clinic_a,
                        payments=[{"method": "wallet", "amount_fen": 200_000}, {"method": "cash", "amount_fen": 98_000}])
    package_cancel(purchase=sale, key="cancel-w", reason="goodwill", amount_fen=50_000, method="alipay",
                   actor=director_a)
    assert list(Refund.objects.values_list("method", "amount_fen")) == [("alipay", 50_000)]
    assert _wallet(wang) == 100_000


def test_stored_value_a_bill_records_but_the_wallet_never_paid_is_not_put_into_the_wallet(
        chain, billed_package, wang, clinic_a, director_a):
    # given a sale recorded before package sales took stored value from the wallet: its bill says ¥1,000.01 was paid
    # from stored value, the wallet never paid it
    sale = package_sell(package=billed_package, holder=wang, covered=[wang], key="old-sale")
    order, _ = order_record(customer=wang, clinic=clinic_a, ordered_at=sale.period_start,
                            lines=[{"item_code": "PK01", "unit_price_fen": PRICE}],
                            payments=[{"method": "wallet", "amount_fen": 100_001},
                                      {"method": "cash", "amount_fen": PRICE - 100_001}])
    PackagePurchase.objects.filter(pk=sale.pk).update(order=order)
    sale.refresh_from_db()
    # when cancelled "as paid": refused naming the method, nothing changed (it raised AttributeError, a 500)
    with pytest.raises(ValidationFailed) as refused:
        package_cancel(purchase=sale, key="cancel-1", reason="moving", actor=director_a)
    assert [e.field for e in refused.value.errors] == ["method"]
    nothing_changed(sale)
    # and by a method staff choose, that method gives it all; the wallet gets nothing it never paid
    package_cancel(purchase=sale, key="cancel-2", reason="moving", method="cash", actor=director_a)
    assert list(Refund.objects.values_list("method", "amount_fen")) == [("cash", PRICE)]
    assert _wallet(wang) == 0
    assert ledger_check(chain_id=chain.id) == []


# --- the other refund path: the orders API -------------------------------------------------------------------------


def test_refunding_an_active_packages_bill_on_its_own_is_refused_naming_the_cancellation(sale, director_a):
    order = Order.objects.get(pk=sale.order_id)
    with pytest.raises(Conflict) as refused:
        refund_record(order=order, amount_fen=1000, reason="refund")
    assert refused.value.code == "refund_elsewhere"
    assert f"POST /api/loyalty/packages/{sale.pk}/cancel" in refused.value.message
    nothing_changed(sale)


def test_the_orders_api_answers_409_while_the_package_is_in_force_and_takes_the_rest_once_it_is_cancelled(
        client, sale, used, front_desk_a, director_a):
    token = token_create(username=front_desk_a.user.username)
    url = f"/api/orders/{sale.order_id}/refunds"

    def refund(key, body=None):
        return client.post(url, json.dumps(body or {"amount_fen": 35_000, "method": "cash"}),
                           content_type="application/json",
                           headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})

    refused = refund("r-1")
    assert refused.status_code == 409, refused.content
    assert refused.json()["code"] == "refund_elsewhere"
    assert f"/api/loyalty/packages/{sale.pk}/cancel" in refused.json()["message"]
    nothing_changed(sale)
    # once cancelled, what the cancellation kept (the value used) may be refunded there, as the director's decision
    package_cancel(purchase=sale, key="cancel-1", reason="moving", actor=director_a)
    assert refund("r-2").status_code == 403  # the front desk may not (payment.refund)
    token = token_create(username=director_a.user.username)
    # by the ways it was paid: the cancellation gave back ¥864.90 of the ¥980 cash, ¥1,765.10 of the ¥2,000 WeChat Pay
    too_much = refund("r-2")
    assert too_much.status_code == 422, too_much.content
    assert "left by method: wechat_pay 23490 fen left, cash 11510 fen left" in too_much.json()["errors"][0]["message"]
    assert refund("r-3", {"amount_fen": 11_510, "method": "cash"}).status_code == 201
    assert refund("r-4", {"amount_fen": 23_490}).json()["method"] == "wechat_pay"  # the one method with some left
    assert Order.objects.get(pk=sale.order_id).status == OrderStatus.REFUNDED


# --- the API -------------------------------------------------------------------------------------------------------


def cancel_api(client, staff, purchase_id, body, key="cancel-key"):
    token = token_create(username=staff.user.username)
    return client.post(f"/api/loyalty/packages/{purchase_id}/cancel", json.dumps(body),
                       content_type="application/json",
                       headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})


def test_the_api_cancels_and_a_replay_answers_the_same_once(client, sale, used, director_a):
    first = cancel_api(client, director_a, sale.pk, {"reason": "moving"})
    again = cancel_api(client, director_a, sale.pk, {"reason": "moving"})
    assert first.status_code == 201, first.content
    body = first.json()
    assert (body["status"], body["rule"], body["refund_fen"], body["used_value_fen"], body["order_id"]) == (
        "cancelled", "list_price", 263_000, 35_000, sale.order_id)
    assert sorted((r["method"], r["amount_fen"]) for r in body["refunds"]) == [("cash", 86_490),
                                                                               ("wechat_pay", 176_510)]
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true" and again.json() == body
    assert PackageCancellation.objects.count() == 1 and Refund.objects.count() == 2


def test_the_api_takes_the_rule_an_amount_and_a_method(client, sale, used, director_a):
    response = cancel_api(client, director_a, sale.pk, {"reason": "clinic closing", "rule": "pro_rata",
                                                        "amount_fen": 200_000, "method": "alipay"})
    assert response.status_code == 201, response.content
    assert (response.json()["computed_fen"], response.json()["refund_fen"]) == (223_500, 200_000)
    assert list(Refund.objects.values_list("method", "amount_fen")) == [("alipay", 200_000)]


def test_a_front_desk_may_not_cancel_and_nothing_changes(client, sale, front_desk_a):
    response = cancel_api(client, front_desk_a, sale.pk, {"reason": "moving"})
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    nothing_changed(sale)


def test_a_purchase_outside_the_callers_patients_is_a_404_and_a_bill_of_another_clinic_a_403(
        client, billed_package, stranger_b, wang, clinic_b, director_a):
    theirs = package_sell(package=billed_package, holder=stranger_b, covered=[stranger_b], key="sale-b",
                          clinic=clinic_b, payments=[{"method": "cash", "amount_fen": PRICE}])
    billed_elsewhere = package_sell(package=billed_package, holder=wang, covered=[wang], key="sale-w",
                                    clinic=clinic_b, payments=[{"method": "cash", "amount_fen": PRICE}])
    missing = cancel_api(client, director_a, theirs.pk, {"reason": "moving"}, key="k-1")
    other_clinic = cancel_api(client, director_a, billed_elsewhere.pk, {"reason": "moving"}, key="k-2")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert other_clinic.status_code == 403
    assert not PackageCancellation.objects.exists() and not Refund.objects.exists()


def test_the_api_answers_409_for_a_cancelled_package_and_422_naming_the_field(client, sale, used, director_a):
    too_much = cancel_api(client, director_a, sale.pk, {"reason": "moving", "amount_fen": 263_001}, key="k-1")
    assert too_much.status_code == 422
    assert [e["field"] for e in too_much.json()["errors"]] == ["body.amount_fen"]
    nothing_changed(sale)
    assert cancel_api(client, director_a, sale.pk, {"reason": "moving"}, key="k-2").status_code == 201
    twice = cancel_api(client, director_a, sale.pk, {"reason": "moving"}, key="k-3")
    assert (twice.status_code, twice.json()["code"]) == (409, "package_not_active")


def test_the_cancel_endpoint_is_documented_with_its_error_answers(client, db):
    document = client.get("/api/openapi.json").json()
    operation = document["paths"]["/api/loyalty/packages/{purchase_id}/cancel"]["post"]
    assert {"201", "403", "404", "409", "422"} <= set(operation["responses"])
    assert "package_not_active" in operation["description"] and "refund_elsewhere" in operation["description"]


# --- the staff page ----------------------------------------------------------------------------------------------


def test_the_card_offers_cancel_package_to_a_director_and_not_to_the_front_desk(client, sale, wang, director_a,
                                                                               front_desk_a):
    url = reverse("loyalty:package_cancel", args=[wang.id, sale.pk])
    client.force_login(director_a.user)
    assert url in client.get(reverse("customers:detail", args=[wang.id])).content.decode()
    client.force_login(front_desk_a.user)
    page = client.get(reverse("customers:detail", args=[wang.id])).content.decode()
    assert 'data-testid="packages-held"' in page and url not in page
    assert client.get(url).status_code == 403


def test_the_confirmation_shows_what_was_used_the_refund_by_each_rule_and_how_it_was_paid(client, sale, used, wang,
                                                                                         director_a):
    client.force_login(director_a.user)
    page = client.get(reverse("loyalty:package_cancel", args=[wang.id, sale.pk]),
                      HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "洁牙" in page and "¥300.00" in page and "¥50.00" in page  # the uses at their list price
    assert "¥2,630.00" in page and "¥2,235.00" in page  # by list price, pro rata
    assert "微信支付 ¥2,000.00" in page and "现金 ¥980.00" in page
    assert "取消套餐并退款" in page


def test_the_page_refuses_more_than_the_rule_with_the_error_on_the_field_and_changes_nothing(client, sale, used, wang,
                                                                                           director_a):
    client.force_login(director_a.user)
    url = reverse("loyalty:package_cancel", args=[wang.id, sale.pk])
    response = client.post(url, {"key": "k-1", "rule": "list_price", "amount_yuan": "2630.01", "reason": "moving"},
                           HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 422
    assert "最多 ¥2,630.00" in response.content.decode()
    nothing_changed(sale)
    missing_reason = client.post(url, {"key": "k-2", "rule": "list_price", "reason": ""})
    assert missing_reason.status_code == 422
    nothing_changed(sale)


def test_the_page_cancels_and_goes_back_to_the_patient(client, sale, used, wang, director_a):
    client.force_login(director_a.user)
    url = reverse("loyalty:package_cancel", args=[wang.id, sale.pk])
    response = client.post(url, {"key": "k-1", "rule": "list_price", "amount_yuan": "", "method": "",
                                 "reason": "moving"})
    assert response.status_code == 302 and response["Location"].endswith(f"/customers/{wang.id}/#loyalty")
    cancellation = PackageCancellation.objects.get()
    assert (cancellation.refund_fen, cancellation.actor_id) == (263_000, director_a.id)
    # the page no longer offers the form
    page = client.get(url).content.decode()
    assert 'data-testid="package-not-in-force"' in page and 'data-testid="package-cancel-form"' not in page


def test_another_patients_purchase_is_a_404_on_the_page(client, sale, spouse, director_a):
    client.force_login(director_a.user)
    assert client.get(reverse("loyalty:package_cancel", args=[spouse.id, sale.pk])).status_code == 404


def test_the_card_offers_no_cancellation_of_a_bill_of_another_clinic(client, billed_package, wang, clinic_b,
                                                                     director_a):
    purchase = package_sell(package=billed_package, holder=wang, covered=[wang], key="sale-w", clinic=clinic_b,
                            payments=[{"method": "cash", "amount_fen": PRICE}])
    client.force_login(director_a.user)
    page = client.get(reverse("customers:detail", args=[wang.id])).content.decode()
    assert 'data-testid="packages-held"' in page
    assert reverse("loyalty:package_cancel", args=[wang.id, purchase.pk]) not in page
    assert client.get(reverse("loyalty:package_cancel", args=[wang.id, purchase.pk])).status_code == 403
