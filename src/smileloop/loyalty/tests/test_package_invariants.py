"""Generated sequences of redemptions, reversals, replays, expiry runs and a cancellation of a package sold for two
people, checked after every step against a reference model: remaining = quantity − uses + reversals stays within
0…quantity for every grant; the cancellation refunds what its rule gives for the units not used (never more than was
paid), back to the methods that paid; a cancelled or ended package cannot be used; a refused operation and a replay
change nothing."""

import datetime as dt
from dataclasses import dataclass, field

import pytest
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from smileloop.core.errors import Conflict, ValidationFailed
from smileloop.loyalty.enums import PurchaseStatus, RefundRule, UseKind
from smileloop.loyalty.errors import AlreadyReversed, NoEntitlementLeft, NotCovered, PackageNotActive
from smileloop.loyalty.models import EntitlementGrant, EntitlementUse, PackageCancellation, PackagePurchase
from smileloop.loyalty.services import (
    entitlement_redeem,
    entitlement_use_reverse,
    entitlements_expire,
    package_cancel,
    package_sell,
)
from smileloop.loyalty.tests.factories import PackageEntitlementFactory, PackageFactory
from smileloop.visits.models import Order, Refund
from smileloop.visits.tests.factories import ServiceItemFactory

pytestmark = pytest.mark.django_db

PRICE = 298_000
PAID = {"wechat_pay": 200_000, "cash": 98_000}
QUANTITY = {"cleaning": 2, "exam": 1}
LIST = {"CL01": 30_000, "EX01": 5_000}
CATEGORY = {"CL01": "cleaning", "EX01": "exam"}

REDEEM = st.tuples(st.just("redeem"), st.integers(0, 1), st.sampled_from(["CL01", "EX01"]), st.integers(0, 7))
REVERSE = st.tuples(st.just("reverse"), st.integers(0, 7), st.integers(0, 7))
OPS = st.lists(st.one_of(  # redemptions and reversals weigh more: a cancellation or a year's end stops the story
    REDEEM, REDEEM, REDEEM, REVERSE, REVERSE,
    st.tuples(st.just("cancel"), st.sampled_from([RefundRule.LIST_PRICE, RefundRule.PRO_RATA]),
              st.sampled_from([None, 0, 1, "all", "over", -1]), st.integers(0, 1)),
    st.tuples(st.just("advance"), st.sampled_from([1, 30, 200])),
    st.tuples(st.just("expire")),
), min_size=1, max_size=14)


@dataclass
class Model:
    status: str = PurchaseStatus.ACTIVE
    uses: dict = field(default_factory=dict)       # key → (person index, item code, use)
    reversed: dict = field(default_factory=dict)   # use id → reversal key
    cancel_key: str | None = None
    cancel_args: tuple | None = None
    refund: int = 0

    def left(self, person: int, category: str) -> int:
        used = sum(1 for p, code, use in self.uses.values() if p == person and CATEGORY[code] == category
                   and use.pk not in self.reversed)
        return QUANTITY[category] - used


def _state(purchase):
    purchase.refresh_from_db()
    return (purchase.status, EntitlementUse.objects.count(), PackageCancellation.objects.count(),
            Refund.objects.count(), Order.objects.get(pk=purchase.order_id).refunded_fen)


@settings(max_examples=50, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])
@given(ops=OPS)
@example(ops=[("redeem", 0, "EX01", 0), ("redeem", 0, "EX01", 1), ("reverse", 0, 0), ("redeem", 0, "EX01", 2),
              ("reverse", 0, 1), ("redeem", 1, "CL01", 3), ("cancel", RefundRule.PRO_RATA, None, 0),
              ("redeem", 0, "CL01", 4), ("reverse", 3, 2), ("cancel", RefundRule.PRO_RATA, None, 0)])
@example(ops=[("redeem", 0, "CL01", 0), ("redeem", 1, "CL01", 1), ("cancel", RefundRule.LIST_PRICE, "over", 0),
              ("cancel", RefundRule.LIST_PRICE, 1, 0), ("cancel", RefundRule.LIST_PRICE, 1, 1)])
@example(ops=[("advance", 200), ("advance", 200), ("redeem", 0, "CL01", 0), ("cancel", RefundRule.LIST_PRICE, None, 0),
              ("expire",), ("redeem", 0, "CL01", 1)])
