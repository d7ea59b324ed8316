"""Points and stored value under concurrent writers on PostgreSQL (threads behind a barrier, each on its own
connection): one request sent several times at once (a double click, a retry) is recorded once and every copy is
answered with it; the same key for another request is refused; several writers never overdraw. After each, the
books reconcile (`ledger check`). SQLite serialises writers, so these run on PostgreSQL only."""

import json
import time

import pytest
from django.test import Client

from smileloop.clinics.services import token_create
from smileloop.core.errors import Conflict, DomainError
from smileloop.core.testing import writers_run
from smileloop.customers.services import customer_merge
from smileloop.ledger.enums import EntryReason
from smileloop.ledger.models import Account, LedgerTransaction
from smileloop.ledger.tests.concurrency import books_balance, postgres_only
from smileloop.loyalty.errors import InsufficientPoints, InsufficientWallet, PrincipalSpent
from smileloop.loyalty.models import GiftExchange, Topup, TopupRefund, WalletShareUse
from smileloop.loyalty.selectors import points_available
from smileloop.loyalty.services import (
    gift_exchange,
    points_award,
    points_redeem,
    wallet_balance,
    wallet_spend,
    wallet_topup,
    wallet_topup_refund,
    wallet_transfer,
)
from smileloop.loyalty.tests.conftest import patient
from smileloop.loyalty.tests.factories import GiftFactory
from smileloop.membership.enums import WalletShareMode
from smileloop.membership.services import family_bind, wallet_share_consent_grant

pytestmark = pytest.mark.django_db(transaction=True)




@pytest.fixture
def sharing(wang, spouse, family_membership):
    """王芳's husband is bound to her card with her standing consent to use her wallet; she holds 1,000.00."""
    family_bind(holder=wang, member=spouse, relation="spouse", consent_source="paper", consent_evidence="F-1")
    wallet_share_consent_grant(holder=wang, member=spouse, mode=WalletShareMode.STANDING, source="paper")
    wallet_topup(customer=wang, amount_fen=100_000, method="cash", key="topup-1")
    return spouse


def test_one_gift_exchange_sent_four_times_at_once_takes_stock_and_points_once(chain, wang, rules, now):
    postgres_only()
    # given 1,000 points and a toothbrush of 400 points, 3 in stock
    points_award(customer=wang, rule_code="referral", key="r1", at=now)
    toothbrush = GiftFactory(chain=chain, name="电动牙刷", points_price=400, stock=3)

    # when the exchange is sent four times at once (a double click, a retry)
    def writer(i):
        return [gift_exchange(customer=wang, gift=toothbrush, quantity=1, key="x1").pk]

    outcomes, errors = writers_run(writer, 4)
    # then it is recorded once and every copy is answered with it (no IntegrityError)
    assert errors == []
    exchange = GiftExchange.objects.get()
    assert outcomes == [exchange.pk] * 4
    toothbrush.refresh_from_db()
    assert (toothbrush.stock, points_available(wang)) == (2, 600)
    books_balance(chain)


def test_eight_gift_exchanges_at_once_never_overdraw_the_points(chain, wang, rules, now):
    postgres_only()
    points_award(customer=wang, rule_code="referral", key="r1", at=now)
    toothbrush = GiftFactory(chain=chain, name="电动牙刷", points_price=400, stock=10)

    # when eight exchanges of 400 points each run at once on 1,000 points
    def writer(i):
        try:
            gift_exchange(customer=wang, gift=toothbrush, quantity=1, key=f"x{i}")
            return ["ok"]
        except InsufficientPoints:
            return ["refused"]

    outcomes, errors = writers_run(writer, 8)
    # then exactly two fit; the refused ones gave their stock back
    assert errors == []
    assert sorted(outcomes) == ["ok"] * 2 + ["refused"] * 6
    toothbrush.refresh_from_db()
    assert (toothbrush.stock, points_available(wang), GiftExchange.objects.count()) == (8, 200, 2)
    books_balance(chain)


def test_eight_terminals_redeeming_points_at_once_never_overdraw_them(chain, wang, rules, now):
    postgres_only()
    points_award(customer=wang, rule_code="referral", key="r1", at=now)

    # when eight terminals try 24 deductions of 150 points on 1,000
    def writer(i):
        outcomes = []
        for n in range(3):
            try:
                points_redeem(customer=wang, points=150, key=f"bill:{i}:{n}", source=f"order:{i}:{n}")
                outcomes.append("ok")
            except InsufficientPoints:
                outcomes.append("refused")
        return outcomes

    outcomes, errors = writers_run(writer, 8)
    # then exactly six fit and 100 are left
    assert errors == []
    assert outcomes.count("ok") == 6 and outcomes.count("refused") == 18
    assert points_available(wang) == 100
    assert LedgerTransaction.objects.filter(reason=EntryReason.REDEEM).count() == 6
    books_balance(chain)


def test_one_family_spend_sent_four_times_at_once_is_spent_and_recorded_once(chain, wang, sharing):
    postgres_only()

    # when her husband's spend from her wallet is sent four times at once
    def writer(i):
        return [tx.pk for tx in wallet_spend(payer=sharing, holder=wang, amount_fen=30_000, key="his-spend",
                                             source="order:1")]

    outcomes, errors = writers_run(writer, 4)
    # then the wallet pays once, the use is recorded once, and every copy is answered with that spend
    assert errors == []
    tx = LedgerTransaction.objects.get(idempotency_key="wallet_spend:his-spend")
    assert outcomes == [tx.pk] * 4
    assert WalletShareUse.objects.filter(transaction=tx).count() == 1
    assert wallet_balance(wang).total == 70_000
    books_balance(chain)


