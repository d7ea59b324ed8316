"""One patient pool: Customer (lead or patient), identities, households, consents, timeline, merges."""

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from smileloop.clinics.models import Chain, Clinic, Staff
from smileloop.core.indexes import CoveringIndex
from smileloop.core.models import HistoryModel, TimeStampedModel
from smileloop.customers.enums import (
    Channel,
    ConsentPurpose,
    Gender,
    IdentityKind,
    InteractionKind,
    Relation,
    Stage,
)


class Customer(TimeStampedModel):
    """One person. A merged record stays as a tombstone pointing at its survivor (`merged_into`)."""

    # Foreign keys covered by a composite index below skip their own index (fewer indexes = faster bulk loads).
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="customers", db_index=False,
                              verbose_name=_("chain"))
    name = models.CharField(_("name"), max_length=50)
    mobile = models.CharField(_("mobile"), max_length=20, null=True, blank=True)  # E.164
    mobile_tail = models.CharField(max_length=4, blank=True, default="", verbose_name=_("phone tail"))
    gender = models.CharField(_("gender"), max_length=1, choices=Gender.choices, default=Gender.UNKNOWN)
    birthday = models.DateField(_("birthday"), null=True, blank=True)
    address = models.CharField(_("address"), max_length=255, blank=True)
    community = models.CharField(_("community"), max_length=100, blank=True)
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True,
                                   verbose_name=_("latitude"))
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True,
                                    verbose_name=_("longitude"))
    home_clinic = models.ForeignKey(Clinic, null=True, blank=True, on_delete=models.SET_NULL, db_index=False,
                                    related_name="customers", verbose_name=_("home clinic"))
    consultant = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, db_index=False,
                                   related_name="customers",  # customer_consultant
                                   verbose_name=_("consultant"))
    stage = models.CharField(_("stage"), max_length=16, choices=Stage.choices, default=Stage.LEAD)
    # Lifecycle bookkeeping, written only by customers.services.customer_stage_advance and lifecycle's
    # set-based derive/job: the highest progress stage ever reached (where a dormant or lost customer
    # returns to), the stage before the last change and when it changed.
    stage_reached = models.CharField(_("highest stage reached"), max_length=16, choices=Stage.choices,
                                     default=Stage.LEAD, db_default=Stage.LEAD)
    stage_prev = models.CharField(max_length=16, blank=True, default="", db_default="",
                                  verbose_name=_("previous stage"))
    stage_changed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("stage changed"))
    notes = models.TextField(_("notes"), blank=True)

    first_touch_channel = models.CharField(_("source"), max_length=32, choices=Channel.choices, blank=True)
    first_touch_campaign = models.CharField(max_length=100, blank=True,
                                            verbose_name=_("first-touch campaign"))
    first_touch_staff = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                          db_index=False, verbose_name=_("first-touch staff member"))
    first_touch_at = models.DateTimeField(null=True, blank=True, verbose_name=_("first touch"))
    last_touch_channel = models.CharField(max_length=32, choices=Channel.choices, blank=True,
                                          verbose_name=_("last-touch channel"))
    last_touch_campaign = models.CharField(max_length=100, blank=True, verbose_name=_("last-touch campaign"))
    last_touch_staff = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                         db_index=False, verbose_name=_("last-touch staff member"))
    last_touch_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last touch"))

    # Maintained by the visits services (set-based updates), so lists and segments need no joins.
    first_visit_at = models.DateTimeField(null=True, blank=True, verbose_name=_("first visit"))
    last_visit_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last visit"))
    # Arrived or completed appointments, plus the days with a paid bill and no such appointment (walk-ins).
    visit_count = models.PositiveIntegerField(default=0, verbose_name=_("visits"))
    lifetime_spend_fen = models.BigIntegerField(default=0, verbose_name=_("lifetime spend"))

    # Almost always NULL: indexed only where set (customer_merged_into), so a new person writes no entry.
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                    db_index=False, verbose_name=_("merged into"))
    # Set once by customers.privacy.customer_erase (PIPL art. 47): the person's personal information is gone and the
    # row stays as an anonymous record that keeps its bills, plans and balances. Almost always NULL: indexed only
    # where set (customer_erased), so segments and follow-ups exclude the few erased people with one small read.
    erased_at = models.DateTimeField(_("personal information erased"), null=True, blank=True)

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = pgettext_lazy("model name", "customers")
        ordering = ["-id"]
        indexes = [
            # Phone-tail search; and, with the name and the scope's columns, the "same name and phone tail"
            # duplicate groups (customers.selectors.merge_candidates_list) as one ordered walk of this index that
            # stops at the page of groups, instead of grouping the whole chain (2.4 s at 1.1M customers on SQLite).
            CoveringIndex(fields=["chain", "mobile_tail", "name"], name="customer_mobile_tail",
                          include=["merged_into", "home_clinic", "consultant"]),
            # Name-prefix search reads the matching ids from here alone (index-only), then the newest 20 by
            # primary key (customers.selectors.customer_search): at 1M customers a common two-character prefix
            # no longer walks ~200k newer rows (87.7 → 1.0 ms for 王静). With the birthday the "same name and
            # birthday" duplicate groups are an ordered walk too (2.9 s → 13 ms chain-wide at 1.1M on SQLite).
            CoveringIndex(fields=["chain", "name", "birthday"], name="customer_name",
                          include=["id", "merged_into", "home_clinic", "consultant"]),
            # A clinic's merge-candidate groupings (name + birthday, phone tail + name) read the clinic's entries
            # here alone, not the whole chain's name or tail index (customers.selectors._duplicate_keys).
            CoveringIndex(fields=["home_clinic", "stage"], name="customer_clinic_stage",
                          include=["chain", "merged_into", "name", "birthday", "mobile_tail"]),
            # Source filters, and the lifecycle funnel: its one GROUP BY (source, stage, highest stage, clinic)
            # reads this index alone, in group order, with the scope's columns in it (chain-wide at 56k customers
            # on SQLite 500 → 30 ms; it visited every customer row through the name index).
            CoveringIndex(fields=["chain", "first_touch_channel", "stage", "stage_reached", "home_clinic"],
                          name="customer_source", include=["merged_into", "consultant"]),
            # "no visit since <day>": the dormant playbook, recency segments and the dormant/lost job read a
            # day's range of last visits instead of the whole chain. The included columns let "dormant and
            # spent ≥ X" segments (lifetime spend bounds any window's spend) run as an index-only scan: at 1M
            # customers the heap visits of ~200k dormant patients were most of its time.
            CoveringIndex(fields=["chain", "last_visit_at"], name="customer_last_visit",
                         include=["id", "lifetime_spend_fen", "merged_into"]),
            # "within N km of a clinic": the bounding box on latitude narrows to the clinic's neighbourhood. Only
            # people with coordinates are in it (a distance condition requires them), so an imported or API-made
            # person without any writes no entry; the same for the owning consultant, whom a lead rarely has yet.
            models.Index(fields=["chain", "latitude", "longitude"], name="customer_geo",
                         condition=Q(latitude__isnull=False)),
            # With the home clinic: a clinic staff member's search finds the people they own in *other* clinics
            # from here alone (customers.selectors.customer_search).
            CoveringIndex(fields=["consultant", "home_clinic"], name="customer_consultant", include=["id"],
                          condition=Q(consultant__isnull=False)),
            models.Index(fields=["merged_into"], name="customer_merged_into", condition=Q(merged_into__isnull=False)),
            models.Index(fields=["chain", "erased_at"], name="customer_erased", condition=Q(erased_at__isnull=False)),
        ]
        constraints = [
            models.UniqueConstraint(fields=["chain", "mobile"], condition=Q(mobile__isnull=False, merged_into__isnull=True),
                                    name="customer_unique_mobile"),
        ]

    def __str__(self):
        return self.name

    @property
    def is_merged(self) -> bool:
        return self.merged_into_id is not None

    @property
    def is_erased(self) -> bool:
        return self.erased_at is not None


