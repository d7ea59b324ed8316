"""Lifecycle stages in bulk: re-derivation from the facts and the daily dormant/lost move.

Stages change on events through customers.services.customer_stage_advance (one customer, on the hot
path). This module does the same for a whole chain in a handful of set-based statements, never a Python
loop over customers:

- `stages_derive` (back-fill, imports, the demo seed, `smileloop run lifecycle.derive`): the progress
  stage each customer's facts prove (referrer ← a registered referral fact; member ← a membership or
  a family card in force; treated ← an order or paid spend; arrived ← a visit; booked ← any appointment; contacted ← a
  staff call, chat or SMS; else lead), never lower than the stage already reached; then the side states.
- `stages_side_update` (the daily job, lifecycle.tasks.stages_job): dormant after N months without a
  visit, lost M months later; a lead who never came is lost after L days without a booking or contact.
  Someone who never came but is past the lead stages (`LEAD_WINDOW`: a member who joined online or at the
  desk, say) goes dormant and lost on N / N + M months without a visit, booking or enrolment instead.
- Both start by taking member back from who was a member only through a family card that no longer covers them
  (`_family_card_ended_moves`, the one step progress goes down); `family_card_ended_stage` does it at once for one
  member on membership.family_unbind and on a cancellation or trim that ends their binding.

Each customer whose stage changed gets one timeline event (kind system, data {stage_from, stage_to,
cause}) from one INSERT … SELECT. Changed rows are recognised by `stage_changed_at` = this run's time,
and `stage_prev` keeps the stage from before the run even when two statements of the run touched the row.
"""

import calendar
import datetime as dt
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Case, CharField, Exists, F, OuterRef, Q, Value, When
from django.db.models.functions import Cast, Concat, TruncDate
from django.utils import timezone
from django.utils.translation import gettext_noop

from smileloop.clinics.models import Chain
from smileloop.core.jobs import chain_today, day_start
from smileloop.customers.enums import STAGE_PROGRESS, STAGE_SIDE, InteractionKind, Stage
from smileloop.customers.models import Customer, Interaction
from smileloop.customers.services import CONTACT_KINDS, stage_events_insert
from smileloop.lifecycle.models import LifecycleSettings
from smileloop.membership.enums import EventKind, MembershipStatus
from smileloop.membership.models import FamilyBinding, Membership, MembershipEvent
from smileloop.visits.enums import AppointmentStatus
from smileloop.visits.models import Appointment, Order

# Causes of the stage events (stored in English, shown translated: customers.timeline; registered in apps.py).
# The SQL in `_cause` writes the same sentences as these templates.
DERIVE_CAUSE = gettext_noop("re-derived from visits, orders, appointments, memberships and staff contacts")
NO_VISIT_SINCE = gettext_noop("no visit since %(since)s (%(months)s months)")
NEVER_CAME = gettext_noop("never came: no booking or contact for %(days)s days")
NEVER_CAME_JOINED = gettext_noop("no visit, booking or enrolment for %(months)s months (never came)")
FAMILY_CARD_ENDED = gettext_noop("no longer covered by a family card (no membership of their own)")
TIMELINE_TEMPLATES = (DERIVE_CAUSE, NO_VISIT_SINCE, NEVER_CAME, NEVER_CAME_JOINED, FAMILY_CARD_ENDED)

# The lead window applies to who never came AND never got past these stages. Arrived and treated are proved by a
# visit or a paid bill (both write last_visit_at; a blank one there is a bulk load's gap), member and referrer by an
# enrolment or a referral: such people are patients or paying members, not leads, and the lead window had set a
# member who had not come yet lost a few months after joining.
LEAD_WINDOW: tuple[str, ...] = (Stage.LEAD, Stage.CONTACTED, Stage.BOOKED)

# The progress stages a customer's own facts prove below member: where one who was a member only through a family
# card goes back to when the card no longer covers them (`_family_card_ended`).
BELOW_MEMBER: tuple[str, ...] = tuple(STAGE_PROGRESS[:STAGE_PROGRESS.index(Stage.MEMBER)])

# --- the referral hook ------------------------------------------------------------------------------------

_REFERRER_FACTS: list[Callable[[int], Q]] = []


def referrer_fact_register(fact: Callable[[int], Q]) -> None:
    """The referrals app (a later issue) registers fact(chain_id) → a Q over Customer that is true for
    customers with a successful referral (e.g. Exists(Referral … referrer_id=OuterRef("pk") …)), so
    stages_derive knows referrers. On the event path it calls customer_stage_advance(to="referrer")."""
    _REFERRER_FACTS.append(fact)


