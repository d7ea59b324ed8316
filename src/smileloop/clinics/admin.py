"""Configuration of the chain: clinics, staff and their roles, API tokens (hash only, revocable).

A chain admin uses these pages for their own chain only (core.admin_scope): their chain's name, its clinics, its
staff (added in one form, the login made by `staff_create`) and its API tokens; logins and groups are the operator's
(superuser's)."""

import zoneinfo

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model, password_validation, update_session_auth_hash
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import SetPasswordMixin, UsernameField
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import transaction
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import lazy
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from smileloop.clinics import services
from smileloop.clinics.enums import CHAIN_ROLES, Role
from smileloop.clinics.hours import opening_hours_clean
from smileloop.clinics.models import ApiToken, Chain, Clinic, Staff, clinic_name_key
from smileloop.clinics.web import client_ip
from smileloop.core.admin import FixedOnChange
from smileloop.core.admin_scope import CHANGE, CONFIGURATION, HIDDEN, VIEW, ChainScoped
from smileloop.core.errors import DomainError, ValidationFailed


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
class ChainAdmin(ChainScoped, admin.ModelAdmin):
    """A chain admin sees and renames their own chain; chains are added by the operator."""

    chain_admin_actions = frozenset({VIEW, CHANGE})
    chain_path = "pk"
    form = ChainForm
    list_display = ("id", "name", "time_zone", "created_at")
    search_fields = ("name",)

    def has_delete_permission(self, request, obj=None):
        return False  # a tenant with all its records; not something to remove from a form


class ClinicForm(forms.ModelForm):
    class Meta:
        model = Clinic
        fields = "__all__"  # noqa: DJ007 - the admin chooses what is shown

    def clean_opening_hours(self) -> dict:
        """An emptied box is "no hours given" ({}), not a NOT NULL error (a 500 for a new chain's first clinic); what
        is given is a weekday → ["HH:MM", "HH:MM"] map, a closing time after midnight for a late-night clinic
        (clinics.hours: each day's problem in words)."""
        return opening_hours_clean(self.cleaned_data.get("opening_hours"))

    def clean(self):
        """A name no other clinic of the chain has (clinic_name_key: full width, case and spaces folded, a little
        stricter than the import's lookup): the import's 所属门诊 column, the lists' filters and the reports name
        clinics by it, and a row naming one of two 静安门诊 went silently to whichever was read last."""
        cleaned = super().clean()
        name = cleaned.get("name")
        chain_id = getattr(cleaned.get("chain"), "pk", None) or self.instance.chain_id
        if name and chain_id:
            # The admin saves inside the transaction it validates in: holding the chain's row until then, two
            # admins saving one name at once are told so in the form, not by the constraint's IntegrityError (a 500).
            if transaction.get_connection().in_atomic_block:
                list(Chain.objects.select_for_update().filter(pk=chain_id).values_list("pk", flat=True))
            self._code_check(chain_id, cleaned.get("code"))
            same = (Clinic.objects.filter(chain_id=chain_id, name_key=clinic_name_key(name)[:255])
                    .exclude(pk=self.instance.pk).values_list("name", flat=True).first())
            if same is not None:
                self.add_error("name", forms.ValidationError(
                    _("Another clinic of this chain is called “%(name)s”: imports, lists and reports tell clinics "
                      "apart by name. Give this one a name of its own, e.g. with its district."),
                    code="unique", params={"name": same}))
        return cleaned

    def _code_check(self, chain_id: int, code: str | None) -> None:
        """A code no other clinic of the chain has, case and full width folded (clinic_unique_code_key): the import
        finds clinics by code so, and "sh01" beside "SH01" sent rows to whichever was read last."""
        if not code:
            return
        same = (Clinic.objects.filter(chain_id=chain_id, code_key=clinic_name_key(code)[:64])
                .exclude(pk=self.instance.pk).values_list("code", "name").first())
        if same is not None:
            self.add_error("code", forms.ValidationError(
                _("Clinic “%(name)s” of this chain has the code “%(code)s”: codes are told apart without case or "
                  "full width (imports find clinics by them). Give this clinic a code of its own."),
                code="unique", params={"code": same[0], "name": same[1]}))

    def clean_latitude(self):
        return self._coordinate("latitude", 90)

    def clean_longitude(self):
        return self._coordinate("longitude", 180)

    def _coordinate(self, name: str, limit: int):
        """A latitude within ±90 and a longitude within ±180 (the model's decimal took ±999: a clinic "at" 200° fed
        every distance rule of the segments nonsense)."""
        value = self.cleaned_data.get(name)
        if value is not None:
            MinValueValidator(-limit)(value)
            MaxValueValidator(limit)(value)
        return value


