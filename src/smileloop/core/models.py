"""Shared kernel models: audit log and idempotency records."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class HistoryModel(TimeStampedModel):
    """TimeStampedModel for the large history tables (appointments, orders, plans, procedures, identities,
    households): nothing looks their rows up by creation time, so `created_at` has no index there. That is one
    B-tree fewer for every row a seed, an import, the API or a checkout writes (~27M entries at 1M customers)."""

    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True


class AuditEvent(models.Model):
    """Who did what to which personal data, when and why (PIPL). Append-only."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+", db_index=False)  # audit_actor_created leads with it
    action = models.CharField(max_length=64, db_index=True)  # e.g. phone.reveal, customer.merge, export
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The clinic whose patient the event is about (their home clinic; None for a chain-wide or several-clinic event):
    # a clinic director reads the events on their patients by anyone, chain staff included. A plain id, not a
    # foreign key: core is below clinics.
    clinic_id = models.IntegerField(null=True, blank=True)

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
                             db_index=False)  # idempotency_unique_user_key leads with it
    key = models.CharField(max_length=255)
    operation = models.CharField(max_length=100)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)  # the daily purge deletes by age

    class Meta:
        verbose_name = _("idempotency record")
        verbose_name_plural = _("idempotency records")
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_unique_user_key")]
