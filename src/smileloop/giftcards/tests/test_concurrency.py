"""Gift cards and vouchers under concurrent writers on PostgreSQL (threads behind a barrier, each on its own
connection): one issue sent several times at once is issued once and every copy is answered with it (an issue key
reused for another one is refused); the chain's two expiry jobs running at once void each lot once. SQLite serialises
writers, so the concurrent ones run on PostgreSQL only."""

import datetime as dt

import pytest
from django.utils import timezone

from smileloop.core.errors import Conflict
from smileloop.core.testing import writers_run
from smileloop.giftcards.enums import CardStatus
from smileloop.giftcards.models import GiftCard, Voucher
from smileloop.giftcards.services import friend_card_issue, giftcard_spend, giftcards_expire, voucher_issue
from smileloop.ledger.enums import AccountKind, EntryReason
from smileloop.ledger.models import Account, LedgerTransaction
from smileloop.ledger.services import InsufficientBalance, lots_expire
from smileloop.ledger.tests.concurrency import books_balance, postgres_only

pytestmark = pytest.mark.django_db(transaction=True)




def test_one_voucher_issue_sent_four_times_at_once_issues_one_voucher(chain, member, cleaning_campaign):
    postgres_only()

    def writer(i):
        return [voucher_issue(campaign=cleaning_campaign, customer=member, key="v-1").pk]

    outcomes, errors = writers_run(writer, 4)
    # then one voucher, one credit, and every copy answered with it (no IntegrityError)
    assert errors == []
    voucher = Voucher.objects.get()
    assert outcomes == [voucher.pk] * 4
    assert LedgerTransaction.objects.filter(reason=EntryReason.ISSUE).count() == 1
    assert Account.objects.filter(kind=AccountKind.VOUCHER).count() == 1  # no empty account of a lost twin
    books_balance(chain)


def test_one_friend_card_issue_sent_four_times_at_once_answers_the_card_not_the_limit(chain, member, programme):
    postgres_only()
    # given a programme of one card per member and period
    programme.limit_per_period = 1
    programme.save(update_fields=["limit_per_period"])

    def writer(i):
        return [friend_card_issue(member=member, programme=programme, trigger="plan half done", key="card-1").pk]

    outcomes, errors = writers_run(writer, 4)
    # then one card, and every copy of the request is answered with it (its own card does not count against it)
    assert errors == []
    card = GiftCard.objects.get()
    assert outcomes == [card.pk] * 4
    assert Account.objects.filter(kind=AccountKind.GIFT_CARD).count() == 1
    books_balance(chain)


def test_eight_spends_of_one_card_at_once_never_overdraw_it(chain, member, programme):
    postgres_only()
    card = friend_card_issue(member=member, programme=programme, trigger="plan half done", key="card-1")

    def writer(i):
        try:
            giftcard_spend(card=card, amount_fen=25_000, key=f"spend-{i}", source=f"order:{i}")
            return ["ok"]
        except InsufficientBalance:
            return ["refused"]

    outcomes, errors = writers_run(writer, 8)
    # then two of 250.00 fit on 600.00
    assert errors == []
    assert sorted(outcomes) == ["ok"] * 2 + ["refused"] * 6
    card.account.refresh_from_db()
    assert card.account.balance == 10_000
    books_balance(chain)


def test_the_gift_card_expiry_and_the_ledger_expiry_running_at_once_void_each_card_once(chain, member, programme):
    postgres_only()
    # given eight cards issued four months ago, past their three months
    then = timezone.now() - dt.timedelta(days=120)
    programme.limit_per_period = 100
    programme.save(update_fields=["limit_per_period"])
    cards = [friend_card_issue(member=member, programme=programme, trigger="t", key=f"card-{n}", as_of=then)
             for n in range(8)]
    now = timezone.now()

    # when the gift-card job and the ledger's expiry job run at the same moment (both nightly jobs, by hand too)
    def writer(i):
        if i % 2:
            return [("ledger", lots_expire(chain_id=chain.id, as_of=now))]
        return [("giftcards", giftcards_expire(as_of=now))]

    outcomes, errors = writers_run(writer, 4)
    # then neither fails: each card's value is voided once (one expiry transaction each), every card is marked expired
    assert errors == [] and len(outcomes) == 4
    assert set(GiftCard.objects.values_list("status", flat=True)) == {CardStatus.EXPIRED}
    assert all(Account.objects.get(pk=c.account_id).balance == 0 for c in cards)
    assert LedgerTransaction.objects.filter(reason=EntryReason.EXPIRE).count() == 8
    books_balance(chain)


def test_an_issue_key_reused_for_another_voucher_or_card_is_refused_and_nothing_is_issued(
        chain, member, friend, programme, cleaning_campaign):
    # given a voucher and a card issued under their keys
    voucher = voucher_issue(campaign=cleaning_campaign, customer=member, key="v-1")
    card = friend_card_issue(member=member, programme=programme, trigger="t", key="card-1")
    count = LedgerTransaction.objects.count()
    # when the keys are sent again for another customer
    with pytest.raises(Conflict) as voucher_refusal:
        voucher_issue(campaign=cleaning_campaign, customer=friend, key="v-1")
    with pytest.raises(Conflict) as card_refusal:
        friend_card_issue(member=friend, programme=programme, trigger="t", key="card-1")
    # then both are refused, naming the key, and nothing is issued; the same requests still replay
    assert {voucher_refusal.value.code, card_refusal.value.code} == {"idempotency_key_reused"}
    assert voucher_refusal.value.field == card_refusal.value.field == "key"
    assert (Voucher.objects.count(), GiftCard.objects.count(), LedgerTransaction.objects.count()) == (1, 1, count)
    assert voucher_issue(campaign=cleaning_campaign, customer=member, key="v-1").pk == voucher.pk
    assert friend_card_issue(member=member, programme=programme, trigger="t", key="card-1").pk == card.pk
