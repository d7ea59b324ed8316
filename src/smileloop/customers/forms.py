"""Staff-page forms. They parse and pre-validate input with translated messages; the services stay the
authority (a ValidationFailed raised by a service is mapped back onto the form with `add_domain_errors`)."""

import datetime as dt
from functools import cached_property

from django import forms
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from smileloop.clinics.enums import Perm, Role
from smileloop.clinics.selectors import clinic_list, staff_list
from smileloop.core.errors import NotFound, ValidationFailed
from smileloop.core.forms import FORM_KEY_MISSING, form_key_valid
from smileloop.core.scoping import Scope
from smileloop.customers import normalize, selectors
from smileloop.customers.enums import Channel, ConsentPurpose, Gender, Relation, Stage
from smileloop.customers.models import Customer
from smileloop.customers.normalize import phone_mask, phone_normalize, phones_masked

MOBILE_INVALID = _("Enter a valid mobile number, for example 138 0013 8000.")

# Services speak English sentences without a field name ("is required"); staff read them translated.
_SERVICE_MESSAGES = {
    "is required": _("This field is required."),
    "is not a phone number": MOBILE_INVALID,
    "is not a valid phone number": MOBILE_INVALID,
    "is a service number (400, 800, premium rate), not a person's": _(
        "This is a service number (400, 800 or premium rate), not a person's: enter the patient's own number."),
    "phone is empty": MOBILE_INVALID,
    "is in the future": _("The date cannot be in the future."),
    "is before 1900": _("The date cannot be before 1900."),
    "is not a real calendar date": _("Enter a real calendar date."),
    "is not a clinic of this chain": _("Choose a clinic of this chain."),
    "is not a staff member of this chain": _("Choose a staff member of this chain."),
    "belongs to another customer; merge them instead": _(
        "This mobile number belongs to another customer. Merge the two records instead."),
    "must be a family relation (spouse, child, parent, …)": _("Choose a family relation."),
    "does not say for certain how they are related to the head of the household; add them from the head's page": _(
        "From this relation alone it is not certain what they are to the head of the household (a grandmother may be "
        "the head's mother or mother-in-law). Add them from the head's page."),
    "must be another customer of the same chain": _("Choose another customer of this chain."),
    "is required to reveal a phone number": _("Give a reason for revealing the phone number."),
    "is required to mark a patient lost": _("Give a reason for marking the patient lost."),
    "must not contain control characters": _("Remove the invisible control characters (a bell, an escape …) from "
                                             "this text."),
}
# Service field names that the forms call differently.
_FIELD_ALIASES = {"first_touch_channel": "source", "first_touch_campaign": "campaign", "relative": "member"}


class DomainErrorsMixin:
    def add_domain_errors(self, exc: ValidationFailed) -> None:
        """Attach each service FieldError to its form field (or to the form when there is no such field)."""
        for error in exc.errors:
            name = error.field if error.field in self.fields else _FIELD_ALIASES.get(error.field, error.field)
            message = _SERVICE_MESSAGES.get(str(error.message), error.message)
            self.add_error(name if name in self.fields else None, message)


def _blank(label):
    return [("", label)]


class _TagChoices:
    """The tag select's choices, the chain's tags by group: read once, and only when the select is rendered or a tag
    is chosen (the search's fragment, typed letter by letter, reads none)."""

    def __init__(self, scope: Scope):
        self.scope = scope

    @cached_property
    def groups(self) -> list[tuple[str, list[tuple[int, str]]]]:
        return selectors.tag_options(self.scope)

    def __call__(self):
        return _blank(_("All tags")) + self.groups


SEARCH_MAX_LENGTH = 50


class CustomerFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=SEARCH_MAX_LENGTH, error_messages={
        "max_length": _("The search is too long: at most %(limit_value)d characters (this one has %(show_value)d). "
                        "Nothing was searched."),
    }, widget=forms.TextInput(attrs={
        "type": "search", "autocomplete": "off", "autofocus": True,
        "placeholder": _("Name, pinyin (zs / zhangsan), phone or last 4 digits"),
    }))
    clinic = forms.ModelChoiceField(label=_("Clinic"), queryset=None, required=False, empty_label=_("All clinics"))
    stage = forms.ChoiceField(label=_("Stage"), required=False, choices=_blank(_("All stages")) + Stage.choices)
    source = forms.ChoiceField(label=_("Source"), required=False,
                               choices=_blank(_("All sources")) + Channel.choices)
    tag = forms.TypedChoiceField(label=_("Tag"), required=False, coerce=int, empty_value=None)
    page = forms.IntegerField(required=False, min_value=1, max_value=10_000, widget=forms.HiddenInput)

    def __init__(self, scope: Scope, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["clinic"].queryset = clinic_list(scope)
        self._tags = _TagChoices(scope)
        self.fields["tag"].choices = self._tags  # a callable: evaluated when needed

    @property
    def tag_groups(self) -> list:
        """The chain's tags by group (the template shows the tag select only when there are some)."""
        return self._tags.groups

    def filters(self) -> dict | None:
        """The filters to apply; None when the search itself cannot be applied (longer than the box takes: only a
        URL made by hand gets there), so the list says why and shows no one, never every patient as if they matched.
        An invalid choice (a clinic outside the scope, a tag of another chain, page=abc) is left out: its select then
        shows "All …", which is what is applied."""
        self.is_valid()
        if "q" in self.errors:
            return None
        data = getattr(self, "cleaned_data", {})
        clinic = data.get("clinic")
        return {
            "q": data.get("q") or "",
            "clinic_id": clinic.id if clinic else None,
            "stage": data.get("stage") or "",
            "source": data.get("source") or "",
            "tag_id": data.get("tag") or None,
            "page": data.get("page") or 1,
        }


CONSENT_SOURCES = [
    ("paper", _("Paper form")),
    ("in_person", _("In person at the clinic")),
    ("wechat", _("WeChat")),
    ("mini_program", _("Mini program")),
    ("phone_call", _("Phone call")),
    ("sms", _("SMS reply")),
    ("other", _("Other")),
]
CONSENT_SOURCE_LABELS = dict(CONSENT_SOURCES)
RELATIVE_NOT_FOUND = _("No customer with this mobile or number in your clinics.")
_RELATIONS = [c for c in Relation.choices if c[0] != Relation.HEAD]
_REGISTRATION_FIELDS = ("consents", "consent_source", "consent_evidence", "relative", "relation", "key")  # new ones

NOTES_MASK_UNKNOWN = _("The notes hold a masked number, %(mask)s, that stands for none of the numbers stored in them: "
                       "a masked number cannot be changed. Undo the change to it, or type the full number.")
NOTES_MASK_AMBIGUOUS = _("The notes hold different numbers masked alike (%(mask)s), and one of them was added or "
                         "deleted: which number each one stands for cannot be told. Undo that change, or ask a "
                         "colleague who may see phones to make it.")


def notes_unmasked(submitted: str, stored: str) -> str:
    """normalize.notes_unmasked, its refusals as the form's messages (in the reader's language)."""
    try:
        return normalize.notes_unmasked(submitted, stored)
    except normalize.MaskUnresolved as exc:
        message = NOTES_MASK_AMBIGUOUS if exc.code == "mask_ambiguous" else NOTES_MASK_UNKNOWN
        raise forms.ValidationError(message, code=exc.code, params={"mask": exc.mask})


class CustomerForm(DomainErrorsMixin, forms.Form):
    name = forms.CharField(label=_("Name"), max_length=50)
    mobile = forms.CharField(label=_("Mobile"), max_length=32, required=False,
                             widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "off"}))
    gender = forms.ChoiceField(label=_("Gender"), choices=Gender.choices, initial=Gender.UNKNOWN)
    birthday = forms.DateField(label=_("Birthday"), required=False,
                               widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    home_clinic = forms.ModelChoiceField(label=_("Home clinic"), queryset=None, required=False,
                                         empty_label=_("— none —"))
    consultant = forms.ModelChoiceField(label=_("Consultant"), queryset=None, required=False,
                                        empty_label=_("— none —"))
    # No stage field: the lifecycle stage is derived from events (a new person is a lead); the 360 page has the
    # one manual decision, "mark lost" (MarkLostForm).
    source = forms.ChoiceField(label=_("Source"), required=False, choices=_blank(_("— unknown —")) + Channel.choices)
    campaign = forms.CharField(label=_("Campaign or content"), max_length=100, required=False)
    community = forms.CharField(label=_("Community"), max_length=100, required=False)
    address = forms.CharField(label=_("Address"), max_length=255, required=False)
    notes = forms.CharField(label=_("Notes"), required=False, max_length=5000,
                            widget=forms.Textarea(attrs={"rows": 3}))
    # New customers only (the 360 page records later decisions and links relatives later): what the person agreed
    # to at the desk, and the relative they came with (a child registered with a parent's number).
    consents = forms.MultipleChoiceField(label=_("Agreed to"), required=False, choices=ConsentPurpose.choices,
                                         widget=forms.CheckboxSelectMultiple)
    consent_source = forms.ChoiceField(label=_("Given through"), choices=CONSENT_SOURCES, initial="paper",
                                       required=False)
    consent_evidence = forms.CharField(label=_("Evidence"), max_length=255, required=False, widget=forms.TextInput(
        attrs={"placeholder": _("e.g. signed form no. 2024-031")}))
    relative = forms.CharField(label=_("Came with (a relative's mobile or customer number)"), max_length=32,
                               required=False, widget=forms.TextInput(attrs={"autocomplete": "off"}))
    relation = forms.ChoiceField(label=_("The relative is the new customer's"), required=False,
                                 choices=_blank("—") + _RELATIONS)
    # New customers only: made when the page is shown and sent back hidden, so that the same form sent twice (a retried
    # request, the same page submitted twice, sent again after Back) registers one person (views.customer_create).
    # Refused when missing (clean): such posts would otherwise be registered twice, as they were.
    key = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, scope: Scope, *args, customer: Customer | None = None, **kwargs):
        if customer is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                # Masked (PIPL): the form is no way round the audited reveal; an unchanged mask keeps the number.
                "name": customer.name, "mobile": phone_mask(customer.mobile),
                "gender": customer.gender, "birthday": customer.birthday, "home_clinic": customer.home_clinic_id,
                "consultant": customer.consultant_id,
                "source": customer.first_touch_channel, "campaign": customer.first_touch_campaign,
                "community": customer.community, "address": customer.address,
                # The mobiles in them masked too for a role that may not see phones; clean_notes writes them back.
                "notes": customer.notes if scope.can(Perm.PHONE_VIEW) else phones_masked(customer.notes),
            }
        super().__init__(*args, **kwargs)
        self.scope = scope
        self.customer = customer
        clinics = clinic_list(scope)
        consultants = staff_list(scope, roles=[Role.CONSULTANT, Role.CLINIC_DIRECTOR])
        if customer is not None:
            # The record's own home clinic and consultant stay choices even when they are another clinic's (a
            # patient seen through their consultant, a consultant who moved): shown as "— none —", saving the form
            # unchanged would clear them.
            clinics = clinics.model.objects.filter(
                Q(pk__in=clinics.values("pk")) | Q(pk=customer.home_clinic_id)).order_by("id")
            consultants = consultants.model.objects.filter(
                Q(pk__in=consultants.values("pk")) | Q(pk=customer.consultant_id)).order_by("id")
        self.fields["home_clinic"].queryset = clinics
        self.fields["consultant"].queryset = consultants
        if not scope.is_chain_wide:
            # A clinic's staff would lose sight of a customer without a home clinic among theirs.
            self.fields["home_clinic"].required = True
            if customer is None and scope.clinic_ids and len(scope.clinic_ids) == 1:
                self.fields["home_clinic"].initial = next(iter(scope.clinic_ids))  # their only clinic
        if customer is not None:
            # Attribution is recorded when a person arrives; editing it is for the admin, not this form.
            del self.fields["source"], self.fields["campaign"]
            for name in _REGISTRATION_FIELDS:
                del self.fields[name]

    def clean_key(self) -> str | None:
        """The key the page rendered (a page makes 32 hex digits); None when missing or not one a page makes."""
        return form_key_valid(self.cleaned_data["key"])

    def clean_relative(self) -> Customer | None:
        text = self.cleaned_data["relative"].strip()
        if not text:
            return None
        found = selectors.customer_find(self.scope, text)
        if found is None:
            raise forms.ValidationError(RELATIVE_NOT_FOUND, code="not_found")
        return found

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("consents") and not cleaned.get("consent_source"):
            self.add_error("consent_source", _("Say how the consent was given."))
        if cleaned.get("relative") is not None and not cleaned.get("relation"):
            self.add_error("relation", _("Say what the relative is to the new customer."))
        elif cleaned.get("relation") and not self.errors.get("relative") and cleaned.get("relative") is None:
            self.add_error("relative", _("Enter the relative's mobile or customer number, or clear the relation."))
        if "key" in self.fields and not cleaned.get("key"):
            # Form-wide: the key is a hidden field, whose own errors no page shows.
            self.add_error(None, FORM_KEY_MISSING)
        return cleaned

    def clean_mobile(self) -> str | None:
        value = self.cleaned_data["mobile"].strip()
        if not value:
            return None
        if self.customer is not None and self.customer.mobile and value == phone_mask(self.customer.mobile):
            return self.customer.mobile  # the masked number the form showed, sent back unchanged
        try:
            return phone_normalize(value)
        except ValueError as exc:
            raise forms.ValidationError(_SERVICE_MESSAGES.get(str(exc), MOBILE_INVALID), code="invalid")

    def clean_notes(self) -> str:
        """A reader who may not see phones was shown the notes masked: the masks go back to the stored numbers
        (notes_unmasked), never over them."""
        value = self.cleaned_data["notes"]
        if self.customer is None or self.scope.can(Perm.PHONE_VIEW):
            return value
        return notes_unmasked(value, self.customer.notes)

    def clean_birthday(self) -> dt.date | None:
        value = self.cleaned_data["birthday"]
        if value and value > timezone.localdate():
            raise forms.ValidationError(_("The birthday cannot be in the future."), code="future")
        if value and value.year < 1900:
            raise forms.ValidationError(_("The date cannot be before 1900."), code="too_old")
        return value

    def existing_customer(self) -> tuple[Customer | None, bool]:
        """The person this form's phone already names: (customer, visible to this staff member)."""
        mobile = self.cleaned_data.get("mobile")
        if not mobile:
            return None, False
        match = selectors.customer_match(chain_id=self.scope.chain_id, mobile=mobile)["mobile"]
        if match is None or (self.customer is not None and match.id == self.customer.id):
            return None, False
        try:
            return selectors.customer_get(self.scope, match.id), True
        except NotFound:
            return match, False

    def existing_family_member(self) -> tuple[Customer | None, bool]:
        """A new phone-less person whose relative's family already has a member of this name (and birthday, where
        both are known): that member, (customer, visible to this staff member). customer_register refuses them;
        this finds the record the form links to."""
        relative = self.cleaned_data.get("relative")
        if self.customer is not None or relative is None or self.cleaned_data.get("mobile"):
            return None, False
        twin = selectors.family_member_find(relative_id=relative.id, name=self.cleaned_data.get("name") or "",
                                            birthday=self.cleaned_data.get("birthday"))
        if twin is None:
            return None, False
        try:
            return selectors.customer_get(self.scope, twin), True
        except NotFound:
            return Customer.objects.get(pk=twin), False

    def service_data(self) -> dict:
        data = {key: self.cleaned_data.get(key) for key in self.fields if key not in _REGISTRATION_FIELDS}
        data["mobile"] = data.get("mobile") or ("" if self.customer is not None else None)
        return data

    def consent_data(self) -> list[dict]:
        """The consents ticked on a new customer's form, as customer_register takes them."""
        return [{"purpose": purpose, "granted": True, "source": self.cleaned_data["consent_source"],
                 "evidence": self.cleaned_data.get("consent_evidence", "")}
                for purpose in self.cleaned_data.get("consents") or []]


class PhoneRevealForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=200, widget=forms.TextInput(attrs={
        "placeholder": _("e.g. calling to confirm an appointment"), "autocomplete": "off"}))


class MarkLostForm(DomainErrorsMixin, forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=200, widget=forms.TextInput(attrs={
        "placeholder": _("e.g. moved away, chose another clinic, asked not to be contacted"), "autocomplete": "off"}))


class DataCopyForm(DomainErrorsMixin, forms.Form):
    """The person's copy of their information (PIPL art. 45): audited like every export, with a reason."""

    prefix = "copy"  # the 360 page has several reason fields

    reason = forms.CharField(label=_("Reason"), max_length=200, widget=forms.TextInput(attrs={
        "placeholder": _("e.g. the patient's written request of 2026-12-01"), "autocomplete": "off"}))


class EraseForm(DomainErrorsMixin, forms.Form):
    """Erasing a person's information cannot be undone: staff say why and type the patient's name (or, for a
    patient with a phone, the last four digits) to show they have the right record open."""

    prefix = "erase"

    reason = forms.CharField(label=_("Reason"), max_length=200, widget=forms.TextInput(attrs={
        "placeholder": _("e.g. the patient's written request of 2026-12-01"), "autocomplete": "off"}))
    confirm = forms.CharField(label=_("Type the patient's name or the last 4 digits of their phone"), max_length=50,
                              widget=forms.TextInput(attrs={"autocomplete": "off"}))
    forfeit = forms.BooleanField(label=_("The patient gives up the balance the clinic still owes them"),
                                 required=False)

    def __init__(self, *args, customer: Customer, **kwargs):
        super().__init__(*args, **kwargs)
        self.customer = customer

    def clean_confirm(self):
        typed = " ".join(self.cleaned_data["confirm"].split())
        if typed not in {" ".join(self.customer.name.split()), self.customer.mobile_tail or None}:
            raise forms.ValidationError(_("This is not the name or phone tail of this patient."))
        return typed


