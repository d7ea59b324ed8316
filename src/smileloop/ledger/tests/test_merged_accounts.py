"""Nothing is written to a merged record's accounts once the merge closed them: a credit found open before the merge
and posted after it, or a new account for the merged record, would hold value out of everyone's reach (the merge moved
the record's balances to the survivor)."""

import pytest

from smileloop.customers.services import customer_merge
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.ledger.enums import AccountKind, EntryReason
from smileloop.ledger.models import Account, LedgerTransaction
from smileloop.ledger.selectors import ledger_check
from smileloop.ledger.services import AccountClosed, Posting, account_for, ledger_post, system_account


def _award(chain, account, key, points=50):
    issued = system_account(chain_id=chain.id, kind=AccountKind.POINTS_ISSUED)
    return ledger_post(chain_id=chain.id, key=key, reason=EntryReason.EARN,
                       postings=[Posting(account, points), Posting(issued, -points)])


@pytest.fixture
def merged_pair(chain, clinic_a, admin_scope):
    """A duplicate with 1,000 points, its account read before the merge, merged into a record with 1,000 points."""
    duplicate = CustomerFactory(chain=chain, home_clinic=clinic_a)
    survivor = CustomerFactory(chain=chain, home_clinic=clinic_a)
    stale = account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=duplicate)
    _award(chain, stale, "d", 1000)
    _award(chain, account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=survivor), "s", 1000)
    customer_merge(scope=admin_scope, survivor=survivor, merged=duplicate, reason="duplicate")
    return duplicate, survivor, stale


def test_a_credit_to_an_account_a_merge_closed_meanwhile_is_refused_and_nothing_is_written(chain, merged_pair):
    # given the duplicate's points account as read before the merge (open then)
    duplicate, survivor, stale = merged_pair
    assert stale.closed_at is None
    count = LedgerTransaction.objects.count()
    # when points are posted to it after the merge
    with pytest.raises(AccountClosed) as exc:
        _award(chain, stale, "late")
    # then they are refused, naming the customer, and nothing is written
    assert exc.value.field == "customer"
    assert LedgerTransaction.objects.count() == count
    assert Account.objects.get(pk=stale.pk).balance == 0
    assert account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=survivor).balance == 2000


def test_a_replay_of_a_credit_posted_before_the_merge_is_still_answered(chain, merged_pair):
    duplicate, survivor, stale = merged_pair
    # when the duplicate's first award is sent again after the merge
    first = LedgerTransaction.objects.get(idempotency_key="d")
    # then it is answered with the first transaction, nothing written
    assert _award(chain, stale, "d", 1000).pk == first.pk


def test_no_new_account_is_opened_for_a_merged_record(chain, merged_pair):
    duplicate, survivor, stale = merged_pair
    accounts = Account.objects.count()
    # when a posting asks for the merged record's wallet (it never had one) or its points (closed by the merge)
    for kind in (AccountKind.WALLET_PRINCIPAL, AccountKind.POINTS):
        with pytest.raises(AccountClosed) as exc:
            account_for(chain_id=chain.id, kind=kind, customer=duplicate)
        # then it is refused, naming the customer, and no account is opened
        assert exc.value.field == "customer" and exc.value.code == "account_closed"
    assert Account.objects.count() == accounts
    assert ledger_check(chain_id=chain.id) == []


def test_an_account_opened_while_the_merge_committed_takes_no_credit(chain, merged_pair):
    # given: an open account of the merged record, as one opened at the instant the merge committed would be (it
    # passed the merged check before the merge's commit, then inserted after the merge had closed the others)
    duplicate, survivor, stale = merged_pair
    late = Account.objects.create(chain=chain, kind=AccountKind.POINTS, unit=stale.unit, customer=duplicate)
    count = LedgerTransaction.objects.count()
    # when value is posted to it
    with pytest.raises(AccountClosed) as exc:
        _award(chain, late, "late-open")
    # then it is refused like a closed account's, and nothing is written
    assert exc.value.code == "account_closed"
    assert LedgerTransaction.objects.count() == count
    assert Account.objects.get(pk=late.pk).balance == 0
