"""Earn-rule codes do not tell upper and lower case apart, and a top-up bonus never exceeds the top-up it rewards.

Services find a fixed rule by its code ("referral"): one saved as "Referral" was never found, and "referral" and
"Referral" could both be saved. Codes are now saved lower case (model clean and save), a code another rule of the
chain has in another case (saved before) is refused on `code`, and an award by code finds a rule whatever its case.
A bonus rule "top up 100, get 1000" (a typo for 100) was accepted and gave away more than was paid in: it is refused
on `bonus_fen` by the service, the staff page and the admin. Neither is a database constraint: rows saved before may
break them, and a migration adding one would fail on such a chain."""

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import translation

from smileloop.core.errors import ValidationFailed
from smileloop.ledger.models import LedgerTransaction
from smileloop.loyalty import services
from smileloop.loyalty.enums import EarnTrigger
from smileloop.loyalty.errors import RuleNotFound
from smileloop.loyalty.models import EarnRule, TopupBonusRule
from smileloop.loyalty.tests.factories import EarnRuleFactory, TopupBonusRuleFactory

pytestmark = pytest.mark.django_db

REFERRAL = {"code": "referral", "name": "推荐有礼", "trigger": EarnTrigger.REFERRAL, "category": "",
            "special_price": "any", "points_per_yuan": 0, "points": 10, "pending_days": 0, "validity_months": None,
            "is_active": True}
CASE_TWIN_ZH = "本连锁已有编码为 {code} 的积分规则：编码不区分大小写，请为此规则另取编码"
BONUS_ABOVE_ZH = "赠送金额不能超过它所奖励的充值金额：最多为最低充值金额 ¥100.00（填写的是 ¥1,000.00）"


@pytest.fixture
def chinese():
    with override_settings(LANGUAGE_CODE="zh-hans"), translation.override("zh-hans"):
        yield


def saved_before(rule: EarnRule, code: str) -> EarnRule:
    """A rule as a chain may hold it from before codes were lower-cased (written past the model's save)."""
    EarnRule.objects.filter(pk=rule.pk).update(code=code)
    rule.refresh_from_db()
    return rule


def refused(call) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        call()
    return {e.field: e.message for e in caught.value.errors}


def award_points(customer, code: str, key: str) -> int:
    tx = services.points_award(customer=customer, rule_code=code, key=key)
    return sum(e.amount for e in tx.entries.all() if e.amount > 0)


# --- earn-rule codes -----------------------------------------------------------------------------------------------


def test_a_code_typed_in_capitals_is_saved_lower_case_and_the_award_by_code_finds_it(chain, wang):
    # when staff save the referral rule as "Referral"
    rule = services.earn_rule_save(chain=chain, data={**REFERRAL, "code": "Referral"})
    # then it is stored as "referral", and awarding "referral" pays its points
    rule.refresh_from_db()
    assert rule.code == "referral"
    assert award_points(wang, "referral", "r-1") == 10


def test_a_second_rule_of_the_same_code_in_another_case_is_refused_and_not_saved(chain):
    # given the referral rule
    services.earn_rule_save(chain=chain, data=REFERRAL)
    # when another is saved as "REFERRAL"
    errors = refused(lambda: services.earn_rule_save(chain=chain, data={**REFERRAL, "code": "REFERRAL",
                                                                         "name": "另一条"}))
    # then it is refused as the same code, nothing saved
    assert errors == {"": "Another earn rule of this chain has this code."}
    assert list(EarnRule.objects.values_list("code", "name")) == [("referral", "推荐有礼")]


