"""The copy of a person's personal information they may ask for (PIPL art. 45): `customer_data_export` writes it as
an XLSX workbook, one sheet per kind of record, and audits it as an export.

This app's own records (profile, identities, consents, timeline, household) are written as the 360 page shows them.
Every other app's records about the person (appointments, orders, plans, procedures, memberships, ledger accounts,
gift cards, surveys, follow-ups, tags …) are found through the model registry, as `customer_merge` finds them, so a
later app is included without touching this module: each model with a foreign key to the customer is one sheet,
and the rows that hang off those rows (an order's lines, payments and refunds; a plan's steps; an account's entries)
one sheet each. Secrets (tokens, idempotency keys, digests) are left out; another person a row names is masked."""

import io
import json

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext as _
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from smileloop.clinics.enums import Perm
from smileloop.clinics.models import Staff
from smileloop.core.audit import audit_record
from smileloop.core.errors import NotFound, PermissionDenied
from smileloop.core.scoping import Scope
from smileloop.customers.models import (
    Consent,
    Customer,
    CustomerMerge,
    CustomerSearchKey,
    Household,
    HouseholdMember,
    Identity,
    Interaction,
)
from smileloop.customers.normalize import name_masked
from smileloop.customers.privacy import _merged_records, _reason_clean
from smileloop.customers.selectors import customer_visible, household_in_scope
from smileloop.customers.services import _user
from smileloop.customers.timeline import timeline_text

# This app's models, written by hand below (or not at all: search keys are derived, merges are our bookkeeping).
_OWN = (Customer, Identity, Consent, Interaction, Household, HouseholdMember, CustomerSearchKey, CustomerMerge)
# Columns that are credentials or internal bookkeeping, never the person's information.
_SECRET_PARTS = ("token", "idempotency", "fingerprint", "digest", "password", "secret", "hash")
PROFILE_FIELDS = ("id", "name", "mobile", "gender", "birthday", "address", "community", "latitude", "longitude",
                  "home_clinic", "consultant", "stage", "first_touch_channel", "first_touch_campaign", "first_touch_at",
                  "first_visit_at", "last_visit_at", "visit_count", "lifetime_spend_fen", "created_at", "erased_at")


class _Sheets:
    def __init__(self, customer: Customer):
        self.customer = customer
        self.sheets: list[tuple[str, list[str], list[list]]] = []
        self.others: dict[int, str] = {}  # the other people the rows name: id → full name

    def add(self, title: str, headers: list[str], rows: list[list]) -> None:
        self.sheets.append((title, headers, rows))

    def cell(self, value, field: models.Field | None = None):
        """A value as the person reads it: choices by label, times in the clinic's zone, other people masked."""
        if value is None:
            return ""
        if isinstance(value, Customer):
            if value.pk == self.customer.pk:
                return _("this person")
            self.others[value.pk] = value.name
            return name_masked(value.name)
        if isinstance(value, Staff):
            return value.name
        if isinstance(value, models.Model):
            return str(value)
        if field is not None and field.choices:
            return str(dict(field.flatchoices).get(value, value))
        if hasattr(value, "tzinfo") and hasattr(value, "hour"):
            return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
        if isinstance(value, (dict, list)):
            return json.dumps(value, ensure_ascii=False, default=str)
        if isinstance(value, bool):
            return _("yes") if value else _("no")
        if isinstance(value, (int, float)):
            return value
        return str(value)


def _fields(model: type[models.Model], *, skip: str | None = None) -> list[models.Field]:
    return [f for f in model._meta.concrete_fields
            if f.name != skip and f.name != "key" and not f.name.endswith("_key")
            and not any(part in f.name for part in _SECRET_PARTS)]


def _named(field: models.Field) -> bool:
    """Whether a foreign key's row reads as something (a clinic, a staff member, a service item): then its name is
    shown; a bare record (an order line, a ledger transaction) is shown by its number, without reading it."""
    model = field.related_model
    return model in (Customer, Staff) or type.__getattribute__(model, "__str__") is not models.Model.__str__


def _model_rows(sheets: _Sheets, qs: models.QuerySet, fields: list[models.Field]) -> list[list]:
    related = [f for f in fields if f.many_to_one or f.one_to_one]
    named = {f.name for f in related if _named(f)}
    return [[sheets.cell(getattr(row, f.name), f) if f.name in named or not f.is_relation
             else getattr(row, f.attname) for f in fields]
            for row in qs.select_related(*named).order_by("pk")]


def _other_apps(sheets: _Sheets, customer: Customer) -> None:
    """Every other app's rows pointing at the person, and the rows hanging off them (one level)."""
    seen: set = set(_OWN)
    parents: list[tuple[type[models.Model], list[int]]] = []
    for rel in Customer._meta.get_fields(include_hidden=True):
        if not rel.auto_created or rel.concrete or not (rel.one_to_many or rel.one_to_one):
            continue
        model = rel.related_model
        if model in _OWN:
            continue
        seen.add(model)
        qs = model._default_manager.filter(**{rel.field.name: customer})
        fields = _fields(model, skip=rel.field.name)
        rows = _model_rows(sheets, qs, fields)
        if not rows:
            continue
        title = str(model._meta.verbose_name_plural)
        if sum(1 for r in Customer._meta.get_fields(include_hidden=True)
               if getattr(r, "related_model", None) is model and r.auto_created and not r.concrete) > 1:
            title += f" ({rel.field.verbose_name})"
        sheets.add(title, [str(f.verbose_name) for f in fields], rows)
        parents.append((model, list(qs.values_list("pk", flat=True))))
    for parent, ids in parents:
        for rel in parent._meta.get_fields(include_hidden=True):
            if not rel.auto_created or rel.concrete or not rel.one_to_many or rel.related_model in seen:
                continue
            child = rel.related_model
            fields = _fields(child)
            rows = _model_rows(sheets, child._default_manager.filter(**{f"{rel.field.name}__in": ids}), fields)
            if rows:
                seen.add(child)
                sheets.add(str(child._meta.verbose_name_plural), [str(f.verbose_name) for f in fields], rows)


