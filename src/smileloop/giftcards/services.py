"""Writes for gift cards and vouchers. Every value movement is a ledger posting (smileloop.ledger); these
rows carry the terms, the people and the history.

- `friend_card_issue`: at most `limit_per_period` cards per member per `limit_period_months`, idempotent on
  `key`; credits the card's GIFT_CARD account from PROMOTION with a lot expiring at `expires_at`, and records
  the due reminders (giver and holder, days 7/30/60/80 by default).
- `giftcard_holder_register`: a holder who registers within the validity keeps the card valid for good: the
  card's expiry and its lots' expiry are removed (lots are derived state; the change is recorded as an event).
- `giftcard_spend` / `voucher_redeem` (called by checkout) debit to SALES; a voucher is single-use: the part
  of its value a bill does not use is voided to BREAKAGE in the same transaction.
- `giftcards_expire`: voids what is left on expired cards and vouchers through a ledger entry.
"""

import datetime as dt
from fractions import Fraction

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from smileloop.clinics.models import Staff
from smileloop.core.dates import add_months, day_end
from smileloop.core.errors import Conflict, FieldError, ValidationFailed
from smileloop.core.money import fen_to_yuan
from smileloop.core.sql import execute as sql_execute
from smileloop.customers.models import Customer
from smileloop.customers.services import customer_lock_live, customers_refuse_erased
from smileloop.giftcards.codes import code_new
from smileloop.giftcards.enums import (
    CardEventKind,
    CardStatus,
    ProgrammeKind,
    ReminderRecipient,
    VoucherStatus,
    VoucherValueKind,
)
from smileloop.giftcards.errors import (
    AlreadyUsed,
    Expired,
    GiverNotHolder,
    LimitReached,
    NotFriendCardBenefit,
)
from smileloop.giftcards.models import (
    GiftCard,
    GiftCardEvent,
    GiftCardProgramme,
    GiftCardReminder,
    Voucher,
    VoucherCampaign,
)
from smileloop.giftcards.sentences import (
    CARD_EXPIRED,
    CARD_FIRST_USED,
    CARD_ISSUED,
    CARD_REFUNDED,
    CARD_REGISTERED,
    CARD_USED,
)
from smileloop.ledger.enums import AccountKind, EntryReason
from smileloop.ledger.models import Account, LedgerTransaction, Lot
from smileloop.ledger.services import (
    LotTerms,
    Posting,
    PostRequest,
    account_for,
    accounts_lock,
    ledger_post,
    ledger_post_many,
    ledger_reverse,
    system_account,
)

FRIEND_CARD_ACTION = "issue_friend_card"
GIVER_NOT_HOLDER = gettext_noop("The member who gives a friends-and-family card cannot register as its holder: the "
                                "card is for a friend")


def _unique_code(chain_id: int) -> str:
    for _attempt in range(10):
        code = code_new()
        if not (GiftCard.objects.filter(chain_id=chain_id, code=code).exists()
                or Voucher.objects.filter(chain_id=chain_id, code=code).exists()):
            return code
    raise RuntimeError("could not draw a free code in 10 attempts")  # 31^12 codes: never in practice


def _event(card: GiftCard, kind: str, at: dt.datetime, detail: str = "", data: dict | None = None,
           actor: Staff | None = None) -> GiftCardEvent:
    return GiftCardEvent.objects.create(card=card, kind=kind, occurred_at=at, detail=detail[:255], data=data or {},
                                        actor=actor)


