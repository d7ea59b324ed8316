"""Checkout's money paths under concurrent writers on PostgreSQL (8 threads behind a barrier, each on its own
connection): a bill paid with cash, wallet, points and a gift card refunded by several terminals at once, one gift
card spent by several patients at once, one pay replayed at once with the same and another body, and a holder's
refunds racing the family's bills on the holder's wallet. After each: exactly the writes the balances allowed,
balances equal to their entries and lots, and `ledger check` clean. SQLite serialises writers, so these run on
PostgreSQL only."""

import time

import pytest

from smileloop.checkout.models import RefundSettlement, Settlement
from smileloop.checkout.services import checkout_pay, checkout_price, checkout_refund
from smileloop.checkout.tests.conftest import POINTS
from smileloop.core.errors import Conflict, DomainError, ValidationFailed
from smileloop.core.testing import writers_run
from smileloop.customers.services import customer_merge
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.giftcards.models import GiftCard
from smileloop.ledger.enums import AccountKind
from smileloop.ledger.models import Account
from smileloop.ledger.services import account_for
from smileloop.ledger.tests.concurrency import books_balance, postgres_only
from smileloop.loyalty.services.wallet import wallet_topup
from smileloop.membership.enums import WalletShareMode
from smileloop.membership.services import family_bind, wallet_share_consent_grant
from smileloop.membership.tests.factories import MembershipFactory, TierFactory

pytestmark = pytest.mark.django_db(transaction=True)




def _holders(chain, customer, card) -> dict:
    return {kind: account_for(chain_id=chain.id, kind=kind, customer=customer).balance
            for kind in (AccountKind.POINTS, AccountKind.WALLET_PRINCIPAL)} | {
        "card": GiftCard.objects.get(pk=card.pk).account.balance}


def test_eight_terminals_refunding_one_bill_paid_four_ways_give_everything_back_once(
        chain, clinic_a, catalogue, alice, card, points, wallet, four_lines):
    postgres_only()
    # given a bill paid with the gift card, points, the wallet and cash
    before = _holders(chain, alice, card)
    bill = checkout_price(customer=alice, clinic=clinic_a, lines=four_lines, gift_cards=[card.code],
                          points="max", wallet={"amount_fen": "max"})
    settlement = checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}], key="pay-1")
    assert _holders(chain, alice, card) != before

    # when eight terminals refund the whole bill at once: four replay one key, four send keys of their own
    def writer(i):
        try:
            return [checkout_refund(settlement=settlement, key="refund-1" if i < 4 else f"refund-{i}").pk]
        except ValidationFailed as exc:
            return [exc.errors[0].field]

    outcomes, errors = writers_run(writer, 8)
    # then one refund gives everything back; its replays (if it was the shared key) answer it, every other request
    # finds nothing left to refund
    assert errors == []
    refund = RefundSettlement.objects.get()
    winners = 4 if refund.key == "refund-1" else 1
    assert outcomes.count(refund.pk) == winners and outcomes.count("lines") == 8 - winners
    assert refund.amount_fen == bill.total_fen
    assert _holders(chain, alice, card) == before
    books_balance(chain)


def test_two_terminals_reusing_one_refund_key_for_other_lines_record_one_refund(
        chain, clinic_a, catalogue, alice, card, points, wallet, four_lines):
    postgres_only()
    bill = checkout_price(customer=alice, clinic=clinic_a, lines=four_lines, gift_cards=[card.code],
                          points="max", wallet={"amount_fen": "max"})
    settlement = checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}], key="pay-1")
    lines = list(settlement.order.lines.order_by("id").values_list("id", flat=True))

    # when eight terminals send one refund key at once, half for the first line and half for the second
    def writer(i):
        try:
            return [checkout_refund(settlement=settlement, lines=[{"line_id": lines[i % 2], "quantity": 1}],
                                    key="refund-1").pk]
        except Conflict as exc:
            return [exc.code]

    outcomes, errors = writers_run(writer, 8)
    # then one refund of one line is recorded; the same request replays it, the other body is refused
    assert errors == []
    refund = RefundSettlement.objects.get()
    assert outcomes.count(refund.pk) == 4 and outcomes.count("idempotency_key_reused") == 4
    assert [line["line_id"] for line in refund.breakdown["lines"]] in ([lines[0]], [lines[1]])
    books_balance(chain)


