"""A package sale is a bill: it earns points as a checkout bill of the same money does, and its cancellation takes
them back in proportion to what it refunds (as a checkout refund does). A family member may pay it from the family
wallet of the card holder they are bound to, with that holder's consent as at checkout; its cancellation puts that
part back into the holder's wallet."""

import datetime as dt
import json
from unittest import mock

import pytest
from django.urls import reverse

from smileloop.clinics.services import token_create
from smileloop.core.errors import ValidationFailed
from smileloop.ledger.enums import AccountKind, EntryReason
from smileloop.ledger.models import Account, LedgerTransaction, Lot
from smileloop.ledger.selectors import ledger_check
from smileloop.loyalty.enums import PurchaseStatus, RefundRule
from smileloop.loyalty.errors import ClawbackExceedsRefund, ConsentMissing
from smileloop.loyalty.models import PackageCancellation, PackagePurchase, WalletShareUse
from smileloop.loyalty.selectors import points_available, wallet_balance
from smileloop.loyalty.services import (
    entitlement_redeem,
    package_cancel,
    package_sell,
    points_redeem,
    wallet_topup,
)
from smileloop.membership.enums import WalletShareMode
from smileloop.membership.services import family_bind, wallet_share_consent_grant
from smileloop.visits.models import Order, Refund
from smileloop.visits.tests.factories import ServiceItemFactory

pytestmark = pytest.mark.django_db

PRICE = 298_000  # ¥2,980: 2,980 points at 1 point per yuan


@pytest.fixture
def billed_package(chain, family_package):
    ServiceItemFactory(chain=chain, code="PK01", name="家庭口腔护理套餐", category="exam", list_price_fen=PRICE)
    family_package.item_code = "PK01"
    family_package.save(update_fields=["item_code"])
    return family_package


def _points(customer) -> int:
    """All the points on the account, pending or not."""
    account = Account.objects.filter(chain_id=customer.chain_id, kind=AccountKind.POINTS, customer=customer).first()
    return account.balance if account else 0


def _wallet(customer) -> int:
    balance = wallet_balance(customer)
    return balance.principal + balance.bonus


def _sell(package, holder, covered, clinic, actor, *, key="sale-1", at=None, payments=None, **kwargs):
    return package_sell(package=package, holder=holder, covered=covered, key=key, actor=actor, clinic=clinic, at=at,
                        payments=payments or [{"method": "wechat_pay", "amount_fen": 200_000},
                                              {"method": "cash", "amount_fen": 98_000}], **kwargs)


# --- points ----------------------------------------------------------------------------------------------------------


def test_a_paid_sale_earns_points_as_a_checkout_bill_with_the_tier_multiplier_and_pending_days(
        chain, rules, billed_package, wang, spouse, clinic_a, front_desk_a, family_membership, now):
    # when 王芳 (tier multiplier 1.5) buys the ¥2,980 package, ¥2,000 of it from stored value
    wallet_topup(customer=wang, amount_fen=200_000, method="cash", key="topup-1")
    purchase = _sell(billed_package, wang, [wang, spouse], clinic_a, front_desk_a, at=now,
                     payments=[{"method": "wallet", "amount_fen": 200_000}, {"method": "cash", "amount_fen": 98_000}])
    # then the bill earned 2,980 × 1.5 points, stored value included (checkout earns on it too), under its key
    earn = LedgerTransaction.objects.get(idempotency_key=f"order:{purchase.order_id}:earn")
    assert earn.reason == EntryReason.EARN
    assert _points(wang) == 4_470
    # pending for the rule's 7 days, valid 12 months
    [lot] = Lot.objects.filter(account__customer=wang, account__kind=AccountKind.POINTS)
    assert lot.available_at == now + dt.timedelta(days=7)
    assert points_available(wang) == 0
    assert ledger_check(chain_id=chain.id) == []


def test_a_replayed_sale_earns_once(rules, billed_package, wang, clinic_a, front_desk_a):
    first = _sell(billed_package, wang, [wang], clinic_a, front_desk_a)
    again = _sell(billed_package, wang, [wang], clinic_a, front_desk_a)
    assert again.pk == first.pk
    assert LedgerTransaction.objects.filter(reason=EntryReason.EARN).count() == 1
    assert _points(wang) == 2_980


def test_a_sale_without_spend_rules_or_without_a_bill_earns_nothing(chain, rules, billed_package, wang, clinic_a):
    # recorded without payments (the POS records its own order, and earns there)
    package_sell(package=billed_package, holder=wang, covered=[wang], key="pos-sale")
    assert _points(wang) == 0


