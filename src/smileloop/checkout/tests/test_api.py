import json

import pytest
from django.utils import timezone

from smileloop.checkout.models import RefundSettlement, Settlement
from smileloop.clinics.enums import Role
from smileloop.clinics.services import token_create
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.giftcards.models import GiftCard
from smileloop.ledger.enums import AccountKind
from smileloop.ledger.models import LedgerTransaction
from smileloop.ledger.selectors import ledger_check
from smileloop.ledger.services import account_for
from smileloop.visits.models import Order
from smileloop.visits.services import order_record

PRICE, PAY = "/api/checkout/price", "/api/checkout/pay"


@pytest.fixture
def token_a(front_desk_a):
    return token_create(username=front_desk_a.user.username)


def post(client, url, body, *, token, key="key-1"):
    headers = {"Authorization": f"Bearer {token}"}
    if key:
        headers["Idempotency-Key"] = key
    return client.post(url, json.dumps(body), content_type="application/json", headers=headers)


def bill(customer, card, **extra):
    return {"customer_id": customer.id, "clinic": "SH01", "lines": [{"item_code": "CL01"}, {"item_code": "OC01"}],
            "gift_cards": [card.code], **extra}


def test_price_returns_the_breakdown_and_writes_nothing(client, token_a, catalogue, alice, card):
    count = LedgerTransaction.objects.count()
    response = post(client, PRICE, bill(alice, card), token=token_a, key=None)
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["total_fen"], data["cash_fen"]) == (26400 + 39900, 39900)
    assert [(t["kind"], t["amount_fen"]) for t in data["tenders"]] == [("giftcard", 26400), ("cash", 39900)]
    assert LedgerTransaction.objects.count() == count


def test_pay_is_idempotent_on_the_header(client, token_a, catalogue, alice, card, chain):
    body = bill(alice, card, payments=[{"method": "cash", "amount_fen": 39900}])
    first = post(client, PAY, body, token=token_a)
    again = post(client, PAY, body, token=token_a)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1 and Settlement.objects.count() == 1
    assert ledger_check(chain_id=chain.id) == []


@pytest.mark.parametrize(("codes", "status", "code"), [
    (["AAAA-BBBB-CCCC"], 422, "wrong_code"),
])
def test_a_wrong_card_code_is_a_clear_4xx_and_nothing_changes(client, token_a, catalogue, alice, card, codes, status,
                                                              code):
    count = LedgerTransaction.objects.count()
    response = post(client, PAY, bill(alice, card, gift_cards=codes, payments=[]), token=token_a)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert LedgerTransaction.objects.count() == count and Order.objects.count() == 0


def test_a_card_on_excluded_items_only_is_422_excluded_item(client, token_a, catalogue, alice, card):
    body = bill(alice, card, payments=[])
    body["lines"] = [{"item_code": "OC01"}]
    response = post(client, PAY, body, token=token_a)
    assert (response.status_code, response.json()["code"]) == (422, "excluded_item")
    assert Order.objects.count() == 0 and GiftCard.objects.get().account.balance == 60000


def test_missing_family_wallet_consent_is_422_consent_missing(client, token_a, catalogue, alice, wallet, clinic_a):
    relative = CustomerFactory(chain=alice.chain, name="王小明", home_clinic=clinic_a)
    body = {"customer_id": relative.id, "clinic": "SH01", "lines": [{"item_code": "CL01"}],
            "wallet": {"holder_id": alice.id, "amount_fen": 1000}, "payments": []}
    response = post(client, PAY, body, token=token_a)
    assert (response.status_code, response.json()["code"]) == (422, "consent_missing")
    assert Order.objects.count() == 0


