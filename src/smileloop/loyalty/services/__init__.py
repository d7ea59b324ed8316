"""Loyalty writes, split by topic. Other apps (checkout, demo) import from here (`smileloop.loyalty.services`)."""

from smileloop.loyalty.selectors import WalletBalance, wallet_balance
from smileloop.loyalty.services.cancel import package_cancel, package_order_refund_where
from smileloop.loyalty.services.config import (
    earn_rule_save,
    gift_save,
    package_entitlement_save,
    package_save,
    redeem_terms_save,
    topup_bonus_rule_save,
)
from smileloop.loyalty.services.demo import loyalty_demo_programme
from smileloop.loyalty.services.merge import loyalty_merge_hook
from smileloop.loyalty.services.packages import (
    entitlement_redeem,
    entitlement_use_reverse,
    entitlements_expire,
    package_sell,
)
from smileloop.loyalty.services.points import (
    Clawback,
    RedeemTerms,
    gift_exchange,
    points_award,
    points_clawback_plan,
    points_clawback_post,
    points_earn_for_order,
    points_earn_request,
    points_redeem,
    points_redeem_quote,
    points_redeem_request,
    points_redeem_terms,
)
from smileloop.loyalty.services.wallet import (
    WalletSpend,
    wallet_spend,
    wallet_spend_request,
    wallet_split,
    wallet_topup,
    wallet_topup_refund,
    wallet_transfer,
)

__all__ = [
    "Clawback", "RedeemTerms", "WalletBalance", "WalletSpend", "points_earn_request", "points_redeem_request",
    "wallet_spend_request", "earn_rule_save", "entitlement_redeem", "entitlement_use_reverse",
    "entitlements_expire", "gift_exchange", "gift_save", "loyalty_demo_programme", "loyalty_merge_hook",
    "package_cancel", "package_entitlement_save", "package_order_refund_where", "package_save", "package_sell",
    "points_award", "points_clawback_plan", "points_clawback_post", "points_earn_for_order",
    "points_redeem", "points_redeem_quote", "points_redeem_terms", "redeem_terms_save", "topup_bonus_rule_save",
    "wallet_balance", "wallet_spend", "wallet_split", "wallet_topup", "wallet_topup_refund", "wallet_transfer",
]
