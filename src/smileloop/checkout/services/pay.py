"""Paying a priced bill in one transaction (see the package docstring)."""

import datetime as dt
import hashlib
import json
from functools import partial

from django.db import transaction
from django.utils import timezone

from smileloop.checkout.errors import PaymentsMismatch, PriceChanged
from smileloop.checkout.models import (
    MovementRole,
    Settlement,
    SettlementMovement,
)
from smileloop.checkout.services.price import CASH_METHODS, TENDER_METHOD, PricedBill, _facts, checkout_price
from smileloop.clinics.models import Staff
from smileloop.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from smileloop.core.idempotency import service_key_check
from smileloop.core.sql import in_clause, lock_clause, select_model, select_models, select_rows
from smileloop.customers.models import Customer
from smileloop.customers.services import ERASED_REFUSED, customers_erasures_wait, customers_refuse_erased
from smileloop.giftcards import services as giftcard_services
from smileloop.giftcards.errors import LimitReached, NotFriendCardBenefit
from smileloop.giftcards.models import GiftCard
from smileloop.ledger.enums import AccountKind
from smileloop.ledger.services import PostRequest, accounts_for, ledger_post_many
from smileloop.loyalty import selectors as loyalty_selectors
from smileloop.loyalty import services as loyalty_services
from smileloop.membership import services as membership_services
from smileloop.membership.selectors import member_discount_and_own
from smileloop.visits.models import ServiceItem
from smileloop.visits.services import order_record

# --- pay -----------------------------------------------------------------------------------------------

REUSE_SECONDS = 600
_UNSET = object()


def request_hash(request: dict) -> str:
    """A digest of what a pay or refund asked for, to tell a replay of its key (a double click, a retry) from
    another request reusing it (Back after paying, a changed bill, another patient's bill, a reused POS id)."""
    text = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def pay_request_hash(inputs: dict, payments: list[dict]) -> str:
    """The pay request: customer, clinic, lines, tenders asked for and the cash payments (not when it was priced)."""
    wallet = dict(inputs.get("wallet") or {})
    if "holder" in wallet:
        wallet["holder"] = getattr(wallet["holder"], "pk", wallet["holder"])
    return request_hash({
        "customer": inputs["customer"].pk, "clinic": inputs["clinic"].pk,
        "lines": [{k: v for k, v in line.items() if v not in (None, "")} for line in inputs["lines"]],
        "vouchers": list(inputs.get("vouchers") or ()), "gift_cards": list(inputs.get("gift_cards") or ()),
        "points": inputs.get("points") or 0, "wallet": wallet or None,
        "payments": sorted((p["method"], p["amount_fen"]) for p in payments if p.get("amount_fen"))})


def replay_check(existing, digest: str, key: str, what: str) -> None:
    """A replay returns the first result only when it asks for the same thing: a key reused for another request
    would otherwise answer "paid" (or "refunded") with the first one while the new one is never recorded. Rows
    written before the digest was kept (blank) are taken as replays, as they were."""
    if existing.request_hash and existing.request_hash != digest:
        raise Conflict(f"idempotency key {key!r} was already used for another {what}: a new {what} needs its own key",
                       code="idempotency_key_reused", field="key")


def _reusable(bill: PricedBill):
    """Pay reuses a bill priced less than REUSE_SECONDS ago when its facts still hold (5 small reads instead of
    a full price: the ledger writes re-check every balance). Otherwise pay re-prices and compares. Returns
    (reusable, the customer's own active membership as read now, or _UNSET when not read)."""
    if not bill.facts or (timezone.now() - bill.at).total_seconds() > REUSE_SECONDS:
        return False, _UNSET
    ids = [line.item_id for line in bill.lines]
    ids_in, params = in_clause("t0.id", ids)
    items = select_models(ServiceItem, ids_in, params)
    resolved = [(i, 0) for i in items]
    member, own = member_discount_and_own(bill.customer)
    terms = (loyalty_services.points_redeem_terms(chain_id=bill.customer.chain_id) if bill.facts[2] is not None
             else None)
    return _facts(resolved, member, terms) == bill.facts, own


