"""The bill of a service package through the orders API once the package is no longer in force (its period over,
or cancelled): money going back for a package is a director's decision, so only `payment.refund` (clinic directors,
chain admins) refunds it there; other roles that may refund orders get a 403 and nothing is written. (While the
package is in force, or when stored value paid part of it, the orders API refuses it to everyone: loyalty's tests.)"""

import datetime as dt

import pytest
from django.utils import timezone

from smileloop.clinics.selectors import scope_for_user
from smileloop.clinics.services import token_create
from smileloop.core.errors import Conflict, PermissionDenied, ValidationFailed
from smileloop.core.models import IdempotencyRecord
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.loyalty.models import PackagePurchase
from smileloop.loyalty.services import package_cancel, package_sell
from smileloop.loyalty.tests.factories import PackageEntitlementFactory, PackageFactory
from smileloop.visits.models import Order, Refund
from smileloop.visits.services import order_record, refund_record
from smileloop.visits.tests.factories import ServiceItemFactory
from smileloop.visits.tests.test_api import post

pytestmark = pytest.mark.django_db

PRICE = 298_000


@pytest.fixture
def holder(chain, clinic_a):
    return CustomerFactory(chain=chain, home_clinic=clinic_a, name="王芳")


@pytest.fixture
def package(chain):
    ServiceItemFactory(chain=chain, code="PK01", name="家庭口腔护理套餐", category="exam", list_price_fen=PRICE)
    package = PackageFactory(chain=chain, name="家庭口腔护理套餐", price_fen=PRICE, item_code="PK01")
    PackageEntitlementFactory(package=package, label="洁牙", category="cleaning", quantity=2)
    return package


def sold(package, holder, clinic, front_desk, *, key="sale-1"):
    """A year's package paid in cash and WeChat Pay 400 days ago."""
    return package_sell(package=package, holder=holder, covered=[holder], key=key, actor=front_desk, clinic=clinic,
                        at=timezone.now() - dt.timedelta(days=400),
                        payments=[{"method": "wechat_pay", "amount_fen": 200_000},
                                  {"method": "cash", "amount_fen": 98_000}])


@pytest.fixture
def ended(package, holder, clinic_a, front_desk_a):
    """The package's year is over (the nightly job has not marked it yet: still `active`, past its end)."""
    sale = sold(package, holder, clinic_a, front_desk_a)
    PackagePurchase.objects.filter(pk=sale.pk).update(period_end=timezone.now() - dt.timedelta(days=35))
    return sale


def nothing_refunded(sale, holder, spend):
    assert not Refund.objects.exists()
    assert Order.objects.get(pk=sale.order_id).refunded_fen == 0
    holder.refresh_from_db()
    assert holder.lifetime_spend_fen == spend


@pytest.mark.parametrize("body", [{"whole": True}, {"amount_fen": 50_000}, {"lines": "LINE"}])
def test_a_front_desk_may_not_refund_an_ended_packages_bill_and_nothing_is_written(client, ended, holder,
                                                                                   front_desk_a, body):
    # given the bill of a package whose year is over, paid in money (not stored value)
    order = Order.objects.get(pk=ended.order_id)
    if body.get("lines") == "LINE":
        body = {"lines": [{"line_id": order.lines.get().id, "amount_fen": 50_000}]}
    holder.refresh_from_db()
    spend = holder.lifetime_spend_fen
    token = token_create(username=front_desk_a.user.username)
    # when the front desk, who may refund ordinary orders, refunds it through the orders API
    response = post(client, f"/api/orders/{order.id}/refunds", {**body, "method": "cash", "reason": "moving"},
                    token=token, key="refund-1")
    # then it is a 403 saying whose decision it is, and nothing is written (not even the key's answer)
    assert response.status_code == 403, response.content
    data = response.json()
    assert data["code"] == "forbidden"
    assert f"order {order.id} is the bill of package purchase {ended.pk}" in data["message"]
    assert "'payment.refund'" in data["message"] and "clinic directors, chain admins" in data["message"]
    nothing_refunded(ended, holder, spend)
    assert not IdempotencyRecord.objects.filter(key="refund-1").exists()


@pytest.mark.parametrize("role", ["director_a", "chain_admin"])
def test_a_director_or_chain_admin_refunds_an_ended_packages_bill(client, request, ended, holder, role):
    staff = request.getfixturevalue(role)
    token = token_create(username=staff.user.username)
    response = post(client, f"/api/orders/{ended.order_id}/refunds",
                    {"amount_fen": 50_000, "method": "cash", "reason": "goodwill"}, token=token, key="refund-1")
    assert response.status_code == 201, response.content
    assert (response.json()["amount_fen"], response.json()["order_status"]) == (50_000, "partially_refunded")
    assert Order.objects.get(pk=ended.order_id).refunded_fen == 50_000


