"""Reads for the import staff page. A batch is visible only to the staff member who uploaded it."""

from django.db.models.fields.json import KT

from smileloop.core.errors import NotFound
from smileloop.core.scoping import Scope
from smileloop.imports.models import ImportBatch


def batch_get(scope: Scope, batch_id) -> ImportBatch:
    batch = (ImportBatch.objects.select_related("default_clinic")
             .filter(pk=batch_id, chain_id=scope.chain_id, uploaded_by_id=scope.staff_id).first())
    if batch is None:
        raise NotFound("Import not found")
    return batch


def batch_progress_get(scope: Scope, batch_id) -> ImportBatch:
    """The batch as the progress poll needs it, every second while a job runs: its stored report (up to 100,000
    errors and the preview, megabytes of JSON) left unread; the two figures the progress block shows are read out of
    it by the database (`report_rows`, `report_error_count`)."""
    batch = (ImportBatch.objects.defer("report")
             .annotate(report_rows=KT("report__rows"), report_error_count=KT("report__error_count"))
             .filter(pk=batch_id, chain_id=scope.chain_id, uploaded_by_id=scope.staff_id).first())
    if batch is None:
        raise NotFound("Import not found")
    return batch


def batches_recent(scope: Scope, limit: int = 10) -> list[ImportBatch]:
    """The staff member's latest imports, newest first (the import page's list)."""
    return list(ImportBatch.objects.filter(chain_id=scope.chain_id, uploaded_by_id=scope.staff_id)
                .order_by("-created_at")[:limit])