def test_a_code_a_rule_saved_before_holds_in_another_case_is_refused_naming_it(chain):
    # given "Referral", saved before codes were lower-cased
    old = saved_before(EarnRuleFactory(chain=chain, code="x", trigger=EarnTrigger.REFERRAL, points=5), "Referral")
    # when a new rule "referral" is saved, or another rule is renamed to it
    other = EarnRuleFactory(chain=chain, code="review", trigger=EarnTrigger.REVIEW, points=5)
    created = refused(lambda: services.earn_rule_save(chain=chain, data=REFERRAL))
    renamed = refused(lambda: services.earn_rule_save(chain=chain, rule=other, data={"code": "referral"}))
    # then both are refused on the code, naming the rule that has it; nothing changed
    message = ("another earn rule of this chain has the code Referral: codes do not tell upper and lower case apart, "
               "give this rule another code")
    assert created == renamed == {"code": message}
    assert sorted(EarnRule.objects.values_list("code", flat=True)) == ["Referral", "review"]
    # and the rule saved before may take another code of its own
    services.earn_rule_save(chain=chain, rule=old, data={"code": "Referral-old"})
    assert sorted(EarnRule.objects.values_list("code", flat=True)) == ["referral-old", "review"]


def test_a_rule_saved_before_in_capitals_is_found_by_its_lower_case_code(chain, wang):
    # given "Referral" (saved before) and nothing else
    saved_before(EarnRuleFactory(chain=chain, code="x", trigger=EarnTrigger.REFERRAL, points=7), "Referral")
    # when the referral service awards "referral" (and an API caller "REFERRAL")
    # then the rule is found and pays
    assert award_points(wang, "referral", "r-1") == 7
    assert award_points(wang, "REFERRAL", "r-2") == 7


def test_of_two_rules_saved_before_in_different_cases_the_award_takes_the_exact_code(chain, wang):
    # given "referral" and "Referral", both saved before (a chain may hold both)
    EarnRuleFactory(chain=chain, code="referral", trigger=EarnTrigger.REFERRAL, points=10)
    saved_before(EarnRuleFactory(chain=chain, code="x", trigger=EarnTrigger.REFERRAL, points=99), "Referral")
    # then each code awards its own rule, as before
    assert award_points(wang, "referral", "r-1") == 10
    assert award_points(wang, "Referral", "r-2") == 99
    # and a code no rule has in any case is still refused
    with pytest.raises(RuleNotFound):
        services.points_award(customer=wang, rule_code="review", key="r-3")
    assert LedgerTransaction.objects.count() == 2


def test_the_earn_rule_page_refuses_a_code_of_another_case_beside_the_field_in_chinese(client, chain, chain_admin,
                                                                                       chinese):
    # given "Referral", saved before
    saved_before(EarnRuleFactory(chain=chain, code="x", trigger=EarnTrigger.REFERRAL, points=5), "Referral")
    client.force_login(chain_admin.user)
    # when staff create "referral" on the configuration page
    response = client.post(reverse("loyalty:earn_rule_create"), {**REFERRAL, "validity_months": "", "is_active": "on"},
                           HTTP_ACCEPT_LANGUAGE="zh-hans")
    # then it is refused beside the code, in Chinese, naming the rule that has it
    assert response.status_code == 422
    assert response.context["form"].errors == {"code": [CASE_TWIN_ZH.format(code="Referral")]}
    assert list(EarnRule.objects.values_list("code", flat=True)) == ["Referral"]


def test_the_admin_saves_codes_lower_case_and_refuses_one_of_another_case(admin_client, chain):
    body = {**REFERRAL, "chain": chain.id, "validity_months": "", "is_active": "on"}
    # when a rule is added as "Referral", then another as "REFERRAL"
    first = admin_client.post(reverse("admin:loyalty_earnrule_add"), {**body, "code": "Referral"})
    second = admin_client.post(reverse("admin:loyalty_earnrule_add"), {**body, "code": "REFERRAL", "name": "另一条"})
    # then the first is stored lower case and the second is refused
    assert first.status_code == 302
    assert second.status_code == 200 and second.context["adminform"].form.errors
    assert list(EarnRule.objects.values_list("code", flat=True)) == ["referral"]


