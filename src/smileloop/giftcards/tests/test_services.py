import datetime as dt
from fractions import Fraction

import pytest

from smileloop.giftcards.enums import CardEventKind, CardStatus, VoucherStatus
from smileloop.giftcards.errors import AlreadyUsed, Expired, LimitReached, NotFriendCardBenefit, WrongCode
from smileloop.giftcards.models import GiftCard, GiftCardEvent, GiftCardProgramme, GiftCardReminder, Voucher
from smileloop.giftcards.selectors import giftcard_balance, giftcard_get_by_code
from smileloop.giftcards.services import (
    friend_card_issue,
    friend_card_issue_for_benefit,
    giftcard_holder_register,
    giftcard_spend,
    giftcard_spend_reverse,
    giftcards_expire,
    voucher_issue,
    voucher_redeem,
)
from smileloop.ledger.enums import AccountKind
from smileloop.ledger.models import LedgerTransaction, Lot
from smileloop.ledger.selectors import ledger_check
from smileloop.ledger.services import InsufficientBalance, system_account
from smileloop.membership.enums import BenefitTrigger
from smileloop.membership.tests.factories import BenefitFactory, MembershipFactory, TierFactory


def test_friend_card_issue_credits_the_code_from_promotion_with_the_expiry(chain, member, programme, now):
    # when
    card = friend_card_issue(member=member, programme=programme, trigger="plan half done", key="k1", as_of=now)
    # then
    assert card.account.balance == 60000 and card.account.code == card.code
    assert list(Lot.objects.filter(account=card.account).values_list("remaining", "expires_at")) == [
        (60000, dt.datetime(2026, 6, 2, 15, 59, 59, 999999, tzinfo=dt.UTC))]  # valid all of 2 June in Shanghai
    assert system_account(chain_id=chain.id, kind=AccountKind.PROMOTION).balance == -60000
    assert giftcard_get_by_code(chain_id=chain.id, code=card.code.lower().replace("-", " ")) == card
    assert ledger_check(chain_id=chain.id) == []


def test_friend_card_issue_is_idempotent_on_its_key(member, programme, now):
    first = friend_card_issue(member=member, programme=programme, trigger="t", key="k1", as_of=now)
    again = friend_card_issue(member=member, programme=programme, trigger="t", key="k1", as_of=now)
    assert again == first and GiftCard.objects.count() == 1 and LedgerTransaction.objects.count() == 1


def test_a_second_card_within_the_period_is_refused_and_nothing_changes(chain, member, programme, now):
    # given
    friend_card_issue(member=member, programme=programme, trigger="t", key="k1", as_of=now)
    # when / then
    with pytest.raises(LimitReached):
        friend_card_issue(member=member, programme=programme, trigger="t", key="k2",
                          as_of=now + dt.timedelta(days=200))
    assert GiftCard.objects.count() == 1 and LedgerTransaction.objects.count() == 1
    # and a year later the member gets the next one
    friend_card_issue(member=member, programme=programme, trigger="t", key="k3", as_of=now + dt.timedelta(days=366))
    assert GiftCard.objects.count() == 2
    assert ledger_check(chain_id=chain.id) == []


def test_reminders_are_recorded_for_giver_and_holder_on_days_7_30_60_80(member, programme, now):
    card = friend_card_issue(member=member, programme=programme, trigger="t", key="k1", as_of=now)
    rows = list(GiftCardReminder.objects.filter(card=card).values_list("recipient", "day", "due_on"))
    assert rows == [(r, d, dt.date(2026, 3, 2) + dt.timedelta(days=d)) for d in (7, 30, 60, 80)
                    for r in ("giver", "holder")]


def test_benefit_action_issues_the_card_from_the_programme(chain, member, programme, now):
    # given a member whose hidden benefit issues a friend card
    tier = TierFactory(plan__chain=chain)
    membership = MembershipFactory(customer=member, tier=tier)
    benefit = BenefitFactory(tier=tier, is_hidden=True, trigger=BenefitTrigger.PLAN_HALF_DONE,
                             action_code="issue_friend_card", action_data={"amount_fen": 60000, "valid_months": 3})
    # when
    card = friend_card_issue_for_benefit(membership=membership, benefit=benefit, key="benefit:1", as_of=now)
    # then
    assert (card.programme, card.giver, card.face_value_fen) == (programme, member, 60000)
    # and why it was issued reads as the benefit's own name, not an English phrase with an internal id
    assert card.trigger == benefit.name
    assert card.events.get().detail.endswith(f": {benefit.name}")


