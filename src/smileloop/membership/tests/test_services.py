"""Membership services: enrolment, renewal, tier changes, evaluation, the expiry job, bulk enrolment,
hidden-benefit reveals, the family card, wallet-share consents, friend links and the merge hook."""

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smileloop.clinics.selectors import scope_for_staff
from smileloop.customers.enums import Stage
from smileloop.customers.models import Customer, Interaction
from smileloop.customers.services import customer_merge
from smileloop.membership import selectors, services
from smileloop.membership.enums import BenefitTrigger, ConsentBy, MembershipStatus
from smileloop.membership.errors import (
    AlreadyBound,
    AlreadyLinked,
    ConsentMissing,
    DowngradeNotAllowed,
    LifetimeMembership,
    MembershipExists,
    NoConsent,
    NoSlots,
    NotAMember,
    NotBound,
    NotQualified,
    PlanInactive,
)
from smileloop.membership.models import (
    BenefitReveal,
    FamilyBinding,
    FriendLink,
    Membership,
    MembershipEvent,
    MembershipReminder,
    WalletShareConsent,
)
from smileloop.membership.tests.conftest import NOW, patient
from smileloop.membership.tests.factories import (
    BenefitFactory,
    MembershipFactory,
    TierFactory,
    TreatmentPlanFactory,
)

pytestmark = pytest.mark.django_db


def reasons(membership):
    return list(membership.events.order_by("occurred_at", "id").values_list("kind", "reason"))


# --- enrolment -----------------------------------------------------------------------------------------


def test_a_paid_enrolment_records_the_fee_and_runs_twelve_months(wang, paid_plan, annual_tier):
    # when
    m = services.membership_enrol(customer=wang, plan=paid_plan, as_of=NOW)
    # then
    assert (m.tier, m.fee_fen, m.status) == (annual_tier, 89_900, MembershipStatus.ACTIVE)
    assert m.expires_at == dt.datetime(2027, 3, 2, 23, 59, 59, 999999, tzinfo=m.expires_at.tzinfo)  # all of 3-02
    assert reasons(m) == [("enrolled", "enrolled in 年度会员 · 年卡会员: fee 899.00 paid on 2026-03-02, "
                                        "valid until 2027-03-02")]


def test_a_spend_based_enrolment_states_spend_and_threshold_and_is_lifetime(wang, family_plan, family_tier):
    # when
    m = services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    # then
    assert (m.tier, m.expires_at) == (family_tier, None)
    assert reasons(m) == [("enrolled", "enrolled in 家庭会员: cumulative spend 30,120.00 ≥ 30,000.00 on 2026-03-02, "
                                        "lifetime")]


def test_a_spend_based_enrolment_below_the_threshold_is_refused_and_writes_nothing(spouse, family_plan, family_tier):
    # when
    with pytest.raises(NotQualified) as exc:
        services.membership_enrol(customer=spouse, plan=family_plan, as_of=NOW)
    # then
    assert exc.value.code == "not_qualified"
    assert exc.value.message == "cumulative spend 0.00 is below the 30,000.00 that 家庭会员 needs"
    assert Membership.objects.count() == 0 and MembershipEvent.objects.count() == 0


def test_a_stored_value_enrolment_uses_the_top_up_total(wang, stored_plan, gold_tier):
    m = services.membership_enrol(customer=wang, plan=stored_plan, topup_total_fen=1_000_000, as_of=NOW)
    assert reasons(m) == [("enrolled", "enrolled in 金卡: cumulative top-up 10,000.00 ≥ 10,000.00 on 2026-03-02, "
                                        "lifetime")]


def test_a_second_active_membership_is_refused(wang, paid_plan, annual_tier, family_plan, family_tier):
    # given
    services.membership_enrol(customer=wang, plan=paid_plan, as_of=NOW)
    # when
    with pytest.raises(MembershipExists):
        services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    # then
    assert Membership.objects.filter(customer=wang).count() == 1


def test_an_inactive_plan_is_refused_with_its_field(wang, paid_plan, annual_tier):
    paid_plan.is_active = False
    paid_plan.save(update_fields=["is_active"])
    with pytest.raises(PlanInactive) as exc:
        services.membership_enrol(customer=wang, plan=paid_plan)
    assert (exc.value.code, exc.value.field, exc.value.status) == ("plan_inactive", "plan_id", 422)
    assert Membership.objects.count() == 0


# --- renewal, expiry, reminders -------------------------------------------------------------------------


