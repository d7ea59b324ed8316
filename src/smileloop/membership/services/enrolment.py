"""Enrolment, renewal, tier changes, cancellation, evaluation and the expiry job.

Every change of a membership is a dated MembershipEvent whose `reason` is a sentence staff can read
("upgraded to 家庭会员: cumulative spend 30,120.00 ≥ 30,000.00 on 2026-03-02") and whose `data` keeps the
figures. Writes lock the customer row first, so two concurrent writes for one person are serialised
(and the partial unique index refuses a second active membership regardless).
"""

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Case, Exists, IntegerField, OuterRef, Value, When
from django.utils import timezone

from smileloop.clinics.models import Chain, Staff
from smileloop.core.errors import NotFound
from smileloop.core.sql import in_clause, lock_clause, select_model, select_models
from smileloop.customers.enums import Stage
from smileloop.customers.models import Customer
from smileloop.customers.services import customer_stage_advance, customers_lock
from smileloop.membership import reasons
from smileloop.membership.enums import EventKind, MembershipStatus, PlanKind, ReminderKind
from smileloop.membership.errors import (
    DowngradeNotAllowed,
    LifetimeMembership,
    MembershipExists,
    MembershipInputError,
    MembershipNotActive,
    NotADowngrade,
    NotAnUpgrade,
    NotQualified,
    PlanInactive,
    RenewalOutOfRange,
    TierNotInPlan,
)
from smileloop.membership.models import (
    FEN,
    FamilyBinding,
    Membership,
    MembershipEvent,
    MembershipPlan,
    MembershipReminder,
    Tier,
)
from smileloop.membership.selectors import membership_active
from smileloop.membership.services._common import (
    CARD_CANCELLED,
    CARD_ENDED,
    CARD_TRIMMED,
    add_months,
    bindings_end,
    card_cause,
    day,
    day_end,
    event_add,
    lapse,
    lapsed,
    now_or,
    plan_duration_check,
    plan_duration_ok,
    status_at,
    yuan,
)

logger = logging.getLogger(__name__)

REMINDER_DAYS = (30, 7)

# --- the stored-value hook: the wallet (ledger) registers a provider of cumulative top-up totals ---------

_TOPUP_TOTAL_PROVIDERS: list[Callable[..., int | None]] = []


def topup_total_provider_register(func: Callable[..., int | None]) -> None:
    """`func(customer=...)` → cumulative top-up principal in fen (net of refunded top-ups), or None."""
    _TOPUP_TOTAL_PROVIDERS.append(func)


def _topup_total(customer: Customer, given: int | None) -> int | None:
    if given is not None:
        return given
    for provider in _TOPUP_TOTAL_PROVIDERS:
        value = provider(customer=customer)
        if value is not None:
            return value
    return None


# --- reads used by the writes ------------------------------------------------------------------------


def _locked_customer(customer: Customer) -> Customer:
    locked = select_model(Customer, "t0.id = %s AND t0.merged_into_id IS NULL", [customer.pk],
                          lock=lock_clause(no_key=True))
    if locked is None:
        raise NotFound("Customer not found")
    return locked


def _locked_enrollable(customer: Customer) -> Customer:
    """`_locked_customer` for an enrolment: a record merged away or erased (PIPL) is refused on `customer_id` (the
    surviving record is enrolled; an erased one is an anonymous ledger record that nobody may join a plan as)."""
    locked = select_model(Customer, "t0.id = %s", [customer.pk], lock=lock_clause(no_key=True))
    if locked is None:
        raise NotFound("Customer not found")
    if locked.merged_into_id is not None:
        raise MembershipInputError("is not a live customer record (merged into another); use the surviving record",
                                   code="merged", field="customer_id")
    if locked.erased_at is not None:
        raise MembershipInputError("is an erased record (personal information erased): it cannot be enrolled",
                                   code="erased", field="customer_id")
    return locked


def tier_threshold(tier: Tier, kind: str) -> int:
    """The figure a customer must reach for `tier`: the tier's own minimum, never below the plan's entry."""
    if kind == PlanKind.SPEND_BASED:
        return max(tier.min_spend_fen, tier.plan.spend_threshold_fen or 0)
    if kind == PlanKind.STORED_VALUE:
        return tier.min_topup_fen
    return 0


def _measure_label(kind: str) -> str:
    return "cumulative spend" if kind == PlanKind.SPEND_BASED else "cumulative top-up"


def qualifying_tier(plan: MembershipPlan, *, figure: int) -> Tier | None:
    """The best tier of a spend-based or stored-value plan whose threshold `figure` reaches."""
    return _qualifying(plan.tiers.select_related("plan").order_by("rank"), plan.kind, figure)


