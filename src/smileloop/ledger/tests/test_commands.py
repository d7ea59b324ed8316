"""`smileloop ledger check|expire`: a bad or unknown --chain is refused by name and expires nothing."""

import datetime as dt
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from smileloop.customers.tests.factories import CustomerFactory
from smileloop.ledger.enums import AccountKind, EntryReason
from smileloop.ledger.models import Account, Lot
from smileloop.ledger.services import LotTerms, Posting, account_for, ledger_post, system_account


@pytest.fixture
def expired_lot(chain, clinic_a):
    alice = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a)
    points = account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=alice)
    issued = system_account(chain_id=chain.id, kind=AccountKind.POINTS_ISSUED)
    ledger_post(chain_id=chain.id, key="earn-1", reason=EntryReason.EARN, postings=[
        Posting(points, 100, terms=LotTerms(expires_at=timezone.now() - dt.timedelta(days=1))),
        Posting(issued, -100)])
    return Lot.objects.get(account=points)


@pytest.mark.parametrize("value", ["0", "-1", "abc", "99999999999999999999", "9223372036854775808"])
@pytest.mark.parametrize("action", ["check", "expire"])
def test_a_chain_that_cannot_be_an_id_is_a_usage_error_naming_the_option(expired_lot, action, value):
    # when / then: "0" used to mean every chain, a huge number was a traceback
    with pytest.raises(CommandError, match="argument --chain: must be a chain id"):
        call_command("ledger", action, "--chain", value, stdout=StringIO())
    expired_lot.refresh_from_db()
    assert expired_lot.remaining == 100


@pytest.mark.parametrize("action", ["check", "expire"])
def test_an_unknown_chain_is_refused_rather_than_reported_ok(expired_lot, action):
    # when / then
    with pytest.raises(CommandError, match=r"^--chain: no chain 9999$"):
        call_command("ledger", action, "--chain", "9999", stdout=StringIO())
    expired_lot.refresh_from_db()
    assert expired_lot.remaining == 100


def test_expire_for_one_chain_expires_its_lots_once_and_the_check_stays_ok(chain, expired_lot):
    # when
    out = StringIO()
    call_command("ledger", "expire", "--chain", str(chain.id), stdout=out)
    call_command("ledger", "expire", "--chain", str(chain.id), stdout=out)
    call_command("ledger", "check", "--chain", str(chain.id), stdout=out)
    # then
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("expired 1 lot(s)") and lines[1].startswith("expired 0 lot(s)")
    assert lines[2].startswith("ledger check: OK")
    expired_lot.refresh_from_db()
    assert expired_lot.remaining == 0


def test_check_names_each_difference_on_stderr_and_fails(chain, expired_lot):
    # given: a tampered balance
    Account.objects.filter(pk=expired_lot.account_id).update(balance=90)
    err = StringIO()
    # when / then
    with pytest.raises(CommandError, match=r"^ledger check found 3 difference\(s\)$"):
        call_command("ledger", "check", "--chain", str(chain.id), stdout=StringIO(), stderr=err)
    assert {line.split(":")[0] for line in err.getvalue().splitlines()} == {
        "balance_vs_entries", "balance_vs_lots", "unit_total_not_zero"}
