"""Gaps a QA round left in membership: the admin saving configuration past the services' checks, a card past its
`expires_at` before the nightly job marks it expired, an erased patient's member card, and the bulk spend-based
enrolment meeting a membership made meanwhile."""

import datetime as dt
import json

import pytest
from django.urls import reverse
from django.utils import timezone

from smileloop.clinics.services import token_create
from smileloop.customers.models import Customer
from smileloop.customers.privacy import customer_erase
from smileloop.membership import services
from smileloop.membership.enums import BenefitTrigger, EventKind, MembershipStatus, PlanKind
from smileloop.membership.errors import MembershipInputError, MembershipNotActive, NotBound
from smileloop.membership.models import (
    Benefit,
    BenefitReveal,
    Membership,
    MembershipPlan,
    Tier,
    WalletShareConsent,
)
from smileloop.membership.tests.factories import (
    BenefitFactory,
    PlanFactory,
    TierFactory,
    memberships_snapshot,
)

pytestmark = pytest.mark.django_db


snapshot = memberships_snapshot


def tiers_stored(plan) -> list:
    return list(plan.tiers.order_by("rank").values_list("rank", "name", "min_spend_fen", "min_topup_fen",
                                                         "family_slots"))


def bind(holder, member, relation="spouse", **extra):
    return services.family_bind(holder=holder, member=member, relation=relation, consent_source="paper",
                                consent_evidence="F-1", **extra)


# --- 1. the admin validates as the services do ----------------------------------------------------------------


def tier_admin_post(tier, **changes) -> dict:
    data = {"rank": tier.rank, "name": tier.name, "discount_bp": tier.discount_bp,
            "excluded_categories": json.dumps(tier.excluded_categories),
            "exclude_special_price": "on" if tier.exclude_special_price else "",
            "points_multiplier": str(tier.points_multiplier), "family_slots": tier.family_slots,
            "friend_discount_bp": tier.friend_discount_bp, "downgrade_allowed": "on" if tier.downgrade_allowed else "",
            "min_spend_fen": tier.min_spend_fen, "min_topup_fen": tier.min_topup_fen,
            "topup_bonus_rules_topup": [""], "topup_bonus_rules_bonus": [""],
            "benefits-TOTAL_FORMS": "0", "benefits-INITIAL_FORMS": "0", "benefits-MIN_NUM_FORMS": "0",
            "benefits-MAX_NUM_FORMS": "1000"}
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


def plan_admin_post(plan, tiers, rows: list[dict] | None = None, **changes) -> dict:
    data = {"name": plan.name, "kind": plan.kind, "fee_fen": plan.fee_fen,
            "duration_months": plan.duration_months or "", "spend_threshold_fen": plan.spend_threshold_fen or "",
            "topup_bonus_rules_topup": [""], "topup_bonus_rules_bonus": [""],
            "is_active": "on" if plan.is_active else "", "auto_enrol": "on" if plan.auto_enrol else "",
            "description": plan.description,
            "tiers-TOTAL_FORMS": str(len(tiers) + len(rows or [])), "tiers-INITIAL_FORMS": str(len(tiers)),
            "tiers-MIN_NUM_FORMS": "0", "tiers-MAX_NUM_FORMS": "1000"}
    for i, tier in enumerate([*tiers, *[None] * len(rows or [])]):
        row = {"id": tier.id, "plan": plan.id, "rank": tier.rank, "name": tier.name,
               "discount_bp": tier.discount_bp, "family_slots": tier.family_slots,
               "friend_discount_bp": tier.friend_discount_bp, "min_spend_fen": tier.min_spend_fen,
               "min_topup_fen": tier.min_topup_fen,
               "downgrade_allowed": "on" if tier.downgrade_allowed else ""} if tier else {"plan": plan.id}
        data.update({f"tiers-{i}-{k}": v for k, v in row.items()})
    for i, row in enumerate(rows or []):
        changes.update({f"tiers-{len(tiers) + i}-{k}": v for k, v in row.items()})
    data.update(changes)
    return {k: v for k, v in data.items() if v != "" and v is not None}


def test_the_tier_admin_refuses_a_threshold_below_the_tier_ranked_below_and_changes_nothing(
        admin_client, family_plan, family_tier, premium_tier):
    before = tiers_stored(family_plan)
    # when the premium tier (rank 2) is set to ask 10,000 yuan, below the family tier's 30,000
    response = admin_client.post(reverse("admin:membership_tier_change", args=[premium_tier.id]),
                                 tier_admin_post(premium_tier, min_spend_fen=1_000_000))
    # then the form comes back with the service's message on the field, and nothing is saved
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors == {"min_spend_fen": ["must be at least 30,000.00 yuan, the threshold of 家庭会员 ranked below"]}
    assert tiers_stored(family_plan) == before


