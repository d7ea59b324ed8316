"""Who may take a family slot: not a person whose own membership is in force (they have their own discount, maybe
their own card), and one spouse per card (children, parents and the other relations may be several). Refusals are
a 409 naming the field in the API and a Chinese field error on the member card; they bind nobody."""

import datetime as dt
import json

import pytest
from django.urls import reverse
from django.utils import translation

from smileloop.clinics.services import token_create
from smileloop.membership import services
from smileloop.membership.enums import MembershipStatus
from smileloop.membership.errors import OwnMembership, SpouseBound
from smileloop.membership.models import FamilyBinding, Membership
from smileloop.membership.tests.conftest import patient

pytestmark = pytest.mark.django_db

ADULT = {"consent_source": "paper", "consent_evidence": "同意书 7"}
MINOR = {"consent_source": "paper"}
HTMX = {"HX-Request": "true"}


def _active_bindings(holder) -> list[tuple[int, str]]:
    return sorted(FamilyBinding.objects.filter(holder__customer=holder, unbound_at__isnull=True)
                  .values_list("member_id", "relation"))


@pytest.fixture
def card(wang, family_plan, family_tier):
    """王芳's family card (3 slots)."""
    return services.membership_enrol(customer=wang, plan=family_plan)


@pytest.fixture
def other_card_holder(chain, clinic_a, paid_plan, annual_tier, family_plan, family_tier):
    """周强, a big spender with a family card of his own and its 3 slots taken."""
    zhou = patient(chain, clinic_a, "周强", spend=3_500_000, birthday=dt.date(1975, 2, 2))
    services.membership_enrol(customer=zhou, plan=family_plan)
    for i in range(3):
        relative = patient(chain, clinic_a, f"周家{i}", birthday=dt.date(1990 + i, 1, 1))
        services.family_bind(holder=zhou, member=relative, relation="sibling", **ADULT)
    return zhou


def test_a_holder_of_their_own_family_card_cannot_take_a_slot_on_another(card, wang, other_card_holder):
    # when 王芳's desk binds 周强, whose own family card is in force with 3 members bound
    with pytest.raises(OwnMembership) as refused:
        services.family_bind(holder=wang, member=other_card_holder, relation="spouse", **ADULT)
    # then refused on the member, and nothing is written
    assert (refused.value.code, refused.value.field) == ("own_membership", "member_id")
    assert _active_bindings(wang) == []
    assert len(_active_bindings(other_card_holder)) == 3


def test_a_member_of_their_own_paid_plan_cannot_be_bound(card, wang, spouse, paid_plan, annual_tier):
    services.membership_enrol(customer=spouse, plan=paid_plan)
    with pytest.raises(OwnMembership):
        services.family_bind(holder=wang, member=spouse, relation="spouse", **ADULT)
    assert _active_bindings(wang) == []


