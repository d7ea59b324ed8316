"""Staff pages for the patient pool: list and search, the customer 360 page, create/edit, consents,
notes, family, phone reveal, marking a patient lost, merge candidates and merge.

Every view gets the staff member's Scope first and reads patient data only through scoped selectors;
a customer outside the scope is a 404, indistinguishable from one that does not exist.
"""

import uuid
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, ProhibitNullCharactersValidator
from django.db import transaction
from django.http import HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from smileloop.clinics.enums import Perm
from smileloop.clinics.web import client_ip, staff_view
from smileloop.clinics.web import htmx_redirect as _redirect
from smileloop.clinics.web import require_permission as _require
from smileloop.core import errors
from smileloop.core.audit import audit_record
from smileloop.core.csvsafe import csv_response, csv_safe
from smileloop.core.idempotency import form_fingerprint, idempotent_call
from smileloop.core.messages import message_display
from smileloop.core.money import fen_to_yuan
from smileloop.core.scoping import Scope
from smileloop.customers import selectors, services
from smileloop.customers.enums import Channel, ConsentPurpose, Gender, IdentityKind, InteractionKind, Relation
from smileloop.customers.forms import (
    CONSENT_SOURCE_LABELS,
    ConsentForm,
    CustomerFilterForm,
    CustomerForm,
    DataCopyForm,
    EraseForm,
    FamilyMemberForm,
    MarkLostForm,
    MergeForm,
    NoteForm,
    PhoneRevealForm,
    customer_ids_parse,
)
from smileloop.customers.models import Customer
from smileloop.customers.normalize import identity_mask, name_masked, phone_display, phone_mask
from smileloop.customers.sections import PAGED_SECTIONS, SECTIONS
from smileloop.customers.timeline import list_join

PAGE_SIZE = 25
MERGE_REASONS = {
    "same_name_birthday": gettext_lazy("Same name and birthday"),
    "same_name_phone_tail": gettext_lazy("Same name and phone tail"),
    "same_identity": gettext_lazy("One record's phone is another's identity"),
    "same_name_family": gettext_lazy("Same name in one family"),
}


# --- list ----------------------------------------------------------------------------------------------


@staff_view
@require_GET
@vary_on_headers("HX-Request")  # one URL, two answers (the page, the results): the browser caches each apart
def customer_list(request, scope: Scope):
    form = CustomerFilterForm(scope, request.GET or None)
    filters = form.filters()
    if filters is None:  # a search that cannot be run: say so, and show no one
        page, rows = 1, []
    else:
        page = filters.pop("page")
        start = (page - 1) * PAGE_SIZE
        # One extra row says whether a next page exists: no COUNT(*) over the pool on every keystroke.
        rows = selectors.customer_page(scope, start=start, size=PAGE_SIZE + 1, **filters)
    context = {
        "form": form,
        "customers": rows[:PAGE_SIZE],
        "page": page,
        "next_page": page + 1 if len(rows) > PAGE_SIZE else None,
        "previous_page": page - 1 if page > 1 else None,
        "searching": filters is None or any(filters.values()),
        "search_errors": form.errors.get("q", []) if filters is None else [],
        "can_edit": scope.can(Perm.CUSTOMER_EDIT),
        "can_export": scope.can(Perm.CUSTOMER_EXPORT),
        "can_import": scope.can(Perm.IMPORT),  # the empty list of a new chain points to the import
    }
    template = "customers/customer_list.html"
    # htmx restoring a page missing from its history cache (Back/Forward) asks for the whole page.
    if request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request:
        template += "#results"
    return render(request, template, context)


# The export is read in Excel by the staff who asked for it: headings and codes in their language, times in the
# chain's (the headings are ones the import recognises, so a file can go back in).
EXPORT_COLUMNS = ["ID", gettext_lazy("Name"), gettext_lazy("Mobile"), gettext_lazy("Gender"), gettext_lazy("Birthday"),
                  gettext_lazy("Home clinic"), gettext_lazy("Community"), gettext_lazy("Stage"), gettext_lazy("Source"),
                  gettext_lazy("First visit"), gettext_lazy("Last visit"), gettext_lazy("Visits"),
                  gettext_lazy("Lifetime spend (yuan)")]


