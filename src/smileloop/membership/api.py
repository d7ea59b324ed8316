"""Membership API (mounted at /api/membership by config/api.py): enrol, renew, change tier, cancel,
evaluate, family bindings, wallet-share consents, friend links, benefit reveals, and a customer's membership.

Same conventions as customers/api.py: bearer-token auth, the caller's Scope (a customer outside it is a 404),
an Idempotency-Key on every write (a retry replays the first answer), one error shape with field paths.
Every write answers with the customer's membership as it is afterwards.
"""

import datetime as dt

from django.http import HttpRequest, HttpResponse
from ninja import Field, Router, Schema

from smileloop.clinics.api import permission_require, request_scope
from smileloop.clinics.enums import Perm
from smileloop.core.api import ERROR_RESPONSES, Fen, Id, InputSchema, local_time, referenced_by, render
from smileloop.core.errors import FieldError, NotFound, ValidationFailed
from smileloop.core.idempotency import IdempotencyKeyHeader, idempotent_response
from smileloop.core.scoping import Scope
from smileloop.customers.enums import Relation
from smileloop.customers.models import Customer
from smileloop.customers.selectors import customer_get
from smileloop.membership import selectors, services
from smileloop.membership.enums import WalletShareMode
from smileloop.membership.errors import NotAMember

router = Router(tags=["membership"])

# --- input ---------------------------------------------------------------------------------------------

class EnrolIn(InputSchema):
    plan_id: Id
    tier_id: Id | None = Field(None, description="Paid: defaults to the lowest tier; others: the best tier reached")
    fee_fen: Fen | None = Field(None, description="Paid plans: the fee recorded (defaults to the plan's fee)")
    topup_total_fen: Fen | None = Field(None, description="Stored-value plans: cumulative top-up so far")


class RenewIn(InputSchema):
    fee_fen: Fen | None = None


class TierChangeIn(InputSchema):
    tier_id: Id
    reason: str = Field("", max_length=200)


class CancelIn(InputSchema):
    reason: str = Field(min_length=1, max_length=200)


class EvaluateIn(InputSchema):
    topup_total_fen: Fen | None = None


class FamilyBindIn(InputSchema):
    member_id: Id
    relation: Relation
    consent_source: str = Field("", max_length=64, description="Where the consent was given (paper, wechat, …)")
    consent_evidence: str = Field("", max_length=255, description="Required for adults, e.g. the signed form's number")


class ReasonIn(InputSchema):
    reason: str = Field("", max_length=200)


class WalletShareIn(InputSchema):
    member_id: Id
    mode: WalletShareMode
    source: str = Field(min_length=1, max_length=64)
    evidence: str = Field("", max_length=255)


class FriendLinkIn(InputSchema):
    member_id: Id = Field(description="The member the friend names")
    source: str = Field("api", max_length=64)


class RevealIn(InputSchema):
    detail: str = Field("", max_length=200)


# --- output --------------------------------------------------------------------------------------------

class PlanRef(Schema):
    id: int
    name: str
    kind: str


class TierOut(Schema):
    id: int
    rank: int
    name: str
    discount_bp: int
    excluded_categories: list[str]
    exclude_special_price: bool
    points_multiplier: str
    family_slots: int
    friend_discount_bp: int


class MembershipBody(Schema):
    id: int
    plan: PlanRef
    tier: TierOut
    status: str
    started_at: dt.datetime
    expires_at: dt.datetime | None = Field(description="null = lifetime")
    fee_fen: int


class DiscountOut(Schema):
    source: str = Field(description="own / family / friend: the one discount that applies (never stacked)")
    tier_id: int
    tier_name: str
    discount_bp: int
    excluded_categories: list[str]
    exclude_special_price: bool
    membership_id: int
    reason: str


class BenefitOut(Schema):
    id: int
    name: str
    description: str
    hidden: bool
    action_code: str
    revealed_at: dt.datetime | None
    trigger: str | None
    detail: str | None


class FamilyMemberOut(Schema):
    member_id: int | None = Field(description="None for a relative outside your clinics")
    relation: str
    consent_by: str
    consent_source: str
    bound_at: dt.datetime
    wallet_share: str | None


class BoundToOut(Schema):
    holder_customer_id: int | None = Field(description="None for a holder outside your clinics")
    membership_id: int
    relation: str


class EventOut(Schema):
    kind: str
    occurred_at: dt.datetime
    reason: str
    data: dict


class MembershipOut(Schema):
    customer_id: int
    membership: MembershipBody | None
    discount: DiscountOut | None
    benefits: list[BenefitOut] = Field(description="Hidden benefits appear only once revealed")
    family: list[FamilyMemberOut]
    bound_to: BoundToOut | None
    friend_of: int | None
    events: list[EventOut]