class ConsentForm(DomainErrorsMixin, forms.Form):
    purpose = forms.ChoiceField(label=_("Purpose"), choices=ConsentPurpose.choices)
    granted = forms.TypedChoiceField(label=_("Decision"), coerce=lambda v: v == "1",
                                     choices=[("1", _("Granted")), ("0", _("Withdrawn / refused"))])
    source = forms.ChoiceField(label=_("Given through"), choices=CONSENT_SOURCES)
    evidence = forms.CharField(label=_("Evidence"), max_length=255, required=False, widget=forms.TextInput(
        attrs={"placeholder": _("e.g. signed form no. 2024-031")}))


class NoteForm(DomainErrorsMixin, forms.Form):
    text = forms.CharField(label=_("Note"), max_length=2000, widget=forms.Textarea(attrs={
        "rows": 2, "placeholder": _("What happened? e.g. called, wants a cleaning next week")}))


class FamilyMemberForm(DomainErrorsMixin, forms.Form):
    member = forms.CharField(label=_("Family member"), max_length=32, help_text=_(
        "Mobile number or customer number of the relative (they must already be a customer)."))
    relation = forms.ChoiceField(label=_("Relation"), choices=_RELATIONS)

    def __init__(self, scope: Scope, *args, head: Customer, **kwargs):
        super().__init__(*args, **kwargs)
        self.scope = scope
        self.head = head  # the customer whose page it is: the relation is what the relative is to them
        self.fields["relation"].label = _("What they are to %(name)s") % {"name": head.name}

    def clean_member(self) -> Customer:
        found = selectors.customer_find(self.scope, self.cleaned_data["member"])
        if found is None:
            raise forms.ValidationError(RELATIVE_NOT_FOUND, code="not_found")
        if found.id == self.head.id:
            raise forms.ValidationError(_("Choose another customer, not this one."), code="self")
        return found