def test_a_benefit_saved_with_an_oversized_card_validity_is_refused_and_issues_nothing(chain, member, now):
    # given a benefit saved before membership bounded its terms
    tier = TierFactory(plan__chain=chain)
    membership = MembershipFactory(customer=member, tier=tier)
    benefit = BenefitFactory(tier=tier, name="亲友卡", is_hidden=True, trigger=BenefitTrigger.PLAN_HALF_DONE,
                             action_code="issue_friend_card", action_data={"amount_fen": 60000, "valid_months": 100_000})
    # when
    with pytest.raises(NotFriendCardBenefit) as caught:
        friend_card_issue_for_benefit(membership=membership, benefit=benefit, key="benefit:1", as_of=now)
    # then
    assert caught.value.field == "benefit" and "valid_months = 100000" in caught.value.message
    assert (GiftCard.objects.count(), GiftCardProgramme.objects.count()) == (0, 0)


def test_partial_use_leaves_a_balance(chain, member, programme, now):
    card = friend_card_issue(member=member, programme=programme, trigger="t", key="k1", as_of=now)
    giftcard_spend(card=card, amount_fen=25000, key="use1", source="order:1", at=now + dt.timedelta(days=1))
    assert giftcard_balance(card, at=now + dt.timedelta(days=2)) == 35000
    assert GiftCard.objects.get().status == CardStatus.ACTIVE
    with pytest.raises(InsufficientBalance):
        giftcard_spend(card=card, amount_fen=35001, key="use2", source="order:2", at=now + dt.timedelta(days=2))
    assert card.account.__class__.objects.get(pk=card.account.pk).balance == 35000
    assert ledger_check(chain_id=chain.id) == []


def test_holder_registered_in_time_keeps_the_card_valid_after_the_expiry(chain, member, friend, programme, now):
    # given
    card = friend_card_issue(member=member, programme=programme, trigger="t", key="k1", as_of=now)
    # when the friend registers on day 40
    giftcard_holder_register(card=card, customer=friend, as_of=now + dt.timedelta(days=40))
    # then the expiry is gone and expiry voids nothing
    card.refresh_from_db()
    assert (card.holder, card.expires_at) == (friend, None)
    assert list(Lot.objects.filter(account=card.account).values_list("expires_at", flat=True)) == [None]
    assert GiftCardEvent.objects.filter(card=card, kind=CardEventKind.HOLDER_REGISTERED).count() == 1
    assert giftcards_expire(as_of=now + dt.timedelta(days=200)) == 0
    assert giftcard_balance(card, at=now + dt.timedelta(days=200)) == 60000
    assert ledger_check(chain_id=chain.id) == []


def test_the_giver_cannot_register_as_the_holder_and_the_card_keeps_its_expiry(member, programme, now):
    from django.utils import translation

    from smileloop.core.messages import message_display
    from smileloop.giftcards.errors import GiverNotHolder

    card = friend_card_issue(member=member, programme=programme, trigger="t", key="k1", as_of=now)
    expires = card.expires_at
    # when the member who received it to give away registers as its holder
    with pytest.raises(GiverNotHolder) as refused:
        giftcard_holder_register(card=card, customer=member, as_of=now + dt.timedelta(days=10))
    # then nothing changed (it would otherwise never expire), and the reason reads in Chinese on a page
    card.refresh_from_db()
    assert (card.holder_id, card.holder_registered_at, card.expires_at) == (None, None, expires)
    assert list(Lot.objects.filter(account=card.account).values_list("expires_at", flat=True)) == [expires]
    with translation.override("zh-hans"):
        assert message_display(refused.value.message) == "赠卡会员不能登记为本卡的持卡人：亲友储值卡是送给亲友的"


def test_registering_after_the_expiry_is_refused_and_changes_nothing(member, friend, programme, now):
    card = friend_card_issue(member=member, programme=programme, trigger="t", key="k1", as_of=now)
    with pytest.raises(Expired):
        giftcard_holder_register(card=card, customer=friend, as_of=now + dt.timedelta(days=95))
    card.refresh_from_db()
    assert (card.holder, card.holder_registered_at) == (None, None) and card.expires_at is not None


def test_expiry_voids_the_rest_through_a_ledger_entry(chain, member, programme, now):
    # given a card with 350 yuan left
    card = friend_card_issue(member=member, programme=programme, trigger="t", key="k1", as_of=now)
    giftcard_spend(card=card, amount_fen=25000, key="use1", source="order:1", at=now + dt.timedelta(days=1))
    # when
    expired = giftcards_expire(as_of=now + dt.timedelta(days=95))
    # then
    card.refresh_from_db()
    card.account.refresh_from_db()
    assert (expired, card.status, card.account.balance) == (1, CardStatus.EXPIRED, 0)
    assert system_account(chain_id=chain.id, kind=AccountKind.BREAKAGE).balance == 35000
    assert LedgerTransaction.objects.filter(reason="expire").count() == 1
    assert giftcards_expire(as_of=now + dt.timedelta(days=96)) == 0
    assert ledger_check(chain_id=chain.id) == []


