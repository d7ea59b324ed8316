"""The DOMAIN.md example loyalty programme and some history for the demo chain (`smileloop demo` calls
`loyalty_demo_programme` after `membership_demo_programme`). Re-running changes nothing twice: configuration
is upserted and every history write carries a deterministic idempotency key."""

import datetime as dt
import random
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from smileloop.clinics.models import Chain
from smileloop.customers.enums import Relation
from smileloop.customers.models import Customer, HouseholdMember
from smileloop.ledger.services import lots_expire
from smileloop.loyalty.enums import EarnTrigger, SpecialPrice
from smileloop.loyalty.errors import InsufficientPoints, OutOfStock
from smileloop.loyalty.models import (
    EarnRule,
    Gift,
    Package,
    PackageEntitlement,
    RedeemSettings,
    TopupBonusRule,
)
from smileloop.loyalty.selectors import wallet_balance
from smileloop.loyalty.services.packages import entitlement_redeem, entitlements_expire, package_sell
from smileloop.loyalty.services.points import gift_exchange, points_award, points_earn_for_order
from smileloop.loyalty.services.wallet import wallet_spend, wallet_topup
from smileloop.membership.models import MembershipPlan
from smileloop.membership.selectors import wallet_consents_given
from smileloop.visits.enums import Category, PaymentMethod
from smileloop.visits.models import Order, ServiceItem

FAMILY_PACKAGE = "家庭口腔护理套餐"
FAMILY_PACKAGE_ITEM = "PK01"

EARN_RULES = [
    # code, name, trigger, category, special, per yuan, points, pending days, validity months
    ("spend", "消费积分：每元 1 分", EarnTrigger.SPEND, "", SpecialPrice.ANY, Decimal(1), 0, 7, 12),
    ("spend_special", "特价项目不积分", EarnTrigger.SPEND, "", SpecialPrice.SPECIAL, Decimal(0), 0, 7, 12),
    ("referral", "推荐新患者到诊", EarnTrigger.REFERRAL, "", SpecialPrice.ANY, Decimal(0), 1000, 7, 12),
    ("event_checkin", "会员沙龙签到", EarnTrigger.EVENT_CHECKIN, "", SpecialPrice.ANY, Decimal(0), 100, 0, 12),
    ("review", "就诊评价", EarnTrigger.REVIEW, "", SpecialPrice.ANY, Decimal(0), 50, 0, 12),
    ("profile_completion", "完善个人资料", EarnTrigger.PROFILE_COMPLETION, "", SpecialPrice.ANY, Decimal(0), 200,
     0, 12),
]

GIFTS = [
    ("儿童牙刷", 600, 60, "软毛小头，适合 3–12 岁。"),
    ("便携漱口水", 500, 80, ""),
    ("牙线套装", 800, 100, "50 支装。"),
    ("电动牙刷", 5000, 20, "声波电动牙刷，含 2 个刷头。"),
    ("冲牙器", 8000, 10, ""),
]


def _upsert(model, lookup: dict, values: dict):
    obj, _ = model.objects.update_or_create(**lookup, defaults=values)
    return obj


def _configure(chain: Chain) -> dict:
    for code, name, trigger, category, special, per_yuan, points, pending, months in EARN_RULES:
        _upsert(EarnRule, {"chain": chain, "code": code},
                {"name": name, "trigger": trigger, "category": category, "special_price": special,
                 "points_per_yuan": per_yuan, "points": points, "pending_days": pending, "validity_months": months,
                 "is_active": True})
    _upsert(RedeemSettings, {"chain": chain}, {"points_per_yuan": 100, "max_share_bp": 1000, "is_enabled": True})
    bonus = {1_000_000: 100_000, 500_000: 40_000}
    # Stored-value plans of the membership programme may carry their own rules: the wallet's table holds them.
    for plan_rules in MembershipPlan.objects.filter(chain=chain).values_list("topup_bonus_rules", flat=True):
        for rule in plan_rules or []:
            bonus.setdefault(int(rule["min_topup_fen"]), int(rule["bonus_fen"]))
    for minimum, amount in bonus.items():
        _upsert(TopupBonusRule, {"chain": chain, "min_topup_fen": minimum}, {"bonus_fen": amount, "is_active": True})
    for name, price, stock, description in GIFTS:
        Gift.objects.get_or_create(chain=chain, name=name, defaults={"points_price": price, "stock": stock,
                                                                      "description": description})
    # The catalogue item a sale's bill shows (the package is sold at the desk like any item, at its price).
    ServiceItem.objects.get_or_create(chain=chain, code=FAMILY_PACKAGE_ITEM,
                                      defaults={"name": FAMILY_PACKAGE, "category": Category.EXAM,
                                                "list_price_fen": 298_000})
    package = _upsert(Package, {"chain": chain, "name": FAMILY_PACKAGE},
                      {"price_fen": 298_000, "validity_months": 12, "max_covered": 5, "is_active": True,
                       "item_code": FAMILY_PACKAGE_ITEM,
                       "description": "全家每人每年 2 次洁牙、2 次口腔检查；12 岁以下儿童每年 4 次涂氟。"})
    for label, category, code, quantity, max_age in (("洁牙", Category.CLEANING, "", 2, None),
                                                     ("口腔检查", Category.EXAM, "", 2, None),
                                                     ("儿童涂氟", "", "PD01", 4, 12)):
        _upsert(PackageEntitlement, {"package": package, "label": label},
                {"category": category, "item_code": code, "quantity": quantity, "max_age": max_age})
    return {"package": package}


