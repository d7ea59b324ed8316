"""The membership API end to end: scoping, idempotency, field-by-field refusals that change nothing."""

import json

import pytest

from smileloop.clinics.services import token_create
from smileloop.core.models import IdempotencyRecord
from smileloop.membership import services
from smileloop.membership.models import FamilyBinding, Membership, MembershipEvent, WalletShareConsent
from smileloop.membership.tests.conftest import patient
from smileloop.membership.tests.factories import TierFactory

pytestmark = pytest.mark.django_db
BASE = "/api/membership/customers"


@pytest.fixture
def token_a(front_desk_a):
    return token_create(username=front_desk_a.user.username)


def post(client, url, body, *, token, key="key-1"):
    headers = {"Authorization": f"Bearer {token}"}
    if key:
        headers["Idempotency-Key"] = key
    return client.post(url, data=json.dumps(body), content_type="application/json", headers=headers)


def test_enrol_answers_201_with_the_membership_and_a_replay_changes_nothing(client, token_a, wang, paid_plan,
                                                                           annual_tier):
    # when
    first = post(client, f"{BASE}/{wang.id}/enrol", {"plan_id": paid_plan.id}, token=token_a)
    again = post(client, f"{BASE}/{wang.id}/enrol", {"plan_id": paid_plan.id}, token=token_a)
    # then
    assert first.status_code == 201 and again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert first.json() == again.json()
    body = first.json()
    assert body["membership"]["tier"]["name"] == "年卡会员"
    assert body["discount"]["source"] == "own" and body["discount"]["discount_bp"] == 500
    assert [e["reason"] for e in body["events"]] == [
        f"enrolled in 年度会员 · 年卡会员: fee 899.00 paid on {body['membership']['started_at'][:10]}, valid until "
        f"{body['membership']['expires_at'][:10]}"]
    assert Membership.objects.count() == 1 and MembershipEvent.objects.count() == 1


def test_a_second_enrol_is_a_409_and_a_new_key_changes_nothing(client, token_a, wang, paid_plan, annual_tier):
    post(client, f"{BASE}/{wang.id}/enrol", {"plan_id": paid_plan.id}, token=token_a)
    response = post(client, f"{BASE}/{wang.id}/enrol", {"plan_id": paid_plan.id}, token=token_a, key="key-2")
    assert response.status_code == 409
    assert response.json()["code"] == "membership_exists"
    assert Membership.objects.count() == 1


def test_an_unknown_plan_is_a_422_on_its_field(client, token_a, wang):
    response = post(client, f"{BASE}/{wang.id}/enrol", {"plan_id": 999}, token=token_a)
    assert response.status_code == 422
    assert response.json() == {"code": "invalid", "message": "body.plan_id: is not a membership plan of this chain",
                               "errors": [{"field": "body.plan_id", "message": "is not a membership plan of this chain",
                                           "value": "999"}]}


def test_clinic_a_staff_gets_404_for_a_clinic_b_patient_and_the_key_stays_free(client, token_a, chain, clinic_b,
                                                                                paid_plan, annual_tier):
    other = patient(chain, clinic_b, "外院")
    response = post(client, f"{BASE}/{other.id}/enrol", {"plan_id": paid_plan.id}, token=token_a)
    assert response.status_code == 404
    assert client.get(f"{BASE}/{other.id}", headers={"Authorization": f"Bearer {token_a}"}).status_code == 404
    assert Membership.objects.count() == 0 and IdempotencyRecord.objects.count() == 0


def test_binding_without_consent_is_a_422_naming_the_field_and_binds_nobody(client, token_a, wang, spouse,
                                                                            family_plan, family_tier):
    services.membership_enrol(customer=wang, plan=family_plan)
    response = post(client, f"{BASE}/{wang.id}/family", {"member_id": spouse.id, "relation": "spouse",
                                                         "consent_source": "paper"}, token=token_a)
    assert response.status_code == 422
    assert response.json()["code"] == "consent_missing"
    assert response.json()["errors"][0]["field"] == "body.consent_evidence"
    assert FamilyBinding.objects.count() == 0


def test_binding_on_a_non_member_is_a_409_not_a_member(client, token_a, spouse, child):
    response = post(client, f"{BASE}/{spouse.id}/family", {"member_id": child.id, "relation": "child",
                                                           "consent_source": "paper"}, token=token_a)
    assert (response.status_code, response.json()["code"]) == (409, "not_a_member")


