from fractions import Fraction

import pytest

from smileloop.checkout.errors import ConsentMissing, PaymentsMismatch
from smileloop.checkout.models import RefundSettlement, Settlement, SettlementMovement
from smileloop.checkout.services import checkout_pay, checkout_price, checkout_refund
from smileloop.checkout.tests.conftest import POINTS
from smileloop.core.errors import Conflict, ValidationFailed
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.giftcards.errors import AlreadyUsed, ExcludedItem, Expired, OtherCustomers
from smileloop.giftcards.models import GiftCard
from smileloop.giftcards.services import giftcards_expire, voucher_issue
from smileloop.ledger.enums import AccountKind
from smileloop.ledger.models import LedgerTransaction
from smileloop.ledger.selectors import ledger_check
from smileloop.ledger.services import account_for
from smileloop.loyalty.errors import InsufficientPoints
from smileloop.loyalty.services.points import points_redeem, points_redeem_quote
from smileloop.loyalty.services.wallet import wallet_topup
from smileloop.visits.models import Order, Payment


def balances(chain, customer, card):
    card_account = GiftCard.objects.get(pk=card.pk).account
    return {kind: account_for(chain_id=chain.id, kind=kind, customer=customer).balance
            for kind in (AccountKind.POINTS, AccountKind.WALLET_PRINCIPAL)} | {"card": card_account.balance}


def price_everything(alice, clinic_a, card, lines):
    return checkout_price(customer=alice, clinic=clinic_a, lines=lines, gift_cards=[card.code.lower()],
                          points="max", wallet={"amount_fen": "max"})


def test_price_applies_discount_card_points_wallet_in_order_with_exact_amounts(
        chain, clinic_a, catalogue, alice, card, points, wallet, four_lines):
    # when
    bill = price_everything(alice, clinic_a, card, four_lines)
    # then the discount skips the toothbrush and the special-price cleaning
    assert [(line.code, line.discount_fen, line.net_fen) for line in bill.lines] == [
        ("CL01", 3600, 26400), ("OC01", 0, 39900), ("CL99", 0, 990), ("FI01", 7200, 52800)]
    assert bill.lines[0].steps[0].label == "家庭会员, 12% off"
    quote_points, quote_fen = points_redeem_quote(customer=alice, bill_fen=120090)
    assert quote_fen == 12009  # 10% of the bill after discounts
    assert [(t.kind, t.amount_fen, t.points) for t in bill.tenders] == [
        ("giftcard", 60000, 0), ("points", 12009, quote_points), ("wallet", 10000, 0), ("cash", 38081, 0)]
    assert bill.tenders[0].per_line == [20000, 0, 0, 40000]
    assert bill.tenders[0].label == f"亲友储值卡 {card.code} 600.00 → 600.00 used, 0.00 left"
    assert bill.total_fen == sum(t.amount_fen for t in bill.tenders) == 120090
    assert LedgerTransaction.objects.count() == 3  # nothing written: card issue, points seed, top-up


def test_pay_records_the_order_and_every_movement_in_one_go(
        chain, clinic_a, catalogue, alice, card, points, wallet, spend_rule, four_lines, front_desk_a):
    # given
    bill = price_everything(alice, clinic_a, card, four_lines)
    # when
    settlement = checkout_pay(priced=bill, payments=[{"method": "wechat_pay", "amount_fen": 38081}], key="pay-1",
                              actor=front_desk_a)
    # then
    order = settlement.order
    assert (order.amount_fen, order.list_total_fen, order.discount_fen) == (120090, 130890, 10800)
    assert sorted(Payment.objects.filter(order=order).values_list("method", "amount_fen")) == [
        ("gift_card", 60000), ("points", 12009), ("wallet", 10000), ("wechat_pay", 38081)]
    roles = sorted(settlement.movements.values_list("role", "value_fen"))
    assert roles == [("earn", 0), ("giftcard", 60000), ("points", 12009), ("wallet", 10000)]
    earned = settlement.movements.get(role="earn").points
    # 1 point per yuan of what each line paid in money and stored value, rounded down per line
    assert earned == sum((line.paid.get("cash", 0) + line.paid.get("wallet", 0)) // 100 for line in bill.lines) == 479
    after = balances(chain, alice, card)
    assert after == {AccountKind.POINTS: points - bill.tenders[1].points + earned, AccountKind.WALLET_PRINCIPAL: 0,
                     "card": 0}
    assert GiftCard.objects.get(pk=card.pk).status == "exhausted"
    assert ledger_check(chain_id=chain.id) == []


def test_pay_is_idempotent_on_its_key(chain, clinic_a, catalogue, alice, card, four_lines):
    bill = checkout_price(customer=alice, clinic=clinic_a, lines=four_lines, gift_cards=[card.code])
    first = checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}], key="pay-1")
    again = checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}], key="pay-1")
    assert again == first and Order.objects.count() == 1 and Settlement.objects.count() == 1
    assert ledger_check(chain_id=chain.id) == []


