from django.contrib import admin

from smileloop.lifecycle.models import LifecycleSettings


@admin.register(LifecycleSettings)
class LifecycleSettingsAdmin(admin.ModelAdmin):
    list_display = ["chain", "dormant_after_months", "lost_after_months", "lead_lost_after_days", "updated_at"]
