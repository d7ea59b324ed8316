import datetime as dt
import json

import pytest

from smileloop.clinics.services import token_create
from smileloop.ledger.models import LedgerTransaction
from smileloop.ledger.selectors import ledger_check
from smileloop.loyalty.models import EntitlementUse, GiftExchange, PackagePurchase, Topup
from smileloop.loyalty.selectors import WalletBalance
from smileloop.loyalty.services import points_award, wallet_balance, wallet_topup
from smileloop.loyalty.tests.factories import GiftFactory
from smileloop.membership.services import family_bind


@pytest.fixture
def token_a(front_desk_a):
    return token_create(username=front_desk_a.user.username)


def post(client, url, body, *, token, key="key-1"):
    headers = {"Authorization": f"Bearer {token}"}
    if key:
        headers["Idempotency-Key"] = key
    return client.post(url, data=json.dumps(body), content_type="application/json", headers=headers)


def get(client, url, *, token, **params):
    return client.get(url, params, headers={"Authorization": f"Bearer {token}"})


def test_points_show_balance_pending_and_lots(client, token_a, wang, rules, now):
    # given
    points_award(customer=wang, rule_code="referral", key="r1", at=now - dt.timedelta(days=1))
    # when
    response = get(client, f"/api/loyalty/customers/{wang.id}/points", token=token_a)
    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["balance"], body["available"], body["pending"]) == (1000, 1000, 0)
    assert [lot["remaining"] for lot in body["lots"]] == [1000]


def test_awarding_points_is_idempotent_by_header(client, token_a, wang, rules, chain):
    # when
    first = post(client, f"/api/loyalty/customers/{wang.id}/points/award", {"rule_code": "review"}, token=token_a)
    again = post(client, f"/api/loyalty/customers/{wang.id}/points/award", {"rule_code": "review"}, token=token_a)
    # then
    assert (first.status_code, again.status_code) == (201, 201)
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert first.json()["balance"] == 50
    assert LedgerTransaction.objects.count() == 1
    assert ledger_check(chain_id=chain.id) == []


def test_an_unknown_rule_is_a_422_with_the_field_and_nothing_changes(client, token_a, wang, rules):
    response = post(client, f"/api/loyalty/customers/{wang.id}/points/award", {"rule_code": "nope"}, token=token_a)
    assert response.status_code == 422
    assert response.json()["code"] == "unknown_rule"
    assert response.json()["errors"][0]["field"] == "body.rule_code"
    assert LedgerTransaction.objects.count() == 0


def test_a_clinic_a_token_gets_404_for_a_clinic_b_patient_and_nothing_changes(client, token_a, stranger_b, rules,
                                                                              bonus_rules):
    # when
    reads = [get(client, f"/api/loyalty/customers/{stranger_b.id}/{path}", token=token_a)
             for path in ("points", "wallet", "entitlements")]
    write = post(client, f"/api/loyalty/customers/{stranger_b.id}/wallet/topups",
                 {"amount_fen": 100_000, "method": "cash"}, token=token_a)
    # then
    assert [r.status_code for r in reads] == [404, 404, 404]
    assert write.status_code == 404 and write.json()["code"] == "not_found"
    assert Topup.objects.count() == 0 and LedgerTransaction.objects.count() == 0


def test_the_redeem_quote_applies_the_cap(client, token_a, wang, rules, terms, now):
    points_award(customer=wang, rule_code="referral", key="r1", at=now - dt.timedelta(days=1))
    response = get(client, f"/api/loyalty/customers/{wang.id}/points/redeem-quote", token=token_a, bill_fen=5000)
    assert response.json() == {"bill_fen": 5000, "points": 500, "value_fen": 500, "points_per_yuan": 100,
                               "max_share_bp": 1000}


def test_a_gift_out_of_stock_is_a_409_and_nothing_changes(client, token_a, wang, rules, chain, now):
    # given
    points_award(customer=wang, rule_code="referral", key="r1", at=now)
    gift = GiftFactory(chain=chain, points_price=100, stock=1)
    # when
    ok = post(client, f"/api/loyalty/customers/{wang.id}/gift-exchanges", {"gift_id": gift.id}, token=token_a)
    refused = post(client, f"/api/loyalty/customers/{wang.id}/gift-exchanges", {"gift_id": gift.id}, token=token_a,
                   key="key-2")
    # then
    assert ok.status_code == 201 and ok.json()["stock_left"] == 0 and ok.json()["points_available"] == 900
    assert refused.status_code == 409 and refused.json()["code"] == "out_of_stock"
    assert GiftExchange.objects.count() == 1


def test_a_top_up_and_its_refund_through_the_api(client, token_a, wang, bonus_rules, chain):
    # when
    topup = post(client, f"/api/loyalty/customers/{wang.id}/wallet/topups",
                 {"amount_fen": 1_000_000, "method": "wechat_pay"}, token=token_a)
    refund = post(client, f"/api/loyalty/topups/{topup.json()['id']}/refunds", {"amount_fen": 500_000},
                  token=token_a, key="key-2")
    # then
    assert topup.status_code == 201
    assert topup.json()["wallet"] == {"customer_id": wang.id, "principal_fen": 1_000_000, "bonus_fen": 100_000,
                                      "total_fen": 1_100_000}
    assert refund.status_code == 201
    assert (refund.json()["amount_fen"], refund.json()["bonus_forfeited_fen"]) == (500_000, 50_000)
    assert wallet_balance(wang) == WalletBalance(500_000, 50_000)
    assert ledger_check(chain_id=chain.id) == []


