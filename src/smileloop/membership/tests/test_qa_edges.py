"""Membership and family-card edges: unusual orders of enrol / renew / change / cancel / expire, dates at the Shanghai
day's edges and on 29 February, plans edited or retired while held, family cards and people erased or merged away,
and every membership API write's idempotency and refusals (which change nothing)."""

import datetime as dt
import json
import zoneinfo

import pytest
from django.utils import timezone

from smileloop.clinics.services import token_create
from smileloop.core.errors import ValidationFailed
from smileloop.core.models import IdempotencyRecord
from smileloop.customers.privacy import customer_erase
from smileloop.membership import selectors, services
from smileloop.membership.enums import BenefitTrigger, EventKind, MembershipStatus, PlanKind
from smileloop.membership.errors import (
    MembershipInputError,
    MembershipNotActive,
    PlanInactive,
    RenewalOutOfRange,
)
from smileloop.membership.models import (
    FamilyBinding,
    Membership,
    Tier,
)
from smileloop.membership.tests.conftest import patient
from smileloop.membership.tests.factories import (
    BenefitFactory,
    PlanFactory,
    TierFactory,
    memberships_snapshot,
)

pytestmark = pytest.mark.django_db
SH = zoneinfo.ZoneInfo("Asia/Shanghai")
BASE = "/api/membership/customers"


def sh(*parts) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=SH)


def last_day(membership) -> dt.date:
    return timezone.localtime(membership.expires_at).date()


def bind(holder, member, relation="spouse", **extra):
    return services.family_bind(holder=holder, member=member, relation=relation, consent_source="paper",
                                consent_evidence=extra.pop("evidence", "F-1"), **extra)


snapshot = memberships_snapshot


@pytest.fixture
def yearly(chain):
    """A paid plan of 12 months, fee 0 fen (the lowest bound), two tiers."""
    plan = PlanFactory(chain=chain, name="体验年卡", kind=PlanKind.PAID, fee_fen=0, duration_months=12,
                       spend_threshold_fen=None, auto_enrol=False)
    TierFactory(plan=plan, rank=1, name="基础", discount_bp=300, min_spend_fen=0, family_slots=2)
    TierFactory(plan=plan, rank=2, name="高级", discount_bp=800, min_spend_fen=0, family_slots=2)
    return plan


# --- dates: the Shanghai day and 29 February ------------------------------------------------------------------


def test_a_year_bought_on_29_february_just_after_shanghai_midnight_ends_on_28_february_and_keeps_the_29th(wang,
                                                                                                        yearly):
    # given an enrolment at 00:30 in Shanghai on 29 February 2028 (still 28 February in UTC)
    membership = services.membership_enrol(customer=wang, plan=yearly, as_of=sh(2028, 2, 29, 0, 30))
    # then it runs to the end of 28 February 2029 (no 29th that year), in Shanghai time
    assert membership.expires_at == dt.datetime(2029, 2, 28, 23, 59, 59, 999999, tzinfo=SH)
    # and renewals ahead of time keep the day it started on: 28 February until a leap year has the 29th again
    ends = []
    for year in (2029, 2030, 2031, 2032):
        membership = services.membership_renew(membership=membership, as_of=sh(year, 2, 1, 9))
        ends.append(last_day(membership))
    assert ends == [dt.date(2030, 2, 28), dt.date(2031, 2, 28), dt.date(2032, 2, 29), dt.date(2033, 2, 28)]


