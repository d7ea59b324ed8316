"""Membership plans and tiers (business configuration), memberships with their dated event history,
hidden-benefit reveals, family bindings, wallet-share consents, friend links and renewal reminders.

Invariants enforced by the database: one active membership per customer per chain; a customer is bound
to at most one active holder; one active wallet-share consent per (holder, member); a friend names one
member at a time; a hidden benefit is revealed once per membership; discounts are 0–10000 basis points.
"""

from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from smileloop.clinics.models import Chain, Staff
from smileloop.core.bounds import within
from smileloop.core.models import TimeStampedModel
from smileloop.customers.enums import Relation
from smileloop.customers.models import Customer
from smileloop.membership.enums import (
    BenefitTrigger,
    ConsentBy,
    EventKind,
    MembershipStatus,
    PlanKind,
    ReminderKind,
    WalletShareMode,
)
from smileloop.visits.enums import Category

# Bounds of the configuration: long enough for any real programme, small enough that the dates they lead to stay far
# from year 9999 and sums stay far inside a bigint. The services refuse values outside them (naming the field), the
# staff forms show them beside the field, the admin keeps them through the validators.
MONTHS = (1, 1200)  # 100 years
FEN = (0, 10**10)  # 100 million yuan
RANK = (1, 100)  # 1 = the entry tier; unique per plan
MULTIPLIER = (Decimal(0), Decimal(10))  # 0 = the tier earns no points on spend
BASIS_POINTS = (0, 10000)
SLOTS = (0, 20)
POSITION = (0, 1000)
NTH = (1, 1000)


def default_excluded_categories() -> list[str]:
    return [Category.ORAL_CARE_PRODUCT.value]


def default_topup_bonus_rules() -> list[dict]:
    return []


class MembershipPlan(TimeStampedModel):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=16, choices=PlanKind.choices)
    fee_fen = models.BigIntegerField(_("fee (fen)"), default=0, help_text=_("Paid plans: the fee per period."),
                                     validators=within(FEN))
    duration_months = models.PositiveSmallIntegerField(
        _("duration in months"), null=True, blank=True, help_text=_("Empty = lifetime (never expires)."),
        validators=within(MONTHS))
    spend_threshold_fen = models.BigIntegerField(
        _("spend threshold (fen)"), null=True, blank=True,
        help_text=_("Spend-based plans: cumulative paid spend (net of refunds) that enrols a customer."),
        validators=within(FEN))
    topup_bonus_rules = models.JSONField(
        _("top-up bonus rules"), default=default_topup_bonus_rules, blank=True,
        help_text=_('Stored-value plans, read by the wallet: [{"min_topup_fen": 1000000, "bonus_fen": 100000}]'))
    is_active = models.BooleanField(_("active"), default=True)
    auto_enrol = models.BooleanField(
        _("enrol automatically"), default=False,
        help_text=_("Spend-based and stored-value plans: enrol customers who reach a tier's threshold."))
    description = models.TextField(_("description"), blank=True)

    class Meta:
        verbose_name = _("membership plan")
        verbose_name_plural = _("membership plans")
        ordering = ["chain", "name"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "name"], name="membership_plan_unique_name"),
            models.CheckConstraint(condition=Q(fee_fen__gte=0), name="membership_plan_fee_non_negative"),
        ]

    def __str__(self):
        return self.name

    @property
    def is_lifetime(self) -> bool:
        return self.duration_months is None


class Tier(TimeStampedModel):
    """A level of a plan; a higher `rank` is a better tier. Discounts are basis points off (1200 = 88折)."""

    plan = models.ForeignKey(MembershipPlan, on_delete=models.CASCADE, related_name="tiers",
                             verbose_name=_("membership plan"))
    rank = models.PositiveSmallIntegerField(_("rank"), default=1, help_text=_("Higher is better."),
                                            validators=within(RANK))
    name = models.CharField(_("name"), max_length=50)
    discount_bp = models.PositiveIntegerField(
        _("discount (basis points off)"), default=0, validators=within(BASIS_POINTS),
        # xgettext:no-python-format
        help_text=_("1200 = 12% off."))
    excluded_categories = models.JSONField(_("excluded categories"), default=default_excluded_categories, blank=True)
    exclude_special_price = models.BooleanField(_("exclude special-price items"), default=True)
    points_multiplier = models.DecimalField(_("points multiplier"), max_digits=4, decimal_places=2,
                                            default=Decimal("1.00"), validators=within(MULTIPLIER))
    family_slots = models.PositiveSmallIntegerField(_("family slots"), default=3, validators=within(SLOTS))
    friend_discount_bp = models.PositiveIntegerField(_("friend discount (basis points off)"), default=1200,
                                                     validators=within(BASIS_POINTS))
    downgrade_allowed = models.BooleanField(
        _("downgrade allowed"), default=False,
        help_text=_("If unset, a member keeps this tier even when spend or top-ups fall below its threshold."))
    min_spend_fen = models.BigIntegerField(_("minimum cumulative spend (fen)"), default=0, validators=within(FEN))
    min_topup_fen = models.BigIntegerField(_("minimum cumulative top-up (fen)"), default=0, validators=within(FEN))
    topup_bonus_rules = models.JSONField(
        _("top-up bonus rules"), default=default_topup_bonus_rules, blank=True,
        help_text=_("Overrides the plan's rules for this tier when not empty (read by the wallet)."))

    class Meta:
        verbose_name = _("tier")
        verbose_name_plural = _("tiers")
        ordering = ["plan", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "rank"], name="tier_unique_rank"),
            models.CheckConstraint(condition=Q(discount_bp__lte=10000), name="tier_discount_range"),
            models.CheckConstraint(condition=Q(friend_discount_bp__lte=10000), name="tier_friend_discount_range"),
            models.CheckConstraint(condition=Q(min_spend_fen__gte=0, min_topup_fen__gte=0),
                                   name="tier_thresholds_non_negative"),
        ]

    def __str__(self):
        return f"{self.plan.name} · {self.name}"


