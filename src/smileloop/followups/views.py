"""Staff pages: "my tasks today" (inbox), a task's page, the team board and the playbook editor.

Every view gets the staff member's Scope and reads tasks only through scoped selectors; a task outside the
scope is a 404. Mutating POSTs return the updated fragment (htmx) or redirect.
"""

import datetime as dt
import uuid

from django.contrib import messages
from django.http import HttpResponseBadRequest
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from smileloop.clinics.enums import Perm
from smileloop.clinics.models import Chain
from smileloop.clinics.selectors import clinic_list
from smileloop.clinics.web import client_ip, htmx_redirect, require_permission, safe_next, staff_view
from smileloop.core import errors
from smileloop.core.scoping import Scope
from smileloop.customers.services import phone_reveal
from smileloop.followups import selectors, services
from smileloop.followups.enums import SCRIPT_VARIABLES, Goal, Trigger
from smileloop.followups.forms import (
    BoardFilterForm,
    CallForm,
    OutcomeForm,
    PlaybookForm,
    ReassignForm,
    StepForm,
    conflict_message,
    errors_apply,
    not_yours_message,
)
from smileloop.followups.models import PlaybookStep


def _staff(scope: Scope):
    from smileloop.clinics.models import Staff

    return Staff.objects.filter(pk=scope.staff_id).first()


def _ip(request) -> str | None:
    return client_ip(request)


# --- inbox and tasks ----------------------------------------------------------------------------------------

@staff_view
@require_GET
def inbox(request, scope: Scope):
    require_permission(scope, Perm.TASK_WORK)
    tasks = selectors.inbox_list(scope)
    for task in tasks:
        task.may_work = services.task_may_work(scope, task)
    overdue = sum(1 for t in tasks if t.is_overdue)
    return render(request, "followups/inbox.html", {
        "tasks": tasks, "overdue": overdue, "due_today": len(tasks) - overdue,
        "done_today": selectors.inbox_done_today(scope), "outcome_form": OutcomeForm(),
        "can_reveal": scope.can(Perm.PHONE_VIEW), "can_board": scope.can(Perm.TASK_BOARD),
        "can_playbooks": scope.can(Perm.PLAYBOOK_MANAGE),
    })


def _work_fill(scope: Scope, task) -> None:
    """`task.may_work` (a colleague's task shows no call or outcome form) and `task.takes_over`: recording its outcome
    makes it the reader's (nobody active in its clinic holds it; services.task_unheld), which the row says."""
    task.may_work = services.task_may_work(scope, task)
    task.takes_over = (task.may_work and task.is_open and task.assignee_id != scope.staff_id
                       and services.task_unheld(task))


def _row(request, scope: Scope, task, *, form=None, phone: str = "", call_error: str = "", status: int = 200,
         page: bool = False):
    if not hasattr(task, "script_text"):
        selectors.scripts_fill(scope, [task])
    now = timezone.now()
    tz = selectors.chain_tz(scope.chain_id)
    day_start = dt.datetime.combine(timezone.localtime(now, tz).date(), dt.time.min, tzinfo=tz)
    task.is_overdue = selectors.task_overdue(task, now=now, day_start=day_start)
    _work_fill(scope, task)
    context = {"task": task, "outcome_form": form or OutcomeForm(), "phone": phone, "call_error": call_error,
               "can_reveal": scope.can(Perm.PHONE_VIEW), "can_board": scope.can(Perm.TASK_BOARD)}
    if page:
        context["reassign_form"] = (ReassignForm(selectors.board_reassign_candidates(scope),
                                                 initial={"assignee": task.assignee_id})
                                    if scope.can(Perm.TASK_BOARD) and task.is_open else None)
        return render(request, "followups/task_detail.html", context, status=status)
    return render(request, "followups/_task_row.html", context, status=status)


@staff_view
@require_GET
def task_detail(request, scope: Scope, task_id: int):
    require_permission(scope, Perm.TASK_WORK)
    task = selectors.task_get(scope, task_id)
    return _row(request, scope, task, page=True)