def test_eight_partial_refunds_of_one_bill_at_once_give_back_each_line_once_and_land_on_zero(
        chain, clinic_a, catalogue, alice, card, points, wallet, spend_rule, four_lines):
    postgres_only()
    # given a bill of four lines paid with the gift card, points, the wallet and cash, earning points
    before = _holders(chain, alice, card)
    bill = checkout_price(customer=alice, clinic=clinic_a, lines=four_lines, gift_cards=[card.code],
                          points="max", wallet={"amount_fen": "max"})
    settlement = checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}], key="pay-1")
    lines = list(settlement.order.lines.order_by("id").values_list("id", flat=True))

    # when eight terminals each refund one line, two per line, each with a key of its own
    def writer(i):
        try:
            checkout_refund(settlement=settlement, lines=[{"line_id": lines[i % 4], "quantity": 1}], key=f"r-{i}")
            return ["refunded"]
        except ValidationFailed as exc:
            return [exc.errors[0].field]

    outcomes, errors = writers_run(writer, 8)
    # then each line is refunded once, the second refund of it finds nothing left, and the four partial refunds
    # together give back exactly everything the bill took (the points it earned clawed back)
    assert errors == []
    assert sorted(outcomes) == ["lines[0].quantity"] * 4 + ["refunded"] * 4
    assert sum(RefundSettlement.objects.values_list("amount_fen", flat=True)) == bill.total_fen
    assert _holders(chain, alice, card) == before
    books_balance(chain)


def test_eight_patients_paying_with_one_gift_card_at_once_never_overdraw_it(chain, clinic_a, catalogue, card):
    postgres_only()
    # given a 600.00 card and eight patients, each paying a 300.00 cleaning with it
    payers = [CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(8)]

    def writer(i):
        try:
            bill = checkout_price(customer=payers[i], clinic=clinic_a, lines=[{"item_code": "CL01"}],
                                  gift_cards=[card.code])
            used = sum(t.amount_fen for t in bill.tenders if t.kind == "giftcard")
            checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}], key=f"pay-{i}")
            return [used]
        except DomainError as exc:  # priced before the card was used up, paid after: refused, nothing written
            return [exc.code]

    outcomes, errors = writers_run(writer, 8)
    # then two bills took the whole card; the others were refused (or, priced once it was empty, paid in cash)
    assert errors == []
    paid = [o for o in outcomes if isinstance(o, int)]
    assert sorted(o for o in paid if o) == [30_000, 30_000]
    assert {o for o in outcomes if isinstance(o, str)} <= {"insufficient_balance", "price_changed", "invalid"}
    assert GiftCard.objects.get(pk=card.pk).account.balance == 0
    assert Settlement.objects.count() == len(paid)
    books_balance(chain)


def test_one_pay_sent_eight_times_at_once_with_two_bodies_pays_once(
        chain, clinic_a, catalogue, alice, card, points, wallet, four_lines):
    postgres_only()
    before = _holders(chain, alice, card)
    bodies = [{"customer": alice, "clinic": clinic_a, "lines": four_lines, "gift_cards": [card.code],
               "points": 1000, "wallet": {"amount_fen": 5000}},
              {"customer": alice, "clinic": clinic_a, "lines": four_lines[:1], "points": 1000,
               "wallet": {"amount_fen": 5000}}]

    cash = [checkout_price(**body).cash_fen for body in bodies]  # what each body leaves to pay in cash

    def writer(i):
        try:
            return [checkout_pay(priced=bodies[i % 2], payments=[{"method": "cash", "amount_fen": cash[i % 2]}],
                                 key="pay-1").pk]
        except Conflict as exc:
            return [exc.code]

    outcomes, errors = writers_run(writer, 8)
    # then one settlement: its body is answered with it four times, the other body refused four times
    assert errors == []
    settlement = Settlement.objects.get()
    assert outcomes.count(settlement.pk) == 4 and outcomes.count("idempotency_key_reused") == 4
    after = _holders(chain, alice, card)
    assert after[AccountKind.POINTS] == POINTS - 1000
    assert after[AccountKind.WALLET_PRINCIPAL] == before[AccountKind.WALLET_PRINCIPAL] - 5000
    books_balance(chain)


