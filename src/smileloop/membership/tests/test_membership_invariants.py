"""Invariant (property-based, stateful) tests of the membership app on real money paths.

- Tiers: random paid bills, refunds (part or whole), wallet top-ups and top-up refunds, lifetime renewals, expiry
  runs and merges; after every evaluation the member's tier equals `reference_evaluate` (the rule the docstring of
  `membership_evaluate` documents), one readable event per change and none for a no-op, a second evaluation is a
  no-op.
- Family card: active bindings never exceed the tier's family slots (also after a downgrade, a plan change or a
  merge), consent is recorded, a person is bound once, unbinding frees a slot.
- Benefits: a hidden benefit is revealed once, a reveal is idempotent, a downgrade keeps the reveal.
- Dates: "valid until D" lasts all of local day D (Asia/Shanghai); renewals keep the run's day of the month.
"""

import datetime as dt
import itertools
from dataclasses import dataclass

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from smileloop.checkout.services import checkout_pay, checkout_price, checkout_refund
from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory, StaffFactory
from smileloop.core.money import yuan_grouped
from smileloop.customers.enums import Stage
from smileloop.customers.models import Customer
from smileloop.customers.services import customer_merge
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.loyalty.services.wallet import wallet_topup, wallet_topup_refund
from smileloop.membership import selectors, services
from smileloop.membership.enums import BenefitTrigger, ConsentBy, EventKind, MembershipStatus, PlanKind
from smileloop.membership.errors import (
    AlreadyBound,
    ConsentMissing,
    LifetimeMembership,
    NoSlots,
    NotAMember,
    NotBound,
)
from smileloop.membership.models import (
    BenefitReveal,
    FamilyBinding,
    Membership,
    MembershipEvent,
    WalletShareConsent,
)
from smileloop.membership.services.enrolment import tier_threshold
from smileloop.membership.tests.factories import (
    BenefitFactory,
    PlanFactory,
    TierFactory,
    TreatmentPlanFactory,
)
from smileloop.visits.enums import Category
from smileloop.visits.tests.factories import ServiceItemFactory