def test_a_consent_for_this_use_does_not_open_the_wallet_of_someone_who_is_not_family(client, token_a, catalogue,
                                                                                      alice, wallet, clinic_a):
    # given a patient of the same clinic who is not bound to alice's family card
    stranger = CustomerFactory(chain=alice.chain, name="李雷", home_clinic=clinic_a)
    body = {"customer_id": stranger.id, "clinic": "SH01", "lines": [{"item_code": "CL01"}],
            "wallet": {"holder_id": alice.id, "amount_fen": "max", "per_use_consent": True}}
    # when the bill is priced "with the holder's consent for this use"
    response = post(client, PRICE, body, token=token_a, key=None)
    # then pricing refuses it as pay would, naming the field, instead of offering alice's stored value
    assert response.status_code == 422, response.content
    data = response.json()
    assert data["code"] == "consent_missing"
    assert data["errors"][0]["field"] == "body.wallet.holder_id"
    assert "is not a family member bound to" in data["message"] and "balance_before_fen" not in response.text


def test_an_unknown_code_names_the_list_entry_that_holds_it(client, token_a, catalogue, alice, card):
    vouchers = post(client, PRICE, bill(alice, card, vouchers=["NOPE-0000-0001"]), token=token_a, key=None)
    cards = post(client, PRICE, bill(alice, card, gift_cards=[card.code, "NOPE-0000-0002"]), token=token_a, key=None)
    assert (vouchers.status_code, vouchers.json()["code"]) == (422, "wrong_code")
    assert vouchers.json()["errors"][0]["field"] == "body.vouchers[0]"
    assert (cards.status_code, cards.json()["code"]) == (422, "wrong_code")
    assert cards.json()["errors"][0]["field"] == "body.gift_cards[1]"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("points", -5, 'Input should be greater than or equal to 0, or "max"'),
    ("points", 1.5, 'must be a whole number (a JSON integer) or "max", not 1.5'),
    ("wallet.amount_fen", "all", 'must be a whole number (a JSON integer) or "max", not the string "all"'),
    ("wallet.amount_fen", "5000", 'must be a whole number (a JSON integer) or "max", not the string "5000": send 5000, '
                                  'without quotes'),
])
def test_a_bad_number_or_max_is_one_error_at_the_fields_own_path(client, token_a, catalogue, alice, card, field,
                                                                 value, message):
    body = bill(alice, card)
    if field == "points":
        body["points"] = value
    else:
        body["wallet"] = {"amount_fen": value}
    response = post(client, PRICE, body, token=token_a, key=None)
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": f"body.{field}", "message": message, "value": str(value)}]


def test_a_pay_reusing_the_external_id_of_an_earlier_bill_is_a_409_and_changes_nothing(client, token_a, catalogue,
                                                                                       alice, card, chain):
    # given a bill paid with the POS's id POS-1
    first = post(client, PAY, bill(alice, card, payments=[{"method": "cash", "amount_fen": 39900}],
                                   external_id="POS-1"), token=token_a, key="pay-1")
    balance = GiftCard.objects.get().account.balance
    # when another bill (a new key) arrives with the same POS id
    body = bill(alice, card, payments=[{"method": "cash", "amount_fen": 39900}], external_id="POS-1")
    body["lines"] = [{"item_code": "CL01"}, {"item_code": "OC01"}, {"item_code": "OC01"}]
    body["payments"] = [{"method": "cash", "amount_fen": 79800}]
    second = post(client, PAY, body, token=token_a, key="pay-2")
    # then it is refused by name (not a 500, not a second settlement of the first order), and nothing moves
    assert first.status_code == 201, first.content
    assert (second.status_code, second.json()["code"]) == (409, "external_id_conflict"), second.content
    assert second.json()["errors"][0]["field"] == "body.external_id"
    assert Settlement.objects.count() == 1 and Order.objects.count() == 1
    assert GiftCard.objects.get().account.balance == balance
    assert ledger_check(chain_id=chain.id) == []


