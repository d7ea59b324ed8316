"""Configuration bounds: every period, amount and count of the loyalty configuration is refused outside its bounds,
by the service (naming the field, changing nothing) and beside the field on the staff pages (in Chinese); a rule or
package saved before the bounds existed is refused by name where it is used, never a 500."""

import datetime as dt

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import translation

from smileloop.core.errors import FieldError, ValidationFailed
from smileloop.ledger.models import LedgerTransaction
from smileloop.loyalty import services
from smileloop.loyalty._common import add_months, day_end
from smileloop.loyalty.enums import EarnTrigger
from smileloop.loyalty.errors import PeriodOutOfRange
from smileloop.loyalty.forms import EarnRuleForm
from smileloop.loyalty.models import EarnRule, Gift, Package, PackagePurchase, Topup, TopupBonusRule
from smileloop.loyalty.tests.factories import (
    EarnRuleFactory,
    PackageEntitlementFactory,
    PackageFactory,
    TopupBonusRuleFactory,
)

pytestmark = pytest.mark.django_db

BIG = 2**63 - 1
REFERRAL = {"code": "referral", "name": "推荐", "trigger": EarnTrigger.REFERRAL, "category": "",
            "special_price": "any", "points_per_yuan": 0, "points": 10, "pending_days": 0, "validity_months": None,
            "is_active": True}


def refused(call) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        call()
    return {e.field: e.message for e in caught.value.errors}


# --- the services --------------------------------------------------------------------------------------------


def test_an_earn_rule_with_an_oversized_period_is_refused_naming_each_field(chain):
    # when
    errors = refused(lambda: services.earn_rule_save(chain=chain, data={
        **REFERRAL, "pending_days": BIG, "validity_months": 100_000}))
    # then
    assert errors == {"pending_days": "must be a whole number between 0 and 3650",
                      "validity_months": "must be a whole number between 1 and 1200"}
    assert EarnRule.objects.count() == 0


def test_an_earn_rule_with_negative_or_huge_amounts_is_refused_naming_each_field(chain):
    errors = refused(lambda: services.earn_rule_save(chain=chain, data={
        **REFERRAL, "points_per_yuan": -5, "points": 10**23}))
    assert errors == {"points_per_yuan": "must be between 0 and 100",
                      "points": "must be a whole number between 0 and 1000000"}
    assert EarnRule.objects.count() == 0


def test_an_earn_rule_update_out_of_bounds_changes_nothing(chain):
    # given
    rule = services.earn_rule_save(chain=chain, data=REFERRAL)
    # when
    errors = refused(lambda: services.earn_rule_save(chain=chain, rule=rule, data={"validity_months": 100_000}))
    # then
    assert errors == {"validity_months": "must be a whole number between 1 and 1200"}
    rule.refresh_from_db()
    assert rule.validity_months is None


def test_the_bounds_themselves_are_accepted_and_award_points(chain, wang):
    # given
    services.earn_rule_save(chain=chain, data={**REFERRAL, "pending_days": 3650, "validity_months": 1200,
                                               "points": 1_000_000})
    # when
    tx = services.points_award(customer=wang, rule_code="referral", key="k1")
    # then
    lot = tx.entries.get(amount=1_000_000).lot
    assert lot.expires_at == day_end(add_months(lot.earned_at, 1200))
    assert lot.available_at - lot.earned_at == dt.timedelta(days=3650)


def test_a_bonus_rule_with_negative_amounts_or_an_oversized_validity_is_refused(chain):
    errors = refused(lambda: services.topup_bonus_rule_save(chain=chain, data={
        "min_topup_fen": -5, "bonus_fen": -500, "validity_months": 100_000, "is_active": True}))
    assert errors == {"min_topup_fen": "must be a whole number between 1 and 10000000000",
                      "bonus_fen": "must be a whole number between 0 and 10000000000",
                      "validity_months": "must be a whole number between 1 and 1200"}
    assert TopupBonusRule.objects.count() == 0


