"""The chain's gift-card programmes (the friends-and-family card 亲友储值卡) and voucher campaigns are business
configuration, edited here: without them a chain starting from an empty database had no way to set up the card its
hidden benefit gives, or a voucher campaign for the API to issue from, short of writing code. Cards and vouchers
themselves are issued by the services (a ledger transaction each) and looked up on the checkout's code page."""

from django import forms
from django.contrib import admin
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.translation import gettext_lazy as _

from smileloop.core.admin import FixedOnChange
from smileloop.core.admin_scope import CONFIGURATION, ChainScoped
from smileloop.core.bounds import MAX_FEN
from smileloop.giftcards.enums import VoucherValueKind
from smileloop.giftcards.models import GiftCardProgramme, VoucherCampaign
from smileloop.visits.enums import Category

MAX_VALID_MONTHS = 120  # ten years: a card date past that is a typo, and add_months must stay within year 9999


class GiftCardProgrammeForm(forms.ModelForm):
    """The JSON fields as a choice of categories and a list of days, so an emptied box is "none" rather than a
    database error, and a reminder day is a whole day within the card's validity."""

    face_value_fen = forms.IntegerField(label=_("face value (fen)"), help_text=_("60000 = 600 yuan."),
                                        validators=[MinValueValidator(1), MaxValueValidator(MAX_FEN)])
    valid_months = forms.IntegerField(label=_("valid for (months)"), initial=3,
                                      validators=[MinValueValidator(1), MaxValueValidator(MAX_VALID_MONTHS)])
    excluded_categories = forms.MultipleChoiceField(
        label=_("excluded categories"), choices=Category.choices, required=False,
        widget=forms.CheckboxSelectMultiple, initial=[Category.ORAL_CARE_PRODUCT])
    reminder_days = forms.CharField(
        label=_("reminder days after issue"), required=False, initial="7, 30, 60, 80",
        help_text=_("Days after the card is given, separated by commas, e.g. 7, 30, 60, 80. Empty: no reminders."))

    class Meta:
        model = GiftCardProgramme
        fields = "__all__"  # noqa: DJ007 - the admin chooses what is shown

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and isinstance(self.instance.reminder_days, list):
            self.initial["reminder_days"] = ", ".join(str(day) for day in self.instance.reminder_days)

    def clean_reminder_days(self) -> list[int]:
        text = (self.cleaned_data.get("reminder_days") or "").replace("，", ",").replace("、", ",")
        days = set()
        for part in filter(None, (piece.strip() for piece in text.split(","))):
            if not part.isascii() or not part.isdigit() or not 1 <= int(part) <= MAX_VALID_MONTHS * 31:
                raise forms.ValidationError(_("Type whole days after issue, separated by commas, e.g. 7, 30, 60, 80."),
                                            code="invalid")
            days.add(int(part))
        return sorted(days)


class VoucherCampaignForm(forms.ModelForm):
    price_paid_fen = forms.IntegerField(label=_("price paid online (fen)"), initial=0,
                                        validators=[MinValueValidator(0), MaxValueValidator(MAX_FEN)])
    face_value_fen = forms.IntegerField(
        label=_("face value (fen)"), initial=0, validators=[MinValueValidator(0), MaxValueValidator(MAX_FEN)],
        help_text=VoucherCampaign._meta.get_field("face_value_fen").help_text)
    valid_days = forms.IntegerField(label=_("valid for (days)"), initial=90,
                                    validators=[MinValueValidator(1), MaxValueValidator(MAX_VALID_MONTHS * 31)])

    class Meta:
        model = VoucherCampaign
        fields = "__all__"  # noqa: DJ007 - the admin chooses what is shown

    def clean(self):
        cleaned = super().clean()
        chain = cleaned.get("chain") or (self.instance.chain if self.instance.pk else None)
        item, category = cleaned.get("item"), cleaned.get("category")
        if "item" in cleaned and "category" in cleaned and item is None and not category:
            self.add_error("item", _("Choose the catalogue item or the category the voucher pays for."))
        if item is not None and chain is not None and item.chain_id != chain.pk:
            self.add_error("item", _("Choose an item of this chain's catalogue."))
        # services.voucher_value: only a whole-line voucher of one item is worth something without a face value
        if cleaned.get("face_value_fen") == 0 and not (cleaned.get("value_kind") == VoucherValueKind.WHOLE_LINE
                                                        and item is not None):
            self.add_error("face_value_fen", _("Give the voucher a value: only a whole-line voucher of one item is "
                                               "worth that item's list price without one."))
        return cleaned


@admin.register(GiftCardProgramme)
class GiftCardProgrammeAdmin(FixedOnChange, ChainScoped, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
    form = GiftCardProgrammeForm
    list_display = ("name", "code", "chain", "kind", "face_value_fen", "valid_months", "limit_per_period",
                    "limit_period_months", "is_active")
    list_filter = ("chain", "kind", "is_active")
    search_fields = ("name", "code")
    list_select_related = ("chain",)
    fixed_on_change = ("chain", "code")  # cards name their programme; a benefit may name it by code

    def has_delete_permission(self, request, obj=None):
        return False  # cards were issued on its terms; switch it off (active) instead


@admin.register(VoucherCampaign)
class VoucherCampaignAdmin(FixedOnChange, ChainScoped, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
    form = VoucherCampaignForm
    list_display = ("name", "code", "chain", "value_kind", "price_paid_fen", "face_value_fen", "valid_days",
                    "is_active")
    list_filter = ("chain", "value_kind", "is_active")
    search_fields = ("name", "code")
    list_select_related = ("chain",)
    raw_id_fields = ("item",)
    fixed_on_change = ("chain", "code")  # the API issues vouchers by the campaign's code

    def has_delete_permission(self, request, obj=None):
        return False  # vouchers were issued from it; switch it off (active) instead
