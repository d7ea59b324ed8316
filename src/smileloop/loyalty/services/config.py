"""Writes of the loyalty configuration (staff pages and admin): earn rules, redeem terms, top-up bonus rules,
the gift catalogue, packages and their entitlements. Each validates the whole row (model constraints
included) and saves it, or raises ValidationFailed with field-by-field messages and saves nothing.

Every number has bounds (the models' `within` validators: periods of at most 100 years, amounts of at most 100
million yuan, …), checked first with a stable English message naming the field: a database CHECK would only name
its constraint, and an absurd period was accepted and then failed each award, top-up or sale that used it."""

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from smileloop.clinics.models import Chain
from smileloop.core.bounds import CONTROL_CHARACTERS, has_control, range_errors
from smileloop.core.dates import add_months
from smileloop.core.errors import FieldError, ValidationFailed
from smileloop.core.money import yuan_grouped
from smileloop.loyalty.enums import EarnTrigger
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


PENDING_OUTLASTS_VALIDITY = gettext_noop("must be shorter than the validity: the points would expire before they "
                                         "could be spent")
FIXED_RULE_NO_POINTS = gettext_noop("must be at least 1: a referral, check-in, review or profile rule that awards no "
                                    "points is refused each time staff award it (switch the rule off instead)")
CATEGORY_OR_ITEM = gettext_noop("choose a category or give an item code")


def text_errors(obj: models.Model, data: dict, fields: list[str]) -> list[FieldError]:
    """A name, label or code with a control character (a bell, an escape …) showed as nothing in the pickers and on
    the timeline: refused by field (line breaks and tabs are kept in a description)."""
    errors = []
    for name in fields:
        value, field = data.get(name), obj._meta.get_field(name)
        if isinstance(value, str) and isinstance(field, models.CharField | models.TextField):
            if has_control(value, allowed="\t\r\n" if isinstance(field, models.TextField) else ""):
                errors.append(FieldError(name, CONTROL_CHARACTERS, value[:40]))
    return errors


def _validation_failed(exc: ValidationError) -> ValidationFailed:
    return ValidationFailed([FieldError(name if name != "__all__" else "", str(message))
                             for name, messages in exc.message_dict.items() for message in messages])


@transaction.atomic
def _save(obj: models.Model, data: dict, fields: list[str], check=None) -> models.Model:
    """`check(obj)`: the row's own rules across fields, checked on the row as it would be saved (field errors)."""
    errors = range_errors(type(obj), data, fields) + text_errors(obj, data, fields)
    if errors:
        raise ValidationFailed(errors)
    for name in fields:
        if name in data:
            setattr(obj, name, data[name])
    try:
        obj.full_clean(validate_constraints=False)
        if check is not None and (errors := check(obj)):
            raise ValidationFailed(errors)
        obj.validate_constraints()
    except ValidationError as exc:
        raise _validation_failed(exc)
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError:
        # Two staff saved the same code or name at once: both passed the unique check, the second insert met the
        # first's row. Checked again, it is the form's refusal, not a 500.
        try:
            obj.full_clean()
        except ValidationError as exc:
            raise _validation_failed(exc)
        raise
    return obj


