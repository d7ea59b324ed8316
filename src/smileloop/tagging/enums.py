from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class TagGroupKind(models.TextChoices):
    """The six profile dimensions of the articles (标签/画像)."""

    BASIC = "basic", _("Basic attributes")
    INTEREST = "interest", _("Interests")
    ACTIVITY = "activity", _("Activity")
    VALUE = "value", pgettext_lazy("tag group kind", "Value")
    PURCHASE_STAGE = "purchase_stage", _("Purchase stage")
    INTERACTION = "interaction", _("Interaction")


class TagKind(models.TextChoices):
    MANUAL = "manual", _("Manual")
    RULE = "rule", _("Rule")
    KEYWORD = "keyword", _("Keyword")


class TagSource(models.TextChoices):
    """Who or what put a tag on a patient."""

    MANUAL = "manual", _("Staff")
    RULE = "rule", _("Rule")
    KEYWORD = "keyword", _("Keyword")
    API = "api", _("API")
    IMPORT = "import", _("Import")
    SYSTEM = "system", _("System")
