"""Family-card writes and an erasure of one of the two people at the same moment (PostgreSQL): serialised on the
person's row, never a deadlock nor a relation left in force for an erased record.

`membership_erase_hook` (run with the person's row locked) ends their bindings and wallet-share consents. An unbind
locked the binding first, then wrote both timelines (foreign keys to the people, checked at commit): it held the
binding and needed the person, the erasure held the person and waited for the binding, a deadlock. A wallet-share
grant locked the holder only: a grant to a member erased meanwhile was recorded after the hook had run, a live
consent (with its evidence) about an erased record. Both now lock the two people first, in id order."""

import threading
import time

import pytest
from django.db import connections, transaction

from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.errors import Conflict
from smileloop.core.testing import postgresql_only
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


def _race(out: dict, first, erased: Customer, director) -> None:
    """Run `first` (paused inside its transaction by the caller's patch, which sets out['reached']) and the
    erasure of `erased` on two threads; `out` gets what each did or raised."""

    def write():
        try:
            out["write"] = first()
        except Exception as exc:  # noqa: BLE001 - returned to the test
            out["write_error"] = exc
            out["reached"].set()
        finally:
            connections.close_all()

    def erase():
        try:
            assert out["reached"].wait(20)
            time.sleep(0.1)
            with transaction.atomic():
                customer_erase(scope=scope_for_staff(director), customer=Customer.objects.get(pk=erased.pk),
                               actor=director, reason="本人申请")
            out["erased"] = True
        except Exception as exc:  # noqa: BLE001 - returned to the test
            out["erase_error"] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write), threading.Thread(target=erase)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def test_an_unbind_while_the_member_is_erased_is_not_a_deadlock(holder, spouse, director_a, monkeypatch):
    binding = services.family_bind(holder=holder, member=spouse, relation="spouse", consent_source="paper",
                                   consent_evidence="同意书 2026-031")
    out: dict = {"reached": threading.Event()}
    real = family_services.interaction_add

    def paused(*args, **kwargs):  # after the unbind's UPDATE of the binding: the erasure lands here
        out["reached"].set()
        time.sleep(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(family_services, "interaction_add", paused)
    _race(out, lambda: services.family_unbind(binding=binding, reason="离婚"), spouse, director_a)
    # both went through, one after the other: the unbind first (it held the person), then the erasure
    assert out.get("erased") and "write" in out, out
    binding.refresh_from_db()
    assert binding.unbound_at is not None and binding.consent_evidence == ""
    assert Customer.objects.get(pk=spouse.pk).erased_at is not None


def test_a_wallet_share_granted_while_the_member_is_erased_is_refused_not_left_in_force(holder, spouse, director_a,
                                                                                        monkeypatch):
    services.family_bind(holder=holder, member=spouse, relation="spouse", consent_source="paper",
                         consent_evidence="同意书 2026-031")
    out: dict = {"reached": threading.Event()}
    real = family_services._binding_between

    def paused(*args, **kwargs):  # the grant found the binding in force: the erasure lands here
        result = real(*args, **kwargs)
        out["reached"].set()
        time.sleep(1.0)
        return result

    monkeypatch.setattr(family_services, "_binding_between", paused)
    _race(out, lambda: services.wallet_share_consent_grant(holder=holder, member=spouse, mode="standing",
                                                           source="paper", evidence="张三签字 13800138000"),
          spouse, director_a)
    assert out.get("erased"), out
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
