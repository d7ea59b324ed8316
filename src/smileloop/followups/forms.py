"""Forms of the follow-up pages. They parse input; the services validate the business rules and their
per-field errors are put back on these forms (`errors_apply`)."""

import re

from django import forms
from django.utils.translation import gettext, gettext_noop, pgettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from smileloop.core.errors import Conflict, PermissionDenied, ValidationFailed
from smileloop.core.filters import FilterForm
from smileloop.core.messages import message_display
from smileloop.followups.enums import (
    RECALL_DEFAULT_CATEGORIES,
    TRIGGER_PARAM_DEFAULTS,
    AssigneeRule,
    ContactChannel,
    Goal,
    Outcome,
    Trigger,
)
from smileloop.visits.enums import Category

# Which trigger parameters each trigger shows in the editor (form field name = parameter name).
TRIGGER_PARAM_FIELDS = {
    Trigger.PROCEDURE: ("category", "latest_only"),
    Trigger.PLAN_UNFINISHED: ("days_without_appointment",),
    Trigger.CONSULTED_NOT_TREATED: ("days_after_visit", "aftercare_days", "skip_open_plan"),
    Trigger.RECALL: ("months", "categories"),
    Trigger.DORMANT: ("months_without_visit",),
    Trigger.BIRTHDAY_NEXT_MONTH: ("days_before", "day_of_month"),
    Trigger.SEGMENT: ("segment_id",),
}


# The services' fixed messages that these forms show (translated by message_display).
SERVICE_MESSAGES = [
    gettext_noop("is required"),
    gettext_noop("is required for a procedure trigger"),
    gettext_noop("is required for a segment trigger"),
    gettext_noop("is not a known trigger"),
    gettext_noop("must be an object"),
    gettext_noop("must be an active staff member of the task's clinic"),
    gettext_noop("use either days_before or day_of_month, not both"),
    gettext_noop("must not contain control characters"),
    gettext_noop("must be a whole number of days from 0 to 365 (0: a recent surgery does not stop the call)"),
    gettext_noop("cannot be negative: enter 0 to 365 days (0: a recent surgery does not stop the call)"),
    gettext_noop("must be at most 365 days"),
    gettext_noop("must be yes or no"),
]


def _list(value: str) -> str:
    """"{a}, {b}" in the reader's list style ("{a}、{b}" in Chinese)."""
    return pgettext("list separator", ", ").join(value.split(", "))


# The services' messages that carry values (matched in order; services/playbooks.py writes them).
SERVICE_PATTERNS = [
    (re.compile(r"^unknown variables: (?P<unknown>.+) \(allowed: (?P<allowed>.+)\)$"),
     gettext_noop("unknown variables: %(unknown)s (allowed: %(allowed)s)"),
     {"unknown": _list, "allowed": _list}),
]


def errors_apply(form: forms.Form, exc: ValidationFailed) -> None:
    """Service errors onto form fields ("trigger_params.months" → field "months"); others → non-field."""
    for error in exc.errors:
        name = error.field.split(".")[-1]
        form.add_error(name if name in form.fields else None,
                       message_display(error.message, patterns=SERVICE_PATTERNS))


def conflict_message(exc: Conflict, task) -> str:
    """A refusal to change a closed task (followup_complete, followup_reassign), in the reader's language."""
    if exc.code == "task_closed":
        return _("This task is %(status)s and can no longer be changed.") % {"status": task.get_status_display()}
    if exc.code == "task_completed":
        return _("This task was already completed with the outcome %(outcome)s.") % {
            "outcome": task.get_outcome_display()}
    return message_display(exc.message)


def not_yours_message(exc: PermissionDenied, task) -> str:
    """A refusal to work a colleague's task (services.task_work_check), in the reader's language."""
    if exc.code == "task_not_yours" and task.assignee_id:
        return _("This task is assigned to %(name)s: only they, a clinic director or a chain admin can record its "
                 "outcome. Ask a director to reassign it to you.") % {"name": task.assignee.name}
    return _("Your role may not work follow-up tasks.")


