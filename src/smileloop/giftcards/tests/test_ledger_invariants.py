"""Generated sequences of issues, holder registrations, spends, refunds and expiry runs on friends-and-family cards,
checked after every step against a reference model: each card's ledger balance is issued − spent + refunded −
expired ≥ 0 and what it can spend at the clock's time agrees; expiry is a ledger entry, and running it again changes
nothing; a spend after the expiry, or of more than the card has, is refused and changes nothing; codes are unique."""

import datetime as dt
from dataclasses import dataclass, field
from fractions import Fraction

import pytest
from django.db import transaction
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from smileloop.core.errors import ValidationFailed
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.giftcards.enums import CardStatus, VoucherStatus
from smileloop.giftcards.errors import AlreadyUsed, Expired, GiverNotHolder
from smileloop.giftcards.models import GiftCard, GiftCardEvent, Voucher
from smileloop.giftcards.selectors import giftcard_balance
from smileloop.giftcards.services import (
    friend_card_issue,
    giftcard_holder_register,
    giftcard_spend,
    giftcard_spend_reverse,
    giftcards_expire,
    voucher_issue,
    voucher_redeem,
    voucher_redeem_reverse,
)
from smileloop.giftcards.tests.factories import ProgrammeFactory
from smileloop.ledger.enums import AccountKind
from smileloop.ledger.models import Account, Entry, LedgerTransaction, Lot
from smileloop.ledger.selectors import ledger_check
from smileloop.ledger.services import InsufficientBalance, system_account

pytestmark = pytest.mark.django_db

FACE = 60_000
HYPOTHESIS = settings(max_examples=60, deadline=None, derandomize=True,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                             HealthCheck.data_too_large])


@dataclass
class CardModel:
    card: GiftCard
    expires_at: dt.datetime | None
    issued: int = FACE
    balance: int = FACE
    expired: int = 0
    status_expired: bool = False
    holder: int | None = None
    spends: list = field(default_factory=list)  # [tx, amount, share reversed so far, fen reversed so far]


def _counts():
    return (GiftCard.objects.count(), GiftCardEvent.objects.count(), LedgerTransaction.objects.count(),
            Entry.objects.count(), Lot.objects.count(), list(Account.objects.order_by("id").values_list("balance")))


def _card_view(card: GiftCard):
    card.refresh_from_db()
    return (card.status, card.expires_at, card.holder_id, card.holder_registered_at)


OPS = st.lists(st.one_of(
    st.tuples(st.just("issue"), st.integers(0, 3)),                       # issue key index (replays of a key)
    st.tuples(st.just("spend"), st.integers(0, 5),
              st.sampled_from(["all", -500, 17_000, FACE + 1, 0, 1, FACE])),
    st.tuples(st.just("refund"), st.integers(0, 5), st.sampled_from([Fraction(1, 3), Fraction(1, 2), Fraction(1)])),
    st.tuples(st.just("register"), st.integers(0, 5), st.integers(0, 2)),  # 0: the giver, 1/2: friends
    st.tuples(st.just("expire")),
    st.tuples(st.just("advance"), st.integers(1, 60)),
), min_size=1, max_size=14).map(lambda ops: [("issue", 0), *ops])


@HYPOTHESIS
@given(ops=OPS)
@example(ops=[("issue", 0), ("spend", 0, -500), ("spend", 0, "all"), ("register", 0, 1), ("refund", 0, Fraction(1)),
              ("spend", 0, "all"), ("spend", 0, "all"), ("advance", 60), ("advance", 60), ("expire",)])
@example(ops=[("issue", 0), ("issue", 1), ("spend", 1, 17_000), ("advance", 60), ("refund", 1, Fraction(1, 2)),
              ("advance", 60), ("spend", 1, 1), ("expire",), ("expire",), ("spend", 1, 1), ("register", 1, 1)])
def test_card_balances_follow_the_reference_model_through_any_sequence(chain, clinic_a, ops):
    with transaction.atomic():
        _run(chain, clinic_a, ops)
        transaction.set_rollback(True)


