"""Front-desk QA sweep of the bill page: codes typed as the cashier reads them off a card or a voucher."""

import re

import pytest
from django.urls import reverse

from smileloop.checkout.forms import codes_split
from smileloop.ledger.models import LedgerTransaction
from smileloop.visits.models import Order

pytestmark = pytest.mark.django_db


def test_a_gift_card_code_typed_in_its_groups_with_spaces_pays_the_bill(client, front_desk_a, clinic_a, catalogue,
                                                                        alice, card):
    # given a cashier who types the card's code as printed on it, its groups separated by spaces (full-width too)
    client.force_login(front_desk_a.user)
    written = LedgerTransaction.objects.count()
    typed = {"spaces": card.code.replace("-", " "), "full-width": card.code.replace("-", "\u3000").lower()}
    for how, code in typed.items():
        # when the bill is priced with it
        response = client.post(reverse("checkout:new"), {
            "customer": alice.id, "clinic": clinic_a.id, "item": [catalogue["CL01"].id], "quantity": ["1"],
            "tooth": [""], "points_mode": "none", "wallet_mode": "none", "vouchers": "", "gift_cards": code,
            "wallet_amount": "", "key": "form-1"}, HTTP_HX_REQUEST="true")
        # then the card pays its part (洁牙 300.00 − the 88折 member discount = 264.00), as the look-up page reads it
        assert response.status_code == 200, (how, response.text)
        assert f"亲友储值卡 {card.code} 600.00 → 264.00 used, 336.00 left" in response.text, how
    assert Order.objects.count() == 0 and LedgerTransaction.objects.count() == written  # priced, nothing paid


@pytest.mark.parametrize("typed, codes", [
    ("EM4C TWHM FZXZ", ["EM4C TWHM FZXZ"]),
    ("EM4C-TWHM-FZXZ HNMB-XJUC-9GHA", ["EM4C-TWHM-FZXZ", "HNMB-XJUC-9GHA"]),
    ("EM4C TWHM FZXZ HNMB XJUC 9GHA", ["EM4C TWHM FZXZ", "HNMB XJUC 9GHA"]),
    ("EM4C - TWHM - FZXZ，HNMB-XJUC-9GHA", ["EM4C - TWHM - FZXZ", "HNMB-XJUC-9GHA"]),
    ("NOPE-NOPE HNMB-XJUC-9GHA", ["NOPE-NOPE", "HNMB-XJUC-9GHA"]),  # a wrong one is named as typed, on its own
    ("HNMB-XJUC-9GHA HNMB-XJUC-9GHA", ["HNMB-XJUC-9GHA", "HNMB-XJUC-9GHA"]),  # twice stays twice (refused)
    ("", []),
])
def test_the_bill_form_reads_each_code_whole(typed, codes):
    assert codes_split(typed) == codes


def test_a_card_registered_to_another_holder_is_refused_in_chinese_and_keeps_its_holder(client, front_desk_a, card,
                                                                                        alice, chain, clinic_a):
    from smileloop.customers.tests.factories import CustomerFactory

    # given a card whose holder alice was registered at the desk
    client.force_login(front_desk_a.user)
    assert client.post(reverse("checkout:holder_register"), {"code": card.code, "customer": alice.id}).status_code == 302
    other = CustomerFactory(chain=chain, name="李娜", home_clinic=clinic_a)

    # when a second person is registered as its holder, on a Chinese page
    response = client.post(reverse("checkout:holder_register"), {"code": card.code, "customer": other.id},
                           HTTP_ACCEPT_LANGUAGE="zh-hans")

    # then a refusal in Chinese (it was the service's English sentence), and the card keeps alice
    assert response.status_code == 422
    assert f"储值卡 {card.code} 已登记了其他持卡人，不能再登记" in response.text
    assert "already registered" not in response.text
    card.refresh_from_db()
    assert card.holder_id == alice.id


def _paid(alice, clinic_a):
    from smileloop.checkout.services import checkout_pay, checkout_price

    bill = checkout_price(customer=alice, clinic=clinic_a, lines=[{"item_code": "CL01"}, {"item_code": "FI01"}])
    return checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}], key="pay-1")


def test_a_line_refunded_in_full_since_the_page_was_read_is_named_not_a_bound_of_0_00_yuan(
        client, front_desk_a, clinic_a, catalogue, alice):
    from smileloop.checkout.models import RefundSettlement

    # given a bill whose filling was refunded from one copy of the receipt
    settlement = _paid(alice, clinic_a)
    filling = settlement.order.lines.get(item__code="FI01")
    client.force_login(front_desk_a.user)
    url = reverse("checkout:refund", args=[settlement.id])
    assert client.post(url, {"scope": "lines", "line": [filling.id], "reason": "未做", "key": "k1"}).status_code == 302

    # when an earlier copy of the page (its own key) ticks the filling again
    response = client.post(url, {"scope": "lines", "line": [filling.id], "reason": "未做", "key": "k2"},
                           HTTP_ACCEPT_LANGUAGE="zh-hans")

    # then the page says the line is refunded already (it said "must be between 0.01 and 0.00 yuan"), nothing more
    assert response.status_code == 422
    assert "树脂补牙 已全额退款，请取消勾选。本次未退款。" in response.text
    assert "0.00 元之间" not in response.text
    assert RefundSettlement.objects.count() == 1


def test_a_refund_sent_once_the_bill_is_refunded_in_full_says_why(client, front_desk_a, clinic_a, catalogue, alice):
    from smileloop.checkout.models import RefundSettlement

    # given a bill refunded in full from one copy of the receipt
    settlement = _paid(alice, clinic_a)
    client.force_login(front_desk_a.user)
    url = reverse("checkout:refund", args=[settlement.id])
    assert client.post(url, {"scope": "all", "reason": "不满意", "key": "k1"}).status_code == 302

    # when another copy of the page (its own key) refunds the whole bill again
    response = client.post(url, {"scope": "all", "reason": "不满意", "key": "k2"}, HTTP_ACCEPT_LANGUAGE="zh-hans")

    # then the refusal is on the page (the refund form is gone, and its message went with it: a bare 422)
    assert response.status_code == 422
    assert re.search(r'data-testid="problem">[^<]*没有可退的项目<', response.text)
    assert RefundSettlement.objects.count() == 1