@staff_view
@require_POST
def task_complete(request, scope: Scope, task_id: int):
    require_permission(scope, Perm.TASK_WORK)
    task = selectors.task_get(scope, task_id)
    form = OutcomeForm(request.POST)
    refused = False
    if form.is_valid():
        try:
            services.followup_complete(task=task, outcome=form.cleaned_data["outcome"],
                                       note=form.cleaned_data["note"], actor=_staff(scope), scope=scope)
        except errors.ValidationFailed as exc:
            errors_apply(form, exc)
        except errors.Conflict as exc:
            form.add_error(None, conflict_message(exc, task))
        except errors.PermissionDenied as exc:  # a colleague's task (a stale page, a hand-made POST): nothing changed
            refused = True
            form.add_error(None, not_yours_message(exc, task))
    elif not task.is_open:
        # A closed task's row shows no outcome form, so a field's error (an outcome no page offers) showed nowhere: a
        # 422 without a word. The closed task is what is wrong with it.
        form.add_error(None, conflict_message(errors.Conflict("", code="task_closed"), task))
    if not request.htmx:
        if form.errors:
            return _row(request, scope, selectors.task_get(scope, task_id), form=form, status=403 if refused else 422,
                        page=True)
        messages.success(request, _("Outcome recorded."))
        return htmx_redirect(request, safe_next(request, request.POST.get("next"), default=reverse("followups:inbox")))
    task = selectors.task_get(scope, task_id)
    # A refusal too is a 422 here: htmx swaps only 2xx and 422 answers in (layouts/staff.html), and the row says why.
    return _row(request, scope, task, form=form, status=422 if form.errors else 200)


@staff_view
@require_POST
def task_call(request, scope: Scope, task_id: int):
    """Reveal the patient's number for this call (audited, through the customers' reveal service) and show
    a tel: link. The task is the reason unless the caller gives another."""
    require_permission(scope, Perm.TASK_WORK)
    task = selectors.task_get(scope, task_id)
    services.task_work_check(scope, task)  # a colleague's task is not a reason to reveal the number: 403
    form = CallForm(request.POST)
    call_error = ""
    if not task.is_open:  # no call to make: the number is not revealed in the task's name (the 360 page can)
        call_error = conflict_message(errors.Conflict("", code="task_closed"), task)
    elif not form.is_valid():  # a typed reason with a NUL (PostgreSQL cannot store it) or over 200 characters
        call_error = " ".join(form.errors["reason"])
    if call_error:
        if not request.htmx:
            return _row(request, scope, task, call_error=call_error, status=422, page=True)
        return render(request, "followups/_task_row.html#phone", {"task": task, "call_error": call_error},
                      status=422)
    # The audit log's reason, in the caller's language like a typed one (a director read "follow-up task #12 …")
    reason = (form.cleaned_data["reason"] or "").strip() or _("follow-up task #%(id)s (%(playbook)s)") % {
        "id": task.pk, "playbook": task.playbook.name}
    selectors.guardians_fill(scope, [task])
    callee = task.customer if task.customer.mobile or task.guardian is None else task.guardian
    if callee is not task.customer:
        reason = _("%(reason)s (for %(name)s, who has no phone)") % {"reason": reason, "name": task.customer.name}
    phone = phone_reveal(scope=scope, customer=callee, reason=reason[:200], ip_address=_ip(request))
    if not request.htmx:
        return _row(request, scope, task, phone=phone, page=True)
    return render(request, "followups/_task_row.html#phone", {"task": task, "phone": phone,
                                                                 "can_reveal": True})


@staff_view
@require_POST
def task_reassign(request, scope: Scope, task_id: int):
    require_permission(scope, Perm.TASK_BOARD)
    task = selectors.task_get(scope, task_id)
    form = ReassignForm(selectors.board_reassign_candidates(scope), request.POST)
    if form.is_valid():
        try:
            services.followup_reassign(scope=scope, task=task, assignee=form.cleaned_data["assignee"])
            messages.success(request, _("Task reassigned."))
            return htmx_redirect(request, reverse("followups:task", args=[task.pk]))
        except errors.ValidationFailed as exc:
            errors_apply(form, exc)
        except errors.Conflict as exc:
            form.add_error(None, conflict_message(exc, task))
    context_task = selectors.task_get(scope, task_id)
    selectors.scripts_fill(scope, [context_task])
    _work_fill(scope, context_task)
    return render(request, "followups/task_detail.html", {
        "task": context_task, "outcome_form": OutcomeForm(), "reassign_form": form,
        "can_reveal": scope.can(Perm.PHONE_VIEW), "can_board": True}, status=422)