def test_renewal_extends_from_the_current_expiry(wang, paid_plan, annual_tier):
    # given
    m = services.membership_enrol(customer=wang, plan=paid_plan, as_of=NOW)
    # when
    services.membership_renew(membership=m, as_of=NOW + dt.timedelta(days=300))
    # then
    m.refresh_from_db()
    assert m.expires_at.date() == dt.date(2028, 3, 2)
    assert m.fee_fen == 179_800
    assert reasons(m)[-1] == ("renewed", "renewed until 2028-03-02: fee 899.00 paid on 2026-12-27")


def test_renewals_keep_the_day_of_the_month_the_membership_started_on(wang, paid_plan, annual_tier):
    """A monthly membership from 31 January ran to 28 February, and each renewal then counted a month from the 28th:
    28 March, 28 April … (three days lost for good). A 12-month one from 29 February stayed on the 28th for ever."""
    shanghai = dt.timezone(dt.timedelta(hours=8))
    paid_plan.duration_months = 1
    paid_plan.save(update_fields=["duration_months"])
    m = services.membership_enrol(customer=wang, plan=paid_plan, as_of=dt.datetime(2027, 1, 31, 10, tzinfo=shanghai))
    ends = [m.expires_at.astimezone(shanghai).date()]
    for renewed_on in (dt.date(2027, 2, 20), dt.date(2027, 3, 20), dt.date(2027, 4, 20)):
        m = services.membership_renew(membership=m, as_of=dt.datetime.combine(renewed_on, dt.time(11), shanghai))
        ends.append(m.expires_at.astimezone(shanghai).date())
    assert ends == [dt.date(2027, 2, 28), dt.date(2027, 3, 31), dt.date(2027, 4, 30), dt.date(2027, 5, 31)]
    assert m.expires_at.astimezone(shanghai).time() == dt.time(23, 59, 59, 999999)  # valid all of its last day
    # lapsed and renewed on 30 June: the new run of months counts from that day
    services.memberships_expire(as_of=dt.datetime(2027, 6, 1, tzinfo=shanghai))
    m = services.membership_renew(membership=m, as_of=dt.datetime(2027, 6, 30, 9, tzinfo=shanghai))
    m = services.membership_renew(membership=m, as_of=dt.datetime(2027, 7, 2, 9, tzinfo=shanghai))
    assert m.expires_at.astimezone(shanghai).date() == dt.date(2027, 8, 30)


def test_a_lifetime_membership_cannot_be_renewed_and_never_expires(wang, family_plan, family_tier):
    # given
    m = services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    # when
    with pytest.raises(LifetimeMembership):
        services.membership_renew(membership=m)
    result = services.memberships_expire(as_of=NOW + dt.timedelta(days=365 * 80))
    # then
    m.refresh_from_db()
    assert (m.status, result.expired) == (MembershipStatus.ACTIVE, 0)
    assert MembershipReminder.objects.count() == 0


def test_the_expiry_job_expires_dated_memberships_with_an_event_and_is_idempotent(wang, spouse, paid_plan, annual_tier):
    # given
    m1 = services.membership_enrol(customer=wang, plan=paid_plan, as_of=NOW)
    m2 = services.membership_enrol(customer=spouse, plan=paid_plan, as_of=NOW + dt.timedelta(days=10))
    # when
    first = services.memberships_expire(as_of=dt.datetime(2027, 3, 3, tzinfo=dt.UTC))
    again = services.memberships_expire(as_of=dt.datetime(2027, 3, 3, tzinfo=dt.UTC))
    # then
    m1.refresh_from_db()
    m2.refresh_from_db()
    assert (m1.status, m2.status) == (MembershipStatus.EXPIRED, MembershipStatus.ACTIVE)
    assert (first.expired, again.expired) == (1, 0)
    assert reasons(m1)[-1] == ("expired", "expired on 2027-03-03: 年卡会员 was valid until 2027-03-02 and not renewed")


def test_the_expiry_job_records_renewal_reminders_30_and_7_days_before_once(wang, paid_plan, annual_tier):
    # given
    m = services.membership_enrol(customer=wang, plan=paid_plan, as_of=NOW)
    # when: 40 days before, 20 days before (30-day reminder due), 5 days before (7-day due), and a re-run
    counts = [services.memberships_expire(as_of=m.expires_at - dt.timedelta(days=d)).reminders for d in (40, 20, 5, 5)]
    # then
    assert counts == [0, 1, 1, 0]
    assert list(MembershipReminder.objects.values_list("days_before", "due_on")) == [
        (30, dt.date(2027, 1, 31)), (7, dt.date(2027, 2, 23))]