@transaction.atomic
def loyalty_demo_programme(*, chain: Chain, seed: int = 1, as_of: dt.datetime | None = None,
                           max_orders: int = 3000, topups: int = 40, packages: int = 12) -> dict:
    """Create the example rules (1 point per yuan, none on special-price items, 7 days pending, 12-month
    expiry; 100 points = 1 yuan up to 10% of a bill; top up 10,000 get 1,000 and 5,000 get 400; a gift
    catalogue; the family oral-care package) and history: points for the chain's orders of the last 14 months
    (up to `max_orders`, then expiry of what is older than 12 months), a few referral awards and gift
    exchanges, top-ups of the biggest spenders with some spends (family ones where the membership demo
    recorded standing consent), and package sales to households with children. Returns counts."""
    rng = random.Random(seed)
    at = as_of or timezone.now()
    config = _configure(chain)
    orders = list(Order.objects.filter(chain=chain, ordered_at__gte=at - dt.timedelta(days=425), ordered_at__lte=at)
                  .select_related("customer").order_by("-ordered_at", "-id")[:max_orders])
    earned = sum(1 for order in orders if points_earn_for_order(order=order, at=order.ordered_at) is not None)
    expired = lots_expire(chain_id=chain.id, as_of=at)

    earners = sorted({o.customer for o in orders if o.customer.merged_into_id is None}, key=lambda c: c.id)
    awarded = 0
    for customer in rng.sample(earners, min(30, len(earners))):
        points_award(customer=customer, rule_code=rng.choice(["referral", "review", "profile_completion"]),
                     key=f"demo:{seed}:award:{customer.id}", source="demo", at=at - dt.timedelta(days=rng.randint(10, 200)))
        awarded += 1
    exchanges = 0
    gifts = list(Gift.objects.filter(chain=chain, is_active=True).order_by("points_price"))
    for customer in rng.sample(earners, min(40, len(earners))):
        try:
            gift_exchange(customer=customer, gift=gifts[0], key=f"demo:{seed}:gift:{customer.id}")
            exchanges += 1
        except (InsufficientPoints, OutOfStock):
            continue

    spenders = list(Customer.objects.filter(chain=chain, merged_into__isnull=True, lifetime_spend_fen__gt=0)
                    .order_by("-lifetime_spend_fen", "id")[:topups])
    topped = spent = family_spent = 0
    for customer in spenders:
        amount = rng.choice([1_000_000, 500_000, 200_000])
        method = rng.choice([PaymentMethod.WECHAT_PAY, PaymentMethod.ALIPAY, PaymentMethod.BANK_CARD])
        topup = wallet_topup(customer=customer, amount_fen=amount, method=method,
                             key=f"demo:{seed}:topup:{customer.id}", clinic=customer.home_clinic,
                             at=at - dt.timedelta(days=rng.randint(30, 330)))
        topped += 1
        # What the top-up credited, not the balance now: a second run must ask for the same spend (its key would
        # refuse another amount).
        balance = topup.amount_fen + topup.bonus_fen
        if balance and rng.random() < 0.7:
            wallet_spend(payer=customer, amount_fen=rng.randint(1, balance // 2 // 100) * 100,
                         key=f"demo:{seed}:spend:{customer.id}", source="demo:bill")
            spent += 1
        for consent in wallet_consents_given(customer)[:1]:
            if consent.mode == "standing" and wallet_balance(customer).total >= 30_000:
                wallet_spend(payer=consent.member, holder=customer, amount_fen=30_000,
                             key=f"demo:{seed}:family_spend:{customer.id}", source="demo:bill")
                family_spent += 1

    sold = redeemed = 0
    cleaning = ServiceItem.objects.filter(chain=chain, category=Category.CLEANING, is_special_price=False).first()
    heads = (HouseholdMember.objects.filter(household__chain=chain, relation=Relation.HEAD,
                                            customer__merged_into__isnull=True)
             .select_related("customer").order_by("id")[:packages * 3])
    for head in rng.sample(list(heads), min(packages, len(heads))):
        holder = head.customer
        family = [m.customer for m in HouseholdMember.objects.filter(household_id=head.household_id)
                  .select_related("customer").order_by("id")[:5] if m.customer.merged_into_id is None]
        purchase = package_sell(package=config["package"], holder=holder, covered=family,
                                key=f"demo:{seed}:package:{holder.id}", at=at - dt.timedelta(days=rng.randint(20, 300)))
        sold += 1
        if cleaning is not None:
            entitlement_redeem(customer=holder, item=cleaning, key=f"demo:{seed}:redeem:{purchase.id}",
                               at=purchase.period_start + dt.timedelta(days=10))
            redeemed += 1
    entitlements_expire(as_of=at, chain_id=chain.id)
    return {"earn_rules": len(EARN_RULES), "orders_earned": earned, "lots_expired": expired, "awards": awarded,
            "gift_exchanges": exchanges, "topups": topped, "spends": spent, "family_spends": family_spent,
            "packages_sold": sold, "entitlements_redeemed": redeemed}
