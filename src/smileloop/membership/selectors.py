"""Reads over memberships.

`membership_current` and the list/get selectors take the staff member's Scope first. The functions the
checkout and wallet call (`member_discount_for`, `benefits_for`, `wallet_share_allowed`) read off customers
the caller already obtained through a scoped selector (customers.selectors.customer_get), like the 360 page.

Discounts never stack. A customer may have up to three member discounts: their own membership's tier
discount, the tier discount of the holder whose family card they are bound to, and the friend discount of
the member they named. Exactly one applies: the largest; on a tie, own beats family beats friend.
"""

import datetime as dt
from dataclasses import dataclass, field, replace

from django.db import connection
from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from smileloop.core.errors import NotFound
from smileloop.core.scoping import Scope
from smileloop.core.sql import select_model, select_models
from smileloop.customers.models import Customer
from smileloop.customers.normalize import name_masked
from smileloop.customers.selectors import customer_queryset, customer_visible
from smileloop.membership.enums import DiscountSource, MembershipStatus
from smileloop.membership.models import (
    Benefit,
    BenefitReveal,
    FamilyBinding,
    FriendLink,
    Membership,
    MembershipEvent,
    MembershipPlan,
    Tier,
    WalletShareConsent,
)

_SOURCE_ORDER = {DiscountSource.OWN: 3, DiscountSource.FAMILY: 2, DiscountSource.FRIEND: 1}


@dataclass(frozen=True)
class MemberDiscount:
    """The one member discount that applies to a customer, and why."""

    source: str  # DiscountSource: own / family / friend
    tier: Tier
    discount_bp: int
    excluded_categories: list[str]
    exclude_special_price: bool
    membership: Membership  # the membership the discount comes from (the holder's / the named member's)
    reason: str


@dataclass
class CurrentMembership:
    """What membership_current answers: the customer's own membership (may be None) and the effective
    discount (own, family or friend) with the reason it applies."""

    own: Membership | None
    discount: MemberDiscount | None
    binding: FamilyBinding | None = None
    friend_link: FriendLink | None = None
    alternatives: list[MemberDiscount] = field(default_factory=list)
    # The people named, as the reader's scope shows them (`membership_current` and `membership_current_in_scope`):
    # whose membership gives a family or friend discount, and whose family card the customer is bound to.
    discount_from: "NamedPerson | None" = None
    bound_to: "NamedPerson | None" = None

    @property
    def effective_tier(self) -> Tier | None:
        return self.discount.tier if self.discount else None




def _in_force(m: Membership | None, at: dt.datetime) -> bool:
    return m is not None and m.status == MembershipStatus.ACTIVE and (m.expires_at is None or m.expires_at > at)


def own_membership_in_force(customer: Customer, *, at: dt.datetime | None = None) -> Membership | None:
    """`own_membership` when in force at `at` (now): one past its expiry is none, as an expired one, though the
    nightly job has not marked it yet (what the staff pages and the API act on)."""
    own = own_membership(customer)
    return own if _in_force(own, at or timezone.now()) else None


def own_membership(customer: Customer) -> Membership | None:
    """`membership_active` with `customer` as its customer (the row the caller holds, not read again)."""
    own = membership_active(customer)
    if own is not None:
        own.customer = customer
    return own


def membership_active(customer: Customer) -> Membership | None:
    """The customer's active membership with its plan and tier, in one plain read (core.sql): checkout reads it
    twice per bill (pricing, then membership evaluation)."""
    return select_model(Membership, "t0.customer_id = %s AND t0.chain_id = %s AND t0.status = %s",
                        [customer.pk, customer.chain_id, MembershipStatus.ACTIVE], related=("plan", "tier"))