@transaction.atomic
def friend_card_issue(*, member: Customer, programme: GiftCardProgramme, trigger: str, key: str,
                      actor: Staff | None = None, as_of: dt.datetime | None = None) -> GiftCard:
    """Issue a card the member gives to a friend. Idempotent on `key` (a replay returns the first card).
    Raises LimitReached (nothing written) when the member already got `limit_per_period` cards of this
    programme within the last `limit_period_months`. The key is looked up under the member's lock: looked up
    before it, a copy sent at the same moment waited for the first, then counted the first's card against the
    limit and answered LimitReached instead of that card."""
    # Serialise issues for one member. A merge meanwhile is NotFound: the card would be given by the tombstone.
    locked = customer_lock_live(member.pk)
    existing = GiftCard.objects.filter(chain_id=member.chain_id, issue_key=key).first()
    if existing is not None:
        if (existing.giver_id, existing.programme_id) != (member.pk, programme.pk):
            raise Conflict(f"idempotency key {key!r} was already used to issue another card",
                           code="idempotency_key_reused", field="key")
        return existing
    customers_refuse_erased(member.pk, field="member_id", locked=locked)
    if programme.chain_id != member.chain_id or not programme.is_active:
        raise ValidationFailed([FieldError("programme", "is not an active programme of this chain", str(programme.pk))])
    at = as_of or timezone.now()
    since = add_months(at, -programme.limit_period_months)
    given = GiftCard.objects.filter(giver=member, programme=programme, issued_at__gt=since).count()
    if given >= programme.limit_per_period:
        raise LimitReached(f"{member.name} already received {given} {programme.name} within "
                           f"{programme.limit_period_months} months (limit {programme.limit_per_period})",
                           field="member")
    expires_at = day_end(add_months(at, programme.valid_months))
    code = _unique_code(member.chain_id)
    account = account_for(chain_id=member.chain_id, kind=AccountKind.GIFT_CARD, code=code)
    try:
        with transaction.atomic():
            card = GiftCard.objects.create(
                chain_id=member.chain_id, programme=programme, code=code, account=account, giver=member,
                face_value_fen=programme.face_value_fen, excluded_categories=list(programme.excluded_categories),
                exclude_special_price=programme.exclude_special_price, trigger=trigger[:100], issue_key=key,
                issued_at=at, expires_at=expires_at, issued_by=actor)
    except IntegrityError:  # a concurrent twin with the same key won
        return GiftCard.objects.get(chain_id=member.chain_id, issue_key=key)
    ledger_post(chain_id=member.chain_id, key=f"giftcard:{card.id}:issue", reason=EntryReason.ISSUE, actor=actor,
                source=f"giftcard:{card.id}", memo=f"{programme.name} {code} given by customer {member.id}", at=at,
                postings=[Posting(account, programme.face_value_fen, terms=LotTerms(earned_at=at, available_at=at,
                                                                                    expires_at=expires_at)),
                          Posting(system_account(chain_id=member.chain_id, kind=AccountKind.PROMOTION),
                                  -programme.face_value_fen)])
    account.refresh_from_db(fields=["balance"])
    _event(card, CardEventKind.ISSUED, at,
           (CARD_ISSUED % {"programme": programme.name, "member": member.name, "trigger": trigger})[:255],
           {"trigger": trigger, "face_value_fen": programme.face_value_fen}, actor)
    GiftCardReminder.objects.bulk_create([
        GiftCardReminder(card=card, recipient=recipient, day=day, due_on=timezone.localdate(at) + dt.timedelta(days=day))
        for day in sorted(set(programme.reminder_days)) for recipient in ReminderRecipient.values
        if expires_at is None or at + dt.timedelta(days=day) < expires_at
    ])
    return card


