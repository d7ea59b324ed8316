"""Configuration of the chain: clinics, staff and their roles, API tokens (hash only, revocable)."""

import re
import zoneinfo

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from smileloop.clinics.enums import CHAIN_ROLES
from smileloop.clinics.forms import StaffAdminAuthenticationForm
from smileloop.clinics.models import ApiToken, Chain, Clinic, Staff
from smileloop.core.admin import FixedOnChange

# The admin's login is a second door to the same accounts: it says when the lockout refused a login (clinics.auth).
admin.site.login_form = StaffAdminAuthenticationForm


class ChainForm(forms.ModelForm):
    class Meta:
        model = Chain
        fields = "__all__"  # noqa: DJ007 - the admin chooses what is shown

    def clean_time_zone(self) -> str:
        """A zone the jobs and pages can load: a name that is none ('Asia/Beijing') made the follow-up inbox and every
        nightly job of the chain fail."""
        value = (self.cleaned_data["time_zone"] or "").strip()
        if value not in zoneinfo.available_timezones():
            raise forms.ValidationError(_("Enter a time zone name such as Asia/Shanghai."), code="invalid")
        # Pages, segments, memberships and the ledger's jobs run on the server's zone (settings.TIME_ZONE), while
        # follow-ups, surveys and imports read the chain's: another zone would split "today" between them.
        if value != settings.TIME_ZONE:
            raise forms.ValidationError(
                _("Every chain runs on %(zone)s time for now; other time zones are not supported yet.")
                % {"zone": settings.TIME_ZONE}, code="unsupported")
        return value


@admin.register(Chain)
class ChainAdmin(admin.ModelAdmin):
    form = ChainForm
    list_display = ("id", "name", "time_zone", "created_at")
    search_fields = ("name",)

    def has_delete_permission(self, request, obj=None):
        return False  # a tenant with all its records; not something to remove from a form


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ClinicForm(forms.ModelForm):
    class Meta:
        model = Clinic
        fields = "__all__"  # noqa: DJ007 - the admin chooses what is shown

    def clean_opening_hours(self) -> dict:
        """An emptied box is "no hours given" ({}), not a NOT NULL error (a 500 for a new chain's first clinic); what
        is given is a weekday → ["HH:MM", "HH:MM"] map, opening before closing."""
        value = self.cleaned_data.get("opening_hours")
        if value in (None, "", [], {}):
            return {}
        hhmm = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
        valid = isinstance(value, dict) and all(
            day in WEEKDAYS and isinstance(hours, list) and len(hours) == 2
            and all(isinstance(t, str) and hhmm.fullmatch(t) for t in hours) and hours[0] < hours[1]
            for day, hours in value.items())
        if not valid:
            raise forms.ValidationError(
                _('Write each opening day as {"mon": ["09:00", "18:00"]} (mon … sun, opening before closing), or '
                  'leave the box empty.'), code="invalid")
        return value


@admin.register(Clinic)
class ClinicAdmin(FixedOnChange, admin.ModelAdmin):
    form = ClinicForm
    list_display = ("code", "name", "city", "chain", "phone", "is_active")
    list_filter = ("chain", "city", "is_active")
    search_fields = ("code", "name", "city", "address")
    list_select_related = ("chain",)

    def has_delete_permission(self, request, obj=None):
        # deleting would silently clear the home clinic of its patients (and take them out of its staff's
        # scope) and unassign its staff; switch it off (is_active) instead
        return False


class StaffForm(forms.ModelForm):
    class Meta:
        model = Staff
        fields = "__all__"  # noqa: DJ007 - the admin's fieldsets choose what is shown

    def clean(self):
        cleaned = super().clean()
        chain = cleaned.get("chain") or (self.instance.chain if self.instance.pk else None)
        clinics = cleaned.get("clinics")
        if chain is not None and clinics:
            if any(clinic.chain_id != chain.pk for clinic in clinics):
                self.add_error("clinics", _("Choose a clinic of this chain."))
        # A clinic role sees only its clinics' patients: without one its every page was empty ("No customers yet")
        # and its New customer form had no home clinic to choose.
        if cleaned.get("role") and cleaned["role"] not in CHAIN_ROLES and "clinics" in cleaned and not clinics \
                and cleaned.get("is_active", True):
            self.add_error("clinics", _("Choose the clinics this member of staff works at: a clinic role without one "
                                        "sees no patients."))
        return cleaned


@admin.register(Staff)
class StaffAdmin(FixedOnChange, admin.ModelAdmin):
    form = StaffForm
    list_display = ("name", "user", "role", "chain", "is_active")
    list_filter = ("role", "chain", "is_active", "clinics")
    search_fields = ("name", "user__username")
    filter_horizontal = ("clinics",)

    def has_delete_permission(self, request, obj=None):
        # patients, tasks and records name who did what; switch the member of staff off (is_active) instead
        return False
    raw_id_fields = ("user",)
    list_select_related = ("user", "chain")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created with `smileloop token create` (the key is shown once); here they are only listed
    and revoked."""

    list_display = ("prefix", "name", "staff", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "name", "staff__name", "staff__user__username")
    readonly_fields = ("staff", "prefix", "key_hash", "created_at", "last_used_at", "revoked_at")
    fields = ("name", *readonly_fields)
    list_select_related = ("staff",)
    actions = ("revoke",)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description=_("Revoke the selected tokens"))
    def revoke(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, _("%(count)d token(s) revoked.") % {"count": count})


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class LoginAdmin(UserAdmin):
    """Django's user admin, except that logins are not deleted: the audit log, the ledger and the timeline name
    their actor by login (deleting one would blank the actor of every audit event it wrote, and take its staff
    profile with it). Switch a login off (active) instead."""

    def has_delete_permission(self, request, obj=None):
        return False
