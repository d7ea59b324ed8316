"""Shared pieces of the staff pages' forms.

Money is stored in integer fen and shares in basis points, but staff type yuan (2980.00, not 298000) and percent
(12 for 12% off, not 1200). `FenFieldsMixin` is the one place that converts between the two, for every
configuration form of every app."""

from decimal import Decimal

from django.utils.translation import gettext_lazy

# A post without the one-time key its form renders (hand-made, or a page cached from before the key): every form
# that writes once per key (checkout pay and refund, registration, renewal) refuses it with these words.
FORM_KEY_MISSING = gettext_lazy("This form is incomplete (its key is missing): reload the page and try again. Nothing "
                                "was recorded.")
# A page makes 32 hex digits; what a form sends back is taken as its key up to this length.
FORM_KEY_MAX_LENGTH = 64


def form_key_valid(value: str | None) -> str | None:
    """The one-time key a form sent back, stripped; None when it is not one a page could have made (empty, longer
    than FORM_KEY_MAX_LENGTH, or with a character that is not printable: a NUL cannot be stored on PostgreSQL).
    The one rule of every form that writes once per key: the caller refuses None with FORM_KEY_MISSING."""
    key = (value or "").strip()
    return key if 0 < len(key) <= FORM_KEY_MAX_LENGTH and key.isprintable() else None


def to_fen(value: Decimal | None) -> int | None:
    """Yuan (at most two decimals, as the form fields allow) in fen; None stays None."""
    return None if value is None else int(value * 100)


class FenFieldsMixin:
    """A (model) form whose `<name>_yuan` fields stand for the instance's and the service's `<name>_fen`, and whose
    `<name>_percent` fields for `<name>_bp`. The form shows the instance's values converted; `service_data()` gives
    the cleaned data with the converted keys instead (an empty amount is 0 fen, or None for the names listed in
    `yuan_blank_is_none`; an empty share is 0). Put it before the form class: it extends a `service_data` the form
    already has."""

    yuan_fields: tuple[str, ...] = ()
    percent_fields: tuple[str, ...] = ()
    yuan_blank_is_none: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.is_bound:
            return
        instance = getattr(self, "instance", None)
        for name in self.yuan_fields:
            fen = getattr(instance, f"{name}_fen", None)
            if fen is not None:
                self.initial[f"{name}_yuan"] = Decimal(fen).scaleb(-2)  # 298000 → 2980.00
        for name in self.percent_fields:
            bp = getattr(instance, f"{name}_bp", None)
            if bp is not None:
                self.initial[f"{name}_percent"] = (Decimal(bp) / 100).normalize()  # 1200 → 12, 1250 → 12.5

    def service_data(self) -> dict:
        base = getattr(super(), "service_data", None)
        data = base() if base is not None else dict(self.cleaned_data)
        for name in self.yuan_fields:
            fen = to_fen(data.pop(f"{name}_yuan", None))
            data[f"{name}_fen"] = fen if fen is not None or name in self.yuan_blank_is_none else 0
        for name in self.percent_fields:
            percent = data.pop(f"{name}_percent", None)
            data[f"{name}_bp"] = int(percent * 100) if percent is not None else 0
        return data