# --- settings and dates -------------------------------------------------------------------------------


def lifecycle_settings_for(chain: Chain | int) -> LifecycleSettings:
    """The chain's thresholds; an unsaved row with the defaults when the chain has none."""
    chain_id = chain if isinstance(chain, int) else chain.id
    return LifecycleSettings.objects.filter(chain_id=chain_id).first() or LifecycleSettings(chain_id=chain_id)


def months_before(day: dt.date, months: int) -> dt.date:
    """The same day `months` earlier (the 31st becomes the month's last day)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class Cutoffs:
    """Customers last seen before these instants (chain-local midnights) are dormant / lost."""

    dormant: dt.datetime
    lost: dt.datetime
    lead: dt.datetime
    settings: LifecycleSettings
    tz: zoneinfo.ZoneInfo


def cutoffs_for(chain: Chain, today: dt.date, cfg: LifecycleSettings | None = None) -> Cutoffs:
    cfg = cfg or lifecycle_settings_for(chain)
    tz_name = chain.time_zone or None
    tz = zoneinfo.ZoneInfo(tz_name) if tz_name else timezone.get_default_timezone()
    return Cutoffs(
        dormant=day_start(months_before(today, cfg.dormant_after_months), tz_name),
        lost=day_start(months_before(today, cfg.dormant_after_months + cfg.lost_after_months), tz_name),
        lead=day_start(today - dt.timedelta(days=cfg.lead_lost_after_days), tz_name),
        settings=cfg, tz=tz,
    )


def revival_cutoff(chain_id: int) -> dt.datetime:
    """The earliest visit that still brings a dormant or lost customer of the chain back today: one before it leaves
    them dormant by the facts (`_side_conditions`). Registered with customers (`stage_revival_cutoff_register`)
    for the events' path; read only for visits over four weeks old."""
    chain = Chain.objects.get(pk=chain_id)
    return cutoffs_for(chain, chain_today(chain, None)).dormant


# --- facts as SQL -----------------------------------------------------------------------------------------


def _booked_since(since) -> Exists:
    """An appointment made or taking place since `since` (a datetime, or OuterRef to a customer column)."""
    return Exists(Appointment.objects.filter(customer_id=OuterRef("pk")).filter(
        Q(created_at__gte=since) | Q(start_at__gte=since)))


def _contacted_since(since) -> Exists:
    return Exists(Interaction.objects.filter(customer_id=OuterRef("pk"), kind__in=CONTACT_KINDS,
                                             author__isnull=False, occurred_at__gte=since))


def _enrolled_since(since) -> Q:
    """An enrolment of their own, a renewal of their membership (membership_renew: a paid member who renews every
    year is not dormant a year after joining because no visit of theirs is on file), or a binding to a family card
    (family_bind), since `since`. Each an index probe per customer (membership by customer, its events by
    membership; binding by member)."""
    return (Q(Exists(Membership.objects.filter(customer_id=OuterRef("pk"), started_at__gte=since)))
            | Q(Exists(MembershipEvent.objects.filter(membership__customer_id=OuterRef("pk"), kind=EventKind.RENEWED,
                                                      occurred_at__gte=since)))
            | Q(Exists(FamilyBinding.objects.filter(member_id=OuterRef("pk"), bound_at__gte=since))))


def _family_card(at) -> Q:
    """Bound to a family card in force at `at` (membership.FamilyBinding: not unbound, the holder's membership active
    and not past its expiry): a family-card member is a member, as the holder is (the shared discount and wallet)."""
    return Q(Exists(FamilyBinding.objects.filter(member_id=OuterRef("pk"), unbound_at__isnull=True,
                                                 holder__status=MembershipStatus.ACTIVE).filter(
        Q(holder__expires_at__isnull=True) | Q(holder__expires_at__gt=at))))


def _family_card_ended(chain_id: int, at) -> Q:
    """A member only through a family card that no longer covers them (unbound; the holder's membership ended,
    cancelled or past its expiry; trimmed by a tier with fewer slots) and with no membership of their own, ever: not
    a member any more. Driven by the chain's bindings that are over (a small table; a customer by primary key)."""
    over = FamilyBinding.objects.filter(holder__chain_id=chain_id).filter(
        Q(unbound_at__isnull=False) | ~Q(holder__status=MembershipStatus.ACTIVE) | Q(holder__expires_at__lte=at))
    return (Q(stage_reached=Stage.MEMBER, pk__in=over.values("member_id"))
            & ~Q(Exists(Membership.objects.filter(customer_id=OuterRef("pk")))) & ~_family_card(at))


