from django.db import models
from django.utils.translation import gettext_lazy as _


class Category(models.TextChoices):
    EXAM = "exam", _("Exam")
    CLEANING = "cleaning", _("Cleaning")
    FILLING = "filling", _("Filling")
    EXTRACTION = "extraction", _("Extraction")
    IMPLANT = "implant", _("Implant")
    ORTHODONTICS = "orthodontics", _("Orthodontics")
    WHITENING = "whitening", _("Whitening")
    PAEDIATRIC = "paediatric", _("Paediatric")
    PROSTHODONTICS = "prosthodontics", _("Prosthodontics")
    PERIODONTICS = "periodontics", _("Periodontics")
    ORAL_CARE_PRODUCT = "oral_care_product", _("Oral-care product")


class AppointmentStatus(models.TextChoices):
    BOOKED = "booked", _("Booked")
    ARRIVED = "arrived", _("Arrived")
    COMPLETED = "completed", _("Completed")
    NO_SHOW = "no_show", _("No-show")
    CANCELLED = "cancelled", _("Cancelled")


class OrderStatus(models.TextChoices):
    PAID = "paid", _("Paid")
    PARTIALLY_REFUNDED = "partially_refunded", _("Partially refunded")
    REFUNDED = "refunded", _("Refunded")


class PaymentMethod(models.TextChoices):
    CASH = "cash", _("Cash")
    WECHAT_PAY = "wechat_pay", _("WeChat Pay")
    ALIPAY = "alipay", _("Alipay")
    BANK_CARD = "bank_card", _("Bank card")
    INSURANCE = "insurance", _("Insurance")
    WALLET = "wallet", _("Stored value")
    # What a checkout bill's other tenders paid (checkout records them as payments of the order): not a till's
    # method, so the cashier's choices, top-ups and refunds leave them out (TENDER_METHODS).
    GIFT_CARD = "gift_card", _("Gift card")
    VOUCHER = "voucher", _("Voucher")
    POINTS = "points", _("Points")
    OTHER = "other", _("Other")


# The value a bill's tenders paid, not money changing hands at the till.
TENDER_METHODS = (PaymentMethod.WALLET, PaymentMethod.GIFT_CARD, PaymentMethod.VOUCHER, PaymentMethod.POINTS)
# The tenders only a checkout bill takes: a package sale or top-up, paid in money or stored value, refuses them.
VALUE_TENDERS = tuple(m for m in TENDER_METHODS if m != PaymentMethod.WALLET)


class PlanStatus(models.TextChoices):
    ACTIVE = "active", _("In progress")
    COMPLETED = "completed", _("Completed")
    ABANDONED = "abandoned", _("Abandoned")


class StepStatus(models.TextChoices):
    PLANNED = "planned", _("Planned")
    DONE = "done", _("Done")
    CANCELLED = "cancelled", _("Cancelled")
