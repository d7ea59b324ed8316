"""Reads for the import staff page. A batch is visible only to the staff member who uploaded it."""

from smileloop.core.errors import NotFound
from smileloop.core.scoping import Scope
from smileloop.imports.models import ImportBatch


def batch_get(scope: Scope, batch_id) -> ImportBatch:
    batch = (ImportBatch.objects.select_related("default_clinic")
             .filter(pk=batch_id, chain_id=scope.chain_id, uploaded_by_id=scope.staff_id).first())
    if batch is None:
        raise NotFound("Import not found")
    return batch


def batches_recent(scope: Scope, limit: int = 10) -> list[ImportBatch]:
    """The staff member's latest imports, newest first (the import page's list)."""
    return list(ImportBatch.objects.filter(chain_id=scope.chain_id, uploaded_by_id=scope.staff_id)
                .order_by("-created_at")[:limit])