class Benefit(TimeStampedModel):
    """A tier's benefit. A hidden one stays unknown to the member until a trigger reveals it."""

    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="benefits", verbose_name=_("tier"))
    position = models.PositiveSmallIntegerField(_("position"), default=0, validators=within(POSITION))
    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True)
    is_hidden = models.BooleanField(_("hidden"), default=False)
    trigger = models.CharField(_("trigger"), max_length=20, choices=BenefitTrigger.choices, blank=True, default="")
    trigger_n = models.PositiveSmallIntegerField(_("N (for the Nth visit)"), null=True, blank=True,
                                                 validators=within(NTH))
    action_code = models.CharField(
        _("action code"), max_length=50, blank=True,
        help_text=_('Run when revealed by a later capability, e.g. "issue_friend_card".'))
    action_data = models.JSONField(_("action data"), default=dict, blank=True,
                                   help_text=_('e.g. {"amount_fen": 60000, "valid_months": 3}'))

    class Meta:
        verbose_name = _("benefit")
        verbose_name_plural = _("benefits")
        ordering = ["tier", "position", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(is_hidden=True) | Q(trigger=""), name="benefit_trigger_only_if_hidden"),
            models.CheckConstraint(condition=~Q(trigger="nth_visit") | Q(trigger_n__gte=1),
                                   name="benefit_nth_visit_has_n"),
        ]

    def __str__(self):
        return self.name


class Membership(TimeStampedModel):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="memberships",
                                 verbose_name=_("customer"))
    plan = models.ForeignKey(MembershipPlan, on_delete=models.PROTECT, related_name="memberships",
                             verbose_name=_("membership plan"))
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="memberships",
                             verbose_name=_("tier"))
    status = models.CharField(_("status"), max_length=16, choices=MembershipStatus.choices,
                              default=MembershipStatus.ACTIVE)
    started_at = models.DateTimeField(_("started"))
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True, help_text=_("Empty = lifetime."))
    fee_fen = models.BigIntegerField(_("fee recorded (fen)"), default=0)
    ended_at = models.DateTimeField(null=True, blank=True, verbose_name=_("ended"))
    enrolled_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                    verbose_name=_("enrolled by"))

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["status", "expires_at"], name="membership_expiry")]
        constraints = [
            models.UniqueConstraint(fields=["chain", "customer"], condition=Q(status="active"),
                                    name="membership_one_active_per_customer"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.customer_id} {self.tier_id} {self.status}"

    @property
    def is_lifetime(self) -> bool:
        return self.expires_at is None


class MembershipEvent(models.Model):
    """Append-only history: every enrolment, upgrade, renewal, expiry, downgrade and cancellation, with a
    sentence staff can read (`reason`) and the figures behind it (`data`)."""

    membership = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="events",
                                   verbose_name=_("membership"))
    kind = models.CharField(max_length=16, choices=EventKind.choices, verbose_name=_("kind"))
    occurred_at = models.DateTimeField(db_index=True, verbose_name=_("time"))
    reason = models.CharField(max_length=500, verbose_name=_("reason"))
    data = models.JSONField(default=dict, blank=True, verbose_name=_("details"))
    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              verbose_name=_("actor"))

    class Meta:
        verbose_name = _("membership event")
        verbose_name_plural = _("membership events")
        ordering = ["-occurred_at", "-id"]

    def __str__(self):
        return self.reason