def _links_of(customer: Customer) -> tuple[int | None, int | None]:
    """Ids of the customer's open family binding and friend link (None: none), in one small query. Most
    customers have neither; the joined reads of a binding or link cost far more to build than this does to run
    (checkout reads the discount twice per bill)."""
    quote = connection.ops.quote_name
    with connection.cursor() as cur:
        cur.execute(f"SELECT (SELECT id FROM {quote(FamilyBinding._meta.db_table)} WHERE member_id = %s "
                    f"AND unbound_at IS NULL ORDER BY id LIMIT 1), "
                    f"(SELECT id FROM {quote(FriendLink._meta.db_table)} WHERE friend_id = %s "
                    f"AND ended_at IS NULL ORDER BY id LIMIT 1)", [customer.pk, customer.pk])
        binding_id, link_id = cur.fetchone()
    return binding_id, link_id


def _candidates(customer: Customer, at: dt.datetime) -> tuple[list[MemberDiscount], FamilyBinding | None,
                                                               FriendLink | None, Membership | None]:
    found: list[MemberDiscount] = []
    own = own_membership(customer)
    if _in_force(own, at):
        found.append(MemberDiscount(DiscountSource.OWN, own.tier, own.tier.discount_bp,
                                    list(own.tier.excluded_categories), own.tier.exclude_special_price, own,
                                    f"own membership {own.tier.name}"))
    binding_id, link_id = _links_of(customer)
    binding = (FamilyBinding.objects.select_related("holder__tier", "holder__plan", "holder__customer")
               .filter(pk=binding_id, unbound_at__isnull=True).first()) if binding_id else None
    if binding is not None and _in_force(binding.holder, at):
        h = binding.holder
        found.append(MemberDiscount(DiscountSource.FAMILY, h.tier, h.tier.discount_bp, list(h.tier.excluded_categories),
                                    h.tier.exclude_special_price, h,
                                    f"family card of {h.customer.name} (#{h.customer_id}), {h.tier.name}"))
    link = (FriendLink.objects.select_related("member").filter(pk=link_id, ended_at__isnull=True).first()
            if link_id else None)
    if link is not None:
        named = own_membership(link.member)
        if _in_force(named, at) and named.tier.friend_discount_bp:
            found.append(MemberDiscount(DiscountSource.FRIEND, named.tier, named.tier.friend_discount_bp,
                                        list(named.tier.excluded_categories), named.tier.exclude_special_price, named,
                                        f"friend of {link.member.name} (#{link.member_id}), {named.tier.name}"))
    return found, binding, link, own


def _best(found: list[MemberDiscount]) -> MemberDiscount | None:
    if not found:
        return None
    return max(found, key=lambda d: (d.discount_bp, _SOURCE_ORDER[d.source]))


def member_discount_for(customer: Customer, *, at: dt.datetime | None = None) -> MemberDiscount | None:
    """The single member discount for a customer (None if none applies): the largest of own, family and
    friend; on a tie own > family > friend. Checkout applies it to lines outside `excluded_categories`
    (and not special-price items when `exclude_special_price`)."""
    found, *_ = _candidates(customer, at or timezone.now())
    return _best(found)


def member_discount_and_own(customer: Customer, *, at: dt.datetime | None = None,
                            ) -> tuple[MemberDiscount | None, Membership | None]:
    """`member_discount_for` and the customer's own active membership (with plan and tier) from the same reads:
    checkout prices with the first and hands the second to `membership_evaluate` instead of reading it again."""
    found, _binding, _link, own = _candidates(customer, at or timezone.now())
    return _best(found), own


@dataclass(frozen=True)
class NamedPerson:
    """Another patient a membership names (family card holder or member, the member a friend named), as a reader
    may see them: in their scope by name and id; outside it (another clinic's patient) masked, 张*, without an id."""

    id: int | None
    name: str


def person_in_scope(scope: Scope, customer: Customer) -> NamedPerson:
    if customer_visible(scope, customer):
        return NamedPerson(customer.id, customer.name)
    return NamedPerson(None, name_masked(customer.name))


def _discount_in_scope(scope: Scope, discount: MemberDiscount) -> MemberDiscount:
    """The discount with its reason naming the family holder or friend only as far as `scope` shows them."""
    person = discount.membership.customer
    if discount.source == DiscountSource.OWN or customer_visible(scope, person):
        return discount
    reason = discount.reason.replace(f"{person.name} (#{person.pk})", name_masked(person.name))
    return replace(discount, reason=reason)


