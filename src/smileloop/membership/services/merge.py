"""The customer-merge hook: one active membership survives (the better tier), bindings and links follow.

Called by customers.services.customer_merge inside its transaction, before it re-points every foreign key
from the merged record to the survivor. This hook only removes what would clash afterwards (two active
memberships, two active bindings of one person, links from the person to themselves).
"""

from django.db.models import Q
from django.utils import timezone

from smileloop.clinics.models import Staff
from smileloop.customers.models import Customer
from smileloop.membership import reasons
from smileloop.membership.enums import EventKind, MembershipStatus
from smileloop.membership.models import FamilyBinding, FriendLink, Membership, WalletShareConsent
from smileloop.membership.services._common import bindings_end, event_add
from smileloop.membership.services.enrolment import membership_evaluate


def _rank(m: Membership) -> tuple:
    # Better: larger discount, higher rank, lifetime over dated, later expiry, older membership.
    return (m.tier.discount_bp, m.tier.rank, m.expires_at is None,
            m.expires_at.timestamp() if m.expires_at else 0, -m.id)


def membership_merge_hook(*, survivor: Customer, merged: Customer) -> None:
    now = timezone.now()
    pair = [survivor.pk, merged.pk]
    actives = list(Membership.objects.select_for_update().select_related("tier")
                   .filter(customer_id__in=pair, status=MembershipStatus.ACTIVE))
    # The merged person bound to the survivor's card (or the reverse) becomes a binding to oneself: ended first, so
    # the slot it held is free for the bindings the losing card brings.
    FamilyBinding.objects.filter(unbound_at__isnull=True).filter(
        Q(member_id=merged.pk, holder__customer_id__in=pair) | Q(member_id=survivor.pk, holder__customer_id=merged.pk)
    ).update(unbound_at=now, unbind_reason="customer merge: the member is the holder")
    if len(actives) == 2:
        winner, loser = sorted(actives, key=_rank, reverse=True)
        loser.status, loser.ended_at = MembershipStatus.CANCELLED, now
        loser.save(update_fields=["status", "ended_at", "updated_at"])
        event_add(membership=loser, kind=EventKind.CANCELLED, at=now,
                  msg=reasons.message("merged", into=winner.id, merged=merged.pk, survivor=survivor.pk),
                  data={"merged_into_membership": winner.id, "survivor": survivor.pk, "merged": merged.pk})
        moving = FamilyBinding.objects.filter(holder=loser, unbound_at__isnull=True).exclude(member_id__in=pair)
        free = winner.tier.family_slots - FamilyBinding.objects.filter(holder=winner, unbound_at__isnull=True).count()
        ids = list(moving.order_by("bound_at", "id").values_list("id", flat=True))
        FamilyBinding.objects.filter(id__in=ids[:max(free, 0)]).update(holder=winner)
        bindings_end(FamilyBinding.objects.filter(id__in=ids[max(free, 0):]), at=now,
                     reason=f"no free slot on membership #{winner.id} after a merge")
    # Both records bound somewhere: keep the survivor's binding.
    if FamilyBinding.objects.filter(member_id=survivor.pk, unbound_at__isnull=True).exists():
        bindings_end(FamilyBinding.objects.filter(member_id=merged.pk), at=now,
                     reason=f"customer merge: #{survivor.pk} keeps its own binding")
    # Wallet consents: drop ones that become self-consents or duplicate one the survivor already has.
    WalletShareConsent.objects.filter(revoked_at__isnull=True).filter(
        Q(holder_id__in=pair, member_id__in=pair)).update(revoked_at=now)
    for side, other in (("holder_id", "member_id"), ("member_id", "holder_id")):
        kept = WalletShareConsent.objects.filter(**{side: survivor.pk}, revoked_at__isnull=True).values(other)
        WalletShareConsent.objects.filter(**{side: merged.pk}, revoked_at__isnull=True,
                                          **{f"{other}__in": kept}).update(revoked_at=now)
    # Friend links: a person names one member, and never themselves.
    FriendLink.objects.filter(ended_at__isnull=True, friend_id__in=pair, member_id__in=pair).update(ended_at=now)
    if FriendLink.objects.filter(friend_id=survivor.pk, ended_at__isnull=True).exists():
        FriendLink.objects.filter(friend_id=merged.pk, ended_at__isnull=True).update(ended_at=now)


def membership_after_merge(*, survivor: Customer, merged: Customer, actor: Staff | None = None) -> None:
    """After the move: the two records' spend (and top-ups) now count together, so the survivor may reach a
    better tier, or a plan neither record reached alone. Evaluated now rather than at the next bill."""
    membership_evaluate(customer=survivor, actor=actor)