def test_payments_that_do_not_cover_the_cash_part_change_nothing(chain, clinic_a, catalogue, alice, card, four_lines):
    bill = checkout_price(customer=alice, clinic=clinic_a, lines=four_lines, gift_cards=[card.code])
    with pytest.raises(PaymentsMismatch):
        checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": 1}], key="pay-1")
    assert Order.objects.count() == 0 and LedgerTransaction.objects.count() == 1


def test_whole_refund_reverses_everything_exactly(
        chain, clinic_a, catalogue, alice, card, points, wallet, spend_rule, four_lines):
    # given
    before = balances(chain, alice, card)
    bill = price_everything(alice, clinic_a, card, four_lines)
    settlement = checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": 38081}], key="pay-1")
    # when
    refund = checkout_refund(settlement=settlement, key="refund-1", reason="treatment cancelled")
    # then
    assert balances(chain, alice, card) == before
    assert sorted((t["kind"], t["amount_fen"]) for t in refund.breakdown["tenders"] if t["kind"] != "earn") == [
        ("cash", 38081), ("giftcard", 60000), ("points", 12009), ("wallet", 10000)]
    assert refund.amount_fen == 120090 and Order.objects.get().status == "refunded"
    assert GiftCard.objects.get(pk=card.pk).status == "active"
    assert ledger_check(chain_id=chain.id) == []


def test_two_partial_refunds_then_the_rest_reverse_everything_exactly(
        chain, clinic_a, catalogue, alice, card, points, wallet, spend_rule, four_lines):
    # given
    before = balances(chain, alice, card)
    bill = price_everything(alice, clinic_a, card, four_lines)
    settlement = checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": 38081}], key="pay-1")
    lines = list(settlement.order.lines.order_by("id"))
    # when
    first = checkout_refund(settlement=settlement, lines=[{"line_id": lines[0].id, "amount_fen": 10001}], key="r1")
    second = checkout_refund(settlement=settlement, lines=[{"line_id": lines[3].id, "quantity": 1}], key="r2")
    rest = checkout_refund(settlement=settlement, key="r3")
    # then every refund's tenders add up to its amount, and the three give back everything
    for r in (first, second, rest):
        assert sum(t["amount_fen"] for t in r.breakdown["tenders"]) == r.amount_fen
    assert (first.amount_fen, second.amount_fen, rest.amount_fen) == (10001, 52800, 120090 - 10001 - 52800)
    assert balances(chain, alice, card) == before
    assert sum(m.refunded_fen for m in SettlementMovement.objects.all()) + Settlement.objects.get().cash_refunded_fen \
        == 120090
    assert ledger_check(chain_id=chain.id) == []


def test_refund_replay_returns_the_first_refund(chain, clinic_a, catalogue, alice, card, four_lines):
    bill = checkout_price(customer=alice, clinic=clinic_a, lines=four_lines, gift_cards=[card.code])
    settlement = checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}], key="pay-1")
    first = checkout_refund(settlement=settlement, key="r1")
    assert checkout_refund(settlement=settlement, key="r1") == first and RefundSettlement.objects.count() == 1
    # an empty list of lines is not the whole bill: the key sent with it is another request
    with pytest.raises(Conflict):
        checkout_refund(settlement=settlement, lines=[], key="r1")


def test_family_wallet_without_the_holders_consent_is_refused_and_nothing_changes(
        chain, clinic_a, catalogue, alice):
    # given the holder's wallet and a relative without consent
    relative = CustomerFactory(chain=chain, name="王小明", home_clinic=clinic_a)
    wallet_topup(customer=alice, amount_fen=10000, method="cash", key="topup-1")
    count = LedgerTransaction.objects.count()
    # when / then
    with pytest.raises(ConsentMissing):
        checkout_price(customer=relative, clinic=clinic_a, lines=[{"item_code": "CL01"}],
                       wallet={"holder": alice, "amount_fen": 5000})
    assert LedgerTransaction.objects.count() == count and Order.objects.count() == 0