# --- the team board ------------------------------------------------------------------------------------------

@staff_view
@require_GET
def board(request, scope: Scope):
    require_permission(scope, Perm.TASK_BOARD)
    clinics = list(clinic_list(scope))
    form = BoardFilterForm(clinics, request.GET or None)
    applied = form.applied()
    days, clinic_id = applied.get("days") or 7, applied.get("clinic")
    data = selectors.board(scope, days=days, clinic_id=clinic_id)
    chart = {
        "staff": [r.label or "—" for r in data.by_staff],
        "finished": [r.finished for r in data.by_staff],
        "open": [r.open - r.overdue for r in data.by_staff],
        "overdue": [r.overdue for r in data.by_staff],
        "labels": {"finished": _("Done or goal reached"), "open": _("Open"), "overdue": _("Overdue")},
    }
    template = "followups/board.html"
    if request.htmx:
        template += "#results"
    return render(request, template, {"form": form, "board": data, "chart": chart,
                                      "can_playbooks": scope.can(Perm.PLAYBOOK_MANAGE)})


# --- the playbook editor ------------------------------------------------------------------------------------

def _segments(scope: Scope):
    from smileloop.segments.selectors import segment_list

    if not scope.can(Perm.SEGMENT_VIEW):
        return []
    return list(segment_list(scope))


@staff_view
@require_GET
def playbooks(request, scope: Scope):
    require_permission(scope, Perm.PLAYBOOK_MANAGE)
    return render(request, "followups/playbook_list.html", {"playbooks": selectors.playbook_list(scope)})


@staff_view
@require_POST
def playbooks_install(request, scope: Scope):
    """The built-in playbooks now, for a new chain whose admin should not wait for the daily run to install them
    (idempotent by code: one the chain has already, edited or not, is left as it is)."""
    require_permission(scope, Perm.PLAYBOOK_MANAGE)
    result = services.playbooks_install_defaults(chain=Chain(pk=scope.chain_id))
    messages.success(request, ngettext("%(n)d built-in playbook installed.", "%(n)d built-in playbooks installed.",
                                       result["created"]) % {"n": result["created"]})
    return htmx_redirect(request, reverse("followups:playbooks"))


@staff_view
@require_http_methods(["GET", "POST"])
def playbook_new(request, scope: Scope):
    """A playbook of the chain's own: choose its trigger (the page then shows that trigger's parameters), name it,
    save; it opens in the editor, inactive, to get its steps."""
    require_permission(scope, Perm.PLAYBOOK_MANAGE)
    data = request.POST if request.method == "POST" else None
    trigger = (data or request.GET).get("trigger", "")
    triggers = [(t, Trigger(t).label) for t in services.CREATABLE_TRIGGERS]
    form, status = None, 200
    # The form's key makes a double submit one playbook (services.playbook_create); a post without one (a script)
    # gets a random code, as before keys.
    posted_key = data.get("key") if data is not None else None
    form_key = posted_key if posted_key and services.PLAYBOOK_KEY.fullmatch(posted_key) else uuid.uuid4().hex
    if trigger in services.CREATABLE_TRIGGERS:
        form = PlaybookForm(trigger, data, segments=_segments(scope), initial={"goal": Goal.NONE})
        if data is not None and form.is_valid():
            try:
                playbook = services.playbook_create(chain_id=scope.chain_id, trigger=trigger, data=form.to_data(),
                                                    key=posted_key or None)
            except errors.ValidationFailed as exc:
                errors_apply(form, exc)
            else:
                messages.success(request, _("Playbook created. Add its steps, then activate it."))
                return htmx_redirect(request, reverse("followups:playbook_edit", args=[playbook.pk]))
        status = 422 if data is not None else 200
    elif trigger or data is not None:  # an unknown trigger, or a post without one: said so, not a silent page
        status = 422
    return render(request, "followups/playbook_new.html", {
        "form": form, "trigger": trigger, "triggers": triggers, "form_key": form_key,
        "trigger_error": _("Choose one of the triggers listed.") if status == 422 and form is None else ""},
        status=status)


