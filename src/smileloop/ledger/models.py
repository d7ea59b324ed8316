"""An append-only, double-entry ledger for points, stored value, gift cards and vouchers.

Invariants (checked by `smileloop ledger check`): every transaction's entries sum to zero and use one
unit; an account's balance equals the sum of its entries; a holder account's balance equals the sum of
its lots' remaining amounts and is never negative (a database constraint). Entries are never updated or
deleted: a correction is a reversing transaction.
"""

from django.db import models
from django.db.models import F, Q

from smileloop.clinics.models import Chain, Staff
from smileloop.customers.models import Customer
from smileloop.ledger.enums import SYSTEM_KINDS, AccountKind, EntryReason, Unit


class Account(models.Model):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=20, choices=AccountKind.choices)
    unit = models.CharField(max_length=8, choices=Unit.choices)
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="accounts")
    code = models.CharField(max_length=32, null=True, blank=True)  # gift card / voucher code: the bearer holds it
    balance = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0) | Q(kind__in=sorted(SYSTEM_KINDS)),
                                   name="ledger_holder_balance_non_negative"),
            models.UniqueConstraint(fields=["chain", "kind", "customer"],
                                    condition=Q(customer__isnull=False, code__isnull=True, closed_at__isnull=True),
                                    name="ledger_one_open_account_per_customer_kind"),
            models.UniqueConstraint(fields=["chain", "code"], condition=Q(code__isnull=False),
                                    name="ledger_unique_code"),
            models.UniqueConstraint(fields=["chain", "kind"], condition=Q(customer__isnull=True, code__isnull=True),
                                    name="ledger_one_system_account_per_kind"),
        ]

    def __str__(self):
        owner = self.code or (f"customer {self.customer_id}" if self.customer_id else "system")
        return f"{self.kind} · {owner}"


class LedgerTransaction(models.Model):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+")
    idempotency_key = models.CharField(max_length=200)
    fingerprint = models.CharField(max_length=64)  # SHA-256 of the postings: a reused key with other postings is refused
    reason = models.CharField(max_length=16, choices=EntryReason.choices)
    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=100, blank=True)  # "order:123", "giftcard:45", …
    memo = models.CharField(max_length=255, blank=True)
    reverses = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversals")
    # For a reversal: the cumulative share of `reverses` undone once this one is posted ("1/3", "1").
    reversed_share = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["chain", "idempotency_key"], name="ledger_unique_key")]
        indexes = [models.Index(fields=["source"], name="ledger_tx_source")]


class Lot(models.Model):
    """A credit to a holder account that can be spent, expires or becomes available as a whole."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="lots")
    amount = models.BigIntegerField()
    remaining = models.BigIntegerField()
    earned_at = models.DateTimeField()
    available_at = models.DateTimeField()  # pending points become spendable here
    expires_at = models.DateTimeField(null=True, blank=True)
    # A merge moves what is left of each lot into a new lot of the survivor: the lot it carries on, so a refund of
    # the bill that earned the first still finds its points (ledger `lot_heirs`).
    moved_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                   db_index=False)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(remaining__gte=0, remaining__lte=F("amount")), name="ledger_lot_remaining_valid"),
        ]
        indexes = [
            models.Index(fields=["account", "expires_at", "id"], condition=Q(remaining__gt=0), name="ledger_open_lots"),
            models.Index(fields=["expires_at"], condition=Q(remaining__gt=0), name="ledger_lots_to_expire"),
            models.Index(fields=["moved_from"], condition=Q(moved_from__isnull=False), name="ledger_lots_moved"),
        ]


class Entry(models.Model):
    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries")
    lot = models.ForeignKey(Lot, null=True, blank=True, on_delete=models.PROTECT, related_name="entries")
    amount = models.BigIntegerField()

    class Meta:
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="ledger_entry_non_zero")]
