"""An erased record (PIPL, customers.privacy) keeps the anonymous history of its care and money, but nobody comes back
as it: a top-up, an award, a gift, a sale, a package use or a transfer for it is a 409 `erased` that writes nothing
(a returning patient is a new record). The staff pages already offered none of these; the API and services did."""

import json

import pytest

from smileloop.clinics.services import token_create
from smileloop.core.errors import Conflict, ValidationFailed
from smileloop.customers.privacy import customer_erase
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.ledger.models import LedgerTransaction
from smileloop.loyalty.models import EntitlementUse, GiftExchange, PackagePurchase, Topup
from smileloop.loyalty.services import (
    entitlement_redeem,
    package_sell,
    points_award,
    wallet_topup,
    wallet_transfer,
)
from smileloop.loyalty.tests.factories import GiftFactory

pytestmark = pytest.mark.django_db

REASON = "本人书面申请 2026-12-01"


@pytest.fixture
def token_a(front_desk_a):
    return token_create(username=front_desk_a.user.username)


def post(client, url, body, *, token, key):
    return client.post(url, data=json.dumps(body), content_type="application/json",
                       headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})


def erase(scope, customer):
    customer_erase(scope=scope, customer=customer, actor=None, reason=REASON, forfeit=True)
    customer.refresh_from_db()
    return customer


def written():
    return (Topup.objects.count(), LedgerTransaction.objects.count(), GiftExchange.objects.count(),
            PackagePurchase.objects.count(), EntitlementUse.objects.count())


def test_the_api_refuses_a_top_up_an_award_a_gift_and_a_sale_for_an_erased_record(
        client, token_a, wang, rules, family_package, director_scope, chain):
    # given 王芳 erased at her request
    erase(director_scope, wang)
    gift = GiftFactory(chain=chain, points_price=10, stock=5)
    before = written()
    base = f"/api/loyalty/customers/{wang.id}"
    # when
    answers = [
        post(client, f"{base}/wallet/topups", {"amount_fen": 10000, "method": "cash"}, token=token_a, key="t1"),
        post(client, f"{base}/points/award", {"rule_code": "review"}, token=token_a, key="t2"),
        post(client, f"{base}/gift-exchanges", {"gift_id": gift.id, "quantity": 1}, token=token_a, key="t3"),
        post(client, f"{base}/packages", {"package_id": family_package.id, "covered_ids": [wang.id]},
             token=token_a, key="t4"),
    ]
    # then each is a 409 naming the record, and nothing was written
    for answer in answers:
        assert answer.status_code == 409, answer.content
        assert answer.json()["code"] == "erased"
        assert answer.json()["errors"][0]["field"] == "path.customer_id"
    assert written() == before
    gift.refresh_from_db()
    assert gift.stock == 5


def test_an_award_sent_again_after_the_erasure_answers_as_the_first_time(wang, rules, director_scope):
    # given a review award made before the erasure
    first = points_award(customer=wang, rule_code="review", key="review-1")
    erase(director_scope, wang)
    # when the POS retries it
    again = points_award(customer=wang, rule_code="review", key="review-1")
    # then it is the same transaction, and a new award is refused
    assert again.pk == first.pk
    with pytest.raises(Conflict) as refused:
        points_award(customer=wang, rule_code="review", key="review-2")
    assert (refused.value.code, refused.value.field) == ("erased", "customer_id")


def test_a_top_up_sent_again_after_the_erasure_is_the_first_top_up(wang, director_scope):
    first = wallet_topup(customer=wang, amount_fen=5000, method="cash", key="top-1")
    # the erasure is refused while the wallet holds money; she gives it up (forfeit)
    erase(director_scope, wang)
    assert wallet_topup(customer=wang, amount_fen=5000, method="cash", key="top-1").pk == first.pk
    with pytest.raises(Conflict):
        wallet_topup(customer=wang, amount_fen=5000, method="cash", key="top-2")


def test_a_package_cannot_cover_an_erased_relative(wang, child, family_package, director_scope):
    # given her child's record erased (the child's own request, through a guardian)
    erase(director_scope, child)
    # when a package is sold to 王芳 covering herself and the child
    with pytest.raises(ValidationFailed) as refused:
        package_sell(package=family_package, holder=wang, covered=[wang, child], key="sale-1")
    # then the child's place in the list is named, and nothing is sold
    assert [e.field for e in refused.value.errors] == ["covered[1]"]
    assert "erased" in refused.value.errors[0].message
    assert PackagePurchase.objects.count() == 0


def test_an_erased_relative_cannot_use_a_package_bought_before(wang, child, family_package, catalogue,
                                                                director_scope):
    # given a package covering 王芳 and her child, then the child's record erased
    package_sell(package=family_package, holder=wang, covered=[wang, child], key="sale-1")
    erase(director_scope, child)
    # when a cleaning is redeemed for the erased record
    with pytest.raises(Conflict) as refused:
        entitlement_redeem(customer=child, item=catalogue["CL01"], key="use-1")
    # then it is refused and the grant is untouched; the holder still may
    assert refused.value.code == "erased"
    assert EntitlementUse.objects.count() == 0
    entitlement_redeem(customer=wang, item=catalogue["CL01"], key="use-2")
    assert EntitlementUse.objects.count() == 1


def test_a_transfer_to_an_erased_record_is_refused_before_anything_moves(wang, director_scope, chain, clinic_a):
    other = CustomerFactory(chain=chain, home_clinic=clinic_a, name="陈静")
    wallet_topup(customer=wang, amount_fen=5000, method="cash", key="top-1")
    erase(director_scope, other)
    before = LedgerTransaction.objects.count()
    with pytest.raises(Conflict) as refused:
        wallet_transfer(from_customer=wang, to_customer=other, amount_fen=1000, key="move-1", actor=None)
    assert (refused.value.code, refused.value.field) == ("erased", "to_customer_id")
    assert LedgerTransaction.objects.count() == before
