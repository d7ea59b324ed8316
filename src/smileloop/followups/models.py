"""Follow-up playbooks (回访): triggers, steps, tasks with assignee, due time, SLA and outcome.

Invariants enforced by the database: a playbook code is unique per chain; a live step's seq is unique in its
playbook; a task exists at most once per (customer, playbook, step, anchor_key) — "never twice for the same
patient, playbook and step" for one triggering event — which is what makes the daily run idempotent.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from smileloop.clinics.models import Chain, Clinic, Staff
from smileloop.core.models import TimeStampedModel
from smileloop.customers.models import Customer
from smileloop.followups.enums import (
    TRIGGER_PARAM_DEFAULTS,
    AssigneeRule,
    ContactChannel,
    Goal,
    Outcome,
    TaskStatus,
    Trigger,
)


class Playbook(TimeStampedModel):
    """A trigger, its parameters, ordered steps and a goal that closes open tasks by itself."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    code = models.SlugField(_("code"), max_length=40)
    name = models.CharField(_("name"), max_length=100)
    trigger = models.CharField(_("trigger"), max_length=32, choices=Trigger.choices)
    trigger_params = models.JSONField(
        _("trigger parameters"), default=dict, blank=True,
        help_text=_('e.g. {"category": "implant"}, {"days_without_appointment": 14}, '
                    '{"months": 6, "categories": ["cleaning", "exam"]}, {"segment_id": 3}'))
    goal = models.CharField(_("goal"), max_length=32, choices=Goal.choices, default=Goal.NONE)
    is_active = models.BooleanField(_("active"), default=True)
    is_builtin = models.BooleanField(_("built in"), default=False)
    description = models.TextField(_("description"), blank=True)

    class Meta:
        verbose_name = _("playbook")
        verbose_name_plural = _("playbooks")
        ordering = ["chain", "id"]
        constraints = [models.UniqueConstraint(fields=["chain", "code"], name="playbook_unique_code")]

    def __str__(self):
        return self.name

    def param(self, name: str) -> int:
        """A number parameter of the trigger: its value, or its default (`TRIGGER_PARAM_DEFAULTS`) when left out or
        blank, which the editor shows beside the blank field. A 0 is a value (`aftercare_days`: 0 = none), not a
        blank."""
        value = (self.trigger_params or {}).get(name)
        return int(TRIGGER_PARAM_DEFAULTS[name] if value is None or value == "" else value)

    def flag(self, name: str) -> bool:
        """A yes/no parameter of the trigger: its value, or its default when left out or blank."""
        value = (self.trigger_params or {}).get(name)
        return bool(TRIGGER_PARAM_DEFAULTS[name] if value is None or value == "" else value)


class PlaybookStep(models.Model):
    """One contact of a playbook, `delay_days` after the trigger's anchor day (0 = the anchor day itself).

    A step that already has tasks is never deleted (tasks keep their history); removing it in the editor
    retires it (`is_active=False`) instead.
    """

    playbook = models.ForeignKey(Playbook, on_delete=models.CASCADE, related_name="steps",
                                 verbose_name=_("playbook"))
    seq = models.PositiveSmallIntegerField(_("order"))
    delay_days = models.PositiveSmallIntegerField(_("days after the anchor"), default=0)
    assignee_rule = models.CharField(_("assignee"), max_length=24, choices=AssigneeRule.choices,
                                     default=AssigneeRule.FRONT_DESK)
    channel = models.CharField(_("channel"), max_length=12, choices=ContactChannel.choices,
                               default=ContactChannel.CALL)
    script = models.TextField(
        _("script"), blank=True,
        help_text=_("Variables: {name}, {doctor}, {procedure}, {when}, {days_since}, {clinic}, {date}, {survey_link}"))
    sla_hours = models.PositiveSmallIntegerField(_("SLA (hours)"), default=24)
    # A contact that is pointless late (a satisfaction call a month after the visit, "how was yesterday's
    # surgery" a week on) lapses: the daily run cancels its open tasks this many days after they were due.
    lapse_days = models.PositiveSmallIntegerField(
        _("lapses after (days past due)"), null=True, blank=True,
        help_text=_("Open tasks of this step are cancelled this many days after they were due; blank: they stay "
                    "open until worked."))
    is_active = models.BooleanField(default=True, verbose_name=_("active"))

    class Meta:
        verbose_name = _("playbook step")
        verbose_name_plural = _("playbook steps")
        ordering = ["playbook", "seq", "id"]
        constraints = [
            models.UniqueConstraint(fields=["playbook", "seq"], condition=Q(is_active=True),
                                    name="playbook_step_unique_seq"),
            models.CheckConstraint(condition=Q(sla_hours__gte=1), name="playbook_step_sla_positive"),
        ]

    def __str__(self):
        return f"{self.playbook_id}#{self.seq} +{self.delay_days}d"


