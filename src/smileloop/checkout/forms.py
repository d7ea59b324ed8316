"""Forms of the checkout pages. The bill form turns the cashier's input into checkout_price arguments; lines
are repeated fields (item, quantity, tooth) read by position, so a line can be added without JavaScript."""

import re
import unicodedata

from django import forms
from django.utils.translation import gettext_lazy as _

from smileloop.checkout.pricing import MAX
from smileloop.core.errors import DomainError
from smileloop.core.money import yuan_to_fen
from smileloop.giftcards.codes import LENGTH as CODE_LENGTH
from smileloop.visits.enums import TENDER_METHODS, PaymentMethod

PAY_METHODS = [(m.value, m.label) for m in PaymentMethod if m not in TENDER_METHODS]
MAX_LINES = 20


def _code_symbols(text: str) -> int:
    """How many of a code's symbols `text` holds (as giftcards.codes reads it: full-width folded, case and
    separators ignored)."""
    return len(re.sub(r"[^0-9A-Z]", "", unicodedata.normalize("NFKC", text).upper()))


def codes_split(value: str) -> list[str]:
    """The codes the cashier entered, separated by commas, semicolons or spaces. A code typed in its groups with spaces
    (EM4C TWHM FZXZ, as printed on a voucher or read aloud) is one code: its groups are joined until they hold a
    code's 12 symbols (the code look-up page reads it so; split, each group was an unknown code)."""
    codes = []
    for chunk in re.split(r"[,，;；]+", value or ""):
        pending: list[str] = []
        for token in chunk.split():
            if pending and _code_symbols("".join(pending + [token])) > CODE_LENGTH:
                codes.append(" ".join(pending))  # groups that make no code: named as typed
                pending = []
            pending.append(token)
            if _code_symbols("".join(pending)) >= CODE_LENGTH:
                codes.append(" ".join(pending))
                pending = []
        if pending:
            codes.append(" ".join(pending))
    return codes


class BillForm(forms.Form):
    clinic = forms.TypedChoiceField(label=_("Clinic"), coerce=int)
    vouchers = forms.CharField(label=_("Voucher codes"), required=False, max_length=400,
                               help_text=_("One or more codes, separated by spaces or commas."))
    gift_cards = forms.CharField(label=_("Gift card codes"), required=False, max_length=400)
    points_mode = forms.ChoiceField(label=_("Points"), initial="none",
                                    choices=[("none", _("Do not use")), ("max", _("As many as allowed")),
                                             ("number", _("This many:"))])
    points = forms.IntegerField(label=_("Points to use"), required=False, min_value=1)
    wallet_mode = forms.ChoiceField(label=_("Stored value"), initial="none",
                                    choices=[("none", _("Do not use")), ("own", _("Own wallet")),
                                             ("family", _("Family holder's wallet"))])
    wallet_amount = forms.CharField(label=_("Amount from the wallet (yuan)"), required=False, max_length=20,
                                    help_text=_("Empty: as much as possible."))
    per_use_consent = forms.BooleanField(label=_("The holder consents to this use"), required=False)

    def __init__(self, *args, clinics=(), holder=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["clinic"].choices = [(c.id, c.name) for c in clinics]
        self.holder = holder
        if holder is None:
            self.fields["wallet_mode"].choices = self.fields["wallet_mode"].choices[:2]

    def clean(self):
        data = super().clean()
        if data.get("points_mode") == "number" and not data.get("points"):
            self.add_error("points", _("Enter the number of points to use."))
        amount = (data.get("wallet_amount") or "").strip()
        if amount:
            try:
                data["wallet_fen"] = yuan_to_fen(amount, field="wallet_amount")
            except DomainError:
                self.add_error("wallet_amount", _("Enter an amount in yuan, e.g. 50 or 49.90."))
            else:
                if data["wallet_fen"] < 0:
                    self.add_error("wallet_amount", _("Enter an amount of 0 or more (empty: as much as possible)."))
        return data

    def price_arguments(self, *, customer) -> dict:
        """checkout_price's arguments except customer/clinic/lines (the view adds them)."""
        data = self.cleaned_data
        points = {"none": 0, "max": MAX}.get(data["points_mode"], data.get("points") or 0)
        wallet = None
        if data["wallet_mode"] in ("own", "family"):
            holder = self.holder if data["wallet_mode"] == "family" and self.holder is not None else customer
            wallet = {"holder": holder, "amount_fen": data.get("wallet_fen", MAX),
                      "per_use_consent": bool(data.get("per_use_consent"))}
        return {"vouchers": codes_split(data.get("vouchers")), "gift_cards": codes_split(data.get("gift_cards")),
                "points": points, "wallet": wallet}


def lines_from(data) -> list[dict]:
    """The bill's lines from the repeated fields item / quantity / tooth; rows without an item are skipped."""
    items, quantities, teeth = data.getlist("item"), data.getlist("quantity"), data.getlist("tooth")
    lines = []
    for i, item in enumerate(items[:MAX_LINES]):
        if not item:
            continue
        raw = quantities[i] if i < len(quantities) else "1"
        try:
            quantity = int(raw or 1)
        except ValueError:
            quantity = raw  # checkout_price reports it on the line
        try:
            item_id = int(item)
        except ValueError:
            item_id = None
        lines.append({"item_id": item_id, "item_code": None if item_id else item, "quantity": quantity,
                      "tooth": (teeth[i] if i < len(teeth) else "").strip()})
    return lines


def payments_from(data, cash_fen: int) -> list[dict]:
    """The cash remainder's payments: up to two (method, yuan) rows; with no amounts entered, the whole
    remainder on the first method."""
    methods, amounts = data.getlist("pay_method"), data.getlist("pay_amount")
    valid = {m for m, _label in PAY_METHODS}
    rows = []
    for i, method in enumerate(methods[:2]):
        amount = (amounts[i] if i < len(amounts) else "").strip()
        if amount:
            rows.append({"method": method if method in valid else "", "amount_fen": yuan_to_fen(amount,
                                                                                             field="payments")})
    if not rows and cash_fen:
        rows = [{"method": methods[0] if methods and methods[0] in valid else PaymentMethod.CASH,
                 "amount_fen": cash_fen}]
    return rows


class RefundForm(forms.Form):
    scope = forms.ChoiceField(label=_("Refund"), initial="all",
                              choices=[("all", _("The whole bill (what is left)")), ("lines", _("Selected lines"))])
    reason = forms.CharField(label=_("Reason"), max_length=255)


class HolderForm(forms.Form):
    customer = forms.IntegerField(label=_("Customer number of the holder"), min_value=1)
