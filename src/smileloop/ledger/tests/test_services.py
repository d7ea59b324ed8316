import datetime as dt
from fractions import Fraction

import pytest
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
    account_for,
    available_balance,
    ledger_post,
    ledger_reverse,
    ledger_transfer,
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


def test_clawback_takes_back_the_earned_lot_first(chain, alice):
    earned = earn(chain, alice, 200, "earn")
    ledger_reverse(original=earned, key="earn:clawback", reason=EntryReason.CLAWBACK)
    assert balance(chain, alice) == 0
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