def _stage_on_timeline(stage: str) -> Exists:
    """A stage event on their timeline from or to `stage`: they reached it (one the facts may not show: set by a bulk
    load or by hand before the binding's "stage treated → member")."""
    return Exists(Interaction.objects.filter(customer_id=OuterRef("pk"), kind=InteractionKind.SYSTEM).filter(
        Q(data__stage_from=stage) | Q(data__stage_to=stage)))


def _family_card_ended_moves(qs, chain_id: int, now: dt.datetime) -> int:
    """Take member back from those `_family_card_ended` names: `stage_reached` becomes the highest stage below member
    their own facts prove (`progress_facts`) or their timeline's stage events show they reached (lead when none),
    and an active one (at member) moves there too; one in a side state stays in it and returns there. The one step
    progress goes down: member was the card's, not theirs. The side states follow in the same run (`_side_moves`)."""
    own = Case(*[When(fact | Q(_stage_on_timeline(stage)), then=Value(stage))
                 for stage, fact in progress_facts(chain_id, now) if stage in BELOW_MEMBER],
               default=Value(Stage.LEAD), output_field=CharField())
    active = Q(stage=Stage.MEMBER)
    return qs.filter(_family_card_ended(chain_id, now)).update(
        stage_reached=own, stage=Case(When(active, then=own), default=F("stage")),
        stage_prev=Case(When(active & ~Q(stage_changed_at=now), then=F("stage")), default=F("stage_prev")),
        stage_changed_at=Case(When(active, then=Value(now)), default=F("stage_changed_at")),
        updated_at=Value(now))


def _in_lead_window(at) -> Q:
    """Who the lead window is for: never past booked (`LEAD_WINDOW`), and not a family-card member, whose record may
    still say lead when the binding came before a `stages_derive` run."""
    return Q(stage_reached__in=LEAD_WINDOW) & ~_family_card(at)


def progress_facts(chain_id: int, at: dt.datetime) -> list[tuple[str, Q]]:
    """(stage, condition) for every progress stage above lead, highest first."""
    pk = OuterRef("pk")
    facts: list[tuple[str, Q]] = []
    referrer = [fact(chain_id) for fact in _REFERRER_FACTS]
    if referrer:
        combined = referrer[0]
        for q in referrer[1:]:
            combined |= q
        facts.append((Stage.REFERRER, combined))
    facts += [
        (Stage.MEMBER, Q(Exists(Membership.objects.filter(customer_id=pk, status=MembershipStatus.ACTIVE).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=at)))) | _family_card(at)),
        (Stage.TREATED, Q(lifetime_spend_fen__gt=0) | Q(Exists(Order.objects.filter(customer_id=pk)))),
        (Stage.ARRIVED, Q(visit_count__gt=0) | Q(last_visit_at__isnull=False) | Q(Exists(
            Appointment.objects.filter(customer_id=pk, status__in=[AppointmentStatus.ARRIVED,
                                                                  AppointmentStatus.COMPLETED])))),
        (Stage.BOOKED, Q(Exists(Appointment.objects.filter(customer_id=pk)))),
        (Stage.CONTACTED, Q(Exists(Interaction.objects.filter(customer_id=pk, kind__in=CONTACT_KINDS,
                                                              author__isnull=False)))),
    ]
    return facts


def _gone_since(since: dt.datetime, at: dt.datetime) -> Q:
    """No visit since `since` (a customer who never came but is past the lead stages — a family-card member too —
    counts from their record and enrolments or bindings), and no booking or enrolment since then either."""
    visited = Q(last_visit_at__isnull=False, last_visit_at__lt=since)
    never_came = Q(last_visit_at__isnull=True, created_at__lt=since) & ~_in_lead_window(at)
    return (visited | never_came) & ~Q(_booked_since(since)) & ~_enrolled_since(since)


def _side_conditions(cut: Cutoffs, at: dt.datetime) -> dict[str, Q]:
    return {
        # dormant: no visit for N months, and no booking or enrolment since then either
        "dormant": _gone_since(cut.dormant, at),
        # lost: the same for N + M months
        "lost_visited": _gone_since(cut.lost, at),
        # a lead who never came: nothing from them or us for L days
        "lost_lead": Q(last_visit_at__isnull=True, created_at__lt=cut.lead) & _in_lead_window(at)
        & (Q(last_touch_at__isnull=True) | Q(last_touch_at__lt=cut.lead))
        & ~Q(_booked_since(cut.lead)) & ~Q(_contacted_since(cut.lead)) & ~_enrolled_since(cut.lead),
    }


