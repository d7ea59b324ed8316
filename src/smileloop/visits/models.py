"""Service catalogue, appointments, orders (POS bills) with lines, payments and refunds, treatment
plans with steps, and procedure records. Money is integer fen."""

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from smileloop.clinics.models import Chain, Clinic, Staff
from smileloop.core.indexes import CoveringIndex
from smileloop.core.models import HistoryModel, TimeStampedModel
from smileloop.customers.models import Customer
from smileloop.visits.enums import (
    AppointmentStatus,
    Category,
    OrderStatus,
    PaymentMethod,
    PlanStatus,
    StepStatus,
)


class ServiceItem(TimeStampedModel):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="service_items",
                              db_index=False,  # service_item_unique_code leads with it
                              verbose_name=_("chain"))
    code = models.CharField(_("code"), max_length=32)
    name = models.CharField(_("name"), max_length=100)
    category = models.CharField(_("category"), max_length=32, choices=Category.choices)
    is_special_price = models.BooleanField(_("special price"), default=False)
    is_surgical = models.BooleanField(_("surgical"), default=False)
    list_price_fen = models.BigIntegerField(_("list price (fen)"))
    is_active = models.BooleanField(default=True, verbose_name=_("active"))

    class Meta:
        verbose_name = _("service item")
        verbose_name_plural = _("service items")
        ordering = ["code"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "code"], name="service_item_unique_code"),
            models.CheckConstraint(condition=Q(list_price_fen__gte=0), name="service_item_price_non_negative"),
        ]

    def __str__(self):
        return f"{self.code} {self.name}"


class Appointment(HistoryModel):
    # chain, clinic and customer lead indexes of their own below (the unique external id, the clinic's day,
    # the customer's history), so none has a single-column index too: one B-tree fewer to write per row.
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", db_index=False,
                              verbose_name=_("chain"))
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="appointments", db_index=False,
                               verbose_name=_("clinic"))
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="appointments", db_index=False,
                                 verbose_name=_("customer"))
    doctor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="appointments",
                               verbose_name=_("doctor"))
    service_item = models.ForeignKey(ServiceItem, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                     verbose_name=_("service item"))
    start_at = models.DateTimeField(verbose_name=_("start"))
    end_at = models.DateTimeField(verbose_name=_("end"))
    status = models.CharField(max_length=16, choices=AppointmentStatus.choices, default=AppointmentStatus.BOOKED,
                              verbose_name=_("status"))
    notes = models.TextField(blank=True, verbose_name=_("notes"))
    external_id = models.CharField(max_length=64, null=True, blank=True, verbose_name=_("external ID"))

    class Meta:
        verbose_name = _("appointment")
        verbose_name_plural = _("appointments")
        ordering = ["-start_at"]
        indexes = [models.Index(fields=["customer", "-start_at"], name="appointment_customer"),
                   models.Index(fields=["clinic", "start_at"], name="appointment_clinic_day")]
        constraints = [
            models.UniqueConstraint(fields=["chain", "external_id"], name="appointment_unique_external"),
            models.CheckConstraint(condition=Q(end_at__gt=models.F("start_at")), name="appointment_ends_after_start"),
        ]

    def __str__(self):
        return f"{timezone.localtime(self.start_at):%Y-%m-%d %H:%M} {self.get_status_display()}"


