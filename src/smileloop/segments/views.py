"""Staff pages: saved segments (with lazily loaded counts) and the segment builder.

The builder is a plain form: staff pick a field and htmx redraws that row with the right inputs; the
server serialises the rows into a rule tree and validates it with the same validator as the API, so
errors come back next to the condition they concern. Preview and "show SQL" redraw the builder.
"""

import json

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from smileloop.clinics.enums import Perm
from smileloop.clinics.web import htmx_redirect, require_permission, staff_view
from smileloop.core import errors
from smileloop.core.bounds import pk_from_text
from smileloop.core.errors import FieldError
from smileloop.core.scoping import Scope
from smileloop.segments import selectors, services
from smileloop.segments.builder import (
    MODES,
    Builder,
    Condition,
    Group,
    builder_from_rule,
    builder_parse,
    condition_from_data,
    new_key,
)
from smileloop.segments.forms import BuilderChoices, SegmentForm, builder_prepare
from smileloop.segments.rules.validation import clinic_codes_to_ids, validate

BUILDER = "segments/builder.html"


@staff_view
@require_GET
def segment_list(request, scope: Scope):
    require_permission(scope, Perm.SEGMENT_VIEW)
    return render(request, "segments/segment_list.html", {
        "segments": selectors.segment_list(scope), "can_manage": scope.can(Perm.SEGMENT_MANAGE)})


@staff_view
@require_GET
def segment_count(request, scope: Scope, segment_id: int):
    """One row's count, loaded by htmx when the row scrolls into view (one COUNT query per segment)."""
    require_permission(scope, Perm.SEGMENT_VIEW)
    segment = selectors.segment_get(scope, segment_id)
    try:
        count = selectors.segment_customers(scope, segment).count()
    except errors.ValidationFailed:
        return HttpResponse(_("invalid rule"), content_type="text/plain; charset=utf-8")
    return render(request, "segments/segment_list.html#count", {"count": count})


def _context(request, scope: Scope, *, builder: Builder, form: SegmentForm, segment=None, **extra) -> dict:
    choices = BuilderChoices(scope)
    builder_prepare(builder, choices)
    if "rule_tag" not in extra:  # every re-render of the builder keeps the rule tag it was opened for
        extra["rule_tag"] = _rule_tag(scope, request.POST.get("tag-id") or request.GET.get("tag"))
    rule_tag = extra["rule_tag"]
    title = (segment.name if segment else _("Rule of the tag “%(name)s”") % {"name": rule_tag.name} if rule_tag
             else _("New segment"))
    return {
        "builder": builder, "choices": choices, "form": form, "segment": segment, "modes": MODES,
        "save_url": reverse("segments:edit", args=[segment.id]) if segment else reverse("segments:create"),
        "title": title,
        "can_manage": scope.can(Perm.SEGMENT_MANAGE),
        # A saved segment this reader may not change (the chain's, for clinic staff) offers "save as new" only.
        "can_change": scope.can(Perm.SEGMENT_MANAGE) and (segment is None
                                                          or services.segment_can_change(scope, segment)),
        "can_tag": scope.can(Perm.TAG_MANAGE) and scope.can(Perm.SEGMENT_MANAGE),
        "tag_groups": _tag_groups(scope) if scope.can(Perm.TAG_MANAGE) else [],
        **extra,
    }


def _tag_groups(scope: Scope):
    from smileloop.tagging.selectors import tag_group_list

    return tag_group_list(scope)


def _parsed(request, scope: Scope) -> tuple[dict, Builder]:
    """The tree the page describes and its rows, with the validator's errors attached to the rows."""
    tree, builder = builder_parse(request.POST)
    builder.attach(validate(tree, chain_id=scope.chain_id))
    return tree, builder


@staff_view
@require_http_methods(["GET", "POST"])
def segment_create(request, scope: Scope):
    require_permission(scope, Perm.SEGMENT_VIEW)
    if request.method == "GET":
        rule_tag = _rule_tag(scope, request.GET.get("tag"))
        rule = rule_tag.rule if rule_tag is not None else _rule_param(request)
        if rule_tag is None and rule is not None and not validate(rule, chain_id=scope.chain_id):
            # the page's selects offer clinics by id: a code ("SH02") selected none, and the browser sent the first
            rule = clinic_codes_to_ids(rule, chain_id=scope.chain_id)
        builder = builder_from_rule(rule)
        if rule_tag is not None:
            builder.attach(validate(rule, chain_id=scope.chain_id))
        return render(request, BUILDER, _context(request, scope, builder=builder, form=SegmentForm(scope=scope),
                                                 rule_tag=rule_tag))
    require_permission(scope, Perm.SEGMENT_MANAGE)
    return _save(request, scope, segment=None)