def membership_current(scope: Scope, customer: Customer, *, at: dt.datetime | None = None) -> CurrentMembership:
    """The customer's own membership and the effective discount (own, family or friend) with its reason.
    Raises NotFound when the customer is outside the scope."""
    if not customer_queryset(scope).filter(pk=customer.pk).exists():
        raise NotFound("Customer not found")
    return membership_current_in_scope(scope, customer, at=at)


def membership_current_in_scope(scope: Scope, customer: Customer, *, at: dt.datetime | None = None
                                ) -> CurrentMembership:
    """`membership_current_for` as `scope` may read it, for a customer obtained through a scoped selector: a family
    card holder or named member of another clinic is masked and has no id (`NamedPerson`), in the reasons too
    (a friend names a member of any clinic; a chain role may bind relatives across clinics)."""
    current = membership_current_for(customer, at=at)
    if current.discount is not None:
        if current.discount.source != DiscountSource.OWN:
            current.discount_from = person_in_scope(scope, current.discount.membership.customer)
        current.discount = _discount_in_scope(scope, current.discount)
    current.alternatives = [_discount_in_scope(scope, d) for d in current.alternatives]
    if current.binding is not None:
        current.bound_to = person_in_scope(scope, current.binding.holder.customer)
    return current


def membership_current_for(customer: Customer, *, at: dt.datetime | None = None) -> CurrentMembership:
    """`membership_current` for a customer the caller already obtained through a scoped selector
    (customers.selectors.customer_get, as the 360 page does): the scope is not checked a second time."""
    at = at or timezone.now()
    found, binding, link, own = _candidates(customer, at)
    best = _best(found)
    # A card past its expiry is shown as an expired one is (none in force: the card offers enrolment), before the
    # nightly job marks it: the services refuse it as expired.
    return CurrentMembership(own=own if _in_force(own, at) else None, discount=best,
                             binding=binding if binding and binding.unbound_at is None else None,
                             friend_link=link, alternatives=[d for d in found if d is not best])


@dataclass(frozen=True)
class BenefitView:
    benefit: Benefit
    hidden: bool
    reveal: BenefitReveal | None


_UNSET = object()


def benefits_for(customer: Customer, *, include_unrevealed: bool = False, own=_UNSET) -> list[BenefitView]:
    """Benefits of the customer's own active membership: visible ones always, hidden ones only once revealed
    (staff pages pass include_unrevealed=True to offer a reveal; members never see those). `own`: the
    customer's own active membership (or None) when the caller has just read it (`own_membership`)."""
    own = own_membership(customer) if own is _UNSET else own
    if own is None:
        return []
    reveals = {r.benefit_id: r for r in BenefitReveal.objects.filter(membership=own).select_related("actor")}
    out = []
    for benefit in Benefit.objects.filter(tier_id=own.tier_id).order_by("position", "id"):
        reveal = reveals.get(benefit.id)
        if benefit.is_hidden and reveal is None and not include_unrevealed:
            continue
        out.append(BenefitView(benefit, benefit.is_hidden, reveal))
    return out


def latest_membership(customer: Customer) -> Membership | None:
    """The customer's most recent membership, whatever its status (renewing an expired one)."""
    return (Membership.objects.select_related("plan", "tier").filter(customer_id=customer.pk)
            .order_by("-started_at", "-id").first())


def revealed_benefits_history(customer: Customer) -> list[BenefitReveal]:
    """Every reveal of any of the customer's memberships, newest first (the member's history). A plain read
    (core.sql), like membership_events: both run on every 360 page, mostly finding nothing."""
    return select_models(BenefitReveal, "t2.customer_id = %s", [customer.pk],
                         related=["benefit", "membership", "membership__tier", "actor"],
                         tail="ORDER BY t0.revealed_at DESC, t0.id DESC")