def test_a_refund_onto_a_card_expired_since_it_paid_is_voided_at_once_not_left_as_a_balance(
        chain, member, programme, now):
    # given a card that paid 250 yuan of a bill, then expired with 350 yuan left
    card = friend_card_issue(member=member, programme=programme, trigger="t", key="k1", as_of=now)
    spend = giftcard_spend(card=card, amount_fen=25000, key="use1", source="order:1", at=now + dt.timedelta(days=1))
    giftcards_expire(as_of=now + dt.timedelta(days=95))
    # when the bill is refunded, 100 yuan and then the rest
    giftcard_spend_reverse(card=card, original=spend, key="r1", upto=Fraction(2, 5))
    card.refresh_from_db()
    card.account.refresh_from_db()
    assert (card.status, card.account.balance) == (CardStatus.EXPIRED, 0)
    giftcard_spend_reverse(card=card, original=spend, key="r2", upto=Fraction(1))
    # then it went back and was voided like the rest: nothing on the card, all 600 yuan in BREAKAGE
    card.account.refresh_from_db()
    assert card.account.balance == 0
    assert system_account(chain_id=chain.id, kind=AccountKind.BREAKAGE).balance == 60000
    kinds = list(GiftCardEvent.objects.filter(card=card).order_by("id").values_list("kind", flat=True))
    assert kinds[-4:] == [CardEventKind.REFUNDED, CardEventKind.EXPIRED, CardEventKind.REFUNDED, CardEventKind.EXPIRED]
    # a replayed refund voids nothing twice
    giftcard_spend_reverse(card=card, original=spend, key="r2", upto=Fraction(1))
    assert system_account(chain_id=chain.id, kind=AccountKind.BREAKAGE).balance == 60000
    assert ledger_check(chain_id=chain.id) == []


def test_the_expiry_event_names_the_day_the_card_expired_not_the_night_the_job_ran(chain, member, programme):
    """The card's page said 'until 2026-06-02' and a payment that afternoon was refused as 'expired on 2026-06-02', but
    the history recorded by the 01:30 run read 'expired on 2026-06-03'."""
    shanghai = dt.timezone(dt.timedelta(hours=8))
    card = friend_card_issue(member=member, programme=programme, trigger="t", key="k1",
                             as_of=dt.datetime(2026, 3, 2, 15, tzinfo=shanghai))
    assert giftcards_expire(as_of=dt.datetime(2026, 6, 3, 1, 30, tzinfo=shanghai)) == 1
    event = GiftCardEvent.objects.get(card=card, kind=CardEventKind.EXPIRED)
    assert event.detail == "expired on 2026-06-02"


def test_wrong_code_is_refused(chain):
    with pytest.raises(WrongCode):
        giftcard_get_by_code(chain_id=chain.id, code="NOPE")


def test_voucher_is_single_use(chain, cleaning_campaign, friend, now):
    # given a whole-line voucher for a 300 yuan cleaning
    voucher = voucher_issue(campaign=cleaning_campaign, customer=friend, key="v1", as_of=now)
    assert voucher.value_fen == 30000 and voucher.account.balance == 30000
    # when
    voucher_redeem(voucher=voucher, used_fen=30000, key="r1", source="order:1", at=now)
    # then
    with pytest.raises(AlreadyUsed):
        voucher_redeem(voucher=voucher, used_fen=30000, key="r2", source="order:2", at=now)
    assert Voucher.objects.get().status == VoucherStatus.REDEEMED
    assert LedgerTransaction.objects.count() == 2
    assert ledger_check(chain_id=chain.id) == []


def test_the_daily_expire_command_marks_a_card_emptied_by_ledger_expiry_as_expired(chain, member, programme, now):
    # given a card past its expiry whose lots the ledger's own expiry job already voided
    from django.core.management import call_command

    from smileloop.ledger.services import lots_expire

    card = friend_card_issue(member=member, programme=programme, trigger="t", key="k1",
                             as_of=now - dt.timedelta(days=120))
    lots_expire(chain_id=chain.id)
    # when
    call_command("giftcards", "expire")
    # then
    card.refresh_from_db()
    assert card.status == CardStatus.EXPIRED
    assert system_account(chain_id=chain.id, kind=AccountKind.BREAKAGE).balance == programme.face_value_fen
    assert ledger_check(chain_id=chain.id) == []


def test_a_voucher_is_valid_all_of_the_day_it_is_valid_until(chain, cleaning_campaign):
    """Issued at 15:00 for 30 days, it showed "until 31 March" and was refused as expired at 16:00 on 31 March."""
    from smileloop.giftcards.services import voucher_check

    shanghai = dt.timezone(dt.timedelta(hours=8))
    cleaning_campaign.valid_days = 30
    cleaning_campaign.save(update_fields=["valid_days"])
    voucher = voucher_issue(campaign=cleaning_campaign, key="v1", as_of=dt.datetime(2026, 3, 1, 15, tzinfo=shanghai))
    voucher_check(voucher, dt.datetime(2026, 3, 31, 16, tzinfo=shanghai))
    with pytest.raises(Expired, match="expired on 2026-03-31"):
        voucher_check(voucher, dt.datetime(2026, 4, 1, 0, 0, tzinfo=shanghai))
