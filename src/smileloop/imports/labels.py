"""How the import preview names fields and shows values to staff: labels in the staff's language, choice codes
as their labels, phone numbers masked (the page is a preview of what will be stored, not a way round the
masking rule). The stored report keeps the raw field names and values; only the page translates them."""

from django.utils.translation import gettext_lazy as _

from smileloop.customers.enums import Channel, ConsentPurpose, Gender
from smileloop.customers.normalize import phone_mask
from smileloop.imports.enums import ImportKind
from smileloop.imports.services.headers import (
    CONSENT_FIELDS,
    CUSTOMER_HEADERS,
    IDENTITY_FIELDS,
    ORDER_HEADERS,
)
from smileloop.visits.enums import PaymentMethod

# The customers preview names the campaign by its model field; everything else by its import field.
_ALIASES = {"first_touch_campaign": "campaign"}

FIELD_LABELS = {
    "name": _("Name"), "mobile": _("Mobile"), "gender": _("Gender"), "birthday": _("Birthday"),
    "home_clinic": _("Home clinic"), "source": _("Source"), "campaign": _("Campaign"),
    "community": _("Community"), "address": _("Address"),
    "notes": _("Notes"), "consultant": _("Consultant"), "latitude": _("Latitude"), "longitude": _("Longitude"),
    "order_no": _("Order no."), "clinic": _("Clinic"), "date": _("Date"), "item_code": _("Item code"),
    "item_name": _("Item"), "quantity": _("Quantity"), "unit_price": _("Unit price"), "discount": _("Discount"),
    "amount": _("Amount"), "payment_method": _("Payment method"), "tooth": _("Tooth"),
    "guardian_mobile": _("Guardian's phone"), "guardian_relation": _("Guardian's relation"),
    "guardian_name": _("Guardian"),
    **{field: kind.label for field, kind in IDENTITY_FIELDS.items()},
    **{field: ConsentPurpose(purpose).label for field, purpose in CONSENT_FIELDS.items()},
}

# Columns are shown in the order of the header tables (name, phone, … for people; order number, phone, … for
# orders). The stored report cannot keep the file's order: on PostgreSQL it is jsonb, which keeps an object's
# keys sorted by length, not as inserted.
_RANKS = {kind: {field: i for i, field in enumerate(headers)}
          for kind, headers in ((ImportKind.CUSTOMERS, CUSTOMER_HEADERS), (ImportKind.ORDERS, ORDER_HEADERS))}


def field_sort_key(kind: str):
    """Sort key for `kind`'s fields: known fields in header-table order, then any other by name — the same
    order on SQLite and PostgreSQL."""
    rank = _RANKS.get(kind, {})

    def key(field: str) -> tuple[int, str]:
        return rank.get(_ALIASES.get(field, field), len(rank)), field

    return key


_CHOICES = {"gender": Gender, "source": Channel, "payment_method": PaymentMethod}


def field_label(field: str) -> str:
    """The label of an import field; an unknown name (a field added later) is shown as it is."""
    field = _ALIASES.get(field, field)
    return FIELD_LABELS.get(field, field)


def preview_cell(field: str, value: str) -> str:
    if not value:
        return ""
    if field == "mobile":
        return phone_mask(value)
    if field in _CHOICES:
        try:
            return _CHOICES[field](value).label
        except ValueError:
            return value
    if field in CONSENT_FIELDS:
        return {"True": _("Granted"), "False": _("Not granted")}.get(value, value)
    return value
