import datetime as dt

import pytest
from django.utils import timezone

from smileloop.core.errors import ValidationFailed
from smileloop.customers.services import customer_merge
from smileloop.ledger.selectors import ledger_check
from smileloop.loyalty._common import add_months, day_end
from smileloop.loyalty.enums import PurchaseStatus, UseKind
from smileloop.loyalty.errors import AgeLimit, AlreadyReversed, NoEntitlementLeft, NotCovered
from smileloop.loyalty.models import EntitlementGrant, EntitlementUse, PackagePurchase
from smileloop.loyalty.selectors import entitlements_available, entitlements_for_customer, entitlements_left
from smileloop.loyalty.services import (
    entitlement_redeem,
    entitlement_use_reverse,
    entitlements_expire,
    package_sell,
)
from smileloop.loyalty.tests.factories import order_with
from smileloop.visits.tests.factories import ServiceItemFactory


@pytest.fixture
def fluoride(chain):
    return ServiceItemFactory(chain=chain, code="PD01", name="儿童涂氟", category="paediatric", list_price_fen=15000)


@pytest.fixture
def purchase(family_package, wang, spouse, child, now):
    return package_sell(package=family_package, holder=wang, covered=[wang, spouse, child], key="sale-1",
                        at=now - dt.timedelta(days=30))


def left(customer, item, at=None):
    return [(b.label, b.remaining) for b in entitlements_available(customer=customer, item=item, at=at)]


def test_a_sale_grants_each_covered_person_their_entitlements_and_fluoride_only_to_the_child(
        purchase, wang, spouse, child, catalogue, fluoride, now):
    # then
    assert purchase.period_end == day_end(add_months(now - dt.timedelta(days=30), 12))
    assert left(wang, catalogue["CL01"]) == [("洁牙", 2)]
    assert left(spouse, catalogue["EX01"]) == [("口腔检查", 2)]
    assert left(child, fluoride) == [("儿童涂氟", 4)]
    assert left(wang, fluoride) == []
    assert EntitlementGrant.objects.count() == 7


def test_entitlements_are_counted_per_person_and_the_third_cleaning_is_refused(purchase, wang, spouse, catalogue):
    # given: the holder uses both cleanings of the year
    order = order_with(wang, [(catalogue["CL01"], 0)])
    line = order.lines.get()
    entitlement_redeem(customer=wang, item=catalogue["CL01"], order_line=line, key="u1")
    entitlement_redeem(customer=wang, item=catalogue["CL99"], key="u2")
    # when
    with pytest.raises(NoEntitlementLeft) as exc:
        entitlement_redeem(customer=wang, item=catalogue["CL01"], key="u3")
    # then
    assert exc.value.code == "no_entitlement"
    assert EntitlementUse.objects.count() == 2
    assert EntitlementUse.objects.get(key="u1").order_line_id == line.id
    assert left(wang, catalogue["CL01"]) == []
    assert left(spouse, catalogue["CL01"]) == [("洁牙", 2)]


def test_redeeming_is_idempotent_on_its_key(purchase, wang, catalogue):
    first = entitlement_redeem(customer=wang, item=catalogue["CL01"], key="u1")
    again = entitlement_redeem(customer=wang, item=catalogue["CL01"], key="u1")
    assert again.id == first.id and left(wang, catalogue["CL01"]) == [("洁牙", 1)]


def test_an_adult_cannot_use_the_childrens_fluoride(purchase, wang, child, fluoride):
    # given: the child is 12 or older at the time of use
    with pytest.raises(NotCovered):
        entitlement_redeem(customer=wang, item=fluoride, key="u1")
    later = dt.datetime(2030, 6, 2, tzinfo=dt.UTC)
    PackagePurchase.objects.update(period_end=later + dt.timedelta(days=1))
    # when
    with pytest.raises(AgeLimit):
        entitlement_redeem(customer=child, item=fluoride, key="u2", at=later)
    # then
    assert EntitlementUse.objects.count() == 0


def test_a_reversed_use_is_given_back_once(purchase, wang, catalogue):
    # given
    use = entitlement_redeem(customer=wang, item=catalogue["CL01"], key="u1")
    # when
    reversal = entitlement_use_reverse(use=use, key="refund-1")
    # then
    assert (reversal.kind, reversal.reverses_id) == (UseKind.REVERSAL, use.id)
    assert left(wang, catalogue["CL01"]) == [("洁牙", 2)]
    assert entitlement_use_reverse(use=use, key="refund-1").id == reversal.id
    with pytest.raises(AlreadyReversed):
        entitlement_use_reverse(use=use, key="refund-2")
    assert EntitlementUse.objects.count() == 2