class OutcomeForm(forms.Form):
    outcome = forms.ChoiceField(label=_("Outcome"), choices=Outcome.choices)
    note = forms.CharField(label=_("Note"), required=False, max_length=2000,
                           widget=forms.Textarea(attrs={"rows": 2}))


class CallForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=200, required=False)


class ReassignForm(forms.Form):
    assignee = forms.ModelChoiceField(label=_("Assign to"), queryset=None, error_messages={
        "invalid_choice": _("Choose a staff member of the list: tasks go only to staff of the patient's clinics "
                            "that you may assign to.")})

    def __init__(self, staff_qs, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = staff_qs


class BoardFilterForm(FilterForm):
    days = forms.TypedChoiceField(label=_("Period"), coerce=int, required=False, initial=7,
                                  choices=[(1, _("Today")), (7, _("Last 7 days")), (30, _("Last 30 days"))])
    clinic = forms.TypedChoiceField(label=_("Clinic"), coerce=int, required=False, empty_value=None)

    def __init__(self, clinics, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["clinic"].choices = [("", _("All my clinics"))] + [(c.id, c.name) for c in clinics]


class PlaybookForm(forms.Form):
    name = forms.CharField(label=pgettext_lazy("object", "Name"), max_length=100)
    description = forms.CharField(label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    goal = forms.ChoiceField(label=_("Goal"), choices=Goal.choices)
    is_active = forms.BooleanField(label=_("Active"), required=False)
    # trigger parameters (only those of the playbook's trigger are shown and used)
    category = forms.ChoiceField(label=_("Procedure category"), choices=Category.choices, required=False)
    latest_only = forms.BooleanField(label=_("Only the latest procedure of the category (a new visit restarts)"),
                                     required=False)
    days_without_appointment = forms.CharField(label=_("Days without an appointment"), required=False)
    days_after_visit = forms.CharField(label=_("Days after the visit without treatment or booking"), required=False)
    aftercare_days = forms.CharField(label=_("Days after a surgery that a visit is a post-operative check (not called)"),
                                     required=False)
    skip_open_plan = forms.ChoiceField(label=_("Patients with an open treatment plan"), required=False,
                                       choices=[("", "—"), ("yes", _("Skip them (the unfinished-treatment playbook "
                                                                     "calls them)")),
                                                ("no", _("Call them too"))])
    months = forms.CharField(label=_("Months after the last one"), required=False)
    categories = forms.MultipleChoiceField(label=_("Categories"), choices=Category.choices, required=False,
                                           widget=forms.CheckboxSelectMultiple)
    months_without_visit = forms.CharField(label=_("Months without a visit"), required=False)
    days_before = forms.CharField(label=_("Days before the birthday"), required=False)
    day_of_month = forms.CharField(label=_("Or: day of the month the list of next month is made"), required=False)
    segment_id = forms.TypedChoiceField(label=_("Segment"), coerce=int, required=False, empty_value=None)

    def __init__(self, trigger: str, *args, segments=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.trigger = trigger
        self.fields["segment_id"].choices = [("", "—")] + [(s.id, s.name) for s in segments]
        self._defaults_show()

    def _defaults_show(self) -> None:
        """A blank parameter means its default (`TRIGGER_PARAM_DEFAULTS`): each such field says which, as its
        placeholder and its help text ("留空 = 3 天"), so a manager who clears it knows what the run will use."""
        days, months = ("days_without_appointment", "days_after_visit", "days_before"), ("months",
                                                                                         "months_without_visit")
        for name in (*days, *months):
            n = TRIGGER_PARAM_DEFAULTS[name]
            field = self.fields[name]
            field.widget.attrs["placeholder"] = str(n)
            field.help_text = (gettext("Blank = %(n)d days.") if name in days
                               else gettext("Blank = %(n)d months.")) % {"n": n}
        aftercare = self.fields["aftercare_days"]
        aftercare.widget.attrs["placeholder"] = str(TRIGGER_PARAM_DEFAULTS["aftercare_days"])
        aftercare.help_text = gettext("Blank = %(n)d days; 0 = a recent surgery does not stop the call.") % {
            "n": TRIGGER_PARAM_DEFAULTS["aftercare_days"]}
        self.fields["skip_open_plan"].help_text = (gettext("Blank = skip them.") if TRIGGER_PARAM_DEFAULTS["skip_open_plan"]
                                                   else gettext("Blank = call them too."))
        self.fields["days_before"].help_text = gettext(
            "Blank = %(n)d days, unless a day of the month is given.") % {"n": TRIGGER_PARAM_DEFAULTS["days_before"]}
        self.fields["day_of_month"].help_text = gettext("Blank = each member's task is made the days above before "
                                                        "their birthday.")
        labels = dict(Category.choices)
        self.fields["categories"].help_text = gettext("None ticked = %(categories)s.") % {
            "categories": pgettext("list separator", ", ").join(str(labels[c]) for c in RECALL_DEFAULT_CATEGORIES)}

    @property
    def param_fields(self):
        return [self[name] for name in TRIGGER_PARAM_FIELDS.get(self.trigger, ())]

    @staticmethod
    def initial_for(playbook) -> dict:
        data = {"name": playbook.name, "description": playbook.description, "goal": playbook.goal,
                "is_active": playbook.is_active}
        data.update(playbook.trigger_params or {})
        if isinstance(data.get("skip_open_plan"), bool):  # stored as a boolean, shown as the select's choice
            data["skip_open_plan"] = "yes" if data["skip_open_plan"] else "no"
        return data

    def to_data(self) -> dict:
        cd = self.cleaned_data
        params = {}
        for name in TRIGGER_PARAM_FIELDS.get(self.trigger, ()):
            value = cd.get(name)
            if name == "latest_only":
                if value:
                    params[name] = True
            elif value not in (None, "", []):
                params[name] = value
        return {"name": cd["name"], "description": cd.get("description", ""), "goal": cd["goal"],
                "is_active": cd.get("is_active", False), "trigger_params": params}


class StepForm(forms.Form):
    delay_days = forms.CharField(label=_("Days after the anchor"), initial=0)
    assignee_rule = forms.ChoiceField(label=_("Assignee"), choices=AssigneeRule.choices)
    channel = forms.ChoiceField(label=_("Channel"), choices=ContactChannel.choices)
    sla_hours = forms.CharField(label=_("SLA (hours)"), initial=24)
    lapse_days = forms.CharField(label=_("Lapses after (days past due)"), required=False,
                                 help_text=_("Blank: open until worked."))
    script = forms.CharField(label=_("Script"), widget=forms.Textarea(attrs={"rows": 3}),
                             help_text=_("Variables: {name}, {doctor}, {procedure}, {when}, {days_since}, {clinic}, {date}, "
                                         "{survey_link}. When a child without a phone is called through a parent, "
                                         "a greeting's {name} addresses the parent."))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Integers are checked by the service (one place for ranges and messages).
        for name in ("delay_days", "sla_hours", "lapse_days"):
            self.fields[name].widget = forms.NumberInput(attrs={"min": 0 if name == "delay_days" else 1})

    def visit_day_show(self, *, offset: int, delay: int | None) -> None:
        """For a playbook counted from a visit (`selectors.playbook_visit_offset`): the step's days are after the
        trigger day, `offset` days after the visit; say which day after the visit the step calls on."""
        field = self.fields["delay_days"]
        if delay is None:
            field.help_text = gettext("0 = day %(day)d after the visit (the trigger's days).") % {"day": offset}
        else:
            field.help_text = gettext("= day %(day)d after the visit (the trigger's %(offset)d days + these).") % {
                "day": offset + delay, "offset": offset}