class CustomerSearchKey(models.Model):
    """Pinyin keys for search: initials ('zs') and full pinyin ('zhangsan'), one row per reading."""

    INITIALS = "i"
    FULL = "p"
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="search_keys",
                                 verbose_name=_("customer"))
    chain_id = models.BigIntegerField(verbose_name=_("chain"))
    # Copy of the customer's home clinic, so a clinic-scoped search filters inside the index instead of
    # visiting every chain-wide match (kept in step by the customers services).
    home_clinic_id = models.BigIntegerField(null=True, blank=True, verbose_name=_("home clinic"))
    kind = models.CharField(max_length=1, verbose_name=_("kind"))
    value = models.CharField(max_length=64, verbose_name=_("pinyin reading"))

    class Meta:
        # customer_id last: a search reads only the index (no visit to the key rows to learn whose they are).
        # Chain-wide staff search by (chain, kind, value); clinic staff by (chain, clinic, kind, value), so
        # a one-clinic search reads only its clinic's keys (1/20 of them at 20 clinics).
        verbose_name = _("search key")
        verbose_name_plural = _("search keys")
        indexes = [models.Index(fields=["chain_id", "kind", "value", "home_clinic_id", "customer"],
                                name="search_key_covering"),
                   models.Index(fields=["chain_id", "home_clinic_id", "kind", "value", "customer"],
                                name="search_key_clinic")]


