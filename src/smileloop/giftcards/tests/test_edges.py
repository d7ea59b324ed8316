"""Edges of gift cards (储值卡) and vouchers (优惠券) across giftcards, ledger and checkout: codes as people type
them, expiry at the day's end in Shanghai, refusals that change nothing, refunds giving value back, the balance a
look-up shows, and the API's idempotency."""

import datetime as dt
import hashlib
import json

import pytest

from smileloop.checkout.services import checkout_pay, checkout_price, checkout_refund
from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.services import token_create
from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory, StaffFactory
from smileloop.core.errors import ValidationFailed
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.giftcards.enums import CardStatus, VoucherStatus
from smileloop.giftcards.errors import ExcludedItem, Expired, WrongCode
from smileloop.giftcards.models import GiftCard, GiftCardEvent, Voucher
from smileloop.giftcards.selectors import (
    code_lookup,
    giftcard_balance,
    giftcard_get_by_code,
    voucher_get_by_code,
)
from smileloop.giftcards.services import friend_card_issue, giftcard_spend, voucher_issue, voucher_redeem
from smileloop.giftcards.tests.factories import CampaignFactory, ProgrammeFactory
from smileloop.ledger.models import Account, Entry, LedgerTransaction, Lot
from smileloop.ledger.selectors import ledger_check
from smileloop.ledger.services import InsufficientBalance

pytestmark = pytest.mark.django_db

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai


@pytest.fixture
def card(member, programme):
    return friend_card_issue(member=member, programme=programme, trigger="plan half done", key="card-1")


def digest() -> str:
    """Every row of the gift-card and ledger tables: a refused write must leave it unchanged."""
    parts = []
    for model in (GiftCard, GiftCardEvent, Voucher, Account, LedgerTransaction, Entry, Lot):
        parts.append(json.dumps(list(model.objects.order_by("pk").values()), default=str, sort_keys=True))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


# --- codes as people type them ---------------------------------------------------------------------------


def test_a_code_typed_with_a_chinese_input_method_in_full_width_characters_finds_the_card(chain, card):
    """A Chinese IME in full-width mode types ＡＢＣＤ－２３４５; it was "no gift card with this code"."""
    full_width = "".join(chr(ord(ch) + 0xFEE0) if ch != "-" else "－" for ch in card.code.lower())
    assert giftcard_get_by_code(chain_id=chain.id, code=full_width) == card
    assert giftcard_get_by_code(chain_id=chain.id, code=f"  {card.code.lower().replace('-', '　')} ") == card


def test_a_code_with_a_letter_no_code_has_is_refused_by_name_and_changes_nothing(chain, member, clinic_a, catalogue,
                                                                                  card):
    # given the code with its first symbol typed as O (codes have no 0, O, 1, I or L)
    typo = "O" + card.code[1:]
    before = digest()
    # when / then
    with pytest.raises(WrongCode) as refused:
        checkout_price(customer=member, clinic=clinic_a, lines=[{"item_code": "CL01"}], gift_cards=[typo])
    assert refused.value.field == "gift_cards[0]" and typo in str(refused.value)
    assert digest() == before


def test_another_chains_card_or_voucher_is_unknown_here(chain, member, clinic_a, catalogue):
    # given a card and a voucher of another chain
    other = ChainFactory(name="别家口腔")
    ClinicFactory(chain=other, code="BJ01")
    giver = CustomerFactory(chain=other, name="赵敏")
    foreign_card = friend_card_issue(member=giver, programme=ProgrammeFactory(chain=other), trigger="t", key="c")
    foreign_voucher = voucher_issue(campaign=CampaignFactory(chain=other, face_value_fen=5000, category="cleaning"),
                                    key="v")
    before = digest()
    # when / then: the code names where the bill holds it
    with pytest.raises(WrongCode) as card_refused:
        checkout_price(customer=member, clinic=clinic_a, lines=[{"item_code": "CL01"}], gift_cards=[foreign_card.code])
    with pytest.raises(WrongCode) as voucher_refused:
        checkout_price(customer=member, clinic=clinic_a, lines=[{"item_code": "CL01"}],
                       vouchers=[foreign_voucher.code])
    assert (card_refused.value.field, voucher_refused.value.field) == ("gift_cards[0]", "vouchers[0]")
    assert digest() == before