# --- rendering -----------------------------------------------------------------------------------------


def _tier(tier) -> dict:
    return {"id": tier.id, "rank": tier.rank, "name": tier.name, "discount_bp": tier.discount_bp,
            "excluded_categories": list(tier.excluded_categories), "exclude_special_price": tier.exclude_special_price,
            "points_multiplier": str(tier.points_multiplier), "family_slots": tier.family_slots,
            "friend_discount_bp": tier.friend_discount_bp}


def _detail(scope: Scope, customer: Customer) -> dict:
    current = selectors.membership_current(scope, customer)
    own, discount = current.own, current.discount
    family = []
    if own is not None:
        bindings = list(selectors.family_bindings_of(own))
        shares = selectors.wallet_share_modes(own, bindings)
        for b in bindings:
            family.append({"member_id": selectors.person_in_scope(scope, b.member).id, "relation": b.relation, "consent_by": b.consent_by,
                           "consent_source": b.consent_source, "bound_at": local_time(b.bound_at),
                           "wallet_share": shares[b.member_id]})
    return {
        "customer_id": customer.id,
        "membership": None if own is None else {
            "id": own.id, "plan": {"id": own.plan.id, "name": own.plan.name, "kind": own.plan.kind},
            "tier": _tier(own.tier), "status": own.status, "started_at": local_time(own.started_at),
            "expires_at": local_time(own.expires_at), "fee_fen": own.fee_fen},
        "discount": None if discount is None else {
            "source": discount.source, "tier_id": discount.tier.id, "tier_name": discount.tier.name,
            "discount_bp": discount.discount_bp, "excluded_categories": discount.excluded_categories,
            "exclude_special_price": discount.exclude_special_price, "membership_id": discount.membership.id,
            "reason": discount.reason},
        "benefits": [{"id": v.benefit.id, "name": v.benefit.name, "description": v.benefit.description,
                      "hidden": v.hidden, "action_code": v.benefit.action_code,
                      "revealed_at": local_time(v.reveal.revealed_at) if v.reveal else None,
                      "trigger": v.reveal.trigger if v.reveal else None,
                      "detail": v.reveal.detail if v.reveal else None}
                     for v in selectors.benefits_for(customer)],
        "family": family,
        "bound_to": None if current.binding is None else {
            "holder_customer_id": current.bound_to.id, "membership_id": current.binding.holder_id,
            "relation": current.binding.relation},
        "friend_of": selectors.person_in_scope(scope, current.friend_link.member).id if current.friend_link else None,
        "events": [{"kind": e.kind, "occurred_at": local_time(e.occurred_at), "reason": e.reason, "data": e.data}
                   for e in selectors.membership_events(customer)],
    }


def _answer(scope: Scope, customer: Customer, status: int = 200) -> tuple[int, dict]:
    return status, render(MembershipOut, _detail(scope, customer))


def _plan(scope: Scope, plan_id: int):
    try:
        return selectors.plan_get(scope, plan_id)
    except NotFound:
        raise ValidationFailed([FieldError("plan_id", "is not a membership plan of this chain", str(plan_id))])


def _tier_of(scope: Scope, tier_id: int | None):
    if tier_id is None:
        return None
    try:
        return selectors.tier_get(scope, tier_id)
    except NotFound:
        raise ValidationFailed([FieldError("tier_id", "is not a tier of this chain", str(tier_id))])


def _benefit(scope: Scope, benefit_id: int):
    try:
        return selectors.benefit_get(scope, benefit_id)
    except NotFound:
        raise ValidationFailed([FieldError("benefit_id", "is not a benefit of this chain", str(benefit_id))])


def _own(customer: Customer):
    membership = selectors.own_membership_in_force(customer)
    if membership is None:
        raise NotAMember(f"{customer.name} has no active membership", field="customer_id")
    return membership


def _write(request: HttpRequest, response: HttpResponse, key: str | None, operation: str, run):
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.CUSTOMER_EDIT)
        return run(scope)

    return idempotent_response(request, response, user_id=scope.user_id, key=key, operation=f"membership.{operation}",
                               run=write)


# What each write answers, as it answers it: 201 where it creates (a membership, a binding, a friend link), 200 where
# it changes one (documenting both on every write left an integrator guessing which one meant success).
WRITE = {200: MembershipOut, **ERROR_RESPONSES}
CREATE = {201: MembershipOut, **ERROR_RESPONSES}


# --- endpoints -----------------------------------------------------------------------------------------

