"""The checkout staff pages: bill → price fragment → pay → receipt → refund, and the code look-up."""

import pytest
from django.urls import reverse

from smileloop.checkout.models import RefundSettlement, Settlement
from smileloop.checkout.services import checkout_pay, checkout_price
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.giftcards.models import GiftCard
from smileloop.ledger.models import LedgerTransaction
from smileloop.ledger.selectors import ledger_check
from smileloop.membership.services import family_bind
from smileloop.visits.models import Order


@pytest.fixture
def stranger_b(chain, clinic_b):
    return CustomerFactory(chain=chain, name="赵强", home_clinic=clinic_b)


def bill_data(customer, clinic, catalogue, **extra):
    data = {"customer": customer.id, "clinic": clinic.id, "item": [catalogue["CL01"].id, catalogue["OC01"].id, ""],
            "quantity": ["1", "1", "1"], "tooth": ["", "", ""], "points_mode": "none", "wallet_mode": "none",
            "vouchers": "", "gift_cards": "", "wallet_amount": "", "key": "form-1"}
    data.update(extra)
    return data


def paid_settlement(alice, clinic_a, key="pay-1"):
    bill = checkout_price(customer=alice, clinic=clinic_a, lines=[{"item_code": "CL01"}, {"item_code": "FI01"}])
    return checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}], key=key)


def test_the_bill_page_renders_for_a_customer_in_scope(client, front_desk_a, clinic_a, catalogue, alice):
    client.force_login(front_desk_a.user)
    response = client.get(reverse("checkout:new"), {"customer": alice.id})
    assert response.status_code == 200
    html = response.content.decode()
    assert "王芳" in html and "CL01 · 洁牙" in html and 'name="key"' in html


def test_the_360_page_links_to_a_new_bill_for_cashiers(client, front_desk_a, alice):
    client.force_login(front_desk_a.user)
    html = client.get(reverse("customers:detail", args=[alice.id])).content.decode()
    assert f'{reverse("checkout:new")}?customer={alice.id}' in html


def test_the_price_fragment_shows_every_line_and_the_exact_totals(client, front_desk_a, clinic_a, catalogue, alice,
                                                                  card):
    # given
    client.force_login(front_desk_a.user)
    count = LedgerTransaction.objects.count()
    # when
    response = client.post(reverse("checkout:new"), bill_data(alice, clinic_a, catalogue, gift_cards=card.code),
                           HTTP_HX_REQUEST="true")
    # then: 洁牙 300.00 − 88折 36.00 = 264.00 (the card pays it), the toothbrush 399.00 is cash
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and 'data-testid="breakdown"' in html
    assert "家庭会员, 12% off: −¥36.00" in html and "¥663.00" in html
    assert f"亲友储值卡 {card.code} 600.00 → 264.00 used, 336.00 left" in html
    assert '<strong data-testid="cash">¥399.00</strong>' in html and "cash/other 399.00" in html
    assert f"<span>Gift card {card.code}</span> ¥264.00" in html  # what paid the line, named for people
    assert LedgerTransaction.objects.count() == count and Order.objects.count() == 0


def test_the_price_fragment_reads_in_chinese_on_a_chinese_page(client, front_desk_a, clinic_a, catalogue, alice,
                                                                card):
    # given
    client.force_login(front_desk_a.user)
    # when
    response = client.post(reverse("checkout:new"), bill_data(alice, clinic_a, catalogue, gift_cards=card.code),
                           HTTP_HX_REQUEST="true", HTTP_ACCEPT_LANGUAGE="zh-hans")
    # then: the labels stored in English read in Chinese, the member discount in the 折 notation
    html = response.content.decode()
    assert "家庭会员 88折·优惠 12%：−¥36.00" in html  # a full-width colon, amounts with their ¥
    assert f"亲友储值卡 {card.code} ¥600.00 → 已用 ¥264.00，余 ¥336.00" in html and "现金/其他 ¥399.00" in html
    assert f"<span>储值卡 {card.code}</span> ¥264.00" in html and "giftcard:" not in html
    assert " used" not in html and " off" not in html


