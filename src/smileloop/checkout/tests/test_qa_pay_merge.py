"""A bill paid with the patient's balances (wallet, points, a gift card) while another desk merges the record away
(PostgreSQL).

Nothing of such a bill ever stayed on the tombstone: checkout_pay is one transaction, and the tier evaluation at its
end refuses a merged record (test_qa_merge_races). But pay locked the row, waited for the merge and went on pricing
the bill again for the tombstone, whose wallet, points and membership had gone to the record kept: the desk was told
"wallet: 0.00 available", "balances changed, price it again" or "payments do not add up", as if the patient's money
were gone. Pay now reads, under its lock, that the record was merged away, and answers as customer_get does
(NotFound), before anything is priced or written."""

import pytest

from smileloop.checkout.models import Settlement
from smileloop.checkout.services import checkout_pay, checkout_price
from smileloop.core.errors import NotFound
from smileloop.core.testing import postgresql_only
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.customers.tests.test_qa_merge_across_apps_postgres import merge_while
from smileloop.giftcards.models import GiftCardEvent
from smileloop.ledger.enums import AccountKind
from smileloop.ledger.models import Account, Entry
from smileloop.visits.models import Order

pytestmark = [postgresql_only, pytest.mark.django_db(transaction=True)]


def _balance(customer, kind) -> int:
    return Account.objects.get(customer=customer, kind=kind, closed_at__isnull=True).balance


@pytest.mark.parametrize("priced_on", ["page", "pay"], ids=["bill-priced-on-the-page", "priced-again-by-pay"])
@pytest.mark.parametrize("tenders", ["wallet-points-card", "card"])
def test_a_bill_paid_from_balances_while_the_record_is_merged_is_refused_as_not_found(
        chain, clinic_a, catalogue, alice, card, points, wallet, spend_rule, chain_admin, priced_on, tenders):
    # given 王芳's bill priced with her gift card (and her points and wallet), and a second record of hers
    survivor = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a)
    args = {"clinic": clinic_a, "lines": [{"item_code": "CL01"}, {"item_code": "FI01"}], "gift_cards": [card.code]}
    if tenders == "wallet-points-card":
        args |= {"points": "max", "wallet": {"amount_fen": 5000}}
    bill = checkout_price(customer=alice, **args)
    card_events = GiftCardEvent.objects.count()

    def pay(stale):
        return checkout_pay(priced=bill if priced_on == "page" else {"customer": stale, **args},
                            payments=[{"method": "cash", "amount_fen": bill.cash_fen}], key="pay-race")

    # when the bill is paid while her two records are merged (the page read before the merge committed)
    outcome = merge_while(survivor, alice, chain_admin, pay)
    # then it is refused as the record it no longer is, not as an empty wallet or a changed price
    assert isinstance(outcome, NotFound), outcome
    # and nothing was written on either record: her balances are whole on the record kept
    assert not Settlement.objects.exists()
    assert not Order.objects.filter(customer__in=[alice, survivor]).exists()
    assert not Entry.objects.filter(transaction__idempotency_key__startswith="checkout:").exists()
    assert GiftCardEvent.objects.count() == card_events
    assert _balance(survivor, AccountKind.WALLET_PRINCIPAL) == 10000
    assert _balance(survivor, AccountKind.POINTS) == points