def test_the_family_flow_bind_share_wallet_and_read_back(client, token_a, wang, spouse, family_plan, family_tier):
    # given
    services.membership_enrol(customer=wang, plan=family_plan)
    # when
    bound = post(client, f"{BASE}/{wang.id}/family", {"member_id": spouse.id, "relation": "spouse",
                                                      "consent_source": "paper", "consent_evidence": "同意书 7"},
                 token=token_a, key="b1")
    shared = post(client, f"{BASE}/{wang.id}/wallet-share", {"member_id": spouse.id, "mode": "per_use",
                                                             "source": "wechat"}, token=token_a, key="w1")
    member_view = client.get(f"{BASE}/{spouse.id}", headers={"Authorization": f"Bearer {token_a}"}).json()
    # then
    assert bound.status_code == 201
    assert shared.json()["family"][0]["wallet_share"] == "per_use"
    assert member_view["discount"]["source"] == "family"
    assert member_view["bound_to"] == {"holder_customer_id": wang.id,
                                       "membership_id": Membership.objects.get(customer=wang).id, "relation": "spouse"}
    revoked = post(client, f"{BASE}/{wang.id}/wallet-share/{spouse.id}/revoke", {}, token=token_a, key="w2")
    assert revoked.json()["family"][0]["wallet_share"] is None
    assert WalletShareConsent.objects.filter(revoked_at__isnull=True).count() == 0


def test_friend_link_and_staff_reveal_over_the_api(client, token_a, wang, friend, family_plan, family_tier,
                                                   friend_card):
    services.membership_enrol(customer=wang, plan=family_plan)
    linked = post(client, f"{BASE}/{friend.id}/friend-link", {"member_id": wang.id}, token=token_a, key="f1")
    assert linked.status_code == 201 and linked.json()["discount"]["source"] == "friend"
    assert linked.json()["friend_of"] == wang.id
    before = client.get(f"{BASE}/{wang.id}", headers={"Authorization": f"Bearer {token_a}"}).json()
    assert [b["name"] for b in before["benefits"]] == []
    revealed = post(client, f"{BASE}/{wang.id}/benefits/{friend_card.id}/reveal", {"detail": "治疗过半"}, token=token_a,
                    key="r1")
    assert [(b["name"], b["trigger"], b["detail"], b["action_code"]) for b in revealed.json()["benefits"]] == [
        ("亲友储值卡 600 元", "staff_decision", "治疗过半", "issue_friend_card")]


def test_downgrade_refused_by_the_tier_is_a_409_and_evaluate_upgrades(client, token_a, wang, family_plan,
                                                                     family_tier, premium_tier):
    services.membership_enrol(customer=wang, plan=family_plan)
    refused = post(client, f"{BASE}/{wang.id}/downgrade", {"tier_id": family_tier.id}, token=token_a, key="d1")
    assert (refused.status_code, refused.json()["code"]) == (422, "not_a_downgrade")
    wang.lifetime_spend_fen = 10_000_000
    wang.save(update_fields=["lifetime_spend_fen"])
    evaluated = post(client, f"{BASE}/{wang.id}/evaluate", {}, token=token_a, key="e1")
    assert evaluated.json()["membership"]["tier"]["name"] == "家庭尊享"
    refused = post(client, f"{BASE}/{wang.id}/downgrade", {"tier_id": family_tier.id}, token=token_a, key="d2")
    assert (refused.status_code, refused.json()["code"]) == (409, "downgrade_not_allowed")