def test_a_wrong_code_is_a_clear_message_and_writes_nothing(client, front_desk_a, clinic_a, catalogue, alice):
    client.force_login(front_desk_a.user)
    response = client.post(reverse("checkout:new"), bill_data(alice, clinic_a, catalogue, gift_cards="NOPE-NOPE"),
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert "No gift card with the code" in response.content.decode()
    assert Order.objects.count() == 0 and LedgerTransaction.objects.count() == 0


def test_refusals_read_in_chinese_on_a_chinese_page(client, front_desk_a, clinic_a, catalogue, alice, card):
    # given
    client.force_login(front_desk_a.user)
    zh = {"HTTP_HX_REQUEST": "true", "HTTP_ACCEPT_LANGUAGE": "zh-hans"}
    count = LedgerTransaction.objects.count()
    # when a wrong voucher code, the same card twice, and a wallet asked for more than it holds are priced
    wrong = client.post(reverse("checkout:new"), bill_data(alice, clinic_a, catalogue, vouchers="NOPE-NOPE"), **zh)
    twice = client.post(reverse("checkout:new"),
                        bill_data(alice, clinic_a, catalogue, gift_cards=f"{card.code} {card.code}"), **zh)
    wallet = client.post(reverse("checkout:new"), bill_data(alice, clinic_a, catalogue, wallet_mode="own",
                                                            wallet_amount="99999"), **zh)
    # then each refusal is in Chinese, with its code and amounts
    assert wrong.status_code == 422 and "没有券码为 NOPE-NOPE 的优惠券" in wrong.text
    assert twice.status_code == 422 and f"储值卡 {card.code} 重复输入" in twice.text
    assert wallet.status_code == 422 and "储值：可用 ¥0.00，申请使用 ¥99,999.00" in wallet.text  # 储值卡 is a gift card
    assert Order.objects.count() == 0 and LedgerTransaction.objects.count() == count


def test_a_negative_wallet_amount_is_a_field_refusal_in_chinese(client, front_desk_a, clinic_a, catalogue, alice,
                                                                wallet):
    client.force_login(front_desk_a.user)
    response = client.post(reverse("checkout:new"), bill_data(alice, clinic_a, catalogue, wallet_mode="own",
                                                              wallet_amount="-5"),
                           HTTP_HX_REQUEST="true", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 422
    assert "储值支付金额（元）：请输入不小于 0 的金额（留空则尽量多用）。" in response.text
    assert "must be" not in response.text and Order.objects.count() == 0


def test_a_negative_payment_amount_is_refused_in_the_pages_words(client, front_desk_a, clinic_a, catalogue, alice):
    client.force_login(front_desk_a.user)
    data = bill_data(alice, clinic_a, catalogue, action="pay", priced_total="66300", priced_cash="66300",
                     pay_method=["cash", "cash"], pay_amount=["-10", "673"])
    zh = client.post(reverse("checkout:new"), data, HTTP_ACCEPT_LANGUAGE="zh-hans")
    en = client.post(reverse("checkout:new"), {**data, "key": "form-2"}, HTTP_ACCEPT_LANGUAGE="en")
    assert zh.status_code == en.status_code == 422
    assert "第 1 笔付款，金额：金额不能为负数" in zh.text and "fen" not in zh.text
    assert "payment 1, amount: must be an amount of 0 or more" in en.text
    assert Order.objects.count() == 0


def test_field_refusals_name_the_line_and_amounts_in_yuan_on_a_chinese_page(client, front_desk_a, clinic_a, catalogue,
                                                                            alice):
    # given
    client.force_login(front_desk_a.user)
    zh = {"HTTP_HX_REQUEST": "true", "HTTP_ACCEPT_LANGUAGE": "zh-hans"}
    # when a quantity is out of range and payments do not cover the bill
    quantity = client.post(reverse("checkout:new"), bill_data(alice, clinic_a, catalogue, quantity=["1", "100", "1"]),
                           **zh)
    short = client.post(reverse("checkout:new"), bill_data(
        alice, clinic_a, catalogue, action="pay", priced_total="66300", priced_cash="66300", pay_method=["cash"],
        pay_amount=["10"]), **zh)
    english = client.post(reverse("checkout:new"), bill_data(
        alice, clinic_a, catalogue, quantity=["1", "100", "1"]), HTTP_HX_REQUEST="true", HTTP_ACCEPT_LANGUAGE="en")
    # then the field is named in words (not "lines[1].quantity") and fen are shown as yuan
    assert quantity.status_code == 422 and "第 2 行，数量：必须是 1 到 99 之间的整数" in quantity.text
    assert "lines[" not in quantity.text
    assert short.status_code == 422 and "付款合计 10.00 元，应付 663.00 元" in short.text
    assert english.status_code == 422 and "line 2, quantity: must be a whole number from 1 to 99" in english.text
    assert Order.objects.count() == 0


def test_points_this_many_without_a_number_is_a_clear_message(client, front_desk_a, clinic_a, catalogue, alice,
                                                                wallet):
    client.force_login(front_desk_a.user)
    response = client.post(reverse("checkout:new"), bill_data(alice, clinic_a, catalogue, points_mode="number"),
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 422 and "Enter the number of points to use." in response.content.decode()


def test_the_wallet_is_used_only_when_the_cashier_chooses_it_and_an_empty_amount_is_as_much_as_possible(
        client, front_desk_a, clinic_a, catalogue, alice, wallet):
    # given alice holds ¥100.00 of stored value; the form says "Empty: as much as possible." under the amount
    client.force_login(front_desk_a.user)
    page = client.get(reverse("checkout:new"), {"customer": alice.id}).content.decode()
    assert "Empty: as much as possible." in page
    # when the bill is priced without choosing the wallet, then it is not used
    untouched = client.post(reverse("checkout:new"), bill_data(alice, clinic_a, catalogue), HTTP_HX_REQUEST="true")
    assert untouched.status_code == 200 and "wallet 100.00" not in untouched.content.decode()
    # when "Own wallet" is chosen and the amount left empty, then all it can pay (the cashier's explicit choice)
    chosen = client.post(reverse("checkout:new"), bill_data(alice, clinic_a, catalogue, wallet_mode="own"),
                         HTTP_HX_REQUEST="true")
    assert chosen.status_code == 200 and "wallet 100.00" in chosen.content.decode()
    assert Order.objects.count() == 0


def test_a_family_wallet_needs_the_holders_consent_for_this_use(client, front_desk_a, clinic_a, catalogue, alice,
                                                                wallet):
    # given alice's spouse, bound to her family card, without a standing wallet consent
    spouse = CustomerFactory(chain=alice.chain, name="李强", home_clinic=clinic_a)
    family_bind(holder=alice, member=spouse, relation="spouse", consent_source="paper", consent_evidence="F-1")
    client.force_login(front_desk_a.user)
    data = bill_data(spouse, clinic_a, catalogue, wallet_mode="family", wallet_amount="50")
    # when priced without the consent box, then a clear refusal and nothing written
    refused = client.post(reverse("checkout:new"), data, HTTP_HX_REQUEST="true")
    assert refused.status_code == 422 and "has not consented" in refused.content.decode()
    # when the holder consents to this use, then ¥50.00 comes from her wallet (the tender, stored with the
    # settlement and read by whoever sees the husband's bills, names her masked)
    allowed = client.post(reverse("checkout:new"), {**data, "per_use_consent": "on"}, HTTP_HX_REQUEST="true")
    assert allowed.status_code == 200 and "family wallet of 王* 50.00" in allowed.content.decode()
    assert "王芳 has not consented" in refused.content.decode()  # the refusal names a holder in scope
    assert Order.objects.count() == 0


def test_a_family_wallet_of_another_clinic_is_paid_from_without_naming_its_holder(client, front_desk_a, clinic_a,
                                                                                 clinic_b, catalogue, alice, wallet):
    # given alice (王芳) of clinic B, whose family card a chain role bound her husband of clinic A to
    alice.home_clinic = clinic_b
    alice.save(update_fields=["home_clinic"])
    spouse = CustomerFactory(chain=alice.chain, name="李强", home_clinic=clinic_a)
    family_bind(holder=alice, member=spouse, relation="spouse", consent_source="paper", consent_evidence="F-1")
    client.force_login(front_desk_a.user)
    data = bill_data(spouse, clinic_a, catalogue, wallet_mode="family", wallet_amount="50")
    # when clinic A's cashier opens the husband's bill, prices it without and with the holder's consent, and pays
    page = client.get(reverse("checkout:new"), {"customer": spouse.id})
    refused = client.post(reverse("checkout:new"), data, HTTP_HX_REQUEST="true")
    priced = client.post(reverse("checkout:new"), {**data, "per_use_consent": "on"}, HTTP_HX_REQUEST="true")
    paid = client.post(reverse("checkout:new"), {**data, "per_use_consent": "on", "action": "pay",
                                                 "priced_total": "66300", "priced_cash": "61300",
                                                 "pay_method": ["cash", "cash"], "pay_amount": ["", ""]})
    receipt = client.get(paid["Location"])
    # then the family wallet works and its holder of clinic B is only masked (王*), never named nor linked
    assert refused.status_code == 422 and "has not consented" in refused.text
    assert priced.status_code == 200 and "family wallet of 王* 50.00" in priced.text
    zh = client.post(reverse("checkout:new"), {**data, "per_use_consent": "on"}, HTTP_HX_REQUEST="true",
                     HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "家庭储值（王*）¥50.00" in zh.text and "家庭卡（王*）家庭会员 88折·优惠 12%" in zh.text
    assert paid.status_code == 302 and receipt.status_code == 200
    for response in (page, refused, priced, receipt):
        assert "王芳" not in response.text and "王*" in response.text
        assert reverse("customers:detail", args=[alice.id]) not in response.text


def test_pay_writes_once_even_if_the_form_is_submitted_twice(client, front_desk_a, clinic_a, catalogue, alice, card):
    # given
    client.force_login(front_desk_a.user)
    data = bill_data(alice, clinic_a, catalogue, gift_cards=card.code, action="pay", priced_total="66300",
                     priced_cash="39900", pay_method=["wechat_pay", "cash"], pay_amount=["", ""],
                     tooth=["36", "", ""])
    # when
    first = client.post(reverse("checkout:new"), data)
    second = client.post(reverse("checkout:new"), data)
    # then
    settlement = Settlement.objects.get()
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"] == reverse("checkout:receipt", args=[settlement.id])
    assert (settlement.total_fen, settlement.cash_fen) == (66300, 39900)
    assert sorted(settlement.order.payments.values_list("method", "amount_fen")) == [("gift_card", 26400),
                                                                                     ("wechat_pay", 39900)]
    receipt = client.get(first["Location"], HTTP_ACCEPT_LANGUAGE="zh-hans").text
    payments = receipt[receipt.index('data-testid="payments"'):]
    assert "微信支付 ¥399.00" in payments  # the till's method, on the receipt
    assert "储值卡 ¥264.00" in payments and "其他" not in payments  # and what the card paid, named as the card
    assert list(settlement.order.lines.order_by("id").values_list("tooth", flat=True)) == ["36", ""]
    assert GiftCard.objects.get(pk=card.pk).account.balance == 33600
    assert ledger_check(chain_id=alice.chain_id) == []


def test_a_bill_the_tenders_pay_in_full_asks_for_no_cash_payment_and_pays_without_one(client, front_desk_a, clinic_a,
                                                                                       catalogue, alice, card):
    # given a cleaning alone, which the ¥600 gift card covers
    client.force_login(front_desk_a.user)
    data = bill_data(alice, clinic_a, catalogue, item=[catalogue["CL01"].id, "", ""], gift_cards=card.code)
    # when it is priced
    priced = client.post(reverse("checkout:new"), data, headers={"HX-Request": "true"})
    # then nothing is left for cash: no payment rows to fill and no ¥0.00 tender on the line, but a plain sentence
    assert priced.status_code == 200, priced.text
    assert 'data-testid="cash">¥0.00<' in priced.text and 'data-testid="nothing-in-cash"' in priced.text
    assert 'name="pay_method"' not in priced.text and "¥0.00</div>" not in priced.text
    # when it is paid as the page posts it (no payment fields), then the card pays it all
    paid = client.post(reverse("checkout:new"), {**data, "action": "pay", "priced_total": priced_value(priced, "total"),
                                                  "priced_cash": "0"})
    settlement = Settlement.objects.get()
    assert paid.status_code == 302 and settlement.cash_fen == 0
    assert list(settlement.order.payments.values_list("method", flat=True)) == ["gift_card"]


def priced_value(response, name: str) -> str:
    """A hidden priced_* value the bill fragment carries (what the page posts back with Pay)."""
    text = response.text
    start = text.index(f'name="priced_{name}" value="') + len(f'name="priced_{name}" value="')
    return text[start:text.index('"', start)]


def test_re_pricing_keeps_the_payment_method_and_amounts_the_cashier_entered(client, front_desk_a, clinic_a,
                                                                            catalogue, alice):
    # given a priced bill whose cashier picks WeChat Pay for 100.00 and cash for the rest
    client.force_login(front_desk_a.user)
    data = bill_data(alice, clinic_a, catalogue, pay_method=["wechat_pay", "cash"], pay_amount=["100", ""])
    # when that change re-prices the bill (htmx swaps the breakdown the payment rows sit in)
    response = client.post(reverse("checkout:new"), data, HTTP_HX_REQUEST="true")
    # then the new breakdown shows the rows as they were left, not a fresh "cash, empty" that Pay would record
    html = response.content.decode()
    assert response.status_code == 200
    assert '<option value="wechat_pay" selected>' in html and '<option value="cash" selected>' in html
    assert 'id="pay-amount-0" inputmode="decimal" value="100"' in html
    assert 'id="pay-amount-1" inputmode="decimal" value=""' in html


def test_lines_ticked_under_a_whole_bill_refund_refund_nothing_and_say_why(client, front_desk_a, clinic_a, catalogue,
                                                                          alice):
    # given a paid bill of a cleaning and a filling
    settlement = paid_settlement(alice, clinic_a)
    cleaning = settlement.order.lines.order_by("id").first()
    client.force_login(front_desk_a.user)
    # when the cashier ticks the cleaning but leaves the refund on "the whole bill" (the default)
    response = client.post(reverse("checkout:refund", args=[settlement.id]),
                           {"key": "r-1", "scope": "all", "line": [str(cleaning.id)], "reason": "退洁牙"},
                           HTTP_ACCEPT_LANGUAGE="zh-hans")
    # then nothing is refunded (not the whole bill the cashier did not mean) and the page says what to change
    assert response.status_code == 422
    assert "已勾选明细，但退款范围为整单" in response.text
    assert RefundSettlement.objects.count() == 0
    assert Order.objects.get(pk=settlement.order_id).refunded_fen == 0


def test_a_pay_or_refund_post_without_its_form_key_records_nothing(client, front_desk_a, clinic_a, catalogue, alice):
    # given a bill paid earlier (a post without a key would have shared the key "web:<user>:" with it)
    settlement = paid_settlement(alice, clinic_a)
    client.force_login(front_desk_a.user)
    pay = bill_data(alice, clinic_a, catalogue, action="pay", priced_total="66300", priced_cash="66300",
                    pay_method=["cash"], pay_amount=[""])
    del pay["key"]
    # when a pay and a refund arrive without the key their forms carry
    paid = client.post(reverse("checkout:new"), pay, HTTP_ACCEPT_LANGUAGE="zh-hans")
    refunded = client.post(reverse("checkout:refund", args=[settlement.id]), {"scope": "all", "reason": "x"},
                           HTTP_ACCEPT_LANGUAGE="zh-hans")
    # then both are refused with a reason and nothing is written
    assert paid.status_code == refunded.status_code == 422
    assert "表单不完整" in paid.text and "表单不完整" in refunded.text
    assert Settlement.objects.count() == 1 and RefundSettlement.objects.count() == 0


@pytest.mark.parametrize("tooth, message", [
    ("1" * 33, "第 1 行，牙位：最多 32 个字符"),  # was cut to 32 characters without a word
    ("3\x006", "第 1 行，牙位："),  # was a 500 on PostgreSQL when the bill was paid
])
def test_a_tooth_too_long_or_with_a_nul_is_refused_on_its_line_and_pays_nothing(client, front_desk_a, clinic_a,
                                                                                catalogue, alice, tooth, message):
    client.force_login(front_desk_a.user)
    data = bill_data(alice, clinic_a, catalogue, action="pay", tooth=[tooth, "", ""], priced_total="66300",
                     priced_cash="66300", pay_method=["cash"], pay_amount=[""])
    response = client.post(reverse("checkout:new"), data, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 422 and message in response.text
    assert Settlement.objects.count() == 0 and Order.objects.count() == 0


def test_a_price_changed_since_the_breakdown_refuses_to_pay(client, front_desk_a, clinic_a, catalogue, alice):
    client.force_login(front_desk_a.user)
    data = bill_data(alice, clinic_a, catalogue, action="pay", priced_total="1", priced_cash="1",
                     pay_method=["cash"], pay_amount=[""])
    response = client.post(reverse("checkout:new"), data)
    assert response.status_code == 409 and "The bill changed since it was priced" in response.content.decode()
    assert Order.objects.count() == 0 and Settlement.objects.count() == 0


def test_payments_that_do_not_cover_the_remainder_are_refused(client, front_desk_a, clinic_a, catalogue, alice):
    client.force_login(front_desk_a.user)
    data = bill_data(alice, clinic_a, catalogue, action="pay", priced_total="66300", priced_cash="66300",
                     pay_method=["cash"], pay_amount=["10"])
    response = client.post(reverse("checkout:new"), data)
    assert response.status_code == 422 and "payments add up to 10.00 yuan but 663.00 yuan are due" in response.text
    assert Order.objects.count() == 0


def test_the_receipt_shows_the_bill_and_a_whole_refund_gives_everything_back(
        client, front_desk_a, clinic_a, catalogue, alice):
    # given
    settlement = paid_settlement(alice, clinic_a)
    client.force_login(front_desk_a.user)
    url = reverse("checkout:receipt", args=[settlement.id])
    page = client.get(url)
    assert page.status_code == 200 and "¥792.00" in page.content.decode()
    # when
    response = client.post(reverse("checkout:refund", args=[settlement.id]),
                           {"scope": "all", "reason": "treatment cancelled", "key": "refund-form-1"})
    again = client.post(reverse("checkout:refund", args=[settlement.id]),
                        {"scope": "all", "reason": "treatment cancelled", "key": "refund-form-1"})
    # then
    assert response.status_code == again.status_code == 302
    refund = RefundSettlement.objects.get()
    assert (refund.amount_fen, refund.cash_fen, refund.reason) == (79200, 79200, "treatment cancelled")
    assert Order.objects.get().status == "refunded"
    assert ledger_check(chain_id=alice.chain_id) == []


def test_a_refund_of_selected_lines_refunds_only_those(client, front_desk_a, clinic_a, catalogue, alice):
    settlement = paid_settlement(alice, clinic_a)
    filling = settlement.order.lines.get(item__code="FI01")
    client.force_login(front_desk_a.user)
    response = client.post(reverse("checkout:refund", args=[settlement.id]),
                           {"scope": "lines", "line": [filling.id], "reason": "not done", "key": "k"})
    assert response.status_code == 302
    assert RefundSettlement.objects.get().amount_fen == 52800
    filling.refresh_from_db()
    assert filling.refunded_fen == 52800


@pytest.mark.parametrize("forged", ["²", "99999999999999999999999"])
def test_a_forged_line_value_is_no_line_not_a_server_error(client, front_desk_a, clinic_a, catalogue, alice, forged):
    settlement = paid_settlement(alice, clinic_a)
    client.force_login(front_desk_a.user)
    response = client.post(reverse("checkout:refund", args=[settlement.id]),
                           {"scope": "lines", "line": [forged], "reason": "not done", "key": "k"})
    assert response.status_code == 422 and RefundSettlement.objects.count() == 0


def test_a_refund_without_a_reason_is_refused_and_changes_nothing(client, front_desk_a, clinic_a, catalogue, alice):
    settlement = paid_settlement(alice, clinic_a)
    client.force_login(front_desk_a.user)
    response = client.post(reverse("checkout:refund", args=[settlement.id]), {"scope": "all", "key": "k"})
    assert response.status_code == 422 and RefundSettlement.objects.count() == 0


@pytest.mark.parametrize("data", [{"reason": "x", "key": "k"}, {"scope": "", "reason": "x", "key": "k"},
                                  {"scope": "lines", "reason": "x", "key": "k"}])
def test_a_refund_form_that_chooses_nothing_refunds_nothing(client, front_desk_a, clinic_a, catalogue, alice, data):
    # a post without "whole bill" or "selected lines", or with selected lines and none ticked, is no whole refund
    settlement = paid_settlement(alice, clinic_a)
    client.force_login(front_desk_a.user)
    response = client.post(reverse("checkout:refund", args=[settlement.id]), data)
    assert response.status_code == 422 and RefundSettlement.objects.count() == 0
    assert Order.objects.get(pk=settlement.order_id).refunded_fen == 0


def test_another_clinics_customer_and_settlement_are_404(client, front_desk_a, clinic_a, clinic_b, catalogue,
                                                         stranger_b):
    # given a settlement of a customer of clinic B
    settlement = paid_settlement(stranger_b, clinic_b)
    client.force_login(front_desk_a.user)
    # when / then
    assert client.get(reverse("checkout:new"), {"customer": stranger_b.id}).status_code == 404
    assert client.get(reverse("checkout:receipt", args=[settlement.id])).status_code == 404
    response = client.post(reverse("checkout:refund", args=[settlement.id]), {"scope": "all", "reason": "x",
                                                                               "key": "k"})
    assert response.status_code == 404 and RefundSettlement.objects.count() == 0


def test_staff_without_the_visit_permission_cannot_bill_or_refund(client, marketing, clinic_a, catalogue, alice):
    settlement = paid_settlement(alice, clinic_a)
    client.force_login(marketing.user)
    assert client.get(reverse("checkout:new"), {"customer": alice.id}).status_code == 403
    data = bill_data(alice, clinic_a, catalogue, action="pay", priced_total="66300", priced_cash="66300")
    assert client.post(reverse("checkout:new"), data).status_code == 403
    response = client.post(reverse("checkout:refund", args=[settlement.id]), {"scope": "all", "reason": "x",
                                                                               "key": "k"})
    assert response.status_code == 403
    assert Settlement.objects.count() == 1 and RefundSettlement.objects.count() == 0


def test_the_code_look_up_shows_a_cards_balance_expiry_and_history(client, front_desk_a, card):
    client.force_login(front_desk_a.user)
    response = client.get(reverse("checkout:codes"), {"code": card.code.lower()})
    assert response.status_code == 200
    html = response.content.decode()
    assert card.code in html and "¥600.00" in html and card.expires_at.strftime("%Y") in html
    assert "张伟" in html  # the giver


def test_the_code_look_up_writes_a_spend_as_money_with_a_minus_sign(client, front_desk_a, card):
    from smileloop.giftcards.services import giftcard_spend

    giftcard_spend(card=card, amount_fen=50_000, key="spend-1", source="order:1")
    client.force_login(front_desk_a.user)
    html = client.get(reverse("checkout:codes"), {"code": card.code}).content.decode()
    assert "−¥500.00" in html and "¥-500.00" not in html


def test_the_code_look_up_reads_a_cards_events_in_chinese(client, front_desk_a, card, alice):
    from django.utils import translation

    client.force_login(front_desk_a.user)
    client.post(reverse("checkout:holder_register"), {"code": card.code, "customer": alice.id})
    with translation.override("zh-hans"):
        html = client.get(reverse("checkout:codes"), {"code": card.code},
                          HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    history = html[html.index("<tbody>", html.index(card.code)):]
    history = history[:history.index("</tbody>")]
    assert "，由 张伟 赠送：" in history and "登记，此卡长期有效" in history, history
    assert " given by " not in history and "registered on" not in history


def test_the_code_look_up_names_the_excluded_categories_in_words(client, front_desk_a, card):
    client.force_login(front_desk_a.user)
    html = client.get(reverse("checkout:codes"), {"code": card.code}, HTTP_ACCEPT_LANGUAGE="zh-hans").text
    excluded = html[html.index('data-testid="excluded"'):]
    assert excluded[:excluded.index("</span>")].endswith(">口护产品") and "oral_care_product" not in html
    assert "特价项目及排除类别：<span" in html  # the full-width colon of a Chinese label, not ": "


def test_a_gift_card_that_pays_no_line_says_so_in_chinese_without_reversing_it():
    """"(special-price items and excluded categories)" explains why the card pays nothing; "……除外" said the
    opposite (every line except those)."""
    from django.utils import translation

    from smileloop.checkout.messages import PATTERNS
    from smileloop.core.messages import message_display

    message = ("gift card ABCD2345EFGH (储值卡1000) cannot pay for any line of this bill (special-price items and "
               "excluded categories)")
    with translation.override("zh-hans"):
        shown = message_display(message, patterns=PATTERNS)
    assert shown.startswith("储值卡 ABCD2345EFGH（储值卡1000）不能支付本单任何项目") and "除外" not in shown, shown


def test_the_code_look_up_names_no_patient_of_another_clinic(client, front_desk_a, card_of_clinic_b):
    # given a card whose giver and holder are clinic B's patients
    client.force_login(front_desk_a.user)
    # when clinic A's front desk looks its code up (a bearer code: valid, and looked up, at every clinic)
    response = client.get(reverse("checkout:codes"), {"code": card_of_clinic_b.code})
    # then the card is shown, its people only masked (facts and history), with no link to them
    assert response.status_code == 200
    html = response.content.decode()
    assert card_of_clinic_b.code in html and "¥600.00" in html
    assert "赵强" not in html and "钱多多" not in html
    assert "赵*" in html and "钱**" in html
    assert f"/customers/{card_of_clinic_b.giver_id}/" not in html and f"/customers/{card_of_clinic_b.holder_id}/" not in html


def test_the_code_look_up_names_no_voucher_holder_of_another_clinic(client, front_desk_a, cleaning_voucher,
                                                                    stranger_b):
    from smileloop.giftcards.services import voucher_issue

    voucher = voucher_issue(campaign=cleaning_voucher, customer=stranger_b, key="v-b")
    client.force_login(front_desk_a.user)
    html = client.get(reverse("checkout:codes"), {"code": voucher.code}).content.decode()
    assert voucher.code in html and "赵强" not in html and "赵*" in html


def test_an_unknown_code_is_a_clear_message(client, front_desk_a, chain):
    client.force_login(front_desk_a.user)
    response = client.get(reverse("checkout:codes"), {"code": "ZZZZ-ZZZZ"})
    assert response.status_code == 404 and "No voucher with the code" in response.content.decode()


def test_registering_the_holder_keeps_the_card_valid(client, front_desk_a, card, alice):
    client.force_login(front_desk_a.user)
    response = client.post(reverse("checkout:holder_register"), {"code": card.code, "customer": alice.id})
    assert response.status_code == 302
    card.refresh_from_db()
    assert (card.holder_id, card.expires_at) == (alice.id, None)


def test_registering_a_holder_outside_the_scope_changes_nothing(client, front_desk_a, card, stranger_b):
    client.force_login(front_desk_a.user)
    response = client.post(reverse("checkout:holder_register"), {"code": card.code, "customer": stranger_b.id})
    assert response.status_code == 422
    card.refresh_from_db()
    assert card.holder_id is None and card.expires_at is not None


def test_an_earlier_copy_of_a_paid_bill_page_sent_again_for_another_bill_pays_nothing_then_pays_it_as_new(
        client, chain, front_desk_a, clinic_a, catalogue, alice):
    # given alice's bill paid from a page whose form key is "form-1"
    client.force_login(front_desk_a.user)
    first = client.post(reverse("checkout:new"), bill_data(alice, clinic_a, catalogue, action="pay",
                                                           priced_total="66300", priced_cash="66300",
                                                           pay_method=["cash"], pay_amount=[""]))
    settlement = Settlement.objects.get()
    assert first["Location"] == reverse("checkout:receipt", args=[settlement.id])
    # when the cashier goes Back to that page (same key), bills another patient on it and pays
    bob = CustomerFactory(chain=chain, name="李雷", home_clinic=clinic_a)
    total = str(checkout_price(customer=bob, clinic=clinic_a, lines=[{"item_code": "CL01"}, {"item_code": "OC01"}]
                               ).total_fen)
    reused = client.post(reverse("checkout:new"), bill_data(bob, clinic_a, catalogue, action="pay",
                                                            priced_total=total, priced_cash=total,
                                                            pay_method=["cash"], pay_amount=[""]),
                         HTTP_ACCEPT_LANGUAGE="zh-hans")
    # then it is not answered with alice's receipt: nothing is recorded and the page says why
    assert reused.status_code == 409
    assert "此页面已为另一张账单收款" in reused.text
    assert Settlement.objects.count() == 1 and not Order.objects.filter(customer=bob).exists()
    # and the page it shows carries a new key, with which the bill is paid as its own
    new_key = reused.context["key"]
    assert new_key != "form-1"
    paid = client.post(reverse("checkout:new"), bill_data(bob, clinic_a, catalogue, action="pay", key=new_key,
                                                          priced_total=total, priced_cash=total,
                                                          pay_method=["cash"], pay_amount=[""]))
    assert paid.status_code == 302
    assert Order.objects.filter(customer=bob).count() == 1
    assert ledger_check(chain_id=alice.chain_id) == []


def test_a_refund_form_of_one_bill_sent_for_another_refunds_nothing(client, front_desk_a, clinic_a, catalogue, alice):
    # given two paid bills, the first refunded from a form whose key is "refund-form-1"
    first, second = paid_settlement(alice, clinic_a, key="pay-1"), paid_settlement(alice, clinic_a, key="pay-2")
    client.force_login(front_desk_a.user)
    done = client.post(reverse("checkout:refund", args=[first.id]), {"scope": "all", "reason": "x",
                                                                     "key": "refund-form-1"})
    assert done.status_code == 302
    # when the same form key is sent to refund the second bill
    reused = client.post(reverse("checkout:refund", args=[second.id]), {"scope": "all", "reason": "x",
                                                                        "key": "refund-form-1"})
    # then nothing is refunded of it, and the page says why
    assert reused.status_code == 409 and "different refund" in reused.text
    assert list(RefundSettlement.objects.values_list("settlement_id", flat=True)) == [first.id]
    assert Order.objects.get(pk=second.order_id).refunded_fen == 0


def test_a_double_clicked_refund_of_selected_lines_refunds_once(client, front_desk_a, clinic_a, catalogue, alice):
    # given a paid bill whose filling is refunded from the receipt's form
    settlement = paid_settlement(alice, clinic_a)
    filling = settlement.order.lines.get(item__code="FI01")
    client.force_login(front_desk_a.user)
    data = {"scope": "lines", "line": [filling.id], "reason": "not done", "key": "k"}
    # when the form is sent twice (the second after the first changed what is left of the line)
    first = client.post(reverse("checkout:refund", args=[settlement.id]), data)
    second = client.post(reverse("checkout:refund", args=[settlement.id]), data)
    # then the second is a replay of the first
    assert first.status_code == second.status_code == 302
    assert RefundSettlement.objects.get().amount_fen == 52800