def wallet_share_allowed(holder: Customer, member: Customer, *, at: dt.datetime | None = None) -> str | None:
    """The mode of the holder's consent (`standing` / `per_use`) for `member` to spend from the holder's wallet,
    or None: no consent, the binding ended, or the holder's membership is not in force."""
    at = at or timezone.now()
    binding = (FamilyBinding.objects.select_related("holder")
               .filter(holder__customer_id=holder.pk, member_id=member.pk, unbound_at__isnull=True).first())
    if binding is None or not _in_force(binding.holder, at):
        return None
    consent = WalletShareConsent.objects.filter(holder_id=holder.pk, member_id=member.pk,
                                                revoked_at__isnull=True).first()
    return consent.mode if consent else None


def wallet_share_modes(membership: Membership, bindings, *, at: dt.datetime | None = None) -> dict[int, str | None]:
    """`wallet_share_allowed` for each active binding of `membership` (`family_bindings_of`), by member id, in one
    query: the API's membership answer asked it once per family member (two queries each)."""
    at = at or timezone.now()
    members = [b.member_id for b in bindings if b.holder_id == membership.pk and b.unbound_at is None]
    if not members or not _in_force(membership, at):
        return dict.fromkeys(members)
    modes = dict(WalletShareConsent.objects.filter(holder_id=membership.customer_id, member_id__in=members,
                                                   revoked_at__isnull=True).values_list("member_id", "mode"))
    return {member_id: modes.get(member_id) for member_id in members}


def family_bindings_of(membership: Membership, *, active_only: bool = True) -> QuerySet[FamilyBinding]:
    qs = FamilyBinding.objects.filter(holder=membership).select_related("member", "bound_by")
    if active_only:
        qs = qs.filter(unbound_at__isnull=True)
    return qs.order_by("bound_at", "id")


def family_binding_get(scope: Scope, *, holder: Customer, member_id) -> FamilyBinding:
    """The active binding of `member_id` to the holder's card; NotFound otherwise (or outside the scope)."""
    try:
        member_id = int(member_id)
    except (TypeError, ValueError):
        raise NotFound("Family member not found")
    binding = (FamilyBinding.objects.select_related("holder", "member")
               .filter(holder__customer_id=holder.pk, member_id=member_id, unbound_at__isnull=True)
               .filter(member__in=customer_queryset(scope)).first())
    if binding is None:
        raise NotFound("Family member not found")
    return binding


def membership_events(customer: Customer, *, limit: int = 50) -> list[MembershipEvent]:
    return select_models(MembershipEvent, "t1.customer_id = %s", [customer.pk],
                         related=["membership", "membership__tier", "actor"],
                         tail=f"ORDER BY t0.occurred_at DESC, t0.id DESC LIMIT {int(limit)}")


def wallet_consents_given(customer: Customer) -> QuerySet[WalletShareConsent]:
    return WalletShareConsent.objects.filter(holder_id=customer.pk, revoked_at__isnull=True).select_related("member")


# --- configuration -------------------------------------------------------------------------------------


def plan_list(scope: Scope, *, active_only: bool = False) -> QuerySet[MembershipPlan]:
    qs = MembershipPlan.objects.filter(chain_id=scope.chain_id)
    if active_only:
        qs = qs.filter(is_active=True)
    tiers = Tier.objects.order_by("rank").prefetch_related(Prefetch("benefits", Benefit.objects.order_by("position", "id")))
    return qs.prefetch_related(Prefetch("tiers", tiers)).order_by("name")


def plan_get(scope: Scope, plan_id) -> MembershipPlan:
    try:
        return MembershipPlan.objects.get(chain_id=scope.chain_id, pk=int(plan_id))
    except (TypeError, ValueError, MembershipPlan.DoesNotExist):
        raise NotFound("Plan not found")


def tier_get(scope: Scope, tier_id) -> Tier:
    try:
        return Tier.objects.select_related("plan").get(plan__chain_id=scope.chain_id, pk=int(tier_id))
    except (TypeError, ValueError, Tier.DoesNotExist):
        raise NotFound("Tier not found")


def benefit_get(scope: Scope, benefit_id) -> Benefit:
    try:
        return Benefit.objects.select_related("tier__plan").get(tier__plan__chain_id=scope.chain_id, pk=int(benefit_id))
    except (TypeError, ValueError, Benefit.DoesNotExist):
        raise NotFound("Benefit not found")
