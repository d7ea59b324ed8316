"""The audit log page (PIPL): who did what to which personal data, when and why. A privacy officer (customer.privacy:
clinic directors, chain admins) answers "who looked at this patient's phone, who exported data last month" by date
range, staff member, action, patient and clinic; the filtered list can be downloaded as CSV, which is itself an
audit event. Scope: the events of the reader's staff (clinics.selectors.audit_event_list).

The page lives in clinics, not core: it needs the staff members and their clinics (core imports no domain app).
Its filter form is here rather than in forms.py, beside the only views that use it."""

import datetime as dt
from urllib.parse import urlsplit

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import (
    MaxLengthValidator,
    MaxValueValidator,
    MinValueValidator,
    ProhibitNullCharactersValidator,
)
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy
from django.views.decorators.http import require_GET, require_POST

from smileloop.clinics.enums import Perm, Role
from smileloop.clinics.selectors import audit_event_list, audit_staff_list, clinic_list
from smileloop.clinics.web import client_ip, require_permission, staff_view
from smileloop.core.audit import DETAIL_CODE_LABELS, STAFF_ACTIONS, audit_record
from smileloop.core.bounds import EARLIEST_RECORD_DATE, pk_from_text
from smileloop.core.csvsafe import csv_response, csv_safe
from smileloop.core.scoping import Scope

DATE_BOUNDS = [MinValueValidator(EARLIEST_RECORD_DATE), MaxValueValidator(dt.date(2999, 12, 31))]