def test_one_family_transfer_sent_four_times_at_once_moves_the_money_once(chain, wang, sharing):
    postgres_only()

    # when her transfer to her husband is sent four times at once, and once more with another amount
    def writer(i):
        try:
            return [[tx.pk for tx in wallet_transfer(from_customer=wang, to_customer=sharing,
                                                     amount_fen=40_000 if i < 4 else 10_000, key="to-him",
                                                     actor=None)]]
        except Conflict as exc:
            return [exc.code]

    outcomes, errors = writers_run(writer, 5)
    # then the money moves once, recorded once; the copies are answered with it, another amount is refused
    assert errors == []
    moved = [o for o in outcomes if isinstance(o, list)]
    refused = [o for o in outcomes if not isinstance(o, list)]
    first = WalletShareUse.objects.get()
    # whichever came first: the four copies of 400.00 answered and the 100.00 refused, or the other way round
    assert (len(moved), len(refused)) == ((4, 1) if first.amount_fen == 40_000 else (1, 4))
    assert len({tuple(o) for o in moved}) == 1 and set(refused) == {"idempotency_key_reused"}
    assert wallet_balance(sharing).total == first.amount_fen
    assert wallet_balance(wang).total == 100_000 - first.amount_fen
    books_balance(chain)


def test_top_up_refunds_racing_spends_never_refund_spent_principal(chain, wang, family_membership):
    postgres_only()
    topup = wallet_topup(customer=wang, amount_fen=100_000, method="cash", key="topup-1")

    # when four spends of 300.00 and four refunds of the whole top-up run at once
    def writer(i):
        try:
            if i % 2:
                wallet_topup_refund(topup=topup, key=f"refund-{i}")
                return ["refund"]
            wallet_spend(payer=wang, amount_fen=30_000, key=f"spend-{i}", source=f"order:{i}")
            return ["spend"]
        except (InsufficientWallet, PrincipalSpent) as exc:
            return [exc.code]
        except Conflict as exc:
            return [exc.code]

    outcomes, errors = writers_run(writer, 8)
    # then either a refund went first (every spend then refused) or spends did (every refund then refused), and the
    # wallet holds exactly what neither took
    assert errors == []
    refunds = TopupRefund.objects.count()
    spends = outcomes.count("spend")
    assert refunds <= 1 and (refunds == 0 or spends == 0)
    assert spends * 30_000 + refunds * 100_000 <= 100_000
    assert wallet_balance(wang).total == 100_000 - spends * 30_000 - refunds * 100_000
    books_balance(chain)


def test_one_api_top_up_key_sent_at_once_with_two_bodies_tops_up_once(chain, wang, chain_admin):
    postgres_only()
    token = token_create(username=chain_admin.user.username)

    # when eight clients send one Idempotency-Key at once, half of them for 500.00 and half for 300.00
    def send(i):
        body = {"amount_fen": 50_000 if i % 2 else 30_000, "method": "cash"}
        response = Client().post(f"/api/loyalty/customers/{wang.pk}/wallet/topups", data=json.dumps(body),
                                 content_type="application/json",
                                 headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "one-topup"})
        return [(body["amount_fen"], response.status_code, response.json().get("code"))]

    outcomes, errors = writers_run(send, 8)
    # then one top-up: the requests with its body are answered 201 with it, the others 409 naming the key
    assert errors == []
    topup = Topup.objects.get()
    assert sorted(outcomes) == sorted([(topup.amount_fen, 201, None)] * 4 + [
        (50_000 + 30_000 - topup.amount_fen, 409, "idempotency_key_reused")] * 4)
    assert wallet_balance(wang).total == topup.amount_fen
    books_balance(chain)


def test_points_awarded_while_the_customer_is_merged_land_on_the_survivor_or_are_refused(
        chain, clinic_a, wang, rules, now, admin_scope):
    postgres_only()
    # given a duplicate record of 王芳 with 1,000 points, merged into hers, which has 1,000 too
    duplicate = patient(chain, clinic_a, "王芳")
    points_award(customer=duplicate, rule_code="referral", key="r-d", at=now)
    points_award(customer=wang, rule_code="referral", key="r-w", at=now)

    # when staff merge the duplicate while seven reviews are awarded to it at other terminals
    def writer(i):
        if i == 0:
            time.sleep(0.02)
            customer_merge(scope=admin_scope, survivor=wang, merged=duplicate, reason="duplicate")
            return ["merged"]
        try:
            points_award(customer=duplicate, rule_code="review", key=f"review-{i}")
            return ["awarded"]
        except DomainError as exc:
            return [exc.code]

    outcomes, errors = writers_run(writer, 8)
    # then every point awarded is on the survivor; nothing is left on the duplicate's closed accounts
    assert errors == [] and "merged" in outcomes
    awarded = LedgerTransaction.objects.filter(idempotency_key__startswith="award:review-").count()
    assert awarded == outcomes.count("awarded")
    assert points_available(wang) == 2000 + 50 * awarded
    assert not Account.objects.filter(customer=duplicate, balance__gt=0).exists()
    books_balance(chain)