def test_an_expired_membership_can_be_renewed_from_today(wang, paid_plan, annual_tier):
    m = services.membership_enrol(customer=wang, plan=paid_plan, as_of=NOW)
    services.memberships_expire(as_of=dt.datetime(2027, 4, 1, tzinfo=dt.UTC))
    services.membership_renew(membership=m, as_of=dt.datetime(2027, 4, 1, tzinfo=dt.UTC))
    m.refresh_from_db()
    assert (m.status, m.expires_at.date()) == (MembershipStatus.ACTIVE, dt.date(2028, 4, 1))


# --- evaluation and tier changes -------------------------------------------------------------------------


def test_evaluate_enrols_a_customer_who_reached_the_threshold(wang, family_plan, family_tier):
    # when
    events = services.membership_evaluate(customer=wang, as_of=NOW)
    # then
    assert [e.reason for e in events] == [
        "enrolled in 家庭会员: cumulative spend 30,120.00 ≥ 30,000.00 on 2026-03-02, lifetime"]


def test_evaluate_upgrades_when_spend_reaches_a_higher_tier(wang, family_plan, family_tier, premium_tier):
    # given
    m = services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    wang.lifetime_spend_fen = 10_050_000
    wang.save(update_fields=["lifetime_spend_fen"])
    # when
    events = services.membership_evaluate(customer=wang, as_of=NOW)
    # then
    m.refresh_from_db()
    assert m.tier == premium_tier
    assert [e.reason for e in events] == ["upgraded to 家庭尊享: cumulative spend 100,500.00 ≥ 100,000.00 on 2026-03-02"]
    assert services.membership_evaluate(customer=wang, as_of=NOW) == []


def test_evaluate_keeps_the_tier_after_refunds_unless_the_tier_allows_downgrade(wang, family_plan, family_tier,
                                                                                premium_tier):
    # given: a premium member whose refunds took spend back under the premium threshold
    wang.lifetime_spend_fen = 10_050_000
    wang.save(update_fields=["lifetime_spend_fen"])
    m = services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    wang.lifetime_spend_fen = 5_000_000
    wang.save(update_fields=["lifetime_spend_fen"])
    # when / then: not allowed → nothing changes
    assert services.membership_evaluate(customer=wang, as_of=NOW) == []
    # when / then: allowed → dated downgrade with the figures
    premium_tier.downgrade_allowed = True
    premium_tier.save(update_fields=["downgrade_allowed"])
    events = services.membership_evaluate(customer=wang, as_of=NOW)
    m.refresh_from_db()
    assert m.tier == family_tier
    assert [e.reason for e in events] == ["downgraded to 家庭会员: cumulative spend 50,000.00 < 100,000.00 on 2026-03-02"]


def test_a_staff_downgrade_is_refused_when_the_tier_forbids_it(wang, family_plan, family_tier, premium_tier):
    wang.lifetime_spend_fen = 10_050_000
    wang.save(update_fields=["lifetime_spend_fen"])
    m = services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    with pytest.raises(DowngradeNotAllowed):
        services.membership_downgrade(membership=m, tier=family_tier)
    m.refresh_from_db()
    assert m.tier == premium_tier and m.events.count() == 1


def test_a_staff_upgrade_is_a_dated_event_with_the_reason(wang, family_plan, family_tier, premium_tier):
    m = services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    services.membership_upgrade(membership=m, tier=premium_tier, reason="院长特批", as_of=NOW)
    assert reasons(m)[-1] == ("upgraded", "upgraded to 家庭尊享: 院长特批 on 2026-03-02")


def test_evaluate_moves_a_paid_member_to_the_better_lifetime_plan(wang, paid_plan, annual_tier, family_plan,
                                                                 family_tier):
    # given
    paid = services.membership_enrol(customer=wang, plan=paid_plan, as_of=NOW)
    # when
    services.membership_evaluate(customer=wang, as_of=NOW)
    # then
    paid.refresh_from_db()
    new = Membership.objects.get(customer=wang, status=MembershipStatus.ACTIVE)
    assert (paid.status, new.tier) == (MembershipStatus.CANCELLED, family_tier)
    assert reasons(paid)[-1] == ("cancelled", "cancelled on 2026-03-02: replaced by 家庭会员计划 · 家庭会员")
    assert reasons(new) == [("enrolled", f"enrolled in 家庭会员: cumulative spend 30,120.00 ≥ 30,000.00 on 2026-03-02 "
                                         f"(replaces membership #{paid.id}), lifetime")]