class Identity(HistoryModel):
    """One external identity of a person; (chain, kind, external_id) is unique: one identity, one person."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+",
                              db_index=False, verbose_name=_("chain"))  # identity_unique leads with it
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="identities",
                                 verbose_name=_("customer"))
    kind = models.CharField(_("kind"), max_length=32, choices=IdentityKind.choices)
    external_id = models.CharField(_("external id"), max_length=128)
    app_id = models.CharField(max_length=64, blank=True,  # the WeChat/WeCom app the openid belongs to
                              verbose_name=_("app ID"))
    source = models.CharField(max_length=64, blank=True, verbose_name=_("source"))

    class Meta:
        verbose_name = _("identity")
        verbose_name_plural = _("identities")
        constraints = [
            models.UniqueConstraint(fields=["chain", "kind", "external_id"], name="identity_unique"),
        ]

    def __str__(self):
        return f"{self.kind}:{self.external_id}"


class Household(HistoryModel):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", verbose_name=_("chain"))
    name = models.CharField(_("name"), max_length=100, blank=True)
    head = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="headed_households",
                             verbose_name=_("head of household"))

    class Meta:
        verbose_name = _("household")
        verbose_name_plural = _("households")

    def __str__(self):
        return self.name or f"Household {self.pk}"


class HouseholdMember(HistoryModel):
    household = models.ForeignKey(Household, on_delete=models.CASCADE, related_name="members",
                                  verbose_name=_("household"))
    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="household_membership",
                                    verbose_name=_("customer"))
    relation = models.CharField(_("relation"), max_length=16, choices=Relation.choices)

    class Meta:
        verbose_name = _("household member")
        verbose_name_plural = _("household members")

    def __str__(self):
        return f"{self.get_relation_display()} #{self.customer_id}"


class Consent(models.Model):
    """Append-only consent history; the latest row per purpose is the current state."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="consents",
                                 db_index=False, verbose_name=_("customer"))  # consent_current leads with it
    purpose = models.CharField(max_length=32, choices=ConsentPurpose.choices, verbose_name=_("purpose"))
    granted = models.BooleanField(verbose_name=_("granted"))
    source = models.CharField(max_length=64, verbose_name=_("source"))  # form, api, import, wechat, paper …
    evidence = models.CharField(max_length=255, blank=True, verbose_name=_("evidence"))
    recorded_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                    db_index=False,  # mostly NULL (the patient's own consent): consent_recorded_by
                                    verbose_name=_("recorded by"))
    recorded_at = models.DateTimeField(db_index=True, verbose_name=_("recorded"))

    class Meta:
        verbose_name = _("consent")
        verbose_name_plural = _("consents")
        ordering = ["-recorded_at", "-id"]
        indexes = [models.Index(fields=["customer", "purpose", "-recorded_at"], name="consent_current"),
                   models.Index(fields=["recorded_by"], name="consent_recorded_by",
                                condition=Q(recorded_by__isnull=False))]

    def __str__(self):
        return f"{self.get_purpose_display()} {'✓' if self.granted else '✗'}"


class Interaction(models.Model):
    """The timeline: every call, chat, SMS, visit, note, form, import and merge, with text and author."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="interactions",
                                 db_index=False,  # interaction_timeline leads with it
                                 verbose_name=_("customer"))
    kind = models.CharField(max_length=16, choices=InteractionKind.choices, verbose_name=_("kind"))
    text = models.TextField(blank=True, verbose_name=_("text"))
    author = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                               verbose_name=_("recorded by"))
    clinic = models.ForeignKey(Clinic, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                               verbose_name=_("clinic"))
    occurred_at = models.DateTimeField(verbose_name=_("time"))
    data = models.JSONField(default=dict, blank=True, verbose_name=_("data"))

    class Meta:
        verbose_name = _("interaction")
        verbose_name_plural = _("interactions")
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["customer", "-occurred_at"], name="interaction_timeline")]

    def __str__(self):
        return f"{self.get_kind_display()} {timezone.localtime(self.occurred_at):%Y-%m-%d %H:%M}"


class CustomerMerge(models.Model):
    """Audit record of a merge: what moved from `merged` onto `survivor`, who did it and why."""

    survivor = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="merges_absorbed",
                                 verbose_name=_("kept record"))
    merged = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="merges_into",
                               verbose_name=_("merged record"))
    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              verbose_name=_("actor"))
    reason = models.CharField(max_length=255, blank=True, verbose_name=_("reason"))
    moved = models.JSONField(default=dict, verbose_name=_("moved records"))
    merged_snapshot = models.JSONField(default=dict, verbose_name=_("merged record snapshot"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("merged"))

    class Meta:
        verbose_name = _("customer merge")
        verbose_name_plural = _("customer merges")

    def __str__(self):
        return f"#{self.merged_id} → #{self.survivor_id}"