def test_checkouts_plain_reader_agrees_with_the_full_one_through_uses_reversals_and_period_end(
        purchase, wang, child, spouse, catalogue):
    def both(customer, at=None):
        at = at or timezone.now()
        full = [(b.grant_id, b.item_code, b.category, b.remaining, b.max_age)
                for b in entitlements_for_customer(customer, at=at) if b.remaining > 0]
        return full, [(e.grant_id, e.item_code, e.category, e.remaining, e.max_age)
                      for e in entitlements_left(customer.pk, at=at)]

    # given uses, a use given back and a grant used up
    use = entitlement_redeem(customer=wang, item=catalogue["CL01"], key="u1")
    entitlement_redeem(customer=wang, item=catalogue["CL01"], key="u2")
    entitlement_use_reverse(use=use, key="r1")
    entitlement_redeem(customer=spouse, item=catalogue["CL01"], key="u3")
    entitlement_redeem(customer=spouse, item=catalogue["CL01"], key="u4")
    # then both readers give the same grants, in the same order, with the same units left
    for person in (wang, child, spouse):
        full, plain = both(person)
        assert plain == full and plain, person
    assert "cleaning" not in [category for _g, _code, category, *_ in both(spouse)[1]]  # both cleanings used
    assert ("PD01", "", 4, 12) in [tuple(e[1:]) for e in both(child)[1]]  # the child's fluoride, with its age limit
    # and nothing once the period has ended
    assert both(wang, purchase.period_end) == ([], [])


def test_unused_entitlements_expire_at_period_end(purchase, wang, spouse, catalogue, chain):
    # given
    entitlement_redeem(customer=wang, item=catalogue["CL01"], key="u1")
    end = purchase.period_end
    # when
    assert entitlements_expire(as_of=end - dt.timedelta(seconds=1)) == 0
    assert entitlements_expire(as_of=end) == 1
    # then
    purchase.refresh_from_db()
    assert (purchase.status, purchase.expired_at) == (PurchaseStatus.EXPIRED, end)
    expired = dict(EntitlementGrant.objects.filter(customer=wang).values_list("label", "expired_quantity"))
    assert expired == {"洁牙": 1, "口腔检查": 2}
    assert entitlements_for_customer(spouse, at=end - dt.timedelta(seconds=1)) == []
    with pytest.raises(NotCovered):
        entitlement_redeem(customer=spouse, item=catalogue["CL01"], key="u2", at=end - dt.timedelta(seconds=1))
    assert entitlements_expire(as_of=end) == 0
    assert ledger_check(chain_id=chain.id) == []


def test_a_package_cannot_cover_someone_outside_the_holders_household(family_package, wang, stranger_b):
    with pytest.raises(ValidationFailed) as exc:
        package_sell(package=family_package, holder=wang, covered=[wang, stranger_b], key="sale-1")
    assert [e.field for e in exc.value.errors] == ["covered[1]"]
    assert PackagePurchase.objects.count() == 0 and EntitlementGrant.objects.count() == 0


def test_a_refusal_names_the_outsider_by_their_place_in_the_list_given(family_package, wang, spouse, stranger_b):
    # when the holder is named twice before the stranger
    with pytest.raises(ValidationFailed) as refused:
        package_sell(package=family_package, holder=wang, covered=[wang, wang, spouse, stranger_b], key="s1")
    # then the error points at the stranger's own place, covered[3]
    assert [e.field for e in refused.value.errors] == ["covered[3]"]
    assert PackagePurchase.objects.count() == 0


def test_merging_two_covered_records_of_one_person_keeps_one_set_of_entitlements(purchase, wang, spouse, catalogue,
                                                                                 admin_scope):
    # given: the spouse was registered twice and both records are covered
    entitlement_redeem(customer=spouse, item=catalogue["CL01"], key="u1")
    # when
    customer_merge(scope=admin_scope, survivor=wang, merged=spouse, reason="duplicate")
    # then
    assert EntitlementGrant.objects.filter(customer=wang).count() == 2
    assert left(wang, catalogue["CL01"]) == [("洁牙", 1)]


def test_a_merge_that_folds_more_uses_than_a_grant_holds_shows_none_left_not_a_negative_number(
        purchase, wang, spouse, catalogue, admin_scope):
    # given: both covered records of one person used both of their two cleanings
    for who, key in ((wang, "w1"), (wang, "w2"), (spouse, "s1"), (spouse, "s2")):
        entitlement_redeem(customer=who, item=catalogue["CL01"], key=key)
    # when the records are merged (the uses fold onto the survivor's grant)
    customer_merge(scope=admin_scope, survivor=wang, merged=spouse, reason="duplicate")
    # then the 360 page shows four used of two and nothing left, and nothing more can be redeemed
    [cleaning] = [b for b in entitlements_for_customer(wang) if b.item_code == "CL01" or b.label == "洁牙"]
    assert (cleaning.quantity, cleaning.used, cleaning.remaining) == (2, 4, 0)
    with pytest.raises(NoEntitlementLeft):
        entitlement_redeem(customer=wang, item=catalogue["CL01"], key="w3")

def test_the_used_up_message_names_the_local_last_day_of_the_period(family_package, wang, catalogue):
    # Bought at 07:30 in Beijing (23:30 UTC the day before): the period ends on the local day, not the UTC one.
    bought = dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.UTC)
    package_sell(package=family_package, holder=wang, covered=[wang], key="sale-early", at=bought)
    for key in ("u1", "u2"):
        entitlement_redeem(customer=wang, item=catalogue["CL01"], key=key, at=bought + dt.timedelta(days=1))
    with pytest.raises(NoEntitlementLeft) as exc:
        entitlement_redeem(customer=wang, item=catalogue["CL01"], key="u3", at=bought + dt.timedelta(days=2))
    assert "(until 2027-03-02)" in exc.value.message
