"""A member's friend card issued while another desk merges the member's record away (PostgreSQL).

The issue locked the member's row, so it waited for the merge, and then issued the card with the tombstone as its
giver: a card (and its limit count) on a record nobody finds any more, out of the survivor's sight. It is now
refused (NotFound, as customer_get answers for a merged record): the desk issues it on the survivor."""

import pytest

from smileloop.core.errors import NotFound
from smileloop.core.testing import postgresql_only
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.customers.tests.test_qa_merge_across_apps_postgres import merge_while
from smileloop.giftcards.models import GiftCard
from smileloop.giftcards.services import friend_card_issue

pytestmark = [postgresql_only, pytest.mark.django_db(transaction=True)]


def test_a_friend_card_issued_while_the_giver_is_merged_is_never_given_by_the_tombstone(
        member, programme, chain, clinic_a, chain_admin):
    survivor = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a)
    outcome = merge_while(survivor, member, chain_admin, lambda stale: friend_card_issue(
        member=stale, programme=programme, trigger="t", key="race-1"))
    assert not GiftCard.objects.filter(giver_id=member.pk).exists()
    if isinstance(outcome, GiftCard):
        assert outcome.giver_id == survivor.pk
    else:
        assert isinstance(outcome, NotFound), outcome
