"""Family-card writes and an erasure of one of the two people at the same moment (PostgreSQL): serialised on the
person's row, never a deadlock nor a relation left in force for an erased record.

`membership_erase_hook` (run with the person's row locked) ends their bindings and wallet-share consents. An unbind
locked the binding first, then wrote both timelines (foreign keys to the people, checked at commit): it held the
binding and needed the person, the erasure held the person and waited for the binding, a deadlock. A wallet-share
grant locked the holder only: a grant to a member erased meanwhile was recorded after the hook had run, a live
consent (with its evidence) about an erased record. Both now lock the two people first, in id order."""

import threading

import pytest

from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.errors import Conflict
from smileloop.core.testing import paused, postgresql_only, race
from smileloop.customers.models import Customer
from smileloop.customers.privacy import customer_erase
from smileloop.membership import services
from smileloop.membership.models import FamilyBinding, WalletShareConsent
from smileloop.membership.services import family as family_services

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]


@pytest.fixture
def holder(wang, family_plan, family_tier):
    services.membership_enrol(customer=wang, plan=family_plan)
    return wang


def _race(first, reached: threading.Event, erased: Customer, director) -> dict:
    """Run `first` (paused inside its transaction by the caller's `paused` patch, which sets `reached`) and the
    erasure of `erased` on two threads; returns what each did or raised (`race`)."""

    def erase():
        customer_erase(scope=scope_for_staff(director), customer=Customer.objects.get(pk=erased.pk), actor=director,
                       reason="本人申请")
        return True

    return race(first, erase, reached)


def test_an_unbind_while_the_member_is_erased_is_not_a_deadlock(holder, spouse, director_a, monkeypatch):
    binding = services.family_bind(holder=holder, member=spouse, relation="spouse", consent_source="paper",
                                   consent_evidence="同意书 2026-031")
    reached = threading.Event()
    # after the unbind's UPDATE of the binding: the erasure lands here
    monkeypatch.setattr(family_services, "interaction_add",
                        paused(family_services.interaction_add, reached, before=True))
    out = _race(lambda: services.family_unbind(binding=binding, reason="离婚"), reached, spouse, director_a)
    # both went through, one after the other: the unbind first (it held the person), then the erasure
    assert out.get("then") and "first" in out, out
    binding.refresh_from_db()
    assert binding.unbound_at is not None and binding.consent_evidence == ""
    assert Customer.objects.get(pk=spouse.pk).erased_at is not None


def test_a_wallet_share_granted_while_the_member_is_erased_is_refused_not_left_in_force(holder, spouse, director_a,
                                                                                        monkeypatch):
    services.family_bind(holder=holder, member=spouse, relation="spouse", consent_source="paper",
                         consent_evidence="同意书 2026-031")
    reached = threading.Event()
    # the grant found the binding in force: the erasure lands here
    monkeypatch.setattr(family_services, "_binding_between", paused(family_services._binding_between, reached))
    out = _race(lambda: services.wallet_share_consent_grant(holder=holder, member=spouse, mode="standing",
                                                            source="paper", evidence="张三签字 13800138000"),
                reached, spouse, director_a)
    assert out.get("then"), out
    assert Customer.objects.get(pk=spouse.pk).erased_at is not None
    # whichever went first, no consent about the erased record is in force or keeps its evidence
    assert not WalletShareConsent.objects.filter(member=spouse, revoked_at__isnull=True).exists()
    assert not WalletShareConsent.objects.filter(member=spouse).exclude(evidence="").exists()
    assert not FamilyBinding.objects.filter(member=spouse, unbound_at__isnull=True).exists()


def test_a_wallet_share_for_an_erased_member_is_refused_as_erased(holder, spouse, director_a):
    services.family_bind(holder=holder, member=spouse, relation="spouse", consent_source="paper",
                         consent_evidence="同意书 2026-031")
    customer_erase(scope=scope_for_staff(director_a), customer=spouse, actor=director_a, reason="本人申请")
    with pytest.raises(Conflict) as refused:
        services.wallet_share_consent_grant(holder=holder, member=spouse, mode="standing", source="paper")
    assert (refused.value.code, refused.value.field) == ("erased", "member_id")
    assert not WalletShareConsent.objects.exists()