pytestmark = pytest.mark.django_db

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
_keys = itertools.count()
STATEFUL = dict(stateful_step_count=10, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def key(prefix: str) -> str:
    return f"{prefix}-{next(_keys)}"


def active(customer) -> Membership | None:
    return (Membership.objects.select_related("plan", "tier")
            .filter(customer_id=customer.pk, status=MembershipStatus.ACTIVE).first())


def events_of(customer_ids) -> list[MembershipEvent]:
    return list(MembershipEvent.objects.filter(membership__customer_id__in=customer_ids).order_by("id"))


# --- the reference rule -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefTier:
    plan: int  # index into the machine's plans
    rank: int
    discount_bp: int
    threshold: int
    downgrade_allowed: bool
    slots: int


def reference_reached(tiers: list[RefTier], figure: int) -> RefTier | None:
    best = None
    for t in sorted(tiers, key=lambda t: t.rank):
        if figure >= t.threshold:
            best = t
    return best


def reference_evaluate(plans: list[list[RefTier]], figures: list[int], current: RefTier | None
                       ) -> tuple[RefTier | None, list[str]]:
    """The documented rule of `membership_evaluate` (its docstring and the README), as (tier after, event kinds).

    No active membership: enrol in the best auto-enrol tier reached (largest discount, then rank, then the plan created
    first). A member: upgrade to the best tier reached in the plan; downgrade, or end the membership when no tier is
    reached, only if the current tier allows downgrades; one who then reaches another plan's tier with a strictly larger
    discount moves to it. Evaluating again changes nothing, so a membership ended for want of a figure is followed at
    once by the enrolment the customer qualifies for (as a second evaluation would do)."""
    def best_auto(exclude=None):
        best = None
        for i, tiers in enumerate(plans):
            if i == exclude:
                continue
            t = reference_reached(tiers, figures[i])
            if t is not None and (best is None or (t.discount_bp, t.rank) > (best.discount_bp, best.rank)):
                best = t
        return best

    kinds: list[str] = []
    if current is not None:
        target = reference_reached(plans[current.plan], figures[current.plan])
        if target is not None and target.rank > current.rank:
            current, kinds = target, [EventKind.UPGRADED]
        elif (target is None or target.rank < current.rank) and current.downgrade_allowed:
            current, kinds = target, [EventKind.DOWNGRADED]
    if current is None:
        best = best_auto()
        return best, kinds + ([EventKind.ENROLLED] if best is not None else [])
    best = best_auto(exclude=current.plan)
    if best is not None and best.discount_bp > current.discount_bp:
        return best, kinds + [EventKind.CANCELLED, EventKind.ENROLLED]
    return current, kinds


def reference_moved_to(plans: list[list[RefTier]], figures: list[int], current: RefTier | None) -> RefTier | None:
    """The tier an upgrade or downgrade of `current` within its plan names (reference_evaluate's first step): the
    final tier unless the member then moves to another plan (downgraded to 消费会员1, then enrolled in 储值会员1)."""
    return None if current is None else reference_reached(plans[current.plan], figures[current.plan])


# --- 1. tiers on the money paths ----------------------------------------------------------------------------


class TierMachine(RuleBasedStateMachine):
    """One chain with an auto-enrol spend-based plan and an auto-enrol stored-value plan (three ranked tiers each,
    random thresholds and downgrade flags); the customer pays, refunds, tops up and merges."""

    @initialize(spend_flags=st.lists(st.booleans(), min_size=3, max_size=3),
                stored_flags=st.lists(st.booleans(), min_size=3, max_size=3),
                plan_entry=st.sampled_from([0, 300_000, 600_000]),
                stored_on=st.booleans())
    def setup(self, spend_flags, stored_flags, plan_entry, stored_on):
        self.chain = ChainFactory()
        self.clinic = ClinicFactory(chain=self.chain)
        self.admin = StaffFactory(chain=self.chain, role=Role.CHAIN_ADMIN)
        self.scope = scope_for_staff(self.admin)
        ServiceItemFactory(chain=self.chain, code="FI01", category=Category.FILLING, list_price_fen=200_000)
        spend = PlanFactory(chain=self.chain, name="消费会员", kind=PlanKind.SPEND_BASED, spend_threshold_fen=plan_entry)
        stored = PlanFactory(chain=self.chain, name="储值会员", kind=PlanKind.STORED_VALUE, spend_threshold_fen=None,
                             is_active=stored_on)
        self.db_tiers = {}
        self.plans: list[list[RefTier]] = [[], []]
        for i, (plan, mins, discounts, flags) in enumerate([
                (spend, [300_000, 500_000, 900_000], [500, 1000, 1500], spend_flags),
                (stored, [400_000, 800_000, 1_500_000], [700, 1200, 1800], stored_flags)]):
            for rank, (low, bp, flag) in enumerate(zip(mins, discounts, flags, strict=True), start=1):
                tier = TierFactory(plan=plan, rank=rank, name=f"{plan.name}{rank}", discount_bp=bp,
                                   min_spend_fen=low if i == 0 else 0, min_topup_fen=low if i == 1 else 0,
                                   downgrade_allowed=flag, family_slots=rank)
                if i == 1 and not stored_on:
                    continue
                ref = RefTier(i, rank, bp, tier_threshold(tier, plan.kind), flag, rank)
                self.db_tiers[ref] = tier
                self.plans[i].append(ref)
        self.customer = self.new_customer()
        self.ref: RefTier | None = None
        self.settlements = []  # (settlement, refundable fen left)
        self.topups = []

    def new_customer(self):
        return CustomerFactory(chain=self.chain, home_clinic=self.clinic, stage=Stage.TREATED)

    def figures(self, customer) -> list[int]:
        from smileloop.loyalty.selectors import topup_total_fen

        customer = Customer.objects.get(pk=customer.pk)
        return [customer.lifetime_spend_fen, topup_total_fen(customer=customer)]

    def expect(self, action, customer=None):
        """Run `action` (which evaluates once), then compare the tier and the events with the reference."""
        customer = customer or self.customer
        before = len(events_of([customer.pk]))
        result = action()
        figures = self.figures(customer)
        expected, kinds = reference_evaluate(self.plans, figures, self.ref)
        self.check(customer, expected, kinds, before, moved=reference_moved_to(self.plans, figures, self.ref))
        self.ref = expected
        return result

    def check(self, customer, expected, kinds, before, moved=None):
        m = active(customer)
        got = (m.tier_id if m else None)
        assert got == (self.db_tiers[expected].id if expected else None), (
            f"tier {m.tier if m else None}, reference {expected}, figures {self.figures(customer)}")
        new = events_of([customer.pk])[before:]
        assert sorted(e.kind for e in new) == sorted(kinds), [(e.kind, e.reason) for e in new]
        for e in new:
            assert e.reason and e.data.get("msg"), e
            named = moved if moved is not None else expected  # a downgrade to no tier ends the membership
            if e.kind in (EventKind.UPGRADED, EventKind.DOWNGRADED) and named is not None:
                tier = self.db_tiers[named]
                assert tier.name in e.reason and yuan_grouped(e.data["figure_fen"]) in e.reason, e.reason
        # idempotent: a second evaluation changes nothing and records nothing
        again = services.membership_evaluate(customer=customer)
        assert again == []
        assert len(events_of([customer.pk])) == before + len(new)
        m2 = active(customer)
        assert (m2.id, m2.tier_id) == (m.id, m.tier_id) if m else m2 is None

    @rule(quantity=st.integers(1, 3))
    def pay(self, quantity):
        bill = checkout_price(customer=self.customer, clinic=self.clinic,
                              lines=[{"item_code": "FI01", "quantity": quantity}])
        settlement = self.expect(lambda: checkout_pay(
            priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}] if bill.cash_fen else [],
            key=key("pay")))
        self.settlements.append(settlement)

    @precondition(lambda self: self.settlements)
    @rule(i=st.integers(0, 10), part=st.sampled_from([None, 1, 2]))
    def refund(self, i, part):
        settlement = self.settlements[i % len(self.settlements)]
        line = settlement.order.lines.order_by("id").first()
        line.refresh_from_db()
        left = line.amount_fen - line.refunded_fen
        if left <= 0:
            return
        lines = None if part is None or left < 3 else [{"line_id": line.id, "amount_fen": left * part // 3}]
        self.expect(lambda: checkout_refund(settlement=settlement, lines=lines, key=key("refund")))

    @rule(amount=st.sampled_from([100_000, 250_000, 400_000, 700_000, 1_200_000]))
    def topup(self, amount):
        self.topups.append(self.expect(lambda: wallet_topup(customer=self.customer, amount_fen=amount, method="cash",
                                                            key=key("topup"))))

    @precondition(lambda self: self.topups)
    @rule(i=st.integers(0, 10), whole=st.booleans())
    def topup_refund(self, i, whole):
        topup = self.topups[i % len(self.topups)]
        topup.refresh_from_db()
        left = topup.amount_fen - topup.refunded_fen
        if left <= 1:
            return
        self.expect(lambda: wallet_topup_refund(topup=topup, amount_fen=None if whole else left // 2,
                                                key=key("topup-refund")))

    @rule(days=st.sampled_from([1, 29, 31, 200, 366, 800]))
    def days_pass(self, days):
        # Lifetime memberships never expire and cannot be renewed; the expiry job changes nothing.
        at = timezone.now() + dt.timedelta(days=days)
        before = len(events_of([self.customer.pk]))
        services.memberships_expire(as_of=at)
        m = active(self.customer)
        if m is not None:
            with pytest.raises(LifetimeMembership):
                services.membership_renew(membership=m, as_of=at)
        assert len(events_of([self.customer.pk])) == before
        self.check(self.customer, self.ref, [], before)

    @rule(spend=st.sampled_from([0, 350_000, 1_000_000]), topup=st.sampled_from([0, 500_000, 2_000_000]),
          survive=st.booleans())
    def merge(self, spend, topup, survive):
        """A second record of the person (with its own spend, top-ups and membership) is merged with this one."""
        other = self.new_customer()
        Customer.objects.filter(pk=other.pk).update(lifetime_spend_fen=spend)
        other_ref, _kinds = reference_evaluate(self.plans, [spend, 0], None)
        services.membership_evaluate(customer=other)
        if topup:
            wallet_topup(customer=other, amount_fen=topup, method="cash", key=key("topup-other"))
            other_ref, _kinds = reference_evaluate(self.plans, self.figures(other), other_ref)
        assert (active(other).tier_id if active(other) else None) == (
            self.db_tiers[other_ref].id if other_ref else None)
        survivor, merged = (self.customer, other) if survive else (other, self.customer)
        kept = [r for r in (self.ref, other_ref) if r is not None]
        before = len(events_of([survivor.pk, merged.pk]))
        customer_merge(scope=self.scope, survivor=survivor, merged=merged, actor=self.admin, reason="重复建档")
        # the better of the two memberships survives (a larger discount, then a higher rank), the other is
        # cancelled, and the merge evaluates the survivor on the two records' figures together
        best = max(kept, key=lambda r: (r.discount_bp, r.rank), default=None)
        figures = self.figures(survivor)
        expected, kinds = reference_evaluate(self.plans, figures, best)
        self.check(survivor, expected, [*kinds, *([EventKind.CANCELLED] if len(kept) == 2 else [])], before,
                   moved=reference_moved_to(self.plans, figures, best))
        self.ref = expected
        self.customer = Customer.objects.get(pk=survivor.pk)

    @invariant()
    def one_active_membership(self):
        if hasattr(self, "customer"):
            assert Membership.objects.filter(customer=self.customer, status=MembershipStatus.ACTIVE).count() <= 1


def test_tiers_follow_the_documented_rule_on_random_money_paths():
    run_state_machine_as_test(TierMachine, settings=settings(max_examples=10, **STATEFUL))


def test_a_refund_that_downgrades_and_then_moves_the_member_to_another_plan_names_each_tier_in_its_event():
    """A sequence random examples found (HYPOTHESIS_PROFILE=explore): the downgrade names the tier of its own plan
    (消费会员1), then the member moves to the stored-value plan's tier with the larger discount (储值会员1)."""
    machine = TierMachine()
    machine.setup(spend_flags=[False, True, False], stored_flags=[False, False, False], plan_entry=0, stored_on=True)
    machine.merge(spend=350_000, survive=False, topup=500_000)
    machine.pay(quantity=1)
    before = len(events_of([machine.customer.pk]))
    machine.refund(i=0, part=None)
    new = events_of([machine.customer.pk])[before:]
    assert [(e.kind, e.reason.split(":")[0]) for e in new] == [
        (EventKind.DOWNGRADED, "downgraded to 消费会员1"), (EventKind.CANCELLED, new[1].reason.split(":")[0]),
        (EventKind.ENROLLED, new[2].reason.split(":")[0])]
    assert "储值会员" in new[2].reason and active(machine.customer).tier.name == "储值会员1"
    machine.teardown()


def test_a_member_ended_for_want_of_spend_is_enrolled_at_once_in_the_plan_they_still_reach(chain, clinic_a):
    """Found by the tier machine (idempotence / reference): the evaluation that ended a spend-based membership (the
    refund took spend under every tier) returned without the enrolment the customer's top-ups qualify for; the next
    evaluation of anything (a later bill) then enrolled them, so evaluating twice changed something."""
    spend = PlanFactory(chain=chain, name="消费会员", kind=PlanKind.SPEND_BASED, spend_threshold_fen=0)
    silver = TierFactory(plan=spend, rank=1, name="银卡", discount_bp=1000, min_spend_fen=500_000,
                         downgrade_allowed=True)
    stored = PlanFactory(chain=chain, name="储值会员", kind=PlanKind.STORED_VALUE, spend_threshold_fen=None)
    gold = TierFactory(plan=stored, rank=1, name="金卡", discount_bp=700, min_spend_fen=0, min_topup_fen=400_000)
    me = CustomerFactory(chain=chain, home_clinic=clinic_a, lifetime_spend_fen=600_000)
    [enrolled] = services.membership_evaluate(customer=me, topup_total_fen=400_000)
    assert active(me).tier == silver  # 10% off beats the stored-value card's 7%
    # when: a refund takes the spend back to nothing
    Customer.objects.filter(pk=me.pk).update(lifetime_spend_fen=0)
    events = services.membership_evaluate(customer=me, topup_total_fen=400_000)
    # then: the spend-based membership ends and the stored-value one starts in the same evaluation
    assert [e.kind for e in events] == [EventKind.DOWNGRADED, EventKind.ENROLLED]
    assert active(me).tier == gold
    assert services.membership_evaluate(customer=me, topup_total_fen=400_000) == []


# --- 2. the family card -------------------------------------------------------------------------------------


class FamilyMachine(RuleBasedStateMachine):
    """A holder on a spend-based plan (family slots 1 / 3 / 4 by rank, random downgrade flags), a second auto-enrol
    plan with a larger discount and fewer slots, another card holder, relatives (adults and a minor) who are bound,
    unbound and merged."""

    @initialize(flags=st.lists(st.booleans(), min_size=3, max_size=3), other_slots=st.integers(0, 2))
    def setup(self, flags, other_slots):
        self.chain = ChainFactory()
        self.clinic = ClinicFactory(chain=self.chain)
        self.admin = StaffFactory(chain=self.chain, role=Role.CHAIN_ADMIN)
        self.scope = scope_for_staff(self.admin)
        plan = PlanFactory(chain=self.chain, name="家庭计划", kind=PlanKind.SPEND_BASED, spend_threshold_fen=0)
        self.tiers = [TierFactory(plan=plan, rank=rank, name=f"家庭{rank}", discount_bp=500 * rank,
                                  min_spend_fen=low, family_slots=slots, downgrade_allowed=flag)
                      for rank, low, slots, flag in zip([1, 2, 3], [300_000, 1_000_000, 2_000_000], [1, 3, 4], flags,
                                                        strict=True)]
        other = PlanFactory(chain=self.chain, name="至尊计划", kind=PlanKind.SPEND_BASED, spend_threshold_fen=0)
        TierFactory(plan=other, rank=1, name="至尊", discount_bp=3000, min_spend_fen=5_000_000,
                    family_slots=other_slots)
        self.holder = self.person("户主", spend=2_000_000)
        self.other_holder = self.person("另一户主", spend=300_000)
        services.membership_evaluate(customer=self.holder)
        services.membership_evaluate(customer=self.other_holder)
        minor = timezone.localdate() - dt.timedelta(days=365 * 8)
        self.people = [self.person(f"亲属{i}", birthday=minor if i == 0 else dt.date(1980, 1, 1)) for i in range(5)]

    def person(self, name, *, spend=0, birthday=None):
        return CustomerFactory(chain=self.chain, home_clinic=self.clinic, name=name, stage=Stage.TREATED,
                               lifetime_spend_fen=spend, birthday=birthday)

    def alive(self):
        return list(Customer.objects.filter(chain=self.chain, merged_into__isnull=True).order_by("id"))

    def pick(self, i):
        people = [p for p in self.alive() if p.pk not in (self.holder.pk, self.other_holder.pk)]
        return people[i % len(people)] if people else None

    @rule(i=st.integers(0, 9), to_other=st.booleans(), consent=st.sampled_from(["full", "full", "full", "no_source", "no_evidence"]))
    def bind(self, i, to_other, consent):
        member = self.pick(i)
        holder = self.other_holder if to_other else self.holder
        if member is None or member.pk == holder.pk:
            return
        before = list(FamilyBinding.objects.order_by("id").values_list("id", "unbound_at"))
        m = active(holder)
        used = FamilyBinding.objects.filter(holder=m, unbound_at__isnull=True).count() if m else 0
        elsewhere = FamilyBinding.objects.filter(member=member, unbound_at__isnull=True).exclude(holder=m).first()
        mine = FamilyBinding.objects.filter(member=member, unbound_at__isnull=True, holder=m).exists()
        adult = member.birthday is None or member.birthday.year < 2000
        source = "" if consent == "no_source" else "纸质同意书"
        evidence = "" if consent == "no_evidence" else "F-001"
        try:
            binding = services.family_bind(holder=holder, member=member, relation="sibling" if adult else "child",
                                           consent_source=source, consent_evidence=evidence)
        except (ConsentMissing, NotAMember, AlreadyBound, NoSlots) as refused:
            after = list(FamilyBinding.objects.order_by("id").values_list("id", "unbound_at"))
            assert after == before, "a refused bind wrote something"
            if isinstance(refused, ConsentMissing):
                assert consent == "no_source" or (adult and consent == "no_evidence")
            elif isinstance(refused, NotAMember):
                assert m is None
            elif isinstance(refused, AlreadyBound):
                assert mine or elsewhere is not None
            else:
                assert used >= m.tier.family_slots
            return
        assert m is not None and not mine and elsewhere is None and used < m.tier.family_slots
        assert consent == "full" or (not adult and consent == "no_evidence")
        assert binding.consent_by == (ConsentBy.MEMBER if adult else ConsentBy.GUARDIAN)
        assert binding.consent_source == source and binding.consent_at is not None

    @rule(i=st.integers(0, 9))
    def unbind(self, i):
        member = self.pick(i)
        binding = FamilyBinding.objects.filter(member=member, unbound_at__isnull=True).first() if member else None
        if binding is None:
            return
        holder = binding.holder
        used = FamilyBinding.objects.filter(holder=holder, unbound_at__isnull=True).count()
        services.family_unbind(binding=binding, reason="搬家")
        assert FamilyBinding.objects.filter(holder=holder, unbound_at__isnull=True).count() == used - 1
        with pytest.raises(NotBound):
            services.family_unbind(binding=binding)

    @rule(i=st.integers(0, 9), mode=st.sampled_from(["standing", "per_use"]))
    def wallet_consent(self, i, mode):
        member = self.pick(i)
        binding = FamilyBinding.objects.filter(member=member, unbound_at__isnull=True).select_related(
            "holder__customer").first() if member else None
        if binding is None or binding.holder.status != MembershipStatus.ACTIVE:
            return
        services.wallet_share_consent_grant(holder=binding.holder.customer, member=member, mode=mode,
                                            source="纸质同意书")
        assert selectors.wallet_share_allowed(binding.holder.customer, member) == mode

    @rule(spend=st.sampled_from([0, 300_000, 1_000_000, 2_000_000, 5_000_000]))
    def holder_spend_changes(self, spend):
        """Bills and refunds move the holder's spend; the evaluation upgrades, downgrades, ends or replaces."""
        Customer.objects.filter(pk=self.holder.pk).update(lifetime_spend_fen=spend)
        services.membership_evaluate(customer=self.holder)

    @rule(rank=st.integers(1, 2))
    def staff_downgrade(self, rank):
        m = active(self.holder)
        if m is None or m.plan_id != self.tiers[0].plan_id or m.tier.rank <= rank or not m.tier.downgrade_allowed:
            return
        services.membership_downgrade(membership=m, tier=self.tiers[rank - 1], reason="会员申请")

    @rule(i=st.integers(0, 9), j=st.integers(0, 9), kind=st.sampled_from(["member_into_holder", "holder_into_member",
                                                                            "members"]))
    def merge(self, i, j, kind):
        a, b = self.pick(i), self.pick(j)
        if a is None:
            return
        if kind == "member_into_holder":
            survivor, merged = self.holder, a
        elif kind == "holder_into_member":
            survivor, merged = a, self.holder
        else:
            if b is None or a.pk == b.pk:
                return
            survivor, merged = a, b
        customer_merge(scope=self.scope, survivor=survivor, merged=merged, actor=self.admin, reason="重复建档")
        if merged.pk == self.holder.pk:
            self.holder = Customer.objects.get(pk=survivor.pk)

    @invariant()
    def family_card_consistent(self):
        if not hasattr(self, "holder"):
            return
        bindings = list(FamilyBinding.objects.filter(holder__chain=self.chain, unbound_at__isnull=True)
                        .select_related("holder__tier", "member"))
        per_card: dict[int, int] = {}
        members = set()
        for b in bindings:
            per_card[b.holder_id] = per_card.get(b.holder_id, 0) + 1
            assert b.member_id not in members
            members.add(b.member_id)
            assert b.holder.status == MembershipStatus.ACTIVE, f"bound to a {b.holder.status} membership"
            assert b.member_id != b.holder.customer_id, "bound to oneself"
            assert b.member.merged_into_id is None
            assert b.consent_source
            assert b.consent_by == ConsentBy.GUARDIAN or b.consent_evidence
        # a wallet-share consent in force needs the binding it was given for
        pairs = {(b.holder.customer_id, b.member_id) for b in bindings}
        for consent in WalletShareConsent.objects.filter(holder__chain=self.chain, revoked_at__isnull=True):
            assert (consent.holder_id, consent.member_id) in pairs, "a wallet consent outlived its binding"
        for b in bindings:
            assert per_card[b.holder_id] <= b.holder.tier.family_slots, (
                f"{per_card[b.holder_id]} bound on a card of {b.holder.tier.family_slots} slots ({b.holder.tier})")


def test_the_family_card_never_exceeds_its_slots_and_records_consent():
    run_state_machine_as_test(FamilyMachine, settings=settings(max_examples=12, **STATEFUL))


@pytest.fixture
def card(chain, clinic_a):
    """A holder on the 4-slot top tier of a spend-based plan (downgrades allowed) with four relatives bound."""
    plan = PlanFactory(chain=chain, name="家庭计划", kind=PlanKind.SPEND_BASED, spend_threshold_fen=0)
    low = TierFactory(plan=plan, rank=1, name="家庭", discount_bp=500, min_spend_fen=300_000, family_slots=1)
    top = TierFactory(plan=plan, rank=2, name="尊享", discount_bp=1000, min_spend_fen=1_000_000, family_slots=4,
                      downgrade_allowed=True)
    holder = CustomerFactory(chain=chain, home_clinic=clinic_a, name="户主", lifetime_spend_fen=1_000_000)
    services.membership_evaluate(customer=holder, as_of=NOW)
    relatives = [CustomerFactory(chain=chain, home_clinic=clinic_a, name=f"亲属{i}", birthday=dt.date(1980, 1, 1))
                 for i in range(4)]
    for i, relative in enumerate(relatives):
        services.family_bind(holder=holder, member=relative, relation="sibling", consent_source="纸质同意书",
                             consent_evidence=f"F-{i}", as_of=NOW + dt.timedelta(minutes=i))
    services.wallet_share_consent_grant(holder=holder, member=relatives[3], mode="standing", source="纸质同意书")
    return holder, relatives, low, top


def bound(holder):
    return list(FamilyBinding.objects.filter(holder__customer=holder, holder__status=MembershipStatus.ACTIVE,
                                             unbound_at__isnull=True).order_by("id").values_list("member_id", flat=True))


def test_a_downgrade_by_evaluation_ends_the_bindings_over_the_new_tiers_slots(card):
    """Found by the family machine (slots invariant): a refund that downgraded a 4-slot card to a 1-slot tier left all
    four relatives bound (and sharing the discount)."""
    holder, relatives, low, _top = card
    # when: refunds take the spend under the top tier
    Customer.objects.filter(pk=holder.pk).update(lifetime_spend_fen=300_000)
    services.membership_evaluate(customer=holder, as_of=NOW + dt.timedelta(days=1))
    # then: the first bound keeps the one slot; the others are unbound with a reason, their wallet consent ends
    assert active(holder).tier == low
    assert bound(holder) == [relatives[0].id]
    ended = FamilyBinding.objects.get(member=relatives[3])
    assert ended.unbound_at is not None and "no free slot" in ended.unbind_reason
    assert selectors.wallet_share_allowed(holder, relatives[3]) is None
    assert not WalletShareConsent.objects.filter(member=relatives[3], revoked_at__isnull=True).exists()
    assert selectors.member_discount_for(relatives[1]) is None


def test_a_staff_downgrade_ends_the_bindings_over_the_new_tiers_slots(card):
    holder, relatives, low, _top = card
    services.membership_downgrade(membership=active(holder), tier=low, reason="会员申请")
    assert bound(holder) == [relatives[0].id]


def test_a_move_to_another_plans_tier_with_fewer_slots_keeps_only_what_fits(card, chain):
    """Found by the family machine: the evaluation that moved a member to another plan's better tier carried every
    binding over, whatever that tier's slots."""
    holder, relatives, _low, _top = card
    other = PlanFactory(chain=chain, name="至尊计划", kind=PlanKind.SPEND_BASED, spend_threshold_fen=0)
    TierFactory(plan=other, rank=1, name="至尊", discount_bp=3000, min_spend_fen=5_000_000, family_slots=2)
    Customer.objects.filter(pk=holder.pk).update(lifetime_spend_fen=5_000_000)
    services.membership_evaluate(customer=holder, as_of=NOW + dt.timedelta(days=1))
    assert active(holder).tier.name == "至尊"
    assert bound(holder) == [relatives[0].id, relatives[1].id]


def test_a_merge_frees_the_slot_of_a_member_who_becomes_the_holder_before_moving_the_other_card(chain, clinic_a,
                                                                                                card):
    """Found while checking merges of a holder and a family member: the free slots of the surviving card were counted
    while the merged person still held one of them (bound to the survivor's card), so a relative of the losing card
    was unbound for want of a slot that the merge itself freed a moment later."""
    holder, relatives, low, top = card
    # given: relative 3 is a duplicate record of the holder, with a paid card of their own and a spouse bound to it
    paid = PlanFactory(chain=chain, name="年卡", kind=PlanKind.PAID, fee_fen=89_900, duration_months=12,
                       spend_threshold_fen=None, auto_enrol=False)
    TierFactory(plan=paid, rank=1, name="年卡会员", discount_bp=100, min_spend_fen=0, family_slots=1)
    dup = relatives[3]
    services.membership_enrol(customer=dup, plan=paid, as_of=NOW)
    spouse = CustomerFactory(chain=chain, home_clinic=clinic_a, name="配偶", birthday=dt.date(1980, 1, 1))
    services.family_bind(holder=dup, member=spouse, relation="spouse", consent_source="纸质同意书",
                         consent_evidence="F-9")
    # when: the duplicate is merged into the holder (the 4-slot card wins; it was full with the duplicate on it)
    admin = StaffFactory(chain=chain, role=Role.CHAIN_ADMIN)
    customer_merge(scope=scope_for_staff(admin), survivor=holder, merged=dup, actor=admin, reason="重复建档")
    # then: the duplicate's own binding ends and the spouse takes the slot it freed
    assert bound(holder) == [relatives[0].id, relatives[1].id, relatives[2].id, spouse.id]
    assert active(holder).tier == top


# --- 3. hidden benefits -------------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.sampled_from(["visit", "due", "staff", "spend_down", "spend_up", "half_done"]), max_size=10))
def test_a_hidden_benefit_is_revealed_once_whatever_happens(db, ops):
    chain = ChainFactory()  # one per example: the examples share the test's database
    clinic_a = ClinicFactory(chain=chain)
    plan = PlanFactory(chain=chain, kind=PlanKind.SPEND_BASED, spend_threshold_fen=0)
    low = TierFactory(plan=plan, rank=1, name="家庭", discount_bp=500, min_spend_fen=100_000)
    top = TierFactory(plan=plan, rank=2, name="尊享", discount_bp=1000, min_spend_fen=1_000_000, downgrade_allowed=True)
    third_visit = BenefitFactory(tier=top, name="第三次到店礼", is_hidden=True, trigger=BenefitTrigger.NTH_VISIT,
                                 trigger_n=3)
    half = BenefitFactory(tier=top, name="亲友卡", is_hidden=True, trigger=BenefitTrigger.PLAN_HALF_DONE)
    staff_only = BenefitFactory(tier=top, name="上门服务", is_hidden=True, trigger=BenefitTrigger.STAFF_DECISION)
    me = CustomerFactory(chain=chain, home_clinic=clinic_a, lifetime_spend_fen=1_000_000, visit_count=0)
    membership = services.membership_evaluate(customer=me, as_of=NOW)[0].membership
    treatment = TreatmentPlanFactory(customer=me, steps_total=4, steps_done=0)
    seen: dict[int, BenefitReveal] = {}
    clock = NOW
    for op in ops:
        clock += dt.timedelta(days=3)
        m = Membership.objects.select_related("tier").get(pk=membership.pk)
        if op == "visit":
            Customer.objects.filter(pk=me.pk).update(visit_count=me.visit_count + 1)
            me.refresh_from_db()
        elif op == "half_done":
            treatment.steps_done = min(4, treatment.steps_done + 2)
            treatment.save(update_fields=["steps_done"])
        elif op in ("spend_down", "spend_up"):
            Customer.objects.filter(pk=me.pk).update(lifetime_spend_fen=100_000 if op == "spend_down" else 1_000_000)
            services.membership_evaluate(customer=me, as_of=clock)
        elif op == "due":
            new = services.benefits_reveal_due(customer=me, as_of=clock)
            for reveal in new:
                assert reveal.benefit_id not in seen, "revealed twice"
                assert reveal.benefit.tier_id == m.tier_id and reveal.benefit_id != staff_only.id
                seen[reveal.benefit_id] = reveal
            if m.tier == top:  # every trigger that holds has fired (none is left pending)
                assert (third_visit.id in seen) == (me.visit_count >= 3)
                assert (half.id in seen) == (treatment.steps_done * 2 >= 4)
        elif op == "staff":
            if staff_only.id in seen or m.tier == top:
                first = services.benefit_reveal(membership=m, benefit=staff_only, detail="院长决定", as_of=clock)
                again = services.benefit_reveal(membership=m, benefit=staff_only, as_of=clock + dt.timedelta(hours=1))
                assert again.pk == first.pk and again.revealed_at == first.revealed_at  # idempotent
                assert seen.setdefault(staff_only.id, first).pk == first.pk
        # once per membership, and a downgrade keeps what was revealed (history) while the member card shows the
        # benefits of the tier they hold now
        rows = list(BenefitReveal.objects.filter(membership=membership).values_list("benefit_id", flat=True))
        assert sorted(rows) == sorted(seen)
        views = {v.benefit.id for v in selectors.benefits_for(me)}
        m.refresh_from_db()
        assert views == ({b for b in seen} if m.tier == top else set())
        assert {r.benefit_id for r in selectors.revealed_benefits_history(me)} == set(seen)
    assert low.benefits.count() == 0


# --- 4. dates --------------------------------------------------------------------------------------------------


def local(d: dt.date, hour=10, minute=0, second=0, micro=0) -> dt.datetime:
    return dt.datetime(d.year, d.month, d.day, hour, minute, second, micro, tzinfo=SHANGHAI)


def months_after(d: dt.date, months: int) -> dt.date:
    import calendar

    m0 = d.month - 1 + months
    y, m = d.year + m0 // 12, m0 % 12 + 1
    return dt.date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.sampled_from([dt.date(2028, 2, 29), dt.date(2027, 1, 31), dt.date(2026, 12, 31),
                              dt.date(2027, 3, 30), dt.date(2026, 8, 15)]) | st.dates(dt.date(2026, 1, 1),
                                                                                         dt.date(2030, 12, 31)),
       months=st.sampled_from([1, 12, 13, 24]), hour=st.integers(0, 23),
       renewals=st.lists(st.tuples(st.booleans(), st.integers(0, 40)), max_size=4))
def test_a_membership_is_valid_all_of_its_last_local_day_and_renewals_keep_the_runs_day(
        db, start, months, hour, renewals):
    chain = ChainFactory()
    clinic_a = ClinicFactory(chain=chain)
    plan = PlanFactory(chain=chain, kind=PlanKind.PAID, fee_fen=89_900, duration_months=months,
                       spend_threshold_fen=None, auto_enrol=False)
    TierFactory(plan=plan, rank=1, min_spend_fen=0)
    me = CustomerFactory(chain=chain, home_clinic=clinic_a)
    m = services.membership_enrol(customer=me, plan=plan, as_of=local(start, hour))
    anchor, n = start, 1  # the run's first day and how many periods it has
    for lapse, days in renewals:
        until = months_after(anchor, n * months)
        assert timezone.localdate(m.expires_at) == until
        # valid all of the last local day, not a moment after
        assert selectors._in_force(m, local(until, 23, 59, 59))
        assert not selectors._in_force(m, local(until + dt.timedelta(days=1), 0, 0, 0))
        services.memberships_expire(as_of=local(until, 23, 59, 59))
        m.refresh_from_db()
        assert m.status == MembershipStatus.ACTIVE
        if lapse:
            at = local(until + dt.timedelta(days=days + 1), hour)
            services.memberships_expire(as_of=local(until + dt.timedelta(days=1), 0, 0, 0))
            m.refresh_from_db()
            assert m.status == MembershipStatus.EXPIRED
            expired = m.events.get(kind=EventKind.EXPIRED, data__expires_at=m.expires_at.isoformat())
            assert f"valid until {until.isoformat()}" in expired.reason
            anchor, n = at.date(), 1
        else:  # renewed while running: at most `days` before the end, never before the last renewal
            at = max(local(until - dt.timedelta(days=days), hour), m.events.latest("occurred_at").occurred_at
                     + dt.timedelta(minutes=1))
            assume(at <= local(until, 23, 59, 59))
            n += 1
        m = services.membership_renew(membership=m, as_of=at)
        assert m.status == MembershipStatus.ACTIVE
        assert f"renewed until {months_after(anchor, n * months).isoformat()}" in m.events.latest("id").reason
    assert timezone.localdate(m.expires_at) == months_after(anchor, n * months)


def test_a_wallet_consent_ends_with_the_card_and_does_not_come_back_with_a_new_binding(card, chain):
    """Found by the family machine (consent invariant): a cancelled card (or one ended by a refund) ended its
    bindings but not the holder's wallet-share consents, so binding the relative again (a new card) brought back a
    consent given for the old one: they could spend from the holder's wallet without being asked again."""
    holder, relatives, _low, top = card
    services.membership_cancel(membership=active(holder), reason="退卡", as_of=NOW + dt.timedelta(days=1))
    assert not WalletShareConsent.objects.filter(member=relatives[3], revoked_at__isnull=True).exists()
    # when: the holder enrols again and binds the relative again
    services.membership_evaluate(customer=holder, as_of=NOW + dt.timedelta(days=2))
    services.family_bind(holder=holder, member=relatives[3], relation="sibling", consent_source="纸质同意书",
                         consent_evidence="F-10")
    # then: the wallet needs a new consent
    assert selectors.wallet_share_allowed(holder, relatives[3]) is None


def test_bulk_enrolment_chooses_the_plan_an_evaluation_would_choose(chain, clinic_a):
    """Found checking idempotence against the bulk path: `spend_based_enrol_all` enrolled a customer reaching two
    auto-enrol plans in the first by id (5% off); the next evaluation (their next bill) then cancelled it and moved
    them to the other plan (15% off): two events for nothing, and a bulk run that disagreed with the documented rule."""
    a = PlanFactory(chain=chain, name="A", kind=PlanKind.SPEND_BASED, spend_threshold_fen=0)
    TierFactory(plan=a, rank=1, name="A1", discount_bp=500, min_spend_fen=100_000)
    b = PlanFactory(chain=chain, name="B", kind=PlanKind.SPEND_BASED, spend_threshold_fen=0)
    TierFactory(plan=b, rank=1, name="B1", discount_bp=1500, min_spend_fen=150_000)
    both = CustomerFactory(chain=chain, home_clinic=clinic_a, lifetime_spend_fen=200_000)
    only_a = CustomerFactory(chain=chain, home_clinic=clinic_a, lifetime_spend_fen=120_000)
    assert services.spend_based_enrol_all(chain=chain, as_of=NOW) == 2
    assert (active(both).tier.name, active(only_a).tier.name) == ("B1", "A1")
    assert services.membership_evaluate(customer=both, as_of=NOW) == []
    assert services.membership_evaluate(customer=only_a, as_of=NOW) == []
