"""Read-only admin over the patient pool. Changes go through the staff pages and services (dedup, audit,
search keys); the admin shows phones masked like every other screen. Hidden from a chain admin (core.admin_scope):
the 360 page shows their chain's patients in scope, with reveals and exports audited; only the operator reads them
here."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from smileloop.core.admin_scope import ChainScoped
from smileloop.customers.models import (
    Consent,
    Customer,
    CustomerMerge,
    Household,
    HouseholdMember,
    Identity,
    Interaction,
)
from smileloop.customers.normalize import phone_mask


class _ReadOnly:
    def get_readonly_fields(self, request, obj=None):
        # every field is shown read-only, except the ones a page excludes (the full mobile, the location):
        # a read-only field is shown even when it is excluded, so they are left out here
        excluded = set(self.exclude or ())
        return self.fields or [*(f.name for f in self.model._meta.fields if f.name not in excluded),
                               *(f for f in self.readonly_fields if f not in excluded)]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class IdentityInline(_ReadOnly, ChainScoped, admin.TabularInline):
    model = Identity
    fields = ("kind", "external_id", "app_id", "source", "created_at")
    extra = 0


class ConsentInline(_ReadOnly, ChainScoped, admin.TabularInline):
    model = Consent
    fields = ("purpose", "granted", "source", "evidence", "recorded_by", "recorded_at")
    extra = 0


@admin.register(Customer)
class CustomerAdmin(_ReadOnly, ChainScoped, admin.ModelAdmin):
    list_display = ("id", "name", "masked_mobile", "home_clinic", "stage", "first_touch_channel", "visit_count",
                    "created_at")
    list_filter = ("stage", "first_touch_channel", "home_clinic", "chain")
    search_fields = ("=id", "name", "=mobile_tail")
    list_select_related = ("home_clinic",)
    exclude = ("mobile", "latitude", "longitude")
    readonly_fields = ("masked_mobile",)
    inlines = (IdentityInline, ConsentInline)
    show_full_result_count = False

    @admin.display(description=_("mobile"))
    def masked_mobile(self, obj):
        return phone_mask(obj.mobile)


@admin.register(Identity)
class IdentityAdmin(_ReadOnly, ChainScoped, admin.ModelAdmin):
    list_display = ("kind", "external_id", "customer", "source", "created_at")
    list_filter = ("kind",)
    search_fields = ("=external_id",)
    list_select_related = ("customer",)
    show_full_result_count = False


class HouseholdMemberInline(_ReadOnly, ChainScoped, admin.TabularInline):
    model = HouseholdMember
    fields = ("customer", "relation")
    extra = 0


@admin.register(Household)
class HouseholdAdmin(_ReadOnly, ChainScoped, admin.ModelAdmin):
    list_display = ("id", "name", "head", "created_at")
    search_fields = ("name",)
    list_select_related = ("head",)
    inlines = (HouseholdMemberInline,)


@admin.register(Interaction)
class InteractionAdmin(_ReadOnly, ChainScoped, admin.ModelAdmin):
    list_display = ("occurred_at", "kind", "customer", "author", "clinic")
    list_filter = ("kind",)
    list_select_related = ("customer", "author", "clinic")
    show_full_result_count = False


@admin.register(CustomerMerge)
class CustomerMergeAdmin(_ReadOnly, ChainScoped, admin.ModelAdmin):
    list_display = ("created_at", "survivor", "merged", "actor", "reason")
    list_select_related = ("survivor", "merged", "actor")
    exclude = ("merged_snapshot",)
