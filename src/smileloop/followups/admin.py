from django.contrib import admin

from smileloop.followups.models import FollowupTask, Playbook, PlaybookStep


class StepInline(admin.TabularInline):
    model = PlaybookStep
    extra = 0


@admin.register(Playbook)
class PlaybookAdmin(admin.ModelAdmin):
    list_display = ("name", "code", "chain", "trigger", "goal", "is_active", "is_builtin")
    list_filter = ("trigger", "goal", "is_active")
    inlines = [StepInline]


@admin.register(FollowupTask)
class FollowupTaskAdmin(admin.ModelAdmin):
    list_display = ("id", "playbook", "customer", "assignee", "due_at", "status", "outcome")
    list_filter = ("status", "outcome", "playbook__trigger")
    raw_id_fields = ("customer", "assignee", "completed_by", "doctor", "clinic", "step", "playbook")
    list_select_related = ("playbook", "customer", "assignee")
