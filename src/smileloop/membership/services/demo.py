"""The DOMAIN.md example programme for the demo chain (called by `smileloop demo`)."""

import datetime as dt
from decimal import Decimal

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from smileloop.clinics.models import Chain
from smileloop.customers.enums import Relation
from smileloop.customers.models import HouseholdMember
from smileloop.membership.enums import BenefitTrigger, MembershipStatus, PlanKind, WalletShareMode
from smileloop.membership.errors import AlreadyBound, NoSlots, OwnMembership, SpouseBound
from smileloop.membership.models import Benefit, FamilyBinding, Membership, MembershipPlan, Tier
from smileloop.membership.services._common import age_on, now_or
from smileloop.membership.services.enrolment import spend_based_enrol_all
from smileloop.membership.services.family import family_bind, wallet_share_consent_grant

EXCLUDED = ["oral_care_product"]


def _plan(chain, name, **fields) -> MembershipPlan:
    plan, _ = MembershipPlan.objects.update_or_create(chain=chain, name=name, defaults=fields)
    return plan


def _tier(plan, rank, name, **fields) -> Tier:
    tier, _ = Tier.objects.update_or_create(plan=plan, rank=rank, defaults={"name": name, **fields})
    return tier


def _benefit(tier, position, name, **fields) -> Benefit:
    benefit, _ = Benefit.objects.update_or_create(tier=tier, name=name, defaults={"position": position, **fields})
    return benefit


@transaction.atomic
def membership_demo_programme(*, chain: Chain, as_of: dt.datetime | None = None, family_limit: int = 200) -> dict:
    """Create (or refresh: re-running changes nothing twice) the example programme of DOMAIN.md §7–8, enrol
    every customer whose cumulative spend reached 30,000 yuan, and bind family members from existing
    households to up to `family_limit` holders. Returns counts."""
    at = now_or(as_of)
    paid = _plan(chain, "年度会员", kind=PlanKind.PAID, fee_fen=89_900, duration_months=12, is_active=True,
                 auto_enrol=False, description="899 元 / 年：一年的会员权益。")
    annual = _tier(paid, 1, "年卡会员", discount_bp=500, points_multiplier=Decimal("1.20"), family_slots=0,
                   friend_discount_bp=0, excluded_categories=EXCLUDED, exclude_special_price=True)
    _benefit(annual, 1, "每年免费洁牙 1 次", description="年内任一门诊可用。")
    _benefit(annual, 2, "专家会诊优先预约")

    stored = _plan(chain, "储值会员", kind=PlanKind.STORED_VALUE, is_active=True, auto_enrol=True,
                   duration_months=None, topup_bonus_rules=[{"min_topup_fen": 1_000_000, "bonus_fen": 100_000}],
                   description="按累计储值定级；储值 10,000 送 1,000。")
    for rank, name, minimum, discount in ((1, "银卡", 500_000, 300), (2, "金卡", 1_000_000, 500),
                                          (3, "钻石卡", 3_000_000, 800)):
        tier = _tier(stored, rank, name, min_topup_fen=minimum, discount_bp=discount, excluded_categories=EXCLUDED,
                     points_multiplier=Decimal("1.00") + Decimal(rank) / 10, family_slots=0, friend_discount_bp=0,
                     topup_bonus_rules=[{"min_topup_fen": 1_000_000, "bonus_fen": 100_000}])
        _benefit(tier, 1, "储值消费享会员折扣")

    spend = _plan(chain, "家庭会员计划", kind=PlanKind.SPEND_BASED, spend_threshold_fen=3_000_000,
                  duration_months=None, is_active=True, auto_enrol=True,
                  description="累计消费满 30,000 元自动成为终身家庭会员，终身 88 折。")
    family = _tier(spend, 1, "家庭会员", min_spend_fen=3_000_000, discount_bp=1200, family_slots=3,
                   friend_discount_bp=1200, points_multiplier=Decimal("1.50"), excluded_categories=EXCLUDED,
                   exclude_special_price=True, downgrade_allowed=False)
    _benefit(family, 1, "终身家庭会员，终身累计折扣", description="本人及绑定的 3 位家人终身 88 折（特价项目、口护产品除外）。")
    _benefit(family, 2, "24 小时家庭医生群", description="家人与前台、咨询师、医生、助理、院长同在一个微信群。")
    _benefit(family, 3, "会员沙龙与感恩活动", description="免费参加，从不推销。")
    _benefit(family, 4, "亲友 88 折", description="报出会员姓名的亲友享 88 折。")
    _benefit(family, 10, "亲友储值卡 600 元", is_hidden=True, trigger=BenefitTrigger.PLAN_HALF_DONE,
             action_code="issue_friend_card",
             action_data={"amount_fen": 60_000, "valid_months": 3, "exclude_special_price": True,
                          "excluded_categories": EXCLUDED, "reminder_days": [7, 30, 60, 80]},
             description="治疗过半或完成时赠送，任何人可用于任意治疗（特价项目、口护产品除外），有效期 3 个月。")
    _benefit(family, 11, "生日礼物", is_hidden=True, trigger=BenefitTrigger.BIRTHDAY_MONTH,
             action_data={"budget_bp_of_year_spend": 50},
             description="生日当月送出，预算为家庭当年消费的 0.5%，到院或上门送达。")
    _benefit(family, 12, "种植会员上门服务（仅下午）", is_hidden=True, trigger=BenefitTrigger.STAFF_DECISION,
             description="种植会员经院长决定可享上门服务。")

    enrolled = spend_based_enrol_all(chain=chain, as_of=at)
    bound, consents = _bind_households(chain=chain, plan=spend, at=at, limit=family_limit)
    return {"plans": 3, "enrolled": enrolled, "family_bound": bound, "wallet_consents": consents}


def _bind_households(*, chain: Chain, plan: MembershipPlan, at: dt.datetime, limit: int) -> tuple[int, int]:
    holders = (Membership.objects.filter(chain=chain, plan=plan, status=MembershipStatus.ACTIVE,
                                         customer__household_membership__isnull=False)
               .select_related("customer__household_membership", "tier").order_by("id")[:limit])
    bound = consents = 0
    for membership in holders:
        holder = membership.customer
        free = membership.tier.family_slots - FamilyBinding.objects.filter(holder=membership,
                                                                           unbound_at__isnull=True).count()
        relatives = (HouseholdMember.objects.filter(household_id=holder.household_membership.household_id)
                     .exclude(customer_id=holder.id).exclude(relation=Relation.HEAD)
                     .exclude(Exists(FamilyBinding.objects.filter(member_id=OuterRef("customer_id"),
                                                                  unbound_at__isnull=True)))
                     .select_related("customer").order_by("id")[:max(free, 0)])
        for relative in relatives:
            member = relative.customer
            age = age_on(member.birthday, timezone.localdate(at))
            adult = age is None or age >= 18
            try:
                family_bind(holder=holder, member=member, relation=relative.relation, consent_source="paper",
                            consent_evidence=f"家庭卡同意书 DEMO-{membership.id}-{member.id}" if adult else "",
                            as_of=at)
            except (AlreadyBound, NoSlots, OwnMembership, SpouseBound):  # the card's rules, as at the desk
                continue
            bound += 1
            if relative.relation == Relation.SPOUSE:
                wallet_share_consent_grant(holder=holder, member=member, mode=WalletShareMode.STANDING,
                                           source="paper", evidence=f"储值共享同意书 DEMO-{membership.id}", as_of=at)
                consents += 1
    return bound, consents