def test_package_entitlements_and_its_cancellation_follow_the_reference_model(chain, clinic_a, wang, spouse,
                                                                               catalogue, director_a, ops):
    with transaction.atomic():
        _run(chain, clinic_a, [wang, spouse], catalogue, director_a, ops)
        transaction.set_rollback(True)


def _run(chain, clinic_a, people, catalogue, director, ops):
    ServiceItemFactory(chain=chain, code="PK01", name="家庭口腔护理套餐", category="exam", list_price_fen=PRICE)
    package = PackageFactory(chain=chain, price_fen=PRICE, validity_months=12, item_code="PK01")
    PackageEntitlementFactory(package=package, label="洁牙", category="cleaning", quantity=QUANTITY["cleaning"])
    PackageEntitlementFactory(package=package, label="检查", category="exam", quantity=QUANTITY["exam"])
    t = timezone.now().replace(microsecond=0) - dt.timedelta(days=420)
    purchase = package_sell(package=package, holder=people[0], covered=people, key="sale", actor=director,
                            clinic=clinic_a, at=t, payments=[{"method": m, "amount_fen": a} for m, a in PAID.items()])
    again = package_sell(package=package, holder=people[0], covered=people, key="sale", actor=director,
                         clinic=clinic_a, at=t, payments=[{"method": m, "amount_fen": a} for m, a in PAID.items()])
    assert again.pk == purchase.pk and PackagePurchase.objects.filter(holder=people[0]).count() == 1
    model = Model()
    n = 0
    for op in ops:
        n += 1
        before = _state(purchase)
        kind = op[0]
        if kind == "advance":
            t += dt.timedelta(days=op[1])
            continue
        if kind == "expire":
            entitlements_expire(as_of=t, chain_id=chain.id)
            if model.status == PurchaseStatus.ACTIVE and purchase.period_end <= t:
                model.status = PurchaseStatus.EXPIRED
            after = _state(purchase)
            entitlements_expire(as_of=t, chain_id=chain.id)
            assert _state(purchase) == after  # idempotent
        elif kind == "redeem":
            _, who, code, key_n = op
            key = f"use-{key_n}"
            person, item = people[who], catalogue[code]
            if key in model.uses:
                p0, code0, use0 = model.uses[key]
                if (p0, code0) == (who, code):
                    assert entitlement_redeem(customer=person, item=item, key=key, at=t).pk == use0.pk
                else:
                    with pytest.raises(Conflict):
                        entitlement_redeem(customer=person, item=item, key=key, at=t)
                assert _state(purchase) == before
            elif model.status != PurchaseStatus.ACTIVE or purchase.period_end <= t:
                with pytest.raises(NotCovered):
                    entitlement_redeem(customer=person, item=item, key=key, at=t)
                assert _state(purchase) == before
            elif model.left(who, CATEGORY[code]) <= 0:
                with pytest.raises(NoEntitlementLeft):
                    entitlement_redeem(customer=person, item=item, key=key, at=t)
                assert _state(purchase) == before
            else:
                use = entitlement_redeem(customer=person, item=item, key=key, at=t)
                model.uses[key] = (who, code, use)
        elif kind == "reverse":
            _, use_n, key_n = op
            key = f"rev-{key_n}"
            if f"use-{use_n}" not in model.uses:
                continue
            use = model.uses[f"use-{use_n}"][2]
            taken = {k: u for u, k in model.reversed.items()}
            if key in taken:
                if taken[key] == use.pk:
                    entitlement_use_reverse(use=use, key=key)
                else:
                    with pytest.raises(Conflict):
                        entitlement_use_reverse(use=use, key=key)
                assert _state(purchase) == before
            elif key in model.uses:
                continue  # a use's key: another helper's concern (the key spaces do not meet here)
            elif use.pk in model.reversed:
                with pytest.raises(AlreadyReversed):
                    entitlement_use_reverse(use=use, key=key)
                assert _state(purchase) == before
            else:
                entitlement_use_reverse(use=use, key=key)
                model.reversed[use.pk] = key
        elif kind == "cancel":
            _, rule, amount, key_n = op
            key = f"cancel-{key_n}"
            granted = sum(QUANTITY.values()) * len(people)
            live = [(code, use) for _p, code, use in model.uses.values() if use.pk not in model.reversed]
            by_rule = {RefundRule.LIST_PRICE: max(0, PRICE - sum(LIST[code] for code, _ in live)),
                       RefundRule.PRO_RATA: (2 * PRICE * (granted - len(live)) + granted) // (2 * granted)}
            computed = min(by_rule[rule], PRICE)
            asked = {"all": computed, "over": computed + 1}.get(amount, amount)
            if model.cancel_key is not None:
                if key == model.cancel_key and model.cancel_args == (rule, asked):
                    assert package_cancel(purchase=purchase, key=key, reason="r", rule=rule, amount_fen=asked,
                                          at=t).key == key
                else:
                    with pytest.raises((Conflict, PackageNotActive)):
                        package_cancel(purchase=purchase, key=key, reason="r", rule=rule, amount_fen=asked, at=t)
                assert _state(purchase) == before
            elif model.status != PurchaseStatus.ACTIVE or purchase.period_end <= t:
                with pytest.raises(PackageNotActive):
                    package_cancel(purchase=purchase, key=key, reason="r", rule=rule, amount_fen=asked, at=t)
                assert _state(purchase) == before
            elif asked is not None and not 0 <= asked <= computed:
                with pytest.raises(ValidationFailed):
                    package_cancel(purchase=purchase, key=key, reason="r", rule=rule, amount_fen=asked, at=t)
                assert _state(purchase) == before
            else:
                cancellation = package_cancel(purchase=purchase, key=key, reason="moving", rule=rule,
                                              amount_fen=asked, at=t, actor=director)
                refund = computed if asked is None else asked
                assert (cancellation.computed_fen, cancellation.refund_fen) == (computed, refund)
                assert (cancellation.units_granted, cancellation.units_used) == (granted, len(live))
                model.status, model.cancel_key, model.refund = PurchaseStatus.CANCELLED, key, refund
                model.cancel_args = (rule, asked)
        _check(purchase, people, model)


def _check(purchase, people, model):
    purchase.refresh_from_db()
    assert purchase.status == model.status
    for grant in EntitlementGrant.objects.filter(purchase=purchase):
        uses = grant.uses.filter(kind=UseKind.USE).count()
        reversals = grant.uses.filter(kind=UseKind.REVERSAL).count()
        remaining = grant.quantity - uses + reversals
        assert 0 <= remaining <= grant.quantity
        assert remaining == model.left(people.index(grant.customer), grant.category)
    order = Order.objects.get(pk=purchase.order_id)
    refunds = dict(Refund.objects.filter(order=order).values_list("method").annotate(s=Sum("amount_fen")))
    assert order.refunded_fen == sum(refunds.values()) == model.refund <= order.amount_fen == PRICE
    for method, amount in refunds.items():
        assert amount <= PAID[method]
    if model.refund:  # back to the methods that paid, in proportion (largest remainder)
        assert abs(refunds.get("wechat_pay", 0) * PRICE - model.refund * PAID["wechat_pay"]) <= PRICE


PAYMENTS = st.lists(st.tuples(st.sampled_from(["cash", "wechat_pay"]),
                              st.sampled_from([PRICE, 200_000, 98_000, 0, -1, 1])), max_size=3)


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(payments=PAYMENTS)
@example(payments=[])
def test_a_sale_paid_here_is_refused_unless_its_payments_add_up_to_the_price(chain, clinic_a, wang, payments):
    """A sale with `payments=[]` (the API's `"payments": []`) was recorded as a bill of the full price with no payment,
    and its cancellation then refunded the whole price, by `other`, as money the clinic never took."""
    with transaction.atomic():
        ServiceItemFactory(chain=chain, code="PK01", name="套餐", category="exam", list_price_fen=PRICE)
        package = PackageFactory(chain=chain, price_fen=PRICE, validity_months=12, item_code="PK01")
        PackageEntitlementFactory(package=package, label="洁牙", category="cleaning", quantity=2)
        counts = (PackagePurchase.objects.count(), Order.objects.count(), EntitlementGrant.objects.count())
        rows = [{"method": m, "amount_fen": a} for m, a in payments]
        if payments and all(a > 0 for _, a in payments) and sum(a for _, a in payments) == PRICE:
            purchase = package_sell(package=package, holder=wang, covered=[wang], key="sale", clinic=clinic_a,
                                    payments=rows)
            order = Order.objects.get(pk=purchase.order_id)
            assert order.amount_fen == PRICE == sum(order.payments.values_list("amount_fen", flat=True))
        else:
            with pytest.raises(ValidationFailed) as refused:
                package_sell(package=package, holder=wang, covered=[wang], key="sale", clinic=clinic_a, payments=rows)
            assert any(e.field.startswith("payments") for e in refused.value.errors)
            assert (PackagePurchase.objects.count(), Order.objects.count(), EntitlementGrant.objects.count()) == counts
        transaction.set_rollback(True)


def _stored_value(customer) -> int:
    from smileloop.ledger.enums import AccountKind
    from smileloop.ledger.services import account_for

    return sum(account_for(chain_id=customer.chain_id, kind=kind, customer=customer).balance
               for kind in (AccountKind.WALLET_PRINCIPAL, AccountKind.WALLET_BONUS))


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(from_wallet=st.sampled_from([98_000, 1, PRICE, 150_001]), uses=st.integers(0, 2),
       rule=st.sampled_from([RefundRule.LIST_PRICE, RefundRule.PRO_RATA]),
       method=st.sampled_from([None, "cash", "wallet"]), less=st.sampled_from([0, 1, 50_000]))
def test_a_cancelled_sale_gives_stored_value_back_to_the_wallet_never_as_money(
        chain, clinic_a, wang, catalogue, bonus_rules, from_wallet, uses, rule, method, less):
    """However a sale paid partly from stored value is cancelled, the wallet gets back at most what the bill took
    from it, the money refunded is at most what was paid in money, and the two add up to the refund."""
    from smileloop.ledger.selectors import ledger_check
    from smileloop.loyalty.services import wallet_topup

    with transaction.atomic():
        ServiceItemFactory(chain=chain, code="PK01", name="套餐", category="exam", list_price_fen=PRICE)
        package = PackageFactory(chain=chain, price_fen=PRICE, validity_months=12, item_code="PK01")
        PackageEntitlementFactory(package=package, label="洁牙", category="cleaning", quantity=2)
        wallet_topup(customer=wang, amount_fen=600_000, method="cash", key="topup")  # + 40 000 bonus
        start = _stored_value(wang)
        payments = [{"method": "wallet", "amount_fen": from_wallet}]
        payments += [{"method": "wechat_pay", "amount_fen": PRICE - from_wallet}] if PRICE - from_wallet else []
        purchase = package_sell(package=package, holder=wang, covered=[wang], key="sale", clinic=clinic_a,
                                payments=payments)
        assert _stored_value(wang) == start - from_wallet
        for i in range(uses):
            entitlement_redeem(customer=wang, item=catalogue["CL01"], key=f"use-{i}")
        from smileloop.loyalty.selectors import package_cancel_quote

        computed = package_cancel_quote(purchase).by_rule[rule]
        amount = max(0, computed - less)
        if method == "wallet" and amount > from_wallet:
            with pytest.raises(ValidationFailed):
                package_cancel(purchase=purchase, key="c", reason="r", rule=rule, amount_fen=amount, method=method)
            assert _stored_value(wang) == start - from_wallet and not PackageCancellation.objects.exists()
        else:
            cancellation = package_cancel(purchase=purchase, key="c", reason="r", rule=rule, amount_fen=amount,
                                          method=method)
            back = _stored_value(wang) - (start - from_wallet)
            refunds = dict(Refund.objects.filter(order_id=purchase.order_id).values_list("method")
                           .annotate(s=Sum("amount_fen")))
            assert 0 <= back <= from_wallet and back == refunds.get("wallet", 0) == cancellation.detail["wallet"][
                "returned_fen"]
            money = sum(a for m, a in refunds.items() if m != "wallet")
            assert money <= PRICE - from_wallet
            assert back + money == cancellation.refund_fen == amount <= computed <= PRICE
        assert ledger_check(chain_id=chain.id) == []
        transaction.set_rollback(True)