def test_evaluate_with_the_membership_the_caller_holds_upgrades_alike_in_four_queries(
        wang, family_plan, family_tier, premium_tier, stored_plan, gold_tier, django_assert_num_queries):
    # given a member whose spend reached the premium tier, and the membership as checkout holds it
    m = services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    wang.lifetime_spend_fen = 10_050_000
    wang.save(update_fields=["lifetime_spend_fen"])
    held = selectors.own_membership(wang)
    # when: savepoint, the customer's row lock, the tiers of every plan compared, release (no top-up read: the
    # stored-value plan is not an auto-enrol one here, and the member's plan is spend-based)
    stored_plan.auto_enrol = False
    stored_plan.save(update_fields=["auto_enrol"])
    with django_assert_num_queries(4 + 2):  # + the upgrade: the tier update and its event
        events = services.membership_evaluate(customer=wang, as_of=NOW, current=held)
    # then
    m.refresh_from_db()
    assert m.tier == premium_tier
    assert [e.reason for e in events] == ["upgraded to 家庭尊享: cumulative spend 100,500.00 ≥ 100,000.00 on 2026-03-02"]
    held = selectors.own_membership(wang)
    with django_assert_num_queries(4):
        assert services.membership_evaluate(customer=wang, as_of=NOW, current=held) == []


def test_evaluate_reads_the_top_up_only_for_a_stored_value_plan(wang, stored_plan, gold_tier, family_plan,
                                                                 family_tier):
    # given a stored-value member whose top-ups (given here) reach the gold tier
    events = services.membership_evaluate(customer=wang, as_of=NOW, topup_total_fen=1_000_000)
    # then: the better of the two auto-enrol plans is chosen, as before (family 12% beats gold 5%)
    assert [e.reason for e in events] == [
        "enrolled in 家庭会员: cumulative spend 30,120.00 ≥ 30,000.00 on 2026-03-02, lifetime"]


def test_bulk_enrolment_enrols_everyone_above_the_threshold_once(chain, clinic_a, wang, spouse, family_plan,
                                                                 family_tier, premium_tier):
    # given
    rich = patient(chain, clinic_a, "钱多多", spend=12_000_000)
    # when
    count = services.spend_based_enrol_all(chain=chain, as_of=NOW)
    again = services.spend_based_enrol_all(chain=chain, as_of=NOW)
    # then
    assert (count, again) == (2, 0)
    assert dict(Membership.objects.values_list("customer_id", "tier__name")) == {wang.id: "家庭会员", rich.id: "家庭尊享"}
    assert MembershipEvent.objects.get(membership__customer=rich).reason == (
        "enrolled in 家庭尊享: cumulative spend 120,000.00 ≥ 100,000.00 on 2026-03-02, lifetime")


def test_bulk_enrolment_runs_a_fixed_number_of_queries(chain, clinic_a, family_plan, family_tier,
                                                       django_assert_max_num_queries):
    for i in range(20):
        patient(chain, clinic_a, f"患者{i}", spend=3_000_000 + i)
    with django_assert_max_num_queries(10):
        assert services.spend_based_enrol_all(chain=chain, as_of=NOW) == 20


# --- hidden benefits -------------------------------------------------------------------------------------


def test_a_hidden_benefit_is_revealed_when_the_treatment_plan_is_half_done(wang, family_plan, family_tier,
                                                                           friend_card):
    # given
    m = services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    plan = TreatmentPlanFactory(customer=wang, steps_total=4, steps_done=1)
    assert services.benefits_reveal_due(customer=wang, as_of=NOW) == []
    assert [v.benefit for v in selectors.benefits_for(wang)] == []
    # when
    plan.steps_done = 2
    plan.save(update_fields=["steps_done"])
    [reveal] = services.benefits_reveal_due(customer=wang, as_of=NOW)
    # then
    assert (reveal.membership, reveal.benefit, reveal.trigger) == (m, friend_card, BenefitTrigger.PLAN_HALF_DONE)
    assert reveal.detail == "treatment plan 种植修复 half done (2 of 4 steps) on 2026-03-02"
    assert [(v.benefit.action_code, v.reveal) for v in selectors.benefits_for(wang)] == [("issue_friend_card", reveal)]
    assert services.benefits_reveal_due(customer=wang, as_of=NOW) == []


def test_the_reveal_check_skips_what_cannot_apply(wang, spouse, family_plan, family_tier, friend_card, paid_plan,
                                                  annual_tier, django_assert_num_queries):
    # given no membership: nothing to read at all
    with django_assert_num_queries(0):
        assert services.benefits_reveal_due(customer=wang, as_of=NOW, membership=None) == []
    # given a member of a tier without hidden benefits: one read
    services.membership_enrol(customer=spouse, plan=paid_plan, as_of=NOW)
    held = selectors.own_membership(spouse)
    with django_assert_num_queries(1):
        assert services.benefits_reveal_due(customer=spouse, as_of=NOW, membership=held) == []
    # given a member whose tier's hidden benefit was already revealed: two reads, no write
    m = services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    services.benefit_reveal(membership=m, benefit=friend_card, as_of=NOW)
    held = selectors.own_membership(wang)
    with django_assert_num_queries(2):
        assert services.benefits_reveal_due(customer=wang, as_of=NOW, membership=held) == []