def test_a_top_up_refund_must_say_how_much_and_an_empty_body_refunds_nothing(client, token_a, wang, bonus_rules):
    # given
    topup = wallet_topup(customer=wang, amount_fen=1_000_000, method="wechat_pay", key="t-1")
    url = f"/api/loyalty/topups/{topup.id}/refunds"
    # when the amount is left out ({} refunded all the principal), or both choices are given
    empty = post(client, url, {}, token=token_a, key="r-1")
    both = post(client, url, {"amount_fen": 1000, "whole": True}, token=token_a, key="r-2")
    # then 422 naming both fields, and nothing changed
    for refused in (empty, both):
        assert refused.status_code == 422, refused.content
        assert sorted(e["field"] for e in refused.json()["errors"]) == ["body.amount_fen", "body.whole"]
    assert wallet_balance(wang) == WalletBalance(1_000_000, 100_000)
    # when the whole principal is asked for in words
    whole = post(client, url, {"whole": True}, token=token_a, key="r-3")
    # then it is refunded, with its bonus forfeited
    assert whole.status_code == 201, whole.content
    assert (whole.json()["amount_fen"], whole.json()["bonus_forfeited_fen"]) == (1_000_000, 100_000)
    assert wallet_balance(wang) == WalletBalance(0, 0)


def test_a_bad_top_up_method_is_a_422_naming_the_field(client, token_a, wang):
    response = post(client, f"/api/loyalty/customers/{wang.id}/wallet/topups",
                    {"amount_fen": 1000, "method": "wallet"}, token=token_a)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.method"]
    assert Topup.objects.count() == 0


def test_a_family_transfer_without_consent_is_a_422_consent_missing(client, token_a, wang, spouse, bonus_rules,
                                                                    family_membership):
    # given
    family_bind(holder=wang, member=spouse, relation="spouse", consent_source="paper", consent_evidence="F-1")
    wallet_topup(customer=wang, amount_fen=100_000, method="cash", key="t1")
    # when
    response = post(client, f"/api/loyalty/customers/{wang.id}/wallet/transfers",
                    {"to_customer_id": spouse.id, "amount_fen": 10_000}, token=token_a)
    # then
    assert response.status_code == 422 and response.json()["code"] == "consent_missing"
    assert wallet_balance(spouse).total == 0 and wallet_balance(wang).total == 100_000


def test_selling_a_package_and_redeeming_until_none_is_left(client, token_a, wang, child, family_package, catalogue):
    # given
    sale = post(client, f"/api/loyalty/customers/{wang.id}/packages",
                {"package_id": family_package.id, "covered_ids": [wang.id, child.id]}, token=token_a)
    url = f"/api/loyalty/customers/{wang.id}/entitlements/redeem"
    # when
    uses = [post(client, url, {"item_code": "CL01"}, token=token_a, key=f"use-{i}") for i in range(3)]
    # then
    assert sale.status_code == 201 and sale.json()["covered_ids"] == sorted([wang.id, child.id])
    assert [u.status_code for u in uses] == [201, 201, 409]
    assert [u.json().get("remaining") for u in uses[:2]] == [1, 0]
    assert uses[2].json()["code"] == "no_entitlement"
    assert EntitlementUse.objects.count() == 2
    left = get(client, f"/api/loyalty/customers/{wang.id}/entitlements", token=token_a, item_code="EX01")
    assert [(e["label"], e["remaining"]) for e in left.json()] == [("口腔检查", 2)]


def test_covering_someone_outside_the_household_is_a_422_per_person(client, token_a, wang, family_package, chain,
                                                                    clinic_a):
    from smileloop.loyalty.tests.conftest import patient

    neighbour = patient(chain, clinic_a, "邻居")
    response = post(client, f"/api/loyalty/customers/{wang.id}/packages",
                    {"package_id": family_package.id, "covered_ids": [wang.id, neighbour.id]}, token=token_a)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.covered[1]"]
    assert PackagePurchase.objects.count() == 0


def test_two_long_idempotency_keys_alike_in_their_first_150_characters_are_two_top_ups(client, token_a, wang, chain):
    """Keys of up to 255 characters are valid; the service's key was the first 150 of `api:<user>:<key>`, so a second
    top-up whose key differed only further on was taken for a replay of the first and refused as another request."""
    head = "pos-7f3a:" + "x" * 200
    first = post(client, f"/api/loyalty/customers/{wang.id}/wallet/topups",
                 {"amount_fen": 100_000, "method": "wechat_pay"}, token=token_a, key=head + "-1")
    second = post(client, f"/api/loyalty/customers/{wang.id}/wallet/topups",
                  {"amount_fen": 200_000, "method": "cash"}, token=token_a, key=head + "-2")
    again = post(client, f"/api/loyalty/customers/{wang.id}/wallet/topups",
                 {"amount_fen": 200_000, "method": "cash"}, token=token_a, key=head + "-2")
    assert (first.status_code, second.status_code, again.status_code) == (201, 201, 201), second.content
    assert again.json() == second.json() and again["Idempotent-Replayed"] == "true"
    assert sorted(Topup.objects.values_list("amount_fen", flat=True)) == [100_000, 200_000]
    assert wallet_balance(wang).principal == 300_000 and ledger_check(chain_id=chain.id) == []