def test_the_tier_is_evaluated_once_per_sale(rules, billed_package, wang, clinic_a, front_desk_a):
    from smileloop.loyalty.services import packages

    with mock.patch.object(packages, "membership_evaluate", wraps=packages.membership_evaluate) as evaluate:
        _sell(billed_package, wang, [wang], clinic_a, front_desk_a)
    assert evaluate.call_count == 1


@pytest.fixture
def earned_sale(rules, billed_package, wang, spouse, clinic_a, front_desk_a, now):
    """王芳 bought the package for herself and her husband a month ago (¥2,000 WeChat Pay, ¥980 cash): 2,980 points,
    available since (7 days pending). 8 units: 2 cleanings and 2 exams each."""
    purchase = _sell(billed_package, wang, [wang, spouse], clinic_a, front_desk_a, at=now - dt.timedelta(days=30))
    assert points_available(wang) == 2_980
    return purchase


def test_cancelling_claws_back_the_points_the_bill_earned(chain, earned_sale, wang, director_a):
    cancellation = package_cancel(purchase=earned_sale, key="cancel-1", reason="moving abroad", actor=director_a)
    assert cancellation.refund_fen == PRICE
    assert _points(wang) == 0
    clawback = LedgerTransaction.objects.get(idempotency_key=f"package_cancel:{cancellation.pk}:earn")
    assert clawback.reason == EntryReason.CLAWBACK
    assert cancellation.detail["clawback"]["points"] == 2_980 and cancellation.detail["clawback"]["shortfall_fen"] == 0
    assert ledger_check(chain_id=chain.id) == []


def test_a_pro_rata_refund_claws_back_the_same_share_of_the_points(earned_sale, wang, spouse, catalogue, director_a):
    # given 2 of the 8 units used
    entitlement_redeem(customer=wang, item=catalogue["CL01"], key="use-1")
    entitlement_redeem(customer=spouse, item=catalogue["EX01"], key="use-2")
    # when cancelled pro rata: 6/8 of the price
    cancellation = package_cancel(purchase=earned_sale, key="cancel-1", reason="clinic closes",
                                  rule=RefundRule.PRO_RATA, actor=director_a)
    assert cancellation.refund_fen == 223_500
    # then 6/8 of 2,980 points go back (2,235), the rest stays
    assert _points(wang) == 2_980 - 2_235


def test_a_smaller_refund_claws_back_proportionally_halves_up(earned_sale, wang, director_a):
    # ¥1,490.50 of ¥2,980: 1,490.5 points due, rounded half up as checkout rounds its clawback
    package_cancel(purchase=earned_sale, key="cancel-1", reason="goodwill", amount_fen=149_050, actor=director_a)
    assert _points(wang) == 2_980 - 1_491


def test_a_cancellation_refunding_nothing_takes_no_points_back(earned_sale, wang, director_a):
    package_cancel(purchase=earned_sale, key="cancel-1", reason="forfeited", amount_fen=0, actor=director_a)
    assert _points(wang) == 2_980


def test_points_already_spent_are_withheld_from_the_money_refund_as_at_checkout(chain, terms, earned_sale, wang,
                                                                                 director_a):
    # given 王芳 spent 2,000 of the 2,980 points (¥20 at 100 points a yuan)
    points_redeem(customer=wang, points=2_000, key="r-1", source="order:x")
    # when the package is cancelled in full
    cancellation = package_cancel(purchase=earned_sale, key="cancel-1", reason="moving", actor=director_a)
    # then the 980 left are taken back and the 2,000 spent are withheld from the money: ¥20
    assert _points(wang) == 0
    assert cancellation.detail["clawback"] == {
        "earn_transaction_id": cancellation.detail["clawback"]["earn_transaction_id"], "points": 980,
        "shortfall_points": 2_000, "shortfall_fen": 2_000}
    assert earned_sale.__class__.objects.get(pk=earned_sale.pk).status == PurchaseStatus.CANCELLED
    assert ledger_check(chain_id=chain.id) == []


@pytest.fixture
def wallet_paid_points_spent(rules, terms, billed_package, wang, clinic_a, front_desk_a, now):
    """A sale paid wholly from stored value (which goes back to the wallet, not as money); 2,000 of its 2,980 points
    spent since."""
    wallet_topup(customer=wang, amount_fen=PRICE, method="cash", key="topup-1")
    purchase = _sell(billed_package, wang, [wang], clinic_a, front_desk_a, at=now - dt.timedelta(days=30),
                     payments=[{"method": "wallet", "amount_fen": PRICE}])
    points_redeem(customer=wang, points=2_000, key="r-1", source="order:x")
    return purchase