def _moved(now: dt.datetime) -> dict:
    """UPDATE values that record a stage change made by this run (keeping the pre-run stage in stage_prev
    when an earlier statement of the same run already moved the row)."""
    return {"stage_prev": Case(When(stage_changed_at=now, then=F("stage_prev")), default=F("stage")),
            "stage_changed_at": Value(now), "updated_at": Value(now)}


def _local_date(field: str, tz) -> Cast:
    return Cast(TruncDate(field, tzinfo=tz), output_field=CharField())


def _cause(cut: Cutoffs, default: str, at: dt.datetime):
    """The event's cause per customer, from the stage they ended in; one whose member the family card took back
    (`_family_card_ended_moves`: from member, now reaching less) is told that, whatever stage they ended in."""
    cfg = cut.settings
    since = _local_date("last_visit_at", cut.tz)
    head, tail = NO_VISIT_SINCE.split("%(since)s")  # the date comes from each row

    def no_visit(months: int):
        return Concat(Value(head), since, Value(tail % {"months": months}))

    def never_came(months: int):
        return Value(NEVER_CAME_JOINED % {"months": months})

    return Case(
        When(stage_prev=Stage.MEMBER, stage_reached__in=BELOW_MEMBER, then=Value(FAMILY_CARD_ENDED)),
        When(stage=Stage.DORMANT, last_visit_at__isnull=False, then=no_visit(cfg.dormant_after_months)),
        When(stage=Stage.DORMANT, then=never_came(cfg.dormant_after_months)),
        When(stage=Stage.LOST, last_visit_at__isnull=False,
             then=no_visit(cfg.dormant_after_months + cfg.lost_after_months)),
        When(Q(stage=Stage.LOST) & ~_in_lead_window(at),
             then=never_came(cfg.dormant_after_months + cfg.lost_after_months)),
        When(stage=Stage.LOST, then=Value(NEVER_CAME % {"days": cfg.lead_lost_after_days})),
        default=Value(default), output_field=CharField())


def _events(chain_id: int, now: dt.datetime, cut: Cutoffs, default_cause: str) -> int:
    changed = Customer.objects.filter(chain_id=chain_id, stage_changed_at=now).exclude(stage=F("stage_prev"))
    return stage_events_insert(customers=changed, cause_expr=_cause(cut, default_cause, now), at=now)


def _side_moves(qs, cut: Cutoffs, now: dt.datetime) -> dict:
    """Lost first (so a long-gone customer moves once, straight to lost), then dormant."""
    cond = _side_conditions(cut, now)
    lost = qs.filter(stage__in=[*STAGE_PROGRESS, Stage.DORMANT]).filter(cond["lost_visited"]).update(
        stage=Value(Stage.LOST), **_moved(now))
    lost += qs.filter(stage__in=STAGE_PROGRESS).filter(cond["lost_lead"]).update(stage=Value(Stage.LOST),
                                                                                   **_moved(now))
    dormant = qs.filter(stage__in=STAGE_PROGRESS).filter(cond["dormant"]).update(stage=Value(Stage.DORMANT),
                                                                                  **_moved(now))
    return {"dormant": dormant, "lost": lost}


def _live(chain_id: int):
    """The customers whose stage the chain's runs keep: not merged away, and not erased (an anonymous record of
    past care is not profiled again: no "no visit since …" on its blanked timeline)."""
    return Customer.objects.filter(chain_id=chain_id, merged_into__isnull=True, erased_at__isnull=True)


@transaction.atomic
def stages_side_update(*, chain: Chain, today: dt.date, now: dt.datetime | None = None) -> dict:
    """The daily move into the side states for one chain (idempotent: a second run finds nobody to move), after
    member is taken back from who had it only through a family card no longer in force (`_family_card_ended_moves`).
    Never brings anyone back: that happens on their next booking, arrival or payment."""
    now = now or timezone.now()
    cut = cutoffs_for(chain, today)
    counts = {"family_card_ended": _family_card_ended_moves(_live(chain.id), chain.id, now)}
    counts.update(_side_moves(_live(chain.id), cut, now))
    counts["events"] = _events(chain.id, now, cut, DERIVE_CAUSE)
    return counts


