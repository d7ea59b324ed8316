"""A front desk writing about a record while another desk merges it away (PostgreSQL: row locks and commits).

The desk read the record before the merge committed (its page was open); its write reaches the database while the
merge is in its transaction. What it writes must end on the survivor or be refused: a row left on the tombstone is
out of everyone's sight (a withdrawn marketing consent that no longer counts, an identity that finds nobody).
The merge is held inside its transaction (an after-merge hook waits) until the desk's write has started.
"""

import datetime as dt
import threading

import pytest
from django.utils import timezone

from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.errors import DomainError
from smileloop.core.testing import paused, postgresql_only, race
from smileloop.customers import services as customer_services
from smileloop.customers.enums import IdentityKind
from smileloop.customers.models import Consent, Customer, Identity
from smileloop.customers.selectors import consent_current
from smileloop.customers.services import consent_record, customer_merge, identity_add
from smileloop.customers.tests.factories import CustomerFactory

pytestmark = [postgresql_only, pytest.mark.django_db(transaction=True)]


def merge_while(survivor, merged, admin, write):
    """Merge `merged` into `survivor` while `write(stale merged record)` runs; returns the write's outcome (what it
    returned, or the DomainError it raised)."""
    reached = threading.Event()
    hold = paused(lambda **_kw: None, reached, before=True)  # an after-merge hook: the merge's transaction is open

    def desk():
        stale = Customer.objects.get(pk=merged.pk)  # the page read before the merge committed
        assert stale.merged_into_id is None
        return write(stale)

    customer_services._MERGE_AFTER_HOOKS.append(hold)
    try:
        out = race(lambda: customer_merge(scope=scope_for_staff(admin), survivor=survivor, merged=merged,
                                          reason="重复"), desk, reached, atomic=False)
    finally:
        customer_services._MERGE_AFTER_HOOKS.remove(hold)
    assert "first_error" not in out, out
    assert Customer.objects.get(pk=merged.pk).merged_into_id == survivor.pk
    if isinstance(out.get("then_error"), DomainError):
        return out["then_error"]
    assert "then" in out, out
    return out["then"]


@pytest.fixture
def pair(chain, clinic_a):
    survivor = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王芳", mobile="+8613900000011")
    merged = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王芳", mobile="+8613900000012")
    # both agreed to marketing texts at registration
    for c in (survivor, merged):
        consent_record(customer=c, purpose="marketing_sms", granted=True, source="form",
                       at=timezone.now() - dt.timedelta(days=30))
    return survivor, merged


@pytest.mark.parametrize("granted", [False, True], ids=["withdrawal", "grant"])
def test_a_consent_decided_while_the_record_is_merged_is_never_left_on_the_tombstone(pair, chain_admin, granted):
    survivor, merged = pair
    # when the patient withdraws (or gives) a consent at one desk while another desk merges the record away
    outcome = merge_while(survivor, merged, chain_admin, lambda stale: consent_record(
        customer=stale, purpose="marketing_sms", granted=granted, source="wechat"))
    # then the decision is the survivor's, or was refused (the desk is told, and records it on the survivor)
    assert not Consent.objects.filter(customer_id=merged.pk).exists()
    if isinstance(outcome, Consent):
        assert consent_current(survivor)["marketing_sms"].granted is granted
    else:
        assert isinstance(outcome, DomainError)


def test_an_identity_added_while_the_record_is_merged_is_never_left_on_the_tombstone(pair, chain_admin):
    survivor, merged = pair
    outcome = merge_while(survivor, merged, chain_admin, lambda stale: identity_add(
        customer=stale, kind=IdentityKind.WECHAT_OPENID, external_id="oW-race-1"))
    assert not Identity.objects.filter(customer_id=merged.pk).exists()
    if isinstance(outcome, Identity):
        assert outcome.customer_id == survivor.pk


def test_a_visit_booked_or_billed_while_the_record_is_merged_is_never_left_on_the_tombstone(pair, chain_admin, clinic_a,
                                                                                               catalogue):
    from smileloop.visits.models import Appointment, Order
    from smileloop.visits.services import appointment_upsert, order_record

    survivor, merged = pair
    start = timezone.now() + dt.timedelta(days=3)
    merge_while(survivor, merged, chain_admin, lambda stale: appointment_upsert(
        customer=stale, clinic=clinic_a, start_at=start, end_at=start + dt.timedelta(hours=1), status="booked",
        service_code="EX01"))
    assert not Appointment.objects.filter(customer_id=merged.pk).exists()
    other = CustomerFactory(chain=survivor.chain, home_clinic=clinic_a, name="王芳", mobile="+8613900000013")
    merge_while(survivor, other, chain_admin, lambda stale: order_record(
        customer=stale, clinic=clinic_a, ordered_at=timezone.now(), lines=[{"item_code": "EX01"}],
        payments=[{"method": "cash", "amount_fen": 5000}]))
    # the bill and its spend are the survivor's, or the bill was refused: never counted on the tombstone
    assert not Order.objects.filter(customer_id=other.pk).exists()
    survivor.refresh_from_db()
    assert survivor.lifetime_spend_fen == sum(Order.objects.filter(customer=survivor).values_list("amount_fen", flat=True))


def test_a_tag_set_while_the_record_is_merged_is_never_left_on_the_tombstone(pair, chain_admin):
    from smileloop.tagging.models import CustomerTag
    from smileloop.tagging.services import tag_apply
    from smileloop.tagging.tests.factories import TagFactory

    survivor, merged = pair
    tag = TagFactory(group__chain=survivor.chain, name="种植意向")
    merge_while(survivor, merged, chain_admin, lambda stale: tag_apply(customer=stale, tag=tag, actor=None))
    assert not CustomerTag.objects.filter(customer_id=merged.pk).exists()
