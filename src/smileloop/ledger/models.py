"""An append-only, double-entry ledger for points, stored value, gift cards and vouchers.

Invariants (checked by `smileloop ledger check`): every transaction's entries sum to zero and use one
unit; an account's balance equals the sum of its entries; a holder account's balance equals the sum of
its lots' remaining amounts and is never negative (a database constraint). Entries are never updated or
deleted: a correction is a reversing transaction.
"""

from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from smileloop.clinics.models import Chain, Staff
from smileloop.customers.models import Customer
from smileloop.ledger.enums import SYSTEM_KINDS, AccountKind, EntryReason, Unit


class Account(models.Model):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    kind = models.CharField(max_length=20, choices=AccountKind.choices, verbose_name=_("kind"))
    unit = models.CharField(max_length=8, choices=Unit.choices, verbose_name=_("unit"))
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="accounts", verbose_name=_("customer"))
    code = models.CharField(max_length=32, null=True, blank=True,  # gift card / voucher code: the bearer holds it
                            verbose_name=_("card or voucher code"))
    balance = models.BigIntegerField(default=0, verbose_name=_("balance"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))
    closed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("closed"))

    class Meta:
        verbose_name = _("account")
        verbose_name_plural = _("accounts")
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
        owner = self.code or (f"#{self.customer_id}" if self.customer_id else "")
        return f"{self.get_kind_display()} · {owner}" if owner else str(self.get_kind_display())


class LedgerTransaction(models.Model):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    idempotency_key = models.CharField(max_length=200, verbose_name=_("idempotency key"))
    fingerprint = models.CharField(max_length=64,  # SHA-256 of the postings: a reused key with other postings is refused
                                   verbose_name=_("postings digest"))
    reason = models.CharField(max_length=16, choices=EntryReason.choices, verbose_name=_("reason"))
    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              verbose_name=_("actor"))
    source = models.CharField(max_length=100, blank=True,  # "order:123", "giftcard:45", …
                              verbose_name=_("origin"))
    memo = models.CharField(max_length=255, blank=True, verbose_name=_("memo"))
    reverses = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="reversals", verbose_name=_("reversed transaction"))
    # For a reversal: the cumulative share of `reverses` undone once this one is posted ("1/3", "1").
    reversed_share = models.CharField(max_length=40, blank=True, verbose_name=_("reversed share"))
    created_at = models.DateTimeField(db_index=True, verbose_name=_("created"))

    class Meta:
        verbose_name = _("ledger transaction")
        verbose_name_plural = _("ledger transactions")
        constraints = [models.UniqueConstraint(fields=["chain", "idempotency_key"], name="ledger_unique_key")]
        indexes = [models.Index(fields=["source"], name="ledger_tx_source")]

    def __str__(self):
        return f"#{self.pk} {self.get_reason_display()}"


class Lot(models.Model):
    """A credit to a holder account that can be spent, expires or becomes available as a whole."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="lots",
                                verbose_name=_("account"))
    amount = models.BigIntegerField(verbose_name=_("quantity"))
    remaining = models.BigIntegerField(verbose_name=_("remaining"))
    earned_at = models.DateTimeField(verbose_name=_("earned"))
    available_at = models.DateTimeField(verbose_name=_("available from"))  # pending points: spendable from here
    expires_at = models.DateTimeField(null=True, blank=True, verbose_name=_("expires"))
    # A merge moves what is left of each lot into a new lot of the survivor: the lot it carries on, so a refund of
    # the bill that earned the first still finds its points (ledger `lot_heirs`).
    moved_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                   db_index=False, verbose_name=_("moved from lot"))

    class Meta:
        verbose_name = _("credit lot")
        verbose_name_plural = _("credit lots")
        constraints = [
            models.CheckConstraint(condition=Q(remaining__gte=0, remaining__lte=F("amount")), name="ledger_lot_remaining_valid"),
        ]
        indexes = [
            models.Index(fields=["account", "expires_at", "id"], condition=Q(remaining__gt=0), name="ledger_open_lots"),
            models.Index(fields=["expires_at"], condition=Q(remaining__gt=0), name="ledger_lots_to_expire"),
            models.Index(fields=["moved_from"], condition=Q(moved_from__isnull=False), name="ledger_lots_moved"),
        ]


class Entry(models.Model):
    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries",
                                    verbose_name=_("ledger transaction"))
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries",
                                verbose_name=_("account"))
    lot = models.ForeignKey(Lot, null=True, blank=True, on_delete=models.PROTECT, related_name="entries",
                            verbose_name=_("credit lot"))
    amount = models.BigIntegerField(verbose_name=_("quantity"))

    class Meta:
        verbose_name = _("ledger entry")
        verbose_name_plural = _("ledger entries")
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="ledger_entry_non_zero")]
