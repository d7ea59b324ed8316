"""Eight writers — the holder and three bound family members, two terminals each — spend from one
family wallet at once on PostgreSQL. Row locks allow no double spend."""

import datetime as dt

import pytest
from django.db import connection

from smileloop.core.testing import writers_run
from smileloop.customers.enums import Relation
from smileloop.customers.services import household_member_add
from smileloop.ledger.selectors import ledger_check
from smileloop.ledger.services import InsufficientBalance
from smileloop.loyalty.services import wallet_balance, wallet_spend, wallet_topup
from smileloop.membership.enums import WalletShareMode
from smileloop.membership.services import family_bind, wallet_share_consent_grant

from .conftest import patient

pytestmark = pytest.mark.django_db(transaction=True)


def test_eight_family_writers_never_overdraw_the_shared_wallet(chain, clinic_a, wang, family_membership):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers with row locks are exercised on PostgreSQL")
    # given a holder with 1,000.00 yuan and three bound members with standing consent
    members = []
    for i, relation in enumerate([Relation.SPOUSE, Relation.CHILD, Relation.PARENT]):
        person = patient(chain, clinic_a, f"家人{i}", birthday=dt.date(1970 + i * 20, 1, 1))
        household_member_add(head=wang, member=person, relation=relation)
        family_bind(holder=wang, member=person, relation=relation, consent_source="paper", consent_evidence=f"F-{i}")
        wallet_share_consent_grant(holder=wang, member=person, mode=WalletShareMode.STANDING, source="paper")
        members.append(person)
    wallet_topup(customer=wang, amount_fen=100_000, method="cash", key="topup")
    payers = [wang, *members] * 2
    def writer(i):
        outcomes = []
        for round_ in range(3):
            try:
                wallet_spend(payer=payers[i], holder=wang, amount_fen=15_000, key=f"spend:{i}:{round_}",
                             source=f"order:{i}:{round_}")
                outcomes.append("ok")
            except InsufficientBalance:
                outcomes.append("refused")
        return outcomes

    # when 8 writers try 24 spends of 150.00
    outcomes, errors = writers_run(writer, len(payers))
    # then exactly six fit and 100.00 is left
    assert errors == []
    assert outcomes.count("ok") == 6 and outcomes.count("refused") == 18
    assert wallet_balance(wang).total == 10_000
    assert ledger_check(chain_id=chain.id) == []


def test_one_top_up_sent_four_times_at_once_is_recorded_once_and_answered_four_times(chain, wang, family_membership):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers with row locks are exercised on PostgreSQL")
    from smileloop.loyalty.models import Topup

    # when four terminals (a double click, a retry) send the same top-up at once
    def writer(i):
        return [wallet_topup(customer=wang, amount_fen=50_000, method="cash", key="one-topup").id]

    ids, errors = writers_run(writer, 4)
    # then each is answered with the one top-up (no IntegrityError), which the wallet holds once
    assert errors == []
    assert len(set(ids)) == 1 and Topup.objects.count() == 1
    assert wallet_balance(wang).total == 50_000
    assert ledger_check(chain_id=chain.id) == []


def test_one_entitlement_use_reversed_by_four_refunds_at_once_is_given_back_once(chain, wang, spouse, child,
                                                                                 family_package, catalogue):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers with row locks are exercised on PostgreSQL")
    from smileloop.loyalty.errors import AlreadyReversed
    from smileloop.loyalty.models import EntitlementUse
    from smileloop.loyalty.services import entitlement_redeem, entitlement_use_reverse, package_sell

    package_sell(package=family_package, holder=wang, covered=[wang], key="sale-1")
    use = entitlement_redeem(customer=wang, item=catalogue["CL01"], key="u1")

    # when four refunds give the same cleaning back at once (two of them the same retried request)
    def writer(i):
        try:
            return [entitlement_use_reverse(use=use, key=f"refund-{min(i, 1)}").id]
        except AlreadyReversed:
            return ["already reversed"]

    outcomes, errors = writers_run(writer, 4)
    # then one reversal is written and every other refund is told so (no IntegrityError)
    assert errors == []
    assert EntitlementUse.objects.filter(reverses=use).count() == 1
    assert len(outcomes) == 4
