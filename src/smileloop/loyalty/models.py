"""Loyalty: points earn rules, redeem terms and the gift catalogue; wallet top-ups (principal + bonus) and
family wallet-share uses; lifecycle service packages with per-person entitlements.

Money and points live in the ledger (smileloop.ledger); these tables hold the business configuration and
the records that link ledger transactions to what happened (a top-up, a refund, a gift exchange).
Entitlement counts are not money: they are counted here. A grant is what a covered person received for a
period; uses are append-only (a refund adds a reversal row); remaining = quantity − uses + reversals − expired.

Database invariants: gift stock never negative; one idempotency key per chain for every record kind;
a use is reversed at most once; an entitlement names a category or an item.
"""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from smileloop.clinics.models import Chain, Clinic, Staff
from smileloop.core.bounds import within
from smileloop.core.models import TimeStampedModel
from smileloop.customers.models import Customer
from smileloop.ledger.models import LedgerTransaction
from smileloop.loyalty.enums import EarnTrigger, PurchaseStatus, RefundRule, ShareMode, SpecialPrice, UseKind
from smileloop.visits.enums import Category, PaymentMethod
from smileloop.visits.models import OrderLine, ServiceItem

# --- bounds of the configuration ---------------------------------------------------------------------------
# Long enough for any real programme, small enough that the dates they lead to stay far from year 9999 and that
# amounts times quantities or rates stay far inside a bigint. The services refuse values outside them (naming the
# field), the staff forms show them beside the field, the admin keeps them through the validators.

MONTHS = (1, 1200)  # 100 years
DAYS = (0, 3650)  # 10 years (a PostgreSQL smallint holds 32767)
FEN = (0, 10**10)  # 100 million yuan
POINTS = (0, 1_000_000)  # per award, or per gift
RATE = (Decimal(0), Decimal(100))  # points per yuan of spend
STOCK = (0, 1_000_000)
PEOPLE = (1, 100)
QUANTITY = (1, 1000)
AGE = (1, 150)
REDEEM_RATE = (1, 100_000)  # points worth one yuan
SHARE_BP = (0, 10000)


# --- points ----------------------------------------------------------------------------------------------


def _unique_refusal(instance, unique_check, fields: tuple, message) -> ValidationError:
    """A configuration row is unique in its chain by one field: a duplicate is refused with `message` (naming what
    the form shows), not Django's "Earn rule with this Chain and Code already exists", which names the chain no
    form shows and the model in English ("包含 Chain 和 编码 的 Earn rule 已经存在。")."""
    if tuple(unique_check) == fields:
        return ValidationError(message, code="unique")
    return super(type(instance), instance).unique_error_message(type(instance), unique_check)


