"""Loyalty writes about a record while another desk merges it away (PostgreSQL).

Each write locks the customer's row first (customers_lock), so it waits for the merge, then goes on about the
tombstone. Those that post to the record's ledger accounts (a points award, a gift exchange, a top-up, a wallet
spend) are refused there (AccountClosed: nothing written; regression tests). A package sold without a payment
posts nothing: its purchase, covers and grants stayed on the tombstone, out of everyone's sight. It is now refused
(NotFound, as customer_get answers for a merged record)."""

import pytest

from smileloop.core.errors import DomainError, NotFound
from smileloop.core.testing import postgresql_only
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.customers.tests.test_qa_merge_across_apps_postgres import merge_while
from smileloop.ledger.models import Account, Entry
from smileloop.ledger.services import AccountClosed
from smileloop.loyalty.models import GiftExchange, PackagePurchase, Topup
from smileloop.loyalty.services.packages import package_sell
from smileloop.loyalty.services.points import gift_exchange, points_award
from smileloop.loyalty.services.wallet import wallet_spend, wallet_topup
from smileloop.loyalty.tests.factories import GiftFactory

pytestmark = [postgresql_only, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def survivor(chain, clinic_a):
    return CustomerFactory(chain=chain, home_clinic=clinic_a, name="王芳", mobile="+8613900000031")


def _refused_or_survivors(outcome):
    """Refused (the ledger's AccountClosed for a write that posts to the record's accounts, else NotFound), or done
    (on the survivor: the callers check that nothing stayed on the tombstone)."""
    assert (isinstance(outcome, (NotFound, AccountClosed)) or not isinstance(outcome, DomainError)), outcome


def _nothing_on_the_tombstone(merged):
    """No account left with the merged record (the merge moved or re-pointed them), so no movement of the race's."""
    assert not Entry.objects.filter(account__customer_id=merged.pk, transaction__idempotency_key__contains="race"
                                    ).exists()
    assert not Account.objects.filter(customer_id=merged.pk, closed_at__isnull=True).exists()


def test_points_awarded_while_the_record_is_merged_are_never_left_on_the_tombstone(wang, survivor, rules,
                                                                                   chain_admin):
    outcome = merge_while(survivor, wang, chain_admin, lambda stale: points_award(
        customer=stale, rule_code="referral", key="race-1"))
    _refused_or_survivors(outcome)
    _nothing_on_the_tombstone(wang)


def test_a_gift_exchanged_while_the_record_is_merged_is_never_left_on_the_tombstone(chain, wang, survivor, rules,
                                                                                    chain_admin):
    points_award(customer=wang, rule_code="referral", key="r1")
    toothbrush = GiftFactory(chain=chain, name="电动牙刷", points_price=400, stock=3)
    outcome = merge_while(survivor, wang, chain_admin, lambda stale: gift_exchange(
        customer=stale, gift=toothbrush, quantity=1, key="x-race"))
    _refused_or_survivors(outcome)
    assert not GiftExchange.objects.filter(customer_id=wang.pk).exists()
    _nothing_on_the_tombstone(wang)


def test_a_top_up_while_the_record_is_merged_is_never_left_on_the_tombstone(wang, survivor, chain_admin):
    outcome = merge_while(survivor, wang, chain_admin, lambda stale: wallet_topup(
        customer=stale, amount_fen=10000, method="cash", key="t-race"))
    _refused_or_survivors(outcome)
    assert not Topup.objects.filter(customer_id=wang.pk).exists()
    _nothing_on_the_tombstone(wang)


def test_a_wallet_spend_while_the_record_is_merged_is_never_left_on_the_tombstone(wang, survivor, chain_admin):
    wallet_topup(customer=wang, amount_fen=10000, method="cash", key="t1")
    outcome = merge_while(survivor, wang, chain_admin, lambda stale: wallet_spend(
        payer=stale, amount_fen=3000, key="s-race", source="order:1"))
    _refused_or_survivors(outcome)
    _nothing_on_the_tombstone(wang)


def test_a_package_sold_while_the_record_is_merged_is_never_left_on_the_tombstone(wang, survivor, family_package,
                                                                                  chain_admin):
    outcome = merge_while(survivor, wang, chain_admin, lambda stale: package_sell(
        package=family_package, holder=stale, covered=[stale], key="sale-race"))
    assert isinstance(outcome, NotFound), outcome
    assert not PackagePurchase.objects.filter(holder_id=wang.pk).exists()
