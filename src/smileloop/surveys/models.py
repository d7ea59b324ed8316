"""Satisfaction surveys: one per completed visit, answered through an unguessable link (score 0–10,
tags, comment), plus the chain's survey settings (link lifetime)."""

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from smileloop.clinics.models import Chain, Clinic, Staff
from smileloop.customers.models import Customer
from smileloop.surveys.enums import COMMENT_MAX_LENGTH, DETRACTOR_MAX, PROMOTER_MIN, SurveyState, SurveyTag
from smileloop.visits.models import Appointment, Order

DEFAULT_EXPIRY_DAYS = 14


class SurveySettings(models.Model):
    """Per-chain survey configuration (business configuration lives in the database, not in settings).
    A chain without a row uses the defaults."""

    chain = models.OneToOneField(Chain, on_delete=models.CASCADE, related_name="survey_settings",
                                 verbose_name=_("chain"))
    expiry_days = models.PositiveSmallIntegerField(
        _("link valid for (days)"), default=DEFAULT_EXPIRY_DAYS,
        help_text=_("How long after it is created a survey link can be answered."))

    class Meta:
        verbose_name = _("survey settings")
        verbose_name_plural = _("survey settings")
        constraints = [models.CheckConstraint(condition=Q(expiry_days__gte=1, expiry_days__lte=365),
                                              name="survey_settings_expiry_range")]

    def __str__(self):
        return f"{self.chain} · {self.expiry_days}d"


class Survey(models.Model):
    """The survey of one completed visit. `token` is the patient's only credential (≈71 bits of entropy).

    Invariants: one survey per appointment (unique); score and answered_at are set together, once
    (a conditional UPDATE … WHERE answered_at IS NULL); a survey is never changed after it expires.
    """

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", db_index=False,
                              verbose_name=_("chain"))
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="surveys", db_index=False,
                               verbose_name=_("clinic"))
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="surveys",
                                 verbose_name=_("customer"))
    appointment = models.ForeignKey(Appointment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                    db_index=False,  # the unique constraint below is its index
                                    verbose_name=_("appointment"))
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              db_index=False, verbose_name=pgettext_lazy("model name", "order"))
    doctor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                               verbose_name=_("doctor"))
    visit_date = models.DateField(_("visit date"))
    token = models.CharField(max_length=32, unique=True, verbose_name=_("access token"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created"))
    sent_at = models.DateTimeField(null=True, blank=True, verbose_name=_("sent"))
    expires_at = models.DateTimeField(verbose_name=_("expires"))
    opened_at = models.DateTimeField(null=True, blank=True, verbose_name=_("opened"))
    answered_at = models.DateTimeField(null=True, blank=True, verbose_name=_("answered"))
    score = models.PositiveSmallIntegerField(_("score"), null=True, blank=True)
    tags = models.JSONField(_("tags"), default=list, blank=True)
    comment = models.TextField(_("comment"), max_length=COMMENT_MAX_LENGTH, blank=True)
    # Plain id (not a foreign key): the follow-up task lives in smileloop.followups and outlives edits there.
    complaint_task_id = models.BigIntegerField(null=True, blank=True,
                                               verbose_name=_("complaint follow-up task"))

    class Meta:
        verbose_name = _("satisfaction survey")
        verbose_name_plural = _("satisfaction surveys")
        ordering = ["-visit_date", "-id"]
        indexes = [
            models.Index(fields=["clinic", "visit_date"], name="survey_clinic_day"),
            models.Index(fields=["chain", "visit_date"], name="survey_chain_day"),
            models.Index(fields=["chain", "-answered_at"], name="survey_chain_answered"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["appointment"], name="survey_unique_appointment"),
            models.CheckConstraint(condition=Q(score__isnull=True) | Q(score__gte=0, score__lte=10),
                                   name="survey_score_range"),
            models.CheckConstraint(condition=Q(score__isnull=True, answered_at__isnull=True)
                                   | Q(score__isnull=False, answered_at__isnull=False),
                                   name="survey_answer_complete"),
            models.CheckConstraint(condition=Q(expires_at__gt=models.F("created_at")), name="survey_expires_after"),
        ]

    def __str__(self):
        return f"survey {self.pk} ({self.visit_date})"

    def state_at(self, at) -> str:
        if self.answered_at is not None:
            return SurveyState.ANSWERED
        if at >= self.expires_at:
            return SurveyState.EXPIRED
        return SurveyState.OPEN

    @property
    def is_detractor(self) -> bool:
        return self.score is not None and self.score <= DETRACTOR_MAX

    @property
    def is_promoter(self) -> bool:
        return self.score is not None and self.score >= PROMOTER_MIN

    @property
    def tag_labels(self) -> list[str]:
        labels = dict(SurveyTag.choices)
        return [labels.get(tag, tag) for tag in self.tags]
