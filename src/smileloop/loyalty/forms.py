"""Staff-page forms: they parse input with translated messages; the services stay the authority (their typed
errors are mapped back onto the form with `add_domain_error`). Every write form carries a hidden idempotency
`key` made when the form is shown, so a double click or a retried POST writes once."""

import uuid
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from smileloop.core.bounds import bounded_formfield
from smileloop.core.errors import DomainError, ValidationFailed
from smileloop.core.forms import FenFieldsMixin
from smileloop.core.money import yuan_grouped
from smileloop.core.scoping import Scope
from smileloop.core.sql import choices_from
from smileloop.customers.models import Customer
from smileloop.customers.selectors import customer_queryset
from smileloop.loyalty.enums import EarnTrigger, RefundRule
from smileloop.loyalty.messages import loyalty_message_display
from smileloop.loyalty.models import (
    FEN,
    EarnRule,
    Gift,
    Package,
    PackageEntitlement,
    RedeemSettings,
    TopupBonusRule,
)
from smileloop.loyalty.services.wallet import TOPUP_METHODS, WALLET_TOPUP_METHODS
from smileloop.visits.enums import PaymentMethod

_FIELD_ALIASES = {"amount_fen": "amount_yuan", "rule_code": "rule", "gift_id": "gift", "package_id": "package",
                  "points": None, "key": None, "wallet.holder_id": "wallet",
                  "wallet.per_use_consent": "per_use_consent", "payments": "method", "min_topup_fen": "min_topup_yuan", "bonus_fen": "bonus_yuan",
                  "price_fen": "price_yuan", "max_share_bp": "max_share_percent"}

ERROR_MESSAGES = {
    "insufficient_points": _("Not enough points available for this."),
    "out_of_stock": _("This gift is out of stock."),
    "gift_inactive": _("This gift is no longer offered."),
    "unknown_rule": _("This rule is not active."),
    "not_covered": _("Choose the holder or members of the holder's household."),
    "package_not_active": _("This package is no longer in force: it was cancelled, or its period ended."),
    "consent_missing": _("The family wallet's holder has not consented to this use: tick the holder's consent for "
                         "this use (or record a standing consent), or pay another way."),
    "not_family": _("This patient is not bound to the holder's family card, so that wallet cannot pay."),
    "clawback_exceeds_refund": _("The points this package's bill earned were already used and are worth more than "
                                 "the money (other than stored value) this refund gives back, from which they are "
                                 "withheld: this refund cannot be made."),
    "bonus_rule_invalid": _("The top-up bonus rule this top-up reaches gives ¥%(bonus)s, more than the minimum "
                            "top-up ¥%(minimum)s it rewards: correct or deactivate it in the loyalty settings first."),
    "period_out_of_range": _("“%(name)s” is set up with a period too long to compute a date from; correct it in the "
                             "loyalty settings first."),
}


def new_key() -> str:
    return uuid.uuid4().hex


class DomainErrorMixin:
    def _form_field(self, field: str | None) -> str | None:
        """The visible form field a service field names: itself when the form shows it (a configuration form's
        `points`), else its alias (the card forms' `amount_fen` is `amount_yuan`), else none (the error goes on
        top, as for the hidden `key`)."""
        name = (field or "").split("[")[0]
        if not self._shows(name):
            name = _FIELD_ALIASES.get(name, name)
        return name if self._shows(name) else None

    def _shows(self, name: str | None) -> bool:
        return name in self.fields and not self.fields[name].widget.is_hidden

    def add_domain_error(self, exc: DomainError) -> None:
        if isinstance(exc, ValidationFailed):
            for error in exc.errors:
                self.add_error(self._form_field(error.field), loyalty_message_display(error.message))
            return
        message = ERROR_MESSAGES.get(exc.code)
        message = (message % getattr(exc, "params", {}) if message is not None
                   else loyalty_message_display(exc.message))
        self.add_error(self._form_field(exc.field), message)


class KeyedForm(DomainErrorMixin, forms.Form):
    key = forms.CharField(widget=forms.HiddenInput, max_length=100)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("initial", {}).setdefault("key", new_key())
        super().__init__(*args, **kwargs)