class Order(HistoryModel):
    """A POS bill. `amount_fen` = sum of line amounts = sum of payments; refunds are separate records."""

    # Covered by the composite indexes below (see Appointment).
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", db_index=False,
                              verbose_name=_("chain"))
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="orders", db_index=False,
                               verbose_name=_("clinic"))
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="orders", db_index=False,
                                 verbose_name=_("customer"))
    external_id = models.CharField(max_length=64, null=True, blank=True, verbose_name=_("external ID"))
    ordered_at = models.DateTimeField(verbose_name=_("ordered"))
    list_total_fen = models.BigIntegerField(default=0, verbose_name=_("list total"))
    discount_fen = models.BigIntegerField(default=0, verbose_name=_("discount"))
    amount_fen = models.BigIntegerField(default=0, verbose_name=_("amount"))
    refunded_fen = models.BigIntegerField(default=0, verbose_name=_("refunded amount"))
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.PAID,
                              verbose_name=_("status"))
    cashier = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                verbose_name=_("cashier"))
    notes = models.TextField(blank=True, verbose_name=_("notes"))

    class Meta:
        verbose_name = pgettext_lazy("model name", "order")
        verbose_name_plural = _("orders")
        ordering = ["-ordered_at"]
        # amount/refunded ride along (PostgreSQL INCLUDE): "paid spend in the last N days" per patient — the
        # segments' spend conditions, 10M orders — reads the index only.
        indexes = [CoveringIndex(fields=["customer", "-ordered_at"], name="order_customer_spend",
                                include=["amount_fen", "refunded_fen"]),
                   models.Index(fields=["clinic", "ordered_at"], name="order_clinic_day")]
        constraints = [
            models.UniqueConstraint(fields=["chain", "external_id"], name="order_unique_external"),
            models.CheckConstraint(condition=Q(amount_fen__gte=0, refunded_fen__gte=0,
                                               refunded_fen__lte=models.F("amount_fen")),
                                   name="order_amounts_valid"),
        ]

    def __str__(self):
        return f"#{self.pk} {timezone.localtime(self.ordered_at):%Y-%m-%d}"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines",
                              verbose_name=pgettext_lazy("model name", "order"))
    item = models.ForeignKey(ServiceItem, on_delete=models.PROTECT, related_name="+", verbose_name=_("item"))
    quantity = models.PositiveIntegerField(default=1, verbose_name=_("quantity"))
    unit_price_fen = models.BigIntegerField(verbose_name=_("unit price"))  # list price per unit when sold
    discount_fen = models.BigIntegerField(default=0, verbose_name=_("discount"))
    amount_fen = models.BigIntegerField(verbose_name=_("amount"))  # quantity × unit price − discount
    refunded_fen = models.BigIntegerField(default=0, verbose_name=_("refunded amount"))
    tooth = models.CharField(max_length=32, blank=True, verbose_name=_("tooth"))

    class Meta:
        verbose_name = _("order line")
        verbose_name_plural = _("order lines")
        constraints = [
            models.CheckConstraint(condition=Q(amount_fen__gte=0, discount_fen__gte=0, refunded_fen__gte=0,
                                               refunded_fen__lte=models.F("amount_fen")),
                                   name="order_line_amounts_valid"),
        ]

    def __str__(self):
        return f"#{self.order_id}-{self.pk}"


class Payment(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="payments",
                              verbose_name=pgettext_lazy("model name", "order"))
    method = models.CharField(max_length=16, choices=PaymentMethod.choices, verbose_name=_("payment method"))
    amount_fen = models.BigIntegerField(verbose_name=_("amount"))
    paid_at = models.DateTimeField(verbose_name=_("paid"))

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        constraints = [models.CheckConstraint(condition=Q(amount_fen__gt=0), name="payment_positive")]

    def __str__(self):
        return f"{self.get_method_display()} {timezone.localtime(self.paid_at):%Y-%m-%d %H:%M}"


class Refund(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="refunds",
                              db_index=False,  # refund_unique_external leads with it
                              verbose_name=pgettext_lazy("model name", "order"))
    external_id = models.CharField(max_length=64, null=True, blank=True, verbose_name=_("external ID"))
    amount_fen = models.BigIntegerField(verbose_name=_("amount"))
    method = models.CharField(max_length=16, choices=PaymentMethod.choices, default=PaymentMethod.OTHER,
                              verbose_name=_("refund method"))
    reason = models.CharField(max_length=255, blank=True, verbose_name=_("reason"))
    refunded_at = models.DateTimeField(verbose_name=_("refund time"))
    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              verbose_name=_("actor"))
    # A refund naming no method of a bill paid several ways is recorded as one row per method (refund_record): the
    # others point at the first (which carries the external_id), so a replay answers with all of them.
    split_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="split_parts",
                                 verbose_name=_("split of"))

    class Meta:
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        constraints = [
            models.CheckConstraint(condition=Q(amount_fen__gt=0), name="refund_positive"),
            models.UniqueConstraint(fields=["order", "external_id"], name="refund_unique_external"),
        ]

    def __str__(self):
        return f"#{self.order_id} {timezone.localtime(self.refunded_at):%Y-%m-%d %H:%M}"


class RefundLine(models.Model):
    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="lines",
                               verbose_name=_("refund"))
    order_line = models.ForeignKey(OrderLine, on_delete=models.CASCADE, related_name="refund_lines",
                                   verbose_name=_("order line"))
    amount_fen = models.BigIntegerField(verbose_name=_("amount"))

    class Meta:
        verbose_name = _("refund line")
        verbose_name_plural = _("refund lines")