def test_an_upgrade_on_the_last_evening_is_kept_and_the_next_morning_the_card_is_expired(wang, yearly):
    membership = services.membership_enrol(customer=wang, plan=yearly, as_of=sh(2026, 3, 2, 10))
    assert last_day(membership) == dt.date(2027, 3, 2)
    better = yearly.tiers.get(rank=2)
    # when staff upgrade at 23:59 on the last day, Shanghai time (15:59 UTC)
    services.membership_upgrade(membership=membership, tier=better, as_of=sh(2027, 3, 2, 23, 59))
    assert services.memberships_expire(as_of=sh(2027, 3, 2, 23, 59, 30)).expired == 0
    # then the job a minute after midnight expires it, and the expired card is not upgraded or cancelled any more
    assert services.memberships_expire(as_of=sh(2027, 3, 3, 0, 1)).expired == 1
    before = snapshot()
    with pytest.raises(MembershipNotActive):
        services.membership_downgrade(membership=membership, tier=yearly.tiers.get(rank=1), as_of=sh(2027, 3, 3, 9))
    with pytest.raises(MembershipNotActive):
        services.membership_cancel(membership=membership, reason="不续了", as_of=sh(2027, 3, 3, 9))
    assert snapshot() == before
    membership.refresh_from_db()
    assert (membership.status, membership.tier_id) == (MembershipStatus.EXPIRED, better.id)


# --- unusual orders -----------------------------------------------------------------------------------------


def test_an_expired_card_renewed_later_starts_a_new_year_and_its_family_comes_back_with_it(wang, spouse, yearly):
    membership = services.membership_enrol(customer=wang, plan=yearly, as_of=sh(2025, 5, 10, 9))
    bind(wang, spouse, as_of=sh(2025, 5, 10, 10))
    services.memberships_expire(as_of=sh(2026, 5, 11, 1))
    assert selectors.member_discount_for(spouse, at=sh(2026, 6, 1)) is None  # the card is not in force
    # when she renews a month after it lapsed
    membership = services.membership_renew(membership=membership, as_of=sh(2026, 6, 20, 15))
    # then a new year starts from that day (the lapse is not paid for), and her husband shares the discount again
    assert membership.status == MembershipStatus.ACTIVE and last_day(membership) == dt.date(2027, 6, 20)
    assert selectors.member_discount_for(spouse, at=sh(2026, 6, 21)).source == "family"
    assert [e.kind for e in membership.events.order_by("occurred_at", "id")] == [
        EventKind.ENROLLED, EventKind.EXPIRED, EventKind.RENEWED]


def test_a_cancelled_card_is_not_renewed_and_enrolling_again_starts_a_card_without_the_old_family(wang, spouse,
                                                                                                 yearly):
    membership = services.membership_enrol(customer=wang, plan=yearly)
    bind(wang, spouse)
    services.membership_cancel(membership=membership, reason="搬家")
    before = snapshot()
    with pytest.raises(MembershipNotActive):
        services.membership_renew(membership=membership)
    assert snapshot() == before
    again = services.membership_enrol(customer=wang, plan=yearly)
    assert again.pk != membership.pk
    assert not FamilyBinding.objects.filter(unbound_at__isnull=True).exists()
    assert Membership.objects.filter(customer=wang, status=MembershipStatus.ACTIVE).get() == again


def test_a_plan_retired_and_repriced_while_held_renews_its_members_at_the_new_price_and_enrols_no_one(wang, spouse,
                                                                                                     paid_plan,
                                                                                                     annual_tier):
    membership = services.membership_enrol(customer=wang, plan=paid_plan, as_of=sh(2026, 1, 5, 10))
    services.plan_save(chain=paid_plan.chain, plan=paid_plan,
                       data={"is_active": False, "fee_fen": 10**10, "duration_months": 6})
    # then a member keeps and renews her card on its current terms: six months at the new fee (the upper bound)
    membership = services.membership_renew(membership=membership, as_of=sh(2026, 12, 1, 10))
    assert last_day(membership) == dt.date(2027, 7, 5)
    assert membership.fee_fen == 89_900 + 10**10
    # and nobody new joins the retired plan
    with pytest.raises(PlanInactive) as refused:
        services.membership_enrol(customer=spouse, plan=paid_plan)
    assert refused.value.field == "plan_id"


def test_a_fee_above_the_money_bound_is_refused_on_its_field_and_the_bound_itself_is_taken(wang, paid_plan,
                                                                                          annual_tier):
    with pytest.raises(MembershipInputError) as refused:
        services.membership_enrol(customer=wang, plan=paid_plan, fee_fen=10**10 + 1)
    assert refused.value.field == "fee_fen" and not Membership.objects.exists()
    membership = services.membership_enrol(customer=wang, plan=paid_plan, fee_fen=10**10)
    assert membership.fee_fen == 10**10