def test_a_clinic_a_token_cannot_price_for_a_clinic_b_patient(client, token_a, catalogue, card, chain, clinic_b):
    other = CustomerFactory(chain=chain, name="赵六", home_clinic=clinic_b)
    response = post(client, PRICE, bill(other, card), token=token_a, key=None)
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_refund_through_the_api_gives_the_card_back(client, token_a, catalogue, alice, card, chain):
    paid = post(client, PAY, bill(alice, card, payments=[{"method": "cash", "amount_fen": 39900}]), token=token_a)
    response = post(client, f"/api/checkout/settlements/{paid.json()['id']}/refund",
                    {"whole": True, "reason": "cancelled"}, token=token_a, key="refund-1")
    assert response.status_code == 201, response.content
    assert response.json()["amount_fen"] == 66300
    assert GiftCard.objects.get().account.balance == 60000
    assert ledger_check(chain_id=chain.id) == []


def test_the_settlement_names_its_order_lines_so_a_client_can_refund_one_of_them(client, token_a, catalogue, alice,
                                                                                 card, chain):
    # given a bill paid through the API (its breakdown was priced before the order, so it carries no line ids)
    paid = post(client, PAY, bill(alice, card, payments=[{"method": "cash", "amount_fen": 39900}]), token=token_a)
    lines = paid.json()["order_lines"]
    assert [(line["item_code"], line["quantity"], line["amount_fen"], line["refunded_fen"]) for line in lines] == [
        ("CL01", 1, 26400, 0), ("OC01", 1, 39900, 0)]
    # when the toothbrush is refunded by the id the settlement gave
    url = f"/api/checkout/settlements/{paid.json()['id']}"
    refund = post(client, f"{url}/refund", {"lines": [{"line_id": lines[1]["line_id"], "quantity": 1}]}, token=token_a,
                  key="refund-toothbrush")
    # then exactly that line is refunded, and the settlement read again shows it
    assert refund.status_code == 201, refund.content
    again = client.get(url, headers={"Authorization": f"Bearer {token_a}"}).json()["order_lines"]
    assert [(line["refunded_fen"], line["units_refunded"]) for line in again] == [(0, 0), (39900, 1)]
    assert ledger_check(chain_id=chain.id) == []


def test_a_refund_line_with_both_a_quantity_and_an_amount_is_refused_and_refunds_nothing(client, token_a, catalogue,
                                                                                         alice, card):
    paid = post(client, PAY, bill(alice, card, payments=[{"method": "cash", "amount_fen": 39900}]), token=token_a)
    line = paid.json()["order_lines"][1]
    response = post(client, f"/api/checkout/settlements/{paid.json()['id']}/refund",
                    {"lines": [{"line_id": line["line_id"], "quantity": 1, "amount_fen": 100}]}, token=token_a,
                    key="refund-both")
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "body.lines[0]", "message": "give quantity or amount_fen, not both"}]
    assert RefundSettlement.objects.count() == 0 and Order.objects.get().refunded_fen == 0


def test_gift_card_lookup_shows_status_balance_and_history(client, token_a, card):
    response = client.get(f"/api/giftcards/codes/{card.code.lower()}", headers={"Authorization": f"Bearer {token_a}"})
    assert response.status_code == 200
    data = response.json()
    assert (data["status"], data["balance_fen"], data["face_value_fen"]) == ("active", 60000, 60000)
    assert [h["what"] for h in data["history"]] == ["Issued", "Issued"]


def test_issue_friend_card_and_register_holder_through_the_api(client, token_a, chain, clinic_a, giver, alice, card):
    # A card outside a member's benefit is free value: the front desk may not hand one out (value.issue) …
    response = post(client, "/api/giftcards/friend-cards", {"member_id": giver.id, "programme": "friend-card"},
                    token=token_a)
    assert response.status_code == 403
    # … the clinic's director may, within the programme's limit: the giver already has a card this year.
    director = StaffFactory(chain=chain, role=Role.CLINIC_DIRECTOR, clinics=[clinic_a])
    response = post(client, "/api/giftcards/friend-cards", {"member_id": giver.id, "programme": "friend-card"},
                    token=token_create(username=director.user.username), key="director-1")
    assert (response.status_code, response.json()["code"]) == (409, "limit_reached"), response.content[:3000]
    response = post(client, f"/api/giftcards/codes/{card.code}/holder", {"customer_id": alice.id}, token=token_a, key="h1")
    assert response.status_code == 200 and response.json()["expires_at"] is None


