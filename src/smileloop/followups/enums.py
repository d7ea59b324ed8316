from django.db import models
from django.utils.translation import gettext_lazy as _


class Trigger(models.TextChoices):
    """What starts a playbook. The anchor of a task is the event (or the day a condition began to hold)."""

    LEAD_CREATED = "lead_created", _("Lead never came")
    PLAN_UNFINISHED = "plan_unfinished", _("Unfinished treatment")
    PROCEDURE = "procedure", _("After a procedure")
    VISIT_COMPLETED = "visit_completed", _("After a completed visit")
    RECALL = "recall", _("Recall (cleaning / exam due)")
    DORMANT = "dormant", _("Dormant patient")
    NO_SHOW = "no_show", _("No-show")
    BIRTHDAY_NEXT_MONTH = "birthday_next_month", _("Member birthday next month")
    GIFTCARD_REMINDER = "giftcard_reminder", _("Gift-card reminder")
    COMPLAINT = "complaint", _("Complaint")
    SEGMENT = "segment", _("Customers in a segment")
    CONSULTED_NOT_TREATED = "consulted_not_treated", _("Consulted, not treated")


class Goal(models.TextChoices):
    """What closes a playbook's open tasks by itself (checked by the daily run)."""

    APPOINTMENT_BOOKED = "appointment_booked", _("An appointment is booked")
    ARRIVAL = "arrival", _("The patient arrives")
    REBOOKED = "rebooked", _("The patient rebooks")
    NONE = "none", _("None (closed by hand)")


class AssigneeRule(models.TextChoices):
    """Who works a step. Each rule falls back along a fixed chain (see services.assign)."""

    CONSULTANT = "consultant", _("Owning consultant")
    TREATING_DOCTOR = "treating_doctor", _("Treating doctor")
    DOCTOR_OR_ASSISTANT = "doctor_or_assistant", _("Doctor or assistant")
    FRONT_DESK = "front_desk", _("Front desk of the home clinic")
    CLINIC_DIRECTOR = "clinic_director", _("Clinic director")


class ContactChannel(models.TextChoices):
    CALL = "call", _("Phone call")
    WECHAT = "wechat", _("WeChat")
    WECOM = "wecom", _("WeCom")
    SMS = "sms", _("SMS")
    VISIT = "visit", _("Home or clinic visit")


class TaskStatus(models.TextChoices):
    OPEN = "open", _("Open")
    DONE = "done", _("Done")
    CLOSED = "closed", _("Closed (goal reached)")
    CANCELLED = "cancelled", _("Cancelled")


class Outcome(models.TextChoices):
    REACHED = "reached", _("Reached")
    NO_ANSWER = "no_answer", _("No answer")
    WRONG_NUMBER = "wrong_number", _("Wrong number")
    BOOKED = "booked", _("Booked")
    DECLINED = "declined", _("Declined")
    COMPLAINT = "complaint", _("Complaint")


# Variables a script template may use; anything else in braces is an editor error.
SCRIPT_VARIABLES = ("name", "doctor", "procedure", "when", "days_since", "clinic", "date", "survey_link")

# What a trigger parameter left out (or left blank in the editor) means: the sources read these, and the editor shows
# them beside a blank field ("留空 = 3 天"), so a blank never quietly means a number the manager cannot see.
# `aftercare_days` and `skip_open_plan` are the consulted-not-treated trigger's: a visit that many days after a surgical
# procedure (0: none) is a post-operative check, and a patient with an open treatment plan is in treatment — the
# post-operative and unfinished-treatment playbooks call them, so by default this one does not.
TRIGGER_PARAM_DEFAULTS: dict[str, int | bool] = {"days_without_appointment": 14, "days_after_visit": 3, "months": 6,
                                                 "months_without_visit": 12, "days_before": 30, "aftercare_days": 90,
                                                 "skip_open_plan": True}
MAX_AFTERCARE_DAYS = 365
RECALL_DEFAULT_CATEGORIES: tuple[str, ...] = ("cleaning", "exam")
