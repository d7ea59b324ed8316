import datetime as dt
from fractions import Fraction

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from smileloop.core.errors import Conflict, ValidationFailed
from smileloop.customers.services import customer_merge
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.ledger.enums import AccountKind, EntryReason
from smileloop.ledger.models import Account, Entry, LedgerTransaction, Lot
from smileloop.ledger.selectors import ledger_check
from smileloop.ledger.services import (
    InsufficientBalance,
    LotTerms,
    Posting,
    PostRequest,
    account_for,
    accounts_for,
    available_balance,
    available_balances,
    integrity_constraint,
    ledger_post,
    ledger_post_many,
    ledger_reverse,
    ledger_transfer,
    lot_heirs,
    lots_expire,
    system_account,
)


@pytest.fixture
def alice(chain, clinic_a):
    return CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a)


def earn(chain, customer, amount, key, *, expires_at=None, available_at=None):
    points = account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=customer)
    issued = system_account(chain_id=chain.id, kind=AccountKind.POINTS_ISSUED)
    return ledger_post(chain_id=chain.id, key=key, reason=EntryReason.EARN, postings=[
        Posting(points, amount, terms=LotTerms(expires_at=expires_at, available_at=available_at)),
        Posting(issued, -amount)])


def spend(chain, customer, amount, key):
    points = account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=customer)
    redeemed = system_account(chain_id=chain.id, kind=AccountKind.POINTS_REDEEMED)
    return ledger_post(chain_id=chain.id, key=key, reason=EntryReason.REDEEM,
                       postings=[Posting(points, -amount), Posting(redeemed, amount)])


def balance(chain, customer, kind=AccountKind.POINTS):
    return account_for(chain_id=chain.id, kind=kind, customer=customer).balance


def test_posting_is_idempotent_on_its_key(chain, alice):
    # given
    first = earn(chain, alice, 500, "order:1:earn")
    # when
    again = earn(chain, alice, 500, "order:1:earn")
    # then
    assert again.id == first.id
    assert balance(chain, alice) == 500
    assert LedgerTransaction.objects.count() == 1 and Entry.objects.count() == 2


def test_same_key_with_different_amount_is_refused_and_changes_nothing(chain, alice):
    earn(chain, alice, 500, "order:1:earn")
    with pytest.raises(Conflict):
        earn(chain, alice, 600, "order:1:earn")
    assert balance(chain, alice) == 500


def test_unbalanced_or_mixed_unit_postings_are_refused(chain, alice):
    points = account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=alice)
    cash = system_account(chain_id=chain.id, kind=AccountKind.CASH_IN)
    issued = system_account(chain_id=chain.id, kind=AccountKind.POINTS_ISSUED)
    with pytest.raises(ValidationFailed):
        ledger_post(chain_id=chain.id, key="k1", reason="earn", postings=[Posting(points, 10), Posting(issued, -9)])
    with pytest.raises(ValidationFailed):
        ledger_post(chain_id=chain.id, key="k2", reason="earn", postings=[Posting(points, 10), Posting(cash, -10)])
    assert LedgerTransaction.objects.count() == 0


def test_overdraw_is_refused_and_nothing_changes(chain, alice):
    earn(chain, alice, 100, "e1")
    with pytest.raises(InsufficientBalance):
        spend(chain, alice, 101, "s1")
    assert balance(chain, alice) == 100
    assert Lot.objects.get().remaining == 100
    assert not LedgerTransaction.objects.filter(idempotency_key="s1").exists()


def test_oldest_expiring_lot_is_spent_first(chain, alice):
    now = timezone.now()
    late = earn(chain, alice, 100, "late", expires_at=now + dt.timedelta(days=300))
    soon = earn(chain, alice, 100, "soon", expires_at=now + dt.timedelta(days=30))
    spend(chain, alice, 150, "s")
    remaining = {lot.entries.first().transaction_id: lot.remaining for lot in Lot.objects.all()}
    assert remaining == {soon.id: 0, late.id: 50}


def test_pending_points_cannot_be_spent_until_available(chain, alice):
    now = timezone.now()
    earn(chain, alice, 100, "pending", available_at=now + dt.timedelta(days=7))
    points = account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=alice)
    assert points.balance == 100 and available_balance(points) == 0
    with pytest.raises(InsufficientBalance):
        spend(chain, alice, 1, "s")
    assert available_balance(points, at=now + dt.timedelta(days=8)) == 100


