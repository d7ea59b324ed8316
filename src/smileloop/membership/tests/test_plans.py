"""Configuration bounds: a plan's duration and money, a tier's rank, multiplier, slots and thresholds, a benefit's
numbers and friend-card terms are refused outside their bounds, by the service (naming the field, changing nothing)
and beside the field on the staff pages (in Chinese); a plan saved before the bounds existed is refused by name
where a membership would be dated by it, never a 500."""

import datetime as dt
from decimal import Decimal

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import translation

from smileloop.core.errors import ValidationFailed
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.membership import services
from smileloop.membership.enums import MembershipStatus, PlanKind
from smileloop.membership.errors import PeriodOutOfRange
from smileloop.membership.models import Membership, MembershipPlan, Tier
from smileloop.membership.tests.conftest import NOW
from smileloop.membership.tests.factories import MembershipFactory, PlanFactory, TierFactory

pytestmark = pytest.mark.django_db

BIG = 2**63 - 1
PAID = {"name": "年度会员", "kind": PlanKind.PAID, "fee_fen": 89_900, "duration_months": 12, "topup_bonus_rules": []}
TIER = {"rank": 1, "name": "年卡", "discount_bp": 500, "points_multiplier": Decimal("1.20"), "family_slots": 1,
        "friend_discount_bp": 0, "min_spend_fen": 0, "min_topup_fen": 0}


def refused(call) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        call()
    return {e.field: e.message for e in caught.value.errors}


# --- the services --------------------------------------------------------------------------------------------


def test_a_plan_with_an_oversized_duration_or_amounts_out_of_range_is_refused_naming_each_field(chain):
    errors = refused(lambda: services.plan_save(chain=chain, data={
        **PAID, "duration_months": 100_000, "fee_fen": 10**11, "spend_threshold_fen": -5}))
    assert errors == {"duration_months": "must be a whole number between 1 and 1200",
                      "fee_fen": "must be a whole number between 0 and 10000000000",
                      "spend_threshold_fen": "must be a whole number between 0 and 10000000000"}
    assert MembershipPlan.objects.count() == 0


def test_a_plan_update_to_an_oversized_duration_changes_nothing(chain):
    plan = services.plan_save(chain=chain, data=PAID)
    assert refused(lambda: services.plan_save(chain=chain, plan=plan, data={"duration_months": BIG})) == {
        "duration_months": "must be a whole number between 1 and 1200"}
    plan.refresh_from_db()
    assert plan.duration_months == 12


def test_a_plans_kind_cannot_change_while_it_has_members_and_can_before(chain):
    plan = services.plan_save(chain=chain, data=PAID)
    assert services.plan_save(chain=chain, plan=plan, data={"kind": PlanKind.STORED_VALUE}).kind == PlanKind.STORED_VALUE
    services.plan_save(chain=chain, plan=plan, data={"kind": PlanKind.PAID})
    MembershipFactory(customer=CustomerFactory(chain=chain), tier=TierFactory(plan=plan))
    assert refused(lambda: services.plan_save(chain=chain, plan=plan, data={"kind": PlanKind.STORED_VALUE})) == {
        "kind": "cannot change while the plan has members: make a new plan instead"}
    plan.refresh_from_db()
    assert plan.kind == PlanKind.PAID
    assert services.plan_save(chain=chain, plan=plan, data={"name": "年度会员（新）"}).name == "年度会员（新）"


def test_top_up_bonus_rules_beyond_the_money_bound_are_refused(chain):
    errors = refused(lambda: services.plan_save(chain=chain, data={
        **PAID, "topup_bonus_rules": [{"min_topup_fen": 10**20, "bonus_fen": 1}]}))
    assert errors == {"topup_bonus_rules": 'must be a list of {"min_topup_fen": 1 to 10000000000, "bonus_fen": 0 to '
                                           '10000000000} (fen)'}