class EarnRule(TimeStampedModel):
    """A points rule. Spend rules: `points_per_yuan` of paid spend on matching lines (the most specific
    active rule wins: category + special-price flag > category > special-price flag > any), times the tier
    multiplier. Fixed rules (referral, check-in, review, profile): `points` per award, found by `code`."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    code = models.SlugField(_("code"), max_length=50, help_text=_("Stable name services use, e.g. referral."))
    name = models.CharField(_("name"), max_length=100)
    trigger = models.CharField(_("earned by"), max_length=20, choices=EarnTrigger.choices)
    category = models.CharField(_("category"), max_length=32, choices=Category.choices, blank=True,
                                help_text=_("Spend rules: empty = every category."))
    special_price = models.CharField(_("special-price items"), max_length=8, choices=SpecialPrice.choices,
                                     default=SpecialPrice.ANY)
    points_per_yuan = models.DecimalField(_("points per yuan"), max_digits=6, decimal_places=2, default=0,
                                          help_text=_("Spend rules: 1 = one point per yuan paid; 0 = no points."),
                                          validators=within(RATE))
    points = models.PositiveIntegerField(_("points per award"), default=0, help_text=_("Fixed rules."),
                                         validators=within(POINTS))
    pending_days = models.PositiveSmallIntegerField(_("pending days"), default=0,
                                                    help_text=_("Points become spendable this many days later."),
                                                    validators=within(DAYS))
    validity_months = models.PositiveSmallIntegerField(_("validity in months"), null=True, blank=True,
                                                       help_text=_("Points expire this long after earning; "
                                                                   "empty = never."),
                                                       validators=within(MONTHS))
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("earn rule")
        verbose_name_plural = _("earn rules")
        ordering = ["chain", "trigger", "code"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "code"], name="loyalty_earn_rule_unique_code"),
            models.CheckConstraint(condition=Q(points_per_yuan__gte=0), name="loyalty_earn_rule_rate_non_negative"),
        ]

    def __str__(self):
        return self.name

    def unique_error_message(self, model_class, unique_check):
        return _unique_refusal(self, unique_check, ("chain", "code"),
                               _("Another earn rule of this chain has this code."))

    def clean(self):
        """Codes are lower case: services find a fixed rule by its code ("referral"), and one saved as "Referral" was
        never found. Normalised before the unique check, so "Referral" is refused beside an existing "referral"
        (a rule of another case saved before this is refused by `earn_rule_errors`)."""
        super().clean()
        self.code = (self.code or "").lower()

    def save(self, *args, **kwargs):
        # Every writer (the demo's update_or_create, a factory) stores the lower-case code, as the forms do: the
        # unique (chain, code) constraint then refuses a twin of another case too.
        self.code = (self.code or "").lower()
        return super().save(*args, **kwargs)


class RedeemSettings(TimeStampedModel):
    """Points as a bill deduction: `points_per_yuan` points = 1 yuan, at most `max_share_bp` of a bill."""

    chain = models.OneToOneField(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    points_per_yuan = models.PositiveIntegerField(_("points per yuan"), default=100, validators=within(REDEEM_RATE))
    max_share_bp = models.PositiveIntegerField(
        _("cap (basis points of a bill)"), default=1000, validators=within(SHARE_BP),
        # xgettext:no-python-format
        help_text=_("1000 = at most 10% of a bill."))
    is_enabled = models.BooleanField(_("redeeming enabled"), default=True)

    class Meta:
        verbose_name = _("redeem terms")
        verbose_name_plural = _("redeem terms")
        constraints = [
            models.CheckConstraint(condition=Q(points_per_yuan__gte=1, max_share_bp__lte=10000),
                                   name="loyalty_redeem_terms_valid"),
        ]

    def __str__(self):
        return str(self._meta.verbose_name)


class Gift(TimeStampedModel):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True)
    points_price = models.PositiveIntegerField(_("price in points"), validators=within((1, POINTS[1])))
    stock = models.IntegerField(_("stock"), default=0, validators=within(STOCK))
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("gift")
        verbose_name_plural = _("gifts")
        ordering = ["chain", "points_price", "name"]
        constraints = [
            models.CheckConstraint(condition=Q(stock__gte=0), name="loyalty_gift_stock_non_negative"),
            models.CheckConstraint(condition=Q(points_price__gte=1), name="loyalty_gift_price_positive"),
            models.UniqueConstraint(fields=["chain", "name"], name="loyalty_gift_unique_name"),
        ]

    def __str__(self):
        return self.name

    def unique_error_message(self, model_class, unique_check):
        return _unique_refusal(self, unique_check, ("chain", "name"),
                               _("Another gift of this chain has this name."))


class GiftExchange(models.Model):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    key = models.CharField(max_length=200, verbose_name=_("idempotency key"))
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="gift_exchanges",
                                 verbose_name=_("customer"))
    gift = models.ForeignKey(Gift, on_delete=models.PROTECT, related_name="exchanges", verbose_name=_("gift"))
    quantity = models.PositiveIntegerField(verbose_name=_("quantity"))
    points = models.PositiveIntegerField(verbose_name=_("points"))
    transaction = models.OneToOneField(LedgerTransaction, on_delete=models.PROTECT, related_name="+",
                                       verbose_name=_("ledger transaction"))
    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              verbose_name=_("actor"))
    created_at = models.DateTimeField(verbose_name=_("exchanged"))

    class Meta:
        verbose_name = _("gift exchange")
        verbose_name_plural = _("gift exchanges")
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["chain", "key"], name="loyalty_gift_exchange_unique_key")]

    def __str__(self):
        return f"{self.gift} ×{self.quantity}"


# --- wallet ----------------------------------------------------------------------------------------------


class TopupBonusRule(TimeStampedModel):
    """Top up at least `min_topup_fen` in one go, get `bonus_fen` (the highest threshold reached applies)."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    min_topup_fen = models.BigIntegerField(_("minimum top-up (fen)"), validators=within((1, FEN[1])))
    bonus_fen = models.BigIntegerField(_("bonus (fen)"), validators=within(FEN))
    validity_months = models.PositiveSmallIntegerField(_("bonus validity in months"), null=True, blank=True,
                                                       help_text=_("Empty = the bonus never expires."),
                                                       validators=within(MONTHS))
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("top-up bonus rule")
        verbose_name_plural = _("top-up bonus rules")
        ordering = ["chain", "min_topup_fen"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "min_topup_fen"], name="loyalty_bonus_rule_unique_threshold"),
            models.CheckConstraint(condition=Q(min_topup_fen__gt=0, bonus_fen__gte=0),
                                   name="loyalty_bonus_rule_valid"),
        ]

    def __str__(self):
        return f"≥{self.min_topup_fen} → {self.bonus_fen}"

    @property
    def bonus_exceeds_minimum(self) -> bool:
        """A bonus above the top-up it rewards: refused on save (`topup_bonus_rule_errors`) and at top-up time
        (`BonusRuleInvalid`); a row saved before that check is flagged on the settings page and in the admin."""
        return self.bonus_fen > self.min_topup_fen

    def unique_error_message(self, model_class, unique_check):
        return _unique_refusal(self, unique_check, ("chain", "min_topup_fen"),
                               _("Another top-up bonus rule of this chain has this minimum top-up."))