def _qualifying(tiers, kind: str, figure: int) -> Tier | None:
    """`qualifying_tier` over a plan's tiers already read (by rank)."""
    best = None
    for tier in tiers:
        if figure >= tier_threshold(tier, kind):
            best = tier
    return best


def _figure(customer: Customer, kind: str, topup_total_fen: int | None) -> int | None:
    if kind == PlanKind.SPEND_BASED:
        return customer.lifetime_spend_fen
    if kind == PlanKind.STORED_VALUE:
        return topup_total_fen
    return None


# --- enrolment -----------------------------------------------------------------------------------------


def _check_plan(customer: Customer, plan: MembershipPlan, tier: Tier | None) -> None:
    if plan.chain_id != customer.chain_id:
        raise MembershipInputError("is not a membership plan of this chain", code="unknown_plan", field="plan_id")
    if not plan.is_active:
        raise PlanInactive(f"plan {plan.name} is not active; choose an active plan", field="plan_id")
    if tier is not None and tier.plan_id != plan.id:
        raise TierNotInPlan(f"tier {tier.name} is not a tier of plan {plan.name}", field="tier_id")


def _fee_check(fee_fen: int | None) -> None:
    if fee_fen is not None and not 0 <= fee_fen <= FEN[1]:
        raise MembershipInputError(f"must be a whole number between 0 and {FEN[1]}", code="invalid", field="fee_fen")


def _create(*, customer: Customer, plan: MembershipPlan, tier: Tier, at: dt.datetime, fee_fen: int,
            actor: Staff | None, msg: dict, data: dict) -> Membership:
    plan_duration_check(plan)
    expires = day_end(add_months(at, plan.duration_months)) if plan.duration_months else None
    membership = Membership.objects.create(chain_id=customer.chain_id, customer=customer, plan=plan, tier=tier,
                                           status=MembershipStatus.ACTIVE, started_at=at, expires_at=expires,
                                           fee_fen=fee_fen, enrolled_by=actor)
    event_add(membership=membership, kind=EventKind.ENROLLED, at=at, msg=_with_validity(msg, expires),
              data={**data, "plan_id": plan.id, "tier_id": tier.id,
                    "expires_at": expires.isoformat() if expires else None}, actor=actor)
    # an enrolment dated back (as_of) is one stages_derive counts from its day: not before a lost mark
    customer_stage_advance(customer=customer, to=Stage.MEMBER, cause=reasons.english(msg), at=at, actor=actor,
                           event_at=at)
    return membership


def _with_validity(msg: dict, expires: dt.datetime | None) -> dict:
    """An enrolment reason with how long it lasts (", valid until …" or ", lifetime")."""
    return reasons.with_suffix(msg, "valid_until", until=day(expires)) if expires else reasons.with_suffix(msg, "lifetime")


def _enrol_reason(plan: MembershipPlan, tier: Tier, *, figure: int | None, fee_fen: int, at: dt.datetime) -> tuple[dict, dict]:
    if plan.kind == PlanKind.PAID:
        return (reasons.message("enrolled_fee", plan=plan.name, tier=tier.name, fee=yuan(fee_fen), day=day(at)),
                {"fee_fen": fee_fen})
    threshold = tier_threshold(tier, plan.kind)
    return (reasons.message("enrolled_figure", tier=tier.name, measure=plan.kind, figure=yuan(figure),
                            threshold=yuan(threshold), day=day(at)),
            {"figure_fen": figure, "threshold_fen": threshold, "measure": plan.kind})


@transaction.atomic
def membership_enrol(*, customer: Customer, plan: MembershipPlan, tier: Tier | None = None,
                     actor: Staff | None = None, fee_fen: int | None = None, topup_total_fen: int | None = None,
                     as_of: dt.datetime | None = None) -> Membership:
    """Enrol `customer` in `plan`. Paid: the fee is recorded (taking the payment is checkout's job) and the
    lowest tier is the default. Spend-based / stored-value: the customer must reach the tier's threshold
    (cumulative paid spend net of refunds / cumulative top-up); the default is the best tier reached."""
    at = now_or(as_of)
    _check_plan(customer, plan, tier)
    customer = _locked_enrollable(customer)
    existing = membership_active(customer)
    if existing is not None and lapsed(existing, at):
        lapse(existing, at=at)  # past its expiry before the nightly job: the customer may join another plan
        existing = None
    if existing is not None:
        raise MembershipExists(f"{customer.name} already has an active membership; renew, upgrade or cancel it "
                               "instead")
    _fee_check(fee_fen)
    figure = None
    if plan.kind == PlanKind.PAID:
        tier = tier or plan.tiers.order_by("rank").first()
        fee = plan.fee_fen if fee_fen is None else fee_fen
    else:
        fee = fee_fen or 0
        figure = _figure(customer, plan.kind, _topup_total(customer, topup_total_fen)) or 0
        best = qualifying_tier(plan, figure=figure)
        wanted = tier or best or plan.tiers.order_by("rank").first()
        if wanted is None:
            raise TierNotInPlan(f"plan {plan.name} has no tiers yet", field="plan_id")
        if best is None or wanted.rank > best.rank:
            raise NotQualified(f"{_measure_label(plan.kind)} {yuan(figure)} is below the {yuan(tier_threshold(wanted, plan.kind))} "
                               f"that {wanted.name} needs", field="tier_id" if tier else "plan_id")
        tier = wanted
    if tier is None:
        raise TierNotInPlan(f"plan {plan.name} has no tiers yet", field="plan_id")
    msg, data = _enrol_reason(plan, tier, figure=figure, fee_fen=fee, at=at)
    return _create(customer=customer, plan=plan, tier=tier, at=at, fee_fen=fee, actor=actor, msg=msg, data=data)


