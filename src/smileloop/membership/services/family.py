"""The family card: bindings (with recorded consent), wallet-share consents and friend links."""

import datetime as dt

from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_noop

from smileloop.clinics.models import Staff
from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.errors import Conflict
from smileloop.core.sql import lock_clause, select_models
from smileloop.customers.enums import InteractionKind, Relation, Stage
from smileloop.customers.models import Customer
from smileloop.customers.normalize import name_masked
from smileloop.customers.selectors import name_for
from smileloop.customers.services import (
    ERASED_REFUSED,
    customer_stage_advance,
    customers_lock,
    interaction_add,
)
from smileloop.customers.timeline import timeline_format
from smileloop.membership import reasons
from smileloop.membership.enums import ConsentBy, MembershipStatus, WalletShareMode
from smileloop.membership.errors import (
    AlreadyBound,
    AlreadyLinked,
    ConsentMissing,
    MembershipInputError,
    NoConsent,
    NoSlots,
    NotAMember,
    NotBound,
    OwnMembership,
    SelfReference,
    SpouseBound,
)
from smileloop.membership.models import (
    FamilyBinding,
    FriendLink,
    Membership,
    MembershipEvent,
    WalletShareConsent,
)
from smileloop.membership.services._common import (
    CARD_CANCELLED,
    CARD_ENDED,
    CARD_TRIMMED,
    UNBOUND_HOOKS,
    age_on,
    bindings_end,
    day,
    members_uncovered,
    now_or,
)
from smileloop.membership.services.enrolment import _locked_customer

ADULT_AGE = 18

# The timelines of both people say who bound or unbound whom, and why when staff said. Each names the other masked:
# the reader of one timeline may not see the other person (another clinic's patient, PIPL).
BOUND = gettext_noop("bound to the family card of %(holder)s as %(relation)s")
BOUND_HOLDER = gettext_noop("family card: %(member)s bound as %(relation)s")
UNBOUND = gettext_noop("unbound from the family card of %(holder)s")
UNBOUND_BECAUSE = gettext_noop("unbound from the family card of %(holder)s: %(reason)s")
UNBOUND_HOLDER = gettext_noop("family card: %(member)s unbound")
UNBOUND_HOLDER_BECAUSE = gettext_noop("family card: %(member)s unbound: %(reason)s")
CARD_RENEWED = gettext_noop("the family card of %(holder)s is in force again (renewed)")
TIMELINE_TEMPLATES = (BOUND, BOUND_HOLDER, UNBOUND_BECAUSE, UNBOUND, UNBOUND_HOLDER_BECAUSE, UNBOUND_HOLDER, CARD_RENEWED,
                      CARD_CANCELLED, CARD_ENDED, CARD_TRIMMED)


def family_unbound_hook_register(hook) -> None:
    """Lifecycle (above this app) registers hook(member_id=, at=, cause=, actor=) to re-derive the stage of a member
    who was a member only through a card that no longer covers them (`lifecycle.services.family_card_ended_stage`):
    at once, as family_bind made them a member at once, on an unbinding (its sentence the stage event's cause) and on
    every write that ends bindings for good (`_common.bindings_end` with a cause: the card cancelled or ended, a tier
    with fewer slots). A card past its expiry is left to the nightly lifecycle run."""
    if hook not in UNBOUND_HOOKS:
        UNBOUND_HOOKS.append(hook)


def _own_membership(member: Customer, at: dt.datetime) -> Membership | None:
    """The member's own membership in force at `at` (active and not past its expiry), if any."""
    return Membership.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=at), customer_id=member.pk,
                                     chain_id=member.chain_id, status=MembershipStatus.ACTIVE).first()


def _holder_membership(holder: Customer, *, lock: bool, at: dt.datetime, field: str | None = None) -> Membership:
    qs = Membership.objects.select_related("tier", "plan").filter(
        customer_id=holder.pk, chain_id=holder.chain_id, status=MembershipStatus.ACTIVE)
    if lock:
        qs = qs.select_for_update()
    membership = qs.first()
    if membership is None or (membership.expires_at is not None and membership.expires_at <= at):
        raise NotAMember(f"{holder.name} has no active membership", field=field)
    return membership


