from django.contrib import admin

from smileloop.core.admin_scope import CONFIGURATION, ChainScoped
from smileloop.segments.models import Segment


@admin.register(Segment)
class SegmentAdmin(ChainScoped, admin.ModelAdmin):
    """Read-mostly: rules are edited in the builder or the API, where they are validated; a segment is made there
    (its rule is required) and deleted there (softly, and refused while a playbook or a rule tag uses it). Here
    only its name and description change."""

    chain_admin_actions = CONFIGURATION

    list_display = ("id", "chain", "name", "clinic", "is_active", "updated_at", "updated_by")
    list_filter = ("is_active", "chain")
    search_fields = ("name", "description")
    readonly_fields = ("chain", "clinic", "rule", "is_active", "created_by", "updated_by", "created_at", "updated_at")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