@transaction.atomic
def membership_renew(*, membership: Membership, actor: Staff | None = None, fee_fen: int | None = None,
                     as_of: dt.datetime | None = None, key: str | None = None) -> Membership:
    """Extend a dated membership by its plan's duration: from its expiry if still running, else from now
    (an expired membership comes back to life if the customer has no other active one). Idempotent on `key`
    when given (kept in the event's data): a replay changes nothing, so a retried form never renews twice."""
    at = now_or(as_of)
    customer = _locked_customer(membership.customer)
    membership = Membership.objects.select_for_update().select_related("plan", "tier").get(pk=membership.pk)
    if key and membership.events.filter(kind=EventKind.RENEWED, data__key=key).exists():
        return membership
    plan = membership.plan
    if membership.status == MembershipStatus.CANCELLED:
        raise MembershipNotActive("a cancelled membership cannot be renewed; enrol again")
    if membership.expires_at is None or not plan.duration_months:
        raise LifetimeMembership("this membership is lifetime and never expires; nothing to renew")
    plan_duration_check(plan)
    if membership.status == MembershipStatus.EXPIRED:
        other = membership_active(customer)
        if other is not None and lapsed(other, at):
            lapse(other, at=at)
            other = None
        if other is not None:
            raise MembershipExists(f"{customer.name} already has another active membership (#{other.id})")
    _fee_check(fee_fen)
    fee = (plan.fee_fen if plan.kind == PlanKind.PAID else 0) if fee_fen is None else fee_fen
    previous = membership.expires_at
    continuing = membership.status == MembershipStatus.ACTIVE and previous > at
    try:
        membership.expires_at = (_renewed_expiry(membership, previous, plan.duration_months) if continuing
                                 else day_end(add_months(at, plan.duration_months)))  # a lapse starts a new run
    except (ValueError, OverflowError):  # past the year 9999: a plan of 100 years renewed ahead some 80 times
        raise RenewalOutOfRange(f"renewing would run membership #{membership.id} past {day(previous)} by "
                                f"{plan.duration_months} months, beyond the last date the calendar holds")
    membership.status = MembershipStatus.ACTIVE
    membership.ended_at = None
    membership.fee_fen += fee
    membership.save(update_fields=["expires_at", "status", "ended_at", "fee_fen", "updated_at"])
    msg = reasons.message("renewed", until=day(membership.expires_at), fee=yuan(fee), day=day(at))
    event_add(membership=membership, kind=EventKind.RENEWED, at=at, actor=actor, msg=msg,
              data={"fee_fen": fee, "previous_expires_at": previous.isoformat(),
                    "expires_at": membership.expires_at.isoformat(), **({"key": key} if key else {})})
    # Lifecycle counts a renewal as an enrolment (not dormant by it; a dormant or lost member renewing is back, as
    # stages_derive reads a renewal since), and the family still bound is covered again.
    customer_stage_advance(customer=customer, to=Stage.MEMBER, cause=reasons.english(msg), at=at, actor=actor,
                           event_at=at)
    from smileloop.membership.services.family import family_card_renewed  # family imports this module

    family_card_renewed(membership=membership, at=at, actor=actor)
    return membership


