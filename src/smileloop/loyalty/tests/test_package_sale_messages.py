"""The package sale's refusals in the reader's language.

`package_sell` refuses in English (the API's messages, which stay English); the loyalty card's sell form showed
them as they came ("this package covers at most 1 people" on a Chinese page). The form now shows each through the
catalogue (fixed messages) or `loyalty.messages.PATTERNS` (those carrying a name, a count or an amount)."""

import json
import re

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import translation

from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.services import token_create
from smileloop.core.errors import ValidationFailed
from smileloop.customers.models import Customer
from smileloop.customers.services import customer_merge
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.loyalty.forms import PackageSellForm
from smileloop.loyalty.messages import PATTERNS
from smileloop.loyalty.models import PackagePurchase
from smileloop.loyalty.services import package_sell
from smileloop.loyalty.services import packages as sale
from smileloop.loyalty.tests.factories import PackageEntitlementFactory, PackageFactory
from smileloop.visits.tests.factories import ServiceItemFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def item(chain):
    return ServiceItemFactory(chain=chain, code="PK01", name="家庭口腔护理套餐", category="exam",
                              list_price_fen=298_000)


@pytest.fixture
def single(chain, item):
    """A package for one person, billed as PK01."""
    package = PackageFactory(chain=chain, name="个人洁牙套餐", max_covered=1, item_code="PK01")
    PackageEntitlementFactory(package=package, label="洁牙", category="cleaning", quantity=2)
    return package


def sell_on_the_card(client, staff, customer, **form):
    client.force_login(staff.user)
    body = {"covered": [str(customer.id)], "method": "cash", "key": "k-1", **form}
    with override_settings(LANGUAGE_CODE="zh-hans"), translation.override("zh-hans"):
        return client.post(reverse("loyalty:package", args=[customer.id]), body, HTTP_HX_REQUEST="true",
                           HTTP_ACCEPT_LANGUAGE="zh-hans")


def page_errors(response) -> dict:
    """The sell form's errors as the card shows them (the page is checked to show them too)."""
    errors = {name: [e["message"] for e in found]
              for name, found in response.context["card"].package_form.errors.get_json_data().items()}
    page = response.content.decode()
    assert all(message in page for found in errors.values() for message in found), page
    return errors


def test_the_card_says_in_chinese_how_many_people_a_package_covers(client, front_desk_a, wang, spouse, single):
    # when 王芳's package for one is sold covering her and her husband
    response = sell_on_the_card(client, front_desk_a, wang, package=single.id, covered=[str(wang.id), str(spouse.id)])
    # then it is refused beside the covered persons, in Chinese, nothing sold
    assert response.status_code == 422
    assert page_errors(response) == {"covered": ["此套餐最多覆盖 1 人"]}
    assert "此套餐最多覆盖 1 人" in response.content.decode()
    assert not PackagePurchase.objects.exists()


def test_the_card_says_in_chinese_that_a_package_has_no_entitlements(client, front_desk_a, wang, chain, item):
    empty = PackageFactory(chain=chain, name="空套餐", item_code="PK01")
    response = sell_on_the_card(client, front_desk_a, wang, package=empty.id)
    assert response.status_code == 422
    assert page_errors(response) == {"package": ["未设置任何权益"]}
    assert not PackagePurchase.objects.exists()


def test_the_card_says_in_chinese_and_in_yuan_that_the_wallet_holds_too_little(client, front_desk_a, wang, single):
    response = sell_on_the_card(client, front_desk_a, wang, package=single.id, method="wallet")
    assert response.status_code == 422
    assert page_errors(response) == {"method": ["储值余额不足：可用 ¥0.00，需要 ¥2,980.00"]}
    assert not PackagePurchase.objects.exists()


def test_the_card_says_in_chinese_that_a_form_sent_again_was_used_for_another_sale(client, front_desk_a, wang, chain,
                                                                                  single):
    other = PackageFactory(chain=chain, name="另一套餐", item_code="PK01")
    PackageEntitlementFactory(package=other, label="检查", category="exam", quantity=1)
    sold = sell_on_the_card(client, front_desk_a, wang, package=single.id)
    assert sold.status_code == 200
    # when the same form (its key) is sent again for another package
    again = sell_on_the_card(client, front_desk_a, wang, package=other.id)
    # then it is refused on top of the form, in Chinese, and the first sale stays the only one
    assert again.status_code == 422
    assert page_errors(again) == {"__all__": ["此表单已用于另一笔售卖：请重新打开表单后再售卖"]}
    assert list(PackagePurchase.objects.values_list("package_id", flat=True)) == [single.id]


def test_the_sell_form_shows_the_covered_persons_refusals_in_chinese(wang, spouse, chain, clinic_a, chain_admin,
                                                                     family_package, scope_a):
    # given 李强's record merged into another since the page was read, and a patient outside the family
    stale = Customer.objects.get(pk=spouse.pk)
    twin = CustomerFactory(chain=chain, home_clinic=clinic_a, name="李强", mobile="+8613900000041")
    customer_merge(scope=scope_for_staff(chain_admin), survivor=twin, merged=spouse, reason="重复")
    stranger = CustomerFactory(chain=chain, home_clinic=clinic_a, name="赵敏")
    family_package.max_covered = 2
    family_package.save(update_fields=["max_covered"])
    with pytest.raises(ValidationFailed) as refused:
        package_sell(package=family_package, holder=wang, covered=[wang, stale, stranger], key="sale-1")
    # when the sell form shows the refusal in Chinese
    with translation.override("zh-hans"):
        form = PackageSellForm(scope_a, {}, holder=wang)
        form.is_valid()
        form.add_domain_error(refused.value)
        shown = [e["message"] for e in form.errors.get_json_data()["covered"]][-3:]
    # then each person's refusal, and the count, is a Chinese sentence
    assert shown == ["李强 已合并到另一份档案：请选择保留的档案", "赵敏 不是购买人本人，也不是购买人的家庭成员",
                     "此套餐最多覆盖 2 人"]


def test_every_refusal_of_the_sale_has_a_chinese_text():
    fixed = [value for name, value in vars(sale).items() if name.isupper() and isinstance(value, str)
             and "{" not in value]
    templates = [template for _pattern, template, *_labels in PATTERNS]
    with translation.override("zh-hans"):
        untranslated = [text for text in fixed + templates if translation.gettext(text) == text]
    assert len(fixed) >= 9 and untranslated == []
    # each message carrying a name, a count or an amount has a pattern
    examples = [sale.COVERED_MERGED.format(name="李强"), sale.NOT_IN_HOUSEHOLD.format(name="张*"),
                sale.TOO_MANY_COVERED.format(count=3), sale.UNPAID.format(price_fen=298_000),
                sale.SALE_KEY_REUSED.format(key="web:k-1")]
    assert [any(pattern.match(text) for pattern, *_rest in PATTERNS) for text in examples] == [True] * 5


def test_the_api_keeps_the_english_refusal(client, front_desk_a, wang, spouse, single):
    token = token_create(username=front_desk_a.user.username)
    response = client.post(f"/api/loyalty/customers/{wang.id}/packages",
                           json.dumps({"package_id": single.id, "covered_ids": [wang.id, spouse.id]}),
                           content_type="application/json",
                           headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "sale-1",
                                    "Accept-Language": "zh-hans"})
    assert response.status_code == 422
    assert [(e["field"], e["message"]) for e in response.json()["errors"]] == [
        ("body.covered", "this package covers at most 1 people")]
    assert not re.search(r"[\u4e00-\u9fff]", response.json()["errors"][0]["message"])