# The reasons the services write when they close or cancel open tasks (stored in English, shown translated).
STEP_REMOVED = gettext_noop("step removed")
MERGED_DUPLICATE = gettext_noop("merged duplicate")
CUSTOMER_ERASED = gettext_noop("patient's personal information erased")
LAPSED = gettext_noop("lapsed: not worked in time")
CLOSED_REASONS = (STEP_REMOVED, MERGED_DUPLICATE, LAPSED, CUSTOMER_ERASED)


class FollowupTask(models.Model):
    """One follow-up to do: who (assignee), whom (customer), why (playbook, step, anchor), when (due, SLA).

    `anchor_key` names the triggering event ("procedure:123", "lead:45", "appt:77", "plan:9@2026-11-20");
    `context` holds the script values known when the task was made (doctor, procedure, …); the rest (name,
    clinic, date, days_since) are read live when the script is rendered.
    """

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", db_index=False,
                              verbose_name=_("chain"))
    clinic = models.ForeignKey(Clinic, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                               db_index=False, verbose_name=_("clinic"))
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="followup_tasks", db_index=False,
                                 verbose_name=_("customer"))
    playbook = models.ForeignKey(Playbook, on_delete=models.PROTECT, related_name="tasks", db_index=False,
                                 verbose_name=_("playbook"))
    step = models.ForeignKey(PlaybookStep, on_delete=models.PROTECT, related_name="tasks",
                             verbose_name=_("playbook step"))
    anchor_key = models.CharField(max_length=64, verbose_name=_("trigger event"))
    anchor_at = models.DateTimeField(verbose_name=_("trigger time"))
    # The treating doctor of the triggering event (procedure, appointment, plan): the {doctor} of the script
    # and the first choice of the doctor assignee rules, also when the task is reassigned.
    doctor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                               db_index=False, verbose_name=_("doctor"))
    assignee = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                 db_index=False, verbose_name=_("assignee"))
    due_at = models.DateTimeField(verbose_name=_("due"))
    sla_due_at = models.DateTimeField(verbose_name=_("SLA due"))
    status = models.CharField(max_length=12, choices=TaskStatus.choices, default=TaskStatus.OPEN,
                              verbose_name=_("status"))
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True, default="",
                               verbose_name=_("outcome"))
    # Why the task was opened (a complaint's words), kept when it is completed; `note` is the outcome's note.
    brief = models.TextField(blank=True, default="", db_default="",  # db_default: generate.py INSERTs without it
                             verbose_name=_("brief"))
    note = models.TextField(blank=True, default="", verbose_name=_("outcome note"))
    context = models.JSONField(default=dict, blank=True, verbose_name=_("script values"))
    completed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("completed"))
    completed_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                     db_index=False, verbose_name=_("completed by"))
    closed_reason = models.CharField(max_length=255, blank=True, default="", verbose_name=_("closing reason"))
    # Plain defaults rather than auto_now: the daily run inserts rows with raw INSERT … SELECT.
    created_at = models.DateTimeField(default=timezone.now, db_index=True, verbose_name=_("created"))
    updated_at = models.DateTimeField(default=timezone.now, verbose_name=_("updated"))

    class Meta:
        verbose_name = _("follow-up task")
        verbose_name_plural = _("follow-up tasks")
        ordering = ["due_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "playbook", "step", "anchor_key"], name="followup_task_once"),
        ]
        indexes = [
            models.Index(fields=["assignee", "status", "due_at"], name="followup_task_inbox"),
            models.Index(fields=["clinic", "status", "due_at"], name="followup_task_board"),
            models.Index(fields=["playbook", "status"], name="followup_task_goal"),
        ]

    def __str__(self):
        return f"task {self.pk} {self.playbook_id}/{self.anchor_key} → {self.assignee_id}"

    def closed_reason_display(self) -> str:
        """Why the system closed the task, in the reader's language ("goal:rebooked" → the goal's label)."""
        reason = self.closed_reason
        if reason.startswith("goal:"):
            code = reason.removeprefix("goal:")
            label = dict(Goal.choices).get(code, code)
            return gettext("Goal reached: %(goal)s") % {"goal": label}
        return gettext(reason) if reason in CLOSED_REASONS else reason

    @property
    def is_open(self) -> bool:
        return self.status == TaskStatus.OPEN