def _programme_for_benefit(membership, benefit) -> GiftCardProgramme:
    data = benefit.action_data or {}
    qs = GiftCardProgramme.objects.filter(chain_id=membership.chain_id, kind=ProgrammeKind.FRIEND_CARD, is_active=True)
    if data.get("programme"):
        programme = qs.filter(code=data["programme"]).first()
        if programme is None:
            raise NotFriendCardBenefit(f"benefit {benefit.name} names the programme {data['programme']!r}, which is "
                                       "not an active friends-and-family programme", field="benefit")
        return programme
    amount, months = data.get("amount_fen"), data.get("valid_months")
    # Membership bounds these terms when the benefit is saved; one saved before (100000 months is past the year
    # 9999) is refused by name rather than made into a programme no card date can be computed from.
    for name, value, high in (("amount_fen", amount, 10**10), ("valid_months", months, 1200)):
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= high):
            raise NotFriendCardBenefit(f"benefit {benefit.name} has {name} = {value!r} in its action data, outside "
                                       f"1–{high}; correct the benefit first", field="benefit")
    if amount:
        match = qs.filter(face_value_fen=amount, **({"valid_months": months} if months else {})).order_by("id").first()
        if match:
            return match
        programme, _created = GiftCardProgramme.objects.get_or_create(
            chain_id=membership.chain_id, code=f"friend-card-{amount}-{months or 3}",
            defaults={"name": benefit.name[:100], "face_value_fen": amount, "valid_months": months or 3})
        return programme
    programme = qs.order_by("id").first()
    if programme is None:
        raise NotFriendCardBenefit("no friends-and-family programme is configured for this chain", field="benefit")
    return programme


def friend_card_issue_for_benefit(*, membership, benefit, key: str, actor: Staff | None = None,
                                  as_of: dt.datetime | None = None) -> GiftCard:
    """Membership's hidden benefit with action "issue_friend_card" fired (plan half done / finished): issue
    the member's card. The programme is the one the benefit's action_data names ({"programme": code}), else
    the active one with its amount and validity ({"amount_fen": 60000, "valid_months": 3}; created from
    them if the chain has none yet), else the chain's first active friends-and-family programme."""
    if benefit.action_code != FRIEND_CARD_ACTION:
        raise NotFriendCardBenefit(f"benefit {benefit.name} does not issue a friends-and-family card", field="benefit")
    programme = _programme_for_benefit(membership, benefit)
    return friend_card_issue(member=membership.customer, programme=programme, key=key, actor=actor, as_of=as_of,
                             trigger=benefit.name)  # shown to staff as written, in their words; no internal ids


def friend_card_issue_for_reveal(*, reveal, actor: Staff | None = None,
                                 as_of: dt.datetime | None = None) -> GiftCard | None:
    """The card of a benefit revealed by staff or by the staff pages' and the API's evaluation (registered with
    membership's `reveal_action_register`). Its key is the reveal's, as checkout's (`benefit-reveal:{id}`): one
    card per reveal, however often it runs. A card the programme's limit refuses, or a chain without a programme,
    leaves the reveal standing, as at checkout (None)."""
    try:
        return friend_card_issue_for_benefit(membership=reveal.membership, benefit=reveal.benefit,
                                             key=f"benefit-reveal:{reveal.id}", actor=actor, as_of=as_of)
    except (LimitReached, NotFriendCardBenefit):
        return None


@transaction.atomic
def giftcard_holder_register(*, card: GiftCard, customer: Customer, actor: Staff | None = None,
                             as_of: dt.datetime | None = None) -> GiftCard:
    """The holder registered at the clinic. Within the validity the card then stays valid: its expiry and
    its open lots' expiry are removed (recorded as an event with the old dates). Idempotent for the same
    holder; raises Expired (nothing changed) after the expiry date, and GiverNotHolder for the member who gave it
    (a card the giver keeps for good is not the friend's card the programme pays for)."""
    at = as_of or timezone.now()
    # The person first, the erasure's order: an erasure meanwhile is seen (refused), or sees the card it now holds. A
    # merge meanwhile is NotFound: the card would be held by the tombstone, out of the survivor's sight.
    locked = customer_lock_live(customer.pk)
    card = GiftCard.objects.select_for_update().get(pk=card.pk)
    if card.holder_registered_at is not None and card.holder_id == customer.pk:
        return card
    if customer.chain_id != card.chain_id:
        raise ValidationFailed([FieldError("customer", "is not a customer of this chain", str(customer.pk))])
    customers_refuse_erased(customer.pk, field="customer_id", locked=locked)
    if card.giver_id is not None and card.giver_id == customer.pk:
        raise GiverNotHolder(GIVER_NOT_HOLDER, field="customer_id")
    if card.holder_registered_at is not None:
        raise AlreadyUsed(f"card {card.code} is already registered to another holder", field="code")
    if card.status == CardStatus.EXPIRED or (card.expires_at is not None and card.expires_at <= at):
        raise Expired(f"card {card.code} expired on {timezone.localdate(card.expires_at)}", field="code")
    old = card.expires_at
    lots = _lots_expiry_remove(card)
    card.holder, card.holder_registered_at, card.expires_at = customer, at, None
    card.save(update_fields=["holder", "holder_registered_at", "expires_at"])
    GiftCardReminder.objects.filter(card=card, handled_at__isnull=True, cancelled_at__isnull=True).update(cancelled_at=at)
    _event(card, CardEventKind.HOLDER_REGISTERED, at,
           CARD_REGISTERED % {"name": customer.name, "day": timezone.localdate(at)},
           {"customer_id": customer.pk, "old_expires_at": old.isoformat() if old else None, "lots": lots}, actor)
    return card