def test_marketing_may_read_but_not_write(client, marketing, wang, paid_plan, annual_tier):
    token = token_create(username=marketing.user.username)
    assert client.get(f"{BASE}/{wang.id}", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    response = post(client, f"{BASE}/{wang.id}/enrol", {"plan_id": paid_plan.id}, token=token)
    assert response.status_code == 403 and Membership.objects.count() == 0


# --- input bounds (core.api's shared types) ------------------------------------------------------------

@pytest.mark.parametrize("fee", [2**63, -1, 10**12 + 1])
def test_a_renewal_fee_out_of_range_is_a_422_on_fee_fen_and_changes_nothing(client, token_a, wang, paid_plan,
                                                                            annual_tier, fee):
    services.membership_enrol(customer=wang, plan=paid_plan)
    before = Membership.objects.values("expires_at", "fee_fen").get()
    response = post(client, f"{BASE}/{wang.id}/renew", {"fee_fen": fee}, token=token_a)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.fee_fen"]
    assert Membership.objects.values("expires_at", "fee_fen").get() == before
    assert MembershipEvent.objects.count() == 1


def test_a_client_top_up_total_beyond_the_money_bound_is_a_422_and_leaves_the_tier(client, token_a, wang,
                                                                                  stored_plan, gold_tier):
    TierFactory(plan=stored_plan, rank=2, name="钻石卡", discount_bp=1000, min_spend_fen=0, min_topup_fen=10**9)
    services.membership_enrol(customer=wang, plan=stored_plan, topup_total_fen=gold_tier.min_topup_fen)
    response = post(client, f"{BASE}/{wang.id}/evaluate", {"topup_total_fen": 2**63}, token=token_a)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.topup_total_fen"]
    assert Membership.objects.get().tier_id == gold_tier.id
    assert MembershipEvent.objects.count() == 1


@pytest.mark.parametrize("action", ["renew", "evaluate", "cancel"])
def test_a_json_array_body_is_a_422_not_an_empty_object(client, token_a, wang, paid_plan, annual_tier, action):
    services.membership_enrol(customer=wang, plan=paid_plan)
    response = client.post(f"{BASE}/{wang.id}/{action}", data="[]", content_type="application/json",
                           headers={"Authorization": f"Bearer {token_a}", "Idempotency-Key": "k"})
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "body", "message": "must be a JSON object"}]
    assert MembershipEvent.objects.count() == 1


def test_the_membership_api_names_no_patient_of_another_clinic(client, token_a, clinic_b, wang, spouse, friend,
                                                               family_plan, family_tier):
    # given a member of clinic B with a friend and a bound husband in clinic A
    wang.home_clinic = clinic_b
    wang.save(update_fields=["home_clinic"])
    services.membership_enrol(customer=wang, plan=family_plan)
    services.friend_link(friend=friend, member=wang)
    services.family_bind(holder=wang, member=spouse, relation="spouse", consent_source="in_person",
                         consent_evidence="F-1")
    headers = {"Authorization": f"Bearer {token_a}"}
    # when clinic A reads the friend's and the husband's memberships
    as_friend = client.get(f"{BASE}/{friend.id}", headers=headers)
    as_spouse = client.get(f"{BASE}/{spouse.id}", headers=headers)
    # then neither names clinic B's member nor gives her id
    assert as_friend.status_code == as_spouse.status_code == 200
    assert as_friend.json()["friend_of"] is None and as_spouse.json()["bound_to"]["holder_customer_id"] is None
    for response in (as_friend, as_spouse):
        assert "王芳" not in response.content.decode() and f"#{wang.id}" not in response.content.decode()
        assert "王*" in response.json()["discount"]["reason"]


def _documented_successes(path: str) -> set[int]:
    from config.api import api

    operation = api.get_openapi_schema(path_prefix="/api/")["paths"][f"/api/membership/customers/{path}"]["post"]
    return {int(status) for status in operation["responses"] if 200 <= int(status) < 300}


def test_each_membership_write_documents_the_one_success_status_it_answers(client, token_a, wang, spouse, friend,
                                                                          family_plan, family_tier, premium_tier):
    # when
    answered = {
        "{customer_id}/enrol": post(client, f"{BASE}/{wang.id}/enrol", {"plan_id": family_plan.id}, token=token_a,
                                    key="s1").status_code,
        "{customer_id}/family": post(client, f"{BASE}/{wang.id}/family", {
            "member_id": spouse.id, "relation": "spouse", "consent_source": "paper", "consent_evidence": "同意书 7"},
            token=token_a, key="s2").status_code,
        "{customer_id}/wallet-share": post(client, f"{BASE}/{wang.id}/wallet-share", {
            "member_id": spouse.id, "mode": "per_use", "source": "wechat"}, token=token_a, key="s3").status_code,
        "{customer_id}/friend-link": post(client, f"{BASE}/{friend.id}/friend-link", {"member_id": wang.id},
                                          token=token_a, key="s4").status_code,
        "{customer_id}/evaluate": post(client, f"{BASE}/{wang.id}/evaluate", {}, token=token_a, key="s5").status_code,
        "{customer_id}/upgrade": post(client, f"{BASE}/{wang.id}/upgrade", {"tier_id": premium_tier.id},
                                      token=token_a, key="s6").status_code,
        "{customer_id}/cancel": post(client, f"{BASE}/{wang.id}/cancel", {"reason": "搬家"}, token=token_a,
                                     key="s7").status_code,
    }
    # then
    assert {path: _documented_successes(path) for path in answered} == {path: {s} for path, s in answered.items()}
    assert answered["{customer_id}/enrol"] == 201 and answered["{customer_id}/cancel"] == 200
