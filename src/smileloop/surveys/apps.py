from django.apps import AppConfig


class SurveysConfig(AppConfig):
    name = "smileloop.surveys"
    label = "surveys"
    verbose_name = "Satisfaction surveys"
