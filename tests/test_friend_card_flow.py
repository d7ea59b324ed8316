"""Cross-app flow: a spend-based member's treatment plan reaches half done → paying at checkout reveals the
hidden benefit 亲友储值卡 (membership.benefits_reveal_due) and issues the friend card
(giftcards.friend_card_issue_for_benefit) → a friend pays part of a bill with it (the oral-care product line
is excluded) → the friend registers at the clinic and the card stays valid after its original expiry."""

import datetime as dt

from django.utils import timezone

from smileloop.checkout.services import checkout_pay, checkout_price
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.giftcards.models import GiftCard
from smileloop.giftcards.selectors import giftcard_balance
from smileloop.giftcards.services import giftcard_holder_register, giftcards_expire
from smileloop.ledger.selectors import ledger_check
from smileloop.membership.enums import BenefitTrigger, PlanKind
from smileloop.membership.models import BenefitReveal
from smileloop.membership.services import benefits_reveal_due
from smileloop.membership.tests.factories import (
    BenefitFactory,
    MembershipFactory,
    PlanFactory,
    TierFactory,
    TreatmentPlanFactory,
)


def test_a_half_done_plan_gives_the_member_a_friend_card_that_a_registered_friend_keeps_after_its_expiry(
        chain, clinic_a, catalogue, front_desk_a):
    # given a spend-based member (30,000 yuan reached) with a hidden friend-card benefit and a plan half done
    plan = PlanFactory(chain=chain, kind=PlanKind.SPEND_BASED, name="消费会员")
    tier = TierFactory(plan=plan, name="家庭会员", discount_bp=1200)
    benefit = BenefitFactory(tier=tier, name="亲友储值卡", is_hidden=True, trigger=BenefitTrigger.PLAN_HALF_DONE,
                             action_code="issue_friend_card", action_data={"amount_fen": 60000, "valid_months": 3})
    member = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a, lifetime_spend_fen=3_012_000)
    membership = MembershipFactory(customer=member, tier=tier)
    TreatmentPlanFactory(customer=member, steps_total=4, steps_done=2)
    assert not BenefitReveal.objects.exists()

    # when the member pays a visit at checkout
    bill = checkout_price(customer=member, clinic=clinic_a, lines=[{"item_code": "EX01"}])
    checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}], key="member-visit",
                 actor=front_desk_a)

    # then the benefit is revealed with its trigger and the card is issued once
    reveal = BenefitReveal.objects.get()
    assert (reveal.membership_id, reveal.benefit_id, reveal.trigger) == (membership.id, benefit.id, "plan_half_done")
    assert benefits_reveal_due(customer=member) == []  # nothing more is due
    card = GiftCard.objects.get()
    assert (card.giver_id, card.face_value_fen, card.holder_id) == (member.id, 60000, None)
    original_expiry = card.expires_at
    assert original_expiry is not None

    # when a friend uses part of the card on an exam, with a toothbrush on the same bill
    friend = CustomerFactory(chain=chain, name="李娜", home_clinic=clinic_a)
    bill = checkout_price(customer=friend, clinic=clinic_a, lines=[{"item_code": "EX01"}, {"item_code": "OC01"}],
                          gift_cards=[card.code])
    # then the card pays the exam only; the oral-care product is paid in cash
    assert [(t.kind, t.amount_fen, t.per_line) for t in bill.tenders] == [
        ("giftcard", 5000, [5000, 0]), ("cash", 39900, [0, 39900])]
    checkout_pay(priced=bill, payments=[{"method": "wechat_pay", "amount_fen": 39900}], key="friend-visit")
    card.refresh_from_db()
    assert (card.account.balance, card.holder_id) == (55000, friend.id)

    # when the friend registers at the clinic within the validity, then the card stays valid after the expiry
    giftcard_holder_register(card=card, customer=friend, actor=front_desk_a)
    later = original_expiry + dt.timedelta(days=10)
    assert giftcards_expire(as_of=later) == 0
    card.refresh_from_db()
    assert card.status == "active" and card.expires_at is None
    assert giftcard_balance(card, at=later) == 55000
    again = checkout_price(customer=friend, clinic=clinic_a, lines=[{"item_code": "FI01"}], gift_cards=[card.code],
                           at=later)
    assert again.tenders[0].amount_fen == 55000 and later > timezone.now()
    assert ledger_check(chain_id=chain.id) == []