class AuditFilterForm(forms.Form):
    """The audit log page's filters, read from the query string. Unlike the report filters (core.filters), a value
    that cannot be applied is an error naming the field, and the page then lists nothing: a privacy officer asking
    "who looked at this patient" must never be shown everyone's events as the answer."""

    # Bounded: a year-9999 "To" (its next midnight) or a year-1 "From" (before UTC) overflowed into a 500.
    date_from = forms.DateField(label=gettext_lazy("From"), required=False, validators=DATE_BOUNDS,
                                widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label=gettext_lazy("To"), required=False, validators=DATE_BOUNDS,
                              widget=forms.DateInput(attrs={"type": "date"}))
    actor = forms.ModelChoiceField(label=gettext_lazy("Staff member"), queryset=None, required=False,
                                   empty_label=gettext_lazy("All staff"))
    action = forms.ChoiceField(label=gettext_lazy("Action"), required=False)
    customer = forms.CharField(label=gettext_lazy("Patient"), required=False, max_length=500,
                               widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": gettext_lazy(
                                   "Patient ID or the address of their page")}))
    clinic = forms.ModelChoiceField(label=gettext_lazy("Clinic"), queryset=None, required=False,
                                    empty_label=gettext_lazy("All clinics"))
    page = forms.IntegerField(required=False, min_value=1, max_value=10_000, widget=forms.HiddenInput)

    def __init__(self, scope, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["actor"].queryset = audit_staff_list(scope).order_by("name", "id")
        self.fields["action"].choices = [("", gettext_lazy("All actions")), *STAFF_ACTIONS.items()]
        self.fields["clinic"].queryset = clinic_list(scope)

    def clean_customer(self) -> int | None:
        """A patient's ID (123) or the address of any of their pages (https://…/customers/123/, as copied from the
        browser): their record's ID."""
        text = (self.cleaned_data.get("customer") or "").strip()
        if not text:
            return None
        pk = pk_from_text(text.lstrip("#"))
        if pk is None:
            try:
                match = resolve(urlsplit(text).path or "/")
            except Resolver404:
                match = None
            pk = pk_from_text(match.kwargs.get("customer_id", "")) if match and match.namespace == "customers" \
                else None
        if pk is None:
            raise ValidationError(gettext_lazy("Enter the patient's ID (a number) or the address of their page."),
                                  code="customer")
        return pk

    def clean(self):
        data = super().clean()
        since, until = data.get("date_from"), data.get("date_to")
        if since and until and since > until:
            self.add_error("date_to", gettext_lazy("The end date is before the start date."))
        return data

    def filters(self) -> dict | None:
        """The selector's arguments (clinics.selectors.audit_event_list) and the page; None when a filter is
        invalid (its error is on the form). Dates are the chain's days (Asia/Shanghai): `To` includes its day."""
        if self.is_bound and not self.is_valid():
            return None
        data = self.cleaned_data if self.is_bound else {}
        tz = timezone.get_default_timezone()
        since, until = data.get("date_from"), data.get("date_to")
        clinic = data.get("clinic")
        return {
            "since": dt.datetime.combine(since, dt.time.min, tzinfo=tz) if since else None,
            "until": dt.datetime.combine(until + dt.timedelta(days=1), dt.time.min, tzinfo=tz) if until else None,
            "actor": data.get("actor"),
            "action": data.get("action") or "",
            "customer_id": data.get("customer"),
            "clinic_id": clinic.id if clinic else None,
            "page": data.get("page") or 1,
        }


AUDIT_PAGE_SIZE = 50
# What an event is about, in the reader's words: the stored object_type is a code, and "followup_task 12" or
# "login-user zhang" read as English on the Chinese page and in its CSV. A code not listed is shown as stored.
OBJECT_TYPES = {
    "customer": gettext_lazy("Patient"), "staff": gettext_lazy("Staff member"), "followup_task": gettext_lazy("Follow-up task"), "tag": gettext_lazy("Tag"),
    "audit": gettext_lazy("Audit log"), "api_token": gettext_lazy("API token"), "chain": gettext_lazy("Chain"),
    "login": gettext_lazy("login"), "login-user": gettext_lazy("Username"), "login-address": gettext_lazy("Address"),
    "token-address": gettext_lazy("Address"), "login-device": gettext_lazy("Device"),
}


# The detail's keys in the reader's words (the stored keys are codes: "merged_id: 7" read as English on the Chinese
# page). A key not listed is shown as stored.
DETAIL_KEYS = {
    "merged_id": pgettext_lazy("audit detail", "Merged record"),
    "survivor_id": pgettext_lazy("audit detail", "Merged into record"), "moved": pgettext_lazy("audit detail", "Records moved"),
    "numbers": pgettext_lazy("audit detail", "Phone numbers"), "sheets": pgettext_lazy("audit detail", "Sheets"), "filters": pgettext_lazy("audit detail", "Filters"),
    "file": pgettext_lazy("audit detail", "File"), "rows": pgettext_lazy("audit detail", "Rows"), "created": pgettext_lazy("audit detail", "Created"),
    "merged": pgettext_lazy("audit detail", "Merged"), "skipped": pgettext_lazy("audit detail", "Skipped"), "duplicates": pgettext_lazy("audit detail", "Duplicates"),
    "tag": pgettext_lazy("audit detail", "Tag"), "added": pgettext_lazy("audit detail", "Added"), "removed": pgettext_lazy("audit detail", "Removed"),
    "customer_ids": pgettext_lazy("audit detail", "Patients"), "customer_id": pgettext_lazy("audit detail", "Patient"),
    "from": pgettext_lazy("audit detail", "From staff member"), "to": pgettext_lazy("audit detail", "To staff member"), "why": pgettext_lazy("audit detail", "Why"),
    "username": pgettext_lazy("audit detail", "Username"), "name": pgettext_lazy("audit detail", "Name"), "prefix": pgettext_lazy("audit detail", "Token prefix"),
    "staff_id": pgettext_lazy("audit detail", "Staff member"),
    "role_from": pgettext_lazy("audit detail", "Role before"), "role_to": pgettext_lazy("audit detail", "Role after"),
    "clinics_added": pgettext_lazy("audit detail", "Clinics added"),
    "clinics_removed": pgettext_lazy("audit detail", "Clinics removed"),
    "identities": pgettext_lazy("audit detail", "Identities"), "kinds": pgettext_lazy("audit detail", "By kind"),
}


def _detail_text(detail) -> str:
    """An event's detail in one line: its values, a list as its length, a nested object one level deep; the keys
    named in the reader's language (DETAIL_KEYS), ids and codes as stored."""
    if not isinstance(detail, dict):
        return ""
    parts = []
    for key, value in detail.items():
        label = DETAIL_KEYS.get(key, key)
        if isinstance(value, list):
            parts.append(f"{label}: {len(value)}")
        elif isinstance(value, dict):
            codes = DETAIL_CODE_LABELS.get(key, {})  # e.g. identity kinds, in the reader's language
            inner = ", ".join(f"{codes.get(k, k)}={v}" for k, v in value.items() if not isinstance(v, (list, dict)))
            parts.append(f"{label}: {inner}" if inner else str(label))
        elif key in ("role_from", "role_to") and value in Role.values:
            parts.append(f"{label}: {Role(value).label}")
        elif value not in (None, ""):
            parts.append(f"{label}: {value}")
    return "; ".join(parts)


def _audit_row(event) -> dict:
    staff = getattr(event.actor, "staff", None) if event.actor_id else None
    customer_id = event.object_id if event.object_type == "customer" and event.object_id.isdigit() else None
    return {
        "event": event,
        "at": timezone.localtime(event.created_at),
        "actor": staff.name if staff else (event.actor.get_username() if event.actor_id else ""),
        "role": staff.get_role_display() if staff else "",
        "action": STAFF_ACTIONS.get(event.action, event.action),
        "customer_url": reverse("customers:detail", args=[customer_id]) if customer_id else "",
        "object": f"{OBJECT_TYPES.get(event.object_type, event.object_type)} {event.object_id}".strip(),
        "detail": _detail_text(event.detail),
    }


@staff_view
@require_GET
def audit_log(request, scope: Scope):
    """Who did what to which personal data, when and why: the audit events of the reader's staff (chain roles: the
    chain's; a clinic director: their clinics' staff), newest first, 50 a page, filtered by date range, staff member,
    action, patient and clinic. A filter that cannot be applied says so and lists nothing. customer.privacy."""
    require_permission(scope, Perm.CUSTOMER_PRIVACY)
    form = AuditFilterForm(scope, request.GET or None)
    filters = form.filters()
    page, events = 1, []
    if filters is not None:
        page = filters.pop("page")
        start = (page - 1) * AUDIT_PAGE_SIZE
        # One row more than the page says whether a next page exists: no COUNT(*) over the whole log.
        events = list(audit_event_list(scope, **filters)[start:start + AUDIT_PAGE_SIZE + 1])
    context = {
        "form": form,
        "rows": [_audit_row(event) for event in events[:AUDIT_PAGE_SIZE]],
        "page": page,
        "next_page": page + 1 if len(events) > AUDIT_PAGE_SIZE else None,
        "previous_page": page - 1 if page > 1 else None,
        "invalid": filters is None,
        "filtered": form.is_bound,
    }
    return render(request, "clinics/audit_log.html", context)


AUDIT_EXPORT_COLUMNS = [gettext_lazy("Time"), gettext_lazy("Staff member"), gettext_lazy("Role"),
                        gettext_lazy("Action"), gettext_lazy("Object"), gettext_lazy("Reason"),
                        gettext_lazy("Detail"), gettext_lazy("Address")]


@staff_view
@require_POST
def audit_export(request, scope: Scope):
    """The filtered audit list as CSV (UTF-8 with BOM, for Excel), with a reason; the export is itself an audit
    event (`audit.export`, naming its filters). An invalid filter or a missing reason is a 422 saying which."""
    require_permission(scope, Perm.CUSTOMER_PRIVACY)
    form = AuditFilterForm(scope, request.POST)
    filters = form.filters()
    if filters is None:
        return HttpResponse(" ".join(f"{form.fields[name].label if name in form.fields else ''}: {' '.join(errors)}"
                                     for name, errors in form.errors.items()), status=422)
    reason = " ".join((request.POST.get("reason") or "").split())
    if not reason:
        return HttpResponse(_("A reason is required to export the audit log."), status=422)
    try:  # the audit row cannot store a NUL on PostgreSQL
        ProhibitNullCharactersValidator()(reason)
        MaxLengthValidator(200)(reason)  # the box's maxlength, as the customers export: refused, not cut
    except ValidationError as exc:
        return HttpResponse(" ".join(exc.messages), status=422)
    filters.pop("page")
    events = audit_event_list(scope, **filters)
    shown = {k: (v.pk if hasattr(v, "pk") else v.isoformat() if hasattr(v, "isoformat") else v)
             for k, v in filters.items() if v not in (None, "")}
    audit_record(actor=request.user, action="audit.export", object_type="audit", reason=reason,
                 detail={"filters": shown}, ip_address=client_ip(request))

    def rows():
        for event in events.iterator(chunk_size=2000):
            row = _audit_row(event)
            yield [row["at"].strftime("%Y-%m-%d %H:%M:%S"), csv_safe(row["actor"]), row["role"], str(row["action"]),
                   csv_safe(row["object"]), csv_safe(event.reason), csv_safe(row["detail"]), event.ip_address or ""]

    return csv_response(AUDIT_EXPORT_COLUMNS, rows(), "audit-log.csv")
