from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class SurveyTag(models.TextChoices):
    """What the patient's score was about (a chip on the survey page; several may be chosen)."""

    WAITING_TIME = "waiting_time", _("Waiting time")
    DOCTOR_EXPLANATION = "doctor_explanation", _("Doctor's explanation")
    PAIN = "pain", _("Pain")
    PRICE = "price", _("Price")
    ENVIRONMENT = "environment", _("Environment")


class SurveyState(models.TextChoices):
    """Derived from the timestamps (never stored): what the link shows right now."""

    OPEN = "open", pgettext_lazy("survey status", "Open")
    ANSWERED = "answered", _("Answered")
    EXPIRED = "expired", _("Expired")


class NpsGroup(models.TextChoices):
    CLINIC = "clinic", _("Clinic")
    DOCTOR = "doctor", _("Doctor")
    MONTH = "month", _("Month")


# NPS bands (Reichheld): 9–10 promoters, 7–8 passives, 0–6 detractors.
SCORE_MIN, SCORE_MAX = 0, 10
PROMOTER_MIN = 9
DETRACTOR_MAX = 6
COMMENT_MAX_LENGTH = 500
