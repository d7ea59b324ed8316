"""Membership writes, split by topic. Other apps import from here (`smileloop.membership.services`)."""

from smileloop.membership.services.benefits import (
    benefit_actions_run,
    benefit_reveal,
    benefits_reveal_due,
    reveal_action_register,
)
from smileloop.membership.services.demo import membership_demo_programme
from smileloop.membership.services.enrolment import (
    REMINDER_DAYS,
    ExpiryResult,
    membership_cancel,
    membership_downgrade,
    membership_enrol,
    membership_evaluate,
    membership_renew,
    membership_upgrade,
    memberships_expire,
    spend_based_enrol_all,
    topup_total_provider_register,
)
from smileloop.membership.services.family import (
    family_bind,
    family_unbind,
    friend_link,
    wallet_share_consent_grant,
    wallet_share_consent_revoke,
)
from smileloop.membership.services.merge import membership_merge_hook
from smileloop.membership.services.plans import benefit_save, plan_save, tier_save

__all__ = [
    "REMINDER_DAYS", "ExpiryResult", "benefit_actions_run", "benefit_reveal", "benefit_save", "benefits_reveal_due", "family_bind",
    "family_unbind", "friend_link", "membership_cancel", "membership_demo_programme", "membership_downgrade",
    "membership_enrol", "membership_evaluate", "membership_merge_hook", "membership_renew", "membership_upgrade",
    "memberships_expire", "plan_save", "reveal_action_register", "spend_based_enrol_all", "tier_save",
    "topup_total_provider_register",
    "wallet_share_consent_grant", "wallet_share_consent_revoke",
]
