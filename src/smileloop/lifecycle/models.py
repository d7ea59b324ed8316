"""Lifecycle stages derived from events (lead → … → referrer, dormant, lost) and the funnel.

The stage itself lives on customers.Customer (stage, stage_reached, stage_prev, stage_changed_at) so every
list and segment reads it without a join; this app holds the per-chain thresholds for the side states.
"""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from smileloop.clinics.models import Chain
from smileloop.core.models import TimeStampedModel

DORMANT_AFTER_MONTHS = 12
LOST_AFTER_MONTHS = 24
LEAD_LOST_AFTER_DAYS = 180


class LifecycleSettings(TimeStampedModel):
    """When a customer turns dormant or lost, per chain (a chain without a row uses the defaults)."""

    chain = models.OneToOneField(Chain, on_delete=models.CASCADE, related_name="lifecycle_settings",
                                 verbose_name=_("chain"))
    dormant_after_months = models.PositiveSmallIntegerField(
        _("dormant after (months without a visit)"), default=DORMANT_AFTER_MONTHS,
        validators=[MinValueValidator(1), MaxValueValidator(120)])
    lost_after_months = models.PositiveSmallIntegerField(
        _("lost after (further months dormant)"), default=LOST_AFTER_MONTHS,
        validators=[MinValueValidator(1), MaxValueValidator(120)])
    lead_lost_after_days = models.PositiveSmallIntegerField(
        _("a lead who never came is lost after (days)"), default=LEAD_LOST_AFTER_DAYS,
        validators=[MinValueValidator(7), MaxValueValidator(3650)])

    class Meta:
        verbose_name = _("lifecycle settings")
        verbose_name_plural = _("lifecycle settings")

    def __str__(self):
        return f"{self.chain}: dormant {self.dormant_after_months} mo, lost +{self.lost_after_months} mo"


# The stage labels are declared in customers.enums.Stage; lifecycle owns the stages, so their Chinese lives in
# this app's catalogue (gettext_noop only marks them for makemessages).
STAGE_LABELS = (gettext_noop("Lead"), gettext_noop("Contacted"), gettext_noop("Booked"), gettext_noop("Arrived"),
                gettext_noop("Treated"), gettext_noop("Member"), gettext_noop("Referrer"), gettext_noop("Dormant"),
                gettext_noop("Lost"), gettext_noop("highest stage reached"))