def test_a_tier_rank_below_one_and_a_multiplier_out_of_range_are_refused_naming_each_field(paid_plan):
    errors = refused(lambda: services.tier_save(plan=paid_plan, data={
        **TIER, "rank": 0, "points_multiplier": Decimal("-1"), "family_slots": 500, "min_spend_fen": -5}))
    assert errors == {"rank": "must be a whole number between 1 and 100",
                      "points_multiplier": "must be between 0 and 10",
                      "family_slots": "must be a whole number between 0 and 20",
                      "min_spend_fen": "must be a whole number between 0 and 10000000000"}
    assert Tier.objects.count() == 0


def test_a_tier_may_earn_no_points_with_a_multiplier_of_zero(paid_plan):
    tier = services.tier_save(plan=paid_plan, data={**TIER, "points_multiplier": Decimal("0")})
    assert tier.points_multiplier == 0


def test_a_second_tier_with_the_same_rank_is_refused_on_the_rank(paid_plan):
    services.tier_save(plan=paid_plan, data=TIER)
    assert refused(lambda: services.tier_save(plan=paid_plan, data={**TIER, "name": "金卡"})) == {
        "rank": "another tier of this plan has this rank"}
    assert paid_plan.tiers.count() == 1


def test_a_higher_tier_may_not_ask_less_than_a_lower_one(paid_plan):
    services.tier_save(plan=paid_plan, data={**TIER, "rank": 1, "name": "银卡", "min_spend_fen": 1_000_000})
    services.tier_save(plan=paid_plan, data={**TIER, "rank": 3, "name": "钻石", "min_spend_fen": 5_000_000})
    assert refused(lambda: services.tier_save(plan=paid_plan, data={
        **TIER, "rank": 2, "name": "金卡", "min_spend_fen": 500_000})) == {
        "min_spend_fen": "must be at least 10,000.00 yuan, the threshold of 银卡 ranked below"}
    assert refused(lambda: services.tier_save(plan=paid_plan, data={
        **TIER, "rank": 2, "name": "金卡", "min_spend_fen": 6_000_000})) == {
        "min_spend_fen": "must be at most 50,000.00 yuan, the threshold of 钻石 ranked above"}
    assert paid_plan.tiers.count() == 2
    gold = services.tier_save(plan=paid_plan, data={**TIER, "rank": 2, "name": "金卡", "min_spend_fen": 1_000_000})
    assert gold.min_spend_fen == 1_000_000  # equal to the one below is allowed


def test_a_friend_card_benefit_with_an_oversized_validity_is_refused(annual_tier):
    with pytest.raises(ValidationFailed) as caught:
        services.benefit_save(tier=annual_tier, data={
            "name": "亲友卡", "is_hidden": True, "trigger": "staff_decision", "action_code": "issue_friend_card",
            "action_data": {"amount_fen": -1, "valid_months": 100_000}, "position": 5000})
    assert [(e.field, e.message) for e in caught.value.errors] == [
        ("position", "must be a whole number between 0 and 1000"),
        ("action_data", '"amount_fen" must be a whole number of fen between 1 and 10000000000'),
        ("action_data", '"valid_months" must be a whole number of months between 1 and 1200')]
    assert annual_tier.benefits.count() == 0


# --- plans saved before the bounds: refused by name where a membership is dated by them, never a 500 -------------
# 5000 months fits a PostgreSQL smallint (as such a row could) and is beyond the bounds.


def test_enrolling_in_a_plan_saved_with_an_oversized_duration_is_refused_by_name_and_writes_nothing(chain, wang):
    # given
    plan = PlanFactory(chain=chain, name="超长会员", kind=PlanKind.PAID, fee_fen=100, duration_months=5000,
                       spend_threshold_fen=None, auto_enrol=False)
    TierFactory(plan=plan, rank=1, min_spend_fen=0)
    # when
    with pytest.raises(PeriodOutOfRange) as caught:
        services.membership_enrol(customer=wang, plan=plan, as_of=NOW)
    # then
    assert (caught.value.status, caught.value.field, caught.value.params) == (409, "plan_id", {"name": "超长会员"})
    assert Membership.objects.count() == 0


