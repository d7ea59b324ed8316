"""QA edges of the loyalty configuration (services/config.py and its staff pages): text with control characters,
rules that can never do what they say (points expiring before they are spendable, a fixed rule awarding nothing, an
entitlement of no category or of an item not in the catalogue), and a gift's stock edited while exchanges go on.
Each is refused by field, in the reader's language, and writes nothing."""

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import translation

from smileloop.core.errors import ValidationFailed
from smileloop.loyalty import services
from smileloop.loyalty.enums import EarnTrigger
from smileloop.loyalty.models import EarnRule, Gift, Package, PackageEntitlement
from smileloop.loyalty.tests.factories import GiftFactory, PackageFactory

pytestmark = pytest.mark.django_db

REFERRAL = {
    "code": "referral",
    "name": "推荐",
    "trigger": EarnTrigger.REFERRAL,
    "category": "",
    "special_price": "any",
    "points_per_yuan": 0,
    "points": 10,
    "pending_days": 0,
    "validity_months": None,
    "is_active": True,
}


def refused(call) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        call()
    return {e.field: e.message for e in caught.value.errors}


@pytest.fixture
def chinese():
    with override_settings(LANGUAGE_CODE="zh-hans"), translation.override("zh-hans"):
        yield


def zh_post(client, url, data):
    return client.post(url, data, HTTP_ACCEPT_LANGUAGE="zh-hans")


# --- control characters --------------------------------------------------------------------------------------


def test_names_and_labels_with_control_characters_are_refused_by_field(chain):
    # a bell or an escape showed as nothing in the gift picker, the package list and the timeline
    bad = "control characters"
    errors = refused(
        lambda: services.gift_save(
            chain=chain,
            data={
                "name": "牙线\x07",
                "description": "two\nlines\x1b",
                "points_price": 5,
                "stock": 1,
                "is_active": True,
            },
        )
    )
    assert set(errors) == {"name", "description"} and all(bad in m for m in errors.values())
    assert (
        bad
        in refused(
            lambda: services.package_save(
                chain=chain,
                data={"name": "套餐\x1b", "price_fen": 100, "validity_months": 12, "is_active": True},
            )
        )["name"]
    )
    assert (
        bad
        in refused(lambda: services.earn_rule_save(chain=chain, data={**REFERRAL, "name": "推荐\x00"}))[
            "name"
        ]
    )
    package = PackageFactory(chain=chain)
    assert (
        bad
        in refused(
            lambda: services.package_entitlement_save(
                package=package, data={"label": "洁\x08牙", "category": "cleaning", "quantity": 1}
            )
        )["label"]
    )
    assert (
        Gift.objects.count(),
        Package.objects.count(),
        EarnRule.objects.count(),
        PackageEntitlement.objects.count(),
    ) == (0, 1, 0, 0)
    # a description keeps its line breaks and tabs
    gift = services.gift_save(
        chain=chain,
        data={"name": "牙线", "description": "一\n二\t三", "points_price": 5, "stock": 1, "is_active": True},
    )
    assert gift.description == "一\n二\t三"


def test_the_gift_page_refuses_a_control_character_beside_the_name_in_chinese(client, chain_admin, chinese):
    client.force_login(chain_admin.user)
    response = zh_post(
        client,
        reverse("loyalty:gift_create"),
        {"name": "牙\x07线", "points_price": "5", "stock": "3", "is_active": "on"},
    )
    assert response.status_code == 422
    assert response.context["form"].errors == {"name": ["不能包含控制字符（不可见字符）"]}
    assert Gift.objects.count() == 0


# --- rules that can never work ---------------------------------------------------------------------------------


def test_points_pending_longer_than_their_validity_are_refused_and_the_edge_is_taken(chain):
    # 90 days pending and 1 month of validity: every point expired before it could be spent
    errors = refused(
        lambda: services.earn_rule_save(
            chain=chain, data={**REFERRAL, "pending_days": 90, "validity_months": 1}
        )
    )
    assert errors == {
        "pending_days": "must be shorter than the validity: the points would expire before they "
        "could be spent"
    }
    assert refused(
        lambda: services.earn_rule_save(
            chain=chain, data={**REFERRAL, "pending_days": 28, "validity_months": 1}
        )
    )  # Jan 31 → Feb 28
    assert EarnRule.objects.count() == 0
    rule = services.earn_rule_save(chain=chain, data={**REFERRAL, "pending_days": 27, "validity_months": 1})
    # an update that makes it so is refused too, and changes nothing
    assert "pending_days" in refused(
        lambda: services.earn_rule_save(chain=chain, rule=rule, data={"pending_days": 400})
    )
    rule.refresh_from_db()
    assert rule.pending_days == 27
    # without a validity, any pending period is taken
    services.earn_rule_save(
        chain=chain,
        data={
            **REFERRAL,
            "code": "review",
            "trigger": EarnTrigger.REVIEW,
            "pending_days": 3650,
            "validity_months": None,
        },
    )


