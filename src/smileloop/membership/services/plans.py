"""Programme configuration: plans, tiers and benefits (edited by Perm.CONFIG roles in the staff pages).

Every number has bounds (the models' `within` validators: durations of at most 100 years, amounts of at most 100
million yuan, ranks 1–100, …), refused with a stable English message naming the field: an absurd duration was
accepted and then failed each enrolment in the plan."""

from django.db import IntegrityError, transaction
from django.db.models import Count

from smileloop.clinics.models import Chain
from smileloop.core.bounds import range_errors
from smileloop.core.errors import FieldError, ValidationFailed
from smileloop.membership.enums import BenefitTrigger, PlanKind
from smileloop.membership.models import FEN, MONTHS, Benefit, FamilyBinding, MembershipPlan, Tier
from smileloop.membership.services._common import yuan
from smileloop.visits.enums import Category

PLAN_FIELDS = ["name", "kind", "fee_fen", "duration_months", "spend_threshold_fen", "topup_bonus_rules",
               "is_active", "auto_enrol", "description"]
TIER_FIELDS = ["rank", "name", "discount_bp", "excluded_categories", "exclude_special_price", "points_multiplier",
               "family_slots", "friend_discount_bp", "downgrade_allowed", "min_spend_fen", "min_topup_fen",
               "topup_bonus_rules"]
BENEFIT_FIELDS = ["position", "name", "description", "is_hidden", "trigger", "trigger_n", "action_code", "action_data"]


