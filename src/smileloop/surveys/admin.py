from django.contrib import admin

from smileloop.core.admin_scope import CONFIGURATION, ChainScoped
from smileloop.surveys.models import Survey, SurveySettings


@admin.register(SurveySettings)
class SurveySettingsAdmin(ChainScoped, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
    list_display = ["chain", "expiry_days"]


@admin.register(Survey)
class SurveyAdmin(ChainScoped, admin.ModelAdmin):
    """Read-only: answers come only from the patient's link or the API (survey_answer)."""

    list_display = ["id", "clinic", "visit_date", "doctor", "score", "answered_at", "complaint_task_id"]
    list_filter = ["clinic", "visit_date"]
    list_select_related = ["clinic", "doctor"]
    raw_id_fields = ["customer", "appointment", "order", "doctor"]
    exclude = ["token"]  # the patient's credential

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # a patient's answer (and the complaint task it opened) is a record, not configuration
