from django.urls import path

from smileloop.clinics import audit_views

app_name = "clinics"

urlpatterns = [
    path("audit/", audit_views.audit_log, name="audit_log"),
    path("audit/export/", audit_views.audit_export, name="audit_export"),
]
