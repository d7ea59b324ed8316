"""A checkout refund records what went back by payment method (services.refund.refund_split): the money over the
bill's money methods in proportion to what each has left, each tender under its own method, a clawback withheld
under `points`; one visits.Refund per method, its lines splitting the refunded lines' amounts exactly."""

from collections import Counter

from django.urls import reverse

from smileloop.checkout.models import RefundSettlement
from smileloop.checkout.services import checkout_pay, checkout_price, checkout_refund
from smileloop.checkout.tests.test_api import post
from smileloop.clinics.services import token_create
from smileloop.customers.models import Customer
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.ledger.selectors import ledger_check
from smileloop.loyalty.services import points_redeem
from smileloop.visits.models import Order, OrderLine, Refund, RefundLine
from smileloop.visits.services import _refund_methods_left

WECHAT, ALIPAY = 70000, 40090  # the bill's money: 1,200.90 less 100.00 from the wallet


def pay_mixed(alice, clinic_a, four_lines, key="pay-1"):
    """1,200.90 (four lines after the member's discount): 100.00 from the wallet, 700.00 by WeChat Pay, the rest
    (400.90) by Alipay."""
    bill = checkout_price(customer=alice, clinic=clinic_a, lines=four_lines, wallet={"amount_fen": "max"})
    assert (bill.total_fen, bill.cash_fen) == (120090, WECHAT + ALIPAY)
    return checkout_pay(priced=bill, payments=[{"method": "wechat_pay", "amount_fen": WECHAT},
                                                {"method": "alipay", "amount_fen": ALIPAY}], key=key)


def by_method(order) -> dict[str, int]:
    totals = Counter()
    for method, fen in Refund.objects.filter(order=order).values_list("method", "amount_fen"):
        totals[method] += fen
    return dict(totals)


def assert_consistent(order):
    """Every refund's lines add up to it, every line's refund lines to what the line says was refunded, and the
    refunds to what the order says."""
    order = Order.objects.get(pk=order.pk)
    for refund in Refund.objects.filter(order=order):
        assert sum(refund.lines.values_list("amount_fen", flat=True)) == refund.amount_fen
    for line in OrderLine.objects.filter(order=order):
        assert sum(RefundLine.objects.filter(order_line=line).values_list("amount_fen", flat=True)) \
            == line.refunded_fen
    assert sum(Refund.objects.filter(order=order).values_list("amount_fen", flat=True)) == order.refunded_fen


def test_a_whole_refund_of_a_mixed_bill_gives_each_method_back_what_it_paid(
        chain, clinic_a, catalogue, alice, wallet, four_lines):
    settlement = pay_mixed(alice, clinic_a, four_lines)
    spend_before = Customer.objects.get(pk=alice.pk).lifetime_spend_fen
    refund = checkout_refund(settlement=settlement, key="r1", reason="cancelled")
    order = Order.objects.get(pk=settlement.order_id)
    assert by_method(order) == {"wechat_pay": WECHAT, "alipay": ALIPAY, "wallet": 10000}
    assert [(r.method, r.amount_fen) for r in refund.order_refunds.order_by("id")] == [
        ("wechat_pay", WECHAT), ("alipay", ALIPAY), ("wallet", 10000)]
    assert refund.refund_id == refund.order_refunds.order_by("id").first().id
    assert refund.breakdown["by_method"] == [{"method": "wechat_pay", "amount_fen": WECHAT},
                                             {"method": "alipay", "amount_fen": ALIPAY},
                                             {"method": "wallet", "amount_fen": 10000}]
    assert (order.refunded_fen, order.status) == (120090, "refunded")
    assert Customer.objects.get(pk=alice.pk).lifetime_spend_fen == spend_before - 120090
    assert_consistent(order)
    assert _refund_methods_left(order) == {"wechat_pay": 0, "alipay": 0}
    assert ledger_check(chain_id=chain.id) == []


def test_partial_refunds_by_line_split_by_method_and_the_rest_leaves_each_method_what_it_paid(
        chain, clinic_a, catalogue, alice, wallet, four_lines):
    settlement = pay_mixed(alice, clinic_a, four_lines)
    order = settlement.order
    lines = list(order.lines.order_by("id"))
    # when one line is refunded in part, then another whole
    first = checkout_refund(settlement=settlement, lines=[{"line_id": lines[0].id, "amount_fen": 10001}], key="r1")
    # then the 100.01 went back over the wallet and the money (833 + 9,168, as the tenders were split), the money
    # in proportion to what each method paid: 9,168 × 70,000 / 110,090 = 5,829.4, × 40,090 / 110,090 = 3,338.5
    assert [(r.method, r.amount_fen) for r in first.order_refunds.order_by("id")] == [
        ("wechat_pay", 5829), ("alipay", 3339), ("wallet", 833)]
    assert [(rl.order_line_id, rl.amount_fen) for r in first.order_refunds.order_by("id")
            for rl in r.lines.order_by("id")] == [(lines[0].id, 5829), (lines[0].id, 3339), (lines[0].id, 833)]
    left = _refund_methods_left(Order.objects.get(pk=order.pk))
    assert left == {"wechat_pay": WECHAT - 5829, "alipay": ALIPAY - 3339}
    second = checkout_refund(settlement=settlement, lines=[{"line_id": lines[3].id, "quantity": 1},
                                                           {"line_id": lines[1].id, "amount_fen": 5000}], key="r2")
    parts = dict((r.method, r.amount_fen) for r in second.order_refunds.all())
    assert sum(parts.values()) == second.amount_fen == 52800 + 5000
    assert parts["wechat_pay"] + parts["alipay"] == second.cash_fen
    assert_consistent(order)
    # and the rest gives back exactly what each method paid, in total
    checkout_refund(settlement=settlement, key="r3")
    assert by_method(order) == {"wechat_pay": WECHAT, "alipay": ALIPAY, "wallet": 10000}
    assert Refund.objects.filter(order=order).count() == 9
    assert_consistent(order)
    assert ledger_check(chain_id=chain.id) == []


