"""A service package still in force is money the clinic owes its holder (its cancellation refunds the bill): the
holder's erasure (customers.privacy) is refused until staff cancel the package or the patient gives it up."""

import datetime as dt

import pytest
from django.conf import settings
from django.urls import reverse

from smileloop.core.models import AuditEvent
from smileloop.customers.models import Customer
from smileloop.customers.privacy import ObligationsOwed, customer_erase, erase_obligations
from smileloop.loyalty.enums import PurchaseStatus
from smileloop.loyalty.models import PackagePurchase
from smileloop.loyalty.services import entitlement_redeem, package_cancel, package_sell
from smileloop.visits.tests.factories import ServiceItemFactory

pytestmark = pytest.mark.django_db

PRICE = 298_000
REASON = "本人书面申请 2026-12-01"


@pytest.fixture
def sale(chain, clinic_a, family_package, wang, now):
    """王芳 bought the family package for herself a month ago, ¥2,980 by WeChat Pay: a bill at clinic A."""
    ServiceItemFactory(chain=chain, code="PK01", name="家庭口腔护理套餐", category="exam", list_price_fen=PRICE)
    family_package.item_code = "PK01"
    family_package.save(update_fields=["item_code"])
    return package_sell(package=family_package, holder=wang, covered=[wang], key="sale-1", clinic=clinic_a,
                        at=now - dt.timedelta(days=30), payments=[{"method": "wechat_pay", "amount_fen": PRICE}])


def _erase(scope, customer, **kwargs):
    return customer_erase(scope=scope, customer=customer, actor=None, reason=REASON, **kwargs)


def test_a_package_in_force_refuses_its_holders_erasure_for_what_its_cancellation_would_refund(
        sale, wang, catalogue, director_scope):
    # given a cleaning used (¥300 at list price) of the ¥2,980 package
    entitlement_redeem(customer=wang, item=catalogue["CL01"], key="use-1")
    # when the holder's erasure is asked for without a forfeit
    with pytest.raises(ObligationsOwed) as refused:
        _erase(director_scope, wang)
    # then it is refused for the list-price refund, naming the package, and nothing changed
    [owed] = refused.value.obligations
    assert (owed.code, owed.amount_fen) == ("package", PRICE - catalogue["CL01"].list_price_fen)
    assert f"purchase {sale.pk}" in owed.message and "家庭口腔护理套餐" in owed.message
    assert refused.value.code == "erase_obligations"
    assert Customer.objects.get(pk=wang.pk).erased_at is None
    assert not AuditEvent.objects.filter(action="customer.erase").exists()


def test_a_cancelled_package_owes_nothing_and_the_erasure_goes_ahead(sale, wang, director_a, director_scope):
    # given staff cancelled and refunded the package first
    package_cancel(purchase=sale, key="cancel-1", reason="注销前退款", actor=director_a)
    # then nothing is owed, and the erasure needs no forfeit
    assert erase_obligations(wang) == []
    _erase(director_scope, wang)
    assert Customer.objects.get(pk=wang.pk).erased_at is not None


def test_a_package_whose_refund_is_given_up_on_purpose_is_erased_with_the_forfeit_audited(
        sale, wang, director_scope):
    _erase(director_scope, wang, forfeit=True)
    assert Customer.objects.get(pk=wang.pk).erased_at is not None
    assert AuditEvent.objects.get(action="customer.erase").detail["forfeited"] == [
        {"code": "package", "amount_fen": PRICE}]
    assert PackagePurchase.objects.get(pk=sale.pk).status == PurchaseStatus.ACTIVE  # kept, like a forfeited wallet


def test_a_package_used_up_or_ended_owes_nothing(sale, wang, now):
    # given the package's period is over
    PackagePurchase.objects.filter(pk=sale.pk).update(period_end=now - dt.timedelta(days=1))
    # then
    assert erase_obligations(wang) == []


def test_the_erase_page_says_the_package_must_be_cancelled_first_and_erases_nothing(
        client, sale, wang, director_a):
    # given the director on the holder's 360 page, in Chinese
    client.force_login(director_a.user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    url = reverse("customers:erase", args=[wang.pk])
    # when they erase without ticking the forfeit box
    response = client.post(url, {"erase-reason": REASON, "erase-confirm": "王芳"}, HTTP_HX_REQUEST="true")
    # then refused in place, naming the package's refund and what to do
    assert response.status_code == 422
    assert "诊所仍欠该患者：生效中服务套餐的应退款（请先取消套餐） ¥2980.00。" in response.text
    assert Customer.objects.get(pk=wang.pk).erased_at is None
    # when they tick it: erased
    response = client.post(url, {"erase-reason": REASON, "erase-confirm": "王芳", "erase-forfeit": "on"})
    assert response.status_code == 302
    assert Customer.objects.get(pk=wang.pk).erased_at is not None


def test_an_erased_customers_wallet_card_offers_no_top_up_award_gift_or_package(client, front_desk_a, admin_scope,
                                                                                   wang, spouse):
    live = spouse
    _erase(admin_scope, wang, forfeit=True)
    client.force_login(front_desk_a.user)
    erased = client.get(reverse("customers:detail", args=[wang.id])).text
    shown = client.get(reverse("customers:detail", args=[live.id])).text
    for name in ("topup", "award", "gift", "package"):
        assert reverse("loyalty:form", args=[live.id, name]) in shown, name  # a live record's card offers them
        assert reverse("loyalty:form", args=[wang.id, name]) not in erased, name