def _whole(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _bonus_rules_errors(rules, field: str) -> list[FieldError]:
    if not isinstance(rules, list) or not all(
            isinstance(r, dict) and _whole(r.get("min_topup_fen"), 1, FEN[1]) and _whole(r.get("bonus_fen"), *FEN)
            for r in rules):
        return [FieldError(field, 'must be a list of {"min_topup_fen": 1 to 10000000000, "bonus_fen": 0 to '
                                  '10000000000} (fen)', str(rules)[:100])]
    # A bonus above the top-up it rewards (充100送1000, a typo for 送100) gives every patient who tops up that much more
    # stored value than they paid in; the loyalty app's own bonus rules refuse the same (topup_bonus_rule_errors).
    return [FieldError(field, f"rule {i}: the bonus ({r['bonus_fen']} fen) must not exceed the top-up it rewards "
                              f"({r['min_topup_fen']} fen)", str(r)[:100])
            for i, r in enumerate(rules, 1) if r["bonus_fen"] > r["min_topup_fen"]]


def _action_data_errors(data) -> list[FieldError]:
    """The friend-card action's amount and validity (giftcards makes a programme from them): bounded like a plan's."""
    if not isinstance(data, dict):
        return []
    errors = []
    if "amount_fen" in data and not _whole(data["amount_fen"], 1, FEN[1]):
        errors.append(FieldError("action_data", '"amount_fen" must be a whole number of fen between 1 and '
                                 "10000000000", str(data["amount_fen"])[:100]))
    if "valid_months" in data and not _whole(data["valid_months"], *MONTHS):
        errors.append(FieldError("action_data", '"valid_months" must be a whole number of months between 1 and 1200',
                                 str(data["valid_months"])[:100]))
    return errors


def _plan_errors(data: dict) -> list[FieldError]:
    errors = []
    kind = data.get("kind")
    if kind not in PlanKind.values:
        errors.append(FieldError("kind", f"must be one of {', '.join(PlanKind.values)}", str(kind)))
    if not str(data.get("name") or "").strip():
        errors.append(FieldError("name", "is required"))
    errors += range_errors(MembershipPlan, data, ["fee_fen", "duration_months", "spend_threshold_fen"])
    if kind == PlanKind.PAID and not data.get("duration_months"):
        errors.append(FieldError("duration_months", "is required for a paid plan (a fee buys N months)"))
    if kind == PlanKind.SPEND_BASED and not data.get("spend_threshold_fen"):
        errors.append(FieldError("spend_threshold_fen", "is required for a spend-based plan"))
    errors += _bonus_rules_errors(data.get("topup_bonus_rules") or [], "topup_bonus_rules")
    return errors


def _save(instance, fields: list[str], data: dict, unique_field: str, unique_message: str):
    for name in fields:
        if name in data:
            setattr(instance, name, data[name])
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError:
        raise ValidationFailed([FieldError(unique_field, unique_message, str(data.get(unique_field)))])
    return instance


def plan_errors(merged: dict, plan: MembershipPlan | None) -> list[FieldError]:
    """Everything `plan_save` refuses in these values (the admin's form asks it too)."""
    errors = _plan_errors(merged)
    if plan is not None and plan.pk is not None and merged.get("kind") != plan.kind and plan.memberships.exists():
        # Its members joined on its terms (a fee bought months; top-ups or spend reached a tier): another kind
        # would re-read their memberships by rules they never met.
        errors.append(FieldError("kind", "cannot change while the plan has members: make a new plan instead",
                                 str(merged.get("kind"))))
    return errors


@transaction.atomic
def plan_save(*, chain: Chain, data: dict, plan: MembershipPlan | None = None) -> MembershipPlan:
    merged = {name: getattr(plan, name) for name in PLAN_FIELDS} if plan else {}
    merged.update(data)
    errors = plan_errors(merged, plan)
    if errors:
        raise ValidationFailed(errors)
    plan = plan or MembershipPlan(chain=chain)
    return _save(plan, PLAN_FIELDS, merged, "name", "another plan of this chain has this name")


@transaction.atomic
def tier_save(*, plan: MembershipPlan, data: dict, tier: Tier | None = None) -> Tier:
    merged = {name: getattr(tier, name) for name in TIER_FIELDS} if tier else {}
    merged.update(data)
    errors = tier_errors(plan, merged, tier)
    if errors:
        raise ValidationFailed(errors)
    tier = tier or Tier(plan=plan)
    return _save(tier, TIER_FIELDS, merged, "rank", "another tier of this plan has this rank")


def tier_errors(plan: MembershipPlan, merged: dict, tier: Tier | None, others: list | None = None
                ) -> list[FieldError]:
    """Everything `tier_save` refuses in these values (the admin's forms ask it too). `others`: the plan's other
    tiers as they will be, when several are saved at once (the admin's inline rows); by default as stored."""
    errors = []
    if not str(merged.get("name") or "").strip():
        errors.append(FieldError("name", "is required"))
    for name in ("discount_bp", "friend_discount_bp"):
        if not 0 <= int(merged.get(name) or 0) <= 10000:
            errors.append(FieldError(name, "must be between 0 and 10000 basis points", str(merged.get(name))))
    errors += range_errors(Tier, merged, ["rank", "points_multiplier", "family_slots", "min_spend_fen",
                                          "min_topup_fen"])
    bad = [c for c in merged.get("excluded_categories") or [] if c not in Category.values]
    if bad:
        errors.append(FieldError("excluded_categories", f"unknown categories: {', '.join(map(str, bad))}"))
    errors += _bonus_rules_errors(merged.get("topup_bonus_rules") or [], "topup_bonus_rules")
    if not errors:
        errors += _ladder_errors(plan, merged, tier, others) + _slots_errors(tier, merged)
    return errors


def _slots_errors(tier: Tier | None, merged: dict) -> list[FieldError]:
    """Fewer family slots than a card of this tier has members bound is refused (naming the largest family): a card
    never holds more than its tier's slots, and a configuration save must not end families (and their wallet-share
    consents) behind the holders' backs, as a move to a smaller tier does with the holder present."""
    if tier is None or tier.pk is None:
        return []
    slots = int(merged.get("family_slots") or 0)
    if slots >= tier.family_slots:
        return []
    # Bindings to an expired card count too: a renewal brings them back into force.
    largest = (FamilyBinding.objects.filter(holder__tier=tier, unbound_at__isnull=True)
               .values("holder_id").annotate(n=Count("id")).order_by("-n").values_list("n", flat=True).first())
    if largest is not None and largest > slots:
        return [FieldError("family_slots", f"must be at least {largest}: a card of this tier has {largest} family "
                                           "members bound; unbind them first", str(slots))]
    return []


def _ladder_errors(plan: MembershipPlan, merged: dict, tier: Tier | None, others: list | None = None
                   ) -> list[FieldError]:
    """A higher tier asks at least as much as every tier below it: evaluation places a member in the highest tier
    whose thresholds they meet, so a higher tier with a lower threshold would take everyone from the one below."""
    errors = []
    rank = int(merged.get("rank") or 0)
    if others is None:
        others = plan.tiers.exclude(pk=tier.pk if tier else None) if plan.pk is not None else []
    others = sorted(others, key=lambda t: t.rank)
    for name in ("min_spend_fen", "min_topup_fen"):
        value = int(merged.get(name) or 0)
        below = [t for t in others if t.rank < rank and getattr(t, name) > value]
        above = [t for t in others if t.rank > rank and getattr(t, name) < value]
        if below:
            errors.append(FieldError(name, f"must be at least {yuan(getattr(below[-1], name))} yuan, the threshold "
                                           f"of {below[-1].name} ranked below", str(value)))
        elif above:
            errors.append(FieldError(name, f"must be at most {yuan(getattr(above[0], name))} yuan, the threshold "
                                           f"of {above[0].name} ranked above", str(value)))
    return errors


@transaction.atomic
def benefit_save(*, tier: Tier, data: dict, benefit: Benefit | None = None) -> Benefit:
    merged = {name: getattr(benefit, name) for name in BENEFIT_FIELDS} if benefit else {}
    merged.update(data)
    errors = benefit_errors(merged)
    if errors:
        raise ValidationFailed(errors)
    trigger = merged.get("trigger") or ""
    merged["trigger"] = trigger
    if trigger != BenefitTrigger.NTH_VISIT:
        merged["trigger_n"] = None
    benefit = benefit or Benefit(tier=tier)
    return _save(benefit, BENEFIT_FIELDS, merged, "name", "could not be saved")


def benefit_errors(merged: dict) -> list[FieldError]:
    """Everything `benefit_save` refuses in these values (the admin's forms ask it too)."""
    errors = []
    if not str(merged.get("name") or "").strip():
        errors.append(FieldError("name", "is required"))
    trigger = merged.get("trigger") or ""
    if trigger not in BenefitTrigger.values:
        errors.append(FieldError("trigger", "is not a known trigger", str(trigger)))
    if trigger and not merged.get("is_hidden"):
        errors.append(FieldError("trigger", "only hidden benefits have a trigger", trigger))
    if merged.get("is_hidden") and not trigger:
        errors.append(FieldError("trigger", "a hidden benefit needs a trigger (staff decision at least)"))
    if trigger == BenefitTrigger.NTH_VISIT and not merged.get("trigger_n"):
        errors.append(FieldError("trigger_n", "is required for the Nth-visit trigger"))
    errors += range_errors(Benefit, merged, ["position", "trigger_n"])
    errors += _action_data_errors(merged.get("action_data"))
    return errors
