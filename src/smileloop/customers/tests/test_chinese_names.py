"""The patient's personal-data copy (PIPL art. 45) and the Django admin read in Chinese for a zh-hans reader: every
sheet title and column header of `data_copy_sheets`, and every admin model's name and its rows' labels, are
translated, never the English Django derives from a class or field name ("amount fen", "accounts", "X object (3)").

The copy is built for a patient with records in every app that keeps some (visits, membership, ledger, loyalty,
gift cards, checkout, tagging, follow-ups, surveys), through the same services the product uses."""

import re

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import models
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.text import camel_case_to_spaces

from smileloop.checkout.services import checkout_pay, checkout_price, checkout_refund
from smileloop.customers.data_copy import _OWN, _fields, data_copy_sheets
from smileloop.customers.models import Consent, Customer, Interaction
from smileloop.customers.services import household_relative_add
from smileloop.customers.tests.factories import CustomerFactory, IdentityFactory
from smileloop.followups.services import complaint_task_open
from smileloop.followups.tests.factories import AppointmentFactory, ProcedureFactory
from smileloop.giftcards.services import friend_card_issue, voucher_issue
from smileloop.giftcards.tests.factories import CampaignFactory, ProgrammeFactory
from smileloop.loyalty.services import gift_exchange, package_sell, points_award, wallet_spend, wallet_topup
from smileloop.loyalty.services.wallet import wallet_topup_refund
from smileloop.loyalty.tests.factories import EarnRuleFactory, GiftFactory, PackageEntitlementFactory
from smileloop.membership.models import MembershipEvent
from smileloop.membership.services import family_bind, friend_link, wallet_share_consent_grant
from smileloop.membership.tests.factories import MembershipFactory, TierFactory, TreatmentPlanFactory
from smileloop.surveys.tests.factories import SurveyFactory
from smileloop.tagging.models import KeywordHit
from smileloop.tagging.services import tag_apply
from smileloop.tagging.tests.factories import TagFactory
from smileloop.visits.models import PlanStep

# Latin words a Chinese reader meets as they are: identifiers, protocols and clinical abbreviations.
ALLOWED = {"ID", "openid", "unionid", "NPS", "CBCT", "SMS", "API", "SLA", "IP", "PMS", "POS"}
LATIN_WORD = re.compile(r"[A-Za-z]{3,}")


def english_words(text: str) -> list[str]:
    return [w for w in LATIN_WORD.findall(text) if w not in ALLOWED]


@pytest.fixture
def patient(chain, clinic_a, catalogue, chain_admin):
    """王芳 with a record of every kind the other apps keep about a person, made through their services."""
    person = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王芳", mobile="+8613800138001")
    relative = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王小明")
    friend = CustomerFactory(chain=chain, home_clinic=clinic_a, name="李娜")
    household_relative_add(customer=person, relative=relative, relation="child")
    IdentityFactory(chain=chain, customer=person)
    Consent.objects.create(customer=person, purpose="marketing_sms", granted=True, source="form",
                           recorded_at=timezone.now())
    Interaction.objects.create(customer=person, kind="note", text="想做种植", occurred_at=timezone.now())
    # visits: an appointment, a procedure, a plan with a step
    AppointmentFactory(customer=person)
    ProcedureFactory(customer=person, item=catalogue["CL01"])
    plan = TreatmentPlanFactory(customer=person, steps_total=1)
    PlanStep.objects.create(plan=plan, seq=1, item=catalogue["IM01"])
    # checkout: a bill paid and refunded
    settlement = checkout_pay(priced=checkout_price(customer=person, clinic=clinic_a, lines=[{"item_code": "FI01"}]),
                              payments=[{"method": "cash", "amount_fen": 60000}], key="pay-1")
    checkout_refund(settlement=settlement, key="refund-1", reason="取消")
    # membership: the person holds a membership, shares the wallet with a relative and is named by a friend
    membership = MembershipFactory(customer=person, tier=TierFactory(plan__chain=chain, family_slots=3))
    MembershipEvent.objects.create(membership=membership, kind="enrolled", occurred_at=timezone.now(),
                                   reason="入会")
    family_bind(holder=person, member=relative, relation="child", consent_source="form", consent_evidence="F-1")
    wallet_share_consent_grant(holder=person, member=relative, mode="standing", source="form")
    friend_link(friend=friend, member=person, source="form")
    # loyalty and ledger: a top-up (part refunded), points and a gift, a family spend, a package
    topup = wallet_topup(customer=person, amount_fen=100000, method="cash", key="topup-1")
    wallet_topup_refund(topup=topup, amount_fen=10000, key="topup-refund-1")
    wallet_spend(payer=relative, holder=person, amount_fen=5000, key="family-spend-1", source="test")
    EarnRuleFactory(chain=chain, code="referral", trigger="referral", points=1000, pending_days=0)
    points_award(customer=person, rule_code="referral", key="referral-1")
    gift_exchange(customer=person, gift=GiftFactory(chain=chain), key="gift-1")
    package = PackageEntitlementFactory(package__chain=chain).package
    package_sell(package=package, holder=person, covered=[person], key="package-1", clinic=clinic_a)
    # gift cards: a friend card the person gives, a voucher
    friend_card_issue(member=person, programme=ProgrammeFactory(chain=chain), trigger="benefit", key="card-1")
    voucher_issue(campaign=CampaignFactory(chain=chain, item=catalogue["CL01"]), customer=person, key="voucher-1")
    # tagging, follow-ups, surveys
    tag = TagFactory(group__chain=chain, name="种植意向")
    tag_apply(customer=person, tag=tag, actor=None)
    KeywordHit.objects.create(customer=person, tag=tag, day=timezone.localdate(), hits=1)
    complaint_task_open(customer=person, clinic=clinic_a, brief="等了一个小时", anchor_key="survey:1")
    SurveyFactory(chain=chain, clinic=clinic_a, customer=person)
    return Customer.objects.get(pk=person.pk)