def _lots_expiry_remove(card: GiftCard) -> list[int]:
    """Lots are derived state of the ledger: their expiry follows the card's terms. Removing the expiry does
    not move value (no entry); the caller records the change as a GiftCardEvent. Every lot of the card, spent ones
    too: a refund of a spend gives the value back into the lot it came from, which would otherwise still expire on
    the old date (unspendable after it, voided by the ledger's expiry job) on a card valid for good."""
    ids = list(Lot.objects.filter(account=card.account, expires_at__isnull=False).values_list("id", flat=True))
    Lot.objects.filter(id__in=ids).update(expires_at=None)
    return ids


def giftcard_holder_note(*, card: GiftCard, customer: Customer, at: dt.datetime, actor: Staff | None = None) -> None:
    """The first customer who pays with a card becomes its known holder (it does not remove the expiry)."""
    event = _holder_known(card, customer, at, actor)
    if event is not None:
        event.save()


def _holder_known(card: GiftCard, customer: Customer, at: dt.datetime, actor: Staff | None) -> GiftCardEvent | None:
    """Record `customer` as the card's known holder if it has none yet; the event to write, or None."""
    if card.holder_id is not None:
        return None
    # Another payer's bill may have made the card theirs since it was read: then this payer is named nowhere (an
    # event naming them on a card they neither gave nor hold is one their erasure's hook never finds).
    if not sql_execute(f"UPDATE {GiftCard._meta.db_table} SET holder_id = %s WHERE id = %s AND holder_id IS NULL",
                       [customer.pk, card.pk]):
        card.holder_id = GiftCard.objects.filter(pk=card.pk).values_list("holder_id", flat=True).first()
        return None
    card.holder = customer
    return GiftCardEvent(card=card, kind=CardEventKind.HOLDER_KNOWN, occurred_at=at,
                         detail=(CARD_FIRST_USED % {"name": customer.name})[:255], data={"customer_id": customer.pk}, actor=actor)


def giftcard_spend(*, card: GiftCard, amount_fen: int, key: str, source: str, actor: Staff | None = None,
                   at: dt.datetime | None = None, memo: str = "") -> LedgerTransaction:
    """Debit the card to SALES (the ledger refuses more than is available: InsufficientBalance). Idempotent on `key`:
    a replay returns the first transaction and records no second "used" event."""
    at = at or timezone.now()
    request = giftcard_spend_request(card=card, amount_fen=amount_fen, key=key, source=source, actor=actor, at=at,
                                     memo=memo)
    with transaction.atomic():
        replay = LedgerTransaction.objects.filter(chain_id=card.chain_id, idempotency_key=key).exists()
        tx = ledger_post_many([request])[0]
        if not replay:
            giftcard_spend_recorded(card=card, tx=tx, amount_fen=amount_fen, source=source, actor=actor, at=at)
    return tx