def test_spent_points_worth_more_than_the_money_back_refuse_the_cancellation_and_nothing_changes(
        wallet_paid_points_spent, wang, director_a):
    purchase = wallet_paid_points_spent
    wallet_before, points_before = _wallet(wang), _points(wang)
    # when it is cancelled, the ¥20 of spent points cannot be withheld from any money
    with pytest.raises(ClawbackExceedsRefund) as refused:
        package_cancel(purchase=purchase, key="cancel-1", reason="moving", actor=director_a)
    assert refused.value.field == "amount_fen"
    # then nothing changed
    purchase.refresh_from_db()
    assert purchase.status == PurchaseStatus.ACTIVE and not PackageCancellation.objects.exists()
    assert not Refund.objects.exists()
    assert (_wallet(wang), _points(wang)) == (wallet_before, points_before)


def test_the_api_says_what_the_cancellation_clawed_back(client, terms, earned_sale, wang, director_a):
    points_redeem(customer=wang, points=2_000, key="r-1", source="order:x")
    token = token_create(username=director_a.user.username)
    response = client.post(f"/api/loyalty/packages/{earned_sale.pk}/cancel", json.dumps({"reason": "moving"}),
                           content_type="application/json",
                           headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "c-1"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["points_clawed_back"], body["clawback_withheld_fen"], body["wallet_holder_id"]) == (980, 2_000, None)


# --- the family wallet -----------------------------------------------------------------------------------------------


@pytest.fixture
def bound_spouse(wang, spouse, family_membership):
    """李强 is bound to 王芳's family card; 王芳 has ¥3,000 of stored value."""
    family_bind(holder=wang, member=spouse, relation="spouse", consent_source="paper", consent_evidence="F-1")
    wallet_topup(customer=wang, amount_fen=300_000, method="cash", key="topup-wang")
    return spouse


def test_a_family_member_pays_a_package_from_the_holders_wallet_with_her_consent(
        chain, billed_package, wang, bound_spouse, clinic_a, front_desk_a, director_a):
    # when 李强 buys the package for himself, ¥2,000 from 王芳's wallet with her consent for this use
    purchase = _sell(billed_package, bound_spouse, [bound_spouse], clinic_a, front_desk_a, wallet_holder=wang,
                     per_use_consent=True,
                     payments=[{"method": "wallet", "amount_fen": 200_000}, {"method": "cash", "amount_fen": 98_000}])
    # then her wallet paid, his has nothing taken, and the use is recorded with its consent
    assert purchase.holder_id == bound_spouse.id
    assert (_wallet(wang), _wallet(bound_spouse)) == (100_000, 0)
    use = WalletShareUse.objects.get()
    assert (use.holder_id, use.payer_id, use.amount_fen, use.mode, use.recorded_by_id) == (
        wang.id, bound_spouse.id, 200_000, "per_use", front_desk_a.id)
    # and when the package is cancelled, the stored value goes back into her wallet, recorded as hers
    cancellation = package_cancel(purchase=purchase, key="cancel-1", reason="changed his mind", actor=director_a)
    assert (_wallet(wang), _wallet(bound_spouse)) == (300_000, 0)
    assert sorted(Refund.objects.values_list("method", "amount_fen")) == [("cash", 98_000), ("wallet", 200_000)]
    assert cancellation.detail["wallet"] == {"holder_id": wang.id, "spend_transaction_id": use.transaction_id,
                                             "returned_fen": 200_000}
    assert ledger_check(chain_id=chain.id) == []


def test_a_standing_consent_needs_no_consent_for_the_sale(billed_package, wang, bound_spouse, clinic_a, front_desk_a):
    wallet_share_consent_grant(holder=wang, member=bound_spouse, mode=WalletShareMode.STANDING, source="paper")
    _sell(billed_package, bound_spouse, [bound_spouse], clinic_a, front_desk_a, wallet_holder=wang,
          payments=[{"method": "wallet", "amount_fen": PRICE}])
    assert _wallet(wang) == 2_000 and WalletShareUse.objects.get().mode == "standing"


