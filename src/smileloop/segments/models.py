"""Segments: validated rule trees over patient fields, tags, consents and aggregates, compiled to one SQL query.

A saved segment is only its rule tree; who is in it is computed when asked (never stored), so it is always
current and always cut to the asking staff member's scope.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from smileloop.clinics.models import Chain, Clinic, Staff
from smileloop.core.models import TimeStampedModel


class Segment(TimeStampedModel):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", db_index=False,
                              verbose_name=_("chain"))
    name = models.CharField(_("name"), max_length=100)
    description = models.CharField(_("description"), max_length=500, blank=True)
    rule = models.JSONField(_("rule"))
    # Whose segment it is: null = the chain's (chain roles change it; a chain playbook may be triggered by it),
    # else one clinic's (its clinic staff with segment.manage change it too). Everyone who may see segments uses
    # either kind, each cut to their own scope.
    clinic = models.ForeignKey(Clinic, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                               verbose_name=_("clinic"), help_text=_("Empty: the whole chain's segment."))
    created_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                   verbose_name=_("created by"))
    updated_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                   verbose_name=_("updated by"))
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        ordering = ["name", "id"]
        constraints = [
            # Among live segments: a deleted (inactive) segment's name can be used again.
            models.UniqueConstraint(fields=["chain", "name"], condition=Q(is_active=True),
                                    name="segment_unique_name"),
        ]

    def __str__(self):
        return self.name