def giftcard_spend_request(*, card: GiftCard, amount_fen: int, key: str, source: str, actor: Staff | None = None,
                           at: dt.datetime, memo: str = "", sales: Account | None = None) -> PostRequest:
    """The ledger movement of `giftcard_spend`, checked (expiry) but not posted: checkout posts it with the
    bill's other movements, then calls `giftcard_spend_recorded`. `sales`: the chain's SALES account when the
    caller holds it. A spend is of a positive whole number of fen: a negative one would credit the card from SALES
    (a lot without expiry)."""
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
        raise ValidationFailed([FieldError("gift_cards", "a card pays a positive whole number of fen", str(amount_fen))])
    if card.status == CardStatus.EXPIRED or (card.expires_at is not None and card.expires_at <= at):
        raise Expired(f"card {card.code} expired", field="gift_cards")
    sales = sales or system_account(chain_id=card.chain_id, kind=AccountKind.SALES)
    return PostRequest(chain_id=card.chain_id, key=key, reason=EntryReason.SPEND, actor=actor, source=source,
                       memo=memo, at=at, postings=[Posting(card.account, -amount_fen), Posting(sales, amount_fen)])


def giftcard_spend_recorded(*, card: GiftCard, tx: LedgerTransaction, amount_fen: int, source: str,
                            actor: Staff | None = None, at: dt.datetime, payer: Customer | None = None) -> None:
    """After a spend was posted: the card's "used" event, and its status from the balance the posting left on
    `card.account` (the ledger updates the account objects it was given). `payer`: the customer who paid with
    it, noted as its holder on first use (`giftcard_holder_note`); both events are written in one INSERT."""
    events = [_holder_known(card, payer, at, actor)] if payer is not None else []
    events.append(GiftCardEvent(card=card, kind=CardEventKind.USED, occurred_at=at,
                                detail=(CARD_USED % {"yuan": fen_to_yuan(amount_fen), "source": source})[:255], data={"tx": tx.id}, actor=actor))
    GiftCardEvent.objects.bulk_create([e for e in events if e is not None])
    _status_refresh(card, refresh=False)


def giftcard_spend_reverse(*, card: GiftCard, original: LedgerTransaction, key: str, upto: Fraction,
                           actor: Staff | None = None) -> LedgerTransaction | None:
    """A refund gives back `upto` (cumulative share) of a spend; the lots keep their expiry. On a card that has
    expired since it paid, what comes back is past its expiry too: voided at once, as the expiry voided the rest
    (else the card would show a balance nobody can spend until the ledger's own expiry job)."""
    replay = LedgerTransaction.objects.filter(chain_id=card.chain_id, idempotency_key=key).exists()
    tx = ledger_reverse(original=original, key=key, upto=upto, actor=actor, reason=EntryReason.REFUND)
    if tx is not None and not replay:
        at = timezone.now()
        _event(card, CardEventKind.REFUNDED, at, CARD_REFUNDED % {"source": original.source}, {"tx": tx.id}, actor)
        card.status, card.expires_at = GiftCard.objects.filter(pk=card.pk).values_list("status", "expires_at").get()
        if card.status == CardStatus.EXPIRED:
            _void(card.chain_id, card.account, f"giftcard:{card.id}:expire:{tx.id}", f"giftcard:{card.id}",
                  max(at, card.expires_at))
            _event(card, CardEventKind.EXPIRED, at, CARD_EXPIRED % {"day": timezone.localdate(card.expires_at)},
                   {"tx": tx.id}, actor)
        _status_refresh(card)
    return tx


def _status_refresh(card: GiftCard, *, refresh: bool = True) -> None:
    if refresh:
        card.account.refresh_from_db(fields=["balance"])
    if card.status == CardStatus.EXPIRED:
        return
    status = CardStatus.ACTIVE if card.account.balance > 0 else CardStatus.EXHAUSTED
    if status != card.status:
        card.status = status
        sql_execute(f"UPDATE {GiftCard._meta.db_table} SET status = %s WHERE id = %s", [status, card.pk])


# --- vouchers ------------------------------------------------------------------------------------------


