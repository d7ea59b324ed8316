"""core.forms: the one conversion between what staff type (yuan, percent) and what is stored (fen, basis points)."""

from decimal import Decimal
from types import SimpleNamespace

from django import forms

from smileloop.core.forms import FenFieldsMixin


class PriceForm(FenFieldsMixin, forms.Form):
    yuan_fields = ("price", "threshold")
    percent_fields = ("discount",)
    yuan_blank_is_none = ("threshold",)
    name = forms.CharField()
    price_yuan = forms.DecimalField(required=False, max_digits=12, decimal_places=2)
    threshold_yuan = forms.DecimalField(required=False, max_digits=12, decimal_places=2)
    discount_percent = forms.DecimalField(required=False, max_digits=5, decimal_places=2)

    def __init__(self, *args, instance=None, **kwargs):
        self.instance = instance
        super().__init__(*args, **kwargs)


def test_a_form_shows_fen_as_yuan_and_basis_points_as_percent():
    form = PriceForm(instance=SimpleNamespace(price_fen=298000, threshold_fen=None, discount_bp=1250))
    assert form.initial == {"price_yuan": Decimal("2980.00"), "discount_percent": Decimal("12.5")}


def test_service_data_has_fen_and_basis_points_instead_of_yuan_and_percent():
    form = PriceForm({"name": "洁牙", "price_yuan": "2980.5", "threshold_yuan": "", "discount_percent": "12"})
    assert form.is_valid(), form.errors
    assert form.service_data() == {"name": "洁牙", "price_fen": 298050, "threshold_fen": None, "discount_bp": 1200}
    empty = PriceForm({"name": "x"})
    assert empty.is_valid() and empty.service_data() == {"name": "x", "price_fen": 0, "threshold_fen": None,
                                                         "discount_bp": 0}


def test_the_membership_and_loyalty_configuration_forms_share_the_one_conversion():
    from smileloop.loyalty.forms import BonusRuleForm, PackageForm, RedeemTermsForm
    from smileloop.membership.forms import PlanForm, TierForm

    for form in (PlanForm, TierForm, BonusRuleForm, PackageForm, RedeemTermsForm):
        assert issubclass(form, FenFieldsMixin), form
        assert "service_data" not in vars(form) and "__init__" not in vars(form), form
    assert (TierForm.percent_fields, RedeemTermsForm.percent_fields) == (("discount", "friend_discount"),
                                                                         ("max_share",))