def test_expiry_voids_only_expired_lots_through_a_ledger_entry_once(chain, alice):
    now = timezone.now()
    earn(chain, alice, 100, "old", expires_at=now - dt.timedelta(days=1))
    earn(chain, alice, 70, "new", expires_at=now + dt.timedelta(days=100))
    assert lots_expire(chain_id=chain.id, as_of=now) == 1
    assert lots_expire(chain_id=chain.id, as_of=now) == 0
    assert balance(chain, alice) == 70
    assert system_account(chain_id=chain.id, kind=AccountKind.POINTS_EXPIRED).balance == 100
    assert ledger_check(chain_id=chain.id) == []


def test_the_expiry_entry_names_the_chain_local_day_of_the_run(chain, alice):
    """The nightly run at 01:10 in Shanghai is 17:10 UTC of the day before: its entry named the UTC date."""
    run = dt.datetime(2026, 12, 5, 1, 10, tzinfo=dt.timezone(dt.timedelta(hours=8))).astimezone(dt.UTC)
    earn(chain, alice, 100, "old", expires_at=run - dt.timedelta(hours=2))
    assert lots_expire(chain_id=chain.id, as_of=run) == 1
    tx = LedgerTransaction.objects.get(reason=EntryReason.EXPIRE)
    assert tx.source == "expiry:2026-12-05"


def test_partial_reversal_restores_spent_lots_proportionally_and_balances(chain, alice):
    earn(chain, alice, 1000, "e")
    used = spend(chain, alice, 333, "use")
    ledger_reverse(original=used, key="use:refund:1", upto=Fraction(1, 3))
    assert balance(chain, alice) == 1000 - 333 + 111
    ledger_reverse(original=used, key="use:refund:2", upto=Fraction(1))
    assert balance(chain, alice) == 1000
    with pytest.raises(ValidationFailed):
        ledger_reverse(original=used, key="use:refund:3", upto=Fraction(1, 3))
    assert ledger_check(chain_id=chain.id) == []


def test_a_reversal_sent_again_returns_the_first_and_its_key_for_another_reversal_is_a_conflict(chain, alice):
    earn(chain, alice, 1000, "e")
    used = spend(chain, alice, 300, "use")
    other = spend(chain, alice, 100, "use2")
    first = ledger_reverse(original=used, key="use:refund:1", upto=Fraction(1, 3))
    # the same reversal again, also after a later one: the first transaction, nothing moved
    assert ledger_reverse(original=used, key="use:refund:1", upto=Fraction(1, 3)) == first
    ledger_reverse(original=used, key="use:refund:2", upto=Fraction(1))
    assert ledger_reverse(original=used, key="use:refund:1", upto=Fraction(1, 3)) == first
    assert balance(chain, alice) == 1000 - 100
    # the key names another share or another transaction: refused, nothing moved
    with pytest.raises(Conflict):
        ledger_reverse(original=used, key="use:refund:1", upto=Fraction(1, 2))
    with pytest.raises(Conflict):
        ledger_reverse(original=other, key="use:refund:1", upto=Fraction(1, 3))
    assert balance(chain, alice) == 1000 - 100
    assert LedgerTransaction.objects.filter(reverses__isnull=False).count() == 2
    assert ledger_check(chain_id=chain.id) == []


def test_clawback_takes_back_the_earned_lot_first(chain, alice):
    earned = earn(chain, alice, 200, "earn")
    ledger_reverse(original=earned, key="earn:clawback", reason=EntryReason.CLAWBACK)
    assert balance(chain, alice) == 0
    assert ledger_check(chain_id=chain.id) == []