def test_what_a_cancellation_kept_is_refunded_only_with_payment_refund(client, package, holder, clinic_a,
                                                                       front_desk_a, director_a):
    # given a package cancelled by the director: the cancellation refunded its bill by the rule (here all of it but
    # ¥100.00, staff's choice), the rest stays the clinic's
    sale = sold(package, holder, clinic_a, front_desk_a)
    PackagePurchase.objects.filter(pk=sale.pk).update(period_end=timezone.now() + dt.timedelta(days=10))
    package_cancel(purchase=sale, key="cancel-1", reason="moving", amount_fen=PRICE - 10_000, method="cash",
                   actor=director_a)
    url = f"/api/orders/{sale.order_id}/refunds"
    # when the front desk refunds the rest through the orders API, then it is refused and nothing moves
    refused = post(client, url, {"whole": True, "method": "cash"}, token=token_create(username=front_desk_a.user.username),
                   key="refund-1")
    assert refused.status_code == 403, refused.content
    assert Order.objects.get(pk=sale.order_id).refunded_fen == PRICE - 10_000
    # and the director may (to WeChat Pay: the cancellation gave back more in cash than the bill's cash part)
    done = post(client, url, {"whole": True, "method": "wechat_pay"},
                token=token_create(username=director_a.user.username), key="refund-1")
    assert done.status_code == 201, done.content
    assert Order.objects.get(pk=sale.order_id).refunded_fen == PRICE


def test_a_package_in_force_is_still_refunded_by_cancelling_it_whoever_asks(client, package, holder, clinic_a,
                                                                             front_desk_a, director_a):
    sale = sold(package, holder, clinic_a, front_desk_a)
    PackagePurchase.objects.filter(pk=sale.pk).update(period_end=timezone.now() + dt.timedelta(days=10))
    response = post(client, f"/api/orders/{sale.order_id}/refunds", {"whole": True, "method": "cash"},
                    token=token_create(username=director_a.user.username), key="refund-1")
    assert (response.status_code, response.json()["code"]) == (409, "refund_elsewhere")
    assert not Refund.objects.exists()


def test_an_ordinary_bill_is_still_refunded_by_the_front_desk(client, holder, clinic_a, catalogue, front_desk_a,
                                                             ended):
    order, _ = order_record(customer=holder, clinic=clinic_a, ordered_at=timezone.now(),
                            lines=[{"item_code": "CL01"}], payments=[{"method": "cash", "amount_fen": 30000}])
    response = post(client, f"/api/orders/{order.id}/refunds", {"whole": True},
                    token=token_create(username=front_desk_a.user.username), key="refund-1")
    assert response.status_code == 201, response.content


def test_the_service_asks_the_callers_scope_and_internal_callers_decide_for_themselves(ended, front_desk_a,
                                                                                       director_a):
    order = Order.objects.get(pk=ended.order_id)
    with pytest.raises(PermissionDenied) as refused:
        refund_record(order=order, amount_fen=1000, scope=scope_for_user(front_desk_a.user))
    assert refused.value.field == "order_id"
    assert not Refund.objects.exists()
    refund, created = refund_record(order=order, amount_fen=1000, scope=scope_for_user(director_a.user))
    # (naming no method, over the two that paid the bill in proportion: one Refund each)
    assert created and list(Refund.objects.filter(order=order).order_by("id").values_list("method", "amount_fen")) == [
        ("wechat_pay", 671), ("cash", 329)]


# --- a refund that names nothing -----------------------------------------------------------------------------------


def test_an_empty_list_of_lines_is_refused_not_read_as_the_whole_bill(holder, clinic_a, catalogue):
    order, _ = order_record(customer=holder, clinic=clinic_a, ordered_at=timezone.now(),
                            lines=[{"item_code": "CL01"}], payments=[{"method": "cash", "amount_fen": 30000}])
    with pytest.raises(ValidationFailed) as refused:
        refund_record(order=order, lines=[])
    assert [e.field for e in refused.value.errors] == ["lines"]
    assert not Refund.objects.exists() and Order.objects.get(pk=order.pk).refunded_fen == 0


def test_an_owner_claim_comes_before_the_permission(ended, front_desk_a):
    # the wallet-paid and in-force cases are 409 for everyone: the claim is checked first (unchanged)
    PackagePurchase.objects.filter(pk=ended.pk).update(period_end=timezone.now() + dt.timedelta(days=10))
    with pytest.raises(Conflict):
        refund_record(order=Order.objects.get(pk=ended.order_id), amount_fen=1000,
                      scope=scope_for_user(front_desk_a.user))
