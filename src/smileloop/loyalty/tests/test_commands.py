import datetime as dt
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from smileloop.ledger.selectors import ledger_check
from smileloop.loyalty.enums import PurchaseStatus
from smileloop.loyalty.models import PackagePurchase
from smileloop.loyalty.selectors import points_summary
from smileloop.loyalty.services import package_sell, points_award


def test_loyalty_expire_expires_old_points_and_ended_package_periods(chain, wang, rules, family_package, now):
    # given: referral points earned 13 months ago, and a package sold 13 months ago
    long_ago = now - dt.timedelta(days=400)
    points_award(customer=wang, rule_code="referral", key="r1", at=long_ago)
    package_sell(package=family_package, holder=wang, covered=[wang], key="sale-1", at=long_ago)
    out = StringIO()
    # when
    call_command("loyalty", "expire", stdout=out)
    # then
    assert out.getvalue().startswith("expired 1 lot(s) and 1 package period(s)")
    assert points_summary(wang).balance == 0
    assert PackagePurchase.objects.get().status == PurchaseStatus.EXPIRED
    assert ledger_check(chain_id=chain.id) == []


@pytest.mark.parametrize(("value", "message"), [
    ("0", "argument --chain: must be a chain id"),  # used to mean every chain
    ("-5", "argument --chain: must be a chain id"),
    ("99999999999999999999", "argument --chain: must be a chain id"),  # was a traceback
    ("9999", "--chain: no chain 9999"),  # was "expired 0 lot(s)"
])
def test_loyalty_expire_refuses_a_bad_or_unknown_chain_and_expires_nothing(chain, wang, rules, now, value,
                                                                           message):
    # given: points that are past their expiry
    points_award(customer=wang, rule_code="referral", key="r1", at=now - dt.timedelta(days=400))
    before = points_summary(wang).balance
    # when / then
    with pytest.raises(CommandError, match=message):
        call_command("loyalty", "expire", "--chain", value, stdout=StringIO())
    assert points_summary(wang).balance == before > 0