@pytest.mark.parametrize(("raw", "field"), [
    ("[]", "body"), ("null", "body"), ('{"lines": null, "reason": ""}', "body.lines"), ('{"reason": "x"}', "body.lines"),
    ("{}", "body.lines"), ('{"whole": false}', "body.lines"), ('{"whole": "true"}', "body.whole"),
    ('{"lines": []}', "body.lines"), ('{"lines": [{"line_id": 9223372036854775808}]}', "body.lines[0].line_id"),
])
def test_a_refund_of_nothing_or_of_a_malformed_body_is_a_422_and_refunds_nothing(client, token_a, catalogue, alice,
                                                                                  card, raw, field):
    paid = post(client, PAY, bill(alice, card, payments=[{"method": "cash", "amount_fen": 39900}]), token=token_a)
    response = client.post(f"/api/checkout/settlements/{paid.json()['id']}/refund", raw,
                           content_type="application/json",
                           headers={"Authorization": f"Bearer {token_a}", "Idempotency-Key": "refund-1"})
    assert response.status_code == 422, response.content
    assert response.json()["errors"][0]["field"] == field
    assert RefundSettlement.objects.count() == 0 and Order.objects.get().refunded_fen == 0


def test_refunding_a_bill_already_refunded_in_full_is_a_422_on_the_field_sent(client, token_a, catalogue, alice,
                                                                                card):
    paid = post(client, PAY, bill(alice, card, payments=[{"method": "cash", "amount_fen": 39900}]), token=token_a)
    url = f"/api/checkout/settlements/{paid.json()['id']}/refund"
    assert post(client, url, {"whole": True}, token=token_a, key="refund-1").status_code == 201
    again = post(client, url, {"whole": True}, token=token_a, key="refund-2")
    assert again.status_code == 422
    assert again.json()["errors"] == [{"field": "body.whole", "message": "nothing left to refund"}]
    line = post(client, url, {"lines": [{"line_id": paid.json()["order_lines"][0]["line_id"]}]}, token=token_a,
                key="refund-3")
    assert line.status_code == 422
    assert line.json()["errors"][0]["field"].startswith("body.lines")
    assert RefundSettlement.objects.count() == 1


def test_a_refund_must_name_its_lines_or_say_whole_and_nothing_is_refunded_otherwise(client, token_a, catalogue,
                                                                                      alice, card):
    # given a paid bill
    paid = post(client, PAY, bill(alice, card, payments=[{"method": "cash", "amount_fen": 39900}]), token=token_a)
    url = f"/api/checkout/settlements/{paid.json()['id']}/refund"
    line_id = paid.json()["order_lines"][1]["line_id"]
    # when a client sends neither (it dropped `lines` by mistake), or both
    neither = post(client, url, {"reason": "wrong tooth"}, token=token_a, key="refund-neither")
    both = post(client, url, {"whole": True, "lines": [{"line_id": line_id}]}, token=token_a, key="refund-both")
    # then each is a 422 naming both fields, and nothing is refunded
    choice = 'give "lines" (the lines to refund) or "whole": true (everything not yet refunded)'
    assert (neither.status_code, neither.json()["errors"]) == (422, [
        {"field": "body.lines", "message": choice}, {"field": "body.whole", "message": choice}])
    assert (both.status_code, [e["field"] for e in both.json()["errors"]]) == (422, ["body.lines", "body.whole"])
    assert both.json()["errors"][0]["message"] == 'give "lines" or "whole": true, not both'
    assert RefundSettlement.objects.count() == 0 and Order.objects.get().refunded_fen == 0
    # and the key stays free: the same key with an explicit choice refunds
    again = post(client, url, {"whole": True, "reason": "wrong tooth"}, token=token_a, key="refund-neither")
    assert again.status_code == 201, again.content
    assert Order.objects.get().refunded_fen == Order.objects.get().amount_fen