def test_renewing_beyond_the_last_date_the_calendar_holds_is_refused_and_changes_nothing(client, front_desk_a, wang,
                                                                                        chain):
    # given a plan of the longest duration (100 years) renewed ahead until its card runs to 9950
    plan = PlanFactory(chain=chain, kind=PlanKind.PAID, fee_fen=100, duration_months=1200, spend_threshold_fen=None,
                       auto_enrol=False)
    TierFactory(plan=plan, rank=1, min_spend_fen=0)
    membership = services.membership_enrol(customer=wang, plan=plan)
    Membership.objects.filter(pk=membership.pk).update(expires_at=sh(9950, 1, 1, 23, 59, 59))
    before = snapshot()
    # when one more renewal is asked for, through the service and the API
    with pytest.raises(RenewalOutOfRange):
        services.membership_renew(membership=membership)
    token = token_create(username=front_desk_a.user.username)
    response = client.post(f"{BASE}/{wang.id}/renew", data="{}", content_type="application/json",
                           headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "far"})
    # then it is a 409 with its reason (not a 500), and nothing changed
    assert response.status_code == 409 and response.json()["code"] == "renewal_out_of_range"
    assert snapshot() == before


# --- plans edited while held ---------------------------------------------------------------------------------


def test_fewer_family_slots_than_a_card_holds_are_refused_on_the_field_and_as_many_are_taken(wang, spouse, child,
                                                                                            family_plan,
                                                                                            family_tier):
    services.membership_enrol(customer=wang, plan=family_plan)
    bind(wang, spouse)
    bind(wang, child, relation="child")
    before = snapshot()
    with pytest.raises(ValidationFailed) as refused:
        services.tier_save(plan=family_plan, tier=family_tier, data={"family_slots": 1})
    assert [(e.field, e.message) for e in refused.value.errors] == [
        ("family_slots", "must be at least 2: a card of this tier has 2 family members bound; unbind them first")]
    assert Tier.objects.get(pk=family_tier.pk).family_slots == 3 and snapshot() == before
    services.tier_save(plan=family_plan, tier=Tier.objects.get(pk=family_tier.pk), data={"family_slots": 2})
    assert Tier.objects.get(pk=family_tier.pk).family_slots == 2