def to_fen(value: Decimal) -> int:
    return int(value * 100)


class TopupForm(KeyedForm):
    amount_yuan = forms.DecimalField(label=_("Amount (yuan)"), min_value=Decimal("0.01"), max_digits=10,
                                     decimal_places=2)
    method = forms.ChoiceField(label=_("Paid by"), choices=[(m, label) for m, label in PaymentMethod.choices
                                                            if m in WALLET_TOPUP_METHODS])


class AwardForm(KeyedForm):
    rule = forms.ModelChoiceField(label=_("Rule"), queryset=EarnRule.objects.none())
    note = forms.CharField(label=_("Reference"), required=False, max_length=80,
                           help_text=_("e.g. the referred patient's name or the event."))

    def __init__(self, scope: Scope, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A rule of 0 points (saved before such rules were refused) is not offered: each award of it was refused.
        self.fields["rule"].queryset = EarnRule.objects.filter(chain_id=scope.chain_id, is_active=True,
                                                               points__gt=0).exclude(
            trigger=EarnTrigger.SPEND).order_by("name")
        choices_from(self.fields["rule"], EarnRule,
                     "t0.chain_id = %s AND t0.is_active AND t0.points > 0 AND t0.trigger <> %s",
                     [scope.chain_id, EarnTrigger.SPEND], tail="ORDER BY t0.name, t0.id")


class GiftExchangeForm(KeyedForm):
    gift = forms.ModelChoiceField(label=_("Gift"), queryset=Gift.objects.none())
    quantity = forms.IntegerField(label=_("Quantity"), min_value=1, max_value=100, initial=1)

    def __init__(self, scope: Scope, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["gift"].queryset = Gift.objects.filter(chain_id=scope.chain_id, is_active=True).order_by(
            "points_price", "name", "id")
        self.fields["gift"].label_from_instance = lambda g: ngettext(
            "%(name)s · %(points)s point · %(stock)s left", "%(name)s · %(points)s points · %(stock)s left",
            g.points_price) % {"name": g.name, "points": g.points_price, "stock": g.stock}
        choices_from(self.fields["gift"], Gift, "t0.chain_id = %s AND t0.is_active", [scope.chain_id],
                     tail="ORDER BY t0.points_price, t0.name, t0.id")


class _PeopleField(forms.ModelMultipleChoiceField):
    """Ids beyond a bigint are refused as unknown choices before any query: Django guards single-value integer
    lookups against overflow but not `__in`, and SQLite raised OverflowError (a 500) on them."""

    def _check_values(self, value):
        for pk in value:
            text = str(pk).strip()
            if text.lstrip("-").isdigit() and abs(int(text)) >= 2**63:
                raise ValidationError(self.error_messages["invalid_pk_value"], code="invalid_pk_value",
                                      params={"pk": pk})
        return super()._check_values(value)


class PackageSellForm(KeyedForm):
    """A sale on the loyalty card, paid by one method; by stored value, from the patient's own wallet or (bound to a
    family card) from the family holder's, with that holder's consent as at checkout (`wallet`, `per_use_consent`
    appear only then)."""

    package = forms.ModelChoiceField(label=_("Package"), queryset=Package.objects.none())
    covered = _PeopleField(label=_("Covered persons"), queryset=Customer.objects.none(),
                                             widget=forms.CheckboxSelectMultiple,
                                             help_text=_("The holder and members of the household."))
    method = forms.ChoiceField(label=_("Paid by"), choices=[(m, label) for m, label in PaymentMethod.choices
                                                            if m in TOPUP_METHODS or m == PaymentMethod.WALLET],
                               help_text=_("The package's price, recorded as a bill of the patient's clinic."))
    wallet = forms.ChoiceField(label=_("Stored value"), required=False, initial="own")
    per_use_consent = forms.BooleanField(label=_("The holder consents to this use"), required=False)

    def __init__(self, scope: Scope, *args, holder: Customer, **kwargs):
        super().__init__(*args, **kwargs)
        from smileloop.membership.selectors import membership_current_for, person_in_scope

        # The family card holder whose wallet this patient may pay from (checkout offers the same one).
        binding = membership_current_for(holder).binding
        self.family_holder = binding.holder.customer if binding is not None else None
        if self.family_holder is None:
            del self.fields["wallet"], self.fields["per_use_consent"]
        else:
            shown = person_in_scope(scope, self.family_holder)
            self.fields["wallet"].choices = [("own", _("Own wallet")),
                                             ("family", gettext("Family holder's wallet") + f" · {shown.name}")]
            self.fields["per_use_consent"].help_text = _(
                "Family wallet of %(name)s: without a standing consent, tick the holder's consent for this use."
            ) % {"name": shown.name}
        self.fields["package"].queryset = Package.objects.filter(chain_id=scope.chain_id, is_active=True)
        choices_from(self.fields["package"], Package, "t0.chain_id = %s AND t0.is_active", [scope.chain_id],
                     tail="ORDER BY t0.name, t0.id")
        from smileloop.customers.models import HouseholdMember

        # The holder and the members of the holder's household, within the scope. The member ids are read
        # first (a tiny query): `pk = holder OR pk IN (subquery)` cannot use the primary key on PostgreSQL and
        # scanned all 1M customers (1.4 s of every 360 page).
        household = HouseholdMember.objects.filter(customer_id=holder.pk).values("household_id")
        members = list(HouseholdMember.objects.filter(household_id__in=household).values_list("customer_id", flat=True))
        self.fields["covered"].queryset = customer_queryset(scope).filter(
            pk__in=sorted({holder.pk, *members})).order_by("id")
        self.fields["covered"].initial = [holder.pk]

    def clean(self):
        """`wallet_holder`: package_sell's, the family holder when the sale is paid by stored value from their wallet
        (else None: the patient's own wallet, or no stored value)."""
        data = super().clean()
        family = data.get("method") == PaymentMethod.WALLET and data.get("wallet") == "family"
        data["wallet_holder"] = self.family_holder if family else None
        return data


class PackageCancelForm(KeyedForm):
    """The confirmation of a cancellation: the page shows what was used and what each rule refunds (`quote`)."""

    rule = forms.ChoiceField(label=_("Refund rule"), choices=RefundRule.choices, initial=RefundRule.LIST_PRICE,
                             widget=forms.RadioSelect)
    amount_yuan = forms.DecimalField(label=_("Refund (yuan)"), required=False, min_value=Decimal(0),
                                     max_value=Decimal(FEN[1]) / 100, max_digits=12,
                                     decimal_places=2,
                                     help_text=_("Empty: the refund by the rule. You may refund less, never more."))
    method = forms.ChoiceField(label=_("Refund to"), required=False)
    reason = forms.CharField(label=_("Reason"), max_length=255, widget=forms.Textarea(attrs={"rows": 2}),
                             help_text=_("Kept with the cancellation and shown on the patient's timeline."))

    def __init__(self, *args, quote, **kwargs):
        super().__init__(*args, **kwargs)
        self.quote = quote
        as_paid = ", ".join(f"{PaymentMethod(m).label} ¥{yuan_grouped(a)}" for m, a in quote.payments)
        self.fields["method"].choices = [
            ("", _("As paid (%(payments)s)") % {"payments": as_paid} if as_paid else _("As paid")),
            *[(m, label) for m, label in PaymentMethod.choices if m in TOPUP_METHODS]]
        if any(m == PaymentMethod.WALLET for m, _amount in quote.payments):
            self.fields["method"].help_text = _("The part paid from stored value goes back to the wallet whatever "
                                                "you choose here.")
        if quote.order_id is None:  # nothing is refunded here: no amount, no method
            del self.fields["amount_yuan"], self.fields["method"]

    def clean(self):
        data = super().clean()
        amount, rule = data.get("amount_yuan"), data.get("rule")
        if amount is not None and rule in self.quote.by_rule and to_fen(amount) > self.quote.by_rule[rule]:
            self.add_error("amount_yuan", _("At most ¥%(yuan)s, the refund by this rule.")
                           % {"yuan": yuan_grouped(self.quote.by_rule[rule])})
        return data

    def service_data(self) -> dict:
        data = self.cleaned_data
        amount = data.get("amount_yuan")
        return {"rule": data["rule"], "reason": data["reason"], "method": data.get("method") or None,
                "amount_fen": None if amount is None else to_fen(amount)}


# --- configuration -----------------------------------------------------------------------------------------


class ConfigForm(DomainErrorMixin, forms.ModelForm):
    def service_data(self) -> dict:
        return dict(self.cleaned_data)

    def _post_clean(self):
        # The service validates the whole row (model constraints included); skip ModelForm's own instance check.
        pass


class EarnRuleForm(ConfigForm):
    class Meta:
        formfield_callback = bounded_formfield
        model = EarnRule
        fields = ["code", "name", "trigger", "category", "special_price", "points_per_yuan", "points", "pending_days",
                  "validity_months", "is_active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is None:
            # A new spend rule earns one point per yuan unless staff type otherwise: the model's 0 ("no points", for
            # a rule that excludes a category) made a first rule saved with its defaults earn nothing.
            self.initial.setdefault("points_per_yuan", 1)


class RedeemTermsForm(FenFieldsMixin, ConfigForm):
    """The cap is typed as a percentage of the bill (10), as the page shows it, not in basis points (1000)."""

    percent_fields = ("max_share",)

    max_share_percent = forms.DecimalField(label=_("At most this share of a bill (%)"), min_value=0, max_value=100,
                                           max_digits=5, decimal_places=2, help_text=_("10 = at most 10% of a bill."))

    class Meta:
        formfield_callback = bounded_formfield
        model = RedeemSettings
        fields = ["points_per_yuan", "max_share_percent", "is_enabled"]


YUAN_MAX = Decimal(FEN[1]) / 100  # the models' bound on amounts in fen


def yuan_field(label, *, min_value: Decimal = Decimal(0)) -> forms.DecimalField:
    return forms.DecimalField(label=label, min_value=min_value, max_value=YUAN_MAX, max_digits=12, decimal_places=2)


class YuanConfigForm(FenFieldsMixin, ConfigForm):
    """Amounts the model keeps in fen are typed in yuan, as staff type money everywhere else (a package priced
    "298000" read as 298,000 yuan): each `<name>_yuan` form field stands for the model's `<name>_fen`."""


class BonusRuleForm(YuanConfigForm):
    yuan_fields = ("min_topup", "bonus")
    min_topup_yuan = yuan_field(_("Minimum top-up (yuan)"), min_value=Decimal("0.01"))
    bonus_yuan = yuan_field(_("Bonus (yuan)"))

    class Meta:
        formfield_callback = bounded_formfield
        model = TopupBonusRule
        fields = ["min_topup_yuan", "bonus_yuan", "validity_months", "is_active"]


class GiftForm(ConfigForm):
    # The stock this page showed: the stock typed is saved as a change of it (`gift_save`'s `stock_seen`), so
    # exchanges made while the page was open are not undone.
    stock_seen = forms.IntegerField(widget=forms.HiddenInput, required=False)

    class Meta:
        formfield_callback = bounded_formfield
        model = Gift
        fields = ["name", "description", "points_price", "stock", "is_active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial.setdefault("stock_seen", self.instance.stock)

    def service_data(self) -> dict:
        data = super().service_data()
        data.pop("stock_seen", None)
        return data


class PackageForm(YuanConfigForm):
    yuan_fields = ("price",)
    price_yuan = yuan_field(_("Price (yuan)"))

    class Meta:
        formfield_callback = bounded_formfield
        model = Package
        fields = ["name", "description", "price_yuan", "validity_months", "max_covered", "item_code", "is_active"]


class EntitlementForm(ConfigForm):
    class Meta:
        formfield_callback = bounded_formfield
        model = PackageEntitlement
        fields = ["label", "category", "item_code", "quantity", "max_age"]
