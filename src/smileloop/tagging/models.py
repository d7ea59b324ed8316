"""Tag groups, tags and the tags on each patient (manual, rule and keyword), with who or what set them."""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from smileloop.clinics.models import Chain, Staff
from smileloop.core.models import TimeStampedModel
from smileloop.customers.models import Customer
from smileloop.tagging.enums import TagGroupKind, TagKind, TagSource


def _default_keyword_kinds() -> list[str]:
    return ["chat", "call"]


class TagGroup(TimeStampedModel):
    """A profile dimension (interests, value …) holding tags; `ordering` sorts groups on pages."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", db_index=False,
                              verbose_name=_("chain"))
    code = models.SlugField(_("code"), max_length=40)
    name = models.CharField(_("name"), max_length=60)
    kind = models.CharField(_("kind"), max_length=20, choices=TagGroupKind.choices)
    ordering = models.PositiveSmallIntegerField(_("ordering"), default=0)

    class Meta:
        verbose_name = _("tag group")
        verbose_name_plural = _("tag groups")
        ordering = ["ordering", "id"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "code"], name="taggroup_unique_code"),
        ]

    def __str__(self):
        return self.name


class Tag(TimeStampedModel):
    """A label a patient can carry. Manual tags are set by staff; rule tags by the segments app's job from
    `rule` (a segment rule tree stored here, evaluated there); keyword tags by the keyword scan of the
    timeline (`keywords` said at least `keyword_threshold` times in `keyword_window_days`)."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", db_index=False,
                              verbose_name=_("chain"))
    group = models.ForeignKey(TagGroup, on_delete=models.PROTECT, related_name="tags",
                              verbose_name=_("group"))
    code = models.SlugField(_("code"), max_length=40)
    name = models.CharField(_("name"), max_length=60)
    colour = models.CharField(_("colour"), max_length=7, default="#64748b")  # #rrggbb
    kind = models.CharField(_("kind"), max_length=10, choices=TagKind.choices, default=TagKind.MANUAL)
    rule = models.JSONField(_("rule"), null=True, blank=True)
    keywords = models.JSONField(_("keywords"), default=list, blank=True)
    keyword_threshold = models.PositiveSmallIntegerField(_("keyword threshold"), default=2)
    keyword_window_days = models.PositiveSmallIntegerField(_("keyword window (days)"), default=30)
    keyword_kinds = models.JSONField(_("scanned interaction kinds"), default=_default_keyword_kinds, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    description = models.CharField(_("description"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        ordering = ["group__ordering", "group_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "code"], name="tag_unique_code"),
            models.UniqueConstraint(fields=["chain", "group", "name"], name="tag_unique_name_in_group"),
            models.CheckConstraint(condition=Q(keyword_threshold__gte=1) & Q(keyword_window_days__gte=1),
                                   name="tag_keyword_bounds"),
        ]

    def __str__(self):
        return self.name


class CustomerTag(models.Model):
    """One tag on one patient: who or what set it (`source`, `set_by`), when, and why (`evidence`)."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="tags", db_index=False,
                                 verbose_name=_("customer"))
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="customer_tags", db_index=False,
                            verbose_name=_("tag"))
    # A copy of the customer's chain, for per-chain counts without a join.
    chain_id = models.BigIntegerField(verbose_name=_("chain"))
    source = models.CharField(_("source"), max_length=10, choices=TagSource.choices, default=TagSource.MANUAL)
    set_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                               verbose_name=_("set by"))
    set_at = models.DateTimeField(_("set at"))
    evidence = models.JSONField(default=dict, blank=True, verbose_name=_("grounds"))

    class Meta:
        verbose_name = _("customer tag")
        verbose_name_plural = _("customer tags")
        ordering = ["tag_id"]
        constraints = [
            # Also the index for "this patient's tags" (customer first).
            models.UniqueConstraint(fields=["customer", "tag"], name="customertag_unique"),
        ]
        # (tag, customer): a segment's EXISTS(tag = x AND customer = outer.id) and per-tag counts read the
        # index only.
        indexes = [models.Index(fields=["tag", "customer"], name="customertag_tag_customer")]

    def __str__(self):
        return f"{self.tag} #{self.customer_id}"


class KeywordHit(models.Model):
    """How many times a keyword tag's keywords were said by one patient on one day: the history the window
    test needs ("≥ 2 times in 30 days" is one SUM over these rows)."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+", db_index=False,
                                 verbose_name=_("customer"))
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="+", db_index=False,
                            verbose_name=_("tag"))
    day = models.DateField(verbose_name=_("day"))
    hits = models.PositiveIntegerField(default=0, verbose_name=_("hits"))
    counts = models.JSONField(default=dict, blank=True,  # {keyword: hits} of that day
                              verbose_name=_("hits per keyword"))
    interaction_ids = models.JSONField(default=list, blank=True,  # the messages (capped)
                                       verbose_name=_("messages"))

    class Meta:
        verbose_name = _("keyword hit")
        verbose_name_plural = _("keyword hits")
        # The unique index is the only one: the scan reads by patient (customer, tag, day range); a second
        # index would only slow its bulk inserts.
        constraints = [
            models.UniqueConstraint(fields=["customer", "tag", "day"], name="keywordhit_unique"),
        ]

    def __str__(self):
        return f"#{self.customer_id} {self.day:%Y-%m-%d} ×{self.hits}"


class KeywordScanState(models.Model):
    """Per-chain watermark of the keyword scan: every Interaction with a larger id is still to be read."""

    chain = models.OneToOneField(Chain, on_delete=models.CASCADE, related_name="+", verbose_name=_("chain"))
    last_interaction_id = models.BigIntegerField(default=0, verbose_name=_("last scanned interaction"))
    scanned_at = models.DateTimeField(null=True, blank=True, verbose_name=_("scanned"))

    class Meta:
        verbose_name = _("keyword scan state")
        verbose_name_plural = _("keyword scan states")

    def __str__(self):
        return f"#{self.chain_id} → {self.last_interaction_id}"
