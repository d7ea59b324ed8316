"""A top-up bonus rule whose bonus is above the top-up it rewards, stored before the settings refused it (or written
around them), is not paid at top-up time: the top-up it is the best match of is refused (409 `bonus_rule_invalid`),
naming the rule's figures, in Chinese on the loyalty card, and nothing is written, until staff correct or deactivate
it; the settings page and the admin list flag such a rule. Skipping it instead would pay the patient less than the
rule they were told about, without anyone noticing."""

import json

import pytest
from django.urls import reverse

from smileloop.clinics.services import token_create
from smileloop.core.errors import ValidationFailed
from smileloop.ledger.models import LedgerTransaction
from smileloop.loyalty import services
from smileloop.loyalty.errors import BonusRuleInvalid
from smileloop.loyalty.models import Topup, TopupBonusRule
from smileloop.loyalty.tests.factories import TopupBonusRuleFactory

pytestmark = pytest.mark.django_db

REFUSED_ZH = ("此次充值适用的充值赠送规则赠送 ¥1,000.00，高于它所奖励的最低充值金额 ¥100.00：请先在积分与储值设置中"
              "修改或停用该规则。")


@pytest.fixture
def typo_rule(chain):
    """充100送1000 (a typo for 送100), written to the database past the settings' check, as a rule saved before it."""
    rule = TopupBonusRuleFactory(chain=chain, min_topup_fen=10_000, bonus_fen=1_000)
    TopupBonusRule.objects.filter(pk=rule.pk).update(bonus_fen=100_000)
    rule.refresh_from_db()
    return rule


def nothing_topped_up(customer):
    assert not Topup.objects.exists()
    assert not LedgerTransaction.objects.exists()
    assert services.wallet_balance(customer).total == 0


def test_a_top_up_reaching_a_stored_rule_whose_bonus_exceeds_its_top_up_is_refused(wang, typo_rule):
    # when ¥100.00 is topped up, which reaches the rule
    with pytest.raises(BonusRuleInvalid) as refused:
        services.wallet_topup(customer=wang, amount_fen=10_000, method="cash", key="t1")
    # then it is refused naming the rule, and nothing is written (no principal, no bonus)
    assert (refused.value.code, refused.value.status, refused.value.field) == ("bonus_rule_invalid", 409, "amount_fen")
    assert refused.value.params == {"name": "≥10000 → 100000", "minimum": "100.00", "bonus": "1,000.00"}
    assert "gives ¥1,000.00, more than the minimum top-up ¥100.00" in refused.value.message
    nothing_topped_up(wang)


def test_a_top_up_that_reaches_only_a_valid_rule_is_paid_as_before(chain, wang, typo_rule):
    TopupBonusRuleFactory(chain=chain, min_topup_fen=5_000, bonus_fen=500)
    topup = services.wallet_topup(customer=wang, amount_fen=9_999, method="cash", key="t1")
    assert (topup.amount_fen, topup.bonus_fen) == (9_999, 500)


def test_a_corrected_rule_pays_again(wang, typo_rule):
    services.topup_bonus_rule_save(chain=typo_rule.chain, rule=typo_rule, data={"bonus_fen": 10_000})
    topup = services.wallet_topup(customer=wang, amount_fen=10_000, method="cash", key="t1")
    assert (topup.bonus_fen, topup.bonus_rule_id) == (10_000, typo_rule.pk)


def test_the_loyalty_card_refuses_it_in_chinese_and_tops_up_nothing(client, front_desk_a, wang, typo_rule):
    client.force_login(front_desk_a.user)
    response = client.post(reverse("loyalty:topup", args=[wang.id]),
                           {"amount_yuan": "100", "method": "cash", "key": "k1"}, HTTP_HX_REQUEST="true",
                           HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 422
    assert REFUSED_ZH in response.content.decode()
    nothing_topped_up(wang)


def test_the_api_answers_409_bonus_rule_invalid(client, front_desk_a, wang, typo_rule):
    response = client.post(f"/api/loyalty/customers/{wang.id}/wallet/topups",
                           data=json.dumps({"amount_fen": 10_000, "method": "cash"}), content_type="application/json",
                           headers={"Authorization": f"Bearer {token_create(username=front_desk_a.user.username)}",
                                    "Idempotency-Key": "t1"})
    assert (response.status_code, response.json()["code"]) == (409, "bonus_rule_invalid")
    nothing_topped_up(wang)


def test_the_settings_page_and_the_admin_flag_the_rule(client, admin_client, chain_admin, chain, typo_rule):
    TopupBonusRuleFactory(chain=chain, min_topup_fen=5_000, bonus_fen=500)
    client.force_login(chain_admin.user)
    html = client.get(reverse("loyalty:config"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    section = html.split('id="bonus-rules"')[1].split("</section>")[0]
    assert section.count("无效：赠送金额高于最低充值金额") == 1
    admin_page = admin_client.get(reverse("admin:loyalty_topupbonusrule_changelist")).content.decode()
    assert admin_page.count('alt="False"') == 1 and admin_page.count('alt="True"') == 3  # 2 active, 1 valid


def test_a_stored_invalid_rule_can_be_switched_off_as_it_is_and_not_back_on(wang, typo_rule):
    # when the desk's refusal is followed ("deactivate it"): the rule saved with only 启用 unticked
    services.topup_bonus_rule_save(chain=typo_rule.chain, rule=typo_rule, data={"is_active": False})
    typo_rule.refresh_from_db()
    assert (typo_rule.is_active, typo_rule.bonus_fen) == (False, 100_000)
    # then top-ups go through without it
    topup = services.wallet_topup(customer=wang, amount_fen=10_000, method="cash", key="t1")
    assert (topup.bonus_fen, topup.bonus_rule_id) == (0, None)
    # and switching it back on as it is is refused
    with pytest.raises(ValidationFailed) as refused:
        services.topup_bonus_rule_save(chain=typo_rule.chain, rule=typo_rule, data={"is_active": True})
    assert refused.value.errors[0].field == "bonus_fen"
    typo_rule.refresh_from_db()
    assert typo_rule.is_active is False


def test_insurance_cannot_pay_money_into_a_wallet_and_is_not_offered(wang):
    # medical insurance pays for care given; it may not fund a prepaid balance
    with pytest.raises(ValidationFailed) as refused:
        services.wallet_topup(customer=wang, amount_fen=10_000, method="insurance", key="t1")
    assert refused.value.errors[0].field == "method"
    nothing_topped_up(wang)
    from smileloop.loyalty.forms import TopupForm

    assert "insurance" not in dict(TopupForm().fields["method"].choices)
    assert "cash" in dict(TopupForm().fields["method"].choices)