def test_the_tier_admin_refuses_fewer_family_slots_than_a_card_holds_in_chinese(admin_client, wang, spouse, child,
                                                                                  family_plan, family_tier):
    services.membership_enrol(customer=wang, plan=family_plan)
    bind(wang, spouse)
    bind(wang, child, relation="child")
    response = admin_client.post(reverse("admin:membership_tier_change", args=[family_tier.id]),
                                 tier_admin_post(family_tier, family_slots=1), HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["family_slots"] and "2" in errors["family_slots"][0]
    assert "unbind" not in errors["family_slots"][0]  # shown in Chinese, as on the staff page
    family_tier.refresh_from_db()
    assert family_tier.family_slots == 3
    # and as many slots as the largest family holds are taken
    response = admin_client.post(reverse("admin:membership_tier_change", args=[family_tier.id]),
                                 tier_admin_post(family_tier, family_slots=2))
    assert response.status_code == 302
    family_tier.refresh_from_db()
    assert family_tier.family_slots == 2


def test_the_tier_admin_add_page_refuses_a_tier_that_breaks_the_ladder(admin_client, family_plan, family_tier,
                                                                        premium_tier):
    before = tiers_stored(family_plan)
    post = tier_admin_post(Tier(rank=3, name="至尊", min_spend_fen=5_000_000), plan=family_plan.id)
    response = admin_client.post(reverse("admin:membership_tier_add"), post)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "min_spend_fen": ["must be at least 100,000.00 yuan, the threshold of 家庭尊享 ranked below"]}
    assert tiers_stored(family_plan) == before


def test_the_plans_tier_rows_are_checked_against_each_other_as_they_will_be(admin_client, family_plan, family_tier,
                                                                             premium_tier):
    url = reverse("admin:membership_membershipplan_change", args=[family_plan.id])
    tiers = [family_tier, premium_tier]
    before = tiers_stored(family_plan)
    # when the family tier's row asks 150,000 yuan, above the premium row's 100,000
    response = admin_client.post(url, plan_admin_post(family_plan, tiers, **{"tiers-0-min_spend_fen": 15_000_000}))
    # then that row is refused by the service's rule and nothing is saved
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    assert formset.forms[0].errors == {
        "min_spend_fen": ["must be at most 100,000.00 yuan, the threshold of 家庭尊享 ranked above"]}
    assert tiers_stored(family_plan) == before
    # when both rows rise together, the ladder holds after the save: taken, though the stored premium row is lower
    response = admin_client.post(url, plan_admin_post(family_plan, tiers, **{
        "tiers-0-min_spend_fen": 15_000_000, "tiers-1-min_spend_fen": 20_000_000}))
    assert response.status_code == 302
    assert [row[2] for row in tiers_stored(family_plan)] == [15_000_000, 20_000_000]


def test_a_new_tier_row_in_the_plan_admin_below_the_ladder_is_refused(admin_client, family_plan, family_tier,
                                                                      premium_tier):
    before = tiers_stored(family_plan)
    response = admin_client.post(
        reverse("admin:membership_membershipplan_change", args=[family_plan.id]),
        plan_admin_post(family_plan, [family_tier, premium_tier], rows=[
            {"rank": 3, "name": "至尊", "discount_bp": 2000, "family_slots": 5, "friend_discount_bp": 0,
             "min_spend_fen": 100, "min_topup_fen": 0}]))
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    assert formset.forms[2].errors == {
        "min_spend_fen": ["must be at least 100,000.00 yuan, the threshold of 家庭尊享 ranked below"]}
    assert tiers_stored(family_plan) == before


def test_the_plan_rows_refuse_fewer_family_slots_than_a_card_holds(admin_client, wang, spouse, child, family_plan,
                                                                    family_tier):
    services.membership_enrol(customer=wang, plan=family_plan)
    bind(wang, spouse)
    bind(wang, child, relation="child")
    response = admin_client.post(reverse("admin:membership_membershipplan_change", args=[family_plan.id]),
                                 plan_admin_post(family_plan, [family_tier], **{"tiers-0-family_slots": 1}))
    assert response.status_code == 200
    assert list(response.context["inline_admin_formsets"][0].formset.forms[0].errors) == ["family_slots"]
    family_tier.refresh_from_db()
    assert family_tier.family_slots == 3


