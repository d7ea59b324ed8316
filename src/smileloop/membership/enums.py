from django.db import models
from django.utils.translation import gettext_lazy as _


class PlanKind(models.TextChoices):
    PAID = "paid", _("Paid (annual fee)")
    STORED_VALUE = "stored_value", _("Stored value")
    SPEND_BASED = "spend_based", _("Spend-based")


class MembershipStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    EXPIRED = "expired", _("Expired")
    CANCELLED = "cancelled", _("Cancelled")


class EventKind(models.TextChoices):
    ENROLLED = "enrolled", _("Enrolled")
    UPGRADED = "upgraded", _("Upgraded")
    RENEWED = "renewed", _("Renewed")
    EXPIRED = "expired", _("Expired")
    DOWNGRADED = "downgraded", _("Downgraded")
    CANCELLED = "cancelled", _("Cancelled")


class BenefitTrigger(models.TextChoices):
    """What reveals a hidden benefit. Visible benefits have no trigger."""

    NONE = "", _("— visible, no trigger —")
    PLAN_HALF_DONE = "plan_half_done", _("Treatment plan half done")
    PLAN_FINISHED = "plan_finished", _("Treatment plan finished")
    BIRTHDAY_MONTH = "birthday_month", _("Birthday month")
    NTH_VISIT = "nth_visit", _("Nth visit")
    STAFF_DECISION = "staff_decision", _("Staff decision")


class ConsentBy(models.TextChoices):
    MEMBER = "member", _("The adult family member")
    GUARDIAN = "guardian", _("The holder, as guardian of a minor")


class WalletShareMode(models.TextChoices):
    STANDING = "standing", _("Standing consent")
    PER_USE = "per_use", _("Consent for each use")


class DiscountSource(models.TextChoices):
    OWN = "own", _("Own membership")
    FAMILY = "family", _("Family card")
    FRIEND = "friend", _("Friend of a member")


class ReminderKind(models.TextChoices):
    RENEWAL = "renewal", _("Renewal reminder")