def test_a_priced_bill_and_a_settlement_name_their_clinic_as_an_object(client, token_a, catalogue, alice, card,
                                                                       clinic_a):
    clinic = {"id": clinic_a.id, "code": clinic_a.code, "name": clinic_a.name}
    priced = post(client, PRICE, bill(alice, card), token=token_a, key=None)
    paid = post(client, PAY, bill(alice, card, payments=[{"method": "cash", "amount_fen": 39900}]), token=token_a)
    read = client.get(f"/api/checkout/settlements/{paid.json()['id']}", headers={"Authorization": f"Bearer {token_a}"})
    assert (priced.json()["clinic"], priced.json()["clinic_id"]) == (clinic, clinic_a.id)
    assert (paid.json()["breakdown"]["clinic"], paid.json()["breakdown"]["clinic_id"]) == (clinic, clinic_a.id)
    assert read.json()["breakdown"]["clinic"] == clinic


def test_the_code_look_up_api_gives_no_id_of_another_clinics_patients(client, token_a, card_of_clinic_b):
    # given a card given and held by clinic B's patients, looked up by clinic A's front desk
    response = client.get(f"/api/giftcards/codes/{card_of_clinic_b.code}", HTTP_AUTHORIZATION=f"Bearer {token_a}")
    # then the card is there, its people are not (no ids; the history names them masked)
    assert response.status_code == 200
    body = response.json()
    assert body["balance_fen"] == 60000
    assert body["giver_id"] is None and body["holder_id"] is None
    assert "赵强" not in response.content.decode() and "钱多多" not in response.content.decode()
    assert any("赵*" in row["detail"] for row in body["history"])


def test_a_bill_priced_and_paid_through_the_api_names_no_family_card_holder_of_another_clinic(
        client, token_a, clinic_a, clinic_b, catalogue, alice, card):
    # given alice (王芳) of clinic B, whose family card her husband of clinic A is bound to (by a chain role)
    from smileloop.membership.services import family_bind

    alice.home_clinic = clinic_b
    alice.save(update_fields=["home_clinic"])
    spouse = CustomerFactory(chain=alice.chain, name="李强", home_clinic=clinic_a)
    family_bind(holder=alice, member=spouse, relation="spouse", consent_source="paper", consent_evidence="F-1")
    # when clinic A prices and pays the husband's bill (the family card discount applies)
    body = bill(spouse, card)
    priced = post(client, PRICE, body, token=token_a, key=None)
    paid = post(client, PAY, {**body, "payments": [{"method": "cash", "amount_fen": priced.json()["cash_fen"]}]},
                token=token_a)
    # then the discount's label names her masked, in the price and in the stored settlement
    assert priced.status_code == 200 and paid.status_code == 201, paid.content
    assert priced.json()["discount_source"] == "family"
    for text in (json.dumps(priced.json(), ensure_ascii=False), json.dumps(paid.json(), ensure_ascii=False)):
        assert "王芳" not in text and "family card of 王*, 家庭会员, 12% off" in text


