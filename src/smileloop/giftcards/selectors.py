"""Reads over cards and vouchers. A code is a bearer instrument valid at every clinic of the chain, so the
look-up by code is scoped to the chain; lists about a customer take the staff Scope first."""

import datetime as dt
from dataclasses import dataclass

from smileloop.core.scoping import Scope
from smileloop.core.sql import select_model, select_models
from smileloop.customers.models import Customer
from smileloop.customers.normalize import name_masked
from smileloop.customers.selectors import customer_queryset, customer_visible
from smileloop.giftcards.codes import code_normalize
from smileloop.giftcards.errors import WrongCode
from smileloop.giftcards.models import GiftCard, GiftCardEvent, GiftCardProgramme, Voucher, VoucherCampaign
from smileloop.ledger.models import Entry
from smileloop.ledger.services import available_balance, available_balances


def giftcard_get_by_code(*, chain_id: int, code: str, for_update: bool = False) -> GiftCard:
    normal = code_normalize(code)
    qs = GiftCard.objects.select_related("programme", "account", "giver", "holder")
    if for_update:
        qs = qs.select_for_update(of=("self",))
    card = qs.filter(chain_id=chain_id, code=normal).first() if normal else None
    if card is None:
        raise WrongCode(f"No gift card with the code {code!r}", field="code")
    return card


def giftcard_for_payment(*, chain_id: int, code: str, at: dt.datetime) -> GiftCard:
    """`giftcard_get_by_code` for a bill (checkout): the card with its programme and account but not the people
    (the join of two customer rows costs more to build than the rest of the read), and `balance_now`, what it
    can spend at `at` (`giftcard_balance`)."""
    normal = code_normalize(code)
    card = (select_model(GiftCard, "t0.chain_id = %s AND t0.code = %s", [chain_id, normal],
                         related=("programme", "account"), order_by="t0.issued_at DESC, t0.id DESC")
            if normal else None)
    if card is None:
        raise WrongCode(f"No gift card with the code {code!r}", field="code")
    card.balance_now = available_balance(card.account, at=at)
    return card


def voucher_get_by_code(*, chain_id: int, code: str, for_update: bool = False) -> Voucher:
    normal = code_normalize(code)
    qs = Voucher.objects.select_related("campaign__item", "account", "customer")
    if for_update:
        qs = qs.select_for_update(of=("self",))
    voucher = qs.filter(chain_id=chain_id, code=normal).first() if normal else None
    if voucher is None:
        raise WrongCode(f"No voucher with the code {code!r}", field="code")
    return voucher


def giftcard_balance(card: GiftCard, *, at: dt.datetime | None = None) -> int:
    """What can be spent now (lots not expired): the ledger account's available balance."""
    return available_balance(card.account, at=at)


def card_is_expired(card: GiftCard, at: dt.datetime) -> bool:
    return card.expires_at is not None and card.expires_at <= at


@dataclass
class HistoryRow:
    at: dt.datetime
    what: str
    amount_fen: int | None
    detail: str


def giftcard_history(card: GiftCard) -> list[HistoryRow]:
    """The card's events and its ledger entries, oldest first (the look-up page)."""
    rows = [HistoryRow(e.occurred_at, e.get_kind_display(), None, e.detail) for e in card.events.all()]
    for entry in Entry.objects.filter(account=card.account).select_related("transaction").order_by("id"):
        tx = entry.transaction
        rows.append(HistoryRow(tx.created_at, tx.get_reason_display(), entry.amount, tx.source or tx.memo))
    return sorted(rows, key=lambda r: (r.at, r.amount_fen is not None))


def voucher_history(voucher: Voucher) -> list[HistoryRow]:
    rows = []
    for entry in Entry.objects.filter(account=voucher.account).select_related("transaction").order_by("id"):
        tx = entry.transaction
        rows.append(HistoryRow(tx.created_at, tx.get_reason_display(), entry.amount, tx.source or tx.memo))
    return rows


@dataclass(frozen=True)
class PersonRef:
    """A person a card or voucher names (giver, holder, the patient a voucher was issued to), as the viewer may see
    them: in their scope by name and id; outside it (another clinic's patient) masked, 张*, and without an id."""

    id: int | None
    name: str


def person_ref(scope: Scope, customer: Customer | None) -> PersonRef | None:
    if customer is None:
        return None
    if customer_visible(scope, customer):
        return PersonRef(customer.id, customer.name)
    return PersonRef(None, name_masked(customer.name))


