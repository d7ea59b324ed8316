"""Staff-page forms: they parse input with translated messages; the services stay the authority (their typed
errors are mapped back onto the form with `add_domain_error`)."""

import re
import uuid
from decimal import Decimal, InvalidOperation
from itertools import zip_longest

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop, pgettext_lazy

from smileloop.core.bounds import bounded_formfield
from smileloop.core.errors import DomainError, ValidationFailed
from smileloop.core.forms import FORM_KEY_MAX_LENGTH, FORM_KEY_MISSING, FenFieldsMixin, form_key_valid, to_fen
from smileloop.core.messages import message_display
from smileloop.core.scoping import Scope
from smileloop.core.sql import choices_from
from smileloop.customers.enums import Relation
from smileloop.customers.forms import CONSENT_SOURCES, RELATIVE_NOT_FOUND
from smileloop.customers.models import Customer
from smileloop.customers.selectors import customer_find
from smileloop.membership.enums import BenefitTrigger
from smileloop.membership.models import FEN, MONTHS, Benefit, Membership, MembershipPlan, Tier
from smileloop.visits.enums import Category

# Service field names → form field names.
_FIELD_ALIASES = {"member_id": "member", "tier_id": "tier", "plan_id": "plan", "fee_fen": "fee_yuan",
                  "spend_threshold_fen": "spend_threshold_yuan", "min_spend_fen": "min_spend_yuan",
                  "min_topup_fen": "min_topup_yuan", "benefit_id": None, "discount_bp": "discount_percent",
                  "friend_discount_bp": "friend_discount_percent"}

# Service messages by error code, as staff read them.
ERROR_MESSAGES = {
    "membership_exists": _("This customer already has an active membership."),
    "plan_inactive": _("This plan is not active."),
    "tier_not_in_plan": _("Choose a tier of the chosen plan."),
    "not_qualified": _("The customer has not reached this tier's threshold yet."),
    "no_slots": _("All family slots of this card are in use. Unbind someone first."),
    "consent_missing": _("Record the consent: an adult must consent themselves (source and evidence); for a "
                         "minor the holder consents as guardian."),
    "already_bound": _("This person is already bound to another family card."),
    "own_membership": _("This person holds a membership of their own that is in force: a family slot is for a "
                        "relative without one."),
    "spouse_bound": _("This family card already has a spouse bound. Unbind them first."),
    "not_a_member": _("This customer has no active membership."),
    "downgrade_not_allowed": _("The current tier does not allow downgrades."),
    "not_an_upgrade": _("Choose a tier above the current one."),
    "not_a_downgrade": _("Choose a tier below the current one."),
    "lifetime_membership": _("A lifetime membership never expires; there is nothing to renew."),
    "membership_not_active": _("This membership is not active."),
    "self_reference": _("Choose another customer, not this one."),
    "benefit_not_in_tier": _("This benefit belongs to another tier than the member's current one."),
    "benefit_not_hidden": _("This benefit is visible; it needs no reveal."),
    "renewal_out_of_range": _("This membership already runs so far ahead that another renewal would pass the "
                              "last date the calendar holds."),
    "erased": _("This person's personal information was erased: no family card or friend link can be recorded for "
                "them."),
    "merged": _("This customer record was merged into another; use the surviving record."),
    "period_out_of_range": _("“%(name)s” is set up with a period too long to compute a date from; correct it in "
                             "the membership settings first."),
}


_PATTERNS = [
    (re.compile(r"^must be at least (?P<amount>[\d,.]+) yuan, the threshold of (?P<tier>.+) ranked below$"),
     gettext_noop("must be at least %(amount)s yuan, the threshold of %(tier)s ranked below")),
    (re.compile(r"^must be at most (?P<amount>[\d,.]+) yuan, the threshold of (?P<tier>.+) ranked above$"),
     gettext_noop("must be at most %(amount)s yuan, the threshold of %(tier)s ranked above")),
    (re.compile(r"^must be at least (?P<count>\d+): a card of this tier has (?P=count) family members bound; unbind "
                r"them first$"),
     gettext_noop("must be at least %(count)s: a card of this tier has %(count)s family members bound; unbind them "
                  "first")),
]