def _run(chain, clinic_a, ops):
    giver = CustomerFactory(chain=chain, home_clinic=clinic_a)
    people = [giver, CustomerFactory(chain=chain, home_clinic=clinic_a), CustomerFactory(chain=chain, home_clinic=clinic_a)]
    programme = ProgrammeFactory(chain=chain, face_value_fen=FACE, valid_months=3, limit_per_period=100)
    t = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)
    cards: list[CardModel] = []
    by_key: dict[int, CardModel] = {}
    breakage = 0
    n = 0
    for op in ops:
        n += 1
        before = _counts()
        kind = op[0]
        if kind == "advance":
            t += dt.timedelta(days=op[1])
        elif kind == "issue":
            card = friend_card_issue(member=giver, programme=programme, trigger="t", key=f"k{op[1]}", as_of=t)
            if op[1] in by_key:  # a replay: the same card, nothing written
                assert card.pk == by_key[op[1]].card.pk and _counts() == before
            else:
                by_key[op[1]] = CardModel(card, card.expires_at)
                cards.append(by_key[op[1]])
                assert card.expires_at > t
        elif kind == "expire":
            due = [m for m in cards if not m.status_expired and m.expires_at is not None and m.expires_at <= t]
            assert giftcards_expire(as_of=t) == len(due)
            for m in due:
                m.expired += m.balance
                breakage += m.balance
                m.balance, m.status_expired = 0, True
            again = _counts()
            assert giftcards_expire(as_of=t) == 0 and _counts() == again  # idempotent
        elif not cards:
            continue
        elif kind == "spend":
            m = cards[op[1] % len(cards)]
            amount = (m.balance or 1) if op[2] == "all" else op[2]
            view = _card_view(m.card)
            if amount <= 0:  # a spend is of a positive amount: anything else would credit the card
                with pytest.raises(ValidationFailed):
                    giftcard_spend(card=m.card, amount_fen=amount, key=f"s{n}", source=f"order:{n}", at=t)
                assert _counts() == before and _card_view(m.card) == view
            elif m.status_expired or (m.expires_at is not None and m.expires_at <= t):
                with pytest.raises(Expired):
                    giftcard_spend(card=m.card, amount_fen=amount, key=f"s{n}", source=f"order:{n}", at=t)
                assert _counts() == before and _card_view(m.card) == view
            elif amount > m.balance:
                with pytest.raises(InsufficientBalance):
                    giftcard_spend(card=m.card, amount_fen=amount, key=f"s{n}", source=f"order:{n}", at=t)
                assert _counts() == before and _card_view(m.card) == view
            else:
                tx = giftcard_spend(card=m.card, amount_fen=amount, key=f"s{n}", source=f"order:{n}", at=t)
                m.balance -= amount
                m.spends.append([tx, amount, Fraction(0), 0])
                # a replay of the same spend changes nothing (no second "used" event either)
                again = _counts()
                assert giftcard_spend(card=m.card, amount_fen=amount, key=f"s{n}", source=f"order:{n}", at=t).pk == tx.pk
                assert _counts() == again
        elif kind == "refund":
            m = cards[op[1] % len(cards)]
            open_spends = [s for s in m.spends if s[2] < op[2]]
            if not open_spends or m.status_expired:
                continue  # refunds of a card already voided: see the separate test below
            s = open_spends[0]
            target = s[1] * op[2].numerator // op[2].denominator
            giftcard_spend_reverse(card=m.card, original=s[0], key=f"r{n}", upto=op[2])
            m.balance += target - s[3]
            s[2], s[3] = op[2], target
        elif kind == "register":
            m = cards[op[1] % len(cards)]
            person = people[op[2]]
            view = _card_view(m.card)
            if m.holder == person.pk:
                giftcard_holder_register(card=m.card, customer=person, as_of=t)
                assert _counts() == before
            elif op[2] == 0:
                with pytest.raises(GiverNotHolder):
                    giftcard_holder_register(card=m.card, customer=person, as_of=t)
                assert _counts() == before and _card_view(m.card) == view
            elif m.holder is not None:
                with pytest.raises(AlreadyUsed):
                    giftcard_holder_register(card=m.card, customer=person, as_of=t)
                assert _counts() == before and _card_view(m.card) == view
            elif m.status_expired or m.expires_at <= t:
                with pytest.raises(Expired):
                    giftcard_holder_register(card=m.card, customer=person, as_of=t)
                assert _counts() == before and _card_view(m.card) == view
            else:
                giftcard_holder_register(card=m.card, customer=person, as_of=t)
                m.holder, m.expires_at = person.pk, None
        _check(chain, cards, breakage, t)