def test_an_order_paid_at_checkout_is_refunded_on_its_settlement_not_through_the_orders_api(client, token_a, catalogue,
                                                                                          alice, card, chain):
    # given a bill paid partly with a gift card
    paid = post(client, PAY, bill(alice, card, payments=[{"method": "cash", "amount_fen": 39900}]), token=token_a)
    settlement = Settlement.objects.get(pk=paid.json()["id"])
    balance = GiftCard.objects.get(pk=card.pk).account.balance
    # when the PMS refunds its order through the orders API, which knows nothing of the card
    response = post(client, f"/api/orders/{settlement.order_id}/refunds", {"whole": True, "reason": "cancelled"},
                    token=token_a, key="refund-1")
    # then it is refused, saying where to refund it, and nothing is refunded
    assert response.status_code == 409, response.content
    body = response.json()
    assert body["code"] == "refund_elsewhere"
    assert f"/api/checkout/settlements/{settlement.id}/refund" in body["message"]
    assert Order.objects.get(pk=settlement.order_id).refunded_fen == 0
    assert GiftCard.objects.get(pk=card.pk).account.balance == balance
    # and the settlement's own refund gives back the card and the cash
    again = post(client, f"/api/checkout/settlements/{settlement.id}/refund", {"whole": True, "reason": "cancelled"},
                 token=token_a, key="refund-2")
    assert again.status_code == 201, again.content
    assert Order.objects.get(pk=settlement.order_id).refunded_fen == settlement.total_fen
    assert GiftCard.objects.get(pk=card.pk).account.balance == balance + 26400
    assert ledger_check(chain_id=chain.id) == []


def test_an_order_recorded_by_the_pms_is_still_refunded_through_the_orders_api(client, token_a, catalogue, alice):
    # given an order the PMS recorded (no checkout settlement)
    order, _ = order_record(customer=alice, clinic=alice.home_clinic, ordered_at=timezone.now(),
                            lines=[{"item_code": "CL01"}],
                            payments=[{"method": "cash", "amount_fen": 30000}])
    # when it is refunded through the orders API, then it is
    response = post(client, f"/api/orders/{order.id}/refunds", {"whole": True, "reason": "cancelled"}, token=token_a,
                    key="r-1")
    assert response.status_code == 201, response.content
    assert Order.objects.get(pk=order.id).refunded_fen == order.amount_fen


# --- the wallet's amount is never implied ------------------------------------------------------------------------

WALLET_AMOUNT_REQUIRED = 'is required: the amount to take from the wallet in fen, or "max" for as much as it can pay'


@pytest.mark.parametrize("wallet_body", [{}, {"holder_id": "ALICE"}, {"per_use_consent": True}])
@pytest.mark.parametrize("url", [PRICE, PAY])
def test_a_wallet_without_an_amount_is_a_422_naming_it_and_spends_nothing(client, token_a, catalogue, alice, card,
                                                                          wallet, url, wallet_body):
    # given alice holds ¥100.00 of stored value
    balance = account_for(chain_id=alice.chain_id, kind=AccountKind.WALLET_PRINCIPAL, customer=alice).balance
    count = LedgerTransaction.objects.count()
    # when a client sends the wallet without saying how much of it to use (`"wallet": {}` spent all it could pay)
    body = bill(alice, card, wallet={k: alice.id if v == "ALICE" else v for k, v in wallet_body.items()},
                payments=[{"method": "cash", "amount_fen": 39900}])
    if url == PRICE:
        body.pop("payments")
    response = post(client, url, body, token=token_a, key=None if url == PRICE else "pay-1")
    # then it is refused by the field, saying what to send, and the wallet is untouched
    assert response.status_code == 422, response.content
    assert response.json()["errors"] == [{"field": "body.wallet.amount_fen", "message": WALLET_AMOUNT_REQUIRED}]
    assert account_for(chain_id=alice.chain_id, kind=AccountKind.WALLET_PRINCIPAL, customer=alice).balance == balance
    assert LedgerTransaction.objects.count() == count and Order.objects.count() == 0


def test_a_wallet_amount_of_max_or_a_number_is_what_is_used(client, token_a, catalogue, alice, wallet):
    # given alice holds ¥100.00 and a cleaning costs her ¥264.00
    body = {"customer_id": alice.id, "clinic": "SH01", "lines": [{"item_code": "CL01"}]}
    # when she asks for "max", for ¥30.00, or leaves the wallet out
    as_much = post(client, PRICE, {**body, "wallet": {"amount_fen": "max"}}, token=token_a, key=None)
    some = post(client, PRICE, {**body, "wallet": {"amount_fen": 3000}}, token=token_a, key=None)
    none = post(client, PRICE, body, token=token_a, key=None)
    # then the wallet pays exactly that
    def wallet_fen(response):
        assert response.status_code == 200, response.content
        return sum(t["amount_fen"] for t in response.json()["tenders"] if t["kind"] == "wallet")
    assert (wallet_fen(as_much), wallet_fen(some), wallet_fen(none)) == (10000, 3000, 0)