class DomainErrorMixin:
    def add_domain_error(self, exc: DomainError) -> None:
        if isinstance(exc, ValidationFailed):
            for error in exc.errors:
                name = _FIELD_ALIASES.get(error.field, error.field)
                self.add_error(name if name in self.fields else None,
                               message_display(error.message, patterns=_PATTERNS))
            return
        name = _FIELD_ALIASES.get(exc.field or "", exc.field)
        message = ERROR_MESSAGES.get(exc.code)
        message = message % getattr(exc, "params", {}) if message is not None else message_display(exc.message)
        self.add_error(name if name in self.fields else None, message)


# The services' fixed messages that the configuration forms show (translated by message_display).
SERVICE_MESSAGES = [
    gettext_noop("another plan of this chain has this name"),
    gettext_noop("another tier of this plan has this rank"),
    gettext_noop("could not be saved"),
    gettext_noop("a hidden benefit needs a trigger (staff decision at least)"),
    gettext_noop("only hidden benefits have a trigger"),
    gettext_noop("is required (at most 64 characters)"),
    gettext_noop("is required for a paid plan (a fee buys N months)"),
    gettext_noop("is required for a spend-based plan"),
    gettext_noop("cannot change while the plan has members: make a new plan instead"),
    gettext_noop("is required for the Nth-visit trigger"),
    gettext_noop("must be 0 or more"),
    gettext_noop("must be between 0 and 10000 basis points"),
    gettext_noop('must be a list of {"min_topup_fen": 1 to 10000000000, "bonus_fen": 0 to 10000000000} (fen)'),
    gettext_noop('"amount_fen" must be a whole number of fen between 1 and 10000000000'),
    gettext_noop('"valid_months" must be a whole number of months between 1 and 1200'),
]


YUAN_MAX = Decimal(FEN[1]) / 100  # the services' bound on amounts in fen


def yuan_field(label, *, required=False):
    return forms.DecimalField(label=label, required=required, min_value=0, max_value=YUAN_MAX, max_digits=12,
                              decimal_places=2)