def test_expired_card_is_refused_at_pay_and_nothing_changes(chain, clinic_a, catalogue, alice, card, now_plus_95):
    giftcards_expire(as_of=now_plus_95)
    count = LedgerTransaction.objects.count()
    with pytest.raises(Expired):
        checkout_pay(priced={"customer": alice, "clinic": clinic_a, "lines": [{"item_code": "CL01"}],
                             "gift_cards": [card.code]}, payments=[], key="pay-1")
    assert LedgerTransaction.objects.count() == count and Order.objects.count() == 0


def test_card_on_excluded_items_only_is_refused(chain, clinic_a, catalogue, alice, card):
    with pytest.raises(ExcludedItem):
        checkout_price(customer=alice, clinic=clinic_a, lines=[{"item_code": "OC01"}, {"item_code": "CL99"}],
                       gift_cards=[card.code])


def test_voucher_redeemed_at_checkout_cannot_be_used_twice(chain, clinic_a, catalogue, alice, cleaning_voucher):
    # given
    voucher = voucher_issue(campaign=cleaning_voucher, customer=alice, key="v1")
    bill = checkout_price(customer=alice, clinic=clinic_a, lines=[{"item_code": "CL01"}], vouchers=[voucher.code])
    assert [(t.kind, t.amount_fen) for t in bill.tenders] == [("voucher", 26400), ("cash", 0)]
    checkout_pay(priced=bill, payments=[], key="pay-1")
    # when / then
    with pytest.raises(AlreadyUsed):
        checkout_price(customer=alice, clinic=clinic_a, lines=[{"item_code": "CL01"}], vouchers=[voucher.code])
    assert ledger_check(chain_id=chain.id) == []


def test_a_voucher_issued_to_another_customer_is_refused_as_theirs_not_as_used(chain, clinic_a, catalogue, alice,
                                                                               cleaning_voucher):
    # given an unused voucher in Bob's name
    bob = CustomerFactory(chain=chain, name="李四", home_clinic=clinic_a)
    voucher = voucher_issue(campaign=cleaning_voucher, customer=bob, key="v-bob")
    # when it is offered on Alice's bill, then the refusal says whose it is (it was `already_used`)
    with pytest.raises(OtherCustomers) as refused:
        checkout_price(customer=alice, clinic=clinic_a, lines=[{"item_code": "CL01"}], vouchers=[voucher.code])
    assert (refused.value.code, refused.value.field) == ("other_customers", "vouchers[0]")
    assert str(refused.value) == f"voucher {voucher.code} belongs to another customer"
    # and Bob can still use it
    bill = checkout_price(customer=bob, clinic=clinic_a, lines=[{"item_code": "CL01"}], vouchers=[voucher.code])
    assert [t.kind for t in bill.tenders][0] == "voucher"


def test_refund_share_passed_to_the_ledger_is_cumulative(chain, clinic_a, catalogue, alice, card, four_lines):
    bill = checkout_price(customer=alice, clinic=clinic_a, lines=four_lines, gift_cards=[card.code])
    settlement = checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}], key="pay-1")
    checkout_refund(settlement=settlement, key="r1", lines=[{"line_id": settlement.order.lines.first().id,
                                                               "amount_fen": 3001}])
    movement = settlement.movements.get(role="giftcard")
    assert Fraction(movement.refunded_fen, movement.value_fen) == Fraction(1499, 60000)
    assert ledger_check(chain_id=chain.id) == []


# --- one bill, one batch of ledger movements ------------------------------------------------------------


def test_pay_runs_a_bounded_number_of_queries_for_a_bill_with_every_tender(
        chain, clinic_a, catalogue, alice, card, points, wallet, spend_rule, four_lines, django_assert_max_num_queries):
    # given a priced bill: member discount, gift card, points, wallet, points earned on what is paid
    bill = price_everything(alice, clinic_a, card, four_lines)
    # when: the gift card, points, wallet and earned points are posted as one batch (one lock, one INSERT of the
    # transactions, one of the entries, one balance UPDATE) and nothing is read twice. 59 statements on this first
    # bill of the customer (12 of them create the SALES, POINTS_REDEEMED and wallet-bonus accounts; 5 are the
    # order's lifecycle stage and timeline row).
    with django_assert_max_num_queries(60):
        settlement = checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": 38081}], key="pay-1")
    # then each movement is still its own transaction with its own key
    keys = sorted(settlement.movements.values_list("transaction__idempotency_key", flat=True))
    assert keys == sorted(["checkout:pay-1:giftcard:" + card.code, "redeem:checkout:pay-1:points",
                           "wallet_spend:checkout:pay-1:wallet", f"order:{settlement.order_id}:earn"])
    assert list(settlement.movements.values_list("role", flat=True)) == ["giftcard", "points", "wallet", "earn"]
    # the card: its first user noted as holder, then the use, and exhausted (from the balance the batch left)
    card = GiftCard.objects.get(pk=card.pk)
    assert (card.holder_id, card.status) == (alice.id, "exhausted")
    assert list(card.events.order_by("id").values_list("kind", flat=True)) == ["issued", "holder_known", "used"]
    assert ledger_check(chain_id=chain.id) == []


