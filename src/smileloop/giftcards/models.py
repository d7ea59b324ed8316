"""Gift-card programmes (the friends-and-family card 亲友储值卡), gift cards, their events and due reminders,
voucher campaigns and single-use vouchers.

The value of a card or voucher lives in the ledger, never here: a GIFT_CARD / VOUCHER account keyed by the
code (the bearer holds it), credited from PROMOTION with the card's expiry as the lot's expiry. These rows
hold the terms (exclusions copied from the programme at issue, so later edits never change a card already
given), the people (giver, holder) and the history. Invariants: a code is unique per chain across cards and
vouchers (the ledger's unique account code enforces it too); an issue is idempotent on its key.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from smileloop.clinics.models import Chain, Staff
from smileloop.core.models import TimeStampedModel
from smileloop.customers.models import Customer
from smileloop.giftcards.enums import (
    CardEventKind,
    CardStatus,
    ProgrammeKind,
    ReminderRecipient,
    VoucherStatus,
    VoucherValueKind,
)
from smileloop.ledger.models import Account
from smileloop.visits.enums import Category
from smileloop.visits.models import ServiceItem


def default_excluded_categories() -> list[str]:
    return [Category.ORAL_CARE_PRODUCT.value]


def default_reminder_days() -> list[int]:
    return [7, 30, 60, 80]


class GiftCardProgramme(TimeStampedModel):
    """A card template: face value, validity, exclusions, reminder days and the issue limit per member."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    code = models.SlugField(_("code"), max_length=40)
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=16, choices=ProgrammeKind.choices, default=ProgrammeKind.FRIEND_CARD)
    face_value_fen = models.BigIntegerField(_("face value (fen)"))
    valid_months = models.PositiveSmallIntegerField(_("valid for (months)"), default=3)
    excluded_categories = models.JSONField(_("excluded categories"), default=default_excluded_categories, blank=True)
    exclude_special_price = models.BooleanField(_("exclude special-price items"), default=True)
    reminder_days = models.JSONField(_("reminder days after issue"), default=default_reminder_days, blank=True)
    limit_per_period = models.PositiveSmallIntegerField(_("cards per member per period"), default=1)
    limit_period_months = models.PositiveSmallIntegerField(_("period (months)"), default=12)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("gift-card programme")
        verbose_name_plural = _("gift-card programmes")
        ordering = ["chain", "name"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "code"], name="giftcard_programme_unique_code"),
            models.CheckConstraint(condition=Q(face_value_fen__gt=0), name="giftcard_programme_face_positive"),
        ]

    def __str__(self):
        return self.name


class GiftCard(models.Model):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    programme = models.ForeignKey(GiftCardProgramme, on_delete=models.PROTECT, related_name="cards",
                                  verbose_name=_("gift-card programme"))
    code = models.CharField(max_length=20,  # XXXX-XXXX-XXXX, Crockford-style alphabet (no 0/O/1/I/L)
                            verbose_name=_("card number"))
    account = models.OneToOneField(Account, on_delete=models.PROTECT, related_name="+",
                                   verbose_name=_("account"))
    giver = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="giftcards_given", verbose_name=_("giver"))
    holder = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT,
                               related_name="giftcards_held", verbose_name=_("card holder"))
    face_value_fen = models.BigIntegerField(verbose_name=_("face value"))
    excluded_categories = models.JSONField(default=list, blank=True, verbose_name=_("excluded categories"))
    exclude_special_price = models.BooleanField(default=True, verbose_name=_("exclude special-price items"))
    status = models.CharField(max_length=16, choices=CardStatus.choices, default=CardStatus.ACTIVE,
                              verbose_name=_("status"))
    trigger = models.CharField(max_length=100, blank=True,  # why it was issued ("benefit 12: plan half done")
                               verbose_name=_("issued because"))
    issue_key = models.CharField(max_length=200, verbose_name=_("issue key"))
    issued_at = models.DateTimeField(verbose_name=_("issued"))
    expires_at = models.DateTimeField(null=True, blank=True,  # None once the holder registered in time
                                      verbose_name=_("expires"))
    holder_registered_at = models.DateTimeField(null=True, blank=True, verbose_name=_("holder registered"))
    issued_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                  verbose_name=_("issued by"))

    class Meta:
        verbose_name = _("gift card")
        verbose_name_plural = _("gift cards")
        ordering = ["-issued_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "code"], name="giftcard_unique_code"),
            models.UniqueConstraint(fields=["chain", "issue_key"], name="giftcard_unique_issue_key"),
        ]
        indexes = [models.Index(fields=["giver", "programme", "issued_at"], name="giftcard_giver_period"),
                   models.Index(fields=["status", "expires_at"], name="giftcard_expiry")]

    def __str__(self):
        return self.code