@transaction.atomic
def family_card_ended_stage(*, member_id: int, at: dt.datetime, cause: str, actor=None) -> bool:
    """At once, for one member a write just took off a family card (membership's hook: family_unbind, the card
    cancelled or ended, a trim to fewer slots): `_family_card_ended_moves`, then the side states by the chain's rules
    as of today, and one stage event with `cause` (the write's sentence). Whether the stage changed. Nothing for a member of their own, a referrer, or an erased or merged record."""
    chain = Chain.objects.get(customers__pk=member_id)
    qs = _live(chain.id).filter(pk=member_id)
    if not _family_card_ended_moves(qs, chain.id, at):
        return False
    _side_moves(qs, cutoffs_for(chain, chain_today(chain, None)), at)
    return bool(stage_events_insert(customers=qs.filter(stage_changed_at=at).exclude(stage=F("stage_prev")),
                                    cause=cause[:500], at=at, actor_id=actor.pk if actor else None))


@transaction.atomic
def stages_derive(*, chain: Chain, today: dt.date, now: dt.datetime | None = None) -> dict:
    """Re-derive every live customer's stage of `chain` from the facts, in about a dozen statements.

    Progress never goes down (the highest of the stage already reached and the facts), but for member held only
    through a family card no longer in force (`_family_card_ended_moves`, first); dormant and lost
    follow the chain's settings as of `today`. A customer in a side state whose facts no longer put them
    there comes back to the highest stage reached, except someone set lost by hand (no fact makes them
    lost) with nothing new since: they stay lost. Idempotent: a second run changes nothing."""
    now = now or timezone.now()
    cut = cutoffs_for(chain, today)
    live = _live(chain.id)
    counts = {"progress": 0, "revived": 0, "family_card_ended": _family_card_ended_moves(live, chain.id, now)}
    for stage, fact in progress_facts(chain.id, now):
        lower = list(STAGE_PROGRESS[:STAGE_PROGRESS.index(stage)])
        moves = Q(stage__in=lower)  # active customers move with it; side states only remember it
        targets = live.filter(stage_reached__in=lower).filter(fact)
        if stage == Stage.CONTACTED:  # a staff contact alone leaves a side state as it is (customer_stage_advance)
            targets = targets.filter(stage__in=STAGE_PROGRESS)
        counts["progress"] += targets.update(
            stage_reached=Value(stage),
            stage=Case(When(moves, then=Value(stage)), default=F("stage")),
            stage_prev=Case(When(moves, then=F("stage")), default=F("stage_prev")),
            stage_changed_at=Case(When(moves, then=Value(now)), default=F("stage_changed_at")),
            updated_at=Value(now))
    # An active customer sits on the highest stage reached (repairs rows set by hand below it).
    behind = Q()
    for i, stage in enumerate(STAGE_PROGRESS):
        behind |= Q(stage=stage, stage_reached__in=list(STAGE_PROGRESS[i + 1:]))
    counts["progress"] += live.filter(behind).update(stage=F("stage_reached"), **_moved(now))
    cond = _side_conditions(cut, now)
    nothing_since = (Q(stage=Stage.LOST, stage_changed_at__isnull=False)
                     & (Q(last_visit_at__isnull=True) | Q(last_visit_at__lte=F("stage_changed_at")))
                     # a booking made since (one made before and taking place later, even cancelled, is not new)
                     & ~Q(Exists(Appointment.objects.filter(customer_id=OuterRef("pk"),
                                                            created_at__gte=OuterRef("stage_changed_at"))))
                     & ~_enrolled_since(OuterRef("stage_changed_at"))  # an enrolment or binding brings them back
                     # a lead lost by the lead window (the run's own event) is back when the chain lengthened it, unless
                     # staff contacted them (a contact alone brings nobody back); so is one past the lead stages (a
                     # member the window set lost before it was kept to leads)
                     & ~(Q(Exists(Interaction.objects.filter(
                         customer_id=OuterRef("pk"), author__isnull=True, occurred_at=OuterRef("stage_changed_at"),
                         data__stage_to=Stage.LOST, data__cause__startswith=NEVER_CAME.split("%(days)s")[0])))
                         & (~_in_lead_window(now)
                            | Q(created_at__gte=cut.lead) & ~Q(Exists(Interaction.objects.filter(
                                customer_id=OuterRef("pk"), kind__in=CONTACT_KINDS, author__isnull=False))))))
    counts["revived"] = live.filter(stage__in=STAGE_SIDE).exclude(cond["dormant"]).exclude(cond["lost_lead"]).exclude(
        nothing_since).update(stage=F("stage_reached"), **_moved(now))
    counts.update(_side_moves(live, cut, now))
    counts["events"] = _events(chain.id, now, cut, DERIVE_CAUSE)
    return counts