def test_renewing_in_a_plan_saved_with_an_oversized_duration_is_refused_and_changes_nothing(chain, wang,
                                                                                          paid_plan, annual_tier):
    membership = services.membership_enrol(customer=wang, plan=paid_plan, as_of=NOW)
    MembershipPlan.objects.filter(pk=paid_plan.pk).update(duration_months=5000)
    with pytest.raises(PeriodOutOfRange):
        services.membership_renew(membership=membership, as_of=NOW)
    membership.refresh_from_db()
    assert (membership.expires_at, membership.fee_fen) == (dt.datetime(2027, 3, 2, 15, 59, 59, 999999, tzinfo=dt.UTC), 89_900)


def test_automatic_enrolment_skips_a_plan_saved_with_an_oversized_duration_and_enrols_in_the_others(
        chain, wang, family_plan, family_tier):
    # given: a better auto-enrol plan whose duration no date can reach
    broken = PlanFactory(chain=chain, name="超长计划", spend_threshold_fen=1, duration_months=5000)
    TierFactory(plan=broken, rank=1, discount_bp=3000, min_spend_fen=1)
    # when
    services.membership_evaluate(customer=wang, as_of=NOW)
    enrolled = services.spend_based_enrol_all(chain=chain, as_of=NOW)
    # then
    assert list(Membership.objects.values_list("customer", "plan", "status")) == [
        (wang.id, family_plan.id, MembershipStatus.ACTIVE)]
    assert enrolled == 0


# --- the staff pages -----------------------------------------------------------------------------------------


@pytest.fixture
def chinese():
    with override_settings(LANGUAGE_CODE="zh-hans"), translation.override("zh-hans"):
        yield