@transaction.atomic
def checkout_pay(*, priced: "PricedBill | dict", payments: list[dict], key: str, actor: Staff | None = None,
                 external_id: str | None = None) -> Settlement:
    """Pay a priced bill in one transaction (see the module docstring). `priced` is a PricedBill or the
    checkout_price arguments; the bill is re-priced inside the transaction and a different result is a 409
    `price_changed`. `payments` ([{"method", "amount_fen"}]) cover the cash remainder exactly. Idempotent on
    `key`: a replay returns the first settlement. Any refusal leaves nothing written.

    The bill's ledger movements (gift cards, points, wallet, points earned) are posted together
    (ledger_post_many: one lock of all their accounts, one INSERT of the transactions and one of the entries),
    each still its own transaction with its own key, as the refund reverses them one by one."""
    inputs = priced.inputs if isinstance(priced, PricedBill) else dict(priced)
    customer: Customer = inputs["customer"]
    service_key_check(key)  # refused when empty or too long; used as given
    # A family member paying from the holder's wallet: an erasure of the holder in progress is waited out first,
    # before the payer's row (the erasure may lock the payer's too: their household), and one that starts later
    # waits for this bill. Not waited for, the bill spent an erased holder's wallet after the erasure (the family
    # use's foreign key waits at commit), or deadlocked with it.
    holder = (inputs.get("wallet") or {}).get("holder") if isinstance(inputs.get("wallet"), dict) else None
    holder = holder if isinstance(holder, Customer) and holder.pk != customer.pk else None
    if holder is not None:
        customers_erasures_wait(Customer.objects.filter(pk=holder.pk).values("pk"))
    # One checkout per customer at a time (the row is only locked: nothing of it is read here). FOR NO KEY
    # UPDATE: it must not block the foreign-key checks (KEY SHARE) of a family member's bill that references
    # this customer, or the two can deadlock at commit. The replay check comes after the lock, so a replay
    # racing its first run waits for it and returns its settlement.
    locked = select_rows(f"SELECT erased_at, merged_into_id FROM {Customer._meta.db_table} WHERE id = %s"
                         f"{lock_clause(no_key=True)}", [customer.pk])
    existing = select_model(Settlement, "t0.chain_id = %s AND t0.key = %s", [customer.chain_id, key])
    digest = pay_request_hash(inputs, payments)
    if existing is not None:
        replay_check(existing, digest, key, "bill")
        return existing
    if not locked or locked[0][1] is not None:
        # Merged away since the page was read (as customer_lock_live): the whole bill would be refused at its end
        # anyway (membership_evaluate), but priced again for the tombstone first, whose balances went to the record
        # kept: refused as "wallet: 0.00 available" or "price changed" instead of as the record it no longer is.
        raise NotFound("Customer not found")
    if locked[0][0] is not None:  # a returning patient is a new record (customers_refuse_erased)
        raise Conflict(ERASED_REFUSED, code="erased", field="customer_id")
    if holder is not None:
        customers_refuse_erased(holder.pk, field="wallet.holder_id")
    reusable, own = _reusable(priced) if isinstance(priced, PricedBill) else (False, _UNSET)
    if reusable:
        bill = priced
    else:
        bill = checkout_price(**inputs)
        own = bill.own_membership
        if isinstance(priced, PricedBill) and priced.signature() != bill.signature():
            raise PriceChanged("Balances changed since the bill was priced: price it again", field="priced")
    _payments_check(payments, bill.cash_fen)
    at = timezone.now()
    order, _created = order_record(
        customer=customer, clinic=bill.clinic, ordered_at=at, external_id=external_id, cashier=actor,
        customer_locked=True,
        lines=[{"item_code": line.code, "quantity": line.quantity, "unit_price_fen": line.unit_fen,
                "discount_fen": line.reduction_fen, "tooth": str(bill.inputs["lines"][line.index].get("tooth") or "")}
               for line in bill.lines],
        payments=[{"method": p["method"], "amount_fen": p["amount_fen"]} for p in payments if p["amount_fen"]]
        + [{"method": TENDER_METHOD[t.kind], "amount_fen": t.amount_fen} for t in bill.tenders
           if t.kind != "cash" and t.amount_fen > 0],
        items={item.code: item for item in bill.items.values()})
    if not _created:  # a replay of this bill returned above, on its key: the POS reused the id of another bill
        raise Conflict(f"external_id {external_id} already names order #{order.id}: a new bill needs its own "
                       "external_id", code="external_id_conflict", field="external_id")
    order_lines = getattr(order, "lines_written", None)
    if not order_lines or any(line.pk is None for line in order_lines):
        order_lines = list(order.lines.select_related("item").order_by("id"))
    settlement = Settlement.objects.create(chain_id=customer.chain_id, key=key, customer=customer, clinic=bill.clinic,
                                           order=order, total_fen=bill.total_fen, cash_fen=bill.cash_fen,
                                           breakdown=bill.as_dict(), actor=actor, created_at=at,
                                           request_hash=digest)
    source, base = f"order:{order.id}", f"checkout:{key}"
    movements: list[SettlementMovement] = []

    def add(role, tx=None, **kw):
        movements.append(SettlementMovement(settlement=settlement, role=role, transaction=tx, **kw))

    tenders = [t for t in bill.tenders if t.amount_fen > 0 and t.kind != "cash"]
    paid = {ol.id: line.paid.get("cash", 0) + line.paid.get("wallet", 0) for line, ol in zip(bill.lines, order_lines,
                                                                                              strict=True)}
    # Points are earned only under the chain's spend rules: none configured, nothing to compute or post.
    rules = loyalty_selectors.spend_rules(chain_id=customer.chain_id) if any(paid.values()) else []
    accounts = _bill_accounts(customer, bill, tenders, earn=bool(rules))
    # Check every movement first (expiry, consent, stored value, points terms), then post them all at once.
    requests: list[PostRequest] = []
    after: list = []  # per request: (movement role, movement fields, what to record once it is posted)
    for t in tenders:
        if t.kind == "voucher":  # single use: its row is locked here, its movement posted with the others
            voucher = bill.vouchers[t.ref]
            requests.append(giftcard_services.voucher_redeem_request(
                voucher=voucher, used_fen=t.amount_fen, key=f"{base}:voucher:{t.ref}", source=source, actor=actor,
                at=at, sales=accounts.get(AccountKind.SALES)))
            after.append((MovementRole.VOUCHER, {"ref": t.ref, "value_fen": t.amount_fen},
                          partial(giftcard_services.voucher_redeem_recorded, voucher=voucher, at=at)))
        elif t.kind == "giftcard":
            card = bill.cards[t.ref]
            requests.append(giftcard_services.giftcard_spend_request(
                card=card, amount_fen=t.amount_fen, key=f"{base}:giftcard:{t.ref}", source=source, actor=actor,
                at=at, sales=accounts.get(AccountKind.SALES)))
            # once posted: the "used" event, the status, and (first use) the card's known holder
            after.append((MovementRole.GIFTCARD, {"ref": t.ref, "value_fen": t.amount_fen},
                          partial(giftcard_services.giftcard_spend_recorded, card=card, amount_fen=t.amount_fen,
                                  source=source, actor=actor, at=at, payer=customer)))
        elif t.kind == "points":
            requests.append(loyalty_services.points_redeem_request(
                customer=customer, points=t.points, key=f"{base}:points", source=source, actor=actor,
                terms=bill.facts[2] if bill.facts else None, accounts=accounts, at=at))
            after.append((MovementRole.POINTS, {"value_fen": t.amount_fen, "points": t.points}, None))
        elif t.kind == "wallet":
            wallet = bill.inputs["wallet"] or {}
            spend = loyalty_services.wallet_spend_request(
                payer=customer, holder=bill.wallet_holder, amount_fen=t.amount_fen, key=f"{base}:wallet",
                source=source, actor=actor, per_use_consent=bool(wallet.get("per_use_consent")), accounts=accounts,
                at=at, reader=bill.inputs.get("reader"))
            requests.append(spend.request)
            after.append((MovementRole.WALLET, {"value_fen": t.amount_fen}, lambda tx, spend=spend: spend.recorded(tx)))
    earn = loyalty_services.points_earn_request(
        order=order, paid_fen_by_line=paid, actor=actor, at=at, lines=order_lines, rules=rules,
        multiplier=loyalty_selectors.points_multiplier_of(own, at=at), accounts=accounts) if rules else None
    if earn is not None:
        requests.append(earn)
        after.append((MovementRole.EARN, {"points": sum(p.amount for p in earn.postings if p.amount > 0)}, None))
    posted = ledger_post_many(requests)
    earned = None
    for tx, (role, fields, recorded) in zip(posted, after, strict=True):
        if recorded is not None:
            recorded(tx=tx)
        if role == MovementRole.EARN:
            earned = (tx, fields)
        else:
            add(role, tx, **fields)
    for line, order_line in zip(bill.lines, order_lines, strict=True):
        for unit in range(line.entitled_units):
            use = loyalty_services.entitlement_redeem(customer=customer, item=bill.items[line.item_id],
                                    order_line=order_line, key=f"{base}:ent:{line.index}:{unit}", actor=actor)
            add(MovementRole.ENTITLEMENT, None, order_line=order_line, entitlement_use_model=use._meta.label,
                entitlement_use_id=use.pk)
    if earned is not None:  # recorded last, as before batching (refunds read the movements in id order)
        add(MovementRole.EARN, earned[0], **earned[1])
    SettlementMovement.objects.bulk_create(movements)
    # `own` was read under the customer's lock (pricing or the reuse check): evaluation and, unless evaluation
    # changed the membership, the hidden-benefit check read off it instead of reading it again.
    events = membership_services.membership_evaluate(customer=customer, actor=actor, current=own)
    _benefits_reveal_and_issue(customer, actor=actor, at=at, membership=_UNSET if events else own)
    return settlement


