"""Staff pages for tags: the catalogue (groups, tags, counts), create/edit forms, the patients with a tag,
the 360 page's tag section (add/remove through htmx) and bulk tagging from the customer list.

Every view takes the staff Scope first; a customer outside it is a 404."""

import json

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext, pgettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from smileloop.clinics.enums import Perm
from smileloop.clinics.web import htmx_redirect, require_permission, safe_next, staff_view
from smileloop.core import errors
from smileloop.core.bounds import MAX_OFFSET
from smileloop.core.messages import message_display
from smileloop.core.scoping import Scope
from smileloop.customers.selectors import customer_get
from smileloop.tagging import selectors, services
from smileloop.tagging.enums import TagKind, TagSource
from smileloop.tagging.forms import BulkTagForm, TagApplyForm, TagForm, TagGroupForm
from smileloop.tagging.rules import rules_describe

PAGE_SIZE = 50


@staff_view
@require_GET
def tag_list(request, scope: Scope):
    """Groups with their tags and how many patients (in the viewer's clinics) carry each: 3 queries, and up to
    3 more for the names of the clinics, tags and tiers that rules mention. A rule reads as words; its JSON is
    one click away for whoever edits it."""
    groups = selectors.tag_group_list(scope)
    counts = selectors.tag_counts(scope)
    rule_tags = []
    for group in groups:
        for tag in group.tags.all():
            tag.patients = counts.get(tag.id, 0)
            if tag.kind == TagKind.RULE and tag.rule:
                tag.rule_json = json.dumps(tag.rule, ensure_ascii=False)
                rule_tags.append(tag)
    for tag, text in zip(rule_tags, rules_describe([t.rule for t in rule_tags], chain_id=scope.chain_id),
                         strict=True):
        tag.rule_text = text
    return render(request, "tagging/tag_list.html", {
        "groups": groups, "can_manage": scope.can(Perm.TAG_MANAGE),
        "can_build": scope.can(Perm.SEGMENT_VIEW)})


@staff_view
@require_POST
def catalogue_install(request, scope: Scope):
    """Add the default groups and tags the chain lacks (by code); the chain's own edits stay."""
    require_permission(scope, Perm.TAG_MANAGE)
    result = services.tag_catalogue_install(chain=scope.chain_id)
    messages.success(request, ngettext("%(n)d default tag added.", "%(n)d default tags added.", result["tags"])
                     % {"n": result["tags"]})
    return htmx_redirect(request, reverse("tagging:list"))


def _form_page(request, *, form, title: str, back: str, status: int = 200, tag=None):
    """A rule tag's saved rule reads as words (`rules_describe`); its JSON is only in the technical details."""
    rule_text = ""
    if tag is not None and tag.kind == TagKind.RULE and tag.rule:
        [rule_text] = rules_describe([tag.rule], chain_id=tag.chain_id)
    return render(request, "tagging/tag_form.html", {"form": form, "title": title, "back": back, "tag": tag,
                                                     "rule_text": rule_text}, status=status)


