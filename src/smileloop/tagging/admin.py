"""Admin: the tag catalogue is business configuration (editable); tags on patients are read-only here, because
changes go through the services (who set it, timeline entries, scope checks)."""

from django.contrib import admin

from smileloop.tagging.models import CustomerTag, KeywordScanState, Tag, TagGroup


@admin.register(TagGroup)
class TagGroupAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "kind", "ordering", "chain"]
    list_filter = ["chain", "kind"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "group", "kind", "is_active", "keyword_threshold", "keyword_window_days"]
    list_filter = ["chain", "kind", "is_active", "group"]
    search_fields = ["name", "code"]


@admin.register(CustomerTag)
class CustomerTagAdmin(admin.ModelAdmin):
    list_display = ["customer", "tag", "source", "set_by", "set_at"]
    list_filter = ["source", "tag"]
    raw_id_fields = ["customer", "set_by"]
    list_select_related = ["customer", "tag", "set_by"]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(KeywordScanState)
class KeywordScanStateAdmin(admin.ModelAdmin):
    list_display = ["chain", "last_interaction_id", "scanned_at"]