class Topup(models.Model):
    """One top-up: principal (money received) and bonus (promotion), each its own ledger transaction."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    key = models.CharField(max_length=200, verbose_name=_("idempotency key"))
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="topups",
                                 verbose_name=_("customer"))
    clinic = models.ForeignKey(Clinic, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                               verbose_name=_("clinic"))
    method = models.CharField(max_length=16, choices=PaymentMethod.choices, verbose_name=_("payment method"))
    amount_fen = models.BigIntegerField(verbose_name=_("amount"))
    bonus_fen = models.BigIntegerField(default=0, verbose_name=_("bonus"))
    bonus_rule = models.ForeignKey(TopupBonusRule, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", verbose_name=_("bonus rule"))
    principal_transaction = models.OneToOneField(LedgerTransaction, on_delete=models.PROTECT,
                                                 related_name="+", verbose_name=_("principal transaction"))
    bonus_transaction = models.OneToOneField(LedgerTransaction, null=True, blank=True, on_delete=models.PROTECT,
                                             related_name="+", verbose_name=_("bonus transaction"))
    refunded_fen = models.BigIntegerField(default=0, verbose_name=_("refunded amount"))
    bonus_forfeited_fen = models.BigIntegerField(default=0, verbose_name=_("bonus forfeited"))
    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              verbose_name=_("actor"))
    created_at = models.DateTimeField(db_index=True, verbose_name=_("topped up"))

    class Meta:
        verbose_name = _("stored-value top-up")
        verbose_name_plural = _("stored-value top-ups")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "key"], name="loyalty_topup_unique_key"),
            models.CheckConstraint(condition=Q(amount_fen__gt=0, bonus_fen__gte=0, refunded_fen__gte=0,
                                               refunded_fen__lte=models.F("amount_fen"),
                                               bonus_forfeited_fen__lte=models.F("bonus_fen")),
                                   name="loyalty_topup_amounts_valid"),
        ]

    def __str__(self):
        return f"#{self.pk} {timezone.localtime(self.created_at):%Y-%m-%d}"

    @property
    def refundable_fen(self) -> int:
        return self.amount_fen - self.refunded_fen


class TopupRefund(models.Model):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    key = models.CharField(max_length=200, verbose_name=_("idempotency key"))
    topup = models.ForeignKey(Topup, on_delete=models.PROTECT, related_name="refunds",
                              verbose_name=_("top-up record"))
    amount_fen = models.BigIntegerField(verbose_name=_("amount"))
    bonus_forfeited_fen = models.BigIntegerField(default=0, verbose_name=_("bonus forfeited"))
    principal_transaction = models.OneToOneField(LedgerTransaction, on_delete=models.PROTECT,
                                                 related_name="+", verbose_name=_("principal transaction"))
    bonus_transaction = models.OneToOneField(LedgerTransaction, null=True, blank=True, on_delete=models.PROTECT,
                                             related_name="+", verbose_name=_("bonus transaction"))
    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              verbose_name=_("actor"))
    created_at = models.DateTimeField(verbose_name=_("refund time"))

    class Meta:
        verbose_name = _("top-up refund")
        verbose_name_plural = _("top-up refunds")
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["chain", "key"], name="loyalty_topup_refund_unique_key")]

    def __str__(self):
        return f"#{self.topup_id} {timezone.localtime(self.created_at):%Y-%m-%d}"


class WalletShareUse(models.Model):
    """A family member's spend from the holder's wallet (or a family transfer), with the consent it relied on:
    the holder's standing consent, or a per-use consent recorded now (who recorded it, when, its token)."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    holder = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+",
                               verbose_name=_("card holder"))
    payer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+", verbose_name=_("payer"))
    transaction = models.OneToOneField(LedgerTransaction, on_delete=models.PROTECT, related_name="+",
                                       verbose_name=_("ledger transaction"))
    amount_fen = models.BigIntegerField(verbose_name=_("amount"))
    mode = models.CharField(max_length=16, choices=ShareMode.choices, verbose_name=_("consent mode"))
    consent_token = models.CharField(max_length=100, blank=True, verbose_name=_("consent token"))
    source = models.CharField(max_length=100, blank=True,  # "order:123" for a spend, "transfer" for a transfer
                              verbose_name=_("origin"))
    consented_at = models.DateTimeField(verbose_name=_("consent given"))
    recorded_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                    verbose_name=_("recorded by"))

    class Meta:
        verbose_name = _("family wallet use")
        verbose_name_plural = _("family wallet uses")
        ordering = ["-consented_at", "-id"]

    def __str__(self):
        return f"#{self.holder_id} → #{self.payer_id} {timezone.localtime(self.consented_at):%Y-%m-%d}"