# --- expiry at the end of the day in Shanghai -----------------------------------------------------------


@pytest.mark.parametrize(("issued", "last_day"), [
    (dt.datetime(2026, 1, 31, 23, 30, tzinfo=SHANGHAI), dt.date(2026, 4, 30)),  # 31 Jan + 3 months: clamped
    (dt.datetime(2026, 2, 1, 0, 30, tzinfo=SHANGHAI), dt.date(2026, 5, 1)),  # 16:30 UTC on 31 Jan
    (dt.datetime(2026, 11, 30, 7, 59, tzinfo=SHANGHAI), dt.date(2027, 2, 28)),  # 23:59 UTC on 29 Nov
])
def test_a_friend_card_is_valid_to_the_end_of_its_last_local_day_and_not_a_moment_longer(
        chain, member, programme, issued, last_day):
    card = friend_card_issue(member=member, programme=programme, trigger="t", key="k", as_of=issued)
    end = dt.datetime.combine(last_day, dt.time(23, 59, 59, 999999), tzinfo=SHANGHAI)
    assert card.expires_at == end
    giftcard_spend(card=card, amount_fen=100, key="s1", source="order:1", at=end - dt.timedelta(milliseconds=1))
    before = digest()
    with pytest.raises(Expired):
        giftcard_spend(card=card, amount_fen=100, key="s2", source="order:2", at=end + dt.timedelta(milliseconds=1))
    assert digest() == before


# --- refusals change nothing ----------------------------------------------------------------------------


def test_spending_more_than_the_balance_is_refused_and_changes_nothing(chain, card):
    giftcard_spend(card=card, amount_fen=59999, key="s1", source="order:1")
    before = digest()
    with pytest.raises(InsufficientBalance):
        giftcard_spend(card=card, amount_fen=2, key="s2", source="order:2")
    assert digest() == before
    giftcard_spend(card=card, amount_fen=1, key="s3", source="order:3")
    card.refresh_from_db()
    assert card.status == CardStatus.EXHAUSTED and giftcard_balance(card) == 0
    assert ledger_check(chain_id=chain.id) == []


@pytest.mark.parametrize("used", [0, -1, 30001, 1.5, True])
def test_a_voucher_redeemed_for_nothing_or_more_than_its_value_is_refused_and_changes_nothing(cleaning_campaign, used):
    voucher = voucher_issue(campaign=cleaning_campaign, key="v1")
    before = digest()
    with pytest.raises(ValidationFailed) as refused:
        voucher_redeem(voucher=voucher, used_fen=used, key="r1", source="order:1")
    assert refused.value.errors[0].field == "vouchers" and "between 1 and 30000 fen" in str(refused.value.errors[0])
    assert digest() == before


def test_a_voucher_for_one_item_on_a_bill_without_it_is_refused_and_changes_nothing(member, clinic_a,
                                                                                     cleaning_campaign):
    voucher = voucher_issue(campaign=cleaning_campaign, customer=member, key="v1")
    before = digest()
    with pytest.raises(ExcludedItem) as refused:
        checkout_price(customer=member, clinic=clinic_a, lines=[{"item_code": "FI01"}], vouchers=[voucher.code])
    assert voucher.code in str(refused.value)
    assert digest() == before


# --- refunds give the value back ------------------------------------------------------------------------


def test_a_partial_then_full_refund_gives_a_card_back_exactly_what_it_paid(chain, member, clinic_a, catalogue, card):
    bill = checkout_price(customer=member, clinic=clinic_a, lines=[{"item_code": "CL01"}], gift_cards=[card.code])
    settlement = checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}], key="p1")
    assert giftcard_balance(card) == 30000
    line = settlement.order.lines.get()
    checkout_refund(settlement=settlement, key="r1", lines=[{"line_id": line.id, "amount_fen": 10000}])
    assert giftcard_balance(card) == 40000
    checkout_refund(settlement=settlement, key="r2")
    assert giftcard_balance(card) == 60000
    card.refresh_from_db()
    assert card.status == CardStatus.ACTIVE and ledger_check(chain_id=chain.id) == []


