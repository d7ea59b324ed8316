"""Staff page: upload a file, see the dry run (preview rows, every error, counts), confirm to write."""

from collections import Counter
from functools import wraps

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext
from django.views.decorators.http import require_http_methods, require_POST

from smileloop.clinics.enums import Perm
from smileloop.clinics.selectors import scope_for_user
from smileloop.clinics.web import client_ip, staff_login_required
from smileloop.core.audit import audit_record
from smileloop.core.csvsafe import csv_response, csv_safe
from smileloop.core.errors import Conflict, NotFound
from smileloop.core.errors import PermissionDenied as DomainPermissionDenied
from smileloop.customers.normalize import phone_likes_masked
from smileloop.imports.enums import BatchStatus, ImportKind
from smileloop.imports.errors import ImportFileError
from smileloop.imports.forms import ConfirmForm, UploadForm
from smileloop.imports.labels import field_label, field_sort_key, preview_cell
from smileloop.imports.messages import message_display
from smileloop.imports.selectors import batch_get, batch_progress_get, batches_recent
from smileloop.imports.services.batches import batch_confirm, batch_progress, batch_upload
from smileloop.imports.services.template import template_columns, template_workbook

# The page lists this many errors; all of them (up to report.MAX_ERRORS) are in the errors CSV.
ERRORS_SHOWN = 200
RUNNING = (BatchStatus.CHECKING, BatchStatus.IMPORTING)
ERROR_KINDS_FROM = 20  # from this many errors, the page sums them up by column and problem first
# The errors CSV's audit reason: the download has one purpose, so the uploader is not asked for it. Stored in the
# uploader's language, as a reason they typed would be (the audit log shows reasons as stored).
ERRORS_CSV_REASON = gettext_lazy("Rejected rows of an import, downloaded to correct the file")


def import_permission_required(view):
    """Login required, then the data.import permission; anyone else gets 403."""

    @staff_login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            scope = scope_for_user(request.user)
        except DomainPermissionDenied:
            raise PermissionDenied
        if not scope.can(Perm.IMPORT):  # worded as require_permission's, so the 403 page names it
            raise PermissionDenied(f"missing permission {Perm.IMPORT}")
        return view(request, scope, *args, **kwargs)

    return wrapper


def _batch(scope, batch_id):
    try:
        return batch_get(scope, batch_id)
    except NotFound:
        raise Http404


@import_permission_required
@require_http_methods(["GET", "POST"])
def upload(request, scope):
    form = UploadForm(request.POST or None, request.FILES or None, scope=scope)
    if request.method == "POST" and form.is_valid():
        try:
            batch = batch_upload(staff=request.user.staff, kind=form.cleaned_data["kind"],
                                 upload=form.cleaned_data["file"], default_clinic=form.cleaned_data["default_clinic"],
                                 language=request.LANGUAGE_CODE)
        except ImportFileError as exc:
            form.add_error("file", exc.message)
        else:
            return redirect("imports:preview", batch_id=batch.id)
    english = not request.LANGUAGE_CODE.startswith("zh")
    context = {"form": form, "recent": batches_recent(scope),
               "kinds": [(kind, label, template_columns(kind, chain_id=scope.chain_id, english=english))
                         for kind, label in ImportKind.choices]}
    return render(request, "imports/upload.html", context, status=400 if form.errors else 200)


