"""Writes of the loyalty configuration (staff pages and admin): earn rules, redeem terms, top-up bonus rules,
the gift catalogue, packages and their entitlements. Each validates the whole row (model constraints
included) and saves it, or raises ValidationFailed with field-by-field messages and saves nothing.

Every number has bounds (the models' `within` validators: periods of at most 100 years, amounts of at most 100
million yuan, …), checked first with a stable English message naming the field: a database CHECK would only name
its constraint, and an absurd period was accepted and then failed each award, top-up or sale that used it."""

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils.translation import gettext as _

from smileloop.clinics.models import Chain
from smileloop.core.bounds import range_errors
from smileloop.core.errors import FieldError, ValidationFailed
from smileloop.loyalty.models import (
    EarnRule,
    Gift,
    Package,
    PackageEntitlement,
    RedeemSettings,
    TopupBonusRule,
)
from smileloop.visits.models import ServiceItem

EARN_RULE_FIELDS = ["code", "name", "trigger", "category", "special_price", "points_per_yuan", "points",
                    "pending_days", "validity_months", "is_active"]
BONUS_RULE_FIELDS = ["min_topup_fen", "bonus_fen", "validity_months", "is_active"]
REDEEM_FIELDS = ["points_per_yuan", "max_share_bp", "is_enabled"]
GIFT_FIELDS = ["name", "description", "points_price", "stock", "is_active"]
PACKAGE_FIELDS = ["name", "description", "price_fen", "validity_months", "max_covered", "item_code", "is_active"]
ENTITLEMENT_FIELDS = ["label", "category", "item_code", "quantity", "max_age"]


@transaction.atomic
def _save(obj: models.Model, data: dict, fields: list[str]) -> models.Model:
    errors = range_errors(type(obj), data, fields)
    if errors:
        raise ValidationFailed(errors)
    for name in fields:
        if name in data:
            setattr(obj, name, data[name])
    try:
        obj.full_clean()
    except ValidationError as exc:
        errors = [FieldError(name if name != "__all__" else "", str(message))
                  for name, messages in exc.message_dict.items() for message in messages]
        raise ValidationFailed(errors)
    obj.save()
    return obj


def earn_rule_save(*, chain: Chain, data: dict, rule: EarnRule | None = None) -> EarnRule:
    return _save(rule or EarnRule(chain=chain), data, EARN_RULE_FIELDS)


def topup_bonus_rule_save(*, chain: Chain, data: dict, rule: TopupBonusRule | None = None) -> TopupBonusRule:
    return _save(rule or TopupBonusRule(chain=chain), data, BONUS_RULE_FIELDS)


def redeem_terms_save(*, chain: Chain, data: dict) -> RedeemSettings:
    row = RedeemSettings.objects.filter(chain=chain).first() or RedeemSettings(chain=chain)
    return _save(row, data, REDEEM_FIELDS)


def gift_save(*, chain: Chain, data: dict, gift: Gift | None = None) -> Gift:
    """Catalogue edits. Stock set here is the new count (exchanges take it down with conditional UPDATEs)."""
    return _save(gift or Gift(chain=chain), data, GIFT_FIELDS)


def package_save(*, chain: Chain, data: dict, package: Package | None = None) -> Package:
    """Edits apply to later sales only: each sale snapshots the entitlements it grants."""
    code = str(data.get("item_code") or "").strip()
    if "item_code" in data:
        data = {**data, "item_code": code}
    unknown = [FieldError("item_code", _("%(code)s is not in the service catalogue") % {"code": code}, code)
               ] if code and not ServiceItem.objects.filter(chain=chain, code=code).exists() else []
    with transaction.atomic():  # every refusal at once; an unknown item undoes the save
        try:
            saved = _save(package or Package(chain=chain), data, PACKAGE_FIELDS)
        except ValidationFailed as exc:
            raise ValidationFailed(unknown + exc.errors)
        if unknown:
            raise ValidationFailed(unknown)
    return saved


def package_entitlement_save(*, package: Package, data: dict,
                             entitlement: PackageEntitlement | None = None) -> PackageEntitlement:
    return _save(entitlement or PackageEntitlement(package=package), data, ENTITLEMENT_FIELDS)
