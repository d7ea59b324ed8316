"""A merge moves everything that names the merged record to the record kept, in every app: also the rows whose
foreign key has no reverse accessor (related_name="+"), as a checkout bill's settlement, a family wallet's use and a
keyword tag's hit counts have."""

import datetime as dt

from smileloop.checkout.selectors import settlement_get
from smileloop.checkout.services import checkout_pay, checkout_price, checkout_refund
from smileloop.customers.services import customer_merge
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.ledger.selectors import ledger_check
from smileloop.loyalty.services import wallet_topup
from smileloop.tagging.models import KeywordHit
from smileloop.tagging.tests.factories import TagFactory


def test_a_bill_paid_before_a_merge_is_the_survivors_and_can_still_be_refunded(chain, clinic_a, catalogue,
                                                                               admin_scope):
    # given a patient registered twice, who paid a cleaning from the wallet of the record that is merged away,
    # and whose keyword tag history is on that record too
    kept = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a)
    duplicate = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a)
    wallet_topup(customer=duplicate, amount_fen=50000, method="cash", key="topup-1")
    bill = checkout_price(customer=duplicate, clinic=clinic_a, lines=[{"item_code": "CL01"}],
                          wallet={"holder": duplicate, "amount_fen": 30000})
    settlement = checkout_pay(priced=bill, payments=[], key="pay-1")
    hit = KeywordHit.objects.create(customer=duplicate, tag=TagFactory(group__chain=chain), day=dt.date(2026, 11, 30),
                                    hits=2, counts={"种牙": 2})
    # when the duplicate is merged into the record kept
    customer_merge(scope=admin_scope, survivor=kept, merged=duplicate, reason="同一人")
    # then the bill, and the hit counts, are the survivor's: the bill is found and refunded as any other
    settlement.refresh_from_db()
    assert settlement.customer_id == kept.id
    assert settlement.order.customer_id == kept.id
    assert settlement_get(admin_scope, settlement.id) == settlement
    refund = checkout_refund(settlement=settlement, key="refund-1", reason="取消")
    assert refund.amount_fen == 30000
    hit.refresh_from_db()
    assert hit.customer_id == kept.id
    assert ledger_check(chain_id=chain.id) == []


def test_the_repair_migrations_move_tombstones_settlements_and_wallet_uses_to_the_survivor(chain, clinic_a,
                                                                                         catalogue):
    """Merges made before the fix left such rows on the tombstone: checkout.0003 and loyalty.0005 re-point them,
    along a chain of merges."""
    import importlib

    from django.apps import apps
    from django.utils import timezone

    from smileloop.customers.models import Customer
    from smileloop.ledger.models import LedgerTransaction
    from smileloop.loyalty.models import WalletShareUse

    first, second, survivor = (CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(3))
    wallet_topup(customer=first, amount_fen=50000, method="cash", key="topup-1")
    bill = checkout_price(customer=first, clinic=clinic_a, lines=[{"item_code": "CL01"}],
                          wallet={"holder": first, "amount_fen": 30000})
    settlement = checkout_pay(priced=bill, payments=[], key="pay-1")
    tx = LedgerTransaction.objects.create(chain=chain, idempotency_key="use-1", fingerprint="x", reason="spend",
                                          created_at=timezone.now())
    use = WalletShareUse.objects.create(chain=chain, holder=first, payer=second, transaction=tx, amount_fen=100,
                                        mode="standing", consented_at=timezone.now())
    # merged the old way: the tombstones keep them
    Customer.objects.filter(pk=first.pk).update(merged_into=second)
    Customer.objects.filter(pk=second.pk).update(merged_into=survivor)
    importlib.import_module("smileloop.checkout.migrations.0003_settlements_follow_merges").forwards(apps, None)
    importlib.import_module("smileloop.loyalty.migrations.0005_wallet_share_uses_follow_merges").forwards(apps, None)
    settlement.refresh_from_db()
    use.refresh_from_db()
    assert settlement.customer_id == survivor.id
    assert (use.holder_id, use.payer_id) == (survivor.id, survivor.id)


def test_the_repair_migration_moves_a_tombstones_keyword_hits_and_folds_a_shared_day(chain, clinic_a):
    """tagging.0003: hits left on a tombstone by a merge made before the fix move to the survivor, along a chain of
    merges; a day both records counted becomes one row with both counts (the unique (customer, tag, day))."""
    import importlib

    from django.apps import apps

    from smileloop.customers.models import Customer

    first, second, survivor = (CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(3))
    tag = TagFactory(group__chain=chain)
    day, other_day = dt.date(2026, 11, 30), dt.date(2026, 12, 1)
    own = KeywordHit.objects.create(customer=survivor, tag=tag, day=day, hits=1, counts={"种牙": 1},
                                    interaction_ids=[7])
    shared = KeywordHit.objects.create(customer=first, tag=tag, day=day, hits=2, counts={"种牙": 1, "种植": 1},
                                       interaction_ids=[3, 4])
    alone = KeywordHit.objects.create(customer=first, tag=tag, day=other_day, hits=1, counts={"种植": 1})
    # merged the old way: the tombstone keeps its hits
    Customer.objects.filter(pk=first.pk).update(merged_into=second)
    Customer.objects.filter(pk=second.pk).update(merged_into=survivor)
    importlib.import_module("smileloop.tagging.migrations.0003_keyword_hits_follow_merges").forwards(apps, None)
    own.refresh_from_db()
    alone.refresh_from_db()
    assert (own.hits, own.counts, own.interaction_ids) == (3, {"种牙": 2, "种植": 1}, [7, 3, 4])
    assert not KeywordHit.objects.filter(pk=shared.pk).exists()
    assert alone.customer_id == survivor.id
    assert not KeywordHit.objects.filter(customer__merged_into__isnull=False).exists()

