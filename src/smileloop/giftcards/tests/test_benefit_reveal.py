"""A friends-and-family benefit revealed on the member card or through the membership API issues its card (the
action membership's `reveal_action_register` hands to giftcards), once per reveal; a payment never would later."""

import json

import pytest
from django.urls import reverse

from smileloop.clinics.services import token_create
from smileloop.giftcards.models import GiftCard
from smileloop.ledger.selectors import ledger_check
from smileloop.membership import services as membership_services
from smileloop.membership.enums import BenefitTrigger
from smileloop.membership.models import BenefitReveal
from smileloop.membership.tests.factories import (
    BenefitFactory,
    PlanFactory,
    TierFactory,
    TreatmentPlanFactory,
)

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


@pytest.fixture
def family_tier(chain):
    plan = PlanFactory(chain=chain, name="家庭会员计划", spend_threshold_fen=3_000_000)
    return TierFactory(plan=plan, rank=1, name="家庭会员", min_spend_fen=3_000_000)


def _friend_card_benefit(tier, trigger):
    return BenefitFactory(tier=tier, name="亲友储值卡 600 元", is_hidden=True, trigger=trigger,
                          action_code="issue_friend_card", action_data={"amount_fen": 60000, "valid_months": 3})


@pytest.fixture
def member(chain, clinic_a, member, family_tier):
    member.lifetime_spend_fen = 3_100_000
    member.save(update_fields=["lifetime_spend_fen"])
    membership_services.membership_enrol(customer=member, plan=family_tier.plan)
    return member


def test_a_friend_card_benefit_revealed_by_staff_on_the_member_card_issues_the_card_once(client, chain, front_desk_a,
                                                                                         member, family_tier):
    # given the hidden 600-yuan friends-and-family card of 王芳's tier, revealed by staff decision
    benefit = _friend_card_benefit(family_tier, BenefitTrigger.STAFF_DECISION)
    client.force_login(front_desk_a.user)
    url = reverse("membership:reveal", args=[member.id, benefit.id])
    # when the front desk reveals it (and, on a stale page, once more)
    first = client.post(url, headers=HTMX)
    again = client.post(url, headers=HTMX)
    # then she holds one card to give, keyed by the reveal, credited with 600 yuan
    assert (first.status_code, again.status_code) == (200, 200)
    reveal = BenefitReveal.objects.get()
    card = GiftCard.objects.get()
    assert (card.giver_id, card.issue_key, card.face_value_fen, card.account.balance) == (
        member.id, f"benefit-reveal:{reveal.id}", 60000, 60000)
    assert ledger_check(chain_id=chain.id) == []


def test_a_friend_card_benefit_revealed_by_an_evaluation_over_the_api_issues_the_card(client, front_desk_a, member,
                                                                                      family_tier):
    # given her treatment plan is half done, which reveals the card
    _friend_card_benefit(family_tier, BenefitTrigger.PLAN_HALF_DONE)
    TreatmentPlanFactory(customer=member, steps_total=4, steps_done=2)
    token = token_create(username=front_desk_a.user.username)
    # when the practice system asks for an evaluation
    response = client.post(f"/api/membership/customers/{member.id}/evaluate", data=json.dumps({}),
                           content_type="application/json",
                           headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "e1"})
    # then the benefit is revealed and its card issued
    assert response.status_code == 200, response.content[:500]
    assert [b["trigger"] for b in response.json()["benefits"]] == ["plan_half_done"]
    assert GiftCard.objects.get().issue_key == f"benefit-reveal:{BenefitReveal.objects.get().id}"
