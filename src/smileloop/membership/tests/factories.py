import factory
from django.utils import timezone

from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory
from smileloop.membership.enums import MembershipStatus, PlanKind
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
from smileloop.visits.models import TreatmentPlan


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MembershipPlan

    chain = factory.SubFactory(ChainFactory)
    name = factory.Sequence(lambda n: f"会员计划{n}")
    kind = PlanKind.SPEND_BASED
    spend_threshold_fen = 3_000_000
    duration_months = None
    auto_enrol = True


class TierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tier

    plan = factory.SubFactory(PlanFactory)
    rank = factory.Sequence(lambda n: n + 1)
    name = factory.Sequence(lambda n: f"等级{n}")
    discount_bp = 1200
    min_spend_fen = 3_000_000


class BenefitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Benefit

    tier = factory.SubFactory(TierFactory)
    name = factory.Sequence(lambda n: f"权益{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    """Builds the row directly (for states that are awkward to reach); service tests enrol through services."""

    class Meta:
        model = Membership

    tier = factory.SubFactory(TierFactory)
    plan = factory.LazyAttribute(lambda o: o.tier.plan)
    chain = factory.LazyAttribute(lambda o: o.customer.chain)
    status = MembershipStatus.ACTIVE
    started_at = factory.LazyFunction(timezone.now)


class TreatmentPlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TreatmentPlan

    chain = factory.LazyAttribute(lambda o: o.customer.chain)
    clinic = factory.LazyAttribute(lambda o: o.customer.home_clinic or ClinicFactory(chain=o.customer.chain))
    title = "种植修复"
    steps_total = 4
    steps_done = 0
    planned_at = factory.LazyFunction(timezone.now)


def memberships_snapshot() -> tuple:
    """Everything a membership write may change: a refused write must leave it equal."""
    return (sorted(Membership.objects.values_list("id", "status", "tier_id", "expires_at", "fee_fen")),
            MembershipEvent.objects.count(),
            sorted(FamilyBinding.objects.values_list("id", "holder_id", "member_id", "unbound_at")),
            sorted(WalletShareConsent.objects.values_list("id", "mode", "revoked_at")),
            sorted(FriendLink.objects.values_list("id", "member_id", "ended_at")),
            BenefitReveal.objects.count())