def voucher_value(campaign: VoucherCampaign) -> int:
    """Face value, or for a whole-line voucher of one item that item's list price (of one of a category: the
    campaign's face value is the most it covers)."""
    if campaign.value_kind == VoucherValueKind.WHOLE_LINE and campaign.item_id and not campaign.face_value_fen:
        return campaign.item.list_price_fen
    return campaign.face_value_fen


@transaction.atomic
def voucher_issue(*, campaign: VoucherCampaign, customer: Customer | None = None, key: str,
                  actor: Staff | None = None, as_of: dt.datetime | None = None) -> Voucher:
    """Issue one single-use voucher (idempotent on `key`), its value credited from PROMOTION. The key is looked up
    under the campaign's row lock (FOR NO KEY UPDATE: its vouchers' foreign keys never wait on it), so a copy sent at
    the same moment waits for the first and returns its voucher instead of an IntegrityError on the key."""
    list(VoucherCampaign.objects.select_for_update(no_key=True).filter(pk=campaign.pk).values_list("pk", flat=True))
    existing = Voucher.objects.filter(chain_id=campaign.chain_id, issue_key=key).first()
    if existing is not None:
        if (existing.campaign_id, existing.customer_id) != (campaign.pk, customer.pk if customer else None):
            raise Conflict(f"idempotency key {key!r} was already used to issue another voucher",
                           code="idempotency_key_reused", field="key")
        return existing
    if not campaign.is_active:
        raise ValidationFailed([FieldError("campaign", "is not active", campaign.code)])
    if customer is not None and customer.chain_id != campaign.chain_id:
        raise ValidationFailed([FieldError("customer", "is not a customer of this chain", str(customer.pk))])
    if customer is not None:
        customers_refuse_erased(customer.pk, field="customer_id")
    value = voucher_value(campaign)
    if value <= 0:
        raise ValidationFailed([FieldError("campaign", "has no value (set a face value)", campaign.code)])
    at = as_of or timezone.now()
    expires_at = day_end(at + dt.timedelta(days=campaign.valid_days))
    code = _unique_code(campaign.chain_id)
    account = account_for(chain_id=campaign.chain_id, kind=AccountKind.VOUCHER, code=code)
    voucher = Voucher.objects.create(chain_id=campaign.chain_id, campaign=campaign, code=code, account=account,
                                     customer=customer, value_fen=value, issue_key=key, issued_at=at,
                                     expires_at=expires_at)
    ledger_post(chain_id=campaign.chain_id, key=f"voucher:{voucher.id}:issue", reason=EntryReason.ISSUE, actor=actor,
                source=f"voucher:{voucher.id}", memo=f"{campaign.name} {code}", at=at,
                postings=[Posting(account, value, terms=LotTerms(earned_at=at, available_at=at, expires_at=expires_at)),
                          Posting(system_account(chain_id=campaign.chain_id, kind=AccountKind.PROMOTION), -value)])
    account.refresh_from_db(fields=["balance"])
    return voucher


def voucher_check(voucher: Voucher, at: dt.datetime) -> None:
    if voucher.status == VoucherStatus.REDEEMED:
        raise AlreadyUsed(f"voucher {voucher.code} was already redeemed on "
                          f"{timezone.localdate(voucher.redeemed_at)}", field="vouchers")
    if voucher.status == VoucherStatus.EXPIRED or voucher.expires_at <= at:
        raise Expired(f"voucher {voucher.code} expired on {timezone.localdate(voucher.expires_at)}", field="vouchers")


def voucher_redeem(*, voucher: Voucher, used_fen: int, key: str, source: str, actor: Staff | None = None,
                   at: dt.datetime | None = None) -> LedgerTransaction:
    """Redeem a single-use voucher on a bill: `used_fen` to SALES, the rest of its value voided (BREAKAGE)."""
    at = at or timezone.now()
    with transaction.atomic():
        request = voucher_redeem_request(voucher=voucher, used_fen=used_fen, key=key, source=source, actor=actor, at=at)
        tx = ledger_post_many([request])[0]
        voucher_redeem_recorded(voucher=voucher, tx=tx, at=at)
    return tx


