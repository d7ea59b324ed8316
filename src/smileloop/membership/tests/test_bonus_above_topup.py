"""A top-up bonus above the top-up it rewards (充100送1000, a typo for 送100) is refused on a plan's and a tier's
bonus rules: by the services (naming the field and the rule, nothing saved) and beside the field on the staff pages
and in the admin (BonusRulesField, in Chinese). A bonus equal to the top-up is a real promotion (充1000送1000)."""

import pytest
from django import forms
from django.utils import translation

from smileloop.core.errors import ValidationFailed
from smileloop.membership import services
from smileloop.membership.enums import PlanKind
from smileloop.membership.forms import BonusRulesField
from smileloop.membership.models import MembershipPlan, Tier
from smileloop.membership.tests.test_plans import PAID, TIER

pytestmark = pytest.mark.django_db

TYPO = [{"min_topup_fen": 50_000, "bonus_fen": 5_000}, {"min_topup_fen": 10_000, "bonus_fen": 100_000}]


def test_a_plan_whose_bonus_exceeds_its_top_up_is_refused_naming_the_rule_and_nothing_is_saved(chain):
    with pytest.raises(ValidationFailed) as caught:
        services.plan_save(chain=chain, data={**PAID, "kind": PlanKind.STORED_VALUE, "topup_bonus_rules": TYPO})
    assert [(e.field, e.message) for e in caught.value.errors] == [
        ("topup_bonus_rules", "rule 2: the bonus (100000 fen) must not exceed the top-up it rewards (10000 fen)")]
    assert not MembershipPlan.objects.exists()


def test_a_tier_whose_bonus_exceeds_its_top_up_is_refused_and_an_equal_bonus_is_kept(paid_plan):
    with pytest.raises(ValidationFailed) as caught:
        services.tier_save(plan=paid_plan, data={**TIER, "topup_bonus_rules": TYPO[1:]})
    assert [e.field for e in caught.value.errors] == ["topup_bonus_rules"]
    assert not Tier.objects.filter(plan=paid_plan).exists()
    equal = [{"min_topup_fen": 100_000, "bonus_fen": 100_000}]
    assert services.tier_save(plan=paid_plan, data={**TIER, "topup_bonus_rules": equal}).topup_bonus_rules == equal


def test_the_rules_field_refuses_the_row_in_chinese_and_keeps_an_equal_bonus():
    field = BonusRulesField(required=False)
    with translation.override("zh-hans"):
        with pytest.raises(forms.ValidationError) as caught:
            field.clean([("100", "10"), ("500", "5000")])
        assert [str(m) for m in caught.value.messages] == ["第 2 行：赠送金额不能超过对应的充值金额（最多 ¥500.00）。"]
    assert field.clean([("1000", "1000")]) == [{"min_topup_fen": 100_000, "bonus_fen": 100_000}]
