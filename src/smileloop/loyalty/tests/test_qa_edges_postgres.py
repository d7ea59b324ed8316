"""Two staff saving the loyalty configuration at once, on PostgreSQL (threads behind a barrier, each with its own
connection): a gift restocked by two editors while a patient exchanges it keeps every change, and two staff creating
the same rule or the chain's first redeem terms get one row and a form refusal, never a 500 from a unique index.
SQLite serialises writers, so these run on PostgreSQL only."""

import threading

import pytest
from django.test import Client
from django.urls import reverse

from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.core.errors import ValidationFailed
from smileloop.core.testing import postgresql_only, writers_run
from smileloop.loyalty import services
from smileloop.loyalty.enums import EarnTrigger
from smileloop.loyalty.models import EarnRule, Gift, GiftExchange, RedeemSettings
from smileloop.loyalty.tests.factories import GiftFactory

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]

REFERRAL = {
    "code": "referral",
    "name": "推荐",
    "trigger": EarnTrigger.REFERRAL,
    "category": "",
    "special_price": "any",
    "points_per_yuan": 0,
    "points": 10,
    "pending_days": 0,
    "validity_months": None,
    "is_active": True,
}


def test_two_editors_restocking_a_gift_while_it_is_exchanged_keep_every_change(
    chain, chain_admin, wang, rules
):
    # given a gift of 10, shown to two editors, and a patient with points
    gift = GiftFactory(chain=chain, name="牙线", points_price=10, stock=10)
    services.points_award(customer=wang, rule_code="referral", key="r1")
    ops = StaffFactory(chain=chain, role=Role.MEMBER_OPS, name="会员运营", user__username="ops")
    url = reverse("loyalty:gift_edit", args=[gift.id])

    # when one adds 5, the other 3, and the patient exchanges 2, all at once
    def writer(i):
        if i == 2:
            services.gift_exchange(customer=wang, gift=Gift.objects.get(pk=gift.pk), quantity=2, key="x1")
            return []
        client = Client()
        client.force_login((chain_admin, ops)[i].user)
        return [
            client.post(
                url,
                {
                    "name": "牙线",
                    "points_price": "10",
                    "stock": str(10 + (5, 3)[i]),
                    "stock_seen": "10",
                    "is_active": "on",
                },
            ).status_code
        ]

    results, errors = writers_run(writer, 3)
    # then 10 + 5 + 3 − 2 are left
    assert errors == [] and results == [302, 302]
    gift.refresh_from_db()
    assert gift.stock == 16
    assert GiftExchange.objects.count() == 1


@pytest.fixture
def saves_meet(monkeypatch):
    """Both writers pass the unique check before either inserts: each waits for the other at its first save."""
    barrier, seen = threading.Barrier(2), threading.local()

    def patch(model):
        original = model.save

        def save(self, *args, **kwargs):
            if not getattr(seen, "done", False):
                seen.done = True
                barrier.wait(timeout=10)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(model, "save", save)

    return patch


def test_two_staff_creating_the_same_rule_at_once_get_one_rule_and_a_refusal(chain, saves_meet):
    saves_meet(EarnRule)

    def writer(i):
        try:
            services.earn_rule_save(chain=chain, data={**REFERRAL, "name": f"推荐{i}"})
        except ValidationFailed as exc:
            return [{e.field: e.message for e in exc.errors}]
        return ["saved"]

    results, errors = writers_run(writer, 2)
    assert errors == []
    assert sorted(results, key=str) == ["saved", {"": "Another earn rule of this chain has this code."}]
    assert EarnRule.objects.count() == 1


def test_two_first_saves_of_the_redeem_terms_at_once_make_one_row(chain, saves_meet):
    saves_meet(RedeemSettings)

    def writer(i):
        services.redeem_terms_save(
            chain=chain, data={"points_per_yuan": 100 + i, "max_share_bp": 1000, "is_enabled": True}
        )
        return ["saved"]

    results, errors = writers_run(writer, 2)
    assert errors == [] and results == ["saved", "saved"]
    assert RedeemSettings.objects.filter(chain=chain).count() == 1
