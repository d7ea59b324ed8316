"""Service catalogue, appointments, orders (POS bills) with lines, payments and refunds, treatment
plans with steps, and procedure records. Money is integer fen."""

from django.db import models
from django.db.models import Q
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
                              db_index=False)  # service_item_unique_code leads with it
    code = models.CharField(_("code"), max_length=32)
    name = models.CharField(_("name"), max_length=100)
    category = models.CharField(_("category"), max_length=32, choices=Category.choices)
    is_special_price = models.BooleanField(_("special price"), default=False)
    is_surgical = models.BooleanField(_("surgical"), default=False)
    list_price_fen = models.BigIntegerField(_("list price (fen)"))
    is_active = models.BooleanField(default=True)

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
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", db_index=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="appointments", db_index=False)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="appointments", db_index=False)
    doctor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="appointments")
    service_item = models.ForeignKey(ServiceItem, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    start_at = models.DateTimeField()
    end_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=AppointmentStatus.choices, default=AppointmentStatus.BOOKED)
    notes = models.TextField(blank=True)
    external_id = models.CharField(max_length=64, null=True, blank=True)

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


class Order(HistoryModel):
    """A POS bill. `amount_fen` = sum of line amounts = sum of payments; refunds are separate records."""

    # Covered by the composite indexes below (see Appointment).
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", db_index=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="orders", db_index=False)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="orders", db_index=False)
    external_id = models.CharField(max_length=64, null=True, blank=True)
    ordered_at = models.DateTimeField()
    list_total_fen = models.BigIntegerField(default=0)
    discount_fen = models.BigIntegerField(default=0)
    amount_fen = models.BigIntegerField(default=0)
    refunded_fen = models.BigIntegerField(default=0)
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.PAID)
    cashier = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    notes = models.TextField(blank=True)

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


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    item = models.ForeignKey(ServiceItem, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField(default=1)
    unit_price_fen = models.BigIntegerField()  # list price per unit at the time of sale
    discount_fen = models.BigIntegerField(default=0)
    amount_fen = models.BigIntegerField()  # quantity × unit price − discount
    refunded_fen = models.BigIntegerField(default=0)
    tooth = models.CharField(max_length=32, blank=True)

    class Meta:
        verbose_name = _("order line")
        verbose_name_plural = _("order lines")
        constraints = [
            models.CheckConstraint(condition=Q(amount_fen__gte=0, discount_fen__gte=0, refunded_fen__gte=0,
                                               refunded_fen__lte=models.F("amount_fen")),
                                   name="order_line_amounts_valid"),
        ]


class Payment(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="payments")
    method = models.CharField(max_length=16, choices=PaymentMethod.choices)
    amount_fen = models.BigIntegerField()
    paid_at = models.DateTimeField()

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        constraints = [models.CheckConstraint(condition=Q(amount_fen__gt=0), name="payment_positive")]


class Refund(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="refunds",
                              db_index=False)  # refund_unique_external leads with it
    external_id = models.CharField(max_length=64, null=True, blank=True)
    amount_fen = models.BigIntegerField()
    method = models.CharField(max_length=16, choices=PaymentMethod.choices, default=PaymentMethod.OTHER)
    reason = models.CharField(max_length=255, blank=True)
    refunded_at = models.DateTimeField()
    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        constraints = [
            models.CheckConstraint(condition=Q(amount_fen__gt=0), name="refund_positive"),
            models.UniqueConstraint(fields=["order", "external_id"], name="refund_unique_external"),
        ]


class RefundLine(models.Model):
    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="lines")
    order_line = models.ForeignKey(OrderLine, on_delete=models.CASCADE, related_name="refund_lines")
    amount_fen = models.BigIntegerField()


class TreatmentPlan(HistoryModel):
    """Planned steps with denormalised counts, so 'unfinished' and '50% done' are plain indexed queries."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+",
                              db_index=False)  # plan_unique_external leads with it
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="treatment_plans")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="treatment_plans")
    doctor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    title = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=PlanStatus.choices, default=PlanStatus.ACTIVE)
    steps_total = models.PositiveIntegerField(default=0)
    steps_done = models.PositiveIntegerField(default=0)
    estimated_fen = models.BigIntegerField(default=0)
    planned_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    external_id = models.CharField(max_length=64, null=True, blank=True)

    class Meta:
        verbose_name = _("treatment plan")
        verbose_name_plural = _("treatment plans")
        ordering = ["-planned_at"]
        indexes = [models.Index(fields=["status", "clinic"], name="plan_status_clinic")]
        constraints = [
            models.UniqueConstraint(fields=["chain", "external_id"], name="plan_unique_external"),
            models.CheckConstraint(condition=Q(steps_done__lte=models.F("steps_total")), name="plan_steps_consistent"),
        ]

    @property
    def progress_percent(self) -> int:
        return 0 if not self.steps_total else (100 * self.steps_done) // self.steps_total


class PlanStep(models.Model):
    plan = models.ForeignKey(TreatmentPlan, on_delete=models.CASCADE, related_name="steps",
                             db_index=False)  # plan_step_unique_seq leads with it
    seq = models.PositiveIntegerField()
    item = models.ForeignKey(ServiceItem, on_delete=models.PROTECT, related_name="+")
    tooth = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=16, choices=StepStatus.choices, default=StepStatus.PLANNED)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("treatment plan step")
        verbose_name_plural = _("treatment plan steps")
        ordering = ["seq"]
        constraints = [models.UniqueConstraint(fields=["plan", "seq"], name="plan_step_unique_seq")]


class Procedure(HistoryModel):
    """A treatment performed (date, item, doctor, tooth): the source for post-operative follow-ups."""

    # chain and customer lead procedure_unique_external and procedure_customer.
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", db_index=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="procedures")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="procedures", db_index=False)
    item = models.ForeignKey(ServiceItem, on_delete=models.PROTECT, related_name="+")
    doctor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    performed_on = models.DateField()
    tooth = models.CharField(max_length=32, blank=True)
    notes = models.TextField(blank=True)
    order_line = models.ForeignKey(OrderLine, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    plan_step = models.ForeignKey(PlanStep, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                  db_index=False)  # mostly NULL: procedure_plan_step indexes the rest
    external_id = models.CharField(max_length=64, null=True, blank=True)

    class Meta:
        verbose_name = _("procedure")
        verbose_name_plural = _("procedures")
        ordering = ["-performed_on"]
        indexes = [models.Index(fields=["customer", "-performed_on"], name="procedure_customer"),
                   models.Index(fields=["performed_on", "item"], name="procedure_day_item"),
                   models.Index(fields=["plan_step"], name="procedure_plan_step", condition=Q(plan_step__isnull=False))]
        constraints = [models.UniqueConstraint(fields=["chain", "external_id"], name="procedure_unique_external")]