def test_the_plan_admin_refuses_another_kind_while_the_plan_has_members(admin_client, wang, paid_plan, annual_tier):
    services.membership_enrol(customer=wang, plan=paid_plan)
    response = admin_client.post(reverse("admin:membership_membershipplan_change", args=[paid_plan.id]),
                                 plan_admin_post(paid_plan, [annual_tier], kind=PlanKind.STORED_VALUE))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "kind": ["cannot change while the plan has members: make a new plan instead"]}
    assert MembershipPlan.objects.get(pk=paid_plan.pk).kind == PlanKind.PAID


def test_the_benefit_admin_refuses_card_terms_out_of_bounds(admin_client, friend_card):
    response = admin_client.post(reverse("admin:membership_benefit_change", args=[friend_card.id]), {
        "position": 0, "name": friend_card.name, "description": "", "is_hidden": "on",
        "trigger": friend_card.trigger, "action_code": friend_card.action_code,
        "action_data": json.dumps({"amount_fen": 0, "valid_months": 5000})})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"action_data": [
        '"amount_fen" must be a whole number of fen between 1 and 10000000000',
        '"valid_months" must be a whole number of months between 1 and 1200']}
    assert Benefit.objects.get(pk=friend_card.pk).action_data == {"amount_fen": 60000, "valid_months": 3}


# --- 2. a card past its expires_at before the nightly job ----------------------------------------------------

