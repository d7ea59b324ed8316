import datetime as dt
from io import StringIO

from django.core.management import call_command

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