def test_a_fixed_rule_awarding_no_points_is_refused_and_a_spend_exclusion_is_taken(chain):
    # saved, it was offered on every loyalty card and each award was refused in English ("… awards no points")
    errors = refused(lambda: services.earn_rule_save(chain=chain, data={**REFERRAL, "points": 0}))
    assert list(errors) == ["points"]
    assert EarnRule.objects.count() == 0
    services.earn_rule_save(
        chain=chain,
        data={
            **REFERRAL,
            "code": "no-specials",
            "trigger": EarnTrigger.SPEND,
            "special_price": "special",
            "points": 0,
            "points_per_yuan": 0,
        },
    )


def test_the_earn_rule_page_says_why_in_chinese_beside_each_field(client, chain_admin, chinese):
    client.force_login(chain_admin.user)
    response = zh_post(
        client,
        reverse("loyalty:earn_rule_create"),
        {**REFERRAL, "validity_months": "1", "pending_days": "90", "points": "0", "is_active": "on"},
    )
    assert response.status_code == 422
    assert response.context["form"].errors == {
        "pending_days": ["必须短于有效期：否则积分在可用之前就已过期"],
        "points": [
            "至少为 1：不发放积分的推荐、签到、评价或资料完善规则在每次发放时都会被拒绝（如不再使用，请停用该规则）"
        ],
    }
    assert EarnRule.objects.count() == 0


def test_an_entitlement_names_a_category_or_a_catalogue_item(chain, catalogue):
    package = PackageFactory(chain=chain)
    # neither: refused on both fields, not as "Constraint “loyalty_entitlement_names_category_or_item” is violated."
    assert refused(
        lambda: services.package_entitlement_save(
            package=package, data={"label": "洁牙", "category": "", "item_code": "", "quantity": 1}
        )
    ) == {
        "category": "choose a category or give an item code",
        "item_code": "choose a category or give an item code",
    }
    # an item code the catalogue does not know matched no visit: the entitlement could never be used
    assert refused(
        lambda: services.package_entitlement_save(
            package=package, data={"label": "涂氟", "category": "", "item_code": "PD99", "quantity": 1}
        )
    ) == {"item_code": "PD99 is not in the service catalogue"}
    assert package.entitlements.count() == 0
    # a known code (typed with a space) is kept as the catalogue spells it
    saved = services.package_entitlement_save(
        package=package, data={"label": "洁牙", "category": "", "item_code": " CL01 ", "quantity": 1}
    )
    assert saved.item_code == "CL01"


def test_another_chains_item_code_is_not_in_this_catalogue(chain, catalogue):
    from smileloop.clinics.tests.factories import ChainFactory

    package = PackageFactory(chain=ChainFactory())
    assert "item_code" in refused(
        lambda: services.package_entitlement_save(
            package=package, data={"label": "洁牙", "category": "", "item_code": "CL01", "quantity": 1}
        )
    )


def test_the_entitlement_page_marks_both_fields_in_chinese(client, chain, chain_admin, chinese):
    client.force_login(chain_admin.user)
    package = PackageFactory(chain=chain)
    response = zh_post(
        client,
        reverse("loyalty:entitlement_create", args=[package.id]),
        {"label": "洁牙", "category": "", "item_code": "", "quantity": "1"},
    )
    assert response.status_code == 422
    errors = response.context["form"].errors
    assert errors == {"category": ["请选择类别或填写项目编码"], "item_code": ["请选择类别或填写项目编码"]}
    assert "loyalty_entitlement" not in response.text
    assert package.entitlements.count() == 0


# --- gift stock edited while exchanges go on -----------------------------------------------------------------