# --- lifecycle service packages ------------------------------------------------------------------------


class Package(TimeStampedModel):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True)
    price_fen = models.BigIntegerField(_("price (fen)"), validators=within(FEN))
    validity_months = models.PositiveSmallIntegerField(_("period in months"), default=12, validators=within(MONTHS))
    max_covered = models.PositiveSmallIntegerField(_("covered persons at most"), null=True, blank=True,
                                                   help_text=_("Empty = the whole household."),
                                                   validators=within(PEOPLE))
    # A sale taken at the desk is a bill: one line of this catalogue item at the package's price, with its
    # payment, so the money is in the clinic's revenue and the holder's spend like any other bill.
    item_code = models.CharField(_("billed as (item code)"), max_length=32, blank=True,
                                 help_text=_("The catalogue item a sale's bill shows, at the package's price. "
                                             "Needed to take payment for a sale."))
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("service package")
        verbose_name_plural = _("service packages")
        ordering = ["chain", "name"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "name"], name="loyalty_package_unique_name"),
            models.CheckConstraint(condition=Q(price_fen__gte=0, validity_months__gte=1),
                                   name="loyalty_package_valid"),
        ]

    def __str__(self):
        return self.name

    def unique_error_message(self, model_class, unique_check):
        return _unique_refusal(self, unique_check, ("chain", "name"),
                               _("Another package of this chain has this name."))