def test_the_tier_page_refuses_fewer_slots_than_a_card_holds_beside_the_field_in_chinese(client, chain_admin, wang,
                                                                                        spouse, child, family_plan,
                                                                                        family_tier):
    services.membership_enrol(customer=wang, plan=family_plan)
    bind(wang, spouse)
    bind(wang, child, relation="child")
    client.force_login(chain_admin.user)
    page = client.get(f"/membership/tiers/{family_tier.pk}/")
    form = page.context["form"]
    data = {name: value for name, value in ((n, form[n].value()) for n in form.fields) if value is not None}
    data = {k: ("on" if v is True else v) for k, v in data.items() if v is not False}
    data["family_slots"] = "0"
    response = client.post(f"/membership/tiers/{family_tier.pk}/", data, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 422
    assert "不能少于 2：本等级有会员卡已绑定 2 位家庭成员，请先解绑" in response.context["form"].errors["family_slots"]
    assert Tier.objects.get(pk=family_tier.pk).family_slots == 3


# --- family cards and the people on them ----------------------------------------------------------------------


def test_a_bound_member_who_enrols_on_their_own_gets_the_larger_discount_never_both(chain, clinic_a, wang,
                                                                                    paid_plan, annual_tier,
                                                                                    family_plan, family_tier):
    # (binding someone whose own membership is in force is refused: test_family_card_rules; enrolling after the
    # binding is not, and the discounts still never stack)
    husband = patient(chain, clinic_a, "陈军", birthday=dt.date(1978, 8, 8))
    services.membership_enrol(customer=wang, plan=family_plan)  # 12% family card
    bind(wang, husband)
    services.membership_enrol(customer=husband, plan=paid_plan)  # 5% own
    discount = selectors.member_discount_for(husband)
    assert (discount.source, discount.discount_bp) == ("family", 1200)
    # his own card's family slot is his to use, and whoever he binds gets his tier's, not hers
    son = patient(chain, clinic_a, "陈小军", birthday=timezone.localdate() - dt.timedelta(days=365 * 6))
    bind(husband, son, relation="child")
    assert selectors.member_discount_for(son).discount_bp == 500


def test_an_erased_person_is_not_bound_again_nor_named_as_a_friend(wang, spouse, friend, family_plan, family_tier,
                                                                  admin_scope, chain_admin, client, front_desk_a):
    services.membership_enrol(customer=wang, plan=family_plan)
    bind(wang, spouse)
    services.friend_link(friend=friend, member=wang)
    # when the husband's personal information is erased (PIPL), his binding ends
    customer_erase(scope=admin_scope, customer=spouse, actor=chain_admin, reason="本人申请注销", forfeit=True)
    assert not FamilyBinding.objects.filter(member=spouse, unbound_at__isnull=True).exists()
    before = snapshot()
    # then the anonymous record is not bound again (new consent evidence about him), nor names a member as a friend
    with pytest.raises(MembershipInputError) as refused:
        bind(wang, spouse, evidence="F-2")
    assert (refused.value.code, refused.value.field) == ("erased", "member_id")
    with pytest.raises(MembershipInputError) as refused:
        services.friend_link(friend=spouse, member=wang)
    assert (refused.value.code, refused.value.field) == ("erased", "customer_id")
    # nor does the API bind him
    token = token_create(username=front_desk_a.user.username)
    response = client.post(f"{BASE}/{wang.id}/family", content_type="application/json",
                           data=json.dumps({"member_id": spouse.id, "relation": "spouse", "consent_source": "paper",
                                            "consent_evidence": "F-3"}),
                           headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "erased"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "body.member_id"
    assert snapshot() == before


def test_an_erased_holder_binds_no_one(wang, spouse, family_plan, family_tier, admin_scope, chain_admin):
    services.membership_enrol(customer=wang, plan=family_plan)
    customer_erase(scope=admin_scope, customer=wang, actor=chain_admin, reason="本人申请注销", forfeit=True)
    wang.refresh_from_db()
    with pytest.raises(MembershipInputError) as refused:
        bind(wang, spouse)
    assert (refused.value.code, refused.value.field) == ("erased", "customer_id")
    assert not FamilyBinding.objects.exists()


def test_a_record_merged_away_is_not_bound_and_its_survivor_is(chain, clinic_a, wang, spouse, family_plan,
                                                              family_tier):
    services.membership_enrol(customer=wang, plan=family_plan)
    tombstone = patient(chain, clinic_a, "李强", birthday=dt.date(1979, 5, 5))
    tombstone.merged_into = spouse
    tombstone.save(update_fields=["merged_into"])
    with pytest.raises(MembershipInputError) as refused:
        bind(wang, tombstone)
    assert (refused.value.code, refused.value.field) == ("merged", "member_id")
    assert not FamilyBinding.objects.exists()
    assert bind(wang, spouse).member_id == spouse.pk


def test_a_relative_bound_while_the_head_is_merged_into_another_member_stays_on_the_surviving_card(
        chain, clinic_a, admin_scope, wang, spouse, child, family_plan, family_tier, premium_tier):
    from smileloop.customers.services import customer_merge

    # given two records of the head: the old one holds the family card with her husband bound, the new one a better
    # card with her son
    old = patient(chain, clinic_a, "王芳", spend=3_050_000, birthday=dt.date(1980, 7, 1))
    services.membership_enrol(customer=old, plan=family_plan)
    bind(old, spouse)
    wang.lifetime_spend_fen = 10_000_000
    wang.save(update_fields=["lifetime_spend_fen"])
    services.membership_enrol(customer=wang, plan=family_plan, tier=premium_tier)
    bind(wang, child, relation="child")
    # when the old record is merged into the new one
    customer_merge(scope=admin_scope, survivor=wang, merged=old, reason="同一人")
    # then one card survives (the better tier) and both relatives are on it
    active = Membership.objects.get(status=MembershipStatus.ACTIVE)
    assert (active.customer_id, active.tier_id) == (wang.pk, premium_tier.pk)
    assert sorted(FamilyBinding.objects.filter(unbound_at__isnull=True).values_list("holder_id", "member_id")) == \
        sorted([(active.pk, spouse.pk), (active.pk, child.pk)])


# --- every membership API write: idempotency, role and clinic refusals ------------------------------------------


@pytest.fixture
def programme(chain, clinic_a, wang, spouse, child, friend, paid_plan, annual_tier, family_plan, family_tier):
    """王芳 holds a family card (premium tier above it, downgrades allowed) with her husband bound and a hidden
    staff-decision benefit; 张丽 holds a dated paid card; 李小明 and 赵敏 are not members."""
    premium = TierFactory(plan=family_plan, rank=2, name="家庭尊享", discount_bp=1500, min_spend_fen=10_000_000,
                          family_slots=5, downgrade_allowed=True)
    hidden = BenefitFactory(tier=family_tier, name="惊喜洁牙", is_hidden=True, trigger=BenefitTrigger.STAFF_DECISION)
    services.membership_enrol(customer=wang, plan=family_plan)
    bind(wang, spouse)
    zhang = patient(chain, clinic_a, "张丽", birthday=dt.date(1985, 1, 1))
    services.membership_enrol(customer=zhang, plan=paid_plan)
    return {"wang": wang, "spouse": spouse, "child": child, "friend": friend, "zhang": zhang, "premium": premium,
            "family_tier": family_tier, "hidden": hidden, "paid_plan": paid_plan}


def _premium_wang(p):
    services.membership_upgrade(membership=Membership.objects.get(customer=p["wang"], status="active"),
                                tier=p["premium"])


def _consent(p):
    services.wallet_share_consent_grant(holder=p["wang"], member=p["spouse"], mode="standing", source="paper")


# name → (path, first body, another body (or another path and body), preparation)
WRITES = {
    "enrol": (lambda p: f"{p['friend'].id}/enrol", lambda p: {"plan_id": p["paid_plan"].id},
              lambda p: {"plan_id": p["paid_plan"].id, "fee_fen": 1}, None),
    "renew": (lambda p: f"{p['zhang'].id}/renew", lambda p: {}, lambda p: {"fee_fen": 1}, None),
    "upgrade": (lambda p: f"{p['wang'].id}/upgrade", lambda p: {"tier_id": p["premium"].id},
                lambda p: {"tier_id": p["premium"].id, "reason": "老客户"}, None),
    "downgrade": (lambda p: f"{p['wang'].id}/downgrade", lambda p: {"tier_id": p["family_tier"].id},
                  lambda p: {"tier_id": p["family_tier"].id, "reason": "退款"}, _premium_wang),
    "cancel": (lambda p: f"{p['wang'].id}/cancel", lambda p: {"reason": "搬家"}, lambda p: {"reason": "出国"}, None),
    "evaluate": (lambda p: f"{p['wang'].id}/evaluate", lambda p: {}, lambda p: {"topup_total_fen": 1}, None),
    "family_bind": (lambda p: f"{p['wang'].id}/family",
                    lambda p: {"member_id": p["child"].id, "relation": "child", "consent_source": "paper"},
                    lambda p: {"member_id": p["child"].id, "relation": "grandchild", "consent_source": "paper"},
                    None),
    "family_unbind": (lambda p: f"{p['wang'].id}/family/{p['spouse'].id}/unbind", lambda p: {},
                      lambda p: {"reason": "离婚"}, None),
    "wallet_share_grant": (lambda p: f"{p['wang'].id}/wallet-share",
                           lambda p: {"member_id": p["spouse"].id, "mode": "standing", "source": "paper"},
                           lambda p: {"member_id": p["spouse"].id, "mode": "per_use", "source": "paper"}, None),
    "wallet_share_revoke": (lambda p: f"{p['wang'].id}/wallet-share/{p['spouse'].id}/revoke", lambda p: {},
                            # no body to vary (an unknown field is a 422 before the key is looked at): another member
                            lambda p: (f"{p['wang'].id}/wallet-share/{p['child'].id}/revoke", {}), _consent),
    "friend_link": (lambda p: f"{p['friend'].id}/friend-link", lambda p: {"member_id": p["wang"].id},
                    lambda p: {"member_id": p["wang"].id, "source": "wechat"}, None),
    "benefit_reveal": (lambda p: f"{p['wang'].id}/benefits/{p['hidden'].id}/reveal", lambda p: {},
                       lambda p: {"detail": "十周年"}, None),
}


def _post(client, path, body, *, token, key):
    return client.post(f"{BASE}/{path}", data=json.dumps(body), content_type="application/json",
                       headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})


@pytest.mark.parametrize("name", WRITES)
def test_each_write_replays_its_first_answer_and_refuses_its_key_for_another_body(client, front_desk_a, programme,
                                                                                 name):
    path, body, other, prepare = WRITES[name]
    if prepare:
        prepare(programme)
    token = token_create(username=front_desk_a.user.username)
    # when the write is sent, then sent again with its key
    first = _post(client, path(programme), body(programme), token=token, key=f"{name}-1")
    assert first.status_code in (200, 201), first.content
    after = snapshot()
    again = _post(client, path(programme), body(programme), token=token, key=f"{name}-1")
    # then the replay is the first answer, byte for byte, and changes nothing
    assert (again.status_code, again.content, again["Idempotent-Replayed"]) == (first.status_code, first.content,
                                                                                 "true")
    # and the same key with another body is a 409 that changes nothing either
    other_path, other_body = other(programme) if isinstance(other(programme), tuple) else (path(programme),
                                                                                             other(programme))
    reused = _post(client, other_path, other_body, token=token, key=f"{name}-1")
    assert (reused.status_code, reused.json()["code"]) == (409, "idempotency_key_reused")
    assert snapshot() == after


@pytest.mark.parametrize("name", WRITES)
def test_each_write_refused_to_a_read_only_role_or_another_clinic_changes_nothing_and_keeps_the_key_free(
        client, marketing, chain, clinic_b, programme, name):
    path, body, _other, prepare = WRITES[name]
    if prepare:
        prepare(programme)
    before = snapshot()
    # a role that may read but not write
    reader = token_create(username=marketing.user.username)
    assert _post(client, path(programme), body(programme), token=reader, key="k").status_code == 403
    # a front desk of another clinic: the patients are not theirs
    from smileloop.clinics.enums import Role
    from smileloop.clinics.tests.factories import StaffFactory

    desk_b = StaffFactory(chain=chain, role=Role.FRONT_DESK, clinics=[clinic_b], user__username="frontdesk_b")
    other = token_create(username=desk_b.user.username)
    assert _post(client, path(programme), body(programme), token=other, key="k").status_code == 404
    assert snapshot() == before and not IdempotencyRecord.objects.exists()


# --- the staff pages ------------------------------------------------------------------------------------------


def test_an_unbind_with_a_reason_too_long_is_refused_on_the_card_and_keeps_the_binding(client, front_desk_a, wang,
                                                                                      spouse, family_plan,
                                                                                      family_tier):
    services.membership_enrol(customer=wang, plan=family_plan)
    bind(wang, spouse)
    client.force_login(front_desk_a.user)
    before = snapshot()
    response = client.post(f"/membership/customers/{wang.id}/family/{spouse.id}/unbind/", {"reason": "离" * 201},
                           HTTP_HX_REQUEST="true", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 422
    assert "无法解绑此家庭成员" in response.content.decode()
    assert snapshot() == before
    # a reason that fits is kept
    response = client.post(f"/membership/customers/{wang.id}/family/{spouse.id}/unbind/", {"reason": "离婚"},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert FamilyBinding.objects.get().unbind_reason == "离婚"