@router.get("/customers/{int:customer_id}", response={200: MembershipOut, **ERROR_RESPONSES},
            summary="A customer's membership: tier, discount, benefits, family, history")
def membership_get_endpoint(request: HttpRequest, customer_id: Id):
    scope = request_scope(request)
    permission_require(scope, Perm.CUSTOMER_VIEW)
    return _detail(scope, customer_get(scope, customer_id))


@router.post("/customers/{int:customer_id}/enrol", response=CREATE, summary="Enrol in a plan")
def enrol_endpoint(request: HttpRequest, customer_id: Id, payload: EnrolIn, response: HttpResponse,
                   idempotency_key: IdempotencyKeyHeader = None):
    """201 with the new membership. 409 `membership_exists`; 422 `plan_inactive`, `tier_not_in_plan`,
    `not_qualified` (spend or top-up below the tier's threshold)."""
    def run(scope):
        customer = customer_get(scope, customer_id)
        services.membership_enrol(customer=customer, plan=_plan(scope, payload.plan_id),
                                  tier=_tier_of(scope, payload.tier_id), fee_fen=payload.fee_fen,
                                  topup_total_fen=payload.topup_total_fen, actor=request.staff)
        return _answer(scope, customer, 201)

    return _write(request, response, idempotency_key, "enrol", run)


@router.post("/customers/{int:customer_id}/renew", response=WRITE, summary="Renew a dated membership")
def renew_endpoint(request: HttpRequest, customer_id: Id, payload: RenewIn, response: HttpResponse,
                   idempotency_key: IdempotencyKeyHeader = None):
    def run(scope):
        customer = customer_get(scope, customer_id)
        membership = selectors.own_membership(customer) or selectors.latest_membership(customer)
        if membership is None:
            raise NotAMember(f"{customer.name} has no membership to renew", field="customer_id")
        services.membership_renew(membership=membership, fee_fen=payload.fee_fen, actor=request.staff)
        return _answer(scope, customer)

    return _write(request, response, idempotency_key, "renew", run)


@router.post("/customers/{int:customer_id}/upgrade", response=WRITE, summary="Upgrade to a better tier")
def upgrade_endpoint(request: HttpRequest, customer_id: Id, payload: TierChangeIn, response: HttpResponse,
                     idempotency_key: IdempotencyKeyHeader = None):
    def run(scope):
        customer = customer_get(scope, customer_id)
        services.membership_upgrade(membership=_own(customer), tier=_tier_of(scope, payload.tier_id),
                                    reason=payload.reason, actor=request.staff)
        return _answer(scope, customer)

    return _write(request, response, idempotency_key, "upgrade", run)


@router.post("/customers/{int:customer_id}/downgrade", response=WRITE, summary="Downgrade to a lower tier")
def downgrade_endpoint(request: HttpRequest, customer_id: Id, payload: TierChangeIn, response: HttpResponse,
                       idempotency_key: IdempotencyKeyHeader = None):
    """409 `downgrade_not_allowed` when the current tier does not allow downgrades."""
    def run(scope):
        customer = customer_get(scope, customer_id)
        services.membership_downgrade(membership=_own(customer), tier=_tier_of(scope, payload.tier_id),
                                      reason=payload.reason, actor=request.staff)
        return _answer(scope, customer)

    return _write(request, response, idempotency_key, "downgrade", run)


@router.post("/customers/{int:customer_id}/cancel", response=WRITE, summary="Cancel the membership")
def cancel_endpoint(request: HttpRequest, customer_id: Id, payload: CancelIn, response: HttpResponse,
                    idempotency_key: IdempotencyKeyHeader = None):
    def run(scope):
        customer = customer_get(scope, customer_id)
        services.membership_cancel(membership=_own(customer), reason=payload.reason, actor=request.staff)
        return _answer(scope, customer)

    return _write(request, response, idempotency_key, "cancel", run)


@router.post("/customers/{int:customer_id}/evaluate", response=WRITE,
             summary="Re-evaluate tier status and hidden-benefit triggers")
def evaluate_endpoint(request: HttpRequest, customer_id: Id, payload: EvaluateIn, response: HttpResponse,
                      idempotency_key: IdempotencyKeyHeader = None):
    def run(scope):
        customer = customer_get(scope, customer_id)
        services.membership_evaluate(customer=customer, topup_total_fen=payload.topup_total_fen, actor=request.staff)
        services.benefit_actions_run(reveals=services.benefits_reveal_due(customer=customer), actor=request.staff)
        return _answer(scope, customer)

    return _write(request, response, idempotency_key, "evaluate", run)