def test_every_tender_goes_back_under_its_own_method(
        chain, clinic_a, catalogue, alice, card, points, wallet, four_lines):
    bill = checkout_price(customer=alice, clinic=clinic_a, lines=four_lines, gift_cards=[card.code],
                          points="max", wallet={"amount_fen": "max"})
    settlement = checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": 20000},
                                                     {"method": "bank_card", "amount_fen": bill.cash_fen - 20000}],
                              key="pay-1")
    paid = dict(settlement.order.payments.values_list("method", "amount_fen"))
    checkout_refund(settlement=settlement, lines=[{"line_id": settlement.order.lines.order_by("id")[0].id,
                                                   "amount_fen": 12345}], key="r1")
    checkout_refund(settlement=settlement, key="r2")
    assert by_method(settlement.order) == paid  # cash, bank card, gift card, points, wallet: each what it paid
    assert_consistent(settlement.order)


def test_a_clawback_withheld_is_not_recorded_as_money_given_back(chain, clinic_a, catalogue, alice, spend_rule):
    # given a cleaning (264.00) paid 200.00 by WeChat Pay and 64.00 by Alipay, 200 of its 264 points spent since
    bill = checkout_price(customer=alice, clinic=clinic_a, lines=[{"item_code": "CL01"}])
    settlement = checkout_pay(priced=bill, payments=[{"method": "wechat_pay", "amount_fen": 20000},
                                                     {"method": "alipay", "amount_fen": 6400}], key="pay-1")
    points_redeem(customer=alice, points=200, key="elsewhere", source="order:other")
    # when the whole bill is refunded, 2.00 withheld for the spent points
    refund = checkout_refund(settlement=settlement, key="r1")
    # then the money methods record the 262.00 given back (their tenders' "cash"), the 2.00 kept is under points
    assert refund.cash_fen == 26200
    money = {m: fen for m, fen in by_method(settlement.order).items() if m != "points"}
    assert sum(money.values()) == refund.cash_fen
    assert by_method(settlement.order) == {"wechat_pay": 19848, "alipay": 6352, "points": 200}
    assert Order.objects.get(pk=settlement.order_id).refunded_fen == 26400
    assert_consistent(settlement.order)


def test_the_receipt_and_the_360_page_show_the_refunds_by_method(
        client, front_desk_a, chain, clinic_a, catalogue, alice, wallet, four_lines):
    settlement = pay_mixed(alice, clinic_a, four_lines)
    checkout_refund(settlement=settlement, key="r1")
    client.force_login(front_desk_a.user)
    receipt = client.get(reverse("checkout:receipt", args=[settlement.id]), HTTP_ACCEPT_LANGUAGE="zh-hans").text
    shown = receipt[receipt.index('data-testid="refund-methods"'):]
    shown = shown[:shown.index("</p>")]
    assert "按支付方式" in shown
    for text in ("微信支付 ¥700.00", "支付宝 ¥400.90", "储值 ¥100.00"):
        assert text in shown, shown
    page = client.get(reverse("customers:detail", args=[alice.id]), HTTP_ACCEPT_LANGUAGE="zh-hans").text
    # one pill for the one refund, its total and each method's part
    [pill] = [chunk.split("</span>")[0] for chunk in page.split('data-testid="refund">')[1:]]
    assert " ".join(pill.split()).startswith("退款 −¥1,200.90 (微信支付 −¥700.00、支付宝 −¥400.90、储值 −¥100.00) · "), pill