def test_points_spent_elsewhere_between_price_and_pay_refuse_the_whole_bill(
        chain, clinic_a, catalogue, alice, card, points, wallet, four_lines):
    # given a priced bill using points, then almost all of them spent elsewhere
    bill = price_everything(alice, clinic_a, card, four_lines)
    points_redeem(customer=alice, points=POINTS - 10, key="elsewhere", source="gift")
    before = balances(chain, alice, card)
    count = LedgerTransaction.objects.count()
    # when / then: the batch is refused with loyalty's own error, and nothing of the bill is written
    with pytest.raises(InsufficientPoints) as exc:
        checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": 38081}], key="pay-1")
    assert exc.value.code == "insufficient_points" and exc.value.field == "points"
    assert balances(chain, alice, card) == before and LedgerTransaction.objects.count() == count
    assert Order.objects.count() == 0 and Settlement.objects.count() == 0
    assert GiftCard.objects.get(pk=card.pk).status == "active" and ledger_check(chain_id=chain.id) == []


def test_lines_naming_no_catalogue_item_are_field_errors_whatever_their_type(chain, clinic_a, catalogue, alice):
    other_chain_item = catalogue["EX01"].pk + 10_000
    with pytest.raises(ValidationFailed) as err:
        checkout_price(customer=alice, clinic=clinic_a, lines=[
            {"item_id": "abc"}, {"item_id": other_chain_item}, {"item_code": "NOPE"}, {"item_code": "EX01"},
            {"item_id": catalogue["CL01"].pk, "quantity": 0}])
    assert [(e.field, e.message) for e in err.value.errors] == [
        ("lines[0].item_code", "is not in the service catalogue"),
        ("lines[1].item_code", "is not in the service catalogue"),
        ("lines[2].item_code", "is not in the service catalogue"),
        ("lines[4].quantity", "must be a whole number from 1 to 99")]
    assert Order.objects.count() == 0


def test_a_consent_withdrawn_between_pricing_and_paying_names_a_holder_of_another_clinic_masked(
        chain, clinic_a, clinic_b, catalogue, alice, wallet, scope_a):
    # given alice (王芳) of clinic B, whose family card her husband of clinic A is bound to with standing consent
    from smileloop.loyalty.errors import ConsentMissing as WalletConsentMissing
    from smileloop.membership.enums import WalletShareMode
    from smileloop.membership.services import (
        family_bind,
        wallet_share_consent_grant,
        wallet_share_consent_revoke,
    )

    alice.home_clinic = clinic_b
    alice.save(update_fields=["home_clinic"])
    spouse = CustomerFactory(chain=chain, name="李强", home_clinic=clinic_a)
    family_bind(holder=alice, member=spouse, relation="spouse", consent_source="paper", consent_evidence="F-1")
    wallet_share_consent_grant(holder=alice, member=spouse, mode=WalletShareMode.STANDING, source="paper")
    bill = checkout_price(customer=spouse, clinic=clinic_a, lines=[{"item_code": "CL01"}],
                          wallet={"holder": alice, "amount_fen": 5000}, reader=scope_a)
    # when she withdraws the consent before clinic A's cashier pays the priced bill
    wallet_share_consent_revoke(holder=alice, member=spouse)
    with pytest.raises(WalletConsentMissing) as refused:
        checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}], key="race-1")
    # then the refusal names her masked, as the cashier's scope shows her, and nothing is written
    assert "王芳" not in str(refused.value) and "王*" in str(refused.value), str(refused.value)
    assert Settlement.objects.count() == 0