class PackageEntitlement(models.Model):
    """`quantity` uses per covered person per period of a service category or one item code."""

    package = models.ForeignKey(Package, on_delete=models.CASCADE, related_name="entitlements",
                                verbose_name=_("service package"))
    label = models.CharField(_("label"), max_length=100)
    category = models.CharField(_("category"), max_length=32, choices=Category.choices, blank=True)
    item_code = models.CharField(_("item code"), max_length=32, blank=True)
    quantity = models.PositiveSmallIntegerField(_("quantity per person per period"), validators=within(QUANTITY))
    max_age = models.PositiveSmallIntegerField(_("only under this age"), null=True, blank=True,
                                               help_text=_("12 = children under 12 only. Empty = everyone."),
                                               validators=within(AGE))

    class Meta:
        verbose_name = _("package entitlement")
        verbose_name_plural = _("package entitlements")
        ordering = ["package", "id"]
        constraints = [
            models.CheckConstraint(condition=~Q(category="") | ~Q(item_code=""),
                                   name="loyalty_entitlement_names_category_or_item"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="loyalty_entitlement_quantity_positive"),
        ]

    def __str__(self):
        return self.label


class PackagePurchase(models.Model):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    key = models.CharField(max_length=200, verbose_name=_("idempotency key"))
    package = models.ForeignKey(Package, on_delete=models.PROTECT, related_name="purchases",
                                verbose_name=_("service package"))
    holder = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="package_purchases",
                               verbose_name=_("buyer"))
    price_fen = models.BigIntegerField(verbose_name=_("price"))
    period_start = models.DateTimeField(verbose_name=_("period start"))
    period_end = models.DateTimeField(db_index=True, verbose_name=_("period end"))
    status = models.CharField(max_length=16, choices=PurchaseStatus.choices, default=PurchaseStatus.ACTIVE,
                              verbose_name=_("status"))
    expired_at = models.DateTimeField(null=True, blank=True, verbose_name=_("expiry processed"))
    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              verbose_name=_("actor"))
    created_at = models.DateTimeField(verbose_name=_("purchased"))
    # The bill of a sale paid at the desk (null: paid elsewhere, e.g. a POS that records its own order).
    order = models.ForeignKey("visits.Order", null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+", verbose_name=pgettext_lazy("model name", "order"))

    class Meta:
        verbose_name = _("package purchase")
        verbose_name_plural = _("package purchases")
        ordering = ["-period_start", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "key"], name="loyalty_purchase_unique_key"),
            models.CheckConstraint(condition=Q(period_end__gt=models.F("period_start")),
                                   name="loyalty_purchase_period_valid"),
        ]

    def __str__(self):
        start, end = timezone.localtime(self.period_start), timezone.localtime(self.period_end)
        return f"#{self.pk} {start:%Y-%m-%d}–{end:%Y-%m-%d}"


class PackageCover(models.Model):
    purchase = models.ForeignKey(PackagePurchase, on_delete=models.CASCADE, related_name="covers",
                                 verbose_name=_("package purchase"))
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="package_covers",
                                 verbose_name=_("covered person"))

    class Meta:
        verbose_name = _("package cover")
        verbose_name_plural = _("package covers")
        constraints = [models.UniqueConstraint(fields=["purchase", "customer"], name="loyalty_cover_once")]


class EntitlementGrant(models.Model):
    """What one covered person received for the purchase's period: a snapshot of the package's entitlement
    (editing the package later does not change what was sold). Expiry marks the unused rest."""

    purchase = models.ForeignKey(PackagePurchase, on_delete=models.CASCADE, related_name="grants",
                                 verbose_name=_("package purchase"))
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="entitlement_grants",
                                 verbose_name=_("covered person"))
    entitlement = models.ForeignKey(PackageEntitlement, null=True, on_delete=models.SET_NULL,
                                    related_name="+", verbose_name=_("package entitlement"))
    label = models.CharField(max_length=100, verbose_name=_("label"))
    category = models.CharField(max_length=32, choices=Category.choices, blank=True,
                                verbose_name=_("category"))
    item_code = models.CharField(max_length=32, blank=True, verbose_name=_("item code"))
    quantity = models.PositiveSmallIntegerField(verbose_name=_("quantity"))
    max_age = models.PositiveSmallIntegerField(null=True, blank=True, verbose_name=_("only under this age"))
    expired_at = models.DateTimeField(null=True, blank=True, verbose_name=_("expiry processed"))
    expired_quantity = models.PositiveSmallIntegerField(default=0, verbose_name=_("expired quantity"))

    class Meta:
        verbose_name = _("entitlement grant")
        verbose_name_plural = _("entitlement grants")
        ordering = ["purchase", "id"]
        indexes = [models.Index(fields=["customer", "expired_at"], name="loyalty_grant_customer")]

    def __str__(self):
        return f"{self.label} ×{self.quantity}"