def test_points_left_out_use_no_points(client, token_a, catalogue, alice, points):
    # given alice holds points a bill could use ("max" uses them)
    body = {"customer_id": alice.id, "clinic": "SH01", "lines": [{"item_code": "CL01"}]}
    with_max = post(client, PRICE, {**body, "points": "max"}, token=token_a, key=None)
    # when a bill says nothing of points, then it uses none (their default is 0, not "max")
    without = post(client, PRICE, body, token=token_a, key=None)
    assert [t["kind"] for t in with_max.json()["tenders"]] == ["points", "cash"]
    assert [t["kind"] for t in without.json()["tenders"]] == ["cash"]


def test_the_document_shows_the_wallet_amount_as_required(client):
    document = client.get("/api/openapi.json").json()
    wallet = document["components"]["schemas"]["WalletIn"]
    assert wallet["required"] == ["amount_fen"]
    assert "default" not in wallet["properties"]["amount_fen"]
    assert '"max"' in wallet["properties"]["amount_fen"]["description"]
    assert document["components"]["schemas"]["PriceIn"]["properties"]["points"]["default"] == 0


def test_a_refund_line_naming_neither_a_quantity_nor_an_amount_is_refused_and_refunds_nothing(client, token_a,
                                                                                             catalogue, alice, card):
    # given a paid bill, nothing of it refunded
    paid = post(client, PAY, bill(alice, card, payments=[{"method": "cash", "amount_fen": 39900}]), token=token_a)
    line = paid.json()["order_lines"][1]
    # when a line is named without saying how much of it to refund
    response = post(client, f"/api/checkout/settlements/{paid.json()['id']}/refund",
                    {"lines": [{"line_id": line["line_id"]}]}, token=token_a, key="refund-bare-line")
    # then it is a 422 on that line (not the line, nor the bill, refunded in full), and nothing is refunded
    assert response.status_code == 422, response.content
    assert response.json()["errors"][0]["field"] == "body.lines[0].amount_fen"
    assert RefundSettlement.objects.count() == 0 and Order.objects.get().refunded_fen == 0


def test_long_idempotency_keys_pay_and_refund_as_any_other(client, token_a, catalogue, alice, card, chain):
    """Keys of up to 255 characters are valid: pay refused one over ~146 as a bad `key` (a field the client never
    sent), and the refund overflowed its 200-character key column (a 500 on PostgreSQL)."""
    head = "till-3:" + "k" * 240
    paid = post(client, PAY, bill(alice, card, payments=[{"method": "cash", "amount_fen": 39900}]), token=token_a,
                key=head + "-a")
    other = post(client, PAY, bill(alice, card, gift_cards=[], payments=[{"method": "cash", "amount_fen": 66300}]),
                 token=token_a, key=head + "-b")
    assert (paid.status_code, other.status_code) == (201, 201), (paid.content, other.content)
    assert Settlement.objects.count() == 2  # two keys alike in their first 247 characters are two bills
    refund = post(client, f"/api/checkout/settlements/{paid.json()['id']}/refund", {"whole": True}, token=token_a,
                  key=head + "-r")
    again = post(client, f"/api/checkout/settlements/{paid.json()['id']}/refund", {"whole": True}, token=token_a,
                 key=head + "-r")
    assert (refund.status_code, again.status_code) == (201, 201), refund.content
    assert again.json() == refund.json() and RefundSettlement.objects.count() == 1
    assert GiftCard.objects.get().account.balance == 60000 and ledger_check(chain_id=chain.id) == []