def test_a_gift_edited_while_exchanges_took_stock_keeps_them_taken(
    client, chain, chain_admin, wang, rules, now
):
    # given a gift of 10 and its edit page open
    gift = GiftFactory(chain=chain, name="牙线", points_price=10, stock=10)
    services.points_award(customer=wang, rule_code="referral", key="r1")
    client.force_login(chain_admin.user)
    page = client.get(reverse("loyalty:gift_edit", args=[gift.id]))
    assert page.status_code == 200 and 'name="stock_seen"' in page.text
    # when 3 are exchanged meanwhile and the editor saves a new name with the stock shown
    services.gift_exchange(customer=wang, gift=gift, quantity=3, key="x1")
    response = client.post(
        reverse("loyalty:gift_edit", args=[gift.id]),
        {"name": "进口牙线", "points_price": "10", "stock": "10", "stock_seen": "10", "is_active": "on"},
    )
    # then the 3 stay taken
    assert response.status_code == 302
    gift.refresh_from_db()
    assert (gift.name, gift.stock) == ("进口牙线", 7)
    # and a restock is a change of what the page showed: 5 more
    client.post(
        reverse("loyalty:gift_edit", args=[gift.id]),
        {"name": "进口牙线", "points_price": "10", "stock": "12", "stock_seen": "7", "is_active": "on"},
    )
    gift.refresh_from_db()
    assert gift.stock == 12


def test_a_stock_lowered_below_what_exchanges_left_is_refused_on_its_field(
    client, chain, chain_admin, wang, rules
):
    gift = GiftFactory(chain=chain, name="牙线", points_price=10, stock=10)
    services.points_award(customer=wang, rule_code="referral", key="r1")
    services.gift_exchange(customer=wang, gift=gift, quantity=8, key="x1")
    client.force_login(chain_admin.user)
    # shown 10, typed 5 (5 fewer), but only 2 are left
    response = client.post(
        reverse("loyalty:gift_edit", args=[gift.id]),
        {"name": "牙线", "points_price": "10", "stock": "5", "stock_seen": "10", "is_active": "on"},
    )
    assert response.status_code == 422 and "stock" in response.context["form"].errors
    gift.refresh_from_db()
    assert gift.stock == 2


# --- two spend rules on the same lines -------------------------------------------------------------------------

SPEND = {
    **REFERRAL,
    "code": "spend",
    "name": "消费积分",
    "trigger": EarnTrigger.SPEND,
    "points": 0,
    "points_per_yuan": 1,
}


def test_a_second_active_spend_rule_on_the_same_lines_is_refused_naming_the_first(chain):
    # the older rule applies to a line (spend_rule_for): "double points" saved beside it never earned anything
    first = services.earn_rule_save(chain=chain, data={**SPEND, "category": "cleaning"})
    errors = refused(
        lambda: services.earn_rule_save(
            chain=chain, data={**SPEND, "code": "double", "category": "cleaning", "points_per_yuan": 2}
        )
    )
    assert errors == {
        "": "The active rule spend already earns on the same category and special-price items, and only one rule "
        "applies to a line: switch it off or change it first."
    }
    assert EarnRule.objects.count() == 1
    # a rule on other lines, or switched off, is taken; the first rule saved again is not its own twin
    services.earn_rule_save(chain=chain, data={**SPEND, "code": "any", "category": ""})
    off = services.earn_rule_save(
        chain=chain, data={**SPEND, "code": "double", "category": "cleaning", "is_active": False}
    )
    services.earn_rule_save(chain=chain, rule=first, data={"points_per_yuan": 3})
    # switching the second on while the first is on is refused too
    assert "" in refused(lambda: services.earn_rule_save(chain=chain, rule=off, data={"is_active": True}))
    off.refresh_from_db()
    assert off.is_active is False


def test_the_earn_rule_page_refuses_a_twin_spend_rule_in_chinese(client, chain, chain_admin, chinese):
    services.earn_rule_save(chain=chain, data=SPEND)
    client.force_login(chain_admin.user)
    response = zh_post(
        client,
        reverse("loyalty:earn_rule_create"),
        {**SPEND, "code": "double", "points_per_yuan": "2", "validity_months": "", "is_active": "on"},
    )
    assert response.status_code == 422
    assert response.context["form"].non_field_errors() == [
        "已启用的规则 spend 已对相同类别和特价项目积分，每个项目只适用一条规则：请先停用或修改该规则。"
    ]
    assert EarnRule.objects.count() == 1


# --- the Django admin refuses what the staff pages refuse ------------------------------------------------------