def _renewed_expiry(membership: Membership, base: dt.datetime, months: int) -> dt.datetime:
    """`months` after `base`, on the day of the month the current run of periods started on: a membership from
    31 January ends on 28 February, then on 31 March (counting from the clamped 28th lost days for good: 28 March,
    28 April …). A run starts at enrolment or at a renewal after a lapse (newest first); an expiry that is not a
    whole number of months after either (edited by hand) is extended as it is. A membership is valid all of its last
    local day (core.dates.day_end)."""
    # Runs start at enrolment and at renewals after a lapse (the previous expiry before the renewal); comparing
    # local days, a renewal within a run (on the 30th) would otherwise pass for a start (30 April → 30 May).
    renewals = (membership.events.filter(kind=EventKind.RENEWED).order_by("-occurred_at", "-id")
                .values_list("occurred_at", "data"))
    starts = [at for at, data in renewals
              if (data or {}).get("previous_expires_at")
              and dt.datetime.fromisoformat(data["previous_expires_at"]) <= at]
    local_base = timezone.localtime(base)
    for anchor in [*starts, membership.started_at]:
        start = timezone.localtime(anchor)
        elapsed = (local_base.year - start.year) * 12 + local_base.month - start.month
        if elapsed > 0 and timezone.localdate(add_months(anchor, elapsed)) == local_base.date():
            return day_end(add_months(anchor, elapsed + months))
    return day_end(add_months(base, months))


def _tier_set(membership: Membership, tier: Tier, at: dt.datetime, actor: Staff | None = None) -> None:
    fewer_slots = tier.family_slots < membership.tier.family_slots
    membership.tier = tier
    membership.save(update_fields=["tier", "updated_at"])
    if fewer_slots:
        family_trim(membership, at=at, actor=actor)


def family_trim(membership: Membership, *, at: dt.datetime, actor: Staff | None = None) -> int:
    """End the active family bindings over the tier's `family_slots` (after a move to a tier with fewer), the
    latest bound first: the earliest keep their slots, as in a merge; their wallet-share consents end with them
    (as `family_unbind` does), and their stages follow at once (the lifecycle hook, cause `CARD_TRIMMED`). Returns
    how many ended."""
    ids = list(FamilyBinding.objects.filter(holder=membership, unbound_at__isnull=True).order_by("bound_at", "id")
               .values_list("id", flat=True))
    over = ids[membership.tier.family_slots:]
    if not over:
        return 0
    return bindings_end(FamilyBinding.objects.filter(id__in=over), at=at,
                        reason=f"no free slot on membership #{membership.id}: tier {membership.tier.name} has "
                               f"{membership.tier.family_slots}",
                        cause=card_cause(CARD_TRIMMED, membership), actor=actor)


def _locked_active(membership: Membership, *, at: dt.datetime) -> Membership:
    """The membership locked, refused unless in force at `at`: one past its expiry is refused as expired, though
    the nightly job has not marked it yet. The holder and the members bound to the card are locked first, in id order
    (as family_unbind locks its two people): a cancellation or trim moves the members' stages at once, and must not
    wait for a member an unbinding holds while that unbinding waits for the holder."""
    members = FamilyBinding.objects.filter(holder_id=membership.pk, unbound_at__isnull=True).values_list(
        "member_id", flat=True)
    customers_lock(membership.customer_id, *members)
    _locked_customer(membership.customer)
    membership = Membership.objects.select_for_update().select_related("plan", "tier").get(pk=membership.pk)
    status = status_at(membership, at)
    if status != MembershipStatus.ACTIVE:
        raise MembershipNotActive(f"membership #{membership.id} is {status}, not active")
    return membership


@transaction.atomic
def membership_upgrade(*, membership: Membership, tier: Tier, actor: Staff | None = None, reason: str = "",
                       as_of: dt.datetime | None = None) -> Membership:
    """A staff upgrade to a better tier of the same plan."""
    at = now_or(as_of)
    membership = _locked_active(membership, at=at)
    if tier.plan_id != membership.plan_id:
        raise TierNotInPlan(f"tier {tier.name} is not a tier of plan {membership.plan.name}", field="tier_id")
    if tier.rank <= membership.tier.rank:
        raise NotAnUpgrade(f"{tier.name} is not above the current tier {membership.tier.name}", field="tier_id")
    previous = membership.tier
    _tier_set(membership, tier, at, actor)
    event_add(membership=membership, kind=EventKind.UPGRADED, at=at, actor=actor,
              msg=reasons.message("upgraded_by_staff", tier=tier.name, why=reason.strip(), day=day(at)),
              data={"from_tier_id": previous.id, "to_tier_id": tier.id})
    return membership


