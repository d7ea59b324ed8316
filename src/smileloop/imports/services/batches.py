"""The staff page's two steps: upload (store the file, dry run) and confirm (the real import).

A small file is checked and imported within the request. A large one (a chain's whole patient list: 200,000
rows take tens of seconds, longer than a web worker may hold a request) is handed to the background worker:
the batch is `checking` or `importing` meanwhile, and the page polls `batch_progress`, which the job writes to
a small file beside the upload (the import's own transaction cannot show its progress to another connection,
and on SQLite another writer would wait for it). The worker needs the upload folder anyway, to read the file.
"""

import datetime as dt
import json
import logging
import os
import re
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from smileloop.clinics.models import Clinic, Staff
from smileloop.core.errors import Conflict
from smileloop.core.jobs import enqueue_on_commit
from smileloop.imports.enums import BatchStatus, ImportKind
from smileloop.imports.errors import ImportFileError
from smileloop.imports.models import ImportBatch
from smileloop.imports.services.customers import customers_import
from smileloop.imports.services.orders import orders_import
from smileloop.imports.services.reading import SUPPORTED_EXTENSIONS
from smileloop.imports.services.report import ImportReport

log = logging.getLogger(__name__)


def import_dir() -> Path:
    """Where uploaded files wait for confirmation: settings.SMILELOOP_IMPORT_DIR (var/imports by default)."""
    return Path(settings.SMILELOOP_IMPORT_DIR)


def batch_path(batch: ImportBatch) -> Path:
    return import_dir() / f"{batch.id}{batch.extension}"

# Files up to this size are checked and imported within the request (about 10,000 CSV rows, a few seconds);
# larger ones in the background. XLSX is compressed, and slower to read per byte.
INLINE_MAX_BYTES = {".csv": 1024 * 1024, ".xlsx": 256 * 1024}
# A background run whose progress file has not moved for this long is taken as interrupted (the worker was
# stopped): the page says so and the file may be imported again.
STALE_AFTER = dt.timedelta(minutes=5)
_PROGRESS_EVERY = 0.5  # seconds between two writes of the progress file


FILE_GONE = gettext_noop("The uploaded file is no longer stored on the server; upload it again")


def progress_path(batch: ImportBatch) -> Path:
    return import_dir() / f"{batch.id}.progress.json"


