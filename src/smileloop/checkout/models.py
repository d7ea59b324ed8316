"""A Settlement links a paid order to every ledger movement and entitlement use checkout made for it; a
RefundSettlement records what each refund gave back, movement by movement. The priced breakdown is kept as
JSON exactly as the cashier saw it."""

from django.db import models

from smileloop.clinics.models import Chain, Clinic, Staff
from smileloop.customers.models import Customer
from smileloop.ledger.models import LedgerTransaction
from smileloop.visits.models import Order, OrderLine, Refund


class MovementRole(models.TextChoices):
    GIFTCARD = "giftcard", "Gift card"
    VOUCHER = "voucher", "Voucher"
    POINTS = "points", "Points"
    WALLET = "wallet", "Wallet"
    ENTITLEMENT = "entitlement", "Entitlement"
    EARN = "earn", "Points earned"


class Settlement(models.Model):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+")
    key = models.CharField(max_length=200)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="+")
    order = models.OneToOneField(Order, on_delete=models.PROTECT, related_name="settlement")
    total_fen = models.BigIntegerField()
    cash_fen = models.BigIntegerField()
    cash_refunded_fen = models.BigIntegerField(default=0)
    breakdown = models.JSONField()
    units_refunded = models.JSONField(default=dict, blank=True)  # order line id → units refunded by quantity
    # What was asked for (checkout.services.pay.pay_request_hash): a replay of `key` must ask for the same bill
    request_hash = models.CharField(max_length=64, blank=True, default="")
    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["chain", "key"], name="settlement_unique_key")]


class SettlementMovement(models.Model):
    """One ledger transaction (or entitlement use) made for the order. `value_fen` is what it paid of the bill
    (0 for earned points and entitlements); `refunded_fen` how much of that refunds gave back so far."""

    settlement = models.ForeignKey(Settlement, on_delete=models.CASCADE, related_name="movements")
    role = models.CharField(max_length=16, choices=MovementRole.choices)
    ref = models.CharField(max_length=40, blank=True)  # card / voucher code
    transaction = models.ForeignKey(LedgerTransaction, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    entitlement_use_model = models.CharField(max_length=100, blank=True)  # app_label.Model of the use
    entitlement_use_id = models.BigIntegerField(null=True, blank=True)
    order_line = models.ForeignKey(OrderLine, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    value_fen = models.BigIntegerField(default=0)
    points = models.BigIntegerField(default=0)
    refunded_fen = models.BigIntegerField(default=0)
    reversed = models.BooleanField(default=False)  # entitlement uses

    class Meta:
        ordering = ["id"]


class RefundSettlement(models.Model):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+")
    key = models.CharField(max_length=200)
    settlement = models.ForeignKey(Settlement, on_delete=models.PROTECT, related_name="refunds")
    refund = models.ForeignKey(Refund, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    amount_fen = models.BigIntegerField()
    cash_fen = models.BigIntegerField()
    breakdown = models.JSONField()
    reason = models.CharField(max_length=255, blank=True)
    # What was asked for (checkout.services.refund.refund_request_hash): a replay of `key` must ask for the same
    request_hash = models.CharField(max_length=64, blank=True, default="")
    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["chain", "key"], name="refund_settlement_unique_key")]


class RefundMovement(models.Model):
    refund = models.ForeignKey(RefundSettlement, on_delete=models.CASCADE, related_name="movements")
    movement = models.ForeignKey(SettlementMovement, on_delete=models.PROTECT, related_name="refund_movements")
    transaction = models.ForeignKey(LedgerTransaction, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    amount_fen = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["id"]
