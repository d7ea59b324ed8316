"""Checkout refunds beside other patients' bills on PostgreSQL: a refund reverses its tenders one after another,
a pay posts all of its tenders at once; both touch the chain's shared accounts (SALES …). They must wait for
each other, never deadlock (run only on PostgreSQL)."""

import pytest
from django.db import connection

from smileloop.checkout.models import RefundSettlement, Settlement
from smileloop.checkout.services import checkout_pay, checkout_refund
from smileloop.core.testing import writers_run
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.ledger.selectors import ledger_check
from smileloop.loyalty.services.wallet import wallet_topup

pytestmark = pytest.mark.django_db(transaction=True)


def _bill(customer, clinic, n):
    return {"customer": customer, "clinic": clinic, "lines": [{"item_code": "EX01"}],
            "wallet": {"holder": customer, "amount_fen": 5000}}


def test_refunds_and_other_patients_pays_at_once_never_deadlock(chain, clinic_a, catalogue, spend_rule):
    if connection.vendor != "postgresql":
        pytest.skip("row locks and concurrent writers are exercised on PostgreSQL only")
    # given: Y paid eight bills from the wallet, each earning points (a refund reverses the wallet spend, then takes
    # the points back: two postings one after another); X has a wallet of their own
    y, x = (CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(2))
    for who in (y, x):
        wallet_topup(customer=who, amount_fen=100_000, method="cash", key=f"topup-{who.id}")
    paid = [checkout_pay(priced=_bill(y, clinic_a, n), payments=[], key=f"y-{n}") for n in range(8)]

    # when: eight refunds of Y's bills and eight pays of X's are released together
    def writer(i):
        if i % 2:
            checkout_refund(settlement=paid[i // 2], key=f"refund-{i}", reason="test")
            return ["refund"]
        checkout_pay(priced=_bill(x, clinic_a, i), payments=[], key=f"x-{i}")
        return ["pay"]

    results, errors = writers_run(writer, 16)
    # then: all of them went through, one after another where they shared an account
    assert errors == []
    assert sorted(results) == ["pay"] * 8 + ["refund"] * 8
    assert RefundSettlement.objects.count() == 8 and Settlement.objects.filter(customer=x).count() == 8
    assert ledger_check(chain_id=chain.id) == []