def _check(chain, cards, breakage, t):
    codes = [m.card.code for m in cards]
    assert len(set(codes)) == len(codes)
    for m in cards:
        card = GiftCard.objects.select_related("account").get(pk=m.card.pk)
        assert m.balance == m.issued - sum(s[1] - s[3] for s in m.spends) - m.expired >= 0
        assert card.account.balance == m.balance, (card.code, card.account.balance, m.balance)
        assert card.expires_at == m.expires_at
        lots_left = sum(Lot.objects.filter(account=card.account).values_list("remaining", flat=True))
        assert lots_left == m.balance
        if m.status_expired:
            assert card.status == CardStatus.EXPIRED
        else:
            assert card.status != CardStatus.EXPIRED
            if m.expires_at is None or m.expires_at > t:
                # what it can spend now is all of its balance (a registered card keeps it for good)
                assert giftcard_balance(card, at=t) == m.balance
                assert giftcard_balance(card, at=t + dt.timedelta(days=3650)) == (m.balance if m.expires_at is None
                                                                                  else 0)
    assert system_account(chain_id=chain.id, kind=AccountKind.BREAKAGE).balance == breakage
    assert ledger_check(chain_id=chain.id) == []


def test_a_refund_after_the_holder_registered_an_emptied_card_stays_valid_for_good(chain, clinic_a):
    """A card spent in full, then registered by its holder (the card is valid for good), then the bill refunded: the
    value went back into the card's old lot, which kept the old expiry, so it could not be spent after that date and
    the ledger's expiry job voided it, though the card shows no expiry."""
    giver, friend = (CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(2))
    programme = ProgrammeFactory(chain=chain, face_value_fen=FACE, valid_months=3)
    t = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)
    card = friend_card_issue(member=giver, programme=programme, trigger="t", key="k1", as_of=t)
    spend = giftcard_spend(card=card, amount_fen=FACE, key="s1", source="order:1", at=t + dt.timedelta(days=1))
    giftcard_holder_register(card=card, customer=friend, as_of=t + dt.timedelta(days=2))
    # when the bill is refunded
    giftcard_spend_reverse(card=card, original=spend, key="r1", upto=Fraction(1))
    # then the card can spend it after its old expiry, and no expiry job voids it
    later = t + dt.timedelta(days=200)
    assert giftcard_balance(card, at=later) == FACE
    from smileloop.ledger.services import lots_expire

    lots_expire(chain_id=chain.id, as_of=later)
    assert giftcards_expire(as_of=later) == 0
    card.account.refresh_from_db()
    assert card.account.balance == FACE
    card.refresh_from_db()
    giftcard_spend(card=card, amount_fen=FACE, key="s2", source="order:2", at=later)
    assert ledger_check(chain_id=chain.id) == []


# --- vouchers ----------------------------------------------------------------------------------------------------


VOUCHER_OPS = st.lists(st.one_of(
    st.tuples(st.just("issue"), st.integers(0, 2)),
    st.tuples(st.just("redeem"), st.integers(0, 3),
              st.sampled_from([30_000, -10, 30_001, 12_345, 0, 1])),
    st.tuples(st.just("reverse"), st.integers(0, 3), st.sampled_from([Fraction(1, 2), Fraction(1)])),
    st.tuples(st.just("expire")),
    st.tuples(st.just("advance"), st.integers(1, 20)),
), min_size=1, max_size=12).map(lambda ops: [("issue", 0), *ops])