def _active_binding(member: Customer):
    return FamilyBinding.objects.select_related("holder__customer", "holder__tier").filter(
        member_id=member.pk, unbound_at__isnull=True).first()


def _locked_people(*people: Customer, fields: tuple[str, ...] = ("customer_id", "member_id")) -> list[Customer]:
    """Lock the rows of the people a family-card write relates (in id order, so two writes crossing the same two
    people never deadlock) and read them afresh: two staff binding one person to two cards at once are serialised
    on that person (the second meets AlreadyBound, not the unique index: a 500 on PostgreSQL). A record merged away
    or whose personal information was erased (PIPL) is refused naming its field: `membership_erase_hook` ended their
    relations, and no new one may be recorded for them (nor new consent evidence about them)."""
    ids = [p.pk for p in people]
    rows = {c.pk: c for c in select_models(Customer, f"t0.id IN ({', '.join(['%s'] * len(ids))})", ids,
                                           tail="ORDER BY t0.id" + lock_clause(no_key=True))}
    for person, field in zip(people, fields, strict=True):
        row = rows.get(person.pk)
        if row is None or row.merged_into_id is not None:
            raise MembershipInputError("is not a live customer record (merged into another); use the surviving "
                                       "record", code="merged", field=field)
        if row.erased_at is not None:
            raise MembershipInputError("is an erased record (personal information erased): a family card or "
                                       "friend link can no longer be recorded for it", code="erased",
                                       field=field)
    return [rows[p.pk] for p in people]