def admin_errors(response) -> dict:
    form = response.context["adminform"].form
    return {name: [str(m) for m in messages] for name, messages in form.errors.items()}


def test_the_admin_refuses_a_control_character_and_a_rule_whose_points_expire_unspendable(
    admin_client, chain
):
    gift = admin_client.post(
        reverse("admin:loyalty_gift_add"),
        {"chain": chain.id, "name": "牙\x07线", "points_price": "5", "stock": "3", "is_active": "on"},
    )
    rule = admin_client.post(
        reverse("admin:loyalty_earnrule_add"),
        {**REFERRAL, "chain": chain.id, "pending_days": "90", "validity_months": "1", "is_active": "on"},
    )
    assert gift.status_code == 200 and admin_errors(gift) == {"name": ["must not contain control characters"]}
    assert rule.status_code == 200 and list(admin_errors(rule)) == ["pending_days"]
    assert (Gift.objects.count(), EarnRule.objects.count()) == (0, 0)


def test_the_admin_refuses_an_entitlement_of_an_item_not_in_the_catalogue(admin_client, chain, catalogue):
    package = PackageFactory(chain=chain, name="家庭套餐")
    url = reverse("admin:loyalty_package_change", args=[package.id])
    body = {
        "name": "家庭套餐",
        "description": "",
        "price_fen": "298000",
        "validity_months": "12",
        "max_covered": "",
        "item_code": "",
        "is_active": "on",
        "entitlements-TOTAL_FORMS": "1",
        "entitlements-INITIAL_FORMS": "0",
        "entitlements-MIN_NUM_FORMS": "0",
        "entitlements-MAX_NUM_FORMS": "1000",
        "entitlements-0-label": "涂氟",
        "entitlements-0-category": "",
        "entitlements-0-item_code": "PD99",
        "entitlements-0-quantity": "4",
        "entitlements-0-max_age": "",
    }
    response = admin_client.post(url, body)
    assert response.status_code == 200
    inline = response.context["inline_admin_formsets"][0].formset.forms[0]
    assert inline.errors == {"item_code": ["PD99 is not in the service catalogue"]}
    assert package.entitlements.count() == 0
    admin_client.post(url, {**body, "entitlements-0-item_code": "CL01"})
    assert list(package.entitlements.values_list("item_code", flat=True)) == ["CL01"]


def test_a_gift_edited_in_the_admin_while_exchanges_took_stock_keeps_them_taken(
    admin_client, chain, wang, rules
):
    gift = GiftFactory(chain=chain, name="牙线", points_price=10, stock=10)
    services.points_award(customer=wang, rule_code="referral", key="r1")
    url = reverse("admin:loyalty_gift_change", args=[gift.id])
    page = admin_client.get(url)
    assert 'name="stock_seen"' in page.text
    services.gift_exchange(customer=wang, gift=gift, quantity=3, key="x1")
    body = {"name": "进口牙线", "description": "", "points_price": "10", "stock": "10", "stock_seen": "10"}
    response = admin_client.post(url, {**body, "is_active": "on"})
    assert response.status_code == 302
    gift.refresh_from_db()
    assert (gift.name, gift.stock) == ("进口牙线", 7)
    # 10 fewer than shown, with 7 left: refused on the field
    refused_page = admin_client.post(url, {**body, "stock": "0", "stock_seen": "10", "is_active": "on"})
    assert refused_page.status_code == 200 and list(admin_errors(refused_page)) == ["stock"]
    gift.refresh_from_db()
    assert gift.stock == 7


def test_a_fixed_rule_of_no_points_saved_before_is_not_offered_on_the_card(chain, chain_admin):
    from smileloop.clinics.selectors import scope_for_staff
    from smileloop.loyalty.forms import AwardForm
    from smileloop.loyalty.tests.factories import EarnRuleFactory

    EarnRuleFactory(chain=chain, code="review", name="评价", trigger=EarnTrigger.REVIEW, points=50)
    stale = EarnRuleFactory(
        chain=chain, code="checkin", name="签到", trigger=EarnTrigger.EVENT_CHECKIN, points=0
    )
    field = AwardForm(scope_for_staff(chain_admin)).fields["rule"]
    assert [label for _value, label in field.choices][1:] == ["评价"]
    assert not AwardForm(scope_for_staff(chain_admin), {"rule": stale.id, "key": "k1"}).is_valid()