class GiftCardEvent(models.Model):
    """Append-only history of a card: issue, holder, each use and refund, expiry removal and expiry."""

    card = models.ForeignKey(GiftCard, on_delete=models.CASCADE, related_name="events",
                             verbose_name=_("gift card"))
    kind = models.CharField(max_length=20, choices=CardEventKind.choices, verbose_name=_("kind"))
    occurred_at = models.DateTimeField(verbose_name=_("time"))
    detail = models.CharField(max_length=255, blank=True, verbose_name=_("details"))
    data = models.JSONField(default=dict, blank=True, verbose_name=_("data"))
    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              verbose_name=_("actor"))

    class Meta:
        verbose_name = _("gift card event")
        verbose_name_plural = _("gift card events")
        ordering = ["occurred_at", "id"]


class GiftCardReminder(models.Model):
    """A reminder due on a day, to the giver or the holder; the follow-up engine turns due rows into tasks
    (it resolves the holder through the card, as the holder may become known only later)."""

    card = models.ForeignKey(GiftCard, on_delete=models.CASCADE, related_name="reminders",
                             verbose_name=_("gift card"))
    recipient = models.CharField(max_length=8, choices=ReminderRecipient.choices, verbose_name=_("recipient"))
    day = models.PositiveSmallIntegerField(verbose_name=_("days after issue"))
    due_on = models.DateField(db_index=True, verbose_name=_("reminder date"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))
    handled_at = models.DateTimeField(null=True, blank=True, verbose_name=_("handled"))
    cancelled_at = models.DateTimeField(null=True, blank=True, verbose_name=_("cancelled"))

    class Meta:
        verbose_name = _("gift card reminder")
        verbose_name_plural = _("gift card reminders")
        ordering = ["due_on", "recipient", "id"]
        constraints = [models.UniqueConstraint(fields=["card", "recipient", "day"], name="giftcard_reminder_once")]


class VoucherCampaign(TimeStampedModel):
    """A subsidised online offer (e.g. "9.9 yuan cleaning"): what the patient paid online, what it covers."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    code = models.SlugField(_("code"), max_length=40)
    name = models.CharField(_("name"), max_length=100)
    price_paid_fen = models.BigIntegerField(_("price paid online (fen)"), default=0)
    item = models.ForeignKey(ServiceItem, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                             verbose_name=_("service item"))
    category = models.CharField(_("category"), max_length=32, choices=Category.choices, blank=True)
    value_kind = models.CharField(_("value"), max_length=16, choices=VoucherValueKind.choices,
                                  default=VoucherValueKind.WHOLE_LINE)
    face_value_fen = models.BigIntegerField(
        _("face value (fen)"), default=0,
        help_text=_("Face-value vouchers: the value. Whole-line vouchers of a category: the most they cover."))
    valid_days = models.PositiveSmallIntegerField(_("valid for (days)"), default=90)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("voucher campaign")
        verbose_name_plural = _("voucher campaigns")
        ordering = ["chain", "name"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "code"], name="voucher_campaign_unique_code"),
            models.CheckConstraint(condition=Q(item__isnull=False) | ~Q(category=""),
                                   name="voucher_campaign_targets_item_or_category"),
        ]

    def __str__(self):
        return self.name


class Voucher(models.Model):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    campaign = models.ForeignKey(VoucherCampaign, on_delete=models.PROTECT, related_name="vouchers",
                                 verbose_name=_("voucher campaign"))
    code = models.CharField(max_length=20, verbose_name=_("voucher code"))
    account = models.OneToOneField(Account, on_delete=models.PROTECT, related_name="+",
                                   verbose_name=_("account"))
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="vouchers", verbose_name=_("customer"))
    value_fen = models.BigIntegerField(verbose_name=_("voucher value"))
    status = models.CharField(max_length=16, choices=VoucherStatus.choices, default=VoucherStatus.ISSUED,
                              verbose_name=_("status"))
    issue_key = models.CharField(max_length=200, verbose_name=_("issue key"))
    issued_at = models.DateTimeField(verbose_name=_("issued"))
    expires_at = models.DateTimeField(verbose_name=_("expires"))
    redeemed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("redeemed"))

    class Meta:
        verbose_name = _("voucher")
        verbose_name_plural = _("vouchers")
        ordering = ["-issued_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "code"], name="voucher_unique_code"),
            models.UniqueConstraint(fields=["chain", "issue_key"], name="voucher_unique_issue_key"),
        ]

    def __str__(self):
        return self.code