def test_without_the_holders_consent_the_sale_is_refused_and_nothing_is_written(
        billed_package, wang, bound_spouse, clinic_a, front_desk_a):
    with pytest.raises(ConsentMissing) as refused:
        _sell(billed_package, bound_spouse, [bound_spouse], clinic_a, front_desk_a, wallet_holder=wang,
              payments=[{"method": "wallet", "amount_fen": PRICE}])
    assert refused.value.field == "wallet.per_use_consent"
    assert "consent" in refused.value.message
    assert not PackagePurchase.objects.exists() and not Order.objects.exists() and not WalletShareUse.objects.exists()
    assert _wallet(wang) == 300_000


def test_someone_not_bound_to_the_card_cannot_pay_from_it_even_with_a_consent(
        billed_package, wang, spouse, family_membership, clinic_a, front_desk_a):
    wallet_topup(customer=wang, amount_fen=300_000, method="cash", key="topup-wang")
    with pytest.raises(ConsentMissing) as refused:
        _sell(billed_package, spouse, [spouse], clinic_a, front_desk_a, wallet_holder=wang, per_use_consent=True,
              payments=[{"method": "wallet", "amount_fen": PRICE}])
    assert refused.value.field == "wallet.holder_id"
    assert not PackagePurchase.objects.exists() and _wallet(wang) == 300_000


def test_a_family_wallet_named_for_a_sale_paid_otherwise_is_refused(billed_package, wang, bound_spouse, clinic_a,
                                                                    front_desk_a):
    with pytest.raises(ValidationFailed) as refused:
        _sell(billed_package, bound_spouse, [bound_spouse], clinic_a, front_desk_a, wallet_holder=wang,
              per_use_consent=True, payments=[{"method": "cash", "amount_fen": PRICE}])
    assert [e.field for e in refused.value.errors] == ["wallet.holder_id"]
    assert not PackagePurchase.objects.exists()


def test_the_api_sells_from_the_family_wallet_with_consent_and_refuses_without(
        client, billed_package, wang, bound_spouse, front_desk_a):
    token = token_create(username=front_desk_a.user.username)
    url = f"/api/loyalty/customers/{bound_spouse.id}/packages"
    body = {"package_id": billed_package.id, "covered_ids": [bound_spouse.id],
            "payments": [{"method": "wallet", "amount_fen": PRICE}], "wallet": {"holder_id": wang.id}}

    def post(key, data):
        return client.post(url, json.dumps(data), content_type="application/json",
                           headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})

    refused = post("s-0", body)
    assert refused.status_code == 422, refused.content
    assert refused.json()["code"] == "consent_missing"
    assert [e["field"] for e in refused.json()["errors"]] == ["body.wallet.per_use_consent"]
    assert not PackagePurchase.objects.exists() and _wallet(wang) == 300_000
    sold = post("s-1", {**body, "wallet": {"holder_id": wang.id, "per_use_consent": True}})
    assert sold.status_code == 201, sold.content
    assert _wallet(wang) == 2_000 and PackagePurchase.objects.get().holder_id == bound_spouse.id