def test_gifts_packages_and_entitlements_are_bounded(chain):
    assert refused(lambda: services.gift_save(chain=chain, data={
        "name": "牙线", "points_price": 500, "stock": -5, "is_active": True})) == {
        "stock": "must be a whole number between 0 and 1000000"}
    assert refused(lambda: services.package_save(chain=chain, data={
        "name": "家庭套餐", "price_fen": -5, "validity_months": BIG, "max_covered": 0, "is_active": True})) == {
        "price_fen": "must be a whole number between 0 and 10000000000",
        "validity_months": "must be a whole number between 1 and 1200",
        "max_covered": "must be a whole number between 1 and 100"}
    package = PackageFactory(chain=chain)
    assert refused(lambda: services.package_entitlement_save(package=package, data={
        "label": "洁牙", "category": "cleaning", "quantity": 40_000, "max_age": 0})) == {
        "quantity": "must be a whole number between 1 and 1000", "max_age": "must be a whole number between 1 and 150"}
    assert refused(lambda: services.redeem_terms_save(chain=chain, data={
        "points_per_yuan": 0, "max_share_bp": 20_000, "is_enabled": True})) == {
        "points_per_yuan": "must be a whole number between 1 and 100000",
        "max_share_bp": "must be a whole number between 0 and 10000"}
    assert (Gift.objects.count(), Package.objects.count(), package.entitlements.count()) == (0, 1, 0)


# --- rows saved before the bounds: refused by name where they are used, never a 500 ----------------------------
# 5000 months fits a PostgreSQL smallint (as such a row could) and is beyond the bounds; 100000 (SQLite only) would
# be refused the same way.


def test_awarding_a_rule_saved_with_an_oversized_period_is_refused_by_name_and_writes_nothing(chain, wang):
    # given
    EarnRuleFactory(chain=chain, code="referral", name="推荐有礼", trigger=EarnTrigger.REFERRAL, points=10,
                    pending_days=0, validity_months=5000)
    # when
    with pytest.raises(PeriodOutOfRange) as caught:
        services.points_award(customer=wang, rule_code="referral", key="k1")
    # then
    assert (caught.value.status, caught.value.field, caught.value.params) == (409, "rule_code", {"name": "推荐有礼"})
    assert "validity_months = 5000" in caught.value.message
    assert LedgerTransaction.objects.count() == 0


def test_a_top_up_reaching_a_bonus_rule_saved_with_an_oversized_validity_is_refused_and_writes_nothing(chain, wang):
    TopupBonusRuleFactory(chain=chain, min_topup_fen=100_000, bonus_fen=10_000, validity_months=5000)
    with pytest.raises(PeriodOutOfRange):
        services.wallet_topup(customer=wang, amount_fen=100_000, method="cash", key="t1")
    assert (Topup.objects.count(), LedgerTransaction.objects.count()) == (0, 0)


def test_selling_a_package_saved_with_an_oversized_period_is_refused_and_writes_nothing(chain, wang):
    package = PackageFactory(chain=chain, name="家庭套餐", validity_months=5000)
    PackageEntitlementFactory(package=package)
    with pytest.raises(PeriodOutOfRange) as caught:
        services.package_sell(package=package, holder=wang, covered=[wang], key="p1")
    assert (caught.value.field, caught.value.params) == ("package_id", {"name": "家庭套餐"})
    assert PackagePurchase.objects.count() == 0


# --- the staff pages -----------------------------------------------------------------------------------------


@pytest.fixture
def chinese():
    with override_settings(LANGUAGE_CODE="zh-hans"), translation.override("zh-hans"):
        yield


def zh_post(client, url, data):
    return client.post(url, data, HTTP_ACCEPT_LANGUAGE="zh-hans")


