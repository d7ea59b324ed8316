"""The staff page's two steps: upload (store the file, dry run) and confirm (the real import)."""

from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from smileloop.clinics.models import Clinic, Staff
from smileloop.core.errors import Conflict
from smileloop.imports.enums import BatchStatus, ImportKind
from smileloop.imports.errors import ImportFileError
from smileloop.imports.models import ImportBatch
from smileloop.imports.services.customers import customers_import
from smileloop.imports.services.orders import orders_import
from smileloop.imports.services.reading import SUPPORTED_EXTENSIONS
from smileloop.imports.services.report import ImportReport


def import_dir() -> Path:
    """Where uploaded files wait for confirmation: settings.SMILELOOP_IMPORT_DIR or var/imports."""
    return Path(getattr(settings, "SMILELOOP_IMPORT_DIR", None) or Path(settings.BASE_DIR) / "var" / "imports")


def batch_path(batch: ImportBatch) -> Path:
    return import_dir() / f"{batch.id}{batch.extension}"


def _run(batch: ImportBatch, *, actor: Staff | None, dry_run: bool, skip_invalid: bool) -> ImportReport:
    kwargs = {"path": batch_path(batch), "chain": batch.chain, "actor": actor, "dry_run": dry_run,
              "skip_invalid": skip_invalid, "name": batch.original_name or None}
    if batch.kind == ImportKind.CUSTOMERS:
        return customers_import(**kwargs, default_clinic=batch.default_clinic)
    return orders_import(**kwargs)


def batch_upload(*, staff: Staff, kind: str, upload, default_clinic: Clinic | None = None) -> ImportBatch:
    """Store the uploaded file and dry-run it. Raises ImportFileError (and keeps nothing) for an unusable file."""
    extension = Path(upload.name or "").suffix.lower()
    if extension not in SUPPORTED_EXTENSIONS:
        raise ImportFileError(_("Unsupported file type “%(ext)s”: save the sheet as .xlsx or .csv")
                              % {"ext": extension or upload.name}, code="unsupported_file")
    if kind not in ImportKind.values:
        raise ImportFileError(_("Unknown import kind"), code="bad_kind")
    batch = ImportBatch(chain_id=staff.chain_id, kind=kind, original_name=(upload.name or "")[:255],
                        extension=extension, uploaded_by=staff, default_clinic=default_clinic)
    path = batch_path(batch)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        for block in upload.chunks():
            handle.write(block)
    try:
        report = _run(batch, actor=staff, dry_run=True, skip_invalid=False)
    except ImportFileError:
        path.unlink(missing_ok=True)
        raise
    batch.report = report.as_stored()
    batch.save()
    return batch


def batch_confirm(*, batch: ImportBatch, staff: Staff, skip_invalid: bool = False) -> ImportReport:
    """Run the real import of a previewed file. A batch is written at most once (row lock + status)."""
    with transaction.atomic():
        locked = ImportBatch.objects.select_for_update().get(pk=batch.pk)
        if locked.status == BatchStatus.WRITTEN:
            raise Conflict(_("This file has already been imported"), code="already_imported")
        report = _run(locked, actor=staff, dry_run=False, skip_invalid=skip_invalid)
        locked.report = report.as_stored()
        locked.status = BatchStatus.WRITTEN if report.written else BatchStatus.REJECTED
        locked.written_at = timezone.now() if report.written else None
        locked.save(update_fields=["report", "status", "written_at"])
    batch.refresh_from_db()
    return report


def batch_files_purge(*, older_than_days: int = 30) -> int:
    """Delete stored upload files (and their batches) older than the given age; returns how many."""
    cutoff = timezone.now() - timezone.timedelta(days=older_than_days)
    count = 0
    for batch in ImportBatch.objects.filter(created_at__lt=cutoff):
        batch_path(batch).unlink(missing_ok=True)
        batch.delete()
        count += 1
    return count


__all__ = ["batch_confirm", "batch_files_purge", "batch_path", "batch_upload", "import_dir"]