@dataclass
class CodeLookup:
    """A code looked up by a staff member: the card or the voucher, what it can spend, its history, and the people
    it names as `person_ref` shows them (the history's sentences name them the same way)."""

    card: GiftCard | None
    voucher: Voucher | None
    balance_fen: int
    history: list[HistoryRow]
    giver: PersonRef | None = None
    holder: PersonRef | None = None


def code_lookup(scope: Scope, code: str) -> CodeLookup:
    """The card or voucher with this code in the staff member's chain. A code is a bearer instrument valid at every
    clinic, so the look-up is chain-wide; the people it names are not: a patient outside the scope is shown
    masked and without an id, here and in the history (PIPL: a code is no way to another clinic's patients).
    Raises WrongCode for an unknown code."""
    try:
        card = giftcard_get_by_code(chain_id=scope.chain_id, code=code)
    except WrongCode:
        voucher = voucher_get_by_code(chain_id=scope.chain_id, code=code)
        # what it can pay now, as for a card: past its expiry (before the nightly job voids it) nothing
        return CodeLookup(None, voucher, available_balance(voucher.account),
                          _history_in_scope(scope, voucher_history(voucher), [voucher.customer]),
                          holder=person_ref(scope, voucher.customer))
    named = [card.giver, card.holder]
    users = {e.data.get("customer_id") for e in card.events.all() if isinstance(e.data, dict)} - {None}
    users -= {c.pk for c in named if c is not None}
    named += list(Customer.objects.filter(chain_id=scope.chain_id, pk__in=users)) if users else []
    return CodeLookup(card, None, giftcard_balance(card), _history_in_scope(scope, giftcard_history(card), named),
                      giver=person_ref(scope, card.giver), holder=person_ref(scope, card.holder))


def _history_in_scope(scope: Scope, rows: list[HistoryRow], people: list[Customer | None]) -> list[HistoryRow]:
    """The rows with the names of `people` outside the scope masked in their details (the events' sentences were
    stored with the names in them)."""
    hidden = sorted({c.name for c in people if c is not None and c.name and not customer_visible(scope, c)},
                    key=len, reverse=True)
    if not hidden:
        return rows
    for row in rows:
        for name in hidden:
            if name in row.detail:
                row.detail = row.detail.replace(name, name_masked(name))
    return rows


def programme_list(scope: Scope, *, active_only: bool = True):
    qs = GiftCardProgramme.objects.filter(chain_id=scope.chain_id)
    return qs.filter(is_active=True) if active_only else qs


def campaign_list(scope: Scope, *, active_only: bool = True):
    qs = VoucherCampaign.objects.filter(chain_id=scope.chain_id).select_related("item")
    return qs.filter(is_active=True) if active_only else qs


def giftcards_for_customer(scope: Scope, customer: Customer) -> dict:
    """Cards the customer gave and holds, and their vouchers (NotFound-safe: empty outside the scope)."""
    if not customer_queryset(scope).filter(pk=customer.pk).exists():
        return {"given": [], "held": [], "vouchers": []}
    return _cards_of(customer)


def _cards_of(customer: Customer) -> dict:
    """Plain SQL (core.sql) on every 360 page: the joined querysets cost more to compile than to run."""
    cards = select_models(GiftCard, "(t0.giver_id = %s OR t0.holder_id = %s)", [customer.pk, customer.pk],
                          related=("programme", "account", "giver", "holder"),
                          tail="ORDER BY t0.issued_at DESC, t0.id DESC LIMIT 50")
    # What active cards can spend now (lots available and not expired), all cards in one query.
    active = [card.account for card in cards if card.status == "active"]
    available = available_balances(active) if active else {}
    for card in cards:
        card.balance_now = available.get(card.account_id, 0) if card.status == "active" else card.account.balance
    return {"given": [c for c in cards if c.giver_id == customer.pk],
            "held": [c for c in cards if c.holder_id == customer.pk],
            "vouchers": select_models(Voucher, "t0.customer_id = %s", [customer.pk], related=("campaign",),
                                      tail="ORDER BY t0.issued_at DESC, t0.id DESC LIMIT 50")}


def giftcards_section(scope: Scope, customer: Customer) -> dict:
    """The 360 page's section loader (customers.sections). The page obtained `customer` through
    customer_get(scope, …), so the scope is not checked again here."""
    return _cards_of(customer)


def giftcard_events(card: GiftCard):
    return GiftCardEvent.objects.filter(card=card).order_by("occurred_at", "id")