BOUGHT = dt.datetime(2025, 3, 1, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai: valid all of 2026-03-01 there
LAPSED = dt.datetime(2026, 3, 1, 16, 30, tzinfo=dt.UTC)  # 00:30 on 2 March in Shanghai, before the nightly job


@pytest.fixture
def two_tier_year(chain):
    plan = PlanFactory(chain=chain, name="两级年卡", kind=PlanKind.PAID, fee_fen=0, duration_months=12,
                       spend_threshold_fen=None, auto_enrol=False)
    low = TierFactory(plan=plan, rank=1, name="基础", discount_bp=300, min_spend_fen=0, family_slots=2,
                      downgrade_allowed=True)
    high = TierFactory(plan=plan, rank=2, name="高级", discount_bp=800, min_spend_fen=0, family_slots=2,
                       downgrade_allowed=True)
    return plan, low, high


def refusal(write) -> tuple:
    with pytest.raises(MembershipNotActive) as caught:
        write()
    return caught.value.code, caught.value.message.replace(f"#{caught.value.message.split('#')[1].split()[0]}", "#N")


def test_a_card_past_its_expiry_is_refused_upgrade_downgrade_and_cancel_as_an_expired_one_is(wang, two_tier_year):
    plan, low, high = two_tier_year
    lapsed = services.membership_enrol(customer=wang, plan=plan, tier=low, as_of=BOUGHT)
    assert lapsed.status == MembershipStatus.ACTIVE and lapsed.expires_at <= LAPSED
    before = snapshot()
    # when staff change or cancel the card half an hour after its last day ended, before the nightly job
    refused = [refusal(lambda: services.membership_upgrade(membership=lapsed, tier=high, as_of=LAPSED)),
               refusal(lambda: services.membership_cancel(membership=lapsed, reason="搬家", as_of=LAPSED))]
    # then each is refused as expired and nothing changes
    assert refused == [("membership_not_active", "membership #N is expired, not active")] * 2
    assert snapshot() == before
    # the same answer the card gets once the job has marked it expired
    services.memberships_expire(as_of=LAPSED)
    assert refusal(lambda: services.membership_cancel(membership=lapsed, reason="搬家", as_of=LAPSED)) == refused[1]


def test_a_downgrade_of_a_card_past_its_expiry_is_refused(wang, two_tier_year):
    plan, low, high = two_tier_year
    lapsed = services.membership_enrol(customer=wang, plan=plan, tier=high, as_of=BOUGHT)
    before = snapshot()
    assert refusal(lambda: services.membership_downgrade(membership=lapsed, tier=low, as_of=LAPSED)) == (
        "membership_not_active", "membership #N is expired, not active")
    assert snapshot() == before
    # a second earlier, on its last evening, it is still in force
    services.membership_downgrade(membership=lapsed, tier=low, as_of=lapsed.expires_at - dt.timedelta(seconds=1))
    assert Membership.objects.get(pk=lapsed.pk).tier == low


def test_a_customer_whose_card_is_past_its_expiry_may_enrol_in_another_plan(wang, paid_plan, annual_tier,
                                                                            family_plan, family_tier):
    old = services.membership_enrol(customer=wang, plan=paid_plan, as_of=BOUGHT)
    # when she joins the family plan before the nightly job ran
    new = services.membership_enrol(customer=wang, plan=family_plan, as_of=LAPSED)
    # then the old card is expired as the job would have done it, with its event, and the new one is active
    old.refresh_from_db()
    assert (old.status, old.ended_at) == (MembershipStatus.EXPIRED, LAPSED)
    assert old.events.filter(kind=EventKind.EXPIRED).count() == 1
    assert new.status == MembershipStatus.ACTIVE
    assert Membership.objects.filter(customer=wang, status=MembershipStatus.ACTIVE).get() == new
    # and the nightly job has nothing left to do for it
    assert services.memberships_expire(as_of=LAPSED).expired == 0


def test_renewing_an_old_card_while_another_is_past_its_expiry_brings_the_old_one_back(wang, paid_plan, annual_tier,
                                                                                        yearly_b):
    plan_b, _ = yearly_b
    first = services.membership_enrol(customer=wang, plan=paid_plan, as_of=BOUGHT - dt.timedelta(days=800))
    services.memberships_expire(as_of=BOUGHT - dt.timedelta(days=1))
    services.membership_enrol(customer=wang, plan=plan_b, as_of=BOUGHT)  # lapsed at LAPSED
    renewed = services.membership_renew(membership=first, as_of=LAPSED)
    assert renewed.status == MembershipStatus.ACTIVE and renewed.expires_at > LAPSED
    assert Membership.objects.filter(customer=wang, status=MembershipStatus.ACTIVE).get() == first


@pytest.fixture
def yearly_b(chain):
    plan = PlanFactory(chain=chain, name="另一年卡", kind=PlanKind.PAID, fee_fen=0, duration_months=12,
                       spend_threshold_fen=None, auto_enrol=False)
    return plan, TierFactory(plan=plan, rank=1, name="乙", discount_bp=100, min_spend_fen=0)


def test_a_lifetime_membership_never_lapses(wang, family_plan, family_tier, premium_tier):
    lifetime = services.membership_enrol(customer=wang, plan=family_plan, as_of=BOUGHT)
    assert lifetime.expires_at is None
    far = dt.datetime(2090, 1, 1, tzinfo=dt.UTC)
    services.membership_upgrade(membership=lifetime, tier=premium_tier, as_of=far)
    services.membership_cancel(membership=lifetime, reason="退出", as_of=far)
    assert Membership.objects.get(pk=lifetime.pk).status == MembershipStatus.CANCELLED


def test_no_wallet_sharing_is_granted_on_a_card_past_its_expiry(wang, spouse, paid_plan, annual_tier):
    services.membership_enrol(customer=wang, plan=paid_plan, as_of=BOUGHT)
    bind(wang, spouse, as_of=BOUGHT)
    before = snapshot()
    with pytest.raises(NotBound) as caught:
        services.wallet_share_consent_grant(holder=wang, member=spouse, mode="standing", source="paper",
                                            as_of=LAPSED)
    assert caught.value.field == "member_id"
    assert snapshot() == before
    # on its last evening it is granted
    services.wallet_share_consent_grant(holder=wang, member=spouse, mode="standing", source="paper",
                                        as_of=LAPSED - dt.timedelta(hours=1))
    assert WalletShareConsent.objects.filter(holder=wang, member=spouse, revoked_at__isnull=True).count() == 1


def test_no_hidden_benefit_is_revealed_on_a_card_past_its_expiry(wang, paid_plan, annual_tier):
    perk = BenefitFactory(tier=annual_tier, name="洁牙一次", is_hidden=True, trigger=BenefitTrigger.STAFF_DECISION)
    lapsed = services.membership_enrol(customer=wang, plan=paid_plan, as_of=BOUGHT)
    with pytest.raises(MembershipNotActive):
        services.benefit_reveal(membership=lapsed, benefit=perk, detail="老客户", as_of=LAPSED)
    assert not BenefitReveal.objects.exists()


def test_the_member_card_and_its_actions_treat_a_card_past_its_expiry_as_expired(client, front_desk_a, wang,
                                                                                 paid_plan, annual_tier):
    lapsed = services.membership_enrol(customer=wang, plan=paid_plan,
                                       as_of=timezone.now() - dt.timedelta(days=400))
    client.force_login(front_desk_a.user)
    page = client.get(reverse("customers:detail", args=[wang.id])).text
    # the card shows no membership in force and offers enrolment, not cancel / change tier / bind
    assert "No membership of their own." in page
    assert reverse("membership:form", args=[wang.id, "enrol"]) in page
    assert reverse("membership:form", args=[wang.id, "cancel"]) not in page
    # a cancel posted anyway is refused as for a non-member, and changes nothing
    before = snapshot()
    response = client.post(reverse("membership:cancel", args=[wang.id]), {"reason": "搬家"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 409 or response.status_code == 422
    assert snapshot() == before
    assert Membership.objects.get(pk=lapsed.pk).status == MembershipStatus.ACTIVE


# --- 3. an erased or merged-away record ---------------------------------------------------------------------


def test_an_erased_customers_member_card_offers_no_action(client, front_desk_a, admin_scope, chain_admin, wang,
                                                          friend, paid_plan, annual_tier):
    customer_erase(scope=admin_scope, customer=wang, actor=chain_admin, reason="本人申请注销", forfeit=True)
    client.force_login(front_desk_a.user)
    erased = client.get(reverse("customers:detail", args=[wang.id])).text
    live = client.get(reverse("customers:detail", args=[friend.id])).text
    assert 'data-testid="member-card"' in erased
    assert reverse("membership:form", args=[friend.id, "enrol"]) in live  # a live record's card offers enrolment
    for url in (reverse("membership:form", args=[wang.id, "enrol"]), reverse("membership:evaluate", args=[wang.id])):
        assert url not in erased


def test_enrolling_an_erased_record_is_refused_on_the_customer_and_writes_nothing(admin_scope, chain_admin, wang,
                                                                                  paid_plan, annual_tier):
    customer_erase(scope=admin_scope, customer=wang, actor=chain_admin, reason="本人申请注销", forfeit=True)
    wang.refresh_from_db()
    before = snapshot()
    with pytest.raises(MembershipInputError) as refused:
        services.membership_enrol(customer=wang, plan=paid_plan)
    assert (refused.value.code, refused.value.field) == ("erased", "customer_id")
    assert snapshot() == before


def test_enrolling_a_record_merged_away_is_refused_on_the_customer_and_writes_nothing(wang, spouse, paid_plan,
                                                                                      annual_tier):
    Customer.objects.filter(pk=spouse.pk).update(merged_into=wang)
    before = snapshot()
    with pytest.raises(MembershipInputError) as refused:
        services.membership_enrol(customer=spouse, plan=paid_plan)
    assert (refused.value.code, refused.value.field) == ("merged", "customer_id")
    assert snapshot() == before


def test_the_bulk_spend_based_enrolment_skips_an_erased_record(chain, admin_scope, chain_admin, wang, friend,
                                                               family_plan, family_tier):
    customer_erase(scope=admin_scope, customer=wang, actor=chain_admin, reason="本人申请注销", forfeit=True)
    Customer.objects.filter(pk__in=[wang.pk, friend.pk]).update(lifetime_spend_fen=3_012_000)
    assert services.spend_based_enrol_all(chain=chain) == 1
    assert list(Membership.objects.values_list("customer_id", flat=True)) == [friend.pk]


def test_the_api_answers_a_card_past_its_expiry_as_it_answers_an_expired_one(client, front_desk_a, wang, friend,
                                                                            paid_plan, annual_tier):
    token = token_create(username=front_desk_a.user.username)
    long_ago = timezone.now() - dt.timedelta(days=400)
    lapsed = services.membership_enrol(customer=wang, plan=paid_plan, as_of=long_ago)
    services.membership_enrol(customer=friend, plan=paid_plan, as_of=long_ago)
    services.memberships_expire()  # …and the job has run for both: expire hers again as still active
    Membership.objects.filter(pk=lapsed.pk).update(status=MembershipStatus.ACTIVE, ended_at=None)
    before = snapshot()

    def answer(customer, action, body, key):
        response = client.post(f"/api/membership/customers/{customer.id}/{action}", data=json.dumps(body),
                               content_type="application/json",
                               headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})
        return response.status_code, response.json().get("code")

    for action, body in (("cancel", {"reason": "搬家"}), ("upgrade", {"tier_id": annual_tier.id})):
        assert answer(wang, action, body, f"w-{action}") == answer(friend, action, body, f"f-{action}")
        assert answer(wang, action, body, f"w2-{action}")[0] >= 400
    detail = client.get(f"/api/membership/customers/{wang.id}", headers={"Authorization": f"Bearer {token}"}).json()
    assert detail["membership"] is None and detail["discount"] is None
    assert snapshot() == before