class BenefitReveal(models.Model):
    membership = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="reveals",
                                   verbose_name=_("membership"))
    benefit = models.ForeignKey(Benefit, on_delete=models.PROTECT, related_name="reveals",
                                verbose_name=_("benefit"))
    revealed_at = models.DateTimeField(verbose_name=_("revealed"))
    trigger = models.CharField(max_length=20, choices=BenefitTrigger.choices, verbose_name=_("trigger"))
    detail = models.CharField(max_length=255, blank=True, verbose_name=_("details"))
    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              verbose_name=_("actor"))

    class Meta:
        verbose_name = _("benefit reveal")
        verbose_name_plural = _("benefit reveals")
        ordering = ["-revealed_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["membership", "benefit"], name="benefit_reveal_once")]

    def __str__(self):
        return f"#{self.membership_id} {timezone.localtime(self.revealed_at):%Y-%m-%d} {self.get_trigger_display()}"


class FamilyBinding(models.Model):
    """A family member bound to a holder's membership; shares the holder's tier discount while active."""

    holder = models.ForeignKey(Membership, on_delete=models.PROTECT, related_name="family_bindings",
                               verbose_name=_("holder's membership"))
    member = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="family_bindings",
                               verbose_name=_("family member"))
    relation = models.CharField(_("relation"), max_length=16, choices=Relation.choices)
    consent_by = models.CharField(_("consent given by"), max_length=16, choices=ConsentBy.choices)
    consent_at = models.DateTimeField(_("consent recorded"))
    consent_source = models.CharField(_("consent given through"), max_length=64)
    consent_evidence = models.CharField(_("consent evidence"), max_length=255, blank=True)
    bound_at = models.DateTimeField(verbose_name=_("bound"))
    bound_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                 verbose_name=_("bound by"))
    unbound_at = models.DateTimeField(null=True, blank=True, verbose_name=_("unbound"))
    unbind_reason = models.CharField(max_length=255, blank=True, verbose_name=_("unbind reason"))

    class Meta:
        verbose_name = _("family card binding")
        verbose_name_plural = _("family card bindings")
        ordering = ["bound_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["member"], condition=Q(unbound_at__isnull=True),
                                    name="family_binding_one_active_holder"),
        ]

    def __str__(self):
        return f"#{self.holder_id} ← #{self.member_id} {self.get_relation_display()}"

    @property
    def is_active(self) -> bool:
        return self.unbound_at is None


class WalletShareConsent(models.Model):
    """The holder's consent that a bound family member may spend from the holder's wallet."""

    holder = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="wallet_consents_given",
                               verbose_name=_("card holder"))
    member = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="wallet_consents_received",
                               verbose_name=_("family member"))
    mode = models.CharField(max_length=16, choices=WalletShareMode.choices, verbose_name=_("sharing mode"))
    granted_at = models.DateTimeField(verbose_name=_("consent given"))
    revoked_at = models.DateTimeField(null=True, blank=True, verbose_name=_("withdrawn"))
    source = models.CharField(max_length=64, verbose_name=_("source"))
    evidence = models.CharField(max_length=255, blank=True, verbose_name=_("evidence"))
    recorded_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                    verbose_name=_("recorded by"))

    class Meta:
        verbose_name = _("family wallet consent")
        verbose_name_plural = _("family wallet consents")
        ordering = ["-granted_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["holder", "member"], condition=Q(revoked_at__isnull=True),
                                    name="wallet_share_one_active"),
        ]

    def __str__(self):
        return f"#{self.holder_id} → #{self.member_id} {self.get_mode_display()}"


class FriendLink(models.Model):
    """A friend who names a member; gives the friend the member tier's friend discount."""

    friend = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="friend_links",
                               verbose_name=_("friend"))
    member = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="friends_named",
                               verbose_name=_("member named"))
    named_at = models.DateTimeField(verbose_name=_("named"))
    source = models.CharField(max_length=64, blank=True, verbose_name=_("source"))
    ended_at = models.DateTimeField(null=True, blank=True, verbose_name=_("ended"))
    recorded_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                    verbose_name=_("recorded by"))

    class Meta:
        verbose_name = _("friend link")
        verbose_name_plural = _("friend links")
        ordering = ["-named_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["friend"], condition=Q(ended_at__isnull=True),
                                    name="friend_link_one_active"),
        ]

    def __str__(self):
        return f"#{self.friend_id} → #{self.member_id}"


class MembershipReminder(models.Model):
    """A renewal reminder due on a day; the follow-up engine turns due reminders into tasks."""

    membership = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="reminders",
                                   verbose_name=_("membership"))
    kind = models.CharField(max_length=16, choices=ReminderKind.choices, default=ReminderKind.RENEWAL,
                            verbose_name=_("kind"))
    due_on = models.DateField(db_index=True, verbose_name=_("reminder date"))
    days_before = models.PositiveSmallIntegerField(verbose_name=_("days before expiry"))
    expires_at = models.DateTimeField(verbose_name=_("expires"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))
    handled_at = models.DateTimeField(null=True, blank=True, verbose_name=_("handled"))

    class Meta:
        verbose_name = _("membership reminder")
        verbose_name_plural = _("membership reminders")
        ordering = ["due_on", "id"]
        constraints = [
            models.UniqueConstraint(fields=["membership", "kind", "expires_at", "days_before"],
                                    name="membership_reminder_once"),
        ]

    def __str__(self):
        return f"#{self.membership_id} {self.due_on:%Y-%m-%d}"