@HYPOTHESIS
@given(ops=VOUCHER_OPS)
@example(ops=[("issue", 0), ("redeem", 0, 30_001), ("redeem", 0, -10), ("redeem", 0, 12_345),
              ("reverse", 0, Fraction(1, 2)), ("advance", 20), ("advance", 20), ("expire",), ("reverse", 0, Fraction(1))])
def test_vouchers_are_single_use_and_their_value_goes_to_sales_or_breakage(chain, clinic_a, catalogue, ops):
    with transaction.atomic():
        _run_vouchers(chain, clinic_a, catalogue, ops)
        transaction.set_rollback(True)


def _run_vouchers(chain, clinic_a, catalogue, ops):
    from smileloop.giftcards.tests.factories import CampaignFactory

    campaign = CampaignFactory(chain=chain, item=catalogue["CL01"], valid_days=30)  # worth 30000
    value = 30_000
    t = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)
    vouchers: dict[int, dict] = {}
    order: list[dict] = []
    sales_start = system_account(chain_id=chain.id, kind=AccountKind.SALES).balance
    n = 0
    for op in ops:
        n += 1
        before = _counts()
        kind = op[0]
        if kind == "advance":
            t += dt.timedelta(days=op[1])
        elif kind == "issue":
            v = voucher_issue(campaign=campaign, key=f"v{op[1]}", as_of=t)
            if op[1] in vouchers:
                assert v.pk == vouchers[op[1]]["v"].pk and _counts() == before
            else:
                vouchers[op[1]] = {"v": v, "balance": value, "state": "issued", "tx": None, "used": 0, "share": 0,
                                   "back": 0}
                order.append(vouchers[op[1]])
        elif kind == "expire":
            due = [m for m in order if m["state"] == "issued" and m["v"].expires_at <= t]
            assert giftcards_expire(as_of=t) == len(due)
            for m in due:
                m["balance"], m["state"] = 0, "expired"
            again = _counts()
            assert giftcards_expire(as_of=t) == 0 and _counts() == again
        elif not order:
            continue
        elif kind == "redeem":
            m = order[op[1] % len(order)]
            used = op[2]
            if m["state"] != "issued" or m["v"].expires_at <= t:
                with pytest.raises((AlreadyUsed, Expired)):
                    voucher_redeem(voucher=m["v"], used_fen=used, key=f"r{n}", source=f"order:{n}", at=t)
                assert _counts() == before
            elif not 0 < used <= m["balance"]:
                with pytest.raises(ValidationFailed):  # a voucher never pays more than it holds, nor less than 1 fen
                    voucher_redeem(voucher=m["v"], used_fen=used, key=f"r{n}", source=f"order:{n}", at=t)
                assert _counts() == before
            else:
                m["tx"] = voucher_redeem(voucher=m["v"], used_fen=used, key=f"r{n}", source=f"order:{n}", at=t)
                m["state"], m["used"], m["share"], m["back"], m["balance"] = "redeemed", used, 0, 0, 0
        elif kind == "reverse":
            m = order[op[1] % len(order)]
            if m["tx"] is None or m["share"] >= op[2] or m["state"] != "redeemed":
                continue
            voucher_redeem_reverse(voucher=m["v"], original=m["tx"], key=f"b{n}", upto=op[2])
            total = m["tx"].entries.filter(account=m["v"].account).get().amount * -1
            back = total * op[2].numerator // op[2].denominator
            m["balance"] += back - m["back"]
            m["share"], m["back"] = op[2], back
            if op[2] == 1:
                m["state"], m["tx"] = "issued", None
        for m in order:
            v = Voucher.objects.select_related("account").get(pk=m["v"].pk)
            assert v.account.balance == m["balance"] >= 0
            assert v.status == {"issued": VoucherStatus.ISSUED, "redeemed": VoucherStatus.REDEEMED,
                                "expired": VoucherStatus.EXPIRED}[m["state"]]
        assert system_account(chain_id=chain.id, kind=AccountKind.BREAKAGE).balance >= 0
        assert system_account(chain_id=chain.id, kind=AccountKind.SALES).balance >= sales_start
        assert ledger_check(chain_id=chain.id) == []