def voucher_redeem_request(*, voucher: Voucher, used_fen: int, key: str, source: str, actor: Staff | None = None,
                           at: dt.datetime, sales: Account | None = None) -> PostRequest:
    """The ledger movement of `voucher_redeem`, checked but not posted, with the voucher row locked (call inside
    the caller's transaction). Checkout posts it in one `ledger_post_many` with the bill's other movements, so
    every account of a bill is locked once, in id order: posting it on its own first (holding SALES) and then
    the rest (a family wallet …) could deadlock against a family member's checkout that locks the same accounts
    in the other order. Then call `voucher_redeem_recorded`."""
    locked = Voucher.objects.select_for_update().select_related("account").get(pk=voucher.pk)
    voucher_check(locked, at)
    balance = locked.account.balance
    # What it pays is 1 fen up to its value: more would be paid to SALES out of BREAKAGE, a negative amount would
    # void more than the voucher holds.
    if not isinstance(used_fen, int) or isinstance(used_fen, bool) or not 0 < used_fen <= balance:
        raise ValidationFailed([FieldError("vouchers", f"voucher {locked.code} pays between 1 and {balance} fen",
                                           str(used_fen))])
    chain_id = locked.chain_id
    postings = [Posting(locked.account, -balance),
                Posting(sales or system_account(chain_id=chain_id, kind=AccountKind.SALES), used_fen)]
    if balance - used_fen:
        postings.append(Posting(system_account(chain_id=chain_id, kind=AccountKind.BREAKAGE), balance - used_fen))
    return PostRequest(chain_id=chain_id, key=key, reason=EntryReason.REDEEM, actor=actor, source=source, at=at,
                       memo=f"voucher {locked.code}", postings=postings)


def voucher_redeem_recorded(*, voucher: Voucher, tx: LedgerTransaction, at: dt.datetime) -> None:
    """After a redemption was posted (`tx`, as `giftcard_spend_recorded` takes it): the voucher is used up."""
    Voucher.objects.filter(pk=voucher.pk).update(status=VoucherStatus.REDEEMED, redeemed_at=at)


def voucher_redeem_reverse(*, voucher: Voucher, original: LedgerTransaction, key: str, upto: Fraction,
                           actor: Staff | None = None) -> LedgerTransaction | None:
    """A refund undoes `upto` (cumulative) of the redemption. Undone in full, the voucher is usable again;
    a part given back stays on the (redeemed) voucher's account until its expiry voids it."""
    tx = ledger_reverse(original=original, key=key, upto=upto, actor=actor, reason=EntryReason.REFUND)
    if upto == 1:
        Voucher.objects.filter(pk=voucher.pk).update(status=VoucherStatus.ISSUED, redeemed_at=None)
    return tx


# --- expiry --------------------------------------------------------------------------------------------


def giftcards_expire(*, as_of: dt.datetime | None = None) -> int:
    """Void what is left on cards and vouchers past their expiry: one ledger entry per card (debit its open
    lots to BREAKAGE), then mark them expired. Idempotent. Returns the number of cards and vouchers expired.
    Each card is voided, marked and recorded in one transaction, marked by a conditional UPDATE after its accounts'
    lock: a second run at the same moment (two workers) waits for the first, then finds it expired and records no
    second event; a run that dies half-way leaves no card voided but unmarked."""
    as_of = as_of or timezone.now()
    count = 0
    for card in GiftCard.objects.filter(expires_at__lte=as_of).exclude(status=CardStatus.EXPIRED).select_related(
            "account").order_by("id"):
        with transaction.atomic():
            _void(card.chain_id, card.account, f"giftcard:{card.id}:expire", f"giftcard:{card.id}", as_of)
            if not GiftCard.objects.filter(pk=card.pk).exclude(status=CardStatus.EXPIRED).update(
                    status=CardStatus.EXPIRED):
                continue
            # the day the card expired (what its page and a refused payment said), not the night this job noticed it
            _event(card, CardEventKind.EXPIRED, as_of, CARD_EXPIRED % {"day": timezone.localdate(card.expires_at)})
        count += 1
    for voucher in Voucher.objects.filter(expires_at__lte=as_of, status=VoucherStatus.ISSUED).select_related(
            "account").order_by("id"):
        with transaction.atomic():
            _void(voucher.chain_id, voucher.account, f"voucher:{voucher.id}:expire", f"voucher:{voucher.id}", as_of)
            if not Voucher.objects.filter(pk=voucher.pk, status=VoucherStatus.ISSUED).update(
                    status=VoucherStatus.EXPIRED):
                continue
        count += 1
    return count