@transaction.atomic
def family_bind(*, holder: Customer, member: Customer, relation: str, consent_source: str,
                consent_evidence: str = "", actor: Staff | None = None,
                as_of: dt.datetime | None = None) -> FamilyBinding:
    """Bind `member` to the holder's active membership; they then share its tier discount.

    Consent: an adult member (18 or older, or of unknown age) must have consented themselves — the
    source and the evidence (e.g. the signed form's number) are required; a minor is consented by the
    holder as guardian, which is recorded as such (source required). A customer is bound to at most one
    active holder (a binding to an expired holder is ended first); the tier's `family_slots` caps the
    active bindings. Refused: a member who holds a membership of their own in force (`own_membership`: they have
    their own discount, and maybe their own card; one whose own membership expired or was cancelled may be bound), and
    a second spouse on one card (`spouse_bound`; children, parents and the other relations may be several). Refusals
    write nothing."""
    at = now_or(as_of)
    if member.pk == holder.pk:
        raise SelfReference("a member cannot bind themselves", field="member_id")
    if member.chain_id != holder.chain_id:
        raise MembershipInputError("must be a customer of the same chain", code="invalid", field="member_id")
    if relation not in Relation.values or relation == Relation.HEAD:
        raise MembershipInputError("must be a family relation (spouse, child, parent, …)", code="invalid",
                                   field="relation")
    source, evidence = (consent_source or "").strip(), (consent_evidence or "").strip()
    age = age_on(member.birthday, timezone.localdate(at))
    adult = age is None or age >= ADULT_AGE
    if adult and (not source or not evidence):
        missing = "consent_source" if not source else "consent_evidence"
        raise ConsentMissing(f"{member.name} is an adult: record their own consent (where it was given and the "
                             "evidence, e.g. the signed form's number)", field=missing)
    if not adult and not source:
        raise ConsentMissing(f"{member.name} is a minor: record the holder's consent as guardian (where it was "
                             "given)", field="consent_source")
    _locked_people(holder, member)
    membership = _holder_membership(holder, lock=True, at=at)
    # Read under the member's row lock: an enrolment of theirs locks it too (`_locked_enrollable`).
    if _own_membership(member, at) is not None:
        raise OwnMembership(f"{member.name} holds a membership of their own in force: a family slot is for a "
                            "relative without one", field="member_id")
    existing = _active_binding(member)
    if existing is not None:
        holder_live = existing.holder.status == MembershipStatus.ACTIVE and (
            existing.holder.expires_at is None or existing.holder.expires_at > at)
        if holder_live:
            # The other holder may be another clinic's patient: named masked, without an id (PIPL).
            raise AlreadyBound(f"{member.name} is already bound to the family card of "
                               f"{name_masked(existing.holder.customer.name)}", field="member_id")
        bindings_end(FamilyBinding.objects.filter(pk=existing.pk), at=at,
                     reason=f"holder's membership #{existing.holder_id} no longer active")
    # Under the holder's membership lock: two binds on one card are serialised, so two spouses never both pass.
    if relation == Relation.SPOUSE and FamilyBinding.objects.filter(
            holder=membership, relation=Relation.SPOUSE, unbound_at__isnull=True).exists():
        raise SpouseBound("this family card already has a spouse bound; unbind them first", field="relation")
    used = FamilyBinding.objects.filter(holder=membership, unbound_at__isnull=True).count()
    if used >= membership.tier.family_slots:
        raise NoSlots(f"all {membership.tier.family_slots} family slots of {membership.tier.name} are in use; "
                      "unbind someone first", field="member_id")
    binding = FamilyBinding.objects.create(
        holder=membership, member=member, relation=relation,
        consent_by=ConsentBy.MEMBER if adult else ConsentBy.GUARDIAN, consent_at=at, consent_source=source[:64],
        consent_evidence=evidence[:255], bound_at=at, bound_by=actor)
    data = {"binding_id": binding.pk, "relation": relation}
    bound = timeline_format(BOUND, holder=name_masked(holder.name), relation=relation)
    interaction_add(customer=member, kind=InteractionKind.SYSTEM, author=actor, occurred_at=at, data=data, text=bound)
    interaction_add(customer=holder, kind=InteractionKind.SYSTEM, author=actor, occurred_at=at, data=data,
                    text=timeline_format(BOUND_HOLDER, member=name_masked(member.name), relation=relation))
    # A family-card member is a member (lifecycle counts the binding as an enrolment): at once, as an enrolment
    # moves its holder, not at the next stages_derive run; a binding dated back counts from its day, as one does.
    customer_stage_advance(customer=member, to=Stage.MEMBER, cause=bound, at=at, actor=actor, event_at=at)
    return binding


@transaction.atomic
def family_unbind(*, binding: FamilyBinding, reason: str = "", actor: Staff | None = None,
                  as_of: dt.datetime | None = None) -> FamilyBinding:
    """End a binding; any wallet-share consent between holder and member ends with it. A member who was a member only
    through this card (no membership of their own) goes back, at once, to the stage their own facts prove (the
    lifecycle hook: treated, arrived … or dormant / lost by their last visit), with the unbinding as the cause."""
    at = now_or(as_of)
    # The two people first (in id order), the erasure's order: its hook ends this binding with the person locked.
    people = FamilyBinding.objects.filter(pk=binding.pk).values_list("holder__customer_id", "member_id").first()
    customers_lock(*(people or ()))
    binding = FamilyBinding.objects.select_for_update().select_related("holder").get(pk=binding.pk)
    if binding.unbound_at is not None:
        raise NotBound("this family member is no longer bound", field="member_id")
    binding.unbound_at = at
    why = (reason or "").strip()[:255]
    binding.unbind_reason = why or f"unbound by staff on {day(at)}"
    binding.save(update_fields=["unbound_at", "unbind_reason"])
    WalletShareConsent.objects.filter(holder_id=binding.holder.customer_id, member_id=binding.member_id,
                                      revoked_at__isnull=True).update(revoked_at=at)
    holder, member = binding.holder.customer, binding.member
    data = {"binding_id": binding.pk}
    unbound = timeline_format(UNBOUND_BECAUSE if why else UNBOUND, holder=name_masked(holder.name), reason=why)
    interaction_add(customer=member, kind=InteractionKind.SYSTEM, author=actor, occurred_at=at, data=data,
                    text=unbound)
    interaction_add(customer=holder, kind=InteractionKind.SYSTEM, author=actor, occurred_at=at, data=data,
                    text=timeline_format(UNBOUND_HOLDER_BECAUSE if why else UNBOUND_HOLDER,
                                         member=name_masked(member.name), reason=why))
    members_uncovered([member.pk], at=at, cause=unbound, actor=actor)
    return binding