def test_the_card_form_sells_from_the_family_wallet_with_consent(client, billed_package, wang, bound_spouse,
                                                                front_desk_a):
    client.force_login(front_desk_a.user)
    url = reverse("loyalty:package", args=[bound_spouse.id])
    form = {"package": billed_package.id, "covered": [str(bound_spouse.id)], "method": "wallet", "wallet": "family"}
    # the form offers the family holder's wallet
    shown = client.get(reverse("loyalty:form", args=[bound_spouse.id, "package"]), HTTP_HX_REQUEST="true")
    assert 'value="family"' in shown.content.decode() and "王芳" in shown.content.decode()
    # without the holder's consent: refused beside the consent box, in Chinese, nothing sold
    refused = client.post(url, {**form, "key": "k-0"}, HTTP_HX_REQUEST="true", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert refused.status_code == 422
    assert "持卡人" in refused.content.decode() and not PackagePurchase.objects.exists()
    # with it
    sold = client.post(url, {**form, "key": "k-1", "per_use_consent": "on"}, HTTP_HX_REQUEST="true")
    assert sold.status_code == 200, sold.content.decode()[:2000]
    assert _wallet(wang) == 2_000 and _wallet(bound_spouse) == 0
    assert PackagePurchase.objects.get().holder_id == bound_spouse.id


def test_the_card_form_pays_from_the_patients_own_wallet(client, billed_package, wang, front_desk_a):
    wallet_topup(customer=wang, amount_fen=PRICE, method="cash", key="topup-1")
    client.force_login(front_desk_a.user)
    response = client.post(reverse("loyalty:package", args=[wang.id]),
                           {"package": billed_package.id, "covered": [str(wang.id)], "method": "wallet", "key": "k-1"},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200, response.content.decode()[:2000]
    assert _wallet(wang) == 0


def test_the_cancel_page_refuses_a_clawback_it_cannot_withhold_in_chinese(client, wallet_paid_points_spent, wang,
                                                                          director_a):
    client.force_login(director_a.user)
    url = reverse("loyalty:package_cancel", args=[wang.id, wallet_paid_points_spent.pk])
    refused = client.post(url, {"key": "k-0", "rule": "list_price", "amount_yuan": "", "reason": "moving"},
                          HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert refused.status_code == 422 and not PackageCancellation.objects.exists()
    assert "无法按此退款" in refused.content.decode()


def test_the_cancel_page_says_what_was_clawed_back_and_withheld(client, terms, earned_sale, wang, director_a):
    points_redeem(customer=wang, points=2_000, key="r-1", source="order:x")
    client.force_login(director_a.user)
    url = reverse("loyalty:package_cancel", args=[wang.id, earned_sale.pk])
    response = client.post(url, {"key": "k-1", "rule": "list_price", "amount_yuan": "", "reason": "moving"},
                           HTTP_ACCEPT_LANGUAGE="zh-hans", follow=True)
    page = response.content.decode()
    assert "已扣回该套餐账单所得积分 980 分" in page and "¥20.00" in page, page[:3000]


# --- a refund of the bill through the orders API, once the package may be refunded there -----------------------------


def _orders_api_refund(client, staff, order_id, amount_fen, key="api-refund-1", method="wechat_pay"):
    """The bill was paid ¥980 in cash and ¥2,000 by WeChat Pay: a refund names a method that has that much left, or
    none (method None: recorded as "other", within what the bill has left)."""
    token = token_create(username=staff.user.username)
    body = {"amount_fen": amount_fen, **({"method": method} if method else {})}
    return client.post(f"/api/orders/{order_id}/refunds", json.dumps(body),
                       content_type="application/json",
                       headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})


def test_a_refund_of_a_cancelled_packages_bill_through_the_orders_api_takes_back_its_share_of_the_points(
        client, chain, earned_sale, wang, director_a):
    # given the package was cancelled refunding ¥1,000 of ¥2,980 (1,000 points back)
    package_cancel(purchase=earned_sale, key="cancel-1", reason="goodwill", amount_fen=100_000, actor=director_a)
    assert _points(wang) == 1_980
    # when the director refunds another ¥980 on the bill itself
    response = _orders_api_refund(client, director_a, earned_sale.order_id, 98_000)
    assert response.status_code == 201, response.content
    # then the points follow the money: 1,980 of 2,980 refunded in all, so 1,980 points back in all
    assert _points(wang) == 1_000
    refund = Refund.objects.get(order_id=earned_sale.order_id, amount_fen=98_000)
    clawback = LedgerTransaction.objects.get(idempotency_key=f"order_refund:{refund.pk}:earn")
    assert clawback.reason == EntryReason.CLAWBACK
    # a replay takes nothing more
    again = _orders_api_refund(client, director_a, earned_sale.order_id, 98_000)
    assert again.status_code == 201 and _points(wang) == 1_000
    assert ledger_check(chain_id=chain.id) == []


def test_a_refund_on_the_bill_that_cannot_take_back_spent_points_is_refused_and_nothing_changes(
        client, terms, earned_sale, wang, director_a):
    package_cancel(purchase=earned_sale, key="cancel-1", reason="goodwill", amount_fen=0, actor=director_a)
    # 王芳 spent 2,500 of her 2,980 points since
    points_redeem(customer=wang, points=2_500, key="r-1", source="order:x")
    order_before = Order.objects.get(pk=earned_sale.order_id).refunded_fen
    response = _orders_api_refund(client, director_a, earned_sale.order_id, PRICE, method=None)
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "clawback_exceeds_refund"
    assert response.json()["message"].startswith("2500 of the points this package's bill earned were already used")
    assert Order.objects.get(pk=earned_sale.order_id).refunded_fen == order_before
    assert _points(wang) == 480
    # a refund small enough for the points she still has goes through
    assert _orders_api_refund(client, director_a, earned_sale.order_id, 40_000, key="api-refund-2").status_code == 201
    assert _points(wang) == 480 - 400
