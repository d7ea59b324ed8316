"""The 360 page's model-choice fields take their options from one plain read (core.sql.choices_from): the same
options, in the same order, with the same labels as the field's queryset gives; posts still validate against the
queryset."""

import pytest
from django.forms.models import ModelChoiceIterator

from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.tests.factories import ChainFactory
from smileloop.loyalty.enums import EarnTrigger
from smileloop.loyalty.forms import AwardForm, GiftExchangeForm, PackageSellForm
from smileloop.loyalty.tests.factories import EarnRuleFactory, GiftFactory, PackageFactory
from smileloop.membership.forms import EnrolForm
from smileloop.membership.tests.factories import PlanFactory, TierFactory

pytestmark = pytest.mark.django_db


def orm_options(field):
    return [(str(getattr(value, "value", value)), str(label)) for value, label in ModelChoiceIterator(field)]


def options(field):
    return [(str(value), str(label)) for value, label in field.choices]


def test_options_equal_what_the_queryset_gives(chain, chain_admin, wang, rules):
    scope = scope_for_staff(chain_admin)
    other = ChainFactory()
    EarnRuleFactory(chain=chain, code="checkin", name="到店打卡", trigger=EarnTrigger.EVENT_CHECKIN, points=20)
    EarnRuleFactory(chain=chain, code="old", name="旧规则", trigger=EarnTrigger.REVIEW, is_active=False)
    EarnRuleFactory(chain=other, code="elsewhere", trigger=EarnTrigger.REVIEW)
    for name, price in (("牙线", 300), ("电动牙刷", 3000), ("漱口水", 300)):
        GiftFactory(chain=chain, name=name, points_price=price, stock=5)
    GiftFactory(chain=chain, name="停用礼品", points_price=1, is_active=False)
    PackageFactory(chain=chain, name="儿童套餐")
    PackageFactory(chain=chain, name="家庭套餐")
    PackageFactory(chain=other, name="别家套餐")
    vip = PlanFactory(chain=chain, name="VIP")
    family = PlanFactory(chain=chain, name="家庭会员")
    PlanFactory(chain=chain, name="停用计划", is_active=False)
    for plan in (vip, family):
        TierFactory(plan=plan, rank=2, name="金卡")
        TierFactory(plan=plan, rank=1, name="银卡")
    forms = {
        "rule": AwardForm(scope).fields["rule"], "gift": GiftExchangeForm(scope).fields["gift"],
        "package": PackageSellForm(scope, holder=wang).fields["package"],
        "plan": EnrolForm(scope).fields["plan"], "tier": EnrolForm(scope).fields["tier"],
    }
    for name, field in forms.items():
        assert options(field) == orm_options(field), name
        assert len(options(field)) > 2, name
    assert [label for _v, label in options(forms["tier"])][1:] == ["VIP · 银卡", "VIP · 金卡", "家庭会员 · 银卡",
                                                                  "家庭会员 · 金卡"]


def test_a_posted_choice_still_validates_against_the_queryset(chain, chain_admin):
    scope = scope_for_staff(chain_admin)
    live = GiftFactory(chain=chain, name="牙线", points_price=300, stock=5)
    retired = GiftFactory(chain=chain, name="停用礼品", points_price=1, is_active=False)
    assert GiftExchangeForm(scope, {"gift": live.pk, "quantity": 1, "key": "k1"}).is_valid()
    form = GiftExchangeForm(scope, {"gift": retired.pk, "quantity": 1, "key": "k2"})
    assert not form.is_valid() and "gift" in form.errors


def test_a_gift_of_one_point_reads_in_the_singular(chain, wang):
    from django.utils import translation

    from smileloop.clinics.selectors import scope_for_staff
    from smileloop.clinics.tests.factories import StaffFactory
    from smileloop.loyalty.forms import GiftExchangeForm
    from smileloop.loyalty.models import Gift

    Gift.objects.create(chain=chain, name="贴纸", points_price=1, stock=5)
    scope = scope_for_staff(StaffFactory(chain=chain, role="chain_admin"))
    field = GiftExchangeForm(scope).fields["gift"]
    gift = Gift.objects.get()
    with translation.override("en"):
        assert field.label_from_instance(gift) == "贴纸 · 1 point · 5 left"
    with translation.override("zh-hans"):
        assert field.label_from_instance(gift) == "贴纸 · 1 积分 · 剩余 5"