def test_a_voucher_refunded_in_full_can_be_used_again_with_its_whole_value(chain, member, clinic_a, cleaning_campaign):
    voucher = voucher_issue(campaign=cleaning_campaign, customer=member, key="v1")
    bill = checkout_price(customer=member, clinic=clinic_a, lines=[{"item_code": "CL01"}], vouchers=[voucher.code])
    settlement = checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}], key="p1")
    assert Voucher.objects.get().status == VoucherStatus.REDEEMED
    checkout_refund(settlement=settlement, key="r1")
    voucher.refresh_from_db()
    voucher.account.refresh_from_db()
    assert voucher.status == VoucherStatus.ISSUED and voucher.account.balance == voucher.value_fen
    again = checkout_price(customer=member, clinic=clinic_a, lines=[{"item_code": "CL01"}], vouchers=[voucher.code])
    assert again.priced.tender("voucher")[0].amount_fen == 30000
    assert ledger_check(chain_id=chain.id) == []


# --- what a look-up shows -------------------------------------------------------------------------------


def test_a_look_up_shows_no_balance_on_a_voucher_past_its_expiry_as_on_a_card(chain, front_desk_a, member, card,
                                                                              cleaning_campaign):
    """Before the nightly expiry job ran, an expired card showed 0 but an expired voucher its whole value, which
    the bill then refused as expired."""
    voucher = voucher_issue(campaign=cleaning_campaign, customer=member, key="v1", as_of=NOW - dt.timedelta(days=40))
    scope = scope_for_staff(front_desk_a)
    assert code_lookup(scope, voucher.code).balance_fen == 0
    assert code_lookup(scope, card.code).balance_fen == 60000
    fresh = voucher_issue(campaign=cleaning_campaign, customer=member, key="v2")
    assert code_lookup(scope, fresh.code).balance_fen == 30000
    assert voucher_get_by_code(chain_id=chain.id, code=fresh.code.lower()) == fresh


# --- the API's idempotency ------------------------------------------------------------------------------


def post(client, url, body, *, staff, key):
    headers = {"Authorization": f"Bearer {token_create(username=staff.user.username)}", "Idempotency-Key": key}
    return client.post(url, json.dumps(body), content_type="application/json", headers=headers)


@pytest.fixture
def ops(chain):
    return StaffFactory(chain=chain, role=Role.MEMBER_OPS)


def test_an_issue_replayed_with_its_key_answers_the_first_and_another_body_is_a_409(client, ops, member, programme,
                                                                                    cleaning_campaign):
    first = post(client, "/api/giftcards/vouchers", {"campaign": cleaning_campaign.code, "customer_id": member.id},
                 staff=ops, key="v-1")
    again = post(client, "/api/giftcards/vouchers", {"campaign": cleaning_campaign.code, "customer_id": member.id},
                 staff=ops, key="v-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["code"] == first.json()["code"] and again["Idempotent-Replayed"] == "true"
    before = digest()
    other = post(client, "/api/giftcards/vouchers", {"campaign": cleaning_campaign.code}, staff=ops, key="v-1")
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    card_other = post(client, "/api/giftcards/friend-cards", {"member_id": member.id, "programme": programme.code},
                      staff=ops, key="v-1")
    assert card_other.status_code == 409
    assert digest() == before and Voucher.objects.count() == 1


@pytest.mark.parametrize("length", [200, 255])
def test_an_issue_with_a_long_idempotency_key_the_api_accepts_is_issued_once(client, ops, member, programme,
                                                                             cleaning_campaign, length):
    """The API takes keys of up to 255 characters, the issue keys (api:<user>:<key>) hold 200: on PostgreSQL a
    key of 190+ characters was a 500 (value too long for the column)."""
    for _ in range(2):
        voucher = post(client, "/api/giftcards/vouchers",
                       {"campaign": cleaning_campaign.code, "customer_id": member.id}, staff=ops, key="v" * length)
        card = post(client, "/api/giftcards/friend-cards", {"member_id": member.id, "programme": programme.code},
                    staff=ops, key="c" * length)
        assert (voucher.status_code, card.status_code) == (201, 201), (voucher.content, card.content)
    limit = Voucher._meta.get_field("issue_key").max_length
    assert Voucher.objects.count() == 1 and len(Voucher.objects.get().issue_key) <= limit
    assert GiftCard.objects.count() == 1 and len(GiftCard.objects.get().issue_key) <= limit