def test_refunding_units_of_a_line_a_package_paid_in_part_gives_back_one_units_value_each_time(
        chain, clinic_a, catalogue, giver):
    from smileloop.loyalty.models import EntitlementUse
    from smileloop.loyalty.services import package_sell
    from smileloop.loyalty.tests.factories import PackageEntitlementFactory, PackageFactory

    # given a patient (no membership) with one cleaning left in a package, who has two cleanings: one from the
    # package, one paid 300.00
    package = PackageFactory(chain=chain, name="洁牙套餐", validity_months=12)
    PackageEntitlementFactory(package=package, label="洁牙", category="cleaning", quantity=1)
    package_sell(package=package, holder=giver, covered=[giver], key="sale-1")
    bill = checkout_price(customer=giver, clinic=clinic_a, lines=[{"item_code": "CL01", "quantity": 2}])
    assert (bill.lines[0].entitled_units, bill.total_fen) == (1, 30000)
    settlement = checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": 30000}], key="pay-1")
    line = settlement.order.lines.get()
    # when one cleaning is refunded, then the other
    first = checkout_refund(settlement=settlement, lines=[{"line_id": line.id, "quantity": 1}], key="r-1")
    second = checkout_refund(settlement=settlement, lines=[{"line_id": line.id, "quantity": 1}], key="r-2")
    # then the first gives back the package's cleaning and no money (not 150.00 and the cleaning), the second
    # the 300.00 paid
    assert (first.amount_fen, first.breakdown["entitlements_reversed"]) == (0, 1)
    assert (second.amount_fen, second.breakdown["entitlements_reversed"]) == (30000, 0)
    assert EntitlementUse.objects.filter(customer=giver).count() == 2  # the use and its reversal
    assert ledger_check(chain_id=chain.id) == []


def test_a_key_reused_for_another_bill_or_refund_is_a_conflict_and_writes_nothing(chain, clinic_a, catalogue, alice):
    def pay(customer, key, code="CL01"):
        priced = checkout_price(customer=customer, clinic=clinic_a, lines=[{"item_code": code}])
        return checkout_pay(priced=priced, payments=[{"method": "cash", "amount_fen": priced.cash_fen}], key=key)

    bob = CustomerFactory(chain=chain, name="李雷", home_clinic=clinic_a)
    first = pay(alice, "same-key")
    assert pay(alice, "same-key").pk == first.pk  # the same bill again: a replay
    for customer, code in ((bob, "CL01"), (alice, "FI01")):  # another patient's bill, or another bill of hers
        with pytest.raises(Conflict) as caught:
            pay(customer, "same-key", code=code)
        assert (caught.value.code, caught.value.field) == ("idempotency_key_reused", "key")
    assert Order.objects.count() == 1
    second = pay(bob, "other-key", code="FI01")
    refund = checkout_refund(settlement=first, key="refund-key", reason="x")
    assert checkout_refund(settlement=first, key="refund-key", reason="x").pk == refund.pk
    with pytest.raises(Conflict):
        checkout_refund(settlement=second, key="refund-key", reason="x")
    assert Order.objects.get(pk=second.order_id).refunded_fen == 0


def test_a_packages_billed_as_item_is_refused_on_a_bill_by_name(chain, clinic_a, catalogue, alice):
    """Billed at checkout, the item would take the package's price and grant no entitlement: its sale is the
    loyalty card's (which records the same bill and the grants)."""
    from smileloop.loyalty.tests.factories import PackageFactory
    from smileloop.visits.tests.factories import ServiceItemFactory

    ServiceItemFactory(chain=chain, code="PK01", name="家庭口腔护理套餐", category="exam", list_price_fen=298_000)
    PackageFactory(chain=chain, name="家庭口腔护理套餐", item_code="PK01")
    with pytest.raises(ValidationFailed) as refused:
        checkout_price(customer=alice, clinic=clinic_a, lines=[{"item_code": "EX01"}, {"item_code": "PK01"}])
    [error] = refused.value.errors
    assert error.field == "lines[1].item_code" and "package 家庭口腔护理套餐" in error.message
    assert checkout_price(customer=alice, clinic=clinic_a, lines=[{"item_code": "EX01"}]).lines


@pytest.mark.parametrize("wallet_arg", [{"holder": "ALICE"}, {"holder": "ALICE", "amount_fen": None},
                                        {"per_use_consent": True}])
def test_a_wallet_without_an_amount_is_refused_not_read_as_max(chain, clinic_a, catalogue, alice, wallet,
                                                              wallet_arg):
    # the service had the API's default: a wallet without an amount spent all it could pay
    wallet_arg = {k: alice if v == "ALICE" else v for k, v in wallet_arg.items()}
    with pytest.raises(ValidationFailed) as refused:
        checkout_price(customer=alice, clinic=clinic_a, lines=[{"item_code": "CL01"}], wallet=wallet_arg)
    assert [e.field for e in refused.value.errors] == ["wallet.amount_fen"]
    assert "is required" in refused.value.errors[0].message