def _editor(request, scope: Scope, playbook, *, form=None, step_forms=None, new_step_form=None, status=200):
    steps = list(playbook.steps.filter(is_active=True).order_by("seq"))
    step_forms = step_forms or {}
    rows = [(s, step_forms.get(s.pk) or StepForm(initial={
        "delay_days": s.delay_days, "assignee_rule": s.assignee_rule, "channel": s.channel,
        "sla_hours": s.sla_hours, "lapse_days": s.lapse_days, "script": s.script}, prefix=f"s{s.pk}"))
        for s in steps]
    new_step_form = new_step_form or StepForm(prefix="new")
    offset = selectors.playbook_visit_offset(playbook)
    if offset is not None:  # each step says which day after the visit it calls on, as the description counts
        for s, sform in rows:
            sform.visit_day_show(offset=offset, delay=s.delay_days)
        new_step_form.visit_day_show(offset=offset, delay=None)
    return render(request, "followups/playbook_edit.html", {
        "playbook": playbook,
        "form": form or PlaybookForm(playbook.trigger, initial=PlaybookForm.initial_for(playbook),
                                     segments=_segments(scope)),
        "steps": rows, "new_step_form": new_step_form, "visit_offset": offset,
        "variables": ["{" + v + "}" for v in SCRIPT_VARIABLES],
    }, status=status)


@staff_view
@require_http_methods(["GET", "POST"])
def playbook_edit(request, scope: Scope, playbook_id: int):
    require_permission(scope, Perm.PLAYBOOK_MANAGE)
    playbook = selectors.playbook_get(scope, playbook_id)
    if request.method == "GET":
        return _editor(request, scope, playbook)
    form = PlaybookForm(playbook.trigger, request.POST, segments=_segments(scope))
    if form.is_valid():
        try:
            services.playbook_update(playbook=playbook, data=form.to_data())
            messages.success(request, _("Playbook saved."))
            return htmx_redirect(request, reverse("followups:playbook_edit", args=[playbook.pk]))
        except errors.ValidationFailed as exc:
            errors_apply(form, exc)
    return _editor(request, scope, playbook, form=form, status=422)


@staff_view
@require_POST
def playbook_toggle(request, scope: Scope, playbook_id: int):
    require_permission(scope, Perm.PLAYBOOK_MANAGE)
    playbook = selectors.playbook_get(scope, playbook_id)
    # The button sends the state it asks for, so a double click (or a stale page) cannot switch it back; a post
    # without one toggles. A state that is neither "0" nor "1" is refused: it is no request to toggle.
    wanted = request.POST.get("active")
    if wanted is not None and wanted not in ("0", "1"):
        return HttpResponseBadRequest(_("The playbook can only be switched on (1) or off (0)."))
    active = wanted == "1" if wanted in ("0", "1") else not playbook.is_active
    services.playbook_activate(playbook=playbook, active=active)
    messages.success(request, _("Playbook activated.") if playbook.is_active else _("Playbook deactivated."))
    return htmx_redirect(request, safe_next(request, request.POST.get("next"),
                                            default=reverse("followups:playbooks")))


def _step(playbook, step_id) -> PlaybookStep:
    step = playbook.steps.filter(pk=step_id, is_active=True).first()
    if step is None:
        raise errors.NotFound("Step not found")
    return step


@staff_view
@require_POST
def step_save(request, scope: Scope, playbook_id: int, step_id: int | None = None):
    require_permission(scope, Perm.PLAYBOOK_MANAGE)
    playbook = selectors.playbook_get(scope, playbook_id)
    step = _step(playbook, step_id) if step_id else None
    form = StepForm(request.POST, prefix=f"s{step.pk}" if step else "new")
    if form.is_valid():
        try:
            services.playbook_step_save(playbook=playbook, step=step, data=form.cleaned_data)
            messages.success(request, _("Step saved."))
            return htmx_redirect(request, reverse("followups:playbook_edit", args=[playbook.pk]))
        except errors.ValidationFailed as exc:
            errors_apply(form, exc)
    if step:
        return _editor(request, scope, playbook, step_forms={step.pk: form}, status=422)
    return _editor(request, scope, playbook, new_step_form=form, status=422)


@staff_view
@require_POST
def step_remove(request, scope: Scope, playbook_id: int, step_id: int):
    require_permission(scope, Perm.PLAYBOOK_MANAGE)
    playbook = selectors.playbook_get(scope, playbook_id)
    services.playbook_step_remove(step=_step(playbook, step_id))
    messages.success(request, _("Step removed."))
    return htmx_redirect(request, reverse("followups:playbook_edit", args=[playbook.pk]))
