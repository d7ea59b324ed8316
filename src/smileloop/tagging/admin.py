"""Admin: the tag catalogue is business configuration (editable); tags on patients are read-only here, because
changes go through the services (who set it, timeline entries, scope checks)."""

from django import forms
from django.contrib import admin

from smileloop.core.admin import FixedOnChange, ReadOnlyAdmin
from smileloop.core.admin_scope import CONFIGURATION, ChainScoped
from smileloop.core.errors import ValidationFailed
from smileloop.tagging import services
from smileloop.tagging.forms import DomainErrorsMixin
from smileloop.tagging.models import CustomerTag, KeywordScanState, Tag, TagGroup


class _CheckedByServices(DomainErrorsMixin, forms.ModelForm):
    """The services' checks (codes, names, the group's chain, rule trees, keywords), reported per field; a refused
    save writes nothing. The chain of a saved row cannot be changed (see `FixedOnChange`)."""

    def service_clean(self, *, chain_id: int, data: dict) -> dict:
        raise NotImplementedError

    def clean(self):
        cleaned = super().clean()
        chain = cleaned.get("chain") or (self.instance.chain if self.instance.pk else None)
        if chain is None or self.errors:
            return cleaned
        try:
            cleaned.update(self.service_clean(chain_id=chain.pk, data=cleaned))
        except ValidationFailed as exc:
            self.add_domain_errors(exc)
        return cleaned


class TagGroupForm(_CheckedByServices):
    class Meta:
        model = TagGroup
        fields = "__all__"  # noqa: DJ007 - the admin chooses what is shown

    def service_clean(self, *, chain_id, data):
        return services._group_clean(chain_id=chain_id, data=data, group=self.instance if self.instance.pk else None)


class TagForm(_CheckedByServices):
    class Meta:
        model = Tag
        fields = "__all__"  # noqa: DJ007 - the admin chooses what is shown

    def service_clean(self, *, chain_id, data):
        return services._tag_clean(chain_id=chain_id, data=data, tag=self.instance if self.instance.pk else None)


@admin.register(TagGroup)
class TagGroupAdmin(FixedOnChange, ChainScoped, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
    form = TagGroupForm
    list_display = ["name", "code", "kind", "ordering", "chain"]
    list_filter = ["chain", "kind"]


@admin.register(Tag)
class TagAdmin(FixedOnChange, ChainScoped, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
    form = TagForm
    list_display = ["name", "code", "group", "kind", "is_active", "keyword_threshold", "keyword_window_days"]
    list_filter = ["chain", "kind", "is_active", "group"]
    search_fields = ["name", "code"]

    def has_delete_permission(self, request, obj=None):
        # deleting would drop the tag from its patients with no timeline entry, and leave rules and segments
        # naming it; deactivate instead
        return False


@admin.register(CustomerTag)
class CustomerTagAdmin(ChainScoped, admin.ModelAdmin):
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

    def has_delete_permission(self, request, obj=None):
        return False  # removing a patient's tag goes through the services (timeline entry, who removed it)


@admin.register(KeywordScanState)
class KeywordScanStateAdmin(ReadOnlyAdmin):
    """The keyword scan's watermark: moved by the scan only (moving it back would count old messages twice)."""

    list_display = ["chain", "last_interaction_id", "scanned_at"]
