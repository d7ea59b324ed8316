"""A Settlement links a paid order to every ledger movement and entitlement use checkout made for it; a
RefundSettlement records what each refund gave back, movement by movement. The priced breakdown is kept as
JSON exactly as the cashier saw it."""

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from smileloop.clinics.models import Chain, Clinic, Staff
from smileloop.customers.models import Customer
from smileloop.ledger.models import LedgerTransaction
from smileloop.visits.models import Order, OrderLine, Refund


class MovementRole(models.TextChoices):
    GIFTCARD = "giftcard", _("Gift card")
    VOUCHER = "voucher", _("Voucher")
    POINTS = "points", _("Points")
    WALLET = "wallet", _("Wallet")
    ENTITLEMENT = "entitlement", _("Entitlement")
    EARN = "earn", _("Points earned")


class Settlement(models.Model):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    key = models.CharField(max_length=200, verbose_name=_("idempotency key"))
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+",
                                 verbose_name=_("customer"))
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="+", verbose_name=_("clinic"))
    order = models.OneToOneField(Order, on_delete=models.PROTECT, related_name="settlement",
                                 verbose_name=pgettext_lazy("model name", "order"))
    total_fen = models.BigIntegerField(verbose_name=_("total"))
    cash_fen = models.BigIntegerField(verbose_name=_("paid in money"))
    cash_refunded_fen = models.BigIntegerField(default=0, verbose_name=_("refunded in money"))
    breakdown = models.JSONField(verbose_name=_("price breakdown"))
    units_refunded = models.JSONField(default=dict, blank=True,  # order line id → units refunded by quantity
                                      verbose_name=_("units refunded"))
    # What was asked for (checkout.services.pay.pay_request_hash): a replay of `key` must ask for the same bill
    request_hash = models.CharField(max_length=64, blank=True, default="", verbose_name=_("request digest"))
    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              verbose_name=_("actor"))
    created_at = models.DateTimeField(verbose_name=_("created"))

    class Meta:
        verbose_name = _("settlement")
        verbose_name_plural = _("settlements")
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["chain", "key"], name="settlement_unique_key")]


class SettlementMovement(models.Model):
    """One ledger transaction (or entitlement use) made for the order. `value_fen` is what it paid of the bill
    (0 for earned points and entitlements); `refunded_fen` how much of that refunds gave back so far."""

    settlement = models.ForeignKey(Settlement, on_delete=models.CASCADE, related_name="movements",
                                   verbose_name=_("settlement"))
    role = models.CharField(max_length=16, choices=MovementRole.choices, verbose_name=_("paid with"))
    ref = models.CharField(max_length=40, blank=True,  # card / voucher code
                           verbose_name=_("card or voucher code"))
    transaction = models.ForeignKey(LedgerTransaction, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+", verbose_name=_("ledger transaction"))
    entitlement_use_model = models.CharField(max_length=100, blank=True,  # app_label.Model of the use
                                             verbose_name=_("entitlement use kind"))
    entitlement_use_id = models.BigIntegerField(null=True, blank=True, verbose_name=_("entitlement use"))
    order_line = models.ForeignKey(OrderLine, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+", verbose_name=_("order line"))
    value_fen = models.BigIntegerField(default=0, verbose_name=_("value paid"))
    points = models.BigIntegerField(default=0, verbose_name=_("points"))
    refunded_fen = models.BigIntegerField(default=0, verbose_name=_("refunded amount"))
    reversed = models.BooleanField(default=False, verbose_name=_("reversed"))  # entitlement uses

    class Meta:
        verbose_name = _("settlement movement")
        verbose_name_plural = _("settlement movements")
        ordering = ["id"]


class RefundSettlement(models.Model):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    key = models.CharField(max_length=200, verbose_name=_("idempotency key"))
    settlement = models.ForeignKey(Settlement, on_delete=models.PROTECT, related_name="refunds",
                                   verbose_name=_("settlement"))
    # What went back by method: one visits.Refund per payment method (money methods for the money given back, the
    # tenders' methods for the wallet, points, cards and vouchers, `points` for a clawback withheld). `refund` is
    # the first of them (kept for the rows written when a checkout refund recorded one Refund for everything).
    refund = models.ForeignKey(Refund, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                               verbose_name=_("refund"))
    order_refunds = models.ManyToManyField(Refund, blank=True, related_name="+",
                                           verbose_name=_("refunds by payment method"))
    amount_fen = models.BigIntegerField(verbose_name=_("amount"))
    cash_fen = models.BigIntegerField(verbose_name=_("refunded in money"))
    breakdown = models.JSONField(verbose_name=_("refund breakdown"))
    reason = models.CharField(max_length=255, blank=True, verbose_name=_("reason"))
    # What was asked for (checkout.services.refund.refund_request_hash): a replay of `key` must ask for the same
    request_hash = models.CharField(max_length=64, blank=True, default="", verbose_name=_("request digest"))
    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              verbose_name=_("actor"))
    created_at = models.DateTimeField(verbose_name=_("created"))

    class Meta:
        verbose_name = _("refund settlement")
        verbose_name_plural = _("refund settlements")
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["chain", "key"], name="refund_settlement_unique_key")]


class RefundMovement(models.Model):
    refund = models.ForeignKey(RefundSettlement, on_delete=models.CASCADE, related_name="movements",
                               verbose_name=_("refund settlement"))
    movement = models.ForeignKey(SettlementMovement, on_delete=models.PROTECT,
                                 related_name="refund_movements", verbose_name=_("settlement movement"))
    transaction = models.ForeignKey(LedgerTransaction, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+", verbose_name=_("ledger transaction"))
    amount_fen = models.BigIntegerField(default=0, verbose_name=_("amount"))

    class Meta:
        verbose_name = _("refund movement")
        verbose_name_plural = _("refund movements")
        ordering = ["id"]
