"""Admin: plans, tiers and benefits are editable (business configuration); memberships and their history are
read-only here, because every change must go through the services (events, locks, consent rules), and hidden from
a chain admin (patients' records; the 360 page shows them)."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from smileloop.core.admin import FixedOnChange
from smileloop.core.admin_scope import CONFIGURATION, ChainScoped
from smileloop.membership.forms import BonusRulesField, PlanForm, TierForm
from smileloop.membership.models import (
    Benefit,
    BenefitReveal,
    FamilyBinding,
    FriendLink,
    Membership,
    MembershipEvent,
    MembershipPlan,
    MembershipReminder,
    Tier,
    WalletShareConsent,
)


class _ReadOnly:
    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class _BonusRulesInRows:
    """Top-up bonus rules are edited as rows in yuan here too, as on the staff pages, not as JSON in fen."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "topup_bonus_rules":
            form = PlanForm if db_field.model is MembershipPlan else TierForm
            return BonusRulesField(label=_("Top-up bonus rules"), required=False,
                                   help_text=form.base_fields["topup_bonus_rules"].help_text)
        return super().formfield_for_dbfield(db_field, request, **kwargs)


class TierInline(ChainScoped, admin.TabularInline):
    chain_admin_actions = CONFIGURATION
    chain_path = "plan__chain"
    model = Tier
    extra = 0
    fields = ("rank", "name", "discount_bp", "family_slots", "friend_discount_bp", "min_spend_fen", "min_topup_fen",
              "downgrade_allowed")


class BenefitInline(ChainScoped, admin.TabularInline):
    chain_admin_actions = CONFIGURATION
    chain_path = "tier__plan__chain"
    model = Benefit
    extra = 0
    fields = ("position", "name", "is_hidden", "trigger", "trigger_n", "action_code")


@admin.register(MembershipPlan)
class MembershipPlanAdmin(_BonusRulesInRows, FixedOnChange, ChainScoped, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
    list_display = ("name", "chain", "kind", "fee_fen", "duration_months", "spend_threshold_fen", "auto_enrol",
                    "is_active")
    list_filter = ("kind", "is_active", "chain")
    inlines = [TierInline]


@admin.register(Tier)
class TierAdmin(_BonusRulesInRows, FixedOnChange, ChainScoped, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
    chain_path = "plan__chain"
    fixed_on_change = ("plan",)  # members hold the tier under its plan
    list_display = ("name", "plan", "rank", "discount_bp", "family_slots", "friend_discount_bp", "points_multiplier")
    list_filter = ("plan",)
    inlines = [BenefitInline]


@admin.register(Benefit)
class BenefitAdmin(FixedOnChange, ChainScoped, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
    chain_path = "tier__plan__chain"
    fixed_on_change = ("tier",)  # its reveals were made to members of that tier
    list_display = ("name", "tier", "is_hidden", "trigger", "trigger_n", "action_code")
    list_filter = ("is_hidden", "trigger")


class EventInline(_ReadOnly, ChainScoped, admin.TabularInline):
    model = MembershipEvent
    extra = 0


@admin.register(Membership)
class MembershipAdmin(_ReadOnly, ChainScoped, admin.ModelAdmin):
    list_display = ("id", "customer_id", "plan", "tier", "status", "started_at", "expires_at")
    list_filter = ("status", "plan")
    search_fields = ("customer__name",)
    inlines = [EventInline]


@admin.register(MembershipEvent)
class MembershipEventAdmin(_ReadOnly, ChainScoped, admin.ModelAdmin):
    list_display = ("occurred_at", "membership_id", "kind", "reason")
    list_filter = ("kind",)


@admin.register(BenefitReveal)
class BenefitRevealAdmin(_ReadOnly, ChainScoped, admin.ModelAdmin):
    list_display = ("revealed_at", "membership_id", "benefit", "trigger", "detail")


@admin.register(FamilyBinding)
class FamilyBindingAdmin(_ReadOnly, ChainScoped, admin.ModelAdmin):
    list_display = ("holder_id", "member_id", "relation", "consent_by", "consent_source", "bound_at", "unbound_at")


@admin.register(WalletShareConsent)
class WalletShareConsentAdmin(_ReadOnly, ChainScoped, admin.ModelAdmin):
    list_display = ("holder_id", "member_id", "mode", "granted_at", "revoked_at", "source")


@admin.register(FriendLink)
class FriendLinkAdmin(_ReadOnly, ChainScoped, admin.ModelAdmin):
    list_display = ("friend_id", "member_id", "named_at", "ended_at")


@admin.register(MembershipReminder)
class MembershipReminderAdmin(_ReadOnly, ChainScoped, admin.ModelAdmin):
    list_display = ("due_on", "membership_id", "kind", "days_before", "expires_at", "handled_at")
    list_filter = ("kind",)