def _membership_evaluate(customer: Customer, actor: Staff | None) -> None:
    membership_services.membership_evaluate(customer=customer, actor=actor)


def _bill_accounts(customer: Customer, bill: PricedBill, tenders, *, earn: bool) -> dict:
    """The customer's and the chain's ledger accounts the bill's movements use, in one query."""
    kinds, system = set(), set()
    for t in tenders:
        if t.kind in ("giftcard", "voucher"):
            system.add(AccountKind.SALES)
        elif t.kind == "points":
            kinds.add(AccountKind.POINTS)
            system.add(AccountKind.POINTS_REDEEMED)
        elif t.kind == "wallet":
            system.add(AccountKind.SALES)
            if bill.wallet_holder is None or bill.wallet_holder.pk == customer.pk:
                kinds |= {AccountKind.WALLET_PRINCIPAL, AccountKind.WALLET_BONUS}
    if earn:
        kinds.add(AccountKind.POINTS)
        system.add(AccountKind.POINTS_ISSUED)
    return accounts_for(chain_id=customer.chain_id, customer=customer, kinds=sorted(kinds), system_kinds=sorted(system))


def _payments_check(payments: list[dict], cash_fen: int) -> None:
    errors, total = [], 0
    for i, p in enumerate(payments or []):
        amount = p.get("amount_fen")
        if p.get("method") not in CASH_METHODS:
            errors.append(FieldError(f"payments[{i}].method", f"must be one of {', '.join(CASH_METHODS)}",
                                     str(p.get("method"))))
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            errors.append(FieldError(f"payments[{i}].amount_fen", "must be a whole number of fen ≥ 0", str(amount)))
        else:
            total += amount
    if errors:
        raise ValidationFailed(errors)
    if total != cash_fen:
        raise PaymentsMismatch(f"payments add up to {total} fen but {cash_fen} fen are due", field="payments")