@pytest.mark.parametrize("ended", ["cancelled", "lapsed", "expired"])
def test_a_person_whose_own_membership_is_no_longer_in_force_may_be_bound(card, wang, spouse, paid_plan, annual_tier,
                                                                          ended):
    # given the spouse's own annual card: cancelled by staff / past its expiry before the nightly job / expired
    own = services.membership_enrol(customer=spouse, plan=paid_plan)
    if ended == "cancelled":
        services.membership_cancel(membership=own, reason="转入家庭卡")
    elif ended == "lapsed":
        Membership.objects.filter(pk=own.pk).update(expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    else:
        Membership.objects.filter(pk=own.pk).update(status=MembershipStatus.EXPIRED,
                                                    expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    # when bound, then bound: a family slot is for someone without a membership in force
    services.family_bind(holder=wang, member=spouse, relation="spouse", **ADULT)
    assert _active_bindings(wang) == [(spouse.pk, "spouse")]


def test_a_second_spouse_is_refused_until_the_first_is_unbound(card, wang, spouse, chain, clinic_a):
    other = patient(chain, clinic_a, "陈刚", birthday=dt.date(1978, 3, 3))
    first = services.family_bind(holder=wang, member=spouse, relation="spouse", **ADULT)
    # when a second spouse is bound to the same card
    with pytest.raises(SpouseBound) as refused:
        services.family_bind(holder=wang, member=other, relation="spouse", **ADULT)
    # then refused on the relation, nothing written
    assert (refused.value.code, refused.value.field) == ("spouse_bound", "relation")
    assert _active_bindings(wang) == [(spouse.pk, "spouse")]
    # once the first is unbound, the card has room for a spouse again
    services.family_unbind(binding=first, reason="离婚")
    services.family_bind(holder=wang, member=other, relation="spouse", **ADULT)
    assert _active_bindings(wang) == [(other.pk, "spouse")]


def test_children_and_parents_may_be_several(card, wang, chain, clinic_a):
    kids = [patient(chain, clinic_a, f"李小{i}", birthday=dt.date(2018 + i, 1, 1)) for i in range(2)]
    parent = patient(chain, clinic_a, "王父", birthday=dt.date(1950, 1, 1))
    for kid in kids:
        services.family_bind(holder=wang, member=kid, relation="child", **MINOR)
    services.family_bind(holder=wang, member=parent, relation="parent", **ADULT)
    assert [relation for _id, relation in _active_bindings(wang)] == ["child", "child", "parent"]


# --- the API and the member card -------------------------------------------------------------------------------


def _api_bind(client, holder, member, relation, key):
    token = token_create(username=client.staff.user.username)
    return client.post(f"/api/membership/customers/{holder.pk}/family",
                       data=json.dumps({"member_id": member.pk, "relation": relation, **ADULT}),
                       content_type="application/json",
                       headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})


@pytest.fixture
def api(client, front_desk_a):
    client.staff = front_desk_a
    return client


def test_the_api_answers_409_own_membership_and_spouse_bound_naming_the_field(api, card, wang, spouse, chain,
                                                                             clinic_a, other_card_holder):
    response = _api_bind(api, wang, other_card_holder, "spouse", "k1")
    assert response.status_code == 409
    assert response.json()["code"] == "own_membership"
    assert response.json()["errors"][0]["field"] == "body.member_id"
    assert _api_bind(api, wang, spouse, "spouse", "k2").status_code == 201
    response = _api_bind(api, wang, patient(chain, clinic_a, "陈刚", birthday=dt.date(1978, 3, 3)), "spouse", "k3")
    assert (response.status_code, response.json()["code"]) == (409, "spouse_bound")
    assert response.json()["errors"][0]["field"] == "body.relation"
    assert _active_bindings(wang) == [(spouse.pk, "spouse")]


def _page_bind(client, holder, member, relation):
    with translation.override("zh-hans"):
        return client.post(reverse("membership:bind", args=[holder.pk]),
                           {"member": str(member.pk), "relation": relation, **ADULT},
                           headers={**HTMX, "Accept-Language": "zh-hans"})


def test_the_member_card_says_why_in_chinese(client, front_desk_a, card, wang, spouse, chain, clinic_a,
                                             other_card_holder):
    client.force_login(front_desk_a.user)
    # a person with their own card in force
    page = _page_bind(client, wang, other_card_holder, "spouse")
    assert page.status_code in (409, 422)
    assert "此人本人持有有效会员资格，不能占用家庭卡名额" in page.text
    # a second spouse
    assert _page_bind(client, wang, spouse, "spouse").status_code == 200
    page = _page_bind(client, wang, patient(chain, clinic_a, "陈刚", birthday=dt.date(1978, 3, 3)), "spouse")
    assert page.status_code in (409, 422)
    assert "此家庭卡已绑定配偶，请先解绑原配偶。" in page.text
    assert _active_bindings(wang) == [(spouse.pk, "spouse")]
