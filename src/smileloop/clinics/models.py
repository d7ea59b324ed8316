"""The chain, its clinics and its staff (a login user plus a role and assigned clinics)."""

import hashlib
import re
import unicodedata

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from smileloop.clinics.enums import Role
from smileloop.core.models import TimeStampedModel


class Chain(TimeStampedModel):
    name = models.CharField(_("name"), max_length=100)
    time_zone = models.CharField(_("time zone"), max_length=64, default="Asia/Shanghai")

    class Meta:
        verbose_name = _("chain")
        verbose_name_plural = _("chains")

    def __str__(self):
        return self.name


def clinic_name_key(name: str) -> str:
    """How two clinic names are told apart: full-width folded (NFKC), case and spaces ignored ("静安 门诊" is
    "静安门诊")."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", name or "")).lower()


class Clinic(TimeStampedModel):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="clinics", verbose_name=_("chain"))
    code = models.CharField(_("code"), max_length=32)
    name = models.CharField(_("name"), max_length=100)
    city = models.CharField(_("city"), max_length=50)
    address = models.CharField(_("address"), max_length=255, blank=True)
    latitude = models.DecimalField(_("latitude"), max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(_("longitude"), max_digits=9, decimal_places=6, null=True, blank=True)
    opening_hours = models.JSONField(
        _("opening hours"), default=dict, blank=True,
        help_text=_('Weekday → ["opening", "closing"], e.g. {"mon": ["09:00", "18:00"], "fri": ["18:00", "02:00"]}: '
                    'a closing time before the opening time closes the next day (a late-night clinic).'),
    )
    phone = models.CharField(_("phone"), max_length=32, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    # clinic_name_key(name), kept by save(): what clinic_unique_name holds unique per chain, as the database cannot
    # fold full width (NFKC) itself.
    name_key = models.CharField(_("name key"), max_length=255, editable=False, default="")
    # clinic_name_key(code), kept by save(): clinic_unique_code_key holds it unique per chain. The import's 所属门诊
    # column finds clinics by code with case and full width folded: a "sh01" beside "SH01" sent rows naming SH01 to
    # whichever was read last.
    code_key = models.CharField(_("code key"), max_length=64, editable=False, default="")

    class Meta:
        verbose_name = _("clinic")
        verbose_name_plural = _("clinics")
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "code"], name="clinic_unique_code"),
            # The import's 所属门诊 column, the lists' filters and the reports tell a chain's clinics apart by name:
            # two 静安门诊 sent rows silently to whichever was read last. The forms say it first (ClinicForm).
            models.UniqueConstraint(fields=["chain", "name_key"], name="clinic_unique_name",
                                    violation_error_message=_("Another clinic of this chain has this name.")),
            models.UniqueConstraint(fields=["chain", "code_key"], name="clinic_unique_code_key",
                                    violation_error_message=_("Another clinic of this chain has this code.")),
        ]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        """Keeps `name_key` and `code_key` with the name and code (also for a save of `update_fields=["name"]`)."""
        self.name_key = clinic_name_key(self.name)[:255]
        self.code_key = clinic_name_key(self.code)[:64]
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            extra = [key for field, key in (("name", "name_key"), ("code", "code_key"))
                     if field in update_fields and key not in update_fields]
            kwargs["update_fields"] = [*update_fields, *extra]
        super().save(*args, **kwargs)


class Staff(TimeStampedModel):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff",
                                verbose_name=_("login"))
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="staff", verbose_name=_("chain"))
    name = models.CharField(_("name"), max_length=50)
    role = models.CharField(_("role"), max_length=32, choices=Role.choices)
    clinics = models.ManyToManyField(Clinic, related_name="staff", blank=True, verbose_name=_("clinics"))
    is_active = models.BooleanField(_("active"), default=True)
    # Set when someone else chose the password (a chain admin's first or reset password): the next page they open is
    # the password change (clinics.middleware.PasswordChangeRequiredMiddleware) until they pick their own.
    password_change_required = models.BooleanField(_("must change password"), default=False)

    class Meta:
        verbose_name = _("staff member")
        verbose_name_plural = _("staff")
        ordering = ["id"]

    def __str__(self):
        return f"{self.name} ({self.get_role_display()})"


class ApiToken(TimeStampedModel):
    """A bearer token for a practice-management system or POS. Only the SHA-256 of the key is stored."""

    staff = models.ForeignKey(Staff, on_delete=models.CASCADE, related_name="api_tokens",
                              verbose_name=_("staff member"))
    name = models.CharField(_("name"), max_length=100, blank=True)
    prefix = models.CharField(_("key prefix"), max_length=12, db_index=True)
    key_hash = models.CharField(_("key digest"), max_length=64, unique=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    def __str__(self):
        return f"{self.prefix}… ({self.staff})"
