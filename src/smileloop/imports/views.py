"""Staff page: upload a file, see the dry run (preview rows, every error, counts), confirm to write."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from smileloop.clinics.enums import Perm
from smileloop.clinics.selectors import scope_for_user
from smileloop.core.errors import Conflict, NotFound
from smileloop.core.errors import PermissionDenied as DomainPermissionDenied
from smileloop.imports.errors import ImportFileError
from smileloop.imports.forms import ConfirmForm, UploadForm
from smileloop.imports.labels import field_label, field_sort_key, preview_cell
from smileloop.imports.selectors import batch_get
from smileloop.imports.services.batches import batch_confirm, batch_upload


def import_permission_required(view):
    """Login required, then the data.import permission; anyone else gets 403."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            scope = scope_for_user(request.user)
        except DomainPermissionDenied:
            raise PermissionDenied
        if not scope.can(Perm.IMPORT):
            raise PermissionDenied
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
                                 upload=form.cleaned_data["file"], default_clinic=form.cleaned_data["default_clinic"])
        except ImportFileError as exc:
            form.add_error("file", exc.message)
        else:
            return redirect("imports:preview", batch_id=batch.id)
    return render(request, "imports/upload.html", {"form": form}, status=400 if form.errors else 200)


@import_permission_required
@require_http_methods(["GET"])
def preview(request, scope, batch_id):
    batch = _batch(scope, batch_id)
    return render(request, "imports/preview.html", _preview_context(batch, ConfirmForm()))


@import_permission_required
@require_POST
def confirm(request, scope, batch_id):
    batch = _batch(scope, batch_id)
    form = ConfirmForm(request.POST)
    form.is_valid()
    conflict = None
    try:
        batch_confirm(batch=batch, staff=request.user.staff, skip_invalid=form.cleaned_data.get("skip_invalid", False))
    except Conflict as exc:
        conflict = exc.message
    except ImportFileError as exc:
        conflict = exc.message
    batch.refresh_from_db()
    if request.htmx:
        return render(request, "imports/preview.html#result", _preview_context(batch, form, conflict))
    if conflict:
        return render(request, "imports/preview.html", _preview_context(batch, form, conflict), status=409)
    return redirect("imports:preview", batch_id=batch.id)


def _preview_context(batch, form, conflict=None) -> dict:
    report = batch.report or {}
    fields = []
    for row in report.get("preview", []):
        for name in row.get("values", {}):
            if name not in fields:
                fields.append(name)
    sort_key = field_sort_key(batch.kind)
    fields.sort(key=sort_key)
    rows = [{"row": r["row"], "outcome": r["outcome"],
             "cells": [preview_cell(f, r["values"].get(f, "")) for f in fields]}
            for r in report.get("preview", [])]
    columns = [(header, field_label(field)) for header, field in
               sorted(report.get("columns", {}).items(), key=lambda item: sort_key(item[1]))]
    return {"batch": batch, "report": report, "fields": [field_label(f) for f in fields], "columns": columns,
            "rows": rows, "form": form, "conflict": conflict}