@staff_view
@require_http_methods(["GET", "POST"])
def group_create(request, scope: Scope):
    require_permission(scope, Perm.TAG_MANAGE)
    form = TagGroupForm.for_group(None, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            group = services.tag_group_create(chain=scope.chain_id, data=form.cleaned_data)
        except errors.ValidationFailed as exc:
            form.add_domain_errors(exc)
        else:
            messages.success(request, _("Tag group %(name)s created.") % {"name": group.name})
            return htmx_redirect(request, reverse("tagging:list"))
    return _form_page(request, form=form, title=_("New tag group"), back=reverse("tagging:list"),
                      status=422 if request.method == "POST" else 200)


@staff_view
@require_http_methods(["GET", "POST"])
def group_edit(request, scope: Scope, group_id: int):
    require_permission(scope, Perm.TAG_MANAGE)
    group = selectors.tag_group_get(scope, group_id)
    form = TagGroupForm.for_group(group, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.tag_group_update(group=group, data=form.cleaned_data)
        except errors.ValidationFailed as exc:
            form.add_domain_errors(exc)
        else:
            messages.success(request, _("Changes saved."))
            return htmx_redirect(request, reverse("tagging:list"))
    return _form_page(request, form=form, title=group.name, back=reverse("tagging:list"),
                      status=422 if request.method == "POST" else 200)


@staff_view
@require_http_methods(["GET", "POST"])
def tag_create(request, scope: Scope):
    require_permission(scope, Perm.TAG_MANAGE)
    initial = {"group": request.GET.get("group")} if request.GET.get("group") else None
    form = TagForm(scope, request.POST or None, **({"initial": initial} if initial else {}))
    if request.method == "POST" and form.is_valid():
        try:
            tag = services.tag_create(chain=scope.chain_id, data=form.service_data())
        except errors.ValidationFailed as exc:
            form.add_domain_errors(exc)
        else:
            messages.success(request, _("Tag %(name)s created.") % {"name": tag.name})
            return htmx_redirect(request, reverse("tagging:list"))
    return _form_page(request, form=form, title=_("New tag"), back=reverse("tagging:list"),
                      status=422 if request.method == "POST" else 200)


@staff_view
@require_http_methods(["GET", "POST"])
def tag_edit(request, scope: Scope, tag_id: int):
    require_permission(scope, Perm.TAG_MANAGE)
    tag = selectors.tag_get(scope, tag_id)
    form = TagForm(scope, request.POST or None, tag=tag)
    if request.method == "POST" and form.is_valid():
        try:
            services.tag_update(tag=tag, data=form.service_data())
        except errors.ValidationFailed as exc:
            form.add_domain_errors(exc)
        else:
            messages.success(request, _("Changes saved."))
            return htmx_redirect(request, reverse("tagging:list"))
    return _form_page(request, form=form, title=tag.name, back=reverse("tagging:list"), tag=tag,
                      status=422 if request.method == "POST" else 200)


@staff_view
@require_GET
def tag_customers(request, scope: Scope, tag_id: int):
    """Who carries a tag (in the viewer's clinics), newest first, with who or what set it."""
    tag = selectors.tag_get(scope, tag_id)
    try:
        page = max(int(request.GET.get("page") or 1), 1)
    except ValueError:
        page = 1
    page = min(page, MAX_OFFSET // PAGE_SIZE)  # an offset the database takes (a page past it failed: a 500)
    start = (page - 1) * PAGE_SIZE
    rows = list(selectors.tag_customer_list(scope, tag)[start:start + PAGE_SIZE + 1])
    return render(request, "tagging/tag_customers.html", {
        "tag": tag, "rows": rows[:PAGE_SIZE], "page": page,
        "next_page": page + 1 if len(rows) > PAGE_SIZE else None, "previous_page": page - 1 if page > 1 else None})


# --- the 360 page section ---------------------------------------------------------------------------------


def _form_messages(request, form) -> None:
    """A plain (non-htmx) post goes back to a page that cannot show the form: its errors become messages, each
    after its field's label."""
    for name, field_errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else None
        for error in field_errors:
            messages.error(request, f"{label}{pgettext('label separator', ': ')}{error}" if label else error)


def _section(request, scope: Scope, customer, *, form=None, remove_error: str = "",
             status: int = 200) -> HttpResponse:
    if not request.htmx:
        if form is not None and form.errors:
            _form_messages(request, form)
        if remove_error:
            messages.error(request, remove_error)
        return htmx_redirect(request, reverse("customers:detail", args=[customer.id]) + "#tags")
    return render(request, "tagging/_section.html", {
        "customer": customer, "tags": selectors.tags_section(scope, customer), "tag_form": form,
        "remove_error": remove_error}, status=status)


@staff_view
@require_POST
def customer_tag_add(request, scope: Scope, customer_id: int):
    customer = customer_get(scope, customer_id)
    require_permission(scope, Perm.TAG_APPLY)
    form = TagApplyForm(scope, request.POST)
    if not form.is_valid():
        return _section(request, scope, customer, form=form, status=422)
    try:
        services.tag_apply(customer=customer, tag=form.cleaned_data["tag"], actor=request.user.staff,
                           source=TagSource.MANUAL)
    except errors.ValidationFailed:
        form.add_error("tag", _("This tag is not active."))
        return _section(request, scope, customer, form=form, status=422)
    except errors.Conflict as exc:  # the patient's personal information was erased
        form.add_error("tag", message_display(exc.message))
        return _section(request, scope, customer, form=form, status=409)
    return _section(request, scope, customer)


@staff_view
@require_POST
def customer_tag_remove(request, scope: Scope, customer_id: int):
    customer = customer_get(scope, customer_id)
    require_permission(scope, Perm.TAG_APPLY)
    tag = selectors.tag_get(scope, request.POST.get("tag") or "")
    row = next((r for r in selectors.customer_tags(scope, customer) if r.tag_id == tag.pk), None)
    if row is not None and row.source == TagSource.RULE and tag.kind == TagKind.RULE and tag.is_active:
        # The nightly sync would put it back (without a timeline entry): the rule decides, not a click.
        return _section(request, scope, customer, status=422, remove_error=_(
            "%(name)s is set by its rule every night; change the rule to take it off.") % {"name": tag.name})
    services.tag_remove(customer=customer, tag=tag, actor=request.user.staff)
    return _section(request, scope, customer)


# --- bulk tagging from the customer list -----------------------------------------------------------------


def _back_to_list(request) -> str:
    """Where the list was (with its filters): htmx sends the browser's URL; a plain form sends `next`."""
    return safe_next(request, request.headers.get("HX-Current-URL"), request.POST.get("next"),
                     default=reverse("customers:list"))


@staff_view
@require_http_methods(["GET", "POST"])
def bulk_tag(request, scope: Scope):
    """GET: the "tag selected customers" form the customer list loads under its table (the rows' checkboxes
    name it). POST: add or remove one tag on the ticked customers, all or nothing, then back to the list."""
    if request.method == "GET":
        tags = (selectors.tag_list(scope, active_only=True).exclude(kind=TagKind.RULE)
                .order_by("group__ordering", "group_id", "name") if scope.can(Perm.TAG_APPLY) else [])
        template = "tagging/_bulk_form.html" if request.htmx else "tagging/bulk_page.html"
        return render(request, template, {"bulk_tags": tags, "bulk_next": reverse("customers:list")})
    require_permission(scope, Perm.TAG_APPLY)
    back = _back_to_list(request)
    form = BulkTagForm(scope, request.POST)
    if not form.is_valid():
        _form_messages(request, form)
        return htmx_redirect(request, back)
    tag, ids = form.cleaned_data["tag"], form.cleaned_data["customer_ids"]
    try:
        if form.cleaned_data["action"] == "remove":
            n = services.tags_bulk_remove(scope=scope, customer_ids=ids, tag=tag, actor=request.user.staff)
            messages.success(request, ngettext("Tag %(tag)s removed from %(n)d customer.",
                                               "Tag %(tag)s removed from %(n)d customers.", n)
                             % {"tag": tag.name, "n": n})
        else:
            n = services.tags_bulk_apply(scope=scope, customer_ids=ids, tag=tag, actor=request.user.staff)
            messages.success(request, ngettext("Tag %(tag)s added to %(n)d customer.",
                                               "Tag %(tag)s added to %(n)d customers.", n)
                             % {"tag": tag.name, "n": n})
    except errors.ValidationFailed as exc:
        bad = next((e for e in exc.errors if e.field == "customer_ids"), None)
        if bad is not None and bad.value and bad.message.startswith(services.ERASED_NOT_TAGGED):
            messages.error(request, _("Nothing was changed: the personal information of these customers was erased, "
                                      "so they are not tagged: %(ids)s") % {"ids": bad.value.replace(",", ", ")})
        elif bad is not None and bad.value:
            messages.error(request, _("Nothing was changed: customers not found or outside your clinics: %(ids)s")
                           % {"ids": bad.value.replace(",", ", ")})
        else:
            messages.error(request, _("Nothing was changed: %(reason)s") % {"reason": exc.message})
    return htmx_redirect(request, back)