@admin.register(Clinic)
class ClinicAdmin(ChainScoped, FixedOnChange, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
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
        staff = self.instance
        if staff.pk and staff.role == Role.CHAIN_ADMIN and cleaned.get("role") not in (None, Role.CHAIN_ADMIN) \
                and not Staff.objects.filter(chain_id=staff.chain_id, role=Role.CHAIN_ADMIN, is_active=True,
                                             user__is_active=True).exclude(pk=staff.pk).exists():
            # Nobody would be left to set the chain up, add staff or unlock them (only the server's operator).
            self.add_error("role", _("This is the chain's last chain administrator: make another member of staff "
                                     "chain administrator first."))
        return cleaned


class StaffAddForm(StaffForm):
    """A new member of staff in one form: their login (username and first password) with their name, role and
    clinics; saved by `clinics.services.staff_create`, which also decides whether the login opens the admin. The
    operator (a superuser) may instead name an existing login without a profile (`user`: their own, on a new
    installation); a chain admin's form has no such field."""

    username = UsernameField(label=_("username"), max_length=150, required=False,
                             help_text=_("What they type to log in: letters, digits and @ . + - _ only."))
    password1 = forms.CharField(label=_("password"), strip=False, required=False, widget=forms.PasswordInput(
        attrs={"autocomplete": "new-password"}), help_text=lazy(password_validation.password_validators_help_text_html,
                                                                 str)())
    password2 = forms.CharField(label=_("password (again)"), strip=False, required=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    class Meta:
        model = Staff
        fields = ("chain", "user", "name", "role", "clinics")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "user" in self.fields:
            self.fields["user"].required = False
            self.fields["user"].help_text = _("Or an existing login without a staff profile: then leave the "
                                              "username and password empty.")

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        if not username:
            return username
        get_user_model().username_validator(username)
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(_("This username is taken."), code="unique")
        return username

    def clean_user(self):
        user = self.cleaned_data.get("user")
        if user is not None and Staff.objects.filter(user=user).exists():
            raise forms.ValidationError(_("This login already has a staff profile."), code="unique")
        return user

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("user") is not None or "user" in self.errors:
            return cleaned
        for name in ("username", "password1", "password2"):
            if not cleaned.get(name) and name not in self.errors:
                self.add_error(name, forms.ValidationError(self.fields[name].error_messages["required"],
                                                           code="required"))
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first and second and first != second:
            self.add_error("password2", _("The two passwords differ."))
        elif first and cleaned.get("username"):
            try:
                password_validation.validate_password(
                    first, get_user_model()(username=cleaned["username"]))
            except forms.ValidationError as error:
                self.add_error("password1", error)
        return cleaned


def _reason_field():
    return forms.CharField(label=_("reason"), max_length=500, widget=forms.TextInput(attrs={"size": 60}),
                           help_text=_("Why: written in the audit log with your name and the time."))


class StaffLoginReasonForm(forms.Form):
    """Deactivating or reactivating a member of staff's login: why (services.staff_deactivate, staff_reactivate)."""

    reason = _reason_field()


class StaffPasswordForm(SetPasswordMixin, forms.Form):
    """A new (temporary) password for a member of staff, twice, checked by Django's password validators, and why
    (services.staff_password_set). Unlike the user admin's form, it cannot switch password logins off: leaving staff
    are deactivated instead."""

    password1, password2 = SetPasswordMixin.create_password_fields()
    reason = _reason_field()

    def __init__(self, user, *args, **kwargs):
        self.user = user
        super().__init__(*args, **kwargs)

    def clean(self):
        self.validate_passwords()
        self.validate_password_for_user(self.user)
        return super().clean()


@admin.register(Staff)
class StaffAdmin(ChainScoped, FixedOnChange, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
    fixed_on_change = ("chain", "user")  # the profile's login is who they are; a new login is a new member of staff
    form = StaffForm
    add_form = StaffAddForm
    add_fieldsets = ((None, {"fields": ("chain", "username", "name", "role", "clinics", "password1", "password2")}),)
    raw_id_fields = ("user",)
    list_display = ("name", "user", "role", "chain", "is_active")
    list_filter = ("role", "chain", "is_active", "clinics")
    search_fields = ("name", "user__username")
    filter_horizontal = ("clinics",)
    list_select_related = ("user", "chain")

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            if request.user.is_superuser:
                return ((None, {"fields": (*self.add_fieldsets[0][1]["fields"], "user")}),)
            return self.add_fieldsets
        return ((None, {"fields": ("chain", "user", "password_link", "name", "role", "clinics",
                                   self._login_field(request, obj))}),)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return super().get_readonly_fields(request, obj)
        return (*super().get_readonly_fields(request, obj), "password_link", self._login_field(request, obj))

    def _login_field(self, request, obj) -> str:
        """Whether the login is on, with the link that switches it (deactivate, reactivate); no link on one's own
        profile (nobody deactivates themselves) or where the viewer may not change the profile."""
        if obj.user_id == request.user.pk or not self.has_change_permission(request, obj):
            return "login_state"
        return "login_switch"

    @admin.display(description=_("login"))
    def login_state(self, obj):
        return _("Active") if services.staff_login_active(obj) else _("Deactivated")

    @admin.display(description=_("login"))
    def login_switch(self, obj):
        if services.staff_login_active(obj):
            name, label = "clinics_staff_deactivate", _("Deactivate the login")
        else:
            name, label = "clinics_staff_reactivate", _("Reactivate the login")
        url = reverse(f"{self.admin_site.name}:{name}", args=[obj.pk])
        return format_html('{} · <a href="{}">{}</a>', self.login_state(obj), url, label)

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, **kwargs)

    @admin.display(description=_("password"))
    def password_link(self, obj):
        url = reverse(f"{self.admin_site.name}:clinics_staff_password", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("Set a new password"))

    def has_change_permission(self, request, obj=None):
        # the operator's own accounts are theirs: a chain admin may not rename, re-role or re-password a superuser
        if obj is not None and not request.user.is_superuser and obj.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        # patients, tasks and records name who did what; deactivate the member of staff's login instead
        return False

    def save_model(self, request, obj, form, change):
        if change:
            # the grants before the edit, for the audit log (save_related writes it once the clinics are set)
            obj._access_before = (Staff.objects.filter(pk=obj.pk).values_list("role", flat=True).get(),
                                  set(Staff.clinics.through.objects.filter(staff_id=obj.pk)
                                      .values_list("clinic_id", flat=True)))
            super().save_model(request, obj, form, change)
            services.staff_admin_access_sync(staff=obj)
            return
        data, who = form.cleaned_data, {"actor": request.user, "ip_address": client_ip(request)}
        if data.get("user") is not None:
            staff = services.staff_attach(user=data["user"], chain=data["chain"], name=data["name"],
                                          role=data["role"], clinics=list(data.get("clinics") or ()), **who)
        else:
            staff = services.staff_create(chain=data["chain"], username=data["username"], name=data["name"],
                                          role=data["role"], clinics=list(data.get("clinics") or ()),
                                          password=data["password1"], password_temporary=True, **who)
        obj.pk, obj.user, obj.created_at, obj.updated_at = staff.pk, staff.user, staff.created_at, staff.updated_at
        obj._state.adding, obj._state.db = False, staff._state.db

    def save_related(self, request, form, formsets, change):
        if change:  # on add, staff_create assigned the clinics (and audited them)
            super().save_related(request, form, formsets, change)
            services.staff_access_audit(staff=form.instance, actor=request.user, before=form.instance._access_before,
                                        ip_address=client_ip(request))

    def get_urls(self):
        return [path("<path:object_id>/password/", self.admin_site.admin_view(self.password_view),
                     name="clinics_staff_password"),
                path("<path:object_id>/deactivate/", self.admin_site.admin_view(self.deactivate_view),
                     name="clinics_staff_deactivate"),
                path("<path:object_id>/reactivate/", self.admin_site.admin_view(self.reactivate_view),
                     name="clinics_staff_reactivate"),
                *super().get_urls()]

    def _staff_to_change(self, request, object_id) -> Staff:
        # get_object is chain-scoped: another chain's member of staff is a 404; the operator's profile a 403
        staff = self.get_object(request, unquote(object_id))
        if staff is None or not self.has_change_permission(request, staff):
            raise PermissionDenied
        return staff

    def password_view(self, request, object_id):
        """Set a member of staff's password (forgotten, or never set): for those who may change the profile. Audited
        (staff.password_set) with the reason. It is temporary: the next page they open asks them to choose their own
        (clinics.middleware.PasswordChangeRequiredMiddleware), unless it was one's own."""
        staff = self._staff_to_change(request, object_id)
        form = StaffPasswordForm(staff.user, request.POST or None)
        done = self._login_action(request, staff, form, lambda data: services.staff_password_set(
            staff=staff, actor=request.user, password=data["password1"], reason=data["reason"],
            ip_address=client_ip(request)), _("Password set."))
        if done is not None:
            update_session_auth_hash(request, staff.user)  # one's own password: stay logged in here
            return done
        return self._login_action_page(request, staff, form, _("Set password: %(name)s"), _("Set password"), _(
            "The member of staff logs in with this password from now on, and is logged out everywhere else. Give it "
            "to them in person: it is temporary, and after logging in with it they must choose their own before "
            "anything else."))

    def deactivate_view(self, request, object_id):
        """Switch a leaving member of staff's login off (services.staff_deactivate): not one's own."""
        staff = self._staff_to_change(request, object_id)
        if staff.user_id == request.user.pk:
            raise PermissionDenied
        form = StaffLoginReasonForm(request.POST or None)
        done = self._login_action(request, staff, form, lambda data: services.staff_deactivate(
            staff=staff, actor=request.user, reason=data["reason"], ip_address=client_ip(request)),
            _("Login deactivated."))
        if done is not None:
            return done
        return self._login_action_page(
            request, staff, form, _("Deactivate the login: %(name)s"), _("Deactivate the login"), _(
                "They are logged out at once, cannot log in, and their API tokens are refused. Nothing they did is "
                "removed; the login can be reactivated."))

    def reactivate_view(self, request, object_id):
        staff = self._staff_to_change(request, object_id)
        form = StaffLoginReasonForm(request.POST or None)
        done = self._login_action(request, staff, form, lambda data: services.staff_reactivate(
            staff=staff, actor=request.user, reason=data["reason"], ip_address=client_ip(request)),
            _("Login reactivated."))
        if done is not None:
            return done
        return self._login_action_page(
            request, staff, form, _("Reactivate the login: %(name)s"), _("Reactivate the login"), _(
                "They log in again with their password (set a new one if they forgot it), with their role and "
                "clinics as they were, and their API tokens that were not revoked work again."))

    def _login_action(self, request, staff, form, run, done_message):
        """On a valid POST: run the service, note it in the admin's history, go back to the change page. None: the
        form is to be shown (again, with its errors)."""
        if request.method != "POST" or not form.is_valid():
            return None
        try:
            run(form.cleaned_data)
        except ValidationFailed as error:
            for field_error in error.errors:
                form.add_error(field_error.field if field_error.field in form.fields else None,
                               gettext(field_error.message))
            return None
        except DomainError as error:
            form.add_error(None, gettext(error.message))  # the services' messages are marked gettext_noop
            return None
        self.log_change(request, staff, done_message)
        messages.success(request, done_message)
        return HttpResponseRedirect(reverse(f"{self.admin_site.name}:clinics_staff_change", args=[staff.pk]))

    def _login_action_page(self, request, staff, form, title, submit_label, explanation):
        context = {
            **self.admin_site.each_context(request),
            "title": title % {"name": staff.user.get_username()}, "form": form, "opts": self.opts,
            "original": staff, "submit_label": submit_label, "explanation": explanation,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/clinics/staff/login_action.html", context)


@admin.register(ApiToken)
class ApiTokenAdmin(ChainScoped, admin.ModelAdmin):
    """Tokens are created with `smileloop token create` (the key is shown once); here they are only listed
    and revoked (a chain admin: their chain's)."""

    chain_admin_actions = frozenset({VIEW, CHANGE})
    chain_path = "staff__chain"

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
        count = services.api_tokens_revoke(tokens=queryset, actor=request.user, ip_address=client_ip(request))
        self.message_user(request, _("%(count)d token(s) revoked.") % {"count": count})


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class LoginAdmin(ChainScoped, UserAdmin):
    """Django's user admin, except that logins are not deleted: the audit log, the ledger and the timeline name
    their actor by login (deleting one would blank the actor of every audit event it wrote, and take its staff
    profile with it). Switch a login off (active) instead.

    The operator's only: it sets superusers and Django permissions. A chain admin manages their staff's logins on
    the Staff pages (add, set password)."""

    chain_admin_actions = HIDDEN

    def has_delete_permission(self, request, obj=None):
        return False


if admin.site.is_registered(Group):
    admin.site.unregister(Group)


@admin.register(Group)
class LoginGroupAdmin(ChainScoped, GroupAdmin):
    """Django's permission groups: the operator's only (a chain admin's rights come from the role)."""

    chain_admin_actions = HIDDEN
