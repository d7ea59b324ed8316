"""Checkouts of one family at the same moment on PostgreSQL: the holder and three bound members pay bills
from the holder's shared wallet, half of them with a single-use voucher, the others with a friends-and-family
card. Every bill locks its accounts once, in id order (vouchers included), so no two bills wait on each other
in a cycle: no deadlock, no double spend, and the ledger reconciles."""

import datetime as dt

import pytest
from django.db import connection

from smileloop.checkout.models import RefundSettlement
from smileloop.checkout.services import checkout_pay, checkout_price, checkout_refund
from smileloop.core.testing import writers_run
from smileloop.customers.enums import Relation
from smileloop.customers.services import household_member_add
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.giftcards.models import GiftCard
from smileloop.giftcards.services import friend_card_issue, voucher_issue
from smileloop.giftcards.tests.factories import ProgrammeFactory
from smileloop.ledger.selectors import ledger_check
from smileloop.ledger.services import InsufficientBalance
from smileloop.loyalty.services import wallet_balance
from smileloop.loyalty.services.wallet import wallet_topup
from smileloop.membership.enums import WalletShareMode
from smileloop.membership.services import family_bind, wallet_share_consent_grant
from smileloop.visits.models import Order

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 3


def test_family_checkouts_with_vouchers_and_cards_never_deadlock_or_overdraw(
        chain, clinic_a, catalogue, alice, cleaning_voucher):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent checkouts with row locks are exercised on PostgreSQL")
    # given the holder (alice, a member) with 500.00 yuan shared with three bound relatives
    members = []
    for i, relation in enumerate([Relation.SPOUSE, Relation.CHILD, Relation.PARENT]):
        person = CustomerFactory(chain=chain, name=f"家人{i}", home_clinic=clinic_a,
                                 birthday=dt.date(1970 + i * 20, 1, 1))
        household_member_add(head=alice, member=person, relation=relation)
        family_bind(holder=alice, member=person, relation=relation, consent_source="paper", consent_evidence=f"F-{i}")
        wallet_share_consent_grant(holder=alice, member=person, mode=WalletShareMode.STANDING, source="paper")
        members.append(person)
    wallet_topup(customer=alice, amount_fen=50_000, method="cash", key="topup")
    programme = ProgrammeFactory(chain=chain, code="friend-card", name="亲友储值卡", face_value_fen=10_000,
                                 limit_per_period=100)
    giver = CustomerFactory(chain=chain, name="赠卡人", home_clinic=clinic_a)
    payers = [alice, *members] * 2  # eight terminals
    # each writer's means for each round: a voucher (even writers) or a friend card (odd writers)
    means = {}
    for i, payer in enumerate(payers):
        for r in range(ROUNDS):
            if i % 2 == 0:
                means[i, r] = {"vouchers": [voucher_issue(campaign=cleaning_voucher, customer=payer,
                                                          key=f"v-{i}-{r}").code]}
            else:
                means[i, r] = {"gift_cards": [friend_card_issue(member=giver, programme=programme, trigger="test",
                                                                key=f"c-{i}-{r}").code]}
    def writer(i):
        outcomes = []
        for r in range(ROUNDS):
            # a cleaning (covered by the voucher or card) and a filling paid from the shared wallet
            lines = [{"item_code": "CL01"}, {"item_code": "FI01"}]
            try:
                bill = checkout_price(customer=payers[i], clinic=clinic_a, lines=lines,
                                      wallet={"holder": alice, "amount_fen": 6_000}, **means[i, r])
                checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}],
                             key=f"pay-{i}-{r}")
                outcomes.append("paid")
            except InsufficientBalance:  # at pricing or, under a race, at pay
                outcomes.append("refused")
        return outcomes

    # when eight terminals try 24 bills, each taking 60.00 from the 500.00 wallet
    outcomes, errors = writers_run(writer, len(payers))
    # then no error (a deadlock would be one), exactly eight bills fit the wallet, 20.00 is left
    assert errors == []
    assert outcomes.count("paid") == 8 and outcomes.count("refused") == 16
    assert Order.objects.filter(customer__in=payers).count() == 8
    assert wallet_balance(alice).total == 2_000
    assert ledger_check(chain_id=chain.id) == []


def test_a_refund_submitted_several_times_at_once_refunds_once_and_answers_each_with_it(
        chain, clinic_a, catalogue, alice, card):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent refunds with row locks are exercised on PostgreSQL")
    # given a paid bill (the friend card pays the cleaning, cash the filling)
    bill = checkout_price(customer=alice, clinic=clinic_a, lines=[{"item_code": "CL01"}, {"item_code": "FI01"}],
                          gift_cards=[card.code])
    settlement = checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}], key="pay-1")

    def writer(i):
        return [checkout_refund(settlement=settlement, key="web:1:refund-form", reason="double click").id]

    # when one refund form is submitted by four clicks at the same moment
    outcomes, errors = writers_run(writer, 4)
    # then every click gets the one refund ("nothing left to refund" for the late ones would be a lie)
    assert errors == []
    assert len(set(outcomes)) == 1 and RefundSettlement.objects.filter(settlement=settlement).count() == 1
    assert Order.objects.get(pk=settlement.order_id).refunded_fen == bill.total_fen
    assert GiftCard.objects.get(pk=card.pk).account.balance == 60_000
    assert ledger_check(chain_id=chain.id) == []