def family_card_renewed(*, membership: Membership, at: dt.datetime, actor: Staff | None = None) -> int:
    """After a renewal (`membership_renew`): the members still bound to the card are members again at once, as
    family_bind made them (the nightly lifecycle run took the stage back while the card had lapsed: bindings stay
    through a lapse, for a renewal to bring back). One conditional UPDATE per bound member (at most the tier's
    family slots); nothing for those already members. Returns how many moved."""
    members = list(FamilyBinding.objects.filter(holder=membership, unbound_at__isnull=True)
                   .values_list("member_id", flat=True))
    cause = timeline_format(CARD_RENEWED, holder=name_masked(membership.customer.name))
    return sum(customer_stage_advance(customer=member_id, to=Stage.MEMBER, cause=cause, at=at, actor=actor,
                                      event_at=at) for member_id in members)


def _binding_between(holder: Customer, member: Customer, at: dt.datetime) -> FamilyBinding | None:
    """The binding of `member` to `holder`'s card in force at `at` (a card past its expiry is expired, though the
    nightly job has not marked it yet)."""
    return FamilyBinding.objects.filter(
        Q(holder__expires_at__isnull=True) | Q(holder__expires_at__gt=at), holder__customer_id=holder.pk,
        holder__status=MembershipStatus.ACTIVE, member_id=member.pk, unbound_at__isnull=True).first()


@transaction.atomic
def wallet_share_consent_grant(*, holder: Customer, member: Customer, mode: str, source: str, evidence: str = "",
                               actor: Staff | None = None, as_of: dt.datetime | None = None) -> WalletShareConsent:
    """Record the holder's consent that a bound family member may spend from the holder's wallet, for good
    (`standing`) or each time (`per_use`: the wallet asks again at every spend). Granting the mode already
    in force returns it; another mode replaces it (the old one is revoked)."""
    at = now_or(as_of)
    if mode not in WalletShareMode.values:
        raise MembershipInputError(f"must be one of {', '.join(WalletShareMode.values)}", code="invalid", field="mode")
    if not (source or "").strip():
        raise ConsentMissing("is required (where the holder gave the consent)", field="source")
    # Both people first (in id order), the erasure's order: a member or holder erased meanwhile is refused, not
    # given a consent after `membership_erase_hook` ended theirs.
    erased = customers_lock(holder.pk, member.pk)
    _locked_customer(holder)
    if erased:
        raise Conflict(ERASED_REFUSED, code="erased", field="member_id" if member.pk in erased else "customer_id")
    if _binding_between(holder, member, at) is None:
        raise NotBound(f"{member.name} is not a bound family member of {holder.name}", field="member_id")
    current = WalletShareConsent.objects.filter(holder_id=holder.pk, member_id=member.pk, revoked_at__isnull=True).first()
    if current is not None:
        if current.mode == mode:
            return current
        current.revoked_at = at
        current.save(update_fields=["revoked_at"])
    return WalletShareConsent.objects.create(holder=holder, member=member, mode=mode, granted_at=at,
                                             source=source.strip()[:64], evidence=(evidence or "").strip()[:255],
                                             recorded_by=actor)