def test_the_refund_api_answers_what_went_back_by_method(client, front_desk_a, chain, clinic_a, catalogue, alice,
                                                         wallet, four_lines):
    token_a = token_create(username=front_desk_a.user.username)
    settlement = pay_mixed(alice, clinic_a, four_lines)
    response = post(client, f"/api/checkout/settlements/{settlement.id}/refund", {"whole": True}, token=token_a,
                    key="refund-1")
    assert response.status_code == 201, response.content
    assert response.json()["breakdown"]["by_method"] == [
        {"method": "wechat_pay", "amount_fen": WECHAT}, {"method": "alipay", "amount_fen": ALIPAY},
        {"method": "wallet", "amount_fen": 10000}]
    # a replay answers the same refund and records nothing more
    again = post(client, f"/api/checkout/settlements/{settlement.id}/refund", {"whole": True}, token=token_a,
                 key="refund-1")
    assert again.json()["id"] == response.json()["id"]
    assert RefundSettlement.objects.count() == 1 and Refund.objects.count() == 3
    # and the settlement, read again, lists its refunds with that split
    read = client.get(f"/api/checkout/settlements/{settlement.id}", headers={"Authorization": f"Bearer {token_a}"})
    assert read.status_code == 200, read.content
    assert read.json()["refunds"] == [response.json()]


def collapse_to_the_old_shape(refund_settlement):
    """What checkout_refund wrote before: one Refund of the whole refund under the bill's first money method, its
    lines the refunded lines' amounts, no `order_refunds`, no "by_method"."""
    rows = list(refund_settlement.order_refunds.order_by("id"))
    first = rows[0]
    lines = Counter()
    for rl in RefundLine.objects.filter(refund__in=rows):
        lines[rl.order_line_id] += rl.amount_fen
    RefundLine.objects.filter(refund__in=rows).delete()
    refund_settlement.order_refunds.clear()
    Refund.objects.filter(pk__in=[r.pk for r in rows[1:]]).delete()
    money = [m for m in refund_settlement.settlement.order.payments.order_by("id").values_list("method", flat=True)
             if m not in ("wallet", "gift_card", "voucher", "points", "other")]
    Refund.objects.filter(pk=first.pk).update(amount_fen=refund_settlement.amount_fen, method=money[0])
    RefundLine.objects.bulk_create([RefundLine(refund_id=first.pk, order_line_id=k, amount_fen=v)
                                    for k, v in lines.items()])
    breakdown = dict(refund_settlement.breakdown)
    del breakdown["by_method"]
    RefundSettlement.objects.filter(pk=refund_settlement.pk).update(breakdown=breakdown)


def test_the_data_migration_splits_old_checkout_refunds_as_they_are_recorded_now(
        chain, clinic_a, catalogue, alice, card, points, wallet, spend_rule, four_lines):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("smileloop.checkout.migrations.0006_refunds_by_method")
    # given a bill paid with a gift card, points, the wallet and two money methods, refunded in three steps
    bill = checkout_price(customer=alice, clinic=clinic_a, lines=four_lines, gift_cards=[card.code], points="max",
                          wallet={"amount_fen": "max"})
    settlement = checkout_pay(priced=bill, payments=[{"method": "wechat_pay", "amount_fen": 30000},
                                                     {"method": "alipay", "amount_fen": bill.cash_fen - 30000}],
                              key="pay-1")
    lines = list(settlement.order.lines.order_by("id"))
    checkout_refund(settlement=settlement, lines=[{"line_id": lines[0].id, "amount_fen": 10001}], key="r1")
    checkout_refund(settlement=settlement, lines=[{"line_id": lines[3].id, "quantity": 1}], key="r2")
    checkout_refund(settlement=settlement, key="r3")
    # and a cleaning paid by both money methods, refunded with 2.00 withheld for the points spent since
    bob = CustomerFactory(chain=chain, name="李明", home_clinic=clinic_a)
    cleaning = checkout_price(customer=bob, clinic=clinic_a, lines=[{"item_code": "CL01"}])
    other = checkout_pay(priced=cleaning, payments=[{"method": "alipay", "amount_fen": 10000},
                                                    {"method": "wechat_pay", "amount_fen": cleaning.cash_fen - 10000}],
                         key="pay-2")
    points_redeem(customer=bob, points=200, key="elsewhere", source="order:other")
    checkout_refund(settlement=other, key="r4")

    def recorded():
        return [(rs.key, rs.breakdown.get("by_method"),
                 [(r.method, r.amount_fen, sorted(r.lines.values_list("order_line_id", "amount_fen")))
                  for r in rs.order_refunds.order_by("id")])
                for rs in RefundSettlement.objects.order_by("created_at", "id")]
    now = recorded()
    assert RefundSettlement.objects.get(key="r4").breakdown["clawback_fen"] == 200
    # and recorded as checkout refunds were before
    for rs in RefundSettlement.objects.all():
        collapse_to_the_old_shape(rs)
    assert Refund.objects.count() == 4 and set(by_method(settlement.order)) == {"wechat_pay"}
    # when the migration runs
    migration.forwards(apps, None)
    # then each old refund is split exactly as checkout_refund records it now, first row kept
    assert recorded() == now
    assert by_method(settlement.order) == dict(settlement.order.payments.values_list("method", "amount_fen"))
    assert by_method(other.order) == {"alipay": 9933, "wechat_pay": 19867, "points": 200}  # 298.00 pro rata
    assert_consistent(settlement.order)
    assert_consistent(other.order)
    # and running it again changes nothing
    migration.forwards(apps, None)
    assert recorded() == now