def test_a_clawback_takes_a_spent_lots_share_from_the_same_transactions_pending_lot(chain, alice):
    """One earn, two lots (lines earning on different terms): the spendable one was spent, the pending one is whole.
    Half the earn is taken back: the pending lot pays for the spent lot's share, though nothing else may spend it yet;
    the holder's other points are left alone."""
    points = account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=alice)
    issued = system_account(chain_id=chain.id, kind=AccountKind.POINTS_ISSUED)
    later = timezone.now() + dt.timedelta(days=7)
    earned = ledger_post(chain_id=chain.id, key="order:1:earn", reason=EntryReason.EARN, postings=[
        Posting(points, 300, terms=LotTerms(available_at=later)), Posting(points, 600), Posting(issued, -900)])
    spend(chain, alice, 600, "use")
    earn(chain, alice, 50, "other", available_at=later)
    ledger_reverse(original=earned, key="order:1:clawback", upto=Fraction(1, 3), reason=EntryReason.CLAWBACK)
    pending = Lot.objects.get(entries__transaction=earned, entries__amount=300)
    assert (pending.remaining, balance(chain, alice)) == (0, 50)
    assert Lot.objects.get(entries__transaction__idempotency_key="other").remaining == 50
    with pytest.raises(InsufficientBalance):  # nothing left of the bill's lots, and nothing else spendable
        ledger_reverse(original=earned, key="order:1:clawback:2", upto=Fraction(1, 2), reason=EntryReason.CLAWBACK)
    assert ledger_check(chain_id=chain.id) == []


def test_transfer_keeps_each_lots_expiry(chain, alice, clinic_a):
    bob = CustomerFactory(chain=chain, name="王强", home_clinic=clinic_a)
    expiry = timezone.now() + dt.timedelta(days=90)
    wallet = account_for(chain_id=chain.id, kind=AccountKind.WALLET_PRINCIPAL, customer=alice)
    cash = system_account(chain_id=chain.id, kind=AccountKind.CASH_IN)
    ledger_post(chain_id=chain.id, key="topup", reason="topup",
                postings=[Posting(wallet, 50000, terms=LotTerms(expires_at=expiry)), Posting(cash, -50000)])
    target = account_for(chain_id=chain.id, kind=AccountKind.WALLET_PRINCIPAL, customer=bob)
    ledger_transfer(from_account=wallet, to_account=target, amount=20000, key="gift")
    target.refresh_from_db()
    assert target.balance == 20000
    assert list(target.lots.values_list("remaining", "expires_at")) == [(20000, expiry)]
    assert ledger_check(chain_id=chain.id) == []


def test_merging_customers_merges_their_accounts(chain, alice, clinic_a, director_scope):
    twin = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a)
    earn(chain, alice, 100, "a")
    earn(chain, twin, 40, "b", expires_at=timezone.now() + dt.timedelta(days=5))
    customer_merge(scope=director_scope, survivor=alice, merged=twin, reason="same person")
    assert balance(chain, alice) == 140
    assert Account.objects.filter(customer=twin, closed_at__isnull=True).count() == 0
    assert ledger_check(chain_id=chain.id) == []


def test_a_merge_names_the_lot_each_moved_lot_carries_on_and_a_reversal_takes_from_it(
        chain, alice, clinic_a, director_scope):
    # given a twin with a pending lot of 40 (its bill's) and a spendable one of 10, merged into alice (100 spendable)
    twin = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a)
    earn(chain, alice, 100, "a")
    bill = earn(chain, twin, 40, "b", available_at=timezone.now() + dt.timedelta(days=7))
    earn(chain, twin, 10, "c")
    customer_merge(scope=director_scope, survivor=alice, merged=twin, reason="same person")
    pending = bill.entries.get(amount=40).lot
    heir = Lot.objects.get(moved_from=pending)
    assert (heir.account.customer_id, heir.remaining, heir.available_at) == (alice.id, 40, pending.available_at)
    assert lot_heirs([pending.id]) == {pending.id: heir.id}
    # when the bill's points are clawed back, then they come out of that lot, not alice's spendable points
    ledger_reverse(original=bill, key="claw", reason=EntryReason.CLAWBACK)
    heir.refresh_from_db()
    account = account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=alice)
    assert heir.remaining == 0 and (account.balance, available_balance(account)) == (110, 110)
    assert ledger_check(chain_id=chain.id) == []