@transaction.atomic
def wallet_share_consent_revoke(*, holder: Customer, member: Customer, actor: Staff | None = None,
                                as_of: dt.datetime | None = None) -> WalletShareConsent:
    at = now_or(as_of)
    current = (WalletShareConsent.objects.select_for_update()
               .filter(holder_id=holder.pk, member_id=member.pk, revoked_at__isnull=True).first())
    if current is None:
        # Named as the acting staff member may see them: a relative of another clinic only masked (PIPL).
        reader = scope_for_staff(actor) if actor is not None else None
        raise NoConsent(f"{name_for(reader, holder)} has given no wallet-share consent to {name_for(reader, member)}",
                        field="member_id")
    current.revoked_at = at
    current.save(update_fields=["revoked_at"])
    return current


@transaction.atomic
def friend_link(*, friend: Customer, member: Customer, source: str = "", actor: Staff | None = None,
                as_of: dt.datetime | None = None) -> FriendLink:
    """`friend` names `member` (who must hold an active membership of their own) and gets the member tier's
    friend discount. Naming the same member again returns the link; a friend names one member at a time."""
    at = now_or(as_of)
    if friend.pk == member.pk:
        raise SelfReference("a customer cannot name themselves", field="member_id")
    if friend.chain_id != member.chain_id:
        raise MembershipInputError("must be a customer of the same chain", code="invalid", field="member_id")
    _holder_membership(member, lock=False, at=at, field="member_id")
    _locked_people(friend, member, fields=("customer_id", "member_id"))
    current = FriendLink.objects.select_related("member").filter(friend_id=friend.pk, ended_at__isnull=True).first()
    if current is not None:
        if current.member_id == member.pk:
            return current
        # A friend names a member of any clinic: named masked, without an id (PIPL).
        raise AlreadyLinked(f"{friend.name} already named {name_masked(current.member.name)}", field="member_id")
    return FriendLink.objects.create(friend=friend, member=member, named_at=at, source=(source or "")[:64],
                                     recorded_by=actor)


ERASED_REASON = "personal information erased"


def membership_erase_hook(*, customer: Customer, actor: Staff | None = None) -> dict:
    """Before a person's personal information is erased (customers.privacy): the family-card bindings, wallet-share
    consents and friend links they are part of (either side) end now; those are relations between people, and the
    consents' evidence (free text) is blanked. Their own membership and its history stay (a contract and what it
    cost), less the reasons staff typed for their upgrades, downgrades and cancellation."""
    at = timezone.now()
    bindings = FamilyBinding.objects.filter(unbound_at__isnull=True).filter(
        models.Q(member=customer) | models.Q(holder__customer=customer))
    ended = bindings.update(unbound_at=at, unbind_reason=ERASED_REASON)
    revoked = WalletShareConsent.objects.filter(revoked_at__isnull=True).filter(
        models.Q(holder=customer) | models.Q(member=customer)).update(revoked_at=at)
    links = FriendLink.objects.filter(ended_at__isnull=True).filter(
        models.Q(friend=customer) | models.Q(member=customer)).update(ended_at=at)
    # The consents' evidence is what staff typed ("张三签字 13800138000"): it goes, on both sides; who consented
    # (holder or member), how and when stay.
    FamilyBinding.objects.filter(models.Q(member=customer) | models.Q(holder__customer=customer)).exclude(
        consent_evidence="").update(consent_evidence="")
    WalletShareConsent.objects.filter(models.Q(holder=customer) | models.Q(member=customer)).exclude(
        evidence="").update(evidence="")
    # A staff upgrade, downgrade or cancellation keeps what happened and when; the why staff typed goes (it reads
    # "staff decision", as an event recorded without one does).
    typed = [event for event in MembershipEvent.objects.filter(membership__customer=customer).only("id", "data")
             if isinstance((event.data or {}).get("msg"), dict) and (event.data["msg"].get("args") or {}).get("why")]
    for event in typed:
        msg = event.data["msg"]
        event.data = {**event.data, "msg": {**msg, "args": {**msg["args"], "why": ""}}}
        event.reason = reasons.english(event.data["msg"])[:500]
    MembershipEvent.objects.bulk_update(typed, ["data", "reason"])
    return {"family_bindings_ended": ended, "wallet_consents_revoked": revoked, "friend_links_ended": links}
