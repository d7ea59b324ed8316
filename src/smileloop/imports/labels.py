"""How the import preview names fields and shows values to staff: labels in the staff's language, choice codes
as their labels, phone numbers masked (the page is a preview of what will be stored, not a way round the
masking rule). The stored report keeps the raw field names and values; only the page translates them."""

from django.utils.translation import gettext_lazy as _

from smileloop.customers.enums import Channel, ConsentPurpose, Gender, IdentityKind
from smileloop.customers.normalize import phone_mask
from smileloop.visits.enums import PaymentMethod

_IDENTITY = {"wechat_openid": IdentityKind.WECHAT_OPENID, "wechat_unionid": IdentityKind.WECHAT_UNIONID,
             "wecom_external_userid": IdentityKind.WECOM_EXTERNAL_USERID, "douyin_openid": IdentityKind.DOUYIN_OPENID,
             "pms_id": IdentityKind.PMS}

FIELD_LABELS = {
    "name": _("Name"), "mobile": _("Mobile"), "gender": _("Gender"), "birthday": _("Birthday"),
    "home_clinic": _("Home clinic"), "source": _("Source"), "campaign": _("Campaign"),
    "first_touch_campaign": _("Campaign"), "community": _("Community"), "address": _("Address"),
    "notes": _("Notes"), "consultant": _("Consultant"), "latitude": _("Latitude"), "longitude": _("Longitude"),
    "order_no": _("Order no."), "clinic": _("Clinic"), "date": _("Date"), "item_code": _("Item code"),
    "item_name": _("Item"), "quantity": _("Quantity"), "unit_price": _("Unit price"), "discount": _("Discount"),
    "amount": _("Amount"), "payment_method": _("Payment method"), "tooth": _("Tooth"),
    **{field: kind.label for field, kind in _IDENTITY.items()},
    **{f"consent_{purpose.value}": purpose.label for purpose in ConsentPurpose},
}

# The order fields are shown in. The stored report cannot keep the file's order: on PostgreSQL it is jsonb,
# which keeps an object's keys sorted by length, not as inserted.
FIELD_ORDER = ["order_no", "date", "clinic", "name", "mobile", "pms_id", "item_code", "item_name", "quantity",
               "unit_price", "discount", "amount", "payment_method", "tooth", "gender", "birthday", "home_clinic",
               "source", "campaign", "first_touch_campaign", "community", "address", "notes", "consultant",
               "wechat_openid", "wechat_unionid", "wecom_external_userid", "douyin_openid", "latitude", "longitude",
               *(f"consent_{purpose.value}" for purpose in ConsentPurpose)]
_RANK = {field: i for i, field in enumerate(FIELD_ORDER)}


def field_sort_key(field: str) -> tuple[int, str]:
    """Known fields in FIELD_ORDER, then any other by name: the same order on SQLite and PostgreSQL."""
    return _RANK.get(field, len(_RANK)), field


_CHOICES = {"gender": Gender, "source": Channel, "payment_method": PaymentMethod}


def field_label(field: str) -> str:
    """The label of an import field; an unknown name (a field added later) is shown as it is."""
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
    if field.startswith("consent_"):
        return {"True": _("Granted"), "False": _("Not granted")}.get(value, value)
    return value
