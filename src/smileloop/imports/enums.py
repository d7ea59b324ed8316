from django.db import models
from django.utils.translation import gettext_lazy as _


class ImportKind(models.TextChoices):
    CUSTOMERS = "customers", _("Customers")
    ORDERS = "orders", _("Orders")


class BatchStatus(models.TextChoices):
    PREVIEWED = "previewed", _("Previewed")
    WRITTEN = "written", _("Written")
    REJECTED = "rejected", _("Rejected (invalid rows, nothing written)")