def data_copy_sheets(scope: Scope, customer: Customer) -> list[tuple[str, list[str], list[list]]]:
    """The person's information as (sheet title, headers, rows); `customer` obtained through customer_get."""
    sheets = _Sheets(customer)
    meta = Customer._meta
    sheets.add(_("Profile"), [_("Field"), _("Value")],
               [[str(meta.get_field(name).verbose_name), sheets.cell(getattr(customer, name), meta.get_field(name))]
                for name in PROFILE_FIELDS])
    merged = Customer.objects.filter(pk__in=_merged_records(customer)).order_by("pk")
    if merged:  # the person's older records merged into this one still hold what they said then (an old address)
        sheets.add(_("Merged records"), [str(meta.get_field(name).verbose_name) for name in PROFILE_FIELDS],
                   [[sheets.cell(getattr(m, name), meta.get_field(name)) for name in PROFILE_FIELDS] for m in merged])
    fields = _fields(Identity, skip="customer")
    sheets.add(_("Identities"), [str(f.verbose_name) for f in fields],
               _model_rows(sheets, Identity.objects.filter(customer=customer), fields))
    fields = _fields(Consent, skip="customer")
    sheets.add(_("Consents"), [str(f.verbose_name) for f in fields],
               _model_rows(sheets, Consent.objects.filter(customer=customer), fields))
    sheets.add(_("Timeline"), [_("When"), _("Kind"), _("Text"), _("Staff"), _("Clinic")], [
        [sheets.cell(i.occurred_at), i.get_kind_display(), timeline_text(i.text), sheets.cell(i.author),
         sheets.cell(i.clinic)]
        for i in Interaction.objects.filter(customer=customer).select_related("author", "clinic")
        .order_by("occurred_at", "id")])
    found = household_in_scope(scope, customer)
    if found is not None:
        sheets.add(_("Family"), [_("Family"), _("Family member"), _("Relation to the head")],
                   [[found.name, sheets.cell(m.customer), m.get_relation_display()] for m in found.members])
    _other_apps(sheets, customer)
    return _others_masked(sheets)


def _others_masked(sheets: _Sheets) -> list[tuple[str, list[str], list[list]]]:
    """The other people the rows name (a card's giver or holder, a relative, a family-card holder) are masked in
    their columns by `cell`; texts that spell their full name (a gift card's event "given by 吕星辰", a family named
    after its head, "王蕾家") are masked alike. A name within the person's own is left alone."""
    own = sheets.customer.name or ""
    names = sorted({n.strip() for n in sheets.others.values() if len((n or "").strip()) > 1 and n.strip() not in own},
                   key=len, reverse=True)
    if not names:
        return sheets.sheets

    def masked(value):
        if isinstance(value, str):
            for name in names:
                value = value.replace(name, name_masked(name))
        return value

    return [(title, headers, [[masked(v) for v in row] for row in rows]) for title, headers, rows in sheets.sheets]


def _safe(value):
    return ILLEGAL_CHARACTERS_RE.sub("", value) if isinstance(value, str) else value


def workbook_bytes(sheets: list[tuple[str, list[str], list[list]]]) -> bytes:
    """An XLSX of the sheets; every cell is a value (a text starting with = is stored as text, never a formula)."""
    book = Workbook()
    book.remove(book.active)
    used: set[str] = set()
    for title, headers, rows in sheets:
        name = "".join(ch for ch in title if ch not in "[]:*?/\\")[:28] or "sheet"
        while name in used:
            name = name[:26] + f"~{len(used)}"
        used.add(name)
        ws = book.create_sheet(name)
        ws.append([_safe(h) for h in headers])
        for row in rows:
            ws.append([_safe(v) for v in row])
            for cell in ws[ws.max_row]:
                if cell.data_type == "f":  # text starting with "=" stays text: a spreadsheet never runs it
                    cell.data_type = "s"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def customer_data_export(*, scope: Scope, customer: Customer, reason: str,
                         ip_address: str | None = None) -> tuple[str, bytes]:
    """(file name, XLSX bytes) of the person's copy, for staff with customer.privacy and a reason; audited as an
    export (`customer.data_export`: who, when, reason, the sheets and their row counts). The file holds the full
    phone and every detail: it is the person's own copy, handed to them."""
    if not scope.can(Perm.CUSTOMER_PRIVACY):
        raise PermissionDenied("Your role may not export a patient's personal information")
    text = _reason_clean(reason)
    if not customer_visible(scope, customer):
        raise NotFound("Customer not found")
    sheets = data_copy_sheets(scope, customer)
    audit_record(actor=_user(scope), action="customer.data_export", object_type="customer", object_id=customer.pk,
                 reason=text, detail={"sheets": {title: len(rows) for title, _h, rows in sheets}},
                 ip_address=ip_address, clinic_id=customer.home_clinic_id)
    stamp = timezone.localtime().strftime("%Y%m%d")
    return f"customer-{customer.pk}-data-{stamp}.xlsx", workbook_bytes(sheets)