@transaction.atomic
def membership_downgrade(*, membership: Membership, tier: Tier, actor: Staff | None = None, reason: str = "",
                         as_of: dt.datetime | None = None) -> Membership:
    """A staff downgrade to a lower tier; refused when the current tier does not allow downgrades."""
    at = now_or(as_of)
    membership = _locked_active(membership, at=at)
    if tier.plan_id != membership.plan_id:
        raise TierNotInPlan(f"tier {tier.name} is not a tier of plan {membership.plan.name}", field="tier_id")
    if tier.rank >= membership.tier.rank:
        raise NotADowngrade(f"{tier.name} is not below the current tier {membership.tier.name}", field="tier_id")
    if not membership.tier.downgrade_allowed:
        raise DowngradeNotAllowed(f"tier {membership.tier.name} does not allow downgrades")
    previous = membership.tier
    _tier_set(membership, tier, at, actor)
    event_add(membership=membership, kind=EventKind.DOWNGRADED, at=at, actor=actor,
              msg=reasons.message("downgraded_by_staff", tier=tier.name, why=reason.strip(), day=day(at)),
              data={"from_tier_id": previous.id, "to_tier_id": tier.id})
    return membership


def _end(membership: Membership, *, status: str, kind: str, at: dt.datetime, msg: dict, data: dict,
         actor: Staff | None, unbind_family: str | None) -> MembershipEvent:
    """End the membership; `unbind_family` (a cause template, `CARD_CANCELLED` / `CARD_ENDED`) ends its family
    bindings too, and the members' stages follow at once with that cause (the lifecycle hook)."""
    membership.status = status
    membership.ended_at = at
    membership.save(update_fields=["status", "ended_at", "updated_at"])
    if unbind_family is not None:
        bindings_end(FamilyBinding.objects.filter(holder=membership), at=at,
                     reason=f"holder's membership #{membership.id} ended",
                     cause=card_cause(unbind_family, membership), actor=actor)
    return event_add(membership=membership, kind=kind, at=at, msg=msg, data=data, actor=actor)


@transaction.atomic
def membership_cancel(*, membership: Membership, reason: str, actor: Staff | None = None,
                      as_of: dt.datetime | None = None) -> Membership:
    """End an active membership for good; its family bindings end with it, and a member only through the card goes
    back at once to the stage their own facts prove (the lifecycle hook, the cancellation as the cause)."""
    at = now_or(as_of)
    if not (reason or "").strip():
        raise MembershipInputError("is required (why the membership is cancelled)", code="invalid", field="reason")
    membership = _locked_active(membership, at=at)
    _end(membership, status=MembershipStatus.CANCELLED, kind=EventKind.CANCELLED, at=at, actor=actor,
         msg=reasons.message("cancelled", day=day(at), why=reason.strip()), data={}, unbind_family=CARD_CANCELLED)
    return membership


# --- evaluation ----------------------------------------------------------------------------------------


def _auto_plans(chain_id: int, kinds: list[str]):
    return (MembershipPlan.objects.filter(chain_id=chain_id, is_active=True, auto_enrol=True, kind__in=kinds)
            .order_by("id"))


class _Topup:
    """The cumulative top-up figure of an evaluation: given, or asked of the registered provider — only when a
    stored-value plan is involved (most chains have none: no top-up query on every payment)."""

    def __init__(self, customer: Customer, given: int | None):
        self.customer, self.given = customer, given
        self.possible = given is not None or bool(_TOPUP_TOTAL_PROVIDERS)
        self._value, self._read = None, False

    def value(self) -> int | None:
        if not self._read:
            self._value, self._read = _topup_total(self.customer, self.given), True
        return self._value


def _plan_tiers(chain_id: int, current: Membership | None, kinds: list[str]) -> dict[int, list[Tier]]:
    """Plan id → tiers (by rank, with their plan) of the current membership's plan and of every active
    auto-enrol plan of `kinds`, in plan id order: what an evaluation compares, in one query."""
    kinds_in, params = in_clause("t1.kind", kinds)
    wanted = f"(t1.chain_id = %s AND t1.is_active AND t1.auto_enrol AND {kinds_in})"
    params = [chain_id, *params]
    if current is not None:
        wanted += " OR t0.plan_id = %s"
        params.append(current.plan_id)
    plans: dict[int, list[Tier]] = {}
    for tier in select_models(Tier, wanted, params, related=("plan",), tail="ORDER BY t0.plan_id, t0.rank"):
        plans.setdefault(tier.plan_id, []).append(tier)
    return plans


