"""The audit log and idempotency records are evidence: visible in the admin, never edited there."""

from django.contrib import admin

from smileloop.core.models import AuditEvent, IdempotencyRecord


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(_ReadOnly):
    list_display = ("created_at", "actor", "action", "object_type", "object_id", "reason", "ip_address")
    list_filter = ("action", "object_type")
    search_fields = ("object_id", "reason", "actor__username")
    date_hierarchy = "created_at"
    list_select_related = ("actor",)


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(_ReadOnly):
    list_display = ("created_at", "user", "operation", "key", "status_code")
    list_filter = ("operation", "status_code")
    search_fields = ("key",)
    list_select_related = ("user",)
    exclude = ("response",)
