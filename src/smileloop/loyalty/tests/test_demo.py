import datetime as dt

from smileloop.ledger.models import LedgerTransaction
from smileloop.ledger.selectors import ledger_check
from smileloop.loyalty.models import (
    EarnRule,
    Gift,
    Package,
    PackagePurchase,
    RedeemSettings,
    Topup,
    TopupBonusRule,
)
from smileloop.loyalty.services import loyalty_demo_programme
from smileloop.loyalty.tests.factories import order_with


def test_the_demo_programme_creates_the_example_rules_and_history_once(chain, wang, spouse, child, catalogue, now):
    # given: a few paid bills in the last year
    for days in (20, 100, 390):
        order_with(wang, [(catalogue["CL01"], 30000), (catalogue["CL99"], 990)], ordered_at=now - dt.timedelta(days=days))
    wang.lifetime_spend_fen = 90_000
    wang.save(update_fields=["lifetime_spend_fen"])
    # when
    counts = loyalty_demo_programme(chain=chain, seed=1, as_of=now)
    again = loyalty_demo_programme(chain=chain, seed=1, as_of=now)
    # then
    assert counts["orders_earned"] == 3 and counts["topups"] == 1 and counts["packages_sold"] == 1
    assert again["lots_expired"] == 0
    assert EarnRule.objects.filter(chain=chain).count() == 6
    assert list(TopupBonusRule.objects.filter(chain=chain).values_list("min_topup_fen", "bonus_fen")) == [
        (500_000, 40_000), (1_000_000, 100_000)]
    assert RedeemSettings.objects.get(chain=chain).max_share_bp == 1000
    assert Gift.objects.filter(chain=chain).count() == 5
    assert Package.objects.get(chain=chain).entitlements.count() == 3
    assert Topup.objects.count() == 1 and PackagePurchase.objects.count() == 1
    assert LedgerTransaction.objects.filter(idempotency_key__startswith="order:").count() == 3
    assert ledger_check(chain_id=chain.id) == []
