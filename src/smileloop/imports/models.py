"""An uploaded file waiting for (or done with) its import, so the staff page can preview then confirm."""

import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _

from smileloop.clinics.models import Chain, Clinic, Staff
from smileloop.imports.enums import BatchStatus, ImportKind


class ImportBatch(models.Model):
    """The file lives at <SMILELOOP_IMPORT_DIR>/<id><extension>; `report` holds the last dry run or import."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False, verbose_name=_("ID"))
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    kind = models.CharField(max_length=16, choices=ImportKind.choices, verbose_name=_("kind"))
    status = models.CharField(max_length=16, choices=BatchStatus.choices, default=BatchStatus.PREVIEWED,
                              verbose_name=_("status"))
    original_name = models.CharField(max_length=255, verbose_name=_("file name"))
    extension = models.CharField(max_length=8, verbose_name=_("file type"))
    uploaded_by = models.ForeignKey(Staff, null=True, on_delete=models.SET_NULL, related_name="+",
                                    verbose_name=_("uploaded by"))
    default_clinic = models.ForeignKey(Clinic, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+", verbose_name=_("default clinic"))
    report = models.JSONField(default=dict, blank=True, verbose_name=_("report"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))
    written_at = models.DateTimeField(null=True, blank=True, verbose_name=_("written"))
    # Why a background check or import failed (an unreadable file, or an unexpected error): shown on the page.
    error = models.TextField(blank=True, default="", verbose_name=_("error"))
    queued_at = models.DateTimeField(null=True, blank=True,  # when the last background run was asked for
                                     verbose_name=_("queued"))
    # The language of the staff member who asked for the last run: a background job writes its messages in it.
    language = models.CharField(max_length=16, blank=True, default="", verbose_name=_("language"))

    class Meta:
        verbose_name = _("import batch")
        verbose_name_plural = _("import batches")
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.kind} {self.original_name} ({self.status})"
