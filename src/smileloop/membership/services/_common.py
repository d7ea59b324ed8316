"""Helpers shared by the membership services: readable money and dates, month arithmetic, events."""

import datetime as dt

from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_noop

from smileloop.clinics.models import Staff
from smileloop.core.bounds import field_bounds
from smileloop.core.dates import add_months, age_on, day_end  # noqa: F401
from smileloop.core.money import yuan_grouped as yuan  # noqa: F401 (3012000 → '30,120.00' in event reasons)
from smileloop.customers.normalize import name_masked
from smileloop.customers.timeline import timeline_format
from smileloop.membership import reasons
from smileloop.membership.enums import EventKind, MembershipStatus
from smileloop.membership.errors import PeriodOutOfRange
from smileloop.membership.models import (
    FamilyBinding,
    Membership,
    MembershipEvent,
    MembershipPlan,
    WalletShareConsent,
)


def day(moment: dt.datetime) -> str:
    """A moment as the local calendar day, e.g. '2026-03-02' (the chain's time zone is the site's)."""
    return timezone.localdate(moment).isoformat()


def plan_duration_ok(plan: MembershipPlan) -> bool:
    """False for a plan whose duration is longer than the bounds allow (saved before they existed; 100000 months
    is past the year 9999, where the date computation fails)."""
    high = field_bounds(MembershipPlan._meta.get_field("duration_months"))[1]
    return plan.duration_months is None or plan.duration_months <= high


def plan_duration_check(plan: MembershipPlan) -> None:
    """Refuse to date a membership by a plan `plan_duration_ok` refuses: PeriodOutOfRange naming the plan,
    changing nothing, instead of a 500 on each enrolment or renewal."""
    if not plan_duration_ok(plan):
        high = field_bounds(MembershipPlan._meta.get_field("duration_months"))[1]
        raise PeriodOutOfRange(f"plan {plan.name} has duration_months = {plan.duration_months}, longer than the "
                               f"{high} allowed; correct it in the membership settings first", name=plan.name,
                               field="plan_id")


def now_or(as_of: dt.datetime | None) -> dt.datetime:
    return as_of or timezone.now()


def lapsed(membership: Membership, at: dt.datetime) -> bool:
    """An active membership past its `expires_at`: the nightly `memberships_expire` has not reached it yet, but it
    is expired from its last local day on (no discount, as `selectors` read it), so every write treats it so.
    A lifetime membership (no `expires_at`) never lapses."""
    return (membership.status == MembershipStatus.ACTIVE and membership.expires_at is not None
            and membership.expires_at <= at)


def status_at(membership: Membership, at: dt.datetime) -> str:
    """The status as of `at`: a lapsed membership is expired (see `lapsed`)."""
    return MembershipStatus.EXPIRED if lapsed(membership, at) else membership.status


def lapse(membership: Membership, *, at: dt.datetime) -> None:
    """Expire a lapsed membership now, as the nightly job would (status, end, its `expired` event; its family
    stays bound, for a renewal to bring back), so that a new membership may take its place."""
    Membership.objects.filter(pk=membership.pk, status=MembershipStatus.ACTIVE).update(
        status=MembershipStatus.EXPIRED, ended_at=at, updated_at=at)
    membership.status, membership.ended_at = MembershipStatus.EXPIRED, at
    msg = reasons.message("expired", day=day(at), tier=membership.tier.name, until=day(membership.expires_at))
    event_add(membership=membership, kind=EventKind.EXPIRED, at=at, msg=msg,
              data={"expires_at": membership.expires_at.isoformat()})


def event_add(*, membership: Membership, kind: str, at: dt.datetime, msg: dict, data: dict | None = None,
              actor: Staff | None = None) -> MembershipEvent:
    """Record an event; `msg` (membership.reasons.message) is its reason, stored as English text and as data
    the pages render in the reader's language."""
    return MembershipEvent.objects.create(membership=membership, kind=kind, occurred_at=at,
                                          reason=reasons.english(msg)[:500], data={**(data or {}), "msg": msg},
                                          actor=actor)


# Causes of the stage event of a member whose card a staff action (or an evaluation) ended at once: the card
# cancelled, ended (spend fell below every tier), or moved to a tier with fewer slots than it held (registered with
# the timeline by apps.py through family.TIMELINE_TEMPLATES; the holder named masked, PIPL).
CARD_CANCELLED = gettext_noop("the family card of %(holder)s was cancelled")
CARD_ENDED = gettext_noop("the family card of %(holder)s ended")
CARD_TRIMMED = gettext_noop("no slot left for them on the family card of %(holder)s (tier %(tier)s has %(slots)s)")

# Lifecycle (above this app) registers hook(member_id=, at=, cause=, actor=) to re-derive the stage of a member who
# was a member only through a card that no longer covers them (`lifecycle.services.family_card_ended_stage`): at once,
# as family_bind made them a member at once, whenever a write ends a binding for good (family_unbind, a cancellation,
# a trim to fewer slots). Expiry by time is left to the nightly lifecycle run. Registered through
# `family.family_unbound_hook_register`.
UNBOUND_HOOKS: list = []


def members_uncovered(member_ids, *, at: dt.datetime, cause: str, actor: Staff | None = None) -> None:
    """Run the registered hooks for each member a write just took off a family card (`cause`: the stage event's)."""
    for member_id in member_ids:
        for hook in UNBOUND_HOOKS:
            hook(member_id=member_id, at=at, cause=cause, actor=actor)


def card_cause(template: str, membership: Membership) -> str:
    """A card-ended cause (`CARD_CANCELLED`, `CARD_ENDED`, `CARD_TRIMMED`) for `membership`, its holder masked."""
    return timeline_format(template, holder=name_masked(membership.customer.name), tier=membership.tier.name,
                           slots=membership.tier.family_slots)


def bindings_end(bindings: "QuerySet[FamilyBinding]", *, at: dt.datetime, reason: str, cause: str | None = None,
                 actor: Staff | None = None) -> int:
    """End these family bindings (those still active); the wallet-share consents between each holder and member end
    with them, as `family_unbind` ends them: a consent must not come back into force when the two are bound again.
    With `cause`, the members' stages follow at once (`members_uncovered`); without, the nightly lifecycle run moves
    them (a binding to an expired card, ended only for the member to be bound again at once). Returns how many
    ended."""
    rows = list(bindings.filter(unbound_at__isnull=True).values_list("id", "holder__customer_id", "member_id"))
    if not rows:
        return 0
    pairs = Q()
    for _id, holder_id, member_id in rows:
        pairs |= Q(holder_id=holder_id, member_id=member_id)
    WalletShareConsent.objects.filter(pairs, revoked_at__isnull=True).update(revoked_at=at)
    FamilyBinding.objects.filter(id__in=[row[0] for row in rows]).update(unbound_at=at, unbind_reason=reason[:255])
    if cause is not None:
        members_uncovered(sorted(row[2] for row in rows), at=at, cause=cause, actor=actor)
    return len(rows)
