"""Hidden benefits: revealed once per membership, by a trigger or by a staff decision, with date and detail."""

import datetime as dt
from collections.abc import Callable

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from smileloop.clinics.models import Staff
from smileloop.core.sql import select_models
from smileloop.customers.models import Customer
from smileloop.membership import reasons
from smileloop.membership.enums import BenefitTrigger, MembershipStatus
from smileloop.membership.errors import (
    BenefitNotHidden,
    BenefitNotInTier,
    MembershipInputError,
    MembershipNotActive,
)
from smileloop.membership.models import Benefit, BenefitReveal, Membership
from smileloop.membership.services._common import day, now_or, status_at
from smileloop.visits.enums import PlanStatus
from smileloop.visits.models import TreatmentPlan

# What a revealed benefit's `action_code` does is owned by an app above this one (giftcards issues the
# friends-and-family card of "issue_friend_card"): it registers a handler at start-up (`reveal_action_register`), and
# the staff pages and the API run it after they reveal (`benefit_actions_run`). Without it a benefit revealed there
# promised a card nobody issued, and a payment never issues it later (a benefit is revealed once). Checkout issues
# the cards of the reveals a payment causes itself, in its own lock order.
_REVEAL_ACTIONS: dict[str, Callable[..., object]] = {}


def reveal_action_register(action_code: str, handler: Callable[..., object]) -> None:
    """`handler(reveal=..., actor=..., as_of=...)` acts on a revealed benefit whose action code is `action_code`;
    it must be idempotent per reveal (it runs again when staff reveal an already revealed benefit)."""
    _REVEAL_ACTIONS[action_code] = handler


@transaction.atomic
def benefit_actions_run(*, reveals: list[BenefitReveal], actor: Staff | None = None,
                        as_of: dt.datetime | None = None) -> None:
    """Run the registered action of each revealed benefit that has one (see `reveal_action_register`)."""
    for reveal in reveals:
        handler = _REVEAL_ACTIONS.get(reveal.benefit.action_code)
        if handler is not None:
            handler(reveal=reveal, actor=actor, as_of=as_of)


@transaction.atomic
def benefit_reveal(*, membership: Membership, benefit: Benefit, trigger: str = BenefitTrigger.STAFF_DECISION,
                   actor: Staff | None = None, detail: str = "", as_of: dt.datetime | None = None) -> BenefitReveal:
    """Reveal a hidden benefit of the membership's tier. Idempotent: a second reveal returns the first.

    Staff may reveal any hidden benefit by decision (`trigger=staff_decision`), whatever its configured
    trigger; the automatic triggers are checked by `benefits_reveal_due`."""
    at = now_or(as_of)
    if trigger not in BenefitTrigger.values or not trigger:
        raise MembershipInputError(f"must be one of {', '.join(v for v in BenefitTrigger.values if v)}",
                                   code="invalid", field="trigger")
    existing = BenefitReveal.objects.filter(membership=membership, benefit=benefit).first()
    if existing is not None:
        return existing
    status = status_at(membership, at)  # past its expiry: expired, though the nightly job has not marked it yet
    if status != MembershipStatus.ACTIVE:
        raise MembershipNotActive(f"membership #{membership.id} is {status}, not active")
    if benefit.tier_id != membership.tier_id:
        raise BenefitNotInTier(f"{benefit.name} is not a benefit of tier {membership.tier.name}", field="benefit_id")
    if not benefit.is_hidden:
        raise BenefitNotHidden(f"{benefit.name} is a visible benefit; it needs no reveal", field="benefit_id")
    if trigger == BenefitTrigger.STAFF_DECISION and not detail.strip():
        detail = (reasons.REVEAL_STAFF_BY % {"name": actor.name, "day": day(at)} if actor
                  else reasons.REVEAL_STAFF % {"day": day(at)})
    try:
        with transaction.atomic():
            return BenefitReveal.objects.create(membership=membership, benefit=benefit, revealed_at=at,
                                                trigger=trigger, detail=detail.strip()[:255], actor=actor)
    except IntegrityError:  # revealed concurrently: the first reveal stands
        return BenefitReveal.objects.get(membership=membership, benefit=benefit)