@dataclass(frozen=True)
class BatchProgress:
    """Where a background check or import of a batch stands, for the page that polls it."""

    rows: int  # rows done so far
    total: int | None  # rows in the file, when known (an import after its check), for a percentage
    stale: bool  # no progress for STALE_AFTER: the worker stopped, or never picked the job up

    @property
    def percent(self) -> int | None:
        return min(100, 100 * self.rows // self.total) if self.total else None


def batch_progress(batch: ImportBatch, *, total: int | None = None) -> BatchProgress:
    """The progress file's reading (nothing yet: 0 rows since the batch was queued). `total`: the checked file's
    rows when the caller read them already (the poll does not load the stored report)."""
    if batch.status != BatchStatus.IMPORTING:
        total = None
    elif total is None:
        total = (batch.report or {}).get("rows")
    try:
        data = json.loads(progress_path(batch).read_text(encoding="utf-8"))
        rows, updated = int(data["rows"]), dt.datetime.fromisoformat(data["updated_at"])
    except (OSError, ValueError, KeyError, TypeError):
        rows, updated = 0, None
    since = updated or batch.queued_at or batch.created_at
    stale = since is not None and timezone.now() - since > STALE_AFTER
    return BatchProgress(rows=rows, total=total or None, stale=stale)


class _ProgressWriter:
    """progress(n) for the import services: adds n rows and rewrites the progress file at most every
    _PROGRESS_EVERY seconds (write to a temporary file, then rename: a reader never sees half a file)."""

    def __init__(self, batch: ImportBatch):
        self.path = progress_path(batch)
        self.rows = 0
        self.last = 0.0
        self.write()

    def __call__(self, n: int) -> None:
        self.rows += n
        if time.monotonic() - self.last >= _PROGRESS_EVERY:
            self.write()

    def write(self) -> None:
        self.last = time.monotonic()
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps({"rows": self.rows, "updated_at": timezone.now().isoformat()}),
                             encoding="utf-8")
        os.replace(temporary, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _inline(batch: ImportBatch) -> bool:
    try:
        size = batch_path(batch).stat().st_size
    except OSError:
        return True  # the run itself will say the file is gone
    return size <= INLINE_MAX_BYTES.get(batch.extension, INLINE_MAX_BYTES[".xlsx"])


def _run(batch: ImportBatch, *, actor: Staff | None, dry_run: bool, skip_invalid: bool,
         progress=None) -> ImportReport:
    kwargs = {"path": batch_path(batch), "chain": batch.chain, "actor": actor, "dry_run": dry_run,
              "skip_invalid": skip_invalid, "name": batch.original_name or None, "progress": progress}
    if batch.kind == ImportKind.CUSTOMERS:
        return customers_import(**kwargs, default_clinic=batch.default_clinic)
    return orders_import(**kwargs)


def batch_upload(*, staff: Staff, kind: str, upload, default_clinic: Clinic | None = None,
                 language: str = "") -> ImportBatch:
    """Store the uploaded file and dry-run it. Raises ImportFileError (and keeps nothing) for an unusable file.
    `language`: the uploader's, for the messages of a check run in the background."""
    extension = Path(upload.name or "").suffix.lower()
    if extension not in SUPPORTED_EXTENSIONS:
        raise ImportFileError(_("Unsupported file type “%(ext)s”: save the sheet as .xlsx or .csv")
                              % {"ext": extension or upload.name}, code="unsupported_file")
    if kind not in ImportKind.values:
        raise ImportFileError(_("Unknown import kind"), code="bad_kind")
    batch = ImportBatch(chain_id=staff.chain_id, kind=kind, original_name=(upload.name or "")[:255],
                        extension=extension, uploaded_by=staff, default_clinic=default_clinic,
                        language=(language or "")[:16])
    path = batch_path(batch)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("wb") as handle:
            for block in upload.chunks():
                handle.write(block)
    except BaseException:  # the client went away or the disk filled: no half file of patients' data, no batch
        path.unlink(missing_ok=True)
        raise
    if not _inline(batch):
        # Checked in the background; the page shows its progress, then the preview.
        batch.status, batch.queued_at = BatchStatus.CHECKING, timezone.now()
        with transaction.atomic():
            batch.save()
            enqueue_on_commit(batch_check, batch_id=str(batch.id), queued_at=batch.queued_at.isoformat())
        return batch
    try:
        report = _run(batch, actor=staff, dry_run=True, skip_invalid=False)
    except ImportFileError:
        path.unlink(missing_ok=True)
        raise
    batch.report = report.as_stored()
    batch.save()
    return batch


def batch_confirm(*, batch: ImportBatch, staff: Staff, skip_invalid: bool = False,
                  language: str = "") -> ImportReport | None:
    """Run the real import of a previewed file: now, or for a large file in the background (then None is
    returned and the batch is `importing`). A batch is written at most once (row lock + status)."""
    with transaction.atomic():
        locked = ImportBatch.objects.select_for_update().get(pk=batch.pk)
        _confirmable(locked)
        gone = not batch_path(locked).is_file()
        if gone:  # deleted by hand or lost: failed for good, with a reason rather than the server's path to it
            _failed(locked, _(FILE_GONE))
        elif _inline(locked):
            report = _run(locked, actor=staff, dry_run=False, skip_invalid=skip_invalid)
            _finish(locked, report)
        else:
            report = None
            locked.status, locked.queued_at, locked.error = BatchStatus.IMPORTING, timezone.now(), ""
            locked.language = (language or locked.language)[:16]
            locked.save(update_fields=["status", "queued_at", "error", "language"])
            progress_path(locked).unlink(missing_ok=True)
            enqueue_on_commit(batch_write, batch_id=str(locked.id), queued_at=locked.queued_at.isoformat(),
                              staff_id=staff.id, skip_invalid=skip_invalid)
            log.info("import %s queued for the background worker", locked.id)
    batch.refresh_from_db()
    if gone:
        raise Conflict(_(FILE_GONE), code="file_gone")
    return report


def _confirmable(batch: ImportBatch) -> None:
    if batch.status == BatchStatus.WRITTEN:
        raise Conflict(_("This file has already been imported"), code="already_imported")
    if batch.status == BatchStatus.FAILED:
        raise Conflict(_("This file could not be read; upload it again"), code="import_failed")
    if batch.status in (BatchStatus.CHECKING, BatchStatus.IMPORTING) and not batch_progress(batch).stale:
        raise Conflict(_("This file is still being checked or imported; wait for it to finish"),
                       code="import_running")
    if batch.status == BatchStatus.CHECKING:
        raise Conflict(_("The check of this file was interrupted; upload it again"), code="import_interrupted")


def _finish(batch: ImportBatch, report: ImportReport) -> None:
    batch.report = report.as_stored()
    batch.status = BatchStatus.WRITTEN if report.written else BatchStatus.REJECTED
    batch.written_at = timezone.now() if report.written else None
    batch.error = ""
    batch.save(update_fields=["report", "status", "written_at", "error"])
    if report.written:
        # Imported: the file (patients' personal data) has served its purpose and cannot be imported again.
        transaction.on_commit(lambda: batch_path(batch).unlink(missing_ok=True))


def _claim(batch_id: str, status: str, queued_at: str) -> ImportBatch | None:
    """The batch, if it is still waiting for this job: in `status`, and queued at the moment the job names (an
    import started again after a stop is queued anew, so the first job, should it run late, does nothing; so does
    a job delivered twice, or one for a batch deleted meanwhile). Taken with one conditional UPDATE that moves
    `queued_at` on, so of two workers given the same job at once only one runs it."""
    taken = ImportBatch.objects.filter(pk=batch_id, status=status, queued_at=dt.datetime.fromisoformat(queued_at)
                                       ).update(queued_at=timezone.now())
    if not taken:
        return None
    return ImportBatch.objects.select_related("chain", "default_clinic").filter(pk=batch_id, status=status).first()


def _failed(batch: ImportBatch, message: str) -> None:
    ImportBatch.objects.filter(pk=batch.pk).update(status=BatchStatus.FAILED, error=message[:2000])


def batch_check(*, batch_id: str, queued_at: str) -> None:
    """Background job: the dry run of an uploaded file (then the batch is `previewed`, or `failed` with the
    reason). Never raises: a failure is the batch's state, and a retry would only fail the same way."""
    batch = _claim(batch_id, BatchStatus.CHECKING, queued_at)
    if batch is None:
        return
    with _in_language(batch):
        _check(batch)


def _in_language(batch: ImportBatch):
    """The asker's language for what the job writes (its messages, the report's file-level errors)."""
    return translation.override(batch.language) if batch.language else nullcontext()


def _check(batch: ImportBatch) -> None:
    writer = _ProgressWriter(batch)
    try:
        report = _run(batch, actor=batch.uploaded_by, dry_run=True, skip_invalid=False, progress=writer)
    except ImportFileError as exc:
        _failed(batch, exc.message)
        batch_path(batch).unlink(missing_ok=True)
    except Exception:
        log.exception("import %s: the check failed", batch.id)
        _failed(batch, _("The check stopped on an unexpected error; the details are in the server log"))
    else:
        ImportBatch.objects.filter(pk=batch.pk, status=BatchStatus.CHECKING).update(
            status=BatchStatus.PREVIEWED, report=report.as_stored())
    finally:
        writer.remove()


def batch_write(*, batch_id: str, queued_at: str, staff_id: int, skip_invalid: bool = False) -> None:
    """Background job: the real import of a confirmed file (then `written`, or `rejected` for invalid rows, or
    `failed`). Never raises (see batch_check); the import itself is all or nothing, as on the page."""
    batch = _claim(batch_id, BatchStatus.IMPORTING, queued_at)
    if batch is None:
        return
    with _in_language(batch):
        _write(batch, staff=Staff.objects.filter(pk=staff_id).first(), skip_invalid=skip_invalid)


def _write(batch: ImportBatch, *, staff: Staff | None, skip_invalid: bool) -> None:
    writer = _ProgressWriter(batch)
    try:
        report = _run(batch, actor=staff, dry_run=False, skip_invalid=skip_invalid, progress=writer)
    except ImportFileError as exc:
        _failed(batch, exc.message)
    except Conflict as exc:
        # The pool changed under the import (nothing was written): the file is still good, so it may be run again.
        ImportBatch.objects.filter(pk=batch.pk).update(status=BatchStatus.PREVIEWED, error=exc.message[:2000])
    except Exception:
        # A crash (a lost connection, a full disk) is not the file's fault: back to its preview, to be run again (what
        # was written stays; a re-run matches it instead of writing it twice).
        log.exception("import %s: the import failed", batch.id)
        ImportBatch.objects.filter(pk=batch.pk).update(status=BatchStatus.PREVIEWED, error=_(
            "The import stopped on an unexpected error; nothing more was written, and the details are in the server "
            "log"))
    else:
        with transaction.atomic():
            locked = ImportBatch.objects.select_for_update().get(pk=batch.pk)
            _finish(locked, report)
    finally:
        writer.remove()


def batch_files_purge(*, older_than_days: int = 30) -> int:
    """Delete stored upload files (and their batches, whose previews and errors quote the file) older than the
    given age; returns how many. Scheduled nightly (`imports.purge`): the files hold patients' personal data."""
    cutoff = timezone.now() - timezone.timedelta(days=older_than_days)
    count = 0
    for batch in ImportBatch.objects.filter(created_at__lt=cutoff):
        batch_path(batch).unlink(missing_ok=True)
        progress_path(batch).unlink(missing_ok=True)
        batch.delete()
        count += 1
    _strays_purge(cutoff)
    return count


_BATCH_STEM = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _strays_purge(cutoff: dt.datetime) -> None:
    """Files of the upload folder that no batch names, as old as the cutoff: an upload whose process was killed
    while it stored the file (its batch is saved after the file), a progress file's temporary copy."""
    try:
        paths = [path for path in import_dir().iterdir() if path.is_file()]
    except OSError:
        return
    known = {str(pk) for pk in ImportBatch.objects.values_list("id", flat=True)}
    for path in paths:
        try:
            old = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC) < cutoff
        except OSError:
            continue
        stem = path.name.split(".", 1)[0]
        # Only names this app gives (a batch's UUID): a folder shared by mistake keeps everything else.
        if old and _BATCH_STEM.fullmatch(stem) and stem not in known:
            path.unlink(missing_ok=True)


__all__ = ["BatchProgress", "batch_check", "batch_confirm", "batch_files_purge", "batch_path", "batch_progress",
           "batch_upload", "batch_write", "import_dir", "progress_path"]
