from django.db import models
from django.utils.translation import gettext_lazy as _


class ImportKind(models.TextChoices):
    CUSTOMERS = "customers", _("Customers")
    ORDERS = "orders", _("Orders")


class BatchStatus(models.TextChoices):
    CHECKING = "checking", _("Being checked")
    PREVIEWED = "previewed", _("Previewed")
    IMPORTING = "importing", _("Being imported")
    WRITTEN = "written", _("Written")
    REJECTED = "rejected", _("Rejected (invalid rows, nothing written)")
    FAILED = "failed", _("Failed (the file could not be read)")