def _best_auto(customer: Customer, topup: _Topup, plans: dict[int, list[Tier]], kinds: list[str]
               ) -> tuple[Tier, int] | None:
    """The best auto-enrol tier the customer reaches: the largest discount (then rank); on a tie the plan
    created first. Stored-value plans count only when a top-up figure exists."""
    best = None
    for tiers in plans.values():
        plan = tiers[0].plan
        if not (plan.is_active and plan.auto_enrol and plan.kind in kinds):
            continue
        if not plan_duration_ok(plan):  # misconfigured: enrol in the others rather than refuse the whole evaluation
            logger.warning("auto-enrolment skips plan %s: duration_months %s is out of range", plan.id,
                           plan.duration_months)
            continue
        if plan.kind == PlanKind.STORED_VALUE and topup.value() is None:
            continue
        figure = _figure(customer, plan.kind, topup.value() if plan.kind == PlanKind.STORED_VALUE else None)
        tier = _qualifying(tiers, plan.kind, figure or 0)
        if tier is not None and (best is None or (tier.discount_bp, tier.rank) > (best[0].discount_bp, best[0].rank)):
            best = (tier, figure)
    return best


def _auto_enrol(customer: Customer, topup: _Topup, plans: dict[int, list[Tier]], kinds: list[str], *,
                at: dt.datetime, actor: Staff | None) -> list[MembershipEvent]:
    """Enrol a customer without an active membership in the best auto-enrol tier reached: its event, or none."""
    best = _best_auto(customer, topup, plans, kinds)
    if best is None:
        return []
    tier, figure = best
    msg, data = _enrol_reason(tier.plan, tier, figure=figure, fee_fen=0, at=at)
    membership = _create(customer=customer, plan=tier.plan, tier=tier, at=at, fee_fen=0, actor=actor, msg=msg,
                         data=data)
    return [membership.events.get()]


_UNSET = object()


@transaction.atomic
def membership_evaluate(*, customer: Customer, topup_total_fen: int | None = None, actor: Staff | None = None,
                        as_of: dt.datetime | None = None, current=_UNSET) -> list[MembershipEvent]:
    """Re-evaluate tier status from cumulative paid spend (Customer.lifetime_spend_fen, net of refunds) and,
    for stored-value plans, cumulative top-ups (`topup_total_fen`, else the registered provider).

    - no active membership: enrol in the best auto-enrol plan tier reached;
    - spend-based / stored-value member: upgrade to the best tier reached; downgrade (or end the membership
      when no tier is reached, then enrolling as above in another plan reached) only if the current tier allows
      downgrades;
    - a member of another plan who reaches an auto-enrol tier with a strictly larger discount moves to it
      (the old membership is cancelled with a reason naming the new one).
    Lifetime memberships are never ended by time. Returns the events written (none when nothing changed).

    `current`: the customer's active membership (with plan and tier; None: none) when the caller read it in
    this transaction after locking the customer row (checkout does, to price the bill); read here otherwise.
    The tiers compared are read in one query; the top-up figure only when a stored-value plan is involved.
    """
    at = now_or(as_of)
    customer = _locked_customer(customer)
    current = membership_active(customer) if current is _UNSET else current
    if current is not None and lapsed(current, at):
        lapse(current, at=at)  # expired, though the nightly job has not marked it yet: evaluated as a non-member
        current = None
    topup = _Topup(customer, topup_total_fen)
    kinds = [PlanKind.SPEND_BASED] + ([PlanKind.STORED_VALUE] if topup.possible else [])
    plans = _plan_tiers(customer.chain_id, current, kinds)
    events: list[MembershipEvent] = []
    if current is None:
        return _auto_enrol(customer, topup, plans, kinds, at=at, actor=actor)
    plan = current.plan
    figure = _figure(customer, plan.kind, topup.value() if plan.kind == PlanKind.STORED_VALUE else None)
    if figure is not None:
        target = _qualifying(plans.get(plan.id, []), plan.kind, figure)
        if target is not None and target.rank > current.tier.rank:
            threshold = tier_threshold(target, plan.kind)
            previous = current.tier
            _tier_set(current, target, at, actor)
            events.append(event_add(
                membership=current, kind=EventKind.UPGRADED, at=at, actor=actor,
                msg=reasons.message("upgraded_figure", tier=target.name, measure=plan.kind, figure=yuan(figure),
                                    threshold=yuan(threshold), day=day(at)),
                data={"from_tier_id": previous.id, "to_tier_id": target.id, "figure_fen": figure,
                      "threshold_fen": threshold, "measure": plan.kind}))
        elif (target is None or target.rank < current.tier.rank) and current.tier.downgrade_allowed:
            threshold = tier_threshold(current.tier, plan.kind)
            data = {"from_tier_id": current.tier_id, "figure_fen": figure, "threshold_fen": threshold,
                    "measure": plan.kind}
            if target is None:
                events.append(_end(current, status=MembershipStatus.CANCELLED, kind=EventKind.DOWNGRADED, at=at,
                                   msg=reasons.message("ended_figure", measure=plan.kind, figure=yuan(figure),
                                                       threshold=yuan(threshold), tier=current.tier.name, day=day(at)),
                                   data=data, actor=actor, unbind_family=CARD_ENDED))
                # the plan the customer still reaches (top-ups) at once: a second evaluation must change nothing
                return events + _auto_enrol(customer, topup, plans, kinds, at=at, actor=actor)
            _tier_set(current, target, at, actor)
            events.append(event_add(
                membership=current, kind=EventKind.DOWNGRADED, at=at, actor=actor,
                msg=reasons.message("downgraded_figure", tier=target.name, measure=plan.kind, figure=yuan(figure),
                                    threshold=yuan(threshold), day=day(at)),
                data={**data, "to_tier_id": target.id}))
    best = _best_auto(customer, topup, plans, kinds)
    if best is not None and best[0].plan_id != current.plan_id and best[0].discount_bp > current.tier.discount_bp:
        tier, figure = best
        events.append(_end(current, status=MembershipStatus.CANCELLED, kind=EventKind.CANCELLED, at=at, actor=actor,
                           msg=reasons.message("replaced", day=day(at), plan=tier.plan.name, tier=tier.name),
                           data={"replaced_by_tier_id": tier.id}, unbind_family=None))
        msg, data = _enrol_reason(tier.plan, tier, figure=figure, fee_fen=0, at=at)
        new = _create(customer=customer, plan=tier.plan, tier=tier, at=at, fee_fen=0, actor=actor,
                      msg=reasons.with_suffix(msg, "replaces", replaces=current.id),
                      data={**data, "replaces": current.id})
        FamilyBinding.objects.filter(holder=current, unbound_at__isnull=True).update(holder=new)
        if tier.family_slots < current.tier.family_slots:
            family_trim(new, at=at, actor=actor)
        events.append(new.events.get())
    return events