@import_permission_required
@require_http_methods(["GET"])
def template(request, scope, kind):
    """The XLSX template of a kind of import: the header row, and a sheet saying what each column takes."""
    if kind not in ("customers", "orders"):
        raise Http404
    content = template_workbook(kind, chain_id=scope.chain_id, english=not request.LANGUAGE_CODE.startswith("zh"))
    name = {"customers": _("customers-import-template"), "orders": _("orders-import-template")}[kind]
    response = HttpResponse(content, content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    response["Content-Disposition"] = content_disposition_header(True, f"{name}.xlsx")
    return response


@import_permission_required
@require_http_methods(["GET"])
def preview(request, scope, batch_id):
    batch = _batch(scope, batch_id)
    return render(request, "imports/preview.html", _preview_context(batch, ConfirmForm(),
                                                                     may_see_phones=scope.can(Perm.PHONE_VIEW)))


@import_permission_required
@require_POST
def confirm(request, scope, batch_id):
    batch = _batch(scope, batch_id)
    form = ConfirmForm(request.POST)
    form.is_valid()
    conflict = None
    try:
        batch_confirm(batch=batch, staff=request.user.staff, skip_invalid=form.cleaned_data.get("skip_invalid", False),
                      language=request.LANGUAGE_CODE)
    except (Conflict, ImportFileError) as exc:
        conflict = exc.message
    batch.refresh_from_db()
    if request.htmx:
        if batch.status in RUNNING and not conflict:
            return render(request, "imports/preview.html#progress", _progress_context(batch, form))
        return render(request, "imports/preview.html#result", _preview_context(batch, form, conflict))
    if conflict:
        return render(request, "imports/preview.html", _preview_context(
            batch, form, conflict, may_see_phones=scope.can(Perm.PHONE_VIEW)), status=409)
    return redirect("imports:preview", batch_id=batch.id)


@import_permission_required
@require_http_methods(["GET"])
def progress(request, scope, batch_id):
    """Polled by the page while a large file is checked or imported in the background: the progress block, or,
    once the run has ended, an instruction to htmx to reload the page (which then shows the result)."""
    try:
        batch = batch_progress_get(scope, batch_id)
    except NotFound:
        raise Http404
    if not request.htmx:
        return redirect("imports:preview", batch_id=batch.id)
    if batch.status not in RUNNING:
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    return render(request, "imports/preview.html#progress", _progress_context(batch, ConfirmForm()))


@import_permission_required
@require_POST
def errors_csv(request, scope, batch_id):
    """Every error of the last check or import, for a file with more than the page lists. Only the uploader sees a
    batch, but its cells are patients' personal data leaving the system: an export like any other (PIPL), so every
    download is audited (`import.errors_export`: the file, its rows, why) and the mobiles in its values and problems
    (and numbers nearly a mobile) are masked for a role that may not see phones, as the preview page shows them
    (`phone_likes_for`). A POST, as the other audited downloads: no GET writes, and no other site can make the
    uploader's browser write audit rows."""
    batch = _batch(scope, batch_id)
    errors = (batch.report or {}).get("errors", [])
    audit_record(actor=request.user, action="import.errors_export", object_type="chain", object_id=scope.chain_id,
                 reason=str(ERRORS_CSV_REASON), detail={"file": batch.original_name, "rows": len(errors)},
                 ip_address=client_ip(request))
    shown = str if scope.can(Perm.PHONE_VIEW) else phone_likes_masked

    rows = ([e.get("row", ""), csv_safe(str(e.get("column", ""))), csv_safe(shown(str(e.get("value", "")))),
             csv_safe(shown(message_display(str(e.get("message", "")))))] for e in errors)
    return csv_response([_("Row"), _("Column"), _("Value"), _("Problem")], rows, f"import-errors-{batch.id}.csv",
                        flush_every=500)


def _progress_context(batch, form) -> dict:
    """What the progress block needs, and no more: it is rendered every second while a job runs (the poll's batch
    carries only the report's two figures, `batch_progress_get`)."""
    if hasattr(batch, "report_rows"):
        report = {"rows": _figure(batch.report_rows), "error_count": _figure(batch.report_error_count)}
    else:
        report = batch.report or {}
    return {"batch": batch, "report": report, "form": form, "progress": batch_progress(batch, total=report.get("rows"))}


def _figure(value) -> int | None:
    """A count read out of the stored report by the database (text on SQLite for some versions, a number or None)."""
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _preview_context(batch, form, conflict=None, *, may_see_phones: bool = False) -> dict:
    """The page. The file's rejected cells (errors, warnings: phone cells above all, and numbers nearly a mobile) are
    shown masked to every role, as the phone column is and the 360 page shows a phone, a role that may see phones
    included (`may_see_phones`): the way to them in full is the errors CSV, an audited export, which the page then
    always offers. Free text (notes the import keeps) is shown as the 360 page shows notes (`phones_for`)."""
    report = batch.report or {}
    fields = []
    for row in report.get("preview", []):
        for name in row.get("values", {}):
            if name not in fields:
                fields.append(name)
    sort_key = field_sort_key(batch.kind)
    fields.sort(key=sort_key)
    # A merged row shows the person as they will be stored: the file fills their blank fields only (marked), and
    # where they have a value of their own the file's is shown beside it, as not taken.
    rows = [{"row": r["row"], "outcome": r["outcome"], "warning": r.get("warning", ""),
             "cells": [{"value": preview_cell(f, r["values"].get(f, "")), "filled": f in r.get("filled", ()),
                        "kept": preview_cell(f, r.get("kept", {}).get(f, ""))} for f in fields]}
            for r in report.get("preview", [])]
    columns = [(header, field_label(field)) for header, field in
               sorted(report.get("columns", {}).items(), key=lambda item: sort_key(item[1]))]
    # a fallback column (电话 beside 手机) is shown with the column it stands in for (or that field's label when the
    # file has no such column)
    headers_of = {field: header for header, field in report.get("columns", {}).items()}
    fallbacks = [(header, headers_of.get(field) or field_label(field))
                 for header, field in report.get("fallback_columns", {}).items()]
    errors = report.get("errors", [])
    running = batch.status in RUNNING
    # Many errors are usually a few problems repeated (a column read as the wrong field, a date format): the
    # commonest first, with how many rows have each.
    kinds = Counter((e.get("column", ""), e.get("message", "")) for e in errors) if len(errors) > ERROR_KINDS_FROM else {}
    error_kinds = [{"column": column, "message": message, "count": count}
                   for (column, message), count in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))[:10]]
    return {"batch": batch, "report": report, "fields": [field_label(f) for f in fields], "columns": columns,
            "fallbacks": fallbacks, "warnings": report.get("warnings", [])[:ERRORS_SHOWN],
            "sheets_skipped": pgettext("list separator", ", ").join(f"“{title}”" for title in
                                                                    report.get("sheets_skipped", [])),
            "rows": rows, "form": form, "conflict": conflict, "errors": errors[:ERRORS_SHOWN],
            "errors_more": max(0, report.get("error_count", len(errors)) - ERRORS_SHOWN),
            "running": running, "progress": batch_progress(batch) if running else None, "error_kinds": error_kinds,
            "may_see_phones": may_see_phones}
