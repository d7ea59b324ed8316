import copy

from django import forms
from django.contrib import admin
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from smileloop.core.admin import FixedOnChange, ReadOnlyAdmin
from smileloop.core.admin_scope import CONFIGURATION, ChainScoped
from smileloop.core.bounds import range_errors
from smileloop.loyalty.messages import loyalty_message_display
from smileloop.loyalty.models import (
    EarnRule,
    EntitlementGrant,
    EntitlementUse,
    Gift,
    GiftExchange,
    Package,
    PackageCancellation,
    PackageEntitlement,
    PackagePurchase,
    RedeemSettings,
    Topup,
    TopupBonusRule,
    TopupRefund,
    WalletShareUse,
)
from smileloop.loyalty.services.config import (
    BONUS_RULE_FIELDS,
    EARN_RULE_FIELDS,
    ENTITLEMENT_FIELDS,
    GIFT_FIELDS,
    PACKAGE_FIELDS,
    earn_rule_errors,
    entitlement_errors,
    text_errors,
    topup_bonus_rule_errors,
)


class _CheckedByServices(forms.ModelForm):
    """The admin refuses what the staff pages' `*_save` services refuse (control characters in a name, points that
    expire before they are spendable, a twin spend rule, a code another rule has in another case, a bonus above its
    top-up, an entitlement of no category or an unknown item), on the field, in the reader's language: it saved them
    as they came."""

    fields_checked: list[str] = []
    row_errors = None

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        data = {name: value for name, value in cleaned.items() if name in self.fields_checked}
        errors = text_errors(self.instance, data, self.fields_checked)
        if not errors and type(self).row_errors is not None:
            row = copy.copy(self.instance)  # the row as this save leaves it (the instance holds the stored values)
            for name, value in cleaned.items():
                if name in self.fields_checked or name == "chain":
                    setattr(row, name, value)
            errors = type(self).row_errors(row)
        for error in errors:
            self.add_error(error.field if error.field in self.fields else None,
                           loyalty_message_display(error.message))
        return cleaned


class EarnRuleAdminForm(_CheckedByServices):
    fields_checked = EARN_RULE_FIELDS
    row_errors = staticmethod(earn_rule_errors)


class GiftAdminForm(_CheckedByServices):
    """The stock is saved as a change of the stock this page showed (`stock_seen`), as on the staff page: a count
    written over it undid the exchanges made while the page was open."""

    fields_checked = GIFT_FIELDS
    stock_seen = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial.setdefault("stock_seen", self.instance.stock)

    def stock_after(self) -> int | None:
        """The stock this save leaves, from the stock as it is now; None when it sets the count (a new gift)."""
        seen, stock = self.cleaned_data.get("stock_seen"), self.cleaned_data.get("stock")
        if self.instance.pk is None or seen is None or stock is None:
            return None
        return Gift.objects.values_list("stock", flat=True).get(pk=self.instance.pk) + stock - seen

    def clean(self):
        cleaned = super().clean()
        after = self.stock_after() if "stock" not in self.errors else None
        for error in range_errors(Gift, {"stock": after}, ["stock"]) if after is not None else []:
            self.add_error("stock", loyalty_message_display(error.message))
        return cleaned


class TopupBonusRuleAdminForm(_CheckedByServices):
    fields_checked = BONUS_RULE_FIELDS
    row_errors = staticmethod(topup_bonus_rule_errors)


class PackageAdminForm(_CheckedByServices):
    fields_checked = PACKAGE_FIELDS


class EntitlementAdminForm(_CheckedByServices):
    fields_checked = ENTITLEMENT_FIELDS
    row_errors = staticmethod(entitlement_errors)