class TreatmentPlan(HistoryModel):
    """Planned steps with denormalised counts, so 'unfinished' and '50% done' are plain indexed queries."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+",
                              db_index=False, verbose_name=_("chain"))  # plan_unique_external leads with it
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="treatment_plans",
                               verbose_name=_("clinic"))
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="treatment_plans",
                                 verbose_name=_("customer"))
    doctor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                               verbose_name=_("doctor"))
    title = models.CharField(max_length=100, verbose_name=_("title"))
    status = models.CharField(max_length=16, choices=PlanStatus.choices, default=PlanStatus.ACTIVE,
                              verbose_name=_("status"))
    steps_total = models.PositiveIntegerField(default=0, verbose_name=_("total steps"))
    steps_done = models.PositiveIntegerField(default=0, verbose_name=_("steps done"))
    estimated_fen = models.BigIntegerField(default=0, verbose_name=_("estimated cost"))
    planned_at = models.DateTimeField(verbose_name=_("planned"))
    completed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("completed"))
    external_id = models.CharField(max_length=64, null=True, blank=True, verbose_name=_("external ID"))

    class Meta:
        verbose_name = _("treatment plan")
        verbose_name_plural = _("treatment plans")
        ordering = ["-planned_at"]
        indexes = [models.Index(fields=["status", "clinic"], name="plan_status_clinic")]
        constraints = [
            models.UniqueConstraint(fields=["chain", "external_id"], name="plan_unique_external"),
            models.CheckConstraint(condition=Q(steps_done__lte=models.F("steps_total")), name="plan_steps_consistent"),
        ]

    def __str__(self):
        return self.title

    @property
    def progress_percent(self) -> int:
        return 0 if not self.steps_total else (100 * self.steps_done) // self.steps_total


class PlanStep(models.Model):
    plan = models.ForeignKey(TreatmentPlan, on_delete=models.CASCADE, related_name="steps",
                             db_index=False,  # plan_step_unique_seq leads with it
                             verbose_name=_("treatment plan"))
    seq = models.PositiveIntegerField(verbose_name=_("step number"))
    item = models.ForeignKey(ServiceItem, on_delete=models.PROTECT, related_name="+", verbose_name=_("item"))
    tooth = models.CharField(max_length=32, blank=True, verbose_name=_("tooth"))
    status = models.CharField(max_length=16, choices=StepStatus.choices, default=StepStatus.PLANNED,
                              verbose_name=_("status"))
    done_at = models.DateTimeField(null=True, blank=True, verbose_name=_("completed"))

    class Meta:
        verbose_name = _("treatment plan step")
        verbose_name_plural = _("treatment plan steps")
        ordering = ["seq"]
        constraints = [models.UniqueConstraint(fields=["plan", "seq"], name="plan_step_unique_seq")]

    def __str__(self):
        return f"#{self.plan_id}-{self.seq}"


class Procedure(HistoryModel):
    """A treatment performed (date, item, doctor, tooth): the source for post-operative follow-ups."""

    # chain and customer lead procedure_unique_external and procedure_customer.
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", db_index=False,
                              verbose_name=_("chain"))
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="procedures",
                               verbose_name=_("clinic"))
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="procedures", db_index=False,
                                 verbose_name=_("customer"))
    item = models.ForeignKey(ServiceItem, on_delete=models.PROTECT, related_name="+", verbose_name=_("item"))
    doctor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                               verbose_name=_("doctor"))
    performed_on = models.DateField(verbose_name=_("date performed"))
    tooth = models.CharField(max_length=32, blank=True, verbose_name=_("tooth"))
    notes = models.TextField(blank=True, verbose_name=_("notes"))
    order_line = models.ForeignKey(OrderLine, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                   verbose_name=_("order line"))
    plan_step = models.ForeignKey(PlanStep, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                  db_index=False,  # mostly NULL: procedure_plan_step indexes the rest
                                  verbose_name=_("treatment plan step"))
    external_id = models.CharField(max_length=64, null=True, blank=True, verbose_name=_("external ID"))

    class Meta:
        verbose_name = _("procedure")
        verbose_name_plural = _("procedures")
        ordering = ["-performed_on"]
        indexes = [models.Index(fields=["customer", "-performed_on"], name="procedure_customer"),
                   models.Index(fields=["performed_on", "item"], name="procedure_day_item"),
                   models.Index(fields=["plan_step"], name="procedure_plan_step", condition=Q(plan_step__isnull=False))]
        constraints = [models.UniqueConstraint(fields=["chain", "external_id"], name="procedure_unique_external")]

    def __str__(self):
        return f"{self.performed_on:%Y-%m-%d} {self.tooth}".strip()