def _plans_since(customer: Customer, membership: Membership):
    """Treatment plans that were still open when the membership started: a plan finished before sign-up
    does not reveal anything (the card is handed over during treatment, not at sign-up)."""
    return (TreatmentPlan.objects.filter(customer_id=customer.pk, steps_total__gt=0)
            .exclude(status=PlanStatus.ABANDONED)
            .exclude(completed_at__lt=membership.started_at).order_by("planned_at", "id"))


def _due_detail(benefit: Benefit, customer: Customer, membership: Membership, at: dt.datetime) -> str | None:
    trigger = benefit.trigger
    if trigger == BenefitTrigger.PLAN_HALF_DONE:
        plan = (_plans_since(customer, membership).annotate(done_twice=F("steps_done") * 2)
                .filter(steps_done__gte=1, done_twice__gte=F("steps_total")).first())
        if plan is not None:
            return reasons.REVEAL_PLAN_HALF % {"plan": plan.title, "done": plan.steps_done,
                                                  "total": plan.steps_total, "day": day(at)}
    elif trigger == BenefitTrigger.PLAN_FINISHED:
        plan = _plans_since(customer, membership).filter(
            Q(steps_done__gte=F("steps_total")) | Q(status=PlanStatus.COMPLETED)).first()
        if plan is not None:
            return reasons.REVEAL_PLAN_FINISHED % {"plan": plan.title, "done": plan.steps_done,
                                                      "total": plan.steps_total, "day": day(at)}
    elif trigger == BenefitTrigger.BIRTHDAY_MONTH:
        today = timezone.localdate(at)
        if customer.birthday and customer.birthday.month == today.month:
            return reasons.REVEAL_BIRTHDAY % {"month": f"{today:%Y-%m}"}
    elif trigger == BenefitTrigger.NTH_VISIT:
        if benefit.trigger_n and customer.visit_count >= benefit.trigger_n:
            return reasons.reveal_nth_visit(n=benefit.trigger_n, visits=customer.visit_count, day=day(at))
    return None


_UNSET = object()


def benefits_reveal_due(*, customer: Customer, as_of: dt.datetime | None = None,
                        membership=_UNSET) -> list[BenefitReveal]:
    """Check the automatic triggers of the hidden benefits of the customer's active membership (plan half
    done: steps_done × 2 ≥ steps_total; plan finished; birthday month; Nth visit) and record a reveal for
    each one that fired. Staff-decision benefits are never revealed here. Returns the new reveals.

    `membership`: the customer's active membership (None: none) when the caller read it in this transaction
    (checkout, after the payment's evaluation changed nothing). Work that cannot apply is skipped: no
    membership, no query; a tier without hidden benefits left to reveal, one query."""
    at = now_or(as_of)
    if membership is _UNSET:
        membership = (Membership.objects.select_related("tier")
                      .filter(customer_id=customer.pk, chain_id=customer.chain_id, status=MembershipStatus.ACTIVE)
                      .first())
    if membership is None:
        return []
    hidden = select_models(Benefit, "t0.tier_id = %s AND t0.is_hidden AND t0.trigger NOT IN ('', %s)",
                           [membership.tier_id, BenefitTrigger.STAFF_DECISION], tail="ORDER BY t0.position, t0.id")
    if not hidden:  # the common case: a tier without automatically revealed benefits
        return []
    revealed = set(BenefitReveal.objects.filter(membership=membership, benefit__in=hidden)
                   .values_list("benefit_id", flat=True))
    pending = [benefit for benefit in hidden if benefit.id not in revealed]
    if not pending:
        return []
    return _reveal_due(customer, membership, pending, at)


@transaction.atomic
def _reveal_due(customer: Customer, membership: Membership, pending: list[Benefit], at: dt.datetime
                ) -> list[BenefitReveal]:
    customer = Customer.objects.get(pk=customer.pk)  # fresh visit count and birthday
    reveals = []
    for benefit in pending:
        detail = _due_detail(benefit, customer, membership, at)
        if detail is not None:
            reveals.append(benefit_reveal(membership=membership, benefit=benefit, trigger=benefit.trigger,
                                          detail=detail, as_of=at))
    return reveals
