"""A package sold at the desk is paid there: its price is a bill (one line of the package's catalogue item, with
the payment) at the patient's clinic, so it is in revenue and the holder's spend like any bill. A refused
payment sells nothing."""

import json

import pytest
from django.urls import reverse

from smileloop.clinics.services import token_create
from smileloop.core.errors import ValidationFailed
from smileloop.loyalty.models import EntitlementGrant, PackagePurchase
from smileloop.loyalty.services import package_save, package_sell
from smileloop.visits.models import Order, Payment
from smileloop.visits.tests.factories import ServiceItemFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def billed_package(chain, family_package):
    ServiceItemFactory(chain=chain, code="PK01", name="家庭口腔护理套餐", category="exam", list_price_fen=298_000)
    family_package.item_code = "PK01"
    family_package.save(update_fields=["item_code"])
    return family_package


def test_a_paid_sale_is_a_bill_of_the_packages_item_with_its_payment(billed_package, wang, spouse, clinic_a,
                                                                      front_desk_a):
    purchase = package_sell(package=billed_package, holder=wang, covered=[wang, spouse], key="sale-1",
                            actor=front_desk_a, clinic=clinic_a,
                            payments=[{"method": "wechat_pay", "amount_fen": 200_000},
                                      {"method": "cash", "amount_fen": 98_000}])
    order = Order.objects.get()
    assert purchase.order_id == order.id
    assert (order.customer_id, order.clinic_id, order.amount_fen, order.cashier_id) == (wang.id, clinic_a.id, 298_000,
                                                                                        front_desk_a.id)
    [line] = order.lines.all()
    assert (line.item.code, line.quantity, line.amount_fen) == ("PK01", 1, 298_000)
    assert sorted(Payment.objects.values_list("method", "amount_fen")) == [("cash", 98_000), ("wechat_pay", 200_000)]
    wang.refresh_from_db()
    assert wang.lifetime_spend_fen == 298_000
    # A retry of the sale is the same sale and the same bill.
    again = package_sell(package=billed_package, holder=wang, covered=[wang, spouse], key="sale-1",
                         actor=front_desk_a, clinic=clinic_a, payments=[{"method": "cash", "amount_fen": 298_000}])
    assert again.pk == purchase.pk and Order.objects.count() == 1


def test_a_payment_that_does_not_add_up_sells_nothing(billed_package, wang, clinic_a):
    with pytest.raises(ValidationFailed) as refused:
        package_sell(package=billed_package, holder=wang, covered=[wang], key="sale-1", clinic=clinic_a,
                     payments=[{"method": "cash", "amount_fen": 100_000}])
    assert [e.field for e in refused.value.errors] == ["payments"]
    assert not PackagePurchase.objects.exists() and not EntitlementGrant.objects.exists()
    assert not Order.objects.exists()


@pytest.mark.parametrize("method", ["points", "voucher", "gift_card"])
def test_a_sale_paid_by_points_a_voucher_or_a_gift_card_is_refused_it_would_take_nothing_from_them(
        billed_package, wang, clinic_a, method):
    # a checkout bill takes these from their accounts; a sale records payments only, so it would claim value
    with pytest.raises(ValidationFailed) as refused:
        package_sell(package=billed_package, holder=wang, covered=[wang], key="sale-1", clinic=clinic_a,
                     payments=[{"method": "cash", "amount_fen": 98_000}, {"method": method, "amount_fen": 200_000}])
    assert [(e.field, e.value) for e in refused.value.errors] == [("payments[1].method", method)]
    assert not PackagePurchase.objects.exists() and not Order.objects.exists()


def test_a_package_without_a_catalogue_item_cannot_take_payment(family_package, wang, clinic_a):
    with pytest.raises(ValidationFailed) as refused:
        package_sell(package=family_package, holder=wang, covered=[wang], key="sale-1", clinic=clinic_a,
                     payments=[{"method": "cash", "amount_fen": 298_000}])
    assert [e.field for e in refused.value.errors] == ["package_id"]
    assert "billed as" in refused.value.errors[0].message
    assert not PackagePurchase.objects.exists()


def test_the_billed_as_item_must_be_in_the_catalogue(chain, family_package):
    with pytest.raises(ValidationFailed) as refused:
        package_save(chain=chain, package=family_package, data={"item_code": "NOPE", "price_fen": -1})
    assert {e.field for e in refused.value.errors} == {"item_code", "price_fen"}
    family_package.refresh_from_db()
    assert family_package.item_code == "" and family_package.price_fen == 298_000


def test_the_card_page_takes_the_payment_method_and_bills_the_patients_clinic(client, front_desk_a, wang, clinic_a,
                                                                              billed_package):
    client.force_login(front_desk_a.user)
    response = client.post(reverse("loyalty:package", args=[wang.id]),
                           {"package": billed_package.id, "covered": [str(wang.id)], "method": "alipay",
                            "key": "k-1"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200, response.content.decode()[:2000]
    order = PackagePurchase.objects.get().order
    assert (order.clinic_id, order.amount_fen) == (clinic_a.id, 298_000)
    assert list(order.payments.values_list("method", "amount_fen")) == [("alipay", 298_000)]


def test_the_api_records_the_bill_when_payments_are_given(client, front_desk_a, wang, billed_package):
    token = token_create(username=front_desk_a.user.username)
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "sale-1"}
    url = f"/api/loyalty/customers/{wang.id}/packages"
    bad = client.post(url, json.dumps({"package_id": billed_package.id, "covered_ids": [wang.id],
                                       "payments": [{"method": "cash", "amount_fen": 1}]}),
                      content_type="application/json", headers={**headers, "Idempotency-Key": "sale-0"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.payments"
    response = client.post(url, json.dumps({"package_id": billed_package.id, "covered_ids": [wang.id],
                                            "payments": [{"method": "cash", "amount_fen": 298_000}]}),
                           content_type="application/json", headers=headers)
    assert response.status_code == 201, response.content
    order = Order.objects.get()
    assert response.json()["order_id"] == order.id and order.clinic_id == wang.home_clinic_id


def test_the_card_page_says_in_chinese_what_a_package_without_an_item_needs(client, front_desk_a, wang,
                                                                            family_package):
    client.force_login(front_desk_a.user)
    response = client.post(reverse("loyalty:package", args=[wang.id]),
                           {"package": family_package.id, "covered": [str(wang.id)], "method": "cash", "key": "k-1"},
                           HTTP_HX_REQUEST="true", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 422
    assert "未设置计费项目" in response.content.decode()
    assert not PackagePurchase.objects.exists()