@router.post("/customers/{int:customer_id}/family", response=CREATE, summary="Bind a family member to the card")
def family_bind_endpoint(request: HttpRequest, customer_id: Id, payload: FamilyBindIn, response: HttpResponse,
                         idempotency_key: IdempotencyKeyHeader = None):
    """The path customer is the holder. 409 `no_slots`, `already_bound`, `not_a_member`, `own_membership` (the member
    holds a membership of their own in force), `spouse_bound` (the card has a spouse already);
    422 `consent_missing` (adults: consent_source and consent_evidence; minors: consent_source)."""
    def run(scope):
        holder = customer_get(scope, customer_id)
        with referenced_by("body.member_id"):
            member = customer_get(scope, payload.member_id)
        services.family_bind(holder=holder, member=member, relation=payload.relation,
                             consent_source=payload.consent_source, consent_evidence=payload.consent_evidence,
                             actor=request.staff)
        return _answer(scope, holder, 201)

    return _write(request, response, idempotency_key, "family_bind", run)


@router.post("/customers/{int:customer_id}/family/{int:member_id}/unbind", response=WRITE,
             summary="Unbind a family member")
def family_unbind_endpoint(request: HttpRequest, customer_id: Id, member_id: Id, payload: ReasonIn,
                           response: HttpResponse, idempotency_key: IdempotencyKeyHeader = None):
    def run(scope):
        holder = customer_get(scope, customer_id)
        binding = selectors.family_binding_get(scope, holder=holder, member_id=member_id)
        services.family_unbind(binding=binding, reason=payload.reason, actor=request.staff)
        return _answer(scope, holder)

    return _write(request, response, idempotency_key, "family_unbind", run)


@router.post("/customers/{int:customer_id}/wallet-share", response=WRITE,
             summary="Record the holder's consent to share the wallet with a bound family member")
def wallet_share_grant_endpoint(request: HttpRequest, customer_id: Id, payload: WalletShareIn,
                                response: HttpResponse, idempotency_key: IdempotencyKeyHeader = None):
    def run(scope):
        holder = customer_get(scope, customer_id)
        with referenced_by("body.member_id"):
            member = customer_get(scope, payload.member_id)
        services.wallet_share_consent_grant(holder=holder, member=member, mode=payload.mode, source=payload.source,
                                            evidence=payload.evidence, actor=request.staff)
        return _answer(scope, holder)

    return _write(request, response, idempotency_key, "wallet_share_grant", run)


@router.post("/customers/{int:customer_id}/wallet-share/{int:member_id}/revoke", response=WRITE,
             summary="Revoke the holder's wallet-share consent")
def wallet_share_revoke_endpoint(request: HttpRequest, customer_id: Id, member_id: Id, response: HttpResponse,
                                 idempotency_key: IdempotencyKeyHeader = None):
    def run(scope):
        holder = customer_get(scope, customer_id)
        member = customer_get(scope, member_id)
        services.wallet_share_consent_revoke(holder=holder, member=member, actor=request.staff)
        return _answer(scope, holder)

    return _write(request, response, idempotency_key, "wallet_share_revoke", run)


@router.post("/customers/{int:customer_id}/friend-link", response=CREATE,
             summary="The path customer (a friend) names a member and gets the friend discount")
def friend_link_endpoint(request: HttpRequest, customer_id: Id, payload: FriendLinkIn, response: HttpResponse,
                         idempotency_key: IdempotencyKeyHeader = None):
    def run(scope):
        friend = customer_get(scope, customer_id)
        with referenced_by("body.member_id"):
            member = customer_get(scope, payload.member_id)
        services.friend_link(friend=friend, member=member, source=payload.source, actor=request.staff)
        return _answer(scope, friend, 201)

    return _write(request, response, idempotency_key, "friend_link", run)


@router.post("/customers/{int:customer_id}/benefits/{int:benefit_id}/reveal", response=WRITE,
             summary="Reveal a hidden benefit by staff decision")
def benefit_reveal_endpoint(request: HttpRequest, customer_id: Id, benefit_id: Id, payload: RevealIn,
                            response: HttpResponse, idempotency_key: IdempotencyKeyHeader = None):
    def run(scope):
        customer = customer_get(scope, customer_id)
        reveal = services.benefit_reveal(membership=_own(customer), benefit=_benefit(scope, benefit_id),
                                         trigger="staff_decision", detail=payload.detail, actor=request.staff)
        services.benefit_actions_run(reveals=[reveal], actor=request.staff)
        return _answer(scope, customer)

    return _write(request, response, idempotency_key, "benefit_reveal", run)
