from django.contrib import admin

from smileloop.segments.models import Segment


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    """Read-mostly: rules are edited in the builder or the API, where they are validated."""

    list_display = ("id", "chain", "name", "is_active", "updated_at", "updated_by")
    list_filter = ("is_active", "chain")
    search_fields = ("name", "description")
    readonly_fields = ("rule", "created_by", "updated_by", "created_at", "updated_at")
