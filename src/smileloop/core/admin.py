"""The audit log and idempotency records are evidence: visible in the admin, never edited there."""

from django.contrib import admin

from smileloop.core.models import AuditEvent, IdempotencyRecord


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records the services write (evidence, history, watermarks): shown in the admin, never added, edited or deleted
    there. Every app's admin of such a model uses this."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "actor", "action", "object_type", "object_id", "reason", "ip_address")
    list_filter = ("action", "object_type")
    search_fields = ("object_id", "reason", "actor__username")
    date_hierarchy = "created_at"
    list_select_related = ("actor",)


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "user", "operation", "key", "status_code")
    list_filter = ("operation", "status_code")
    search_fields = ("key",)
    list_select_related = ("user",)
    exclude = ("response",)
