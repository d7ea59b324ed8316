"""The top-up form says which bonus a top-up earns: a member's own tier's or plan's rules replace the chain's
(`wallet_topup`), so the front desk must not promise the chain's offer to a member whose tier pays otherwise."""

import datetime as dt
import re

import pytest
from django.urls import reverse

from smileloop.loyalty import selectors
from smileloop.loyalty.models import TopupBonusRule
from smileloop.loyalty.services import wallet_topup
from smileloop.loyalty.tests.test_wallet import stored_value_plan  # noqa: F401 (fixture)
from smileloop.membership.models import Membership

pytestmark = pytest.mark.django_db


def _form_note(client, customer) -> str:
    html = client.get(reverse("loyalty:form", args=[customer.id, "topup"]), HTTP_HX_REQUEST="true",
                      HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    return " ".join(re.sub(r"<[^>]+>", " ", html.split('data-testid="topup-bonus">')[1].split("</p>")[0]).split())


def test_a_non_member_is_shown_the_chains_steps(client, front_desk_a, wang, bonus_rules):
    client.force_login(front_desk_a.user)
    note = _form_note(client, wang)
    assert note.startswith("连锁充值赠送：")
    assert "满 ¥5,000.00 送 ¥400.00 · 满 ¥10,000.00 送 ¥1,000.00" in note
    assert "按达到的最高一档赠送，不累加。" in note


def test_a_member_whose_tier_has_rules_is_shown_them_instead_of_the_chains(client, front_desk_a, wang, spouse,
                                                                          bonus_rules, stored_value_plan):  # noqa: F811
    silver, _gold = stored_value_plan
    silver.topup_bonus_rules = [{"min_topup_fen": 300_000, "bonus_fen": 30_000}]
    silver.save(update_fields=["topup_bonus_rules"])
    wallet_topup(customer=wang, amount_fen=500_000, method="cash", key="t0")  # enrols her as 银卡
    client.force_login(front_desk_a.user)
    note = _form_note(client, wang)
    assert note.startswith("会员等级「银卡」的充值赠送（取代连锁的充值规则）：")
    assert "满 ¥3,000.00 送 ¥300.00" in note and "¥400.00" not in note
    assert _form_note(client, spouse).startswith("连锁充值赠送：")  # not a member: the chain's
    # once her membership has run out, the chain's rules are back (as `wallet_topup` reads them)
    Membership.objects.filter(customer=wang).update(expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    assert _form_note(client, wang).startswith("连锁充值赠送：")


def test_no_rules_and_an_invalid_rule_are_said_so(client, front_desk_a, wang):
    client.force_login(front_desk_a.user)
    assert _form_note(client, wang) == "本次充值无赠送。"
    TopupBonusRule.objects.bulk_create([TopupBonusRule(chain=wang.chain, min_topup_fen=10_000, bonus_fen=20_000)])
    assert "满 ¥100.00 送 ¥200.00 （规则有误：达到此档的充值会被拒绝）" in _form_note(client, wang)


def test_the_chains_schedule_is_what_a_non_members_top_up_pays(wang, bonus_rules):
    _pays_as_shown(wang, "chain")


def test_a_tiers_schedule_is_what_a_members_top_up_pays(wang, bonus_rules, stored_value_plan):  # noqa: F811
    silver, gold = stored_value_plan
    for tier in (silver, gold):
        tier.topup_bonus_rules = [{"min_topup_fen": 200_000, "bonus_fen": 10_000},
                                  {"min_topup_fen": 800_000, "bonus_fen": 90_000}]
        tier.save(update_fields=["topup_bonus_rules"])
    wallet_topup(customer=wang, amount_fen=500_000, method="cash", key="enrol")  # 银卡 (and stays a member)
    _pays_as_shown(wang, "tier")


def _pays_as_shown(customer, source):
    """Every step of the schedule, topped up exactly and one fen short, pays what the schedule says."""
    schedule = selectors.topup_bonus_schedule(customer)
    assert schedule.source == source and len(schedule.steps) == 2
    previous = 0
    for i, (minimum, bonus, refused) in enumerate(schedule.steps):
        assert not refused
        assert wallet_topup(customer=customer, amount_fen=minimum, method="cash", key=f"at-{i}").bonus_fen == bonus
        short = wallet_topup(customer=customer, amount_fen=minimum - 1, method="cash", key=f"short-{i}")
        assert short.bonus_fen == previous
        previous = bonus
        assert selectors.topup_bonus_schedule(customer).source == source