def test_the_admin_refuses_a_code_a_rule_saved_before_holds_in_another_case(admin_client, chain):
    saved_before(EarnRuleFactory(chain=chain, code="x", trigger=EarnTrigger.REFERRAL, points=5), "Referral")
    response = admin_client.post(reverse("admin:loyalty_earnrule_add"),
                                 {**REFERRAL, "chain": chain.id, "validity_months": "", "is_active": "on"})
    assert response.status_code == 200
    errors = {name: [str(m) for m in messages] for name, messages in response.context["adminform"].form.errors.items()}
    assert errors == {"code": ["another earn rule of this chain has the code Referral: codes do not tell upper and "
                               "lower case apart, give this rule another code"]}
    assert EarnRule.objects.count() == 1


# --- top-up bonus rules --------------------------------------------------------------------------------------------


def test_a_bonus_above_the_top_up_it_rewards_is_refused_naming_the_bonus(chain):
    # when "top up 100 yuan, get 1000 yuan" is saved
    errors = refused(lambda: services.topup_bonus_rule_save(chain=chain, data={"min_topup_fen": 10_000,
                                                                                "bonus_fen": 100_000}))
    # then the bonus is refused, nothing saved
    assert errors == {"bonus_fen": "must not exceed the top-up it rewards: at most ¥100.00, the minimum top-up "
                                   "(¥1,000.00 was given)"}
    assert not TopupBonusRule.objects.exists()


def test_a_bonus_rule_edited_to_give_more_than_its_top_up_is_refused_and_unchanged(chain):
    rule = TopupBonusRuleFactory(chain=chain, min_topup_fen=500_000, bonus_fen=40_000)
    # raising the bonus past the top-up, or lowering the top-up under the bonus
    assert list(refused(lambda: services.topup_bonus_rule_save(chain=chain, rule=rule,
                                                                data={"bonus_fen": 500_001}))) == ["bonus_fen"]
    rule.refresh_from_db()
    assert list(refused(lambda: services.topup_bonus_rule_save(chain=chain, rule=rule,
                                                                data={"min_topup_fen": 39_999}))) == ["bonus_fen"]
    rule.refresh_from_db()
    assert (rule.min_topup_fen, rule.bonus_fen) == (500_000, 40_000)


def test_a_bonus_as_large_as_the_top_up_is_accepted(chain):
    rule = services.topup_bonus_rule_save(chain=chain, data={"min_topup_fen": 10_000, "bonus_fen": 10_000})
    assert (rule.min_topup_fen, rule.bonus_fen) == (10_000, 10_000)


def test_the_bonus_rule_page_refuses_a_bonus_above_the_top_up_beside_the_bonus_in_chinese(client, chain_admin,
                                                                                         chinese):
    client.force_login(chain_admin.user)
    response = client.post(reverse("loyalty:bonus_rule_create"), {"min_topup_yuan": "100", "bonus_yuan": "1000",
                                                                  "is_active": "on"},
                           HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 422
    assert response.context["form"].errors == {"bonus_yuan": [BONUS_ABOVE_ZH]}
    assert not TopupBonusRule.objects.exists()


def test_the_admin_refuses_a_bonus_above_the_top_up_beside_the_bonus(admin_client, chain, chinese):
    response = admin_client.post(reverse("admin:loyalty_topupbonusrule_add"),
                                 {"chain": chain.id, "min_topup_fen": "10000", "bonus_fen": "100000",
                                  "validity_months": "", "is_active": "on"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 200
    errors = {name: [str(m) for m in messages] for name, messages in response.context["adminform"].form.errors.items()}
    assert errors == {"bonus_fen": [BONUS_ABOVE_ZH]}
    assert not TopupBonusRule.objects.exists()
    ok = admin_client.post(reverse("admin:loyalty_topupbonusrule_add"),
                           {"chain": chain.id, "min_topup_fen": "10000", "bonus_fen": "1000", "validity_months": "",
                            "is_active": "on"})
    assert ok.status_code == 302 and TopupBonusRule.objects.get().bonus_fen == 1000