# --- scheduled and set-based jobs ------------------------------------------------------------------------


@dataclass
class ExpiryResult:
    expired: int
    reminders: int


@transaction.atomic
def memberships_expire(*, as_of: dt.datetime | None = None, reminder_days: tuple[int, ...] = REMINDER_DAYS
                       ) -> ExpiryResult:
    """The daily job: expire every dated membership whose expiry has passed (one SELECT of the rows due, one
    UPDATE, one bulk INSERT of events), and record renewal reminders due `reminder_days` before expiry
    (one INSERT per offset; a re-run records nothing twice). Lifetime memberships are never touched."""
    at = now_or(as_of)
    due = Membership.objects.select_for_update().filter(status=MembershipStatus.ACTIVE, expires_at__isnull=False,
                                                        expires_at__lte=at)
    rows = list(due.values_list("id", "expires_at", "tier__name"))
    ids = [row[0] for row in rows]
    if ids:
        Membership.objects.filter(id__in=ids, status=MembershipStatus.ACTIVE).update(
            status=MembershipStatus.EXPIRED, ended_at=at, updated_at=at)
        events = []
        for pk, expires, tier_name in rows:
            msg = reasons.message("expired", day=day(at), tier=tier_name, until=day(expires))
            events.append(MembershipEvent(membership_id=pk, kind=EventKind.EXPIRED, occurred_at=at,
                                          reason=reasons.english(msg), data={"expires_at": expires.isoformat(),
                                                                             "msg": msg}))
        MembershipEvent.objects.bulk_create(events, batch_size=2000)
    reminders = 0
    for days in reminder_days:
        # Due on the local day `days` before the expiry day: a membership valid all of D + days (core.dates.day_end)
        # is reminded on D. `at + days` missed it by the hours of that last day, so each reminder came a day late.
        window = Membership.objects.filter(status=MembershipStatus.ACTIVE, expires_at__gt=at,
                                           expires_at__lte=day_end(at + dt.timedelta(days=days)))
        window = window.exclude(Exists(MembershipReminder.objects.filter(
            membership_id=OuterRef("pk"), kind=ReminderKind.RENEWAL, days_before=days,
            expires_at=OuterRef("expires_at"))))
        created = MembershipReminder.objects.bulk_create([
            MembershipReminder(membership_id=pk, kind=ReminderKind.RENEWAL, days_before=days, expires_at=expires,
                               due_on=timezone.localdate(expires) - dt.timedelta(days=days))
            for pk, expires in window.values_list("id", "expires_at")
        ], batch_size=2000, ignore_conflicts=True)
        reminders += len(created)
    return ExpiryResult(expired=len(ids), reminders=reminders)