def _local(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else ""


@staff_view
@require_POST
def customer_export(request, scope: Scope):
    """CSV of the current filter (PIPL): needs the export permission and a reason; audited with the filter.
    Phones are exported in full only for roles that may see them, masked otherwise."""
    _require(scope, Perm.CUSTOMER_EXPORT)
    reason = (request.POST.get("reason") or "").strip()
    if not reason:
        return HttpResponse(_("A reason is required to export customers."), status=422)
    try:  # as a form field would: the audit row cannot store a NUL on PostgreSQL (it was a 500)
        ProhibitNullCharactersValidator()(reason)
        MaxLengthValidator(200)(reason)  # the box's maxlength (the audit row takes 500: PostgreSQL refused more)
    except ValidationError as exc:
        return HttpResponse(" ".join(exc.messages), status=422)
    form = CustomerFilterForm(scope, request.POST)
    filters = form.filters()
    if filters is None:  # never the whole pool for a search that could not be applied
        return HttpResponse(" ".join(form.errors["q"]), status=422)
    # Nor for a filter left out (the list shows "All" for it): an export is what was asked for, or refused.
    refused = {name: errors for name, errors in form.errors.items() if name != "page"}
    if refused:
        return HttpResponse(" ".join(f"{form.fields[name].label}: {' '.join(errors)}" if name in form.fields
                                     else " ".join(errors) for name, errors in refused.items()), status=422)
    filters.pop("page", None)
    qs = selectors.customer_list(scope, **filters)
    audit_record(actor=request.user, action="customer.export", object_type="customer", reason=reason,
                 detail={"filters": {k: str(v) for k, v in filters.items() if v}},
                 ip_address=client_ip(request))
    full_phone = scope.can(Perm.PHONE_VIEW)

    sources = dict(Channel.choices)

    def rows():
        for c in qs.iterator(chunk_size=2000):
            yield [
                c.id, csv_safe(c.name), phone_display(c.mobile) if full_phone else phone_mask(c.mobile),
                c.get_gender_display() if c.gender != Gender.UNKNOWN else "", c.birthday or "",
                csv_safe(c.home_clinic.name) if c.home_clinic else "", csv_safe(c.community), c.get_stage_display(),
                sources.get(c.first_touch_channel, c.first_touch_channel), _local(c.first_visit_at),
                _local(c.last_visit_at), c.visit_count, fen_to_yuan(c.lifetime_spend_fen),
            ]

    return csv_response(EXPORT_COLUMNS, rows(), "customers.csv")


# --- the 360 page ----------------------------------------------------------------------------------------

HISTORY_PAGE_SIZE = 20
# The long histories of the 360 page, shown newest first one page at a time with a "more" link: the timeline
# here, and the sections higher apps register with `paged=True` (visits: appointments, orders, procedures).
HISTORY_SECTIONS = ("timeline", "appointments", "orders", "procedures")


@dataclass
class HistoryPage:
    """One page of a history section: `rows` (at most HISTORY_PAGE_SIZE), its 1-based `number` and whether an
    older page exists. Iterates and tests like the list of rows, so templates read it as before."""

    section: str
    rows: list
    number: int
    has_next: bool

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __bool__(self) -> bool:
        return bool(self.rows)

    @property
    def next_number(self) -> int | None:
        return self.number + 1 if self.has_next else None

    @property
    def previous_number(self) -> int | None:
        return self.number - 1 if self.number > 1 else None


def _history_page(section: str, number: int, load) -> HistoryPage:
    """Read one page through `load(offset=…, limit=…)`: one row more than the page says whether there is more."""
    rows = list(load(offset=(number - 1) * HISTORY_PAGE_SIZE, limit=HISTORY_PAGE_SIZE + 1))
    return HistoryPage(section, rows[:HISTORY_PAGE_SIZE], number, len(rows) > HISTORY_PAGE_SIZE)


# Sources the system itself records: an erasure withdraws every marketing consent (privacy.CONSENT_SOURCE), which
# the consents card showed as the code "erasure" on a Chinese page.
_SYSTEM_CONSENT_SOURCES = {"erasure": gettext_lazy("Erasure of personal information")}


def _consent_source_label(source: str) -> str:
    """How a consent was given: the form's sources, else the channel a lead came through (imports and the API
    record the channel's code), else a source the system records, else the stored text."""
    return str(CONSENT_SOURCE_LABELS.get(source) or dict(Channel.choices).get(source)
               or _SYSTEM_CONSENT_SOURCES.get(source) or source)


class Customer360:
    """Lazy read model of the 360 page: a section is queried only when a template renders it, so an htmx
    POST that returns one fragment runs only that fragment's queries.

    Every section reads off `customer`, which the view obtained through `selectors.customer_get(scope, …)`:
    the scope is applied once, there, and section loaders do not check it again. `pages` names the page of a
    history section to show (default 1)."""

    def __init__(self, scope: Scope, customer: Customer, *, pages: dict[str, int] | None = None):
        self.scope = scope
        self.customer = customer
        self.pages = pages or {}

    @cached_property
    def identities(self):
        return list(selectors.identity_list_for_customer(self.customer))

    @cached_property
    def identities_masked(self) -> bool:
        """Whether the identities card hides anything a reveal would show (phone identities are the phone's)."""
        return any(i.kind != IdentityKind.PHONE and identity_mask(i.kind, i.external_id) != i.external_id
                   for i in self.identities)

    @cached_property
    def contact_via(self):
        """For a patient without a phone (a child), the relative to call: the one the follow-up inbox offers."""
        if self.customer.mobile:
            return None
        return selectors.guardians_for(self.scope, [self.customer.id]).get(self.customer.id)

    @cached_property
    def household(self):
        # Relatives outside the scope are counted, not named; a head outside it is masked in the household's name.
        found = selectors.household_in_scope(self.scope, self.customer)
        if found is None:
            return {"household": None, "name": "", "members": [], "rows": [], "hidden": 0}
        return {"household": found.household, "name": found.name, "members": found.visible, "hidden": found.hidden,
                "rows": _head_choices(found)}

    @cached_property
    def timeline(self) -> HistoryPage:
        return _history_page("timeline", self.pages.get("timeline", 1),
                             lambda **page: selectors.interaction_list_for_customer(self.customer, **page))

    @cached_property
    def consents(self):
        current = selectors.consent_current(self.customer)
        return [{"purpose": value, "label": label, "consent": current.get(value),
                 "source_label": _consent_source_label(current[value].source) if value in current else ""}
                for value, label in ConsentPurpose.choices]

    def __getattr__(self, name: str):
        """Sections contributed by higher apps (visits, membership, gift cards, loyalty…) through
        `section_register`; a paged one is read one page at a time."""
        loader = SECTIONS.get(name)
        if loader is None:
            raise AttributeError(name)
        if name in PAGED_SECTIONS:
            value = _history_page(name, self.pages.get(name, 1),
                                  lambda **page: loader(self.scope, self.customer, **page))
        else:
            value = loader(self.scope, self.customer)
        self.__dict__[name] = value
        return value

    @property
    def can_health(self) -> bool:
        return self.scope.can(Perm.HEALTH_VIEW)


@dataclass(frozen=True)
class HeadChoice:
    """A visible member of the family on the 360 page, with what making them head asks: `needs`, the visible
    relatives whose relation to them does not follow (services.household_head_relations), each with the name of
    its select; `hidden_needs`, how many such relatives are outside the reader's scope (then the reader cannot)."""

    member: object
    needs: list[tuple[object, str]]
    hidden_needs: int

    @property
    def is_head(self) -> bool:
        return self.member.relation == Relation.HEAD


def _head_choices(found: selectors.HouseholdInScope) -> list[HeadChoice]:
    places = {m.customer_id: m.relation for m in found.members}
    visible = {m.customer_id for m in found.visible}
    rows = []
    for member in found.visible:
        if member.relation == Relation.HEAD:
            rows.append(HeadChoice(member, [], 0))
            continue
        derived = services.household_head_relations(places, member.customer_id)
        needs = [(m, f"relation-{m.customer_id}") for m in found.visible if derived[m.customer_id] is None]
        hidden = sum(1 for pk, relation in derived.items() if relation is None and pk not in visible)
        rows.append(HeadChoice(member, needs, hidden))
    return rows


def _render_360(request, scope: Scope, customer: Customer, *, fragment: str = "", status: int = 200,
                revealed_phone: str = "", revealed_others: list[str] | None = None,
                revealed_identities: bool = False, pages: dict[str, int] | None = None, **forms) -> HttpResponse:
    context = {
        "customer": customer,
        "c360": Customer360(scope, customer, pages=pages),
        "revealed_phone": revealed_phone, "revealed_others": revealed_others or [],
        # External identities are masked for every role (normalize.identity_mask); a role that may reveal phones
        # reveals them the same way, with a reason and an audit row (services.identities_reveal).
        "revealed_identities": revealed_identities,
        "can_reveal_identities": scope.can(Perm.PHONE_VIEW),
        "identities_form": forms.get("identities_form") or PhoneRevealForm(),
        # An erased record stays anonymous: nobody types a name or phone back into it (customers.privacy).
        "can_edit": scope.can(Perm.CUSTOMER_EDIT) and customer.erased_at is None,
        "can_privacy": scope.can(Perm.CUSTOMER_PRIVACY),
        "copy_form": forms.get("copy_form") or DataCopyForm(),
        "erase_form": forms.get("erase_form") or EraseForm(customer=customer),
        "can_reveal": scope.can(Perm.PHONE_VIEW) and bool(customer.mobile),
        "can_health": scope.can(Perm.HEALTH_VIEW),
        "can_merge": scope.can(Perm.CUSTOMER_MERGE),
        "reveal_form": forms.get("reveal_form") or PhoneRevealForm(),
        "consent_form": forms.get("consent_form") or ConsentForm(),
        "note_form": forms.get("note_form") or NoteForm(),
        "family_form": forms.get("family_form") or FamilyMemberForm(scope, head=customer),
        "lost_form": forms.get("lost_form") or MarkLostForm(),
        "family_error": forms.get("family_error"),
        "consent_error": forms.get("consent_error"),  # a refusal the consents card has no form to show on (erased)
        "head_open": forms.get("head_open"),  # the member whose "Make head" form stays open (a refusal)
        "relation_choices": [c for c in Relation.choices if c[0] != Relation.HEAD],
    }
    template = "customers/customer_detail.html"
    if fragment and request.htmx:
        template += "#" + fragment
    return render(request, template, context, status=status)


def _requested_page(query) -> tuple[str, int]:
    """`?section=orders&page=3` → ("orders", 3); anything else (unknown section, page=abc) → ("", 1)."""
    section = query.get("section", "")
    try:
        number = int(query.get("page", "1"))
    except ValueError:
        return "", 1
    if section not in HISTORY_SECTIONS or not 1 <= number <= 10_000:
        return "", 1
    return section, number


@staff_view
@require_GET
def customer_detail(request, scope: Scope, customer_id: int):
    """The 360 page. `?section=<history section>&page=N` shows page N of that history: htmx asks for the
    named partial `<section>_page` (the rows and the next "more" link, appended in place); without JavaScript
    the "more" link is a plain link to the whole page showing that page.

    The address of a record merged into another (an old link, a bookmark, the timeline) leads to the record it became,
    when the reader may see that one; otherwise it is a 404 like any id outside the scope."""
    try:
        customer = selectors.customer_get(scope, customer_id)
    except errors.NotFound:
        survivor = selectors.customer_survivor_get(scope, customer_id)  # NotFound → 404, as before
        messages.info(request, _("Customer no. %(number)s was merged into this record.") % {"number": customer_id})
        return _redirect(request, reverse("customers:detail", args=[survivor.id]))  # htmx: a full navigation
    section, number = _requested_page(request.GET)
    fragment = f"{section}_page" if section and request.htmx and not request.htmx.boosted else ""
    return _render_360(request, scope, customer, fragment=fragment, pages={section: number} if section else None)


@staff_view
@require_POST
def phone_reveal(request, scope: Scope, customer_id: int):
    customer = selectors.customer_get(scope, customer_id)
    _require(scope, Perm.PHONE_VIEW)
    form = PhoneRevealForm(request.POST)
    if not form.is_valid():
        return _render_360(request, scope, customer, fragment="phone", status=422, reveal_form=form)
    phone, *others = services.phones_reveal(scope=scope, customer=customer, reason=form.cleaned_data["reason"],
                                            ip_address=client_ip(request))
    return _render_360(request, scope, customer, fragment="phone", revealed_phone=phone, revealed_others=others)


@staff_view
@require_POST
def identities_reveal(request, scope: Scope, customer_id: int):
    """The identities card in full, by the phone reveal's rule (permission, reason, audit row)."""
    customer = selectors.customer_get(scope, customer_id)
    _require(scope, Perm.PHONE_VIEW)
    form = PhoneRevealForm(request.POST)
    if not form.is_valid():
        return _render_360(request, scope, customer, fragment="identities", status=422, identities_form=form)
    services.identities_reveal(scope=scope, customer=customer, reason=form.cleaned_data["reason"],
                               ip_address=client_ip(request))
    return _render_360(request, scope, customer, fragment="identities", revealed_identities=True)


@staff_view
@require_POST
def consent_add(request, scope: Scope, customer_id: int):
    customer = selectors.customer_get(scope, customer_id)
    _require(scope, Perm.CUSTOMER_EDIT)
    if customer.erased_at is not None:
        # Its page offers no consent form (an anonymous record consents to nothing): a post from a page opened before
        # the erasure, or made by hand, was a 422 without a word. Said above the consents, nothing recorded.
        return _render_360(request, scope, customer, fragment="consents", status=422,
                           consent_error=message_display(services.ERASED_REFUSED))
    form = ConsentForm(request.POST)
    if form.is_valid():
        try:
            services.consent_record(customer=customer, actor=request.user.staff, **form.cleaned_data)
        except errors.ValidationFailed as exc:
            form.add_domain_errors(exc)
        except errors.Conflict as exc:  # a consent given for an erased record (a page opened before the erasure)
            form.add_error("granted", message_display(exc.message))
        else:
            if not request.htmx:
                return _redirect(request, reverse("customers:detail", args=[customer.id]) + "#consents")
            return _render_360(request, scope, customer, fragment="consents")
    return _render_360(request, scope, customer, fragment="consents", status=422, consent_form=form)


@staff_view
@require_POST
def note_add(request, scope: Scope, customer_id: int):
    customer = selectors.customer_get(scope, customer_id)
    form = NoteForm(request.POST)
    if customer.erased_at is not None:  # its timeline was blanked: a note would write about the person again
        form.is_valid()
        form.add_error("text", message_display(services.ERASED_REFUSED))
    elif form.is_valid():
        with transaction.atomic():
            # The patient's row first, erased read under it: a note written while the erasure ran was not seen by
            # its timeline blanking (or came after it) and wrote about the erased person again.
            erased = services.customers_lock(customer.pk)
            if not erased:
                services.interaction_add(customer=customer, kind=InteractionKind.NOTE,
                                         text=form.cleaned_data["text"], author=request.user.staff)
        if not erased:
            if not request.htmx:
                return _redirect(request, reverse("customers:detail", args=[customer.id]) + "#timeline")
            return _render_360(request, scope, customer, fragment="timeline")
        form.add_error("text", message_display(services.ERASED_REFUSED))
    return _render_360(request, scope, customer, fragment="timeline", status=422, note_form=form)


@staff_view
@require_POST
def family_add(request, scope: Scope, customer_id: int):
    customer = selectors.customer_get(scope, customer_id)
    _require(scope, Perm.CUSTOMER_EDIT)
    if customer.erased_at is not None:  # as consent_add: no form on its page to show the refusal on
        return _render_360(request, scope, customer, fragment="family", status=422,
                           family_error=message_display(services.ERASED_REFUSED))
    form = FamilyMemberForm(scope, request.POST, head=customer)
    if form.is_valid():
        try:
            services.household_relative_add(customer=customer, relative=form.cleaned_data["member"],
                                            relation=form.cleaned_data["relation"], actor=request.user.staff)
        except errors.ValidationFailed as exc:
            form.add_domain_errors(exc)
        except errors.Conflict as exc:
            form.add_error("member", _("This person is already in this family.") if exc.code == "household_same"
                           else message_display(exc.message) if exc.code == "erased"
                           else _("This person already belongs to another family."))
        else:
            if not request.htmx:
                return _redirect(request, reverse("customers:detail", args=[customer.id]) + "#family")
            return _render_360(request, scope, customer, fragment="family")
    return _render_360(request, scope, customer, fragment="family", status=422, family_form=form)


@staff_view
@require_POST
def family_remove(request, scope: Scope, customer_id: int, member_id: int):
    """Take a relative (or the patient of the page) out of the family shown on the patient's page."""
    customer = selectors.customer_get(scope, customer_id)
    _require(scope, Perm.CUSTOMER_EDIT)
    member = selectors.customer_get(scope, member_id)  # only a relative the reader sees
    shown = selectors.household_in_scope(scope, customer)
    if shown is None or member.pk not in {m.customer_id for m in shown.visible}:
        raise errors.NotFound("Not a member of this family")
    error = None
    try:
        services.household_member_remove(member=member, actor=request.user.staff)
    except errors.Conflict as exc:
        error = (_("%(name)s heads this family: make another member head first.") % {"name": member.name}
                 if exc.code == "household_head" else exc.message)
    if error is None and not request.htmx:
        return _redirect(request, reverse("customers:detail", args=[customer.id]) + "#family")
    return _render_360(request, scope, customer, fragment="family", status=422 if error else 200,
                       family_error=error)


@staff_view
@require_POST
def family_head(request, scope: Scope, customer_id: int, member_id: int):
    """Make a relative (or the patient of the page) head of the family shown on the patient's page. The form sends
    `relation-<id>` for each relative whose relation to the new head does not follow (what the page asked)."""
    customer = selectors.customer_get(scope, customer_id)
    _require(scope, Perm.CUSTOMER_EDIT)
    member = selectors.customer_get(scope, member_id)  # only a relative the reader sees
    shown = selectors.household_in_scope(scope, customer)
    visible = {m.customer_id for m in shown.visible} if shown is not None else set()
    if member.pk not in visible:
        raise errors.NotFound("Not a member of this family")
    # Only relatives the reader sees can be given a relation here (a hidden one's id is not on the page).
    relations = {pk: request.POST[f"relation-{pk}"] for pk in visible if request.POST.get(f"relation-{pk}")}
    error = None
    try:
        services.household_head_set(new_head=member, relations=relations, actor=request.user.staff)
    except errors.ValidationFailed as exc:
        error = _head_refusal(shown, member, exc)
    except errors.Conflict as exc:
        error = message_display(exc.message) if exc.code == "erased" else exc.message
    if error is None and not request.htmx:
        return _redirect(request, reverse("customers:detail", args=[customer.id]) + "#family")
    return _render_360(request, scope, customer, fragment="family", status=422 if error else 200,
                       family_error=error, head_open=member.pk if error else None)


def _head_refusal(shown: selectors.HouseholdInScope, member: Customer, exc: errors.ValidationFailed) -> str:
    """The family section's one sentence for household_head_set's field errors (`relations.<id>`), naming only the
    relatives the reader sees."""
    names = {m.customer_id: m.customer.name for m in shown.visible}
    ids = []
    for error in exc.errors:
        _field, _dot, key = error.field.partition(".")
        ids.append(int(key) if key.isdigit() else None)
    if any(pk not in names for pk in ids):
        return _("A relative at a clinic outside your access would need their relation to %(name)s given: ask a "
                 "colleague who sees them, or a chain administrator.") % {"name": member.name}
    return _("Choose what each of them is to %(name)s: %(relatives)s.") % {
        "name": member.name, "relatives": list_join(names[pk] for pk in ids)}


@staff_view
@require_POST
def mark_lost(request, scope: Scope, customer_id: int):
    """The one stage staff set by hand (the others follow events): lost, with a reason, on the timeline."""
    customer = selectors.customer_get(scope, customer_id)
    _require(scope, Perm.CUSTOMER_EDIT)
    form = MarkLostForm(request.POST)
    if form.is_valid():
        try:
            services.customer_mark_lost(scope=scope, customer=customer, reason=form.cleaned_data["reason"],
                                        actor=request.user.staff)
        except errors.ValidationFailed as exc:
            form.add_domain_errors(exc)
        except errors.Conflict as exc:
            form.add_error(None, message_display(exc.message) if exc.code == "erased"
                           else _("This patient is already marked lost."))
        else:
            messages.success(request, _("%(name)s is marked lost.") % {"name": customer.name})
            return _redirect(request, reverse("customers:detail", args=[customer.id]) + "#timeline")
    return _render_360(request, scope, customer, fragment="stage", status=422, lost_form=form)


# --- create and edit -------------------------------------------------------------------------------------


_FAMILY_MEMBER_EXISTS = gettext_lazy(
    "%(name)s is already in %(relative)s's family. Open their record instead of creating "
    "a second one (a phone-less person is matched by name and birthday in the family).")


# A form whose key already registered someone else: an earlier copy of the page (Back after registering) changed and
# sent again. The page comes back with a new key, so a second click registers this person as their own.
_KEY_USED = gettext_lazy("This form already registered a different patient (it is an earlier copy of the page, e.g. "
                         "after Back). Nothing was recorded: check the details and submit again to register this "
                         "patient.")


class _Refused(Exception):
    """A registration refused: raised out of idempotent_call so that its transaction (the key's claim with it) is
    rolled back and nothing is stored under the key: the form, corrected, is sent again with the same key and
    registers the person. `refusal` (_refusal): what the refusal page says, shown by a GET (_refusal_keep); None:
    the form's own errors, already on the form, shown on the POST's page."""

    def __init__(self, refusal: dict | None = None):
        super().__init__()
        self.refusal = refusal


# The page's "register a new patient anyway" button: sent only when staff confirm, and no part of what the form
# writes (left out of its fingerprint, so the form sent again either way is the same request).
_NAMESAKE_CONFIRMED = "namesake_ok"


# A registration refused for what is on record (the phone is someone's, the person is in the relative's family
# already, the relative is erased or in another family, a phone-less namesake was registered minutes ago) is a page
# of its own (Post/Redirect/Get): the POST redirects to `?warned=<token>`, so Back to it, from the record it links to
# or from the patient registered after it, fetches that page again instead of asking to resend a form. What was typed
# waits for it in the session (stored on the server), under a random token, for _REFUSALS_KEEP_SECONDS, a few pages
# at most: never in the address. The reasons are kept as codes and ids, put into words when the page is shown (in the
# reader's language, the records named read again within the reader's scope).
# The form's own errors (a malformed phone, a future birthday, a relation missing, a key sent twice) stay on the
# POST's page: corrected where they are shown, they name no record to open and come Back from, and a round trip
# through the session for each typo would buy nothing.
_WARNED = "warned"
_REFUSALS = "customers.registration_refusals"
_REFUSALS_KEPT = 5
_REFUSALS_KEEP_SECONDS = services.RECENT_NAMESAKE_MINUTES * 60  # a namesake warning holds while they are recent

_REFUSAL_MESSAGES = {
    "phone_taken": gettext_lazy("This mobile number already belongs to an existing customer."),
    "phone_elsewhere": gettext_lazy("This mobile number belongs to a customer of another clinic; ask a chain "
                                    "administrator to transfer them."),
    "family_member_exists": _FAMILY_MEMBER_EXISTS,
    "relative_in_family": gettext_lazy("This relative already belongs to another family; link them from the "
                                       "customer page after creating."),
}


def _refusal(field: str, code: str, params: dict | None = None, *, existing: Customer | None = None,
             in_family: bool = False) -> dict:
    """A refusal as the session keeps it (JSON): the form's field, the message's code (_refusal_message) and its
    parameters, and the record it links to (one the reader sees)."""
    return {"errors": [[field, code, params or {}]], "existing": existing.id if existing is not None else None,
            "in_family": in_family}


def _refusal_message(code: str, params: dict) -> str:
    if code == "erased":
        return message_display(services.ERASED_REFUSED)
    return str(_REFUSAL_MESSAGES[code]) % params


def _registration_conflict(form: CustomerForm, exc: errors.Conflict) -> dict:
    """customer_register's Conflict as the refusal page's reasons."""
    if exc.code == "family_member_exists":  # the service's check; the form finds the record to link
        existing, visible = form.existing_family_member()
        shown = (form.cleaned_data["name"] if existing is None
                 else existing.name if visible else name_masked(existing.name))
        return _refusal("name", "family_member_exists", {"name": shown, "relative": form.cleaned_data["relative"].name},
                        existing=existing if visible else None, in_family=True)
    if exc.code == "erased":  # the relative named is an erased record: never linked to anyone again
        return _refusal("relative", "erased")
    if exc.code in ("household_same", "household_conflict"):
        return _refusal("relative", "relative_in_family")
    return _refusal("mobile", "phone_taken")


def _namesakes_shown(found: list[Customer]) -> list[dict]:
    """Each namesake with the whole minutes since they were registered: 0 is "just now" on the page."""
    now = timezone.now()
    return [{"customer": customer, "minutes": max(0, int((now - customer.created_at).total_seconds() // 60))}
            for customer in found]


def _refusals_current(request) -> dict:
    """The session's refusal pages not yet expired; the expired ones are dropped from the session now (every visit
    to the new-customer page prunes them: logging out or the session's end drops the rest)."""
    if _REFUSALS not in request.session:
        return {}
    now = timezone.now().timestamp()
    kept = request.session[_REFUSALS]
    current = {token: refusal for token, refusal in kept.items() if refusal["until"] > now}
    if len(current) != len(kept):
        request.session[_REFUSALS] = current
    return current


def _refusal_keep(request, form: CustomerForm, refusal: dict) -> str:
    """Keep what the form sent (its fields and key: what the refusal page shows again) and why it was refused, for
    _REFUSALS_KEEP_SECONDS; returns the token the refusal page's address carries."""
    kept = _refusals_current(request)
    token = uuid.uuid4().hex
    kept[token] = {"until": timezone.now().timestamp() + _REFUSALS_KEEP_SECONDS,
                   "data": {name: request.POST.getlist(name) for name in form.fields if name in request.POST},
                   **refusal}
    request.session[_REFUSALS] = dict(sorted(kept.items(), key=lambda item: item[1]["until"])[-_REFUSALS_KEPT:])
    return token


def _kept_for_back(request, response: HttpResponse) -> HttpResponse:
    """The new-customer page as first shown (an empty form, no message) holds no patient's data: it may be kept
    for Back (`private, no-cache` instead of core.middleware's `no-store`, which keeps a page out of both the
    back/forward cache and the HTTP cache), so that Back shows this same form with its key and sending it again
    leads to the patient it registered (Chromium shows a `no-cache` page from its cache on Back without asking the
    server). The form posts to `?send=1`: a POST that succeeds drops the cached copy of the address it went to. A
    page shown again with what was typed, or with a message, stays no-store; the kept page holds the reader's name
    and clinics, as every page they open does, and no patient's."""
    if request.method == "GET" and response.status_code == 200 and not len(messages.get_messages(request)):
        response["Cache-Control"] = "private, no-cache"
    return response


@staff_view
@require_http_methods(["GET", "POST"])
def customer_create(request, scope: Scope):
    """Register a person. Once per form: its hidden key is claimed under the reader's user in core.idempotency (the
    claim waits for a concurrent one), so the same form sent twice (a retried request, the same page submitted twice,
    the page Back shows: it is kept for Back, _kept_for_back) leads to the patient the first made, nothing written;
    the key with other data is refused (409) and the page comes back with a new key. A refusal stores nothing: the
    corrected form is sent again with its key.

    A key is forgotten after IDEMPOTENCY_KEEP_DAYS, and a browser may fetch the page anew all the same; so a walk-in
    without a phone (nothing else to match on) whose name the same staff member or clinic registered, phone-less, in
    the last RECENT_NAMESAKE_MINUTES (services.customer_register's check, serialised per name) is not registered at
    once: the page names that patient and registers a second one only when staff confirm (the button "register a
    new patient anyway").

    That warning, and every refusal for what is on record (the phone is someone's, the person is in the relative's
    family already, the relative is erased or in another family), is shown by a GET (`?warned=`, _refusal_keep), so
    Back never meets a POST's page; it holds what was typed with its key, so it stays no-store, and the form sent
    again from it is this one. The form's own errors are shown on the POST's page (422)."""
    _require(scope, Perm.CUSTOMER_EDIT)
    refusals = _refusals_current(request)
    if request.method == "GET" and _WARNED in request.GET:
        return _refusal_page(request, scope, refusals.get(request.GET[_WARNED]))
    form = CustomerForm(scope, request.POST if request.method == "POST" else None)  # an empty POST: its errors shown
    state = {}
    form_key = uuid.uuid4().hex
    status = 422 if request.method == "POST" else 200

    def register() -> tuple[int, dict]:
        existing, visible = form.existing_customer()
        if existing is not None:
            raise _Refused(_refusal("mobile", "phone_taken" if visible else "phone_elsewhere",
                                    existing=existing if visible else None))
        try:
            customer, _created = services.customer_register(
                scope=scope, data=form.service_data(), consents=form.consent_data(),
                relative=form.cleaned_data.get("relative"), relation=form.cleaned_data.get("relation"),
                actor=request.user.staff, namesakes_check=request.POST.get(_NAMESAKE_CONFIRMED) != "1")
        except services.RecentNamesakes as exc:
            raise _Refused({"namesakes": [customer.id for customer in exc.found]}) from exc
        except errors.ValidationFailed as exc:
            form.add_domain_errors(exc)
            raise _Refused from exc
        except errors.Conflict as exc:
            raise _Refused(_registration_conflict(form, exc)) from exc
        state["created"] = customer
        return 201, {"customer_id": customer.id}  # stored under the key: an id, nothing about the person

    if request.method == "POST" and form.is_valid():
        form_key = form.cleaned_data["key"]
        try:
            _status, body, replayed = idempotent_call(
                request=request, user_id=request.user.id, key=f"web:customers.create:{form_key}",
                operation="customers.create", run=register,
                fingerprint=form_fingerprint(request, leave_out=(_NAMESAKE_CONFIRMED,)))
        except _Refused as exc:
            if exc.refusal is not None:
                return _redirect(request, reverse("customers:create") + "?" + urlencode(
                    {_WARNED: _refusal_keep(request, form, exc.refusal)}))
        except errors.Conflict as exc:
            if exc.code == "idempotency_key_reused":
                form.add_error(None, _KEY_USED)
                form_key, status = uuid.uuid4().hex, 409
            else:  # "race": a copy sent at the same moment failed and freed the key; sending again is safe
                form.add_error(None, _("This form was being sent twice at the same moment. Nothing was recorded: "
                                       "submit it again."))
                status = 409
        else:
            if replayed:
                messages.info(request, _("This form was already sent: this is the patient it registered. Nothing new "
                                         "was recorded."))
            else:
                messages.success(request, _("Customer %(name)s created.") % {"name": state["created"].name})
            return _redirect(request, reverse("customers:detail", args=[body["customer_id"]]))
    elif request.method == "POST" and form.cleaned_data.get("key"):
        form_key = form.cleaned_data["key"]  # refused before its claim: the corrected form is still this one
    context = {"form": form, "existing": None, "existing_in_family": False, "customer": None, "form_key": form_key}
    return _kept_for_back(request, render(request, "customers/customer_form.html", context, status=status))


def _refusal_page(request, scope: Scope, refusal: dict | None) -> HttpResponse:
    """A refused registration's page (customer_create): the form as it was sent, with its key, the reasons on its
    fields, and the record they name, read again within the reader's scope (one merged, erased from sight or moved
    out of it since is named no more); for namesakes, the button that registers a second one. A token that expired
    (or of another session: `refusal` None) leads to an empty form: what was typed is no longer kept."""
    if refusal is None:
        return _redirect(request, reverse("customers:create"))
    data = QueryDict(mutable=True)
    for name, values in refusal["data"].items():
        data.setlist(name, values)
    form = CustomerForm(scope, data)
    form.is_valid()  # bound to what was sent: shown as typed (and any error that arose since, e.g. a clinic removed)
    form_key = form.cleaned_data.get("key") or uuid.uuid4().hex
    for field, code, params in refusal.get("errors", []):
        form.add_error(field, _refusal_message(code, params))
    existing = None
    if refusal.get("existing") is not None:
        try:
            existing = selectors.customer_get(scope, refusal["existing"])
        except errors.NotFound:
            existing = None
    context = {"form": form, "existing": existing, "existing_in_family": refusal.get("in_family", False),
               "customer": None, "form_key": form_key,
               "namesakes": (_namesakes_shown(selectors.walk_ins_named(scope, refusal["namesakes"]))
                             if refusal.get("namesakes") else []),
               "namesake_confirm": _NAMESAKE_CONFIRMED}
    return render(request, "customers/customer_form.html", context)  # what was typed: no-store (core.middleware)


@staff_view
@require_http_methods(["GET", "POST"])
def customer_edit(request, scope: Scope, customer_id: int):
    """Opening the edit page of a merged record leads to its survivor's, as its 360 page does; a form posted to a
    merged record is a 404 (what it changes was written for a record that no longer exists)."""
    try:
        customer = selectors.customer_get(scope, customer_id)
    except errors.NotFound:
        if request.method == "POST":
            raise
        survivor = selectors.customer_survivor_get(scope, customer_id)
        messages.info(request, _("Customer no. %(number)s was merged into this record.") % {"number": customer_id})
        return _redirect(request, reverse("customers:edit", args=[survivor.id]))
    _require(scope, Perm.CUSTOMER_EDIT)
    if customer.erased_at is not None:  # an anonymous record is never given a name or a phone again
        messages.info(request, _("This patient's personal information was erased; the record cannot be edited."))
        return _redirect(request, reverse("customers:detail", args=[customer.id]))
    form = CustomerForm(scope, request.POST or None, customer=customer)
    existing, existing_elsewhere = None, False
    if request.method == "POST" and form.is_valid():
        existing, visible = form.existing_customer()
        if existing is not None:
            # Nothing is created here, and what to do depends on whom the reader may see and whether they may merge:
            # the page's notice says it (a customer of another clinic is not named).
            form.add_error("mobile", _("This mobile number is already on another customer's record."))
            existing, existing_elsewhere = (existing, False) if visible else (None, True)
        else:
            try:
                services.customer_update(customer=customer, data=form.service_data(), actor=request.user.staff)
            except errors.ValidationFailed as exc:
                form.add_domain_errors(exc)
            else:
                messages.success(request, _("Changes saved."))
                return _redirect(request, reverse("customers:detail", args=[customer.id]))
    context = {"form": form, "existing": existing, "existing_elsewhere": existing_elsewhere, "customer": customer,
               "can_merge": scope.can(Perm.CUSTOMER_MERGE),
               "merge_url": (reverse("customers:merge_candidates") + "?" + urlencode(
                   {"customers": f"{min(customer.id, existing.id)},{max(customer.id, existing.id)}"})
                             if existing is not None else "")}
    return render(request, "customers/customer_form.html", context,
                  status=422 if request.method == "POST" else 200)


# --- duplicates ------------------------------------------------------------------------------------------


def _family_name(scope: Scope, candidate) -> str:
    """The family two namesakes share ("周敏家", the head masked outside the reader's scope): what tells staff which
    child is meant. Read for that kind only, one small read a group."""
    if candidate.reason != "same_name_family":
        return ""
    found = selectors.household_in_scope(scope, candidate.customers[0])
    return found.name if found else ""


def _merge_tab(value) -> str | None:
    """The kind of evidence a duplicates page lists (`?reason=`), or None for all."""
    return value if value in selectors.MERGE_REASONS else None


def _merge_group(reason: str, customers: list[Customer], *, family: str = "") -> dict:
    return {"reason": reason, "customers": customers, "ids": ",".join(str(c.id) for c in customers),
            "family": family, "survivor": customers[0].id, "reason_text": "", "problems": []}


def _merge_page(request, scope: Scope, *, tab: str | None, pinned: list[Customer] | None = None,
                failed: dict | None = None, status: int = 200) -> HttpResponse:
    """The duplicates page: the groups of one kind of evidence (or all). A group the reader `pinned` comes first (the
    records they chose to compare from a customer's edit page, or a refused group); `failed` is a refused merge, whose
    group shows what was wrong beside its form, with what was entered."""
    groups = [
        _merge_group(MERGE_REASONS.get(c.reason, c.reason), c.customers, family=_family_name(scope, c))
        for c in selectors.merge_candidates_list(scope, reason=tab)
    ]
    if pinned:
        ids = ",".join(str(c.id) for c in pinned)
        listed = next((g for g in groups if g["ids"] == ids), None)
        groups = [listed or _merge_group(_("Records you chose"), pinned)] + [
            g for g in groups if g is not listed]
    if failed is not None:
        group = next((g for g in groups if g["ids"] == failed["ids"]), None)
        if group is not None:
            group.update(problems=failed["problems"], reason_text=failed["reason_text"],
                         survivor=failed["survivor"] or group["survivor"])
        failed = {**failed, "shown": group is not None}
    tabs = [{"value": "", "label": _("All"), "active": tab is None}] + [
        {"value": value, "label": MERGE_REASONS[value], "active": tab == value} for value in selectors.MERGE_REASONS]
    return render(request, "customers/merge_candidates.html", {
        "groups": groups, "tabs": tabs, "tab": tab or "", "can_merge": scope.can(Perm.CUSTOMER_MERGE),
        "failed": failed}, status=status)


@staff_view
@require_GET
def merge_candidates(request, scope: Scope):
    """Likely duplicates, strongest evidence first; `?reason=` lists one kind only, so each kind can be worked
    through even when another has hundreds of groups. `?customers=12,34` puts those records first as a group of their
    own (a customer's edit page links here when a phone is already on another record): each must be in the reader's
    scope (404 otherwise)."""
    pinned = None
    if "customers" in request.GET:
        try:
            ids = customer_ids_parse(request.GET["customers"])
        except ValidationError:
            raise errors.NotFound("Customer not found")
        pinned = [selectors.customer_get(scope, pk) for pk in ids]
    return _merge_page(request, scope, tab=_merge_tab(request.GET.get("reason")), pinned=pinned)


@staff_view
@require_POST
def customer_merge(request, scope: Scope):
    """Merge a group into the record kept, all of it or nothing. A refusal (a reason missing, a family the records
    cannot share) shows the duplicates page again (422) with the problem beside that group's form and what was
    entered still in it."""
    _require(scope, Perm.CUSTOMER_MERGE)
    form = MergeForm(request.POST)
    tab = _merge_tab(request.POST.get("tab"))
    if not form.is_valid():
        return _merge_refused(request, scope, form, tab=tab, problems=form.problems())
    try:
        records = {pk: selectors.customer_get(scope, pk) for pk in form.cleaned_data["customers"]}
        survivor = records.pop(form.cleaned_data["survivor"])
        with transaction.atomic():  # a group of three is merged whole or not at all
            for merged in records.values():
                services.customer_merge(scope=scope, survivor=survivor, merged=merged, actor=request.user.staff,
                                        reason=form.cleaned_data["reason"], ip_address=client_ip(request))
                survivor.refresh_from_db()
    except errors.NotFound:
        # The form sent twice (a double click), or a colleague merged the group meanwhile (the service, under its
        # lock, finds the record merged): the records are tombstones now, which was a 404 page after a merge done.
        done = _merge_done(request, scope, form.cleaned_data["customers"], form.cleaned_data["survivor"])
        if done is None:
            raise
        return done
    except errors.Conflict as exc:
        problem = (_("One of these records heads a family and the record to keep belongs to another family: on their "
                     "page, make another member head of that family or take one of them out of their family first, "
                     "then merge.")
                   if exc.code == "household_conflict" else message_display(exc.message))
        return _merge_refused(request, scope, form, tab=tab, problems=[problem])
    except errors.ValidationFailed as exc:
        return _merge_refused(request, scope, form, tab=tab,
                              problems=[message_display(error.message) for error in exc.errors])
    count = len(records)
    messages.success(request, ngettext("Merged %(count)s record into %(name)s.",
                                       "Merged %(count)s records into %(name)s.", count)
                     % {"count": count, "name": survivor.name})
    return _redirect(request, reverse("customers:detail", args=[survivor.id]))


def _merge_done(request, scope: Scope, ids: list[int], survivor_id: int) -> HttpResponse | None:
    """The kept record's page when every other record of the group is already merged into it (through merges of
    merges); None when the group is not merged so (a record outside the scope, or merged into another record), which
    stays a 404. Writes nothing."""
    try:
        survivor = selectors.customer_get(scope, survivor_id)
        if any(selectors.customer_survivor_get(scope, pk).id != survivor.id for pk in ids if pk != survivor_id):
            return None
    except errors.NotFound:
        return None
    messages.info(request, _("These records were already merged into %(name)s; nothing more was changed.")
                  % {"name": survivor.name})
    return _redirect(request, reverse("customers:detail", args=[survivor.id]))


def _merge_refused(request, scope: Scope, form: MergeForm, *, tab: str | None, problems: list[str]) -> HttpResponse:
    """The duplicates page again (422), the refused group first and marked. Its records are read through the scope
    (404 outside it, as merging them would be)."""
    try:
        ids = customer_ids_parse(request.POST.get("customers", ""))
    except ValidationError:
        ids = []
    survivor = getattr(form, "cleaned_data", {}).get("survivor")
    failed = {"ids": ",".join(map(str, ids)), "problems": problems, "survivor": survivor if survivor in ids else None,
              "reason_text": request.POST.get("reason", "")[:255]}
    pinned = [selectors.customer_get(scope, pk) for pk in ids] or None
    return _merge_page(request, scope, tab=tab, pinned=pinned, failed=failed, status=422)