@transaction.atomic
def _void(chain_id: int, account, key: str, source: str, as_of: dt.datetime) -> None:
    """The card's account and BREAKAGE are locked (id order, as the ledger's expiry locks them) before the lots are
    read: read unlocked, the ledger's expiry job could void them in between, and this posting then refused."""
    breakage = system_account(chain_id=chain_id, kind=AccountKind.BREAKAGE)
    accounts_lock([account.id, breakage.id])
    lots = dict(Lot.objects.filter(account=account, remaining__gt=0, expires_at__lte=as_of)
                .values_list("id", "remaining"))
    total = sum(lots.values())
    if not total:
        return  # the ledger's own expiry job may have voided the lots already
    ledger_post(chain_id=chain_id, key=key, reason=EntryReason.EXPIRE, source=source, at=as_of,
                postings=[Posting(account, -total, take=lots), Posting(breakage, total)])


__all__ = ["FRIEND_CARD_ACTION", "friend_card_issue", "friend_card_issue_for_benefit", "friend_card_issue_for_reveal",
           "giftcard_holder_note",
           "giftcard_holder_register", "giftcard_spend", "giftcard_spend_recorded", "giftcard_spend_request",
           "giftcard_spend_reverse", "giftcards_expire", "voucher_check",
           "voucher_issue", "voucher_redeem", "voucher_redeem_recorded", "voucher_redeem_request",
           "voucher_redeem_reverse", "voucher_value"]


def giftcards_erase_hook(*, customer: Customer, actor: Staff | None = None) -> dict:
    """Before a person's personal information is erased (customers.privacy): the events of the cards they gave or
    hold that name them name the anonymous record instead (the one rewrite of this history: PIPL erasure), and the
    reminders addressed to them are cancelled. The cards and their value stay (a card they gave is their friend's)."""
    from django.db.models import Q

    from smileloop.customers.privacy import ERASED_NAME

    anonymous = ERASED_NAME % {"id": customer.pk}
    events = [e for e in GiftCardEvent.objects.filter(Q(card__giver=customer) | Q(card__holder=customer))
              if customer.name and customer.name in e.detail]
    for event in events:
        event.detail = event.detail.replace(customer.name, anonymous)[:255]
    GiftCardEvent.objects.bulk_update(events, ["detail"])
    cancelled = GiftCardReminder.objects.filter(handled_at__isnull=True, cancelled_at__isnull=True).filter(
        Q(card__giver=customer, recipient=ReminderRecipient.GIVER)
        | Q(card__holder=customer, recipient=ReminderRecipient.HOLDER)).update(cancelled_at=timezone.now())
    return {"giftcard_events": len(events), "giftcard_reminders_cancelled": cancelled}


def giftcards_erase_obligations(customer: Customer) -> list:
    """The live gift cards the person holds with value on them: theirs to use, so an erasure waits for them to be
    used or given up on purpose (customers.privacy)."""
    from smileloop.customers.privacy import Obligation

    return [Obligation("gift_card", f"gift card {card.code} ¥{fen_to_yuan(card.account.balance)}", card.account.balance)
            for card in GiftCard.objects.filter(holder=customer, status=CardStatus.ACTIVE, account__balance__gt=0)
            .select_related("account").order_by("id")]