@staff_view
@require_http_methods(["GET", "POST"])
def segment_edit(request, scope: Scope, segment_id: int):
    require_permission(scope, Perm.SEGMENT_VIEW)
    segment = selectors.segment_get(scope, segment_id)
    if request.method == "GET":
        builder = builder_from_rule(segment.rule)
        builder.attach(validate(segment.rule, chain_id=scope.chain_id))  # a tag or clinic may have gone since
        form = SegmentForm(scope=scope, initial={"name": segment.name, "description": segment.description,
                                                 "clinic": str(segment.clinic_id or "")})
        return render(request, BUILDER, _context(request, scope, builder=builder, form=form, segment=segment,
                                                 rule_json=json.dumps(segment.rule, ensure_ascii=False, indent=2)))
    require_permission(scope, Perm.SEGMENT_MANAGE)
    return _save(request, scope, segment=segment)


def _rule_tag(scope: Scope, value):
    """The rule tag named by `?tag=` / `tag-id` (the builder opens with its rule; saving it back needs the tag and
    segment management permissions, as creating one does), or None when there is no value or it is not a rule
    tag; a tag of another chain is a 404."""
    if not value:
        return None
    from smileloop.tagging.enums import TagKind
    from smileloop.tagging.selectors import tag_get

    pk = pk_from_text(value)  # the rule builder names a tag by its id
    if pk is None:
        raise errors.NotFound("No such tag", field="tag")
    tag = tag_get(scope, pk)
    return tag if tag.kind == TagKind.RULE else None


def _tag_errors(exc: errors.ValidationFailed) -> list[str]:
    """The tag service's refusals in the reader's language, each after the builder's label for its field (a
    rule error after its path in the tree, as under a condition)."""
    from django.utils.translation import pgettext

    from smileloop.tagging.forms import tag_error_text

    labels = {"group": _("Tag group"), "code": pgettext("identifier", "Code"), "name": pgettext("object", "Name")}
    shown = []
    for error in exc.errors:
        text = tag_error_text(error.message)
        if error.field.startswith("rule."):
            shown.append(f"{error.field.removeprefix('rule.')}: {text}")
        else:
            shown.append(f"{labels[error.field]}: {text}" if error.field in labels else text)
    return shown


def _rule_param(request) -> dict | None:
    try:
        rule = json.loads(request.GET.get("rule", "") or "null")
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        return None
    return rule if isinstance(rule, dict) else None


def _save(request, scope: Scope, *, segment):
    form = SegmentForm(request.POST, scope=scope)
    tree, builder = _parsed(request, scope)
    if form.is_valid() and not builder.has_errors:
        try:
            if segment is None:
                segment = services.segment_create(chain=scope.chain_id, name=form.cleaned_data["name"],
                                                  description=form.cleaned_data["description"], rule=tree,
                                                  actor=request.user.staff, scope=scope,
                                                  clinic=form.cleaned_data["clinic"])
            else:
                segment = services.segment_update(segment=segment, name=form.cleaned_data["name"],
                                                  description=form.cleaned_data["description"], rule=tree,
                                                  actor=request.user.staff, scope=scope,
                                                  clinic=form.cleaned_data["clinic"] if form.show_clinic
                                                  else services.KEEP)
        except errors.ValidationFailed as exc:
            form.add_domain_error(exc)
            builder.attach([FieldError(e.field.removeprefix("rule."), e.message, e.value)
                            for e in exc.errors if e.field.startswith("rule")])
        else:
            messages.success(request, _("Segment saved."))
            return htmx_redirect(request, reverse("segments:edit", args=[segment.id]))
    return render(request, BUILDER, _context(request, scope, builder=builder, form=form, segment=segment), status=422)


@staff_view
@require_POST
def segment_delete(request, scope: Scope, segment_id: int):
    require_permission(scope, Perm.SEGMENT_MANAGE)
    segment = selectors.segment_get(scope, segment_id)
    try:
        services.segment_delete(segment=segment, actor=request.user.staff, scope=scope)
    except services.SegmentInUse as exc:
        kinds = {"playbook": _("the follow-up playbook")}
        users = pgettext("list separator", ", ").join(f"{kinds.get(kind, kind)}“{name}”" for kind, name in exc.users)
        messages.error(request, _("Segment “%(name)s” was not deleted: %(users)s uses it. Change that first, or "
                                  "deactivate it.") % {"name": segment.name, "users": users})
        return htmx_redirect(request, reverse("segments:edit", args=[segment.pk]))
    messages.success(request, _("Segment “%(name)s” deleted.") % {"name": segment.name})
    return htmx_redirect(request, reverse("segments:list"))