def _locked_without_membership(ids: list[int]) -> set[int]:
    """Lock these customers' rows (in id order, as every membership write locks its customer first) and return
    those still live and without an active membership: one enrolled by staff meanwhile (the candidates were read
    before) is skipped, not inserted against the one-active-membership index, which aborted the whole job."""
    ids, live = sorted(ids), set()
    for start in range(0, len(ids), 2000):
        locked = list(Customer.objects.select_for_update(no_key=True).filter(
            pk__in=ids[start:start + 2000], merged_into__isnull=True, erased_at__isnull=True)
            .order_by("pk").values_list("pk", flat=True))
        # A fresh read after the locks: it sees the memberships committed while the job waited for a row.
        taken = set(Membership.objects.filter(customer_id__in=locked, status=MembershipStatus.ACTIVE)
                    .values_list("customer_id", flat=True))
        live.update(set(locked) - taken)
    return live


@transaction.atomic
def spend_based_enrol_all(*, chain: Chain, as_of: dt.datetime | None = None, actor: Staff | None = None) -> int:
    """Enrol every live customer of `chain` whose cumulative spend reached an auto-enrol spend-based plan's
    threshold and who has no active membership. The qualifying customers and their best tier are chosen
    in SQL (one SELECT per plan with a CASE over the tiers); one reaching several plans is enrolled in the one
    `membership_evaluate` would choose. Rows are inserted in bulk. Returns the count."""
    at = now_or(as_of)
    expires_cache: dict[int, dt.datetime | None] = {}
    enrolled = 0
    active = Membership.objects.filter(customer_id=OuterRef("pk"), status=MembershipStatus.ACTIVE)
    eligible = []
    for plan in _auto_plans(chain.id, [PlanKind.SPEND_BASED]):
        tiers = list(plan.tiers.select_related("plan").order_by("-rank"))
        if not tiers:
            continue
        if not plan_duration_ok(plan):  # one misconfigured plan must not stop the others' enrolments
            logger.warning("spend-based enrolment skips plan %s: duration_months %s is out of range", plan.id,
                           plan.duration_months)
            continue
        eligible.append((plan, tiers))

    def best_plan_id(spend: int) -> int | None:
        """The plan `membership_evaluate` would choose (`_best_auto`): the largest discount, then rank, then the plan
        created first; a customer reaching two plans is enrolled once, in that one, not in the first by id."""
        best = None
        for plan, tiers in eligible:
            tier = _qualifying(tiers[::-1], plan.kind, spend)
            if tier is not None and (best is None or (tier.discount_bp, tier.rank) > (best.discount_bp, best.rank)):
                best = tier
        return best.plan_id if best else None

    for plan, tiers in eligible:
        lowest = min(tier_threshold(t, plan.kind) for t in tiers)
        tier_case = Case(*[When(lifetime_spend_fen__gte=tier_threshold(t, plan.kind), then=Value(t.id)) for t in tiers],
                         output_field=IntegerField())
        candidates = (Customer.objects.filter(chain_id=chain.id, merged_into__isnull=True, erased_at__isnull=True,
                                              lifetime_spend_fen__gte=lowest)
                      .exclude(Exists(active)).annotate(tier_id=tier_case)
                      .values_list("id", "lifetime_spend_fen", "tier_id").order_by("id"))
        by_id = {t.id: t for t in tiers}
        expires = expires_cache.setdefault(plan.id, day_end(add_months(at, plan.duration_months))
                                           if plan.duration_months else None)
        rows = [row for row in candidates if len(eligible) == 1 or best_plan_id(row[1]) == plan.id]
        live = _locked_without_membership([row[0] for row in rows])
        batch = [row for row in rows if row[0] in live]
        memberships = Membership.objects.bulk_create([
            Membership(chain_id=chain.id, customer_id=cid, plan=plan, tier_id=tid, status=MembershipStatus.ACTIVE,
                       started_at=at, expires_at=expires, enrolled_by=actor)
            for cid, _spend, tid in batch
        ], batch_size=2000)
        events = []
        for m, (_cid, spend, tid) in zip(memberships, batch, strict=True):
            threshold = tier_threshold(by_id[tid], plan.kind)
            msg = reasons.message("enrolled_figure", tier=by_id[tid].name, measure=plan.kind, figure=yuan(spend),
                                  threshold=yuan(threshold), day=day(at))
            msg = _with_validity(msg, expires)
            events.append(MembershipEvent(
                membership_id=m.id, kind=EventKind.ENROLLED, occurred_at=at, actor=actor, reason=reasons.english(msg),
                data={"figure_fen": spend, "threshold_fen": threshold, "measure": plan.kind, "plan_id": plan.id,
                      "tier_id": tid, "bulk": True, "msg": msg}))
        MembershipEvent.objects.bulk_create(events, batch_size=2000)
        enrolled += len(batch)
    return enrolled