def test_the_data_copy_reads_in_chinese_every_sheet_title_and_column_header(patient, admin_scope):
    # when a zh-hans reader's copy is built
    with translation.override("zh-hans"):
        sheets = data_copy_sheets(admin_scope, patient)
    titles = [title for title, _headers, _rows in sheets]
    # then it holds the records of every app that keeps some, the child rows too (an order's lines, an account's
    # entries, a top-up's refunds) ...
    for expected in ("预约", "订单", "订单明细", "付款", "退款", "治疗计划", "治疗计划步骤", "会员资格", "储值充值",
                     "充值退款", "客户标签", "回访任务", "满意度评价"):
        assert expected in titles, (expected, titles)
    assert len(sheets) >= 30, titles
    # ... and no title or header is English
    english = {text: english_words(text) for title, headers, _rows in sheets for text in [title, *headers]
               if english_words(text)}
    assert english == {}


def _data_copy_models() -> list[type[models.Model]]:
    """Every model whose rows the copy can hold: the ones pointing at the person and those hanging off them."""
    parents = [rel.related_model for rel in Customer._meta.get_fields(include_hidden=True)
               if rel.auto_created and not rel.concrete and (rel.one_to_many or rel.one_to_one)
               and rel.related_model not in _OWN]
    children = [rel.related_model for parent in parents for rel in parent._meta.get_fields(include_hidden=True)
                if rel.auto_created and not rel.concrete and rel.one_to_many]
    return list(dict.fromkeys(parents + children + [Customer, *_OWN]))


def test_every_kind_of_record_the_data_copy_can_hold_is_named_in_chinese(db):
    # the copy of a patient without some record still names that kind in Chinese once they have one
    found = {}
    with translation.override("zh-hans"):
        for model in _data_copy_models():
            texts = [str(model._meta.verbose_name_plural), *(str(f.verbose_name) for f in _fields(model))]
            words = [w for text in texts for w in english_words(text)]
            if words:
                found[model._meta.label] = words
    assert found == {}


def _derived(model: type[models.Model]) -> str:
    return camel_case_to_spaces(model.__name__)


def test_every_admin_model_has_a_translated_name(db):
    untranslated = []
    with translation.override("zh-hans"):
        for model in admin.site._registry:
            meta = model._meta
            if str(meta.verbose_name) == _derived(model) or str(meta.verbose_name_plural) == _derived(model) + "s":
                untranslated.append(meta.label)
            elif english_words(str(meta.verbose_name)) or english_words(str(meta.verbose_name_plural)):
                untranslated.append(meta.label)
    assert untranslated == []


def test_no_admin_page_shows_a_row_as_object_n(client, patient, chain):
    # given a superuser and at least the patient's rows in the admin's models
    user = get_user_model().objects.create_superuser("root", "root@example.com", "Smile-loop-2026!")
    client.force_login(user)
    shown = []
    for model in admin.site._registry:
        opts = model._meta
        # when the changelist and one row's change page are opened in Chinese
        changelist = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
                                HTTP_ACCEPT_LANGUAGE="zh-hans")
        assert changelist.status_code == 200, opts.label
        pages = [changelist.content.decode()]
        row = model._default_manager.order_by("pk").first()
        if row is not None:
            with translation.override("zh-hans"):
                label = str(row)
            assert "object (" not in label, opts.label
            change = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[row.pk]),
                                HTTP_ACCEPT_LANGUAGE="zh-hans")
            assert change.status_code == 200, opts.label
            pages.append(change.content.decode())
        # then no page names a row (or an inline's row) "… object (n)"
        shown += [f"{opts.label}: {found}" for page in pages for found in re.findall(r"\w+ object \(\d+\)", page)]
    assert shown == []
