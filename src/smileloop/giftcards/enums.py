from django.db import models
from django.utils.translation import gettext_lazy as _


class ProgrammeKind(models.TextChoices):
    FRIEND_CARD = "friend_card", _("Friends-and-family card")
    GIFT_CARD = "gift_card", _("Gift card")


class CardStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    EXHAUSTED = "exhausted", _("Used up")
    EXPIRED = "expired", _("Expired")


class CardEventKind(models.TextChoices):
    ISSUED = "issued", _("Issued")
    HOLDER_KNOWN = "holder_known", _("Holder known")
    HOLDER_REGISTERED = "holder_registered", _("Holder registered: stays valid")
    USED = "used", _("Used")
    REFUNDED = "refunded", _("Value returned by a refund")
    EXPIRED = "expired", _("Expired")


class ReminderRecipient(models.TextChoices):
    GIVER = "giver", _("Giver (the member)")
    HOLDER = "holder", _("Holder")


class VoucherValueKind(models.TextChoices):
    FACE = "face", _("Face value")
    WHOLE_LINE = "whole_line", _("The whole line")


class VoucherStatus(models.TextChoices):
    ISSUED = "issued", _("Issued")
    REDEEMED = "redeemed", _("Redeemed")
    EXPIRED = "expired", _("Expired")