def test_the_migration_links_the_lots_earlier_merges_moved(chain, alice, clinic_a, director_scope):
    import importlib

    from django.apps import apps
    # given a merge of two lots made before lots named the lot they carry on
    twin = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a)
    earn(chain, alice, 100, "a")
    first, second = earn(chain, twin, 40, "b"), earn(chain, twin, 15, "c")
    customer_merge(scope=director_scope, survivor=alice, merged=twin, reason="same person")
    moved = dict(Lot.objects.filter(moved_from__isnull=False).values_list("moved_from_id", "id"))
    assert len(moved) == 2
    Lot.objects.update(moved_from=None)
    # when the migration's backfill runs, then each new lot names its old one again
    importlib.import_module("smileloop.ledger.migrations.0003_lot_moved_from").moved_lots_link(apps, None)
    assert dict(Lot.objects.filter(moved_from__isnull=False).values_list("moved_from_id", "id")) == moved
    assert {first.entries.get(amount=40).lot_id, second.entries.get(amount=15).lot_id} == set(moved)


def test_ledger_check_reports_a_tampered_balance(chain, alice):
    earn(chain, alice, 100, "e")
    Account.objects.filter(customer=alice).update(balance=90)
    kinds = {p.kind for p in ledger_check(chain_id=chain.id)}
    assert kinds == {"balance_vs_entries", "balance_vs_lots", "unit_total_not_zero"}


def test_database_refuses_a_negative_holder_balance(chain, alice):
    from django.db import IntegrityError, transaction

    account = account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=alice)
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(pk=account.pk).update(balance=-1)


# --- batches (ledger_post_many) --------------------------------------------------------------------------


class NotEnoughStars(InsufficientBalance):
    code = "not_enough_stars"


def redeem_request(chain, customer, amount, key, **kw):
    points = account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=customer)
    redeemed = system_account(chain_id=chain.id, kind=AccountKind.POINTS_REDEEMED)
    return PostRequest(chain_id=chain.id, key=key, reason=EntryReason.REDEEM,
                       postings=[Posting(points, -amount), Posting(redeemed, amount)], **kw)


def earn_request(chain, customer, amount, key):
    points = account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=customer)
    issued = system_account(chain_id=chain.id, kind=AccountKind.POINTS_ISSUED)
    return PostRequest(chain_id=chain.id, key=key, reason=EntryReason.EARN,
                       postings=[Posting(points, amount), Posting(issued, -amount)])


def test_a_batch_posts_each_movement_as_its_own_transaction_in_order(chain, alice):
    # given
    earn(chain, alice, 100, "e1")
    # when: spend 80, earn 50, spend 60 — the second spend needs the points the earn credited
    first, second, third = ledger_post_many([redeem_request(chain, alice, 80, "b:1"), earn_request(chain, alice, 50, "b:2"),
                                             redeem_request(chain, alice, 60, "b:3")])
    # then
    assert [t.idempotency_key for t in (first, second, third)] == ["b:1", "b:2", "b:3"]
    assert sorted(Entry.objects.filter(transaction=third).values_list("amount", flat=True)) == [-40, -20, 60]
    assert balance(chain, alice) == 10
    assert ledger_check(chain_id=chain.id) == []


def test_a_batch_is_all_or_nothing_and_refuses_with_the_requests_own_error(chain, alice):
    # given
    earn(chain, alice, 100, "e1")
    count = LedgerTransaction.objects.count()
    # when / then: the second movement lacks funds, so the first is not written either
    with pytest.raises(NotEnoughStars) as exc:
        ledger_post_many([earn_request(chain, alice, 5, "b:1"),
                          redeem_request(chain, alice, 500, "b:2", refusal=NotEnoughStars, refusal_field="stars")])
    assert exc.value.field == "stars"
    assert LedgerTransaction.objects.count() == count and balance(chain, alice) == 100
    assert Lot.objects.get().remaining == 100


def test_a_batch_replay_returns_the_first_transactions_and_changes_nothing(chain, alice):
    earn(chain, alice, 100, "e1")
    requests = [redeem_request(chain, alice, 30, "b:1"), earn_request(chain, alice, 5, "b:2")]
    first = ledger_post_many(requests)
    again = ledger_post_many([redeem_request(chain, alice, 30, "b:1"), earn_request(chain, alice, 5, "b:2")])
    assert [t.id for t in again] == [t.id for t in first]
    assert balance(chain, alice) == 75 and LedgerTransaction.objects.count() == 3
    with pytest.raises(Conflict):
        ledger_post_many([redeem_request(chain, alice, 31, "b:1")])