def test_the_plan_page_shows_the_bounds_beside_each_field_in_chinese(client, chain_admin, chinese):
    client.force_login(chain_admin.user)
    response = client.post(reverse("membership:plan_create"), {
        "name": "年度会员", "kind": "paid", "fee_yuan": "100000001", "duration_months": "100000",
        "topup_bonus_rules": "[]"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 422
    assert response.context["form"].errors == {"fee_yuan": ["确保该值小于或等于100000000。"],
                                               "duration_months": ["确保该值小于或等于1200。"]}
    assert MembershipPlan.objects.count() == 0


def test_the_tier_page_refuses_rank_zero_beside_the_field_and_keeps_the_tier(client, chain_admin, annual_tier,
                                                                            chinese):
    client.force_login(chain_admin.user)
    response = client.post(reverse("membership:tier_edit", args=[annual_tier.id]), {
        "rank": "0", "name": "年卡", "discount_percent": "5", "points_multiplier": "0", "family_slots": "1",
        "friend_discount_percent": "0", "min_spend_yuan": "0", "min_topup_yuan": "0", "topup_bonus_rules": "[]"},
        HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 422
    assert response.context["form"].errors == {"rank": ["确保该值大于或等于1。"]}
    annual_tier.refresh_from_db()
    assert (annual_tier.rank, annual_tier.points_multiplier) == (1, Decimal("1.00"))


def test_the_tier_page_says_in_chinese_which_tier_a_threshold_must_not_undercut(client, chain_admin, annual_tier,
                                                                                chinese):
    services.tier_save(plan=annual_tier.plan, data={**TIER, "rank": 2, "name": "金卡", "min_spend_fen": 3_000_000})
    client.force_login(chain_admin.user)
    response = client.post(reverse("membership:tier_edit", args=[annual_tier.id]), {
        "rank": "1", "name": annual_tier.name, "discount_percent": "5", "points_multiplier": "1", "family_slots": "1",
        "friend_discount_percent": "0", "min_spend_yuan": "40000", "min_topup_yuan": "0", "topup_bonus_rules": "[]"},
        HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 422
    assert response.context["form"].errors == {"min_spend_yuan": ["不能高于排在上面的 金卡 的门槛 30,000.00 元"]}
    annual_tier.refresh_from_db()
    assert annual_tier.min_spend_fen == 0


def test_enrolling_in_a_plan_saved_with_an_oversized_duration_answers_a_readable_refusal(client, chain, chain_admin,
                                                                                        wang, chinese):
    plan = PlanFactory(chain=chain, name="超长会员", kind=PlanKind.PAID, fee_fen=100, duration_months=5000,
                       spend_threshold_fen=None, auto_enrol=False)
    TierFactory(plan=plan, rank=1, min_spend_fen=0)
    client.force_login(chain_admin.user)
    response = client.post(reverse("membership:enrol", args=[wang.id]), {"plan": plan.id},
                           HTTP_ACCEPT_LANGUAGE="zh-hans", headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert "“超长会员”设置的期限过长，无法计算日期；请先在会员设置中修改。" in response.text
    assert Membership.objects.count() == 0


# --- what a benefit does when revealed: fields, not JSON --------------------------------------------------------


def test_a_friend_card_benefit_is_edited_in_fields_and_keeps_what_the_api_stored(client, chain_admin, annual_tier):
    from smileloop.membership.models import Benefit

    benefit = Benefit.objects.create(tier=annual_tier, name="亲友卡", is_hidden=True, trigger="staff_decision",
                                     action_code="issue_friend_card",
                                     action_data={"amount_fen": 60_000, "valid_months": 3, "note": "kept"})
    client.force_login(chain_admin.user)
    page = client.get(reverse("membership:benefit_edit", args=[benefit.id])).content.decode()
    assert 'name="action_data"' not in page and 'name="action_code"' not in page
    assert 'name="card_amount_yuan"' in page and 'value="600.00"' in page and 'name="card_valid_months"' in page
    response = client.post(reverse("membership:benefit_edit", args=[benefit.id]), {
        "position": "0", "name": "亲友卡", "description": "", "is_hidden": "on", "trigger": "staff_decision",
        "action": "issue_friend_card", "card_amount_yuan": "800", "card_valid_months": "6"})
    assert response.status_code == 302, response.content.decode()[:2000]
    benefit.refresh_from_db()
    assert (benefit.action_code, benefit.action_data) == (
        "issue_friend_card", {"note": "kept", "amount_fen": 80_000, "valid_months": 6})


def test_card_terms_on_a_benefit_that_gives_no_card_are_refused_beside_them(client, chain_admin, annual_tier):
    client.force_login(chain_admin.user)
    response = client.post(reverse("membership:benefit_create", args=[annual_tier.id]), {
        "position": "0", "name": "生日礼", "description": "", "trigger": "", "action": "",
        "card_amount_yuan": "100", "card_valid_months": "99999"})
    assert response.status_code == 422
    errors = response.context["form"].errors
    assert set(errors) == {"card_amount_yuan", "card_valid_months"}
    assert annual_tier.benefits.count() == 0


# --- top-up bonus rules: rows in yuan, not JSON in fen ---------------------------------------------------------


def _stored_plan_post(plan, topups, bonuses) -> dict:
    return {"name": plan.name, "kind": plan.kind, "fee_yuan": "0", "duration_months": "", "spend_threshold_yuan": "",
            "is_active": "on", "description": "", "topup_bonus_rules_topup": topups, "topup_bonus_rules_bonus": bonuses}


def test_top_up_bonus_rules_are_edited_as_rows_in_yuan_and_stored_in_fen(client, chain_admin, stored_plan):
    client.force_login(chain_admin.user)
    # given: the plan's rule "top up 10,000 yuan → 1,000 yuan bonus" shows as a row in yuan, not as JSON in fen
    page = client.get(reverse("membership:plan_edit", args=[stored_plan.id])).content.decode()
    assert 'name="topup_bonus_rules_topup" id="id_topup_bonus_rules_0_topup" value="10000.00"' in page
    assert 'name="topup_bonus_rules_bonus" id="id_topup_bonus_rules_0_bonus" value="1000.00"' in page
    assert "min_topup_fen" not in page and '<label for="id_topup_bonus_rules_0_topup">' in page
    # when: a smaller rule is added before it, the old one raised, an empty row left empty
    response = client.post(reverse("membership:plan_edit", args=[stored_plan.id]),
                           _stored_plan_post(stored_plan, ["¥5,000", "20000", ""], ["300.50", "3000", ""]))
    # then
    assert response.status_code in (200, 302), response.content.decode()[:2000]
    stored_plan.refresh_from_db()
    assert stored_plan.topup_bonus_rules == [{"min_topup_fen": 500_000, "bonus_fen": 30_050},
                                             {"min_topup_fen": 2_000_000, "bonus_fen": 300_000}]
    # and emptying every row removes the rules
    client.post(reverse("membership:plan_edit", args=[stored_plan.id]), _stored_plan_post(stored_plan, ["", ""],
                                                                                          ["", ""]))
    stored_plan.refresh_from_db()
    assert stored_plan.topup_bonus_rules == []


def test_top_up_bonus_rules_refuse_bad_rows_beside_the_field_in_chinese_and_change_nothing(client, chain_admin,
                                                                                          stored_plan, chinese):
    client.force_login(chain_admin.user)
    response = client.post(reverse("membership:plan_edit", args=[stored_plan.id]), _stored_plan_post(
        stored_plan, ["10000", "5000", "10000", "一万", "-1", "300"], ["1000", "300", "500", "1", "5", "0"]),
        HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 422
    assert response.context["form"].errors == {"topup_bonus_rules": [
        "第 2 行：请按充值金额从小到大排列（¥5,000.00 排在了 ¥10,000.00 之后）。",
        "第 3 行：充值 ¥10,000.00 已在第 1 行设置了赠送。",
        "第 4 行：两个金额都请以元填写，例如 10000 和 1000（最多两位小数）。",
        "第 5 行：两个金额都必须大于 0，且不超过 100,000,000 元。",
        "第 6 行：两个金额都必须大于 0，且不超过 100,000,000 元。"]}
    page = response.content.decode()
    assert 'value="一万"' in page and 'aria-invalid="true"' in page  # kept as typed, marked beside the field
    stored_plan.refresh_from_db()
    assert stored_plan.topup_bonus_rules == [{"min_topup_fen": 1_000_000, "bonus_fen": 100_000}]


def test_a_tier_edits_its_own_top_up_bonus_rules_as_rows(client, chain_admin, gold_tier):
    client.force_login(chain_admin.user)
    response = client.post(reverse("membership:tier_edit", args=[gold_tier.id]), {
        "rank": "1", "name": "金卡", "discount_percent": "5", "points_multiplier": "1", "family_slots": "1",
        "friend_discount_percent": "0", "min_spend_yuan": "0", "min_topup_yuan": "10000",
        "topup_bonus_rules_topup": ["10000"], "topup_bonus_rules_bonus": ["1500"]})
    assert response.status_code in (200, 302)
    gold_tier.refresh_from_db()
    assert gold_tier.topup_bonus_rules == [{"min_topup_fen": 1_000_000, "bonus_fen": 150_000}]


def test_the_admin_edits_top_up_bonus_rules_as_rows_too(admin_client, stored_plan):
    page = admin_client.get(reverse("admin:membership_membershipplan_change", args=[stored_plan.id])).content.decode()
    assert 'name="topup_bonus_rules_topup" id="id_topup_bonus_rules_0_topup" value="10000.00"' in page
    assert 'name="topup_bonus_rules"' not in page and "&quot;min_topup_fen&quot;" not in page  # no JSON box