# --- builder fragments ---------------------------------------------------------------------------------


@staff_view
@require_GET
def builder_condition(request, scope: Scope):
    """A condition row: a new one (no key), or an existing one redrawn after its field or op changed."""
    require_permission(scope, Perm.SEGMENT_VIEW)
    key = request.GET.get("key", "")
    if key.isalnum() and len(key) <= 16:
        cond = condition_from_data(request.GET, key)
    else:
        cond = Condition(key=new_key(), group=request.GET.get("group", "")[:16])
    choices = BuilderChoices(scope)
    cond.options = choices.for_condition(cond)
    return render(request, f"{BUILDER}#condition", {"cond": cond, "choices": choices})


@staff_view
@require_GET
def builder_group(request, scope: Scope):
    require_permission(scope, Perm.SEGMENT_VIEW)
    group = Group(key=new_key())
    group.conditions.append(Condition(key=new_key(), group=group.key))
    return render(request, f"{BUILDER}#group", {"group": group, "choices": BuilderChoices(scope), "modes": MODES})


@staff_view
@require_GET
def builder_blank(request, scope: Scope):
    """Nothing: what a removed row or group is replaced with."""
    return HttpResponse("")


@staff_view
@require_POST
def builder_preview(request, scope: Scope):
    require_permission(scope, Perm.SEGMENT_VIEW)
    tree, builder = _parsed(request, scope)
    preview = None
    if not builder.has_errors:
        preview = selectors.segment_preview(scope, tree, limit=20)
    context = _context(request, scope, builder=builder, form=SegmentForm(request.POST, scope=scope), preview=preview)
    return render(request, f"{BUILDER}#builder", context, status=422 if builder.has_errors else 200)


@staff_view
@require_POST
def builder_sql(request, scope: Scope):
    require_permission(scope, Perm.SEGMENT_MANAGE)
    tree, builder = _parsed(request, scope)
    sql = None if builder.has_errors else selectors.segment_sql(scope, tree, today=timezone.localdate())
    context = _context(request, scope, builder=builder, form=SegmentForm(request.POST, scope=scope), sql=sql)
    return render(request, f"{BUILDER}#builder", context, status=422 if builder.has_errors else 200)


@staff_view
@require_POST
def builder_save_tag(request, scope: Scope):
    """Save the tree as a rule tag (recomputed nightly by rule_tags_job)."""
    require_permission(scope, Perm.SEGMENT_MANAGE)
    require_permission(scope, Perm.TAG_MANAGE)
    from smileloop.tagging.enums import TagKind
    from smileloop.tagging.services import tag_create, tag_update

    tree, builder = _parsed(request, scope)
    rule_tag = _rule_tag(scope, request.POST.get("tag-id"))
    tag_errors: list[str] = []
    if request.POST.get("tag-id") and rule_tag is None:
        tag_errors = [_("Only a rule tag's rule can be set from the builder.")]
    elif not builder.has_errors:
        try:
            if rule_tag is not None:
                tag = tag_update(tag=rule_tag, data={"rule": tree})
            else:
                tag = tag_create(chain=scope.chain_id, data={
                    "group": request.POST.get("tag-group", ""), "code": request.POST.get("tag-code", ""),
                    "name": request.POST.get("tag-name", ""), "kind": TagKind.RULE, "rule": tree})
        except errors.ValidationFailed as exc:
            tag_errors = _tag_errors(exc)
        else:
            message = (_("Rule of tag “%(name)s” saved; it is recomputed every night.") if rule_tag is not None
                       else _("Rule tag “%(name)s” created; it is recomputed every night."))
            messages.success(request, message % {"name": tag.name})
            try:
                return htmx_redirect(request, reverse("tagging:list"))
            except NoReverseMatch:
                return htmx_redirect(request, reverse("segments:list"))
    context = _context(request, scope, builder=builder, form=SegmentForm(request.POST, scope=scope), tag_errors=tag_errors,
                       rule_tag=rule_tag)
    return render(request, f"{BUILDER}#builder", context, status=422)
