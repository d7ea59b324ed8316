from django.contrib import admin

from smileloop.core.admin import FixedOnChange, ReadOnlyAdmin
from smileloop.core.admin_scope import CONFIGURATION, ChainScoped
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


@admin.register(EarnRule)
class EarnRuleAdmin(FixedOnChange, ChainScoped, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
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
    list_display = ("chain", "min_topup_fen", "bonus_fen", "validity_months", "is_active")
    list_filter = ("chain",)


@admin.register(Gift)
class GiftAdmin(FixedOnChange, ChainScoped, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
    list_display = ("name", "chain", "points_price", "stock", "is_active")
    list_filter = ("chain", "is_active")


class PackageEntitlementInline(ChainScoped, admin.TabularInline):
    chain_admin_actions = CONFIGURATION
    chain_path = "package__chain"
    model = PackageEntitlement
    extra = 1


@admin.register(Package)
class PackageAdmin(FixedOnChange, ChainScoped, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
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
