from django.apps import AppConfig


class ClinicsConfig(AppConfig):
    name = "smileloop.clinics"
    label = "clinics"
    verbose_name = "Clinics and staff"