@pytest.mark.parametrize(("trigger", "n", "detail"), [
    (BenefitTrigger.BIRTHDAY_MONTH, None, "birthday month (2026-07)"),
    (BenefitTrigger.NTH_VISIT, 5, "visit no. 5 reached (6 visits) on 2026-07-10"),
    (BenefitTrigger.NTH_VISIT, 1, "visit no. 1 reached (1 visit) on 2026-07-10"),
])
def test_birthday_month_and_nth_visit_reveal_their_benefits(wang, family_plan, family_tier, trigger, n, detail):
    # given
    benefit = BenefitFactory(tier=family_tier, is_hidden=True, trigger=trigger, trigger_n=n)
    services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    wang.visit_count = n if n == 1 else 6
    wang.save(update_fields=["visit_count"])
    # when
    reveals = services.benefits_reveal_due(customer=wang, as_of=dt.datetime(2026, 7, 10, 4, tzinfo=dt.UTC))
    # then
    assert [(r.benefit, r.detail) for r in reveals] == [(benefit, detail)]


def test_staff_reveal_a_staff_decision_benefit_once(wang, family_plan, family_tier, front_desk_a):
    home_visit = BenefitFactory(tier=family_tier, name="上门服务", is_hidden=True, trigger=BenefitTrigger.STAFF_DECISION)
    m = services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    assert services.benefits_reveal_due(customer=wang, as_of=NOW) == []
    first = services.benefit_reveal(membership=m, benefit=home_visit, actor=front_desk_a, as_of=NOW)
    second = services.benefit_reveal(membership=m, benefit=home_visit, actor=front_desk_a)
    assert first == second and BenefitReveal.objects.count() == 1
    assert first.detail == "staff decision by 前台小王 on 2026-03-02"


# --- family card -----------------------------------------------------------------------------------------


@pytest.fixture
def holder(wang, family_plan, family_tier):
    services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    return wang


def test_an_adult_is_bound_with_their_own_recorded_consent_and_shares_the_discount(holder, spouse):
    # when
    binding = services.family_bind(holder=holder, member=spouse, relation="spouse", consent_source="paper",
                                   consent_evidence="同意书 2026-031", as_of=NOW)
    # then
    assert (binding.consent_by, binding.consent_evidence) == (ConsentBy.MEMBER, "同意书 2026-031")
    discount = selectors.member_discount_for(spouse)
    assert (discount.source, discount.discount_bp, discount.excluded_categories) == ("family", 1200,
                                                                                    ["oral_care_product"])
    assert discount.reason == f"family card of 王芳 (#{holder.id}), 家庭会员"


def test_a_bound_family_member_becomes_a_member_at_once_with_a_stage_event(holder, child):
    # given a child who is a lead (never came)
    Customer.objects.filter(pk=child.pk).update(stage=Stage.LEAD, stage_reached=Stage.LEAD)
    child.refresh_from_db()
    # when bound to the holder's family card
    services.family_bind(holder=holder, member=child, relation="child", consent_source="in_person")
    # then the child is a member now, and the timeline says why
    child.refresh_from_db()
    assert (child.stage, child.stage_reached) == (Stage.MEMBER, Stage.MEMBER)
    event = Interaction.objects.filter(customer=child, data__stage_to=Stage.MEMBER).get()
    assert event.text.endswith("bound to the family card of 王* as child")


def test_an_adult_without_evidence_is_refused_and_nothing_is_bound(holder, spouse):
    with pytest.raises(ConsentMissing) as exc:
        services.family_bind(holder=holder, member=spouse, relation="spouse", consent_source="paper",
                             consent_evidence="")
    assert (exc.value.code, exc.value.field) == ("consent_missing", "consent_evidence")
    assert FamilyBinding.objects.count() == 0


def test_a_minor_is_bound_with_the_holders_consent_as_guardian(holder, child):
    binding = services.family_bind(holder=holder, member=child, relation="child", consent_source="in_person",
                                   consent_evidence="")
    assert binding.consent_by == ConsentBy.GUARDIAN