class EntitlementUse(models.Model):
    """Append-only: a use of one entitlement at a visit (against the order line), or its reversal."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    key = models.CharField(max_length=200, verbose_name=_("idempotency key"))
    grant = models.ForeignKey(EntitlementGrant, on_delete=models.PROTECT, related_name="uses",
                              verbose_name=_("entitlement grant"))
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="entitlement_uses",
                                 verbose_name=_("customer"))
    item = models.ForeignKey(ServiceItem, on_delete=models.PROTECT, related_name="+", verbose_name=_("item"))
    order_line = models.ForeignKey(OrderLine, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", verbose_name=_("order line"))
    kind = models.CharField(max_length=10, choices=UseKind.choices, default=UseKind.USE,
                            verbose_name=_("kind"))
    reverses = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="reversal", verbose_name=_("reversed use"))
    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              verbose_name=_("actor"))
    used_at = models.DateTimeField(verbose_name=_("used"))

    class Meta:
        verbose_name = _("entitlement use")
        verbose_name_plural = _("entitlement uses")
        ordering = ["-used_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "key"], name="loyalty_use_unique_key"),
            models.CheckConstraint(condition=Q(kind="use", reverses__isnull=True) | Q(kind="reversal",
                                                                                   reverses__isnull=False),
                                   name="loyalty_use_reversal_points_back"),
        ]

    def __str__(self):
        return f"{timezone.localtime(self.used_at):%Y-%m-%d} {self.get_kind_display()}"


class PackageCancellation(models.Model):
    """A package purchase ended before its period (one per purchase; a fact, never edited): the rule and amount of
    the refund, what had been used, who and why. The purchase's status says it is cancelled; its grants and uses
    stay as they were (history), and no entitlement of it can be redeemed any more. The money went back as refunds of
    the purchase's bill (`refunds`, one per payment method), which lower revenue and spend like any refund."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    key = models.CharField(max_length=200, verbose_name=_("idempotency key"))
    purchase = models.OneToOneField(PackagePurchase, on_delete=models.PROTECT, related_name="cancellation",
                                    verbose_name=_("package purchase"))
    rule = models.CharField(_("refund rule"), max_length=16, choices=RefundRule.choices)
    # What the rule gives (never below zero, never more than is left to refund of the bill), and what was refunded:
    # as much or less (staff may refund less, with the reason); 0 for a purchase sold without a bill here.
    computed_fen = models.BigIntegerField(_("refund by the rule (fen)"))
    refund_fen = models.BigIntegerField(_("refunded (fen)"))
    used_value_fen = models.BigIntegerField(_("value of what was used (fen)"))
    units_granted = models.PositiveIntegerField(verbose_name=_("units granted"))
    units_used = models.PositiveIntegerField(verbose_name=_("units used"))
    method = models.CharField(max_length=16, choices=PaymentMethod.choices, blank=True,
                              help_text=_("Empty: back to the methods that paid the bill."),
                              verbose_name=_("refund method"))
    refunds = models.ManyToManyField("visits.Refund", blank=True, related_name="+", verbose_name=_("refunds"))
    reason = models.CharField(_("reason"), max_length=255)
    # Per covered person and entitlement: granted, used, left; per use: the item and the value counted.
    detail = models.JSONField(default=dict, verbose_name=_("details"))
    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              verbose_name=_("actor"))
    created_at = models.DateTimeField(verbose_name=_("cancelled"))

    class Meta:
        verbose_name = _("package cancellation")
        verbose_name_plural = _("package cancellations")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "key"], name="loyalty_cancellation_unique_key"),
            models.CheckConstraint(condition=Q(computed_fen__gte=0, refund_fen__gte=0, used_value_fen__gte=0,
                                               refund_fen__lte=models.F("computed_fen")),
                                   name="loyalty_cancellation_amounts_valid"),
        ]

    def __str__(self):
        return f"#{self.purchase_id} {self.get_rule_display()}"