MERGE_GROUP_MAX = 20  # records merged in one go: a duplicates group is a handful


def customer_ids_parse(text: str) -> list[int]:
    """"12,34" → [12, 34]: the records of a merge group, sorted, at least two (ValidationError otherwise)."""
    try:
        ids = sorted({int(v) for v in (text or "").split(",") if v.strip()})
    except ValueError:
        raise forms.ValidationError(_("Invalid customer list."), code="invalid")
    if len(ids) < 2:
        raise forms.ValidationError(_("Choose at least two records."), code="too_few")
    if len(ids) > MERGE_GROUP_MAX:  # a crafted list of 10,000 ids was 10,000 look-ups before any refusal
        raise forms.ValidationError(_("Merge at most %(n)d records at a time.") % {"n": MERGE_GROUP_MAX},
                                    code="too_many")
    return ids


class MergeForm(forms.Form):
    customers = forms.CharField(widget=forms.HiddenInput)
    survivor = forms.IntegerField(label=_("Keep this record"))
    reason = forms.CharField(label=_("Reason for merging"), max_length=255, widget=forms.TextInput(attrs={
        "placeholder": _("e.g. same person, registered twice at the front desk")}))

    def clean_customers(self) -> list[int]:
        return customer_ids_parse(self.cleaned_data["customers"])

    def problems(self) -> list[str]:
        """The form's errors as sentences that say which field, for a page that shows them beside the group:
        "Reason for merging: This field is required." (the list of records, hidden, needs no name)."""
        found = []
        for name, messages in self.errors.items():
            field = self.fields.get(name)
            for message in messages:
                if field is None or name == "customers" or not field.label:
                    found.append(str(message))
                else:
                    found.append(_("%(field)s: %(error)s") % {"field": field.label, "error": message})
        return found

    def clean(self):
        data = super().clean()
        if data.get("customers") and data.get("survivor") and data["survivor"] not in data["customers"]:
            self.add_error("survivor", _("The record to keep must be one of the group."))
        return data