def test_binding_beyond_the_slots_is_refused(chain, clinic_a, holder):
    # given
    for i in range(3):
        services.family_bind(holder=holder, member=patient(chain, clinic_a, f"家人{i}"), relation="sibling",
                             consent_source="paper", consent_evidence=f"F{i}")
    # when
    with pytest.raises(NoSlots) as exc:
        services.family_bind(holder=holder, member=patient(chain, clinic_a, "第四人"), relation="sibling",
                             consent_source="paper", consent_evidence="F4")
    # then
    assert exc.value.message == "all 3 family slots of 家庭会员 are in use; unbind someone first"
    assert FamilyBinding.objects.count() == 3


def test_a_person_is_bound_to_one_holder_only(chain, clinic_a, holder, spouse, family_plan):
    other = patient(chain, clinic_a, "孙丽", spend=3_100_000)
    services.membership_enrol(customer=other, plan=family_plan)
    services.family_bind(holder=holder, member=spouse, relation="spouse", consent_source="paper", consent_evidence="A")
    with pytest.raises(AlreadyBound):
        services.family_bind(holder=other, member=spouse, relation="sibling", consent_source="paper",
                             consent_evidence="B")
    assert FamilyBinding.objects.filter(member=spouse).count() == 1


def test_a_non_member_cannot_bind_family(spouse, child):
    with pytest.raises(NotAMember):
        services.family_bind(holder=spouse, member=child, relation="child", consent_source="paper")
    assert FamilyBinding.objects.count() == 0


def test_wallet_share_needs_a_binding_and_is_readable_until_revoked_or_unbound(holder, spouse):
    # given
    with pytest.raises(NotBound):
        services.wallet_share_consent_grant(holder=holder, member=spouse, mode="standing", source="paper")
    binding = services.family_bind(holder=holder, member=spouse, relation="spouse", consent_source="paper",
                                   consent_evidence="A")
    # when
    services.wallet_share_consent_grant(holder=holder, member=spouse, mode="per_use", source="wechat")
    services.wallet_share_consent_grant(holder=holder, member=spouse, mode="standing", source="paper")
    # then
    assert selectors.wallet_share_allowed(holder, spouse) == "standing"
    assert WalletShareConsent.objects.filter(revoked_at__isnull=True).count() == 1
    services.family_unbind(binding=binding, reason="离婚")
    assert selectors.wallet_share_allowed(holder, spouse) is None
    assert selectors.member_discount_for(spouse) is None


def test_revoking_a_consent_never_given_names_a_relative_of_another_clinic_masked(holder, spouse, clinic_b,
                                                                                   front_desk_a):
    # given a bound spouse now at clinic B, with no wallet-share consent
    services.family_bind(holder=holder, member=spouse, relation="spouse", consent_source="paper", consent_evidence="A")
    spouse.home_clinic = clinic_b
    spouse.save(update_fields=["home_clinic"])
    # when clinic A's front desk revokes it
    with pytest.raises(NoConsent) as refused:
        services.wallet_share_consent_revoke(holder=holder, member=spouse, actor=front_desk_a)
    # then the holder (theirs) is named, the spouse (not theirs) masked
    assert str(refused.value.message) == f"{holder.name} has given no wallet-share consent to 李*"


def test_a_friend_who_names_a_member_gets_the_friend_discount(holder, friend, spouse):
    services.friend_link(friend=friend, member=holder)
    discount = selectors.member_discount_for(friend)
    assert (discount.source, discount.discount_bp) == ("friend", 1200)
    with pytest.raises(NotAMember):
        services.friend_link(friend=friend, member=spouse)
    assert FriendLink.objects.count() == 1


def test_a_friend_names_one_member_at_a_time(chain, clinic_a, holder, friend, family_plan):
    other = patient(chain, clinic_a, "孙丽", spend=3_100_000)
    services.membership_enrol(customer=other, plan=family_plan)
    services.friend_link(friend=friend, member=holder)
    with pytest.raises(AlreadyLinked):
        services.friend_link(friend=friend, member=other)


def test_the_refusals_name_the_other_holder_or_member_only_masked(chain, clinic_a, clinic_b, holder, spouse, friend,
                                                                   family_plan):
    # given 王芳 (of clinic B) whose card the spouse is bound to and whom the friend named; the refusals below are
    # shown to clinic A's staff binding or linking their own patients, who may not see clinic B's
    holder.home_clinic = clinic_b
    holder.save(update_fields=["home_clinic"])
    other = patient(chain, clinic_a, "孙丽", spend=3_100_000)
    services.membership_enrol(customer=other, plan=family_plan)
    services.family_bind(holder=holder, member=spouse, relation="spouse", consent_source="paper", consent_evidence="A")
    services.friend_link(friend=friend, member=holder)
    # when clinic A binds the spouse to, and has the friend name, its own member
    with pytest.raises(AlreadyBound) as bound:
        services.family_bind(holder=other, member=spouse, relation="sibling", consent_source="paper",
                             consent_evidence="B")
    with pytest.raises(AlreadyLinked) as linked:
        services.friend_link(friend=friend, member=other)
    # then neither refusal names her nor gives her customer id
    for exc in (bound, linked):
        assert "王芳" not in exc.value.message and f"#{holder.id}" not in exc.value.message
        assert "王*" in exc.value.message