def test_the_earn_rule_page_shows_each_bound_beside_its_field_in_chinese(client, chain_admin, chinese):
    # given
    client.force_login(chain_admin.user)
    # when
    response = zh_post(client, reverse("loyalty:earn_rule_create"), {
        **REFERRAL, "validity_months": "100000", "pending_days": str(BIG), "points": "99999999999999999999999",
        "points_per_yuan": "-5"})
    # then
    form = response.context["form"]
    assert response.status_code == 422 and form.non_field_errors() == []
    assert form.errors == {"pending_days": ["确保该值小于或等于3650。"], "validity_months": ["确保该值小于或等于1200。"],
                           "points": ["确保该值小于或等于1000000。"], "points_per_yuan": ["确保该值大于或等于0。"]}
    assert 'max="1200"' in response.text
    assert EarnRule.objects.count() == 0


def test_the_bonus_rule_gift_and_package_pages_mark_negative_amounts_beside_the_field(client, chain_admin,
                                                                                     chinese):
    client.force_login(chain_admin.user)
    bonus = zh_post(client, reverse("loyalty:bonus_rule_create"), {"min_topup_yuan": "-5", "bonus_yuan": "-500",
                                                                    "validity_months": "100000"})
    gift = zh_post(client, reverse("loyalty:gift_create"), {"name": "牙线", "points_price": "500", "stock": "-5"})
    package = zh_post(client, reverse("loyalty:package_create"), {"name": "套餐", "price_yuan": "-5",
                                                                   "validity_months": str(BIG)})
    assert bonus.context["form"].errors == {"min_topup_yuan": ["确保该值大于或等于0.01。"],
                                            "bonus_yuan": ["确保该值大于或等于0。"],
                                            "validity_months": ["确保该值小于或等于1200。"]}
    assert gift.context["form"].errors == {"stock": ["确保该值大于或等于0。"]}
    assert package.context["form"].errors == {"price_yuan": ["确保该值大于或等于0。"],
                                              "validity_months": ["确保该值小于或等于1200。"]}
    assert (TopupBonusRule.objects.count(), Gift.objects.count(), Package.objects.count()) == (0, 0, 0)


def test_bonus_rules_and_packages_are_priced_in_yuan_like_every_other_amount_staff_type(client, chain_admin,
                                                                                      chinese):
    # given a chain admin on the bonus-rule and package pages, in Chinese
    client.force_login(chain_admin.user)
    page = client.get(reverse("loyalty:bonus_rule_create"), HTTP_ACCEPT_LANGUAGE="zh-hans").text
    assert "最低充值金额（元）" in page and "赠送金额（元）" in page and "（分）" not in page
    # when they type yuan
    zh_post(client, reverse("loyalty:bonus_rule_create"), {"min_topup_yuan": "5000", "bonus_yuan": "400.50",
                                                           "is_active": "on"})
    zh_post(client, reverse("loyalty:package_create"), {"name": "家庭套餐", "price_yuan": "2980",
                                                        "validity_months": "12", "max_covered": "4",
                                                        "is_active": "on"})
    # then the rows hold fen, and the edit pages show yuan again
    rule, package = TopupBonusRule.objects.get(), Package.objects.get()
    assert (rule.min_topup_fen, rule.bonus_fen, package.price_fen) == (500_000, 40_050, 298_000)
    edit = client.get(reverse("loyalty:package_edit", args=[package.id]), HTTP_ACCEPT_LANGUAGE="zh-hans").text
    assert "价格（元）" in edit and 'value="2980.00"' in edit and "298000" not in edit