def _benefits_reveal_and_issue(customer: Customer, *, actor: Staff | None, at: dt.datetime,
                               membership=_UNSET) -> list[GiftCard]:
    """After a payment: reveal the hidden benefits whose trigger fired (membership.benefits_reveal_due) and issue
    the friends-and-family card of each newly revealed `issue_friend_card` benefit. Idempotent: a reveal happens
    once per membership and the card's issue key is the reveal's id. A card the programme's period limit
    refuses (LimitReached), or a chain without a card programme (NotFriendCardBenefit), does not stop the
    payment: the reveal stays in the member's history and staff can issue the card by hand. `membership`: the
    customer's active membership when already read in this transaction (see benefits_reveal_due)."""
    cards = []
    held = {} if membership is _UNSET else {"membership": membership}
    for reveal in membership_services.benefits_reveal_due(customer=customer, as_of=at, **held):
        if reveal.benefit.action_code != giftcard_services.FRIEND_CARD_ACTION:
            continue
        try:
            cards.append(giftcard_services.friend_card_issue_for_benefit(
                membership=reveal.membership, benefit=reveal.benefit, key=f"benefit-reveal:{reveal.id}",
                actor=actor, as_of=at))
        except (LimitReached, NotFriendCardBenefit):
            continue
    return cards