def test_discounts_never_stack_and_own_wins_a_tie(holder, spouse, paid_plan, annual_tier, family_plan):
    # given: the spouse is bound (12% off) and has a paid membership of their own (5% off)
    services.family_bind(holder=holder, member=spouse, relation="spouse", consent_source="paper", consent_evidence="A")
    services.membership_enrol(customer=spouse, plan=paid_plan)
    # then: the larger single discount applies
    assert selectors.member_discount_for(spouse).source == "family"
    annual_tier.discount_bp = 1200
    annual_tier.save(update_fields=["discount_bp"])
    assert selectors.member_discount_for(spouse).source == "own"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(own=st.integers(0, 3000) | st.none(), family=st.integers(0, 3000) | st.none(),
       friend=st.integers(0, 3000) | st.none())
def test_the_discount_is_always_the_single_largest_one(chain, clinic_a, own, family, friend):
    # given a customer with any combination of own, family and friend discounts
    from smileloop.membership.tests.factories import PlanFactory

    me = patient(chain, clinic_a, "我")
    expected = []
    if own is not None:
        MembershipFactory(customer=me, tier=TierFactory(discount_bp=own, plan=PlanFactory(chain=chain)))
        expected.append((own, 3))
    if family is not None:
        holder = patient(chain, clinic_a, "家长")
        m = MembershipFactory(customer=holder, tier=TierFactory(discount_bp=family, plan=PlanFactory(chain=chain)))
        FamilyBinding.objects.bulk_create([FamilyBinding(holder=m, member=me, relation="child", consent_by="guardian",
                                                         consent_at=NOW, consent_source="paper", bound_at=NOW)])
        expected.append((family, 2))
    if friend is not None:
        named = patient(chain, clinic_a, "朋友")
        MembershipFactory(customer=named, tier=TierFactory(friend_discount_bp=friend, plan=PlanFactory(chain=chain)))
        FriendLink.objects.bulk_create([FriendLink(friend=me, member=named, named_at=NOW)])
        if friend:
            expected.append((friend, 1))
    # when
    discount = selectors.member_discount_for(me)
    # then
    best = max(expected, default=None)
    assert (discount.discount_bp if discount else None) == (best[0] if best else None)
    assert discount is None or {3: "own", 2: "family", 1: "friend"}[best[1]] == discount.source


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.sampled_from(["enrol_paid", "enrol_family", "evaluate", "cancel", "expire", "renew"]),
                    max_size=8))
def test_a_customer_never_has_two_active_memberships(chain, clinic_a, paid_plan, annual_tier, family_plan,
                                                     family_tier, ops):
    me = patient(chain, clinic_a, "随机", spend=3_100_000)
    clock = NOW
    for op in ops:
        clock += dt.timedelta(days=200)
        current = Membership.objects.filter(customer=me).order_by("-id").first()
        try:
            if op == "enrol_paid":
                services.membership_enrol(customer=me, plan=paid_plan, as_of=clock)
            elif op == "enrol_family":
                services.membership_enrol(customer=me, plan=family_plan, as_of=clock)
            elif op == "evaluate":
                services.membership_evaluate(customer=me, as_of=clock)
            elif op == "cancel" and current:
                services.membership_cancel(membership=current, reason="test", as_of=clock)
            elif op == "expire":
                services.memberships_expire(as_of=clock)
            elif op == "renew" and current:
                services.membership_renew(membership=current, as_of=clock)
        except Exception as exc:  # only typed refusals are acceptable
            assert getattr(exc, "code", None), exc
        assert Membership.objects.filter(customer=me, status=MembershipStatus.ACTIVE).count() <= 1


# --- merge -----------------------------------------------------------------------------------------------


