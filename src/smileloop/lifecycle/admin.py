from django.contrib import admin

from smileloop.core.admin_scope import CONFIGURATION, ChainScoped
from smileloop.lifecycle.models import LifecycleSettings


@admin.register(LifecycleSettings)
class LifecycleSettingsAdmin(ChainScoped, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
    list_display = ["chain", "dormant_after_months", "lost_after_months", "lead_lost_after_days", "updated_at"]
