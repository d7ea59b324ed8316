"""Configuration of the chain: clinics, staff and their roles, API tokens (hash only, revocable)."""

from django.contrib import admin
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from smileloop.clinics.models import ApiToken, Chain, Clinic, Staff


@admin.register(Chain)
class ChainAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "time_zone", "created_at")
    search_fields = ("name",)


@admin.register(Clinic)
class ClinicAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "city", "chain", "phone", "is_active")
    list_filter = ("chain", "city", "is_active")
    search_fields = ("code", "name", "city", "address")
    list_select_related = ("chain",)


@admin.register(Staff)
class StaffAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "role", "chain", "is_active")
    list_filter = ("role", "chain", "is_active", "clinics")
    search_fields = ("name", "user__username")
    filter_horizontal = ("clinics",)
    raw_id_fields = ("user",)
    list_select_related = ("user", "chain")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created with `smileloop token create` (the key is shown once); here they are only listed
    and revoked."""

    list_display = ("prefix", "name", "staff", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "name", "staff__name", "staff__user__username")
    readonly_fields = ("staff", "prefix", "key_hash", "created_at", "last_used_at", "revoked_at")
    fields = ("name", *readonly_fields)
    list_select_related = ("staff",)
    actions = ("revoke",)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description=_("Revoke the selected tokens"))
    def revoke(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, _("%(count)d token(s) revoked.") % {"count": count})