def test_merging_two_members_keeps_the_better_membership_and_moves_the_family(chain, clinic_a, admin_scope,
                                                                             chain_admin, wang, spouse, child,
                                                                             paid_plan, annual_tier, family_plan,
                                                                             family_tier):
    # given: wang holds the family card (12%) with her child; her duplicate record has a paid card (5%)
    dup = patient(chain, clinic_a, "王芳", spend=0)
    family = services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    paid = services.membership_enrol(customer=dup, plan=paid_plan, as_of=NOW)
    services.family_bind(holder=dup, member=spouse, relation="spouse", consent_source="paper", consent_evidence="A")
    services.family_bind(holder=wang, member=child, relation="child", consent_source="paper")
    services.friend_link(friend=dup, member=wang)
    # when: the paid-card record survives
    customer_merge(scope=admin_scope, survivor=dup, merged=wang, actor=chain_admin, reason="重复建档")
    # then
    family.refresh_from_db()
    paid.refresh_from_db()
    assert (family.customer_id, family.status) == (dup.id, MembershipStatus.ACTIVE)
    assert paid.status == MembershipStatus.CANCELLED
    assert reasons(paid)[-1] == ("cancelled", f"merged into #{family.id}: customer #{wang.id} was merged into #{dup.id}")
    assert set(FamilyBinding.objects.filter(unbound_at__isnull=True).values_list("holder_id", "member_id")) == {
        (family.id, spouse.id), (family.id, child.id)}
    assert FriendLink.objects.filter(ended_at__isnull=True).count() == 0
    assert selectors.member_discount_for(spouse).membership == family


def test_a_merge_whose_two_records_spend_together_reaches_a_tier_enrols_or_upgrades_the_survivor_at_once(
        chain, clinic_a, family_plan, family_tier, premium_tier, admin_scope, chain_admin):
    # given: two records of one person, 20,000 and 15,000 yuan: neither reaches the 30,000 tier alone
    first = patient(chain, clinic_a, "周杰", spend=2_000_000)
    second = patient(chain, clinic_a, "周杰", spend=1_500_000)
    assert services.membership_evaluate(customer=first) == services.membership_evaluate(customer=second) == []
    # when
    customer_merge(scope=admin_scope, survivor=first, merged=second, actor=chain_admin, reason="重复建档")
    # then: enrolled by the merge, not at the next bill
    m = selectors.membership_active(first)
    assert m.tier == family_tier and m.events.get().actor_id == chain_admin.id
    # and a member whose duplicate brings the premium threshold is upgraded
    big = patient(chain, clinic_a, "吴磊", spend=6_000_000)
    services.membership_evaluate(customer=big)
    customer_merge(scope=admin_scope, survivor=big, merged=patient(chain, clinic_a, "吴磊", spend=4_500_000),
                   actor=chain_admin)
    assert selectors.membership_active(big).tier == premium_tier


def test_membership_current_is_scoped(wang, holder, director_a, clinic_b, chain):
    from smileloop.core.errors import NotFound

    other = patient(chain, clinic_b, "外院患者")
    scope = scope_for_staff(director_a)
    assert selectors.membership_current(scope, wang).own.tier.name == "家庭会员"
    with pytest.raises(NotFound):
        selectors.membership_current(scope, other)


def test_the_demo_programme_enrols_big_spenders_and_binds_households(chain, clinic_a, wang, spouse, child):
    # given
    from smileloop.customers.services import household_member_add

    household_member_add(head=wang, member=spouse, relation="spouse")
    household_member_add(head=wang, member=child, relation="child")
    # when
    summary = services.membership_demo_programme(chain=chain, as_of=NOW)
    again = services.membership_demo_programme(chain=chain, as_of=NOW)
    # then
    assert summary == {"plans": 3, "enrolled": 1, "family_bound": 2, "wallet_consents": 1}
    assert again == {"plans": 3, "enrolled": 0, "family_bound": 0, "wallet_consents": 0}
    assert selectors.member_discount_for(child).discount_bp == 1200
    assert selectors.wallet_share_allowed(wang, spouse) == "standing"
    assert Membership.objects.get(customer=wang).tier.benefits.filter(is_hidden=True).count() == 3


def test_a_renewal_within_a_run_on_the_30th_does_not_restart_the_run(wang, paid_plan, annual_tier):
    shanghai = dt.timezone(dt.timedelta(hours=8))
    paid_plan.duration_months = 1
    paid_plan.save(update_fields=["duration_months"])
    m = services.membership_enrol(customer=wang, plan=paid_plan, as_of=dt.datetime(2027, 1, 31, 10, tzinfo=shanghai))
    ends = []
    for renewed_at in (dt.datetime(2027, 2, 20, 11, tzinfo=shanghai), dt.datetime(2027, 3, 30, 11, tzinfo=shanghai),
                       dt.datetime(2027, 4, 20, 11, tzinfo=shanghai)):
        m = services.membership_renew(membership=m, as_of=renewed_at)
        ends.append(m.expires_at.astimezone(shanghai).date())
    # 31 March → 30 April → 31 May: the renewal made on 30 March is not where a run of months starts.
    assert ends == [dt.date(2027, 3, 31), dt.date(2027, 4, 30), dt.date(2027, 5, 31)]