def test_a_key_twice_in_one_batch_is_refused(chain, alice):
    earn(chain, alice, 100, "e1")
    with pytest.raises(ValidationFailed):
        ledger_post_many([redeem_request(chain, alice, 1, "b:1"), redeem_request(chain, alice, 2, "b:1")])
    assert LedgerTransaction.objects.count() == 1


def test_posting_leaves_the_accounts_passed_with_their_new_balances(chain, alice):
    # given
    points = account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=alice)
    issued = system_account(chain_id=chain.id, kind=AccountKind.POINTS_ISSUED)
    # when
    ledger_post(chain_id=chain.id, key="e1", reason=EntryReason.EARN, postings=[Posting(points, 70), Posting(issued, -70)])
    # then
    assert (points.balance, issued.balance) == (70, -70)
    assert Account.objects.get(pk=points.pk).balance == 70


def test_accounts_and_available_balances_of_several_kinds_come_in_one_query(chain, alice,
                                                                              django_assert_num_queries):
    earn(chain, alice, 100, "e1")
    earn(chain, alice, 50, "e2", available_at=timezone.now() + dt.timedelta(days=3))
    with django_assert_num_queries(1):
        accounts = accounts_for(chain_id=chain.id, customer=alice, kinds=[AccountKind.POINTS],
                                system_kinds=[AccountKind.POINTS_ISSUED])
    assert accounts[AccountKind.POINTS].balance == 150 and accounts[AccountKind.POINTS_ISSUED].balance == -150
    with django_assert_num_queries(1):
        available = available_balances([accounts[AccountKind.POINTS]])
    assert available == {accounts[AccountKind.POINTS].id: 100}
    wallet = accounts_for(chain_id=chain.id, customer=alice, kinds=[AccountKind.WALLET_PRINCIPAL])
    assert wallet[AccountKind.WALLET_PRINCIPAL].balance == 0  # created on first use, as account_for does


def _violation(write) -> IntegrityError:
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        write()
    return caught.value


def test_the_constraint_an_integrity_error_names_is_read_on_either_database(chain, alice):
    # given: one real violation of each kind the ledger tells apart
    tx = earn(chain, alice, 500, "k1")
    points = account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=alice)
    negative = _violation(lambda: Account.objects.filter(pk=points.pk).update(balance=-1))
    overdrawn_lot = _violation(lambda: Lot.objects.filter(account=points).update(remaining=-5))
    same_key = _violation(lambda: LedgerTransaction.objects.create(chain=chain, idempotency_key="k1", fingerprint="x",
                                                                   reason=EntryReason.EARN,
                                                                   created_at=timezone.now()))
    zero = _violation(lambda: Entry.objects.create(transaction=tx, account=points, amount=0))
    other = _violation(lambda: Account.objects.create(chain=chain, kind=AccountKind.POINTS, unit=points.unit,
                                                      customer=alice))
    # then
    assert [integrity_constraint(e) for e in (negative, overdrawn_lot, same_key, zero)] == [
        "ledger_holder_balance_non_negative", "ledger_lot_remaining_valid", "ledger_unique_key",
        "ledger_entry_non_zero"]
    # PostgreSQL names any constraint; SQLite writes only a UNIQUE's columns, which are not the ledger's key
    assert integrity_constraint(other) in (None, "ledger_one_open_account_per_customer_kind")


class NotEnoughTestPoints(InsufficientBalance):
    code = "not_enough_test_points"


def test_a_balance_the_database_refuses_is_the_requests_own_refusal_and_field(chain, alice):
    # given: the account's balance says less than its lots hold (as a concurrent writer's would, read too early)
    earn(chain, alice, 500, "k1")
    points = account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=alice)
    Account.objects.filter(pk=points.pk).update(balance=100)
    redeemed = system_account(chain_id=chain.id, kind=AccountKind.POINTS_REDEEMED)
    request = PostRequest(chain_id=chain.id, key="k2", reason=EntryReason.REDEEM,
                          postings=[Posting(points, -300), Posting(redeemed, 300)],
                          refusal=NotEnoughTestPoints, refusal_field="points")
    # when
    with pytest.raises(NotEnoughTestPoints) as caught:
        ledger_post_many([request])
    # then: the caller's refusal, on the caller's field, and nothing written
    assert caught.value.field == "points"
    assert not LedgerTransaction.objects.filter(idempotency_key="k2").exists()
    assert Lot.objects.get(account=points).remaining == 500
