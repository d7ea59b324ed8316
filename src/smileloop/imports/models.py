"""An uploaded file waiting for (or done with) its import, so the staff page can preview then confirm."""

import uuid

from django.db import models

from smileloop.clinics.models import Chain, Clinic, Staff
from smileloop.imports.enums import BatchStatus, ImportKind


class ImportBatch(models.Model):
    """The file lives at <SMILELOOP_IMPORT_DIR>/<id><extension>; `report` holds the last dry run or import."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=ImportKind.choices)
    status = models.CharField(max_length=16, choices=BatchStatus.choices, default=BatchStatus.PREVIEWED)
    original_name = models.CharField(max_length=255)
    extension = models.CharField(max_length=8)
    uploaded_by = models.ForeignKey(Staff, null=True, on_delete=models.SET_NULL, related_name="+")
    default_clinic = models.ForeignKey(Clinic, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    report = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    written_at = models.DateTimeField(null=True, blank=True)
    # Why a background check or import failed (an unreadable file, or an unexpected error): shown on the page.
    error = models.TextField(blank=True, default="")
    queued_at = models.DateTimeField(null=True, blank=True)  # when the last background run was asked for
    # The language of the staff member who asked for the last run: a background job writes its messages in it.
    language = models.CharField(max_length=16, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.kind} {self.original_name} ({self.status})"
