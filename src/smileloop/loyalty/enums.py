from django.db import models
from django.utils.translation import gettext_lazy as _


class EarnTrigger(models.TextChoices):
    """What earns points. `spend` rules are per yuan of paid spend; the others award a fixed number."""

    SPEND = "spend", _("Paid spend (per yuan)")
    REFERRAL = "referral", _("Referral")
    EVENT_CHECKIN = "event_checkin", _("Event check-in")
    REVIEW = "review", _("Review")
    PROFILE_COMPLETION = "profile_completion", _("Profile completion")
    OTHER = "other", _("Other (staff award)")


class SpecialPrice(models.TextChoices):
    """Which lines a spend rule matches by the item's special-price flag."""

    ANY = "any", _("Any item")
    REGULAR = "regular", _("Regular-price items only")
    SPECIAL = "special", _("Special-price items only")


class ShareMode(models.TextChoices):
    """How a family member's spend from the holder's wallet was consented."""

    STANDING = "standing", _("Standing consent")
    PER_USE = "per_use", _("Consent for this use")


class UseKind(models.TextChoices):
    USE = "use", _("Used")
    REVERSAL = "reversal", _("Reversed (refund)")


class PurchaseStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    EXPIRED = "expired", _("Expired")
    CANCELLED = "cancelled", _("Cancelled")


class RefundRule(models.TextChoices):
    """How a cancelled package's refund is computed (loyalty README, "Cancelling a package"): the price less what
    was used, valued at list price (the clinics' usual terms), or pro rata over the units granted (the package's
    own price: when the clinic is at fault)."""

    LIST_PRICE = "list_price", _("Price less what was used, at list price")
    PRO_RATA = "pro_rata", _("Pro rata: the unused share of the price")