def _shortest_span_days(months: int) -> int:
    """The fewest days `months` months can last (from a month's end: Jan 31 + 1 month = Feb 28)."""
    starts = [timezone.make_aware(dt.datetime(2024 + year, month, 28 + day, 12))
              for year in range(4) for month in range(1, 13) for day in range(4)
              if 28 + day <= (dt.date(2024 + year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).day]
    return min((add_months(start, months) - start).days for start in starts)


def earn_rule_errors(rule: EarnRule) -> list[FieldError]:
    errors = []
    code = (rule.code or "").lower()
    if code and rule.chain_id:
        # Codes are told apart whatever their case (the model saves them lower case): "Referral" beside "referral"
        # was never found by the services that award by code. A pair saved before this keeps working (lookups prefer
        # the exact code), but neither may be saved again with the code they share: one of them gets another code.
        # (The same code in the same case is the unique constraint's refusal.)
        twin = (EarnRule.objects.filter(chain_id=rule.chain_id, code__iexact=code).exclude(pk=rule.pk)
                .exclude(code=code).order_by("id").values_list("code", flat=True).first())
        if twin is not None:
            errors.append(FieldError("code", _("another earn rule of this chain has the code %(code)s: codes do not "
                                               "tell upper and lower case apart, give this rule another code")
                                     % {"code": twin}, rule.code))
    if rule.validity_months and rule.pending_days >= _shortest_span_days(rule.validity_months):
        # 90 pending days and 1 month of validity: every point the rule gave expired before it could be spent.
        errors.append(FieldError("pending_days", PENDING_OUTLASTS_VALIDITY, str(rule.pending_days)))
    if rule.trigger != EarnTrigger.SPEND and rule.points <= 0:
        errors.append(FieldError("points", FIXED_RULE_NO_POINTS, str(rule.points)))
    if rule.trigger == EarnTrigger.SPEND and rule.is_active:
        # Of two active spend rules on the same lines, the older one applies (`spend_rule_for`): a second one (double
        # points on cleanings) was saved and silently never earned anything.
        twin = (EarnRule.objects.filter(chain_id=rule.chain_id, trigger=EarnTrigger.SPEND, is_active=True,
                                        category=rule.category, special_price=rule.special_price)
                .exclude(pk=rule.pk).order_by("id").first())
        if twin is not None:
            errors.append(FieldError("", _("The active rule %(code)s already earns on the same category and "
                                           "special-price items, and only one rule applies to a line: switch it off "
                                           "or change it first.") % {"code": twin.code}, twin.code))
    return errors


def earn_rule_save(*, chain: Chain, data: dict, rule: EarnRule | None = None) -> EarnRule:
    return _save(rule or EarnRule(chain=chain), data, EARN_RULE_FIELDS, check=earn_rule_errors)


def topup_bonus_rule_errors(rule: TopupBonusRule) -> list[FieldError]:
    """A bonus above the top-up it rewards (充100送1000, a typo for 送100) gave away more stored value than was paid
    in, to every patient who topped up that much. A rule switched off pays nothing: it is saved as it is (the desk's
    refusal of a stored one says "correct or deactivate it"), and checked again when switched back on."""
    minimum, bonus = rule.min_topup_fen, rule.bonus_fen
    if rule.is_active and isinstance(minimum, int) and isinstance(bonus, int) and bonus > minimum:
        return [FieldError("bonus_fen", _("must not exceed the top-up it rewards: at most ¥%(minimum)s, the minimum "
                                          "top-up (¥%(bonus)s was given)")
                           % {"minimum": yuan_grouped(minimum), "bonus": yuan_grouped(bonus)}, str(bonus))]
    return []


def topup_bonus_rule_save(*, chain: Chain, data: dict, rule: TopupBonusRule | None = None) -> TopupBonusRule:
    return _save(rule or TopupBonusRule(chain=chain), data, BONUS_RULE_FIELDS, check=topup_bonus_rule_errors)


@transaction.atomic
def redeem_terms_save(*, chain: Chain, data: dict) -> RedeemSettings:
    """The chain's one row, created on the first save (two first saves at once: one row, the second updates it; a
    refused first save creates nothing)."""
    row, _created = RedeemSettings.objects.get_or_create(chain=chain)
    return _save(row, data, REDEEM_FIELDS)


def gift_save(*, chain: Chain, data: dict, gift: Gift | None = None, stock_seen: int | None = None) -> Gift:
    """Catalogue edits. Stock set here is the new count (exchanges take it down with conditional UPDATEs).
    `stock_seen`: the stock the editor was shown (the staff page's form). The stock typed is then a change of it (10
    shown, 15 typed: 5 more), made to the stock as it is now under the row's lock: a count written over it undid the
    exchanges made while the page was open (stock handed out twice) and another editor's restock."""
    stock = data.get("stock")
    if gift is None or stock_seen is None or not isinstance(stock, int) or isinstance(stock, bool):
        return _save(gift or Gift(chain=chain), data, GIFT_FIELDS)
    with transaction.atomic():
        current = Gift.objects.select_for_update().values_list("stock", flat=True).get(pk=gift.pk)
        return _save(gift, {**data, "stock": current + stock - stock_seen}, GIFT_FIELDS)


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


def entitlement_errors(entitlement: PackageEntitlement) -> list[FieldError]:
    """What it covers: a category, or an item of the chain's catalogue (an unknown or mistyped code was kept and then
    matched no visit, so the patient's cleanings were never covered)."""
    code = entitlement.item_code
    if not entitlement.category and not code:
        return [FieldError("category", CATEGORY_OR_ITEM), FieldError("item_code", CATEGORY_OR_ITEM)]
    if code and not ServiceItem.objects.filter(chain_id=entitlement.package.chain_id, code=code).exists():
        return [FieldError("item_code", _("%(code)s is not in the service catalogue") % {"code": code}, code)]
    return []


def package_entitlement_save(*, package: Package, data: dict,
                             entitlement: PackageEntitlement | None = None) -> PackageEntitlement:
    if isinstance(data.get("item_code"), str):
        data = {**data, "item_code": data["item_code"].strip()}
    return _save(entitlement or PackageEntitlement(package=package), data, ENTITLEMENT_FIELDS,
                 check=entitlement_errors)
