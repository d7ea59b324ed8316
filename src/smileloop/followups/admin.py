"""Playbooks are edited in the staff pages' playbook editor, which checks a trigger's parameters and the steps
(and retires a step with tasks instead of deleting it); here they are listed, named, described and switched on
or off. Tasks are read-only: outcomes, reassignment and closing go through the services (timeline, stage)."""

from django.contrib import admin

from smileloop.core.admin import ReadOnlyAdmin
from smileloop.core.admin_scope import CONFIGURATION, RECORD, ChainScoped
from smileloop.followups.models import FollowupTask, Playbook, PlaybookStep


class StepInline(ChainScoped, admin.TabularInline):
    chain_admin_actions = RECORD
    chain_path = "playbook__chain"
    model = PlaybookStep
    extra = 0
    fields = ("seq", "delay_days", "assignee_rule", "channel", "sla_hours", "lapse_days", "script", "is_active")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Playbook)
class PlaybookAdmin(ChainScoped, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
    list_display = ("name", "code", "chain", "trigger", "goal", "is_active", "is_builtin")
    list_filter = ("trigger", "goal", "is_active")
    fields = ("chain", "code", "name", "description", "trigger", "trigger_params", "goal", "is_active", "is_builtin")
    readonly_fields = ("chain", "code", "trigger", "trigger_params", "goal", "is_builtin")
    inlines = [StepInline]

    def has_add_permission(self, request):
        return False  # new playbooks are made in the playbook editor (a trigger's parameters are checked there)

    def has_delete_permission(self, request, obj=None):
        return False  # tasks refer to it; switch it off instead


@admin.register(FollowupTask)
class FollowupTaskAdmin(ReadOnlyAdmin):
    """Read-only: outcomes, reassignment and closing go through the services (timeline, stage, audit)."""

    list_display = ("id", "playbook", "customer", "assignee", "due_at", "status", "outcome")
    list_filter = ("status", "outcome", "playbook__trigger")
    raw_id_fields = ("customer", "assignee", "completed_by", "doctor", "clinic", "step", "playbook")
    list_select_related = ("playbook", "customer", "assignee")
