"""Admin: plans, tiers and benefits are editable (business configuration); memberships and their history are
read-only here, because every change must go through the services (events, locks, consent rules), and hidden from
a chain admin (patients' records; the 360 page shows them)."""

from django import forms
from django.contrib import admin
from django.forms.models import BaseInlineFormSet
from django.utils.translation import gettext_lazy as _

from smileloop.core.admin import FixedOnChange
from smileloop.core.admin_scope import CONFIGURATION, ChainScoped
from smileloop.core.messages import message_display
from smileloop.membership.forms import _PATTERNS, BonusRulesField, PlanForm, TierForm
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
from smileloop.membership.services.plans import (
    BENEFIT_FIELDS,
    PLAN_FIELDS,
    TIER_FIELDS,
    benefit_errors,
    plan_errors,
    tier_errors,
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


def _add_service_errors(form: forms.BaseForm, errors) -> None:
    """The services' field errors beside the admin's fields (model field names), in the reader's language."""
    for error in errors:
        form.add_error(error.field if error.field in form.fields else None,
                       message_display(error.message, patterns=_PATTERNS))


def _merged(form: forms.ModelForm, stored, fields: list[str]) -> dict:
    """The row's values after this save: the stored ones, with what the form changes."""
    merged = {name: getattr(stored, name) for name in fields} if stored is not None else {}
    merged.update({name: value for name, value in form.cleaned_data.items() if name in fields})
    return merged


class _CheckedByServices(forms.ModelForm):
    """The admin saves plans, tiers and benefits as the staff pages do: what `plan_save` / `tier_save` /
    `benefit_save` refuse (the threshold ladder, family slots below a card's family, a plan's kind under its members,
    a visible benefit with a trigger, …) is refused here on the field, and a refused save writes nothing."""

    fields_checked: list[str] = []

    def service_errors(self, merged: dict, stored) -> list:
        raise NotImplementedError

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            # self.instance still holds the stored values here (the form's are set on it after clean)
            stored = self.instance if self.instance.pk else None
            _add_service_errors(self, self.service_errors(_merged(self, stored, self.fields_checked), stored))
        return cleaned


class PlanAdminForm(_CheckedByServices):
    fields_checked = PLAN_FIELDS

    def service_errors(self, merged, stored):
        return plan_errors(merged, stored)


class TierAdminForm(_CheckedByServices):
    fields_checked = TIER_FIELDS

    def service_errors(self, merged, stored):
        plan = self.cleaned_data.get("plan") or (self.instance.plan if self.instance.plan_id else None)
        return tier_errors(plan, merged, stored) if plan is not None else []


class BenefitAdminForm(_CheckedByServices):
    fields_checked = BENEFIT_FIELDS

    def service_errors(self, merged, stored):
        return benefit_errors(merged)


class TierInlineFormSet(BaseInlineFormSet):
    """A plan's tiers edited together: each row is checked as `tier_save` checks it, against the other rows as they
    will be after the save (two rows may swap their thresholds), not as they are stored."""

    def clean(self):
        super().clean()
        if any(f.errors for f in self.forms):
            return
        kept = [f for f in self.forms if not (self.can_delete and self._should_delete_form(f))
                and (f.instance.pk or f.has_changed())]
        # The rows' instances already carry the typed values: the stored ones are read again (family slots).
        stored = Tier.objects.in_bulk([f.instance.pk for f in kept if f.instance.pk])
        merged = {f: _merged(f, stored.get(f.instance.pk), TIER_FIELDS) for f in kept}
        after = {f: Tier(**{k: v for k, v in values.items() if k in ("rank", "name", "min_spend_fen",
                                                                     "min_topup_fen")})
                 for f, values in merged.items()}
        in_form = {f.instance.pk for f in self.forms if f.instance.pk}
        untouched = list(self.instance.tiers.exclude(pk__in=in_form)) if self.instance.pk else []
        for form in kept:
            if not form.has_changed():  # a row left as it is is not checked again; the rows changed are, against it
                continue
            others = untouched + [tier for f, tier in after.items() if f is not form]
            _add_service_errors(form, tier_errors(self.instance, merged[form], stored.get(form.instance.pk), others))


class TierInline(ChainScoped, admin.TabularInline):
    chain_admin_actions = CONFIGURATION
    chain_path = "plan__chain"
    model = Tier
    formset = TierInlineFormSet
    extra = 0
    fields = ("rank", "name", "discount_bp", "family_slots", "friend_discount_bp", "min_spend_fen", "min_topup_fen",
              "downgrade_allowed")


class BenefitInline(ChainScoped, admin.TabularInline):
    chain_admin_actions = CONFIGURATION
    chain_path = "tier__plan__chain"
    model = Benefit
    form = BenefitAdminForm
    extra = 0
    fields = ("position", "name", "is_hidden", "trigger", "trigger_n", "action_code")


@admin.register(MembershipPlan)
class MembershipPlanAdmin(_BonusRulesInRows, FixedOnChange, ChainScoped, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
    list_display = ("name", "chain", "kind", "fee_fen", "duration_months", "spend_threshold_fen", "auto_enrol",
                    "is_active")
    list_filter = ("kind", "is_active", "chain")
    form = PlanAdminForm
    inlines = [TierInline]


@admin.register(Tier)
class TierAdmin(_BonusRulesInRows, FixedOnChange, ChainScoped, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
    chain_path = "plan__chain"
    fixed_on_change = ("plan",)  # members hold the tier under its plan
    form = TierAdminForm
    list_display = ("name", "plan", "rank", "discount_bp", "family_slots", "friend_discount_bp", "points_multiplier")
    list_filter = ("plan",)
    inlines = [BenefitInline]


@admin.register(Benefit)
class BenefitAdmin(FixedOnChange, ChainScoped, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
    chain_path = "tier__plan__chain"
    fixed_on_change = ("tier",)  # its reveals were made to members of that tier
    form = BenefitAdminForm
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