@admin.register(EarnRule)
class EarnRuleAdmin(FixedOnChange, ChainScoped, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
    form = EarnRuleAdminForm
    list_display = ("code", "name", "chain", "trigger", "category", "special_price", "points_per_yuan", "points",
                    "pending_days", "validity_months", "is_active")
    list_filter = ("chain", "trigger", "is_active")


@admin.register(RedeemSettings)
class RedeemSettingsAdmin(FixedOnChange, ChainScoped, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
    list_display = ("chain", "points_per_yuan", "max_share_bp", "is_enabled")


@admin.register(TopupBonusRule)
class TopupBonusRuleAdmin(FixedOnChange, ChainScoped, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
    form = TopupBonusRuleAdminForm
    list_display = ("chain", "min_topup_fen", "bonus_fen", "validity_months", "is_active", "bonus_valid")
    list_filter = ("chain",)

    @admin.display(boolean=True, description=_("bonus within the minimum top-up"))
    def bonus_valid(self, rule: TopupBonusRule) -> bool:
        """False for a rule saved before the check (bonus above its minimum top-up): top-ups reaching it are refused."""
        return not rule.bonus_exceeds_minimum


@admin.register(Gift)
class GiftAdmin(FixedOnChange, ChainScoped, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
    form = GiftAdminForm

    def save_model(self, request, obj, form, change):
        if not change or form.cleaned_data.get("stock_seen") is None:
            return super().save_model(request, obj, form, change)
        with transaction.atomic():  # the change to the stock, made under the row's lock (exchanges wait)
            current = Gift.objects.select_for_update().values_list("stock", flat=True).get(pk=obj.pk)
            obj.stock = max(0, current + form.cleaned_data["stock"] - form.cleaned_data["stock_seen"])
            super().save_model(request, obj, form, change)
    list_display = ("name", "chain", "points_price", "stock", "is_active")
    list_filter = ("chain", "is_active")


class PackageEntitlementInline(ChainScoped, admin.TabularInline):
    chain_admin_actions = CONFIGURATION
    chain_path = "package__chain"
    model = PackageEntitlement
    form = EntitlementAdminForm
    extra = 1


@admin.register(Package)
class PackageAdmin(FixedOnChange, ChainScoped, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
    form = PackageAdminForm
    list_display = ("name", "chain", "price_fen", "validity_months", "max_covered", "is_active")
    inlines = [PackageEntitlementInline]




@admin.register(GiftExchange)
class GiftExchangeAdmin(ReadOnlyAdmin):
    list_display = ("id", "customer", "gift", "quantity", "points", "created_at")
    raw_id_fields = ("customer",)


@admin.register(Topup)
class TopupAdmin(ReadOnlyAdmin):
    list_display = ("id", "customer", "amount_fen", "bonus_fen", "method", "refunded_fen", "bonus_forfeited_fen",
                    "created_at")
    raw_id_fields = ("customer",)


@admin.register(TopupRefund)
class TopupRefundAdmin(ReadOnlyAdmin):
    list_display = ("id", "topup", "amount_fen", "bonus_forfeited_fen", "created_at")


@admin.register(WalletShareUse)
class WalletShareUseAdmin(ReadOnlyAdmin):
    list_display = ("id", "holder", "payer", "amount_fen", "mode", "source", "consented_at", "recorded_by")


@admin.register(PackagePurchase)
class PackagePurchaseAdmin(ReadOnlyAdmin):
    list_display = ("id", "package", "holder", "period_start", "period_end", "status")
    list_filter = ("status",)


@admin.register(PackageCancellation)
class PackageCancellationAdmin(ReadOnlyAdmin):
    list_display = ("id", "purchase", "rule", "computed_fen", "refund_fen", "used_value_fen", "actor", "created_at")
    list_filter = ("rule",)


@admin.register(EntitlementGrant)
class EntitlementGrantAdmin(ReadOnlyAdmin):
    list_display = ("id", "purchase", "customer", "label", "quantity", "max_age", "expired_at", "expired_quantity")


@admin.register(EntitlementUse)
class EntitlementUseAdmin(ReadOnlyAdmin):
    list_display = ("id", "grant", "customer", "item", "kind", "order_line", "used_at")