def test_a_duplicate_is_refused_in_the_readers_language_without_naming_the_chain(client, chain_admin, chinese):
    # given a gift, a package, a bonus rule and an earn rule already configured
    client.force_login(chain_admin.user)
    zh_post(client, reverse("loyalty:gift_create"), {"name": "牙线", "points_price": "500", "stock": "5",
                                                     "is_active": "on"})
    zh_post(client, reverse("loyalty:package_create"), {"name": "套餐", "price_yuan": "100", "validity_months": "12",
                                                        "max_covered": "1", "is_active": "on"})
    zh_post(client, reverse("loyalty:bonus_rule_create"), {"min_topup_yuan": "5000", "bonus_yuan": "400",
                                                           "is_active": "on"})
    referral = {**REFERRAL, "validity_months": "", "is_active": "on"}
    zh_post(client, reverse("loyalty:earn_rule_create"), referral)
    # when each is created a second time
    pages = [zh_post(client, reverse("loyalty:gift_create"), {"name": "牙线", "points_price": "1", "stock": "1"}),
             zh_post(client, reverse("loyalty:package_create"), {"name": "套餐", "price_yuan": "1",
                                                                 "validity_months": "1", "max_covered": "1"}),
             zh_post(client, reverse("loyalty:bonus_rule_create"), {"min_topup_yuan": "5000", "bonus_yuan": "1"}),
             zh_post(client, reverse("loyalty:earn_rule_create"), {**referral, "name": "另一条"})]
    # then each is refused with a Chinese sentence, not "包含 Chain 和 名称 的 Gift 已经存在。"
    refusals = [list(page.context["form"].non_field_errors()) for page in pages]
    assert [page.status_code for page in pages] == [422] * 4
    assert refusals == [["本连锁已有同名的礼品。"], ["本连锁已有同名的服务套餐。"], ["本连锁已有最低充值金额相同的充值赠送规则。"],
                        ["本连锁已有编码相同的积分规则。"]], refusals
    assert (Gift.objects.count(), Package.objects.count(), TopupBonusRule.objects.count(),
            EarnRule.objects.count()) == (1, 1, 1, 1)


def test_a_service_refusal_lands_beside_the_configuration_field_it_names_translated():
    # a configuration form has its own `points` field: the card forms' alias (points → the top) must not apply
    form = EarnRuleForm(data={})
    form.is_valid()
    with translation.override("zh-hans"):
        form.add_domain_error(ValidationFailed([FieldError("points", "must be a whole number between 0 and 1000000")]))
        assert form.errors["points"][-1] == "请输入 0 到 1000000 之间的整数"


def test_awarding_a_rule_saved_with_an_oversized_period_answers_a_readable_refusal(client, chain, chain_admin, wang,
                                                                                   chinese):
    # given
    rule = EarnRuleFactory(chain=chain, code="referral", name="推荐有礼", trigger=EarnTrigger.REFERRAL, points=10,
                           pending_days=5000, validity_months=None)
    client.force_login(chain_admin.user)
    # when
    response = zh_post(client, reverse("loyalty:award", args=[wang.id]), {"rule": rule.id, "key": "k1"})
    # then
    assert response.status_code == 422
    assert "“推荐有礼”设置的期限过长，无法计算日期；请先在积分与储值设置中修改。" in response.text
    assert LedgerTransaction.objects.count() == 0


def test_the_redeem_cap_is_typed_as_a_percentage_of_the_bill(client, chain_admin, chain, chinese):
    from smileloop.loyalty.models import RedeemSettings

    client.force_login(chain_admin.user)
    zh_post(client, reverse("loyalty:redeem_terms"), {"points_per_yuan": "100", "max_share_percent": "15",
                                                      "is_enabled": "on"})
    assert RedeemSettings.objects.get(chain=chain).max_share_bp == 1500
    page = client.get(reverse("loyalty:redeem_terms"), HTTP_ACCEPT_LANGUAGE="zh-hans").text
    assert 'name="max_share_percent"' in page and 'value="15"' in page and "1500" not in page
    refused = client.post(reverse("loyalty:redeem_terms"), {"points_per_yuan": "100", "max_share_percent": "150"},
                          HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert refused.status_code == 422 and RedeemSettings.objects.get(chain=chain).max_share_bp == 1500


def test_a_new_points_rule_offers_one_point_per_yuan_and_an_existing_one_keeps_its_own(client, chain, chain_admin):
    # a chain's first spend rule saved with the form's defaults earned nothing (the model's 0 = "no points")
    client.force_login(chain_admin.user)
    page = client.get(reverse("loyalty:earn_rule_create"))
    assert page.context["form"]["points_per_yuan"].value() == 1
    exclusion = EarnRuleFactory(chain=chain, code="no-specials", name="特价不积分", points_per_yuan=0)
    page = client.get(reverse("loyalty:earn_rule_edit", args=[exclusion.id]))
    assert page.context["form"]["points_per_yuan"].value() == 0
