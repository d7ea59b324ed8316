"""Shared kernel models: audit log and idempotency records."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        abstract = True


class HistoryModel(TimeStampedModel):
    """TimeStampedModel for the large history tables (appointments, orders, plans, procedures, identities,
    households): nothing looks their rows up by creation time, so `created_at` has no index there. That is one
    B-tree fewer for every row a seed, an import, the API or a checkout writes (~27M entries at 1M customers)."""

    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        abstract = True


class AuditEvent(models.Model):
    """Who did what to which personal data, when and why (PIPL). Append-only."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+", db_index=False,  # audit_actor_created leads with it
                              verbose_name=_("actor"))
    action = models.CharField(max_length=64, db_index=True,  # e.g. phone.reveal, customer.merge, export
                              verbose_name=_("action"))
    object_type = models.CharField(max_length=64, verbose_name=_("object type"))
    object_id = models.CharField(max_length=64, blank=True, verbose_name=_("object ID"))
    reason = models.CharField(max_length=500, blank=True, verbose_name=_("reason"))
    detail = models.JSONField(default=dict, blank=True, verbose_name=_("details"))
    ip_address = models.GenericIPAddressField(null=True, blank=True, verbose_name=_("IP address"))
    created_at = models.DateTimeField(auto_now_add=True, db_index=True, verbose_name=_("time"))
    # The clinic whose patient the event is about (their home clinic; None for a chain-wide or several-clinic event):
    # a clinic director reads the events on their patients by anyone, chain staff included. A plain id, not a
    # foreign key: core is below clinics.
    clinic_id = models.IntegerField(null=True, blank=True, verbose_name=_("clinic"))

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-created_at", "-id"]
        # The audit log page (clinics.audit_views): one staff member's events newest first, a page at a time.
        indexes = [models.Index(fields=["object_type", "object_id"]),
                   models.Index(fields=["actor", "created_at"], name="audit_actor_created"),
                   models.Index(fields=["clinic_id", "created_at"], name="audit_clinic_created")]

    def __str__(self):
        return (f"{timezone.localtime(self.created_at):%Y-%m-%d %H:%M} {self.actor_id} {self.action} "
                f"{self.object_type}:{self.object_id}")


class IdempotencyRecord(models.Model):
    """First response to a write with a given Idempotency-Key, replayed on retries."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                             db_index=False,  # idempotency_unique_user_key leads with it
                             verbose_name=_("user"))
    key = models.CharField(max_length=255, verbose_name=_("idempotency key"))
    operation = models.CharField(max_length=100, verbose_name=_("operation"))
    request_hash = models.CharField(max_length=64, verbose_name=_("request digest"))
    status_code = models.PositiveSmallIntegerField(verbose_name=_("status code"))
    response = models.JSONField(verbose_name=_("response"))
    created_at = models.DateTimeField(auto_now_add=True, db_index=True,  # the daily purge deletes by age
                                      verbose_name=_("created"))

    class Meta:
        verbose_name = _("idempotency record")
        verbose_name_plural = _("idempotency records")
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_unique_user_key")]

    def __str__(self):
        return f"{self.operation} ({self.status_code})"