def test_a_holders_refunds_and_the_familys_bills_on_the_holders_wallet_never_deadlock(chain, clinic_a, catalogue):
    postgres_only()
    # given a family card holder with a wallet, who paid four bills from it, and a bound husband with her standing
    # consent to pay from it
    holder, husband = _family_with_wallet(chain, clinic_a, wallet_fen=1_000_000)
    rounds = 3
    paid = [[checkout_pay(priced={"customer": holder, "clinic": clinic_a, "lines": [{"item_code": "EX01"}],
                                  "wallet": {"amount_fen": 5000}}, payments=[], key=f"own-{n}-{i}")
             for i in range(4)] for n in range(rounds)]

    for n in range(rounds):
        # when her four refunds and four of his bills from her wallet are released together
        def writer(i, n=n):
            if i % 2:
                checkout_refund(settlement=paid[n][i // 2], key=f"refund-{n}-{i}")
                return ["refund"]
            checkout_pay(priced={"customer": husband, "clinic": clinic_a, "lines": [{"item_code": "EX01"}],
                                 "wallet": {"holder": holder, "amount_fen": 5000}}, payments=[], key=f"his-{n}-{i}")
            return ["pay"]

        outcomes, errors = writers_run(writer, 8)
        # then all of them went through, waiting for each other: no deadlock
        assert errors == []
        assert sorted(outcomes) == ["pay"] * 4 + ["refund"] * 4
    # and her wallet paid his twelve bills (her own were all refunded into it)
    his = Settlement.objects.filter(customer=husband)
    assert his.count() == rounds * 4 and RefundSettlement.objects.count() == rounds * 4
    wallet = account_for(chain_id=chain.id, kind=AccountKind.WALLET_PRINCIPAL, customer=holder)
    assert wallet.balance == 1_000_000 - sum(s.total_fen for s in his)
    books_balance(chain)


def _family_with_wallet(chain, clinic_a, *, wallet_fen: int):
    holder = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王芳")
    husband = CustomerFactory(chain=chain, home_clinic=clinic_a, name="李强")
    MembershipFactory(customer=holder, tier=TierFactory(plan__chain=chain, family_slots=3))
    family_bind(holder=holder, member=husband, relation="spouse", consent_source="paper", consent_evidence="F-1")
    wallet_share_consent_grant(holder=holder, member=husband, mode=WalletShareMode.STANDING, source="paper")
    wallet_topup(customer=holder, amount_fen=wallet_fen, method="cash", key=f"topup-{holder.pk}")
    return holder, husband


def test_a_customers_own_bills_racing_their_merge_land_on_the_survivor_or_are_refused(
        chain, clinic_a, catalogue, admin_scope):
    postgres_only()
    # given a duplicate record with 1,000.00 stored value and the record it is merged into, with 500.00
    duplicate = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王芳")
    survivor = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王芳")
    wallet_topup(customer=duplicate, amount_fen=100_000, method="cash", key="topup-d")
    wallet_topup(customer=survivor, amount_fen=50_000, method="cash", key="topup-s")

    # when staff merge the duplicate while seven of its bills are paid from its wallet at other terminals
    def writer(i):
        if i == 0:
            time.sleep(0.05)  # while its bills are being paid
            customer_merge(scope=admin_scope, survivor=survivor, merged=duplicate, reason="duplicate")
            return ["merged"]
        try:
            checkout_pay(priced={"customer": duplicate, "clinic": clinic_a, "lines": [{"item_code": "EX01"}],
                                 "wallet": {"amount_fen": 5000}}, payments=[], key=f"pay-{i}")
            return ["paid"]
        except DomainError as exc:  # after the merge the duplicate is a tombstone: its bill is refused
            return [exc.code]

    outcomes, errors = writers_run(writer, 8)
    # then the merge went through, each bill either before it (its bill moved to the survivor) or refused after it
    assert errors == [] and "merged" in outcomes
    paid = outcomes.count("paid")
    assert Settlement.objects.filter(customer=survivor).count() == paid == Settlement.objects.count()
    wallet = account_for(chain_id=chain.id, kind=AccountKind.WALLET_PRINCIPAL, customer=survivor)
    assert wallet.balance == 150_000 - paid * 5000
    assert not Account.objects.filter(customer=duplicate, closed_at__isnull=True, balance__gt=0).exists()
    books_balance(chain)


def test_a_family_members_bills_on_a_holders_wallet_racing_the_holders_merge_never_deadlock(
        chain, clinic_a, catalogue, admin_scope):
    postgres_only()
    # given a holder with 1,000.00 whose husband pays from her wallet, and the record she is merged into
    holder, husband = _family_with_wallet(chain, clinic_a, wallet_fen=100_000)
    survivor = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王芳")
    wallet_topup(customer=survivor, amount_fen=50_000, method="cash", key="topup-s")

    # when staff merge her record while seven of his bills are paid from her wallet
    def writer(i):
        if i == 0:
            time.sleep(0.05)  # while his bills are being paid
            customer_merge(scope=admin_scope, survivor=survivor, merged=holder, reason="duplicate")
            return ["merged"]
        try:
            checkout_pay(priced={"customer": husband, "clinic": clinic_a, "lines": [{"item_code": "EX01"}],
                                 "wallet": {"holder": holder, "amount_fen": "max"}}, payments=[], key=f"his-{i}")
            return ["paid"]
        except DomainError as exc:  # after the merge her record is a tombstone: its wallet is closed
            return [exc.code]

    outcomes, errors = writers_run(writer, 8)
    # then the merge and every bill before it went through, no deadlock; her value is all on the survivor
    assert errors == [] and "merged" in outcomes
    paid = Settlement.objects.filter(customer=husband)
    assert paid.count() == outcomes.count("paid")
    wallet = account_for(chain_id=chain.id, kind=AccountKind.WALLET_PRINCIPAL, customer=survivor)
    assert wallet.balance == 150_000 - sum(s.total_fen for s in paid)
    assert not Account.objects.filter(customer=holder, balance__gt=0).exists()
    books_balance(chain)