class EnrolForm(DomainErrorMixin, forms.Form):
    plan = forms.ModelChoiceField(label=_("Plan"), queryset=MembershipPlan.objects.none())
    tier = forms.ModelChoiceField(label=_("Tier"), queryset=Tier.objects.none(), required=False,
                                  empty_label=_("— automatic —"),
                                  help_text=_("Paid plans: the lowest tier; other plans: the best tier reached."))
    fee_yuan = yuan_field(_("Fee recorded (yuan)"))

    def __init__(self, scope: Scope, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["plan"].queryset = MembershipPlan.objects.filter(chain_id=scope.chain_id, is_active=True)
        self.fields["tier"].queryset = Tier.objects.filter(plan__chain_id=scope.chain_id,
                                                           plan__is_active=True).select_related("plan")
        self.fields["tier"].label_from_instance = lambda t: f"{t.plan.name} · {t.name}"
        choices_from(self.fields["plan"], MembershipPlan, "t0.chain_id = %s AND t0.is_active", [scope.chain_id],
                     tail="ORDER BY t0.name, t0.id")
        choices_from(self.fields["tier"], Tier, "t1.chain_id = %s AND t1.is_active", [scope.chain_id],
                     related=("plan",), tail="ORDER BY t1.name, t1.id, t0.rank, t0.id")




class RenewForm(DomainErrorMixin, forms.Form):
    fee_yuan = yuan_field(_("Fee recorded (yuan)"))
    # Made when the form is shown: a retried POST (its answer lost) renews and records the fee once.
    key = forms.CharField(widget=forms.HiddenInput, max_length=FORM_KEY_MAX_LENGTH)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("initial", {}).setdefault("key", uuid.uuid4().hex)
        super().__init__(*args, **kwargs)
        sent = self.data.get(self.add_prefix("key"), "") if self.is_bound else None
        self.key_missing = sent is not None and form_key_valid(sent) is None
        if self.key_missing:
            # A post without the key its form renders (hand-made, or a page cached from before): refused, saying so
            # (clean: a hidden field's own error shows nowhere, it was a 422 without a word), and shown again with a
            # new key, so the form sent again from the card is taken.
            self.data = self.data.copy()
            self.data[self.add_prefix("key")] = uuid.uuid4().hex

    def clean(self):
        cleaned = super().clean()
        if self.key_missing:
            self.add_error(None, FORM_KEY_MISSING)
        return cleaned


class TierChangeForm(DomainErrorMixin, forms.Form):
    # "New tier" of the configuration pages creates one; here it is the tier to move to (its own translation).
    tier = forms.ModelChoiceField(label=pgettext_lazy("tier to change to", "New tier"), queryset=Tier.objects.none())
    reason = forms.CharField(label=_("Reason"), max_length=200, required=False)

    def __init__(self, *args, membership: Membership | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if membership is not None:
            # A tier's label names its plan (Tier.__str__): read the plan with it, not once per option.
            self.fields["tier"].queryset = Tier.objects.filter(plan_id=membership.plan_id).exclude(
                pk=membership.tier_id).select_related("plan").order_by("rank")


class CancelForm(DomainErrorMixin, forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=200)


class FamilyBindForm(DomainErrorMixin, forms.Form):
    member = forms.CharField(label=_("Family member"), max_length=32, help_text=_(
        "Mobile number or customer number of the relative (they must already be a customer)."))
    relation = forms.ChoiceField(label=_("Relation"), choices=[c for c in Relation.choices if c[0] != Relation.HEAD])
    consent_source = forms.ChoiceField(label=_("Consent given through"), choices=[("", "—")] + CONSENT_SOURCES,
                                       required=False)
    consent_evidence = forms.CharField(label=_("Consent evidence"), max_length=255, required=False, help_text=_(
        "Adults consent themselves: e.g. the signed form's number. For a minor the holder consents as guardian."))

    def __init__(self, scope: Scope, *args, holder: Customer, **kwargs):
        super().__init__(*args, **kwargs)
        self.scope, self.holder = scope, holder

    def clean_member(self) -> Customer:
        found = customer_find(self.scope, self.cleaned_data["member"])
        if found is None:
            raise forms.ValidationError(RELATIVE_NOT_FOUND, code="not_found")
        return found


class UnbindForm(DomainErrorMixin, forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=200, required=False)


class RevealForm(DomainErrorMixin, forms.Form):
    detail = forms.CharField(label=_("Why now?"), max_length=200, required=False)


# --- configuration -------------------------------------------------------------------------------------


class _YuanModelForm(FenFieldsMixin, DomainErrorMixin, forms.ModelForm):
    """Model fields in fen are edited in yuan (`<name>_yuan` form fields map to `<name>_fen` model fields), and in
    basis points as a percentage (`<name>_percent` → `<name>_bp`: staff type 12 for 12% off, not 1200)."""


class BonusRulesWidget(forms.Widget):
    """Rows of "top up ¥X → bonus ¥Y": the stored rules, then `blank_rows` empty rows for new ones (an empty row is
    ignored, so a rule is removed by emptying its row). Each row posts `<name>_topup` and `<name>_bonus`."""

    template_name = "membership/widgets/bonus_rules.html"
    blank_rows = 2

    def value_from_datadict(self, data, files, name):
        def values(key):
            if hasattr(data, "getlist"):
                return data.getlist(key)
            value = data.get(key, [])
            return [value] if isinstance(value, str) else list(value)

        topups, bonuses = values(f"{name}_topup"), values(f"{name}_bonus")
        return list(zip_longest(topups, bonuses, fillvalue=""))

    def value_omitted_from_data(self, data, files, name):
        return f"{name}_topup" not in data and f"{name}_bonus" not in data

    def id_for_label(self, id_):
        return f"{id_}_0_topup" if id_ else id_

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        rows = []
        for row in value if isinstance(value, list | tuple) else []:
            if isinstance(row, dict):  # a stored rule, in fen
                rows.append((_fen_text(row.get("min_topup_fen")), _fen_text(row.get("bonus_fen"))))
            elif isinstance(row, list | tuple) and any(str(v).strip() for v in row):  # as typed
                rows.append(tuple(str(v) for v in row))
        rows += [("", "")] * self.blank_rows
        context["widget"]["label"] = context["widget"]["attrs"].get("aria-label", "")
        base = context["widget"]["attrs"].get("id") or f"id_{name}"
        context["widget"]["rows"] = [{"topup": topup, "bonus": bonus, "id": f"{base}_{i}"}
                                     for i, (topup, bonus) in enumerate(rows)]
        return context


def _fen_text(fen) -> str:
    return str(Decimal(fen).scaleb(-2)) if isinstance(fen, int) and not isinstance(fen, bool) else ""


class BonusRulesField(forms.Field):
    """Top-up bonus rules typed in yuan, stored in fen: [{"min_topup_fen": …, "bonus_fen": …}] with positive amounts
    and thresholds that go up row by row (the wallet gives the bonus of the highest threshold a top-up reaches, so a
    repeated or lower threshold is a rule that never applies as written)."""

    widget = BonusRulesWidget

    def widget_attrs(self, widget):
        return {**super().widget_attrs(widget), "aria-label": self.label}  # names the group of rows

    def to_python(self, value) -> list[dict]:
        rules, errors, seen = [], [], {}
        for row_number, row in enumerate(value or [], 1):
            topup_text, bonus_text = (str(v).strip() for v in row)
            if not topup_text and not bonus_text:
                continue
            topup, bonus = _yuan_of(topup_text), _yuan_of(bonus_text)
            if topup is None or bonus is None:
                errors.append(forms.ValidationError(
                    _("Row %(row)s: type both amounts in yuan, e.g. 10000 and 1000 (at most two decimals)."),
                    code="invalid", params={"row": row_number}))
                continue
            if topup <= 0 or bonus <= 0 or topup > YUAN_MAX or bonus > YUAN_MAX:
                errors.append(forms.ValidationError(
                    _("Row %(row)s: both amounts must be above 0 and at most %(max)s yuan."),
                    code="out_of_range", params={"row": row_number, "max": f"{YUAN_MAX:,.0f}"}))
                continue
            if topup in seen:
                errors.append(forms.ValidationError(
                    _("Row %(row)s: a top-up of ¥%(yuan)s already has a bonus in row %(first)s."),
                    code="duplicate", params={"row": row_number, "yuan": f"{topup:,.2f}", "first": seen[topup]}))
                continue
            if rules and to_fen(topup) < rules[-1]["min_topup_fen"]:
                errors.append(forms.ValidationError(
                    _("Row %(row)s: list the top-ups from the smallest up (¥%(yuan)s comes after ¥%(previous)s)."),
                    code="not_ascending", params={"row": row_number, "yuan": f"{topup:,.2f}",
                                                  "previous": f"{Decimal(rules[-1]['min_topup_fen']).scaleb(-2):,.2f}"}))
                continue
            if bonus > topup:  # 充100送1000, a typo for 送100: more stored value given than paid in
                errors.append(forms.ValidationError(
                    _("Row %(row)s: the bonus must not exceed the top-up it rewards (at most ¥%(yuan)s)."),
                    code="bonus_above_topup", params={"row": row_number, "yuan": f"{topup:,.2f}"}))
                continue
            seen[topup] = row_number
            rules.append({"min_topup_fen": to_fen(topup), "bonus_fen": to_fen(bonus)})
        if errors:
            raise forms.ValidationError(errors)
        return rules


def _yuan_of(text: str) -> Decimal | None:
    """'10000', '¥10,000.50', '10 000' → Decimal; None when it is not an amount in yuan with at most two decimals."""
    cleaned = text.replace("¥", "").replace("￥", "").replace(",", "").replace("，", "").replace(" ", "")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount.as_tuple().exponent < -2:
        return None
    return amount


def percent_field(label, *, help_text=""):
    """A share in percent with at most two decimals (a basis point): 12 = 12% off."""
    return forms.DecimalField(label=label, min_value=0, max_value=100, max_digits=5, decimal_places=2,
                              help_text=help_text)


class PlanForm(_YuanModelForm):
    yuan_fields = ("fee", "spend_threshold")
    yuan_blank_is_none = ("spend_threshold",)  # no threshold: the plan is not spend-based
    fee_yuan = yuan_field(_("Fee (yuan)"))
    spend_threshold_yuan = yuan_field(_("Spend threshold (yuan)"))
    topup_bonus_rules = BonusRulesField(
        label=_("Top-up bonus rules"), required=False,
        help_text=_("Stored-value plans: a top-up of at least the amount gets the bonus of the highest row it "
                    "reaches. Leave a row empty to remove it."))

    class Meta:
        formfield_callback = bounded_formfield
        model = MembershipPlan
        fields = ["name", "kind", "fee_yuan", "duration_months", "spend_threshold_yuan", "topup_bonus_rules",
                  "auto_enrol", "is_active", "description"]


class TierForm(_YuanModelForm):
    yuan_fields = ("min_spend", "min_topup")
    percent_fields = ("discount", "friend_discount")
    discount_percent = percent_field(_("Discount (% off)"), help_text=_("12 = 12% off."))
    friend_discount_percent = percent_field(_("Friends' discount (% off)"),
                                            help_text=_("Friends who name a member get this off."))
    min_spend_yuan = yuan_field(_("Minimum cumulative spend (yuan)"))
    min_topup_yuan = yuan_field(_("Minimum cumulative top-up (yuan)"))
    topup_bonus_rules = BonusRulesField(
        label=_("Top-up bonus rules"), required=False,
        help_text=_("Rules of this tier only: when there are any, they replace the plan's for its members."))
    excluded_categories = forms.MultipleChoiceField(label=_("Excluded categories"), choices=Category.choices,
                                                    required=False, widget=forms.CheckboxSelectMultiple)

    class Meta:
        formfield_callback = bounded_formfield
        model = Tier
        fields = ["rank", "name", "discount_percent", "excluded_categories", "exclude_special_price",
                  "points_multiplier", "family_slots", "friend_discount_percent", "downgrade_allowed", "min_spend_yuan",
                  "min_topup_yuan", "topup_bonus_rules"]


FRIEND_CARD_ACTION = "issue_friend_card"  # what gift cards run when such a benefit is revealed


class BenefitForm(DomainErrorMixin, forms.ModelForm):
    """What the benefit does when revealed is chosen and filled in as fields (the friends-and-family card's amount
    and validity), not typed as JSON; other keys an API client stored in `action_data` are kept as they are."""

    trigger = forms.ChoiceField(label=_("Trigger"), choices=BenefitTrigger.choices, required=False)
    action = forms.ChoiceField(label=_("When revealed"), required=False, choices=[
        ("", _("Nothing else (shown on the member card)")),
        (FRIEND_CARD_ACTION, _("Give a friends-and-family card"))])
    card_amount_yuan = forms.DecimalField(label=_("Card amount (yuan)"), required=False, min_value=Decimal("0.01"),
                                          max_value=YUAN_MAX, max_digits=12, decimal_places=2,
                                          help_text=_("Empty: the chain's friends-and-family programme decides."))
    card_valid_months = forms.IntegerField(label=_("Card valid for (months)"), required=False, min_value=MONTHS[0],
                                           max_value=MONTHS[1])

    class Meta:
        formfield_callback = bounded_formfield
        model = Benefit
        fields = ["position", "name", "description", "is_hidden", "trigger", "trigger_n"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        data = self.instance.action_data or {}
        if not self.is_bound:
            self.initial["action"] = self.instance.action_code or ""
            if isinstance(data.get("amount_fen"), int):
                self.initial["card_amount_yuan"] = Decimal(data["amount_fen"]).scaleb(-2)  # 60000 → 600.00
            self.initial["card_valid_months"] = data.get("valid_months")
        if self.instance.action_code and self.instance.action_code != FRIEND_CARD_ACTION:
            # an action set through the API that the page does not know: offered as it is, so saving keeps it
            self.fields["action"].choices += [(self.instance.action_code, self.instance.action_code)]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("action") != FRIEND_CARD_ACTION:
            for name in ("card_amount_yuan", "card_valid_months"):
                if cleaned.get(name) is not None:
                    self.add_error(name, _("Only a benefit that gives a friends-and-family card has card terms."))
        return cleaned

    def service_data(self) -> dict:
        data = {k: v for k, v in self.cleaned_data.items()
                if k not in ("action", "card_amount_yuan", "card_valid_months")}
        action = self.cleaned_data.get("action") or ""
        action_data = {k: v for k, v in (self.instance.action_data or {}).items()
                       if k not in ("amount_fen", "valid_months")}
        if action == FRIEND_CARD_ACTION:
            amount = to_fen(self.cleaned_data.get("card_amount_yuan"))
            if amount is not None:
                action_data["amount_fen"] = amount
            if self.cleaned_data.get("card_valid_months") is not None:
                action_data["valid_months"] = self.cleaned_data["card_valid_months"]
        data["action_code"], data["action_data"] = action, action_data if action else {}
        return data
