"""Stored value: top-ups (principal + bonus), top-up refunds, spends (own or family-shared) and family transfers.

The principal is money received (WALLET_PRINCIPAL against CASH_IN); the bonus is a promotion (WALLET_BONUS
against PROMOTION). Spending rule (`wallet_split`): a spend takes principal and bonus in proportion to their
available balances — principal = amount × P / (P + B) rounded to the nearest fen (halves up), bonus = the
rest — so the two parts always add up exactly, and a later refund of the top-up finds its bonus share still
there. A top-up refund returns principal only and forfeits the same share of the top-up's bonus.
"""

import datetime as dt
from dataclasses import dataclass
from fractions import Fraction

from django.db import transaction
from django.db.models import F

from smileloop.clinics.models import Clinic, Staff
from smileloop.core.errors import Conflict, FieldError, ValidationFailed
from smileloop.core.money import yuan_grouped
from smileloop.core.scoping import Scope
from smileloop.customers.models import Customer
from smileloop.customers.selectors import name_for
from smileloop.customers.services import customers_erasures_wait, customers_lock, customers_refuse_erased
from smileloop.ledger.enums import AccountKind, EntryReason
from smileloop.ledger.models import Account, Entry, LedgerTransaction
from smileloop.ledger.selectors import transaction_size
from smileloop.ledger.services import (
    InsufficientBalance,
    LotTerms,
    Posting,
    PostRequest,
    account_for,
    accounts_for,
    accounts_lock,
    available_balance,
    available_balances,
    ledger_post,
    ledger_post_many,
    ledger_reverse,
    ledger_transfer,
    system_account,
)
from smileloop.loyalty._common import add_months, day_end, key_check, now_or, stored_periods_check
from smileloop.loyalty.enums import ShareMode
from smileloop.loyalty.errors import (
    BonusRuleInvalid,
    BonusSpent,
    ConsentMissing,
    InsufficientWallet,
    NotFamily,
    PrincipalSpent,
)
from smileloop.loyalty.memos import (
    BONUS_FORFEITED,
    FAMILY_TRANSFER,
    SPEND_PARTS,
    SPEND_PARTS_PAID_BY,
    TOPUP_BONUS,
    TOPUP_REFUND,
    TOPUP_VIA,
)
from smileloop.loyalty.models import Topup, TopupBonusRule, TopupRefund, WalletShareUse
from smileloop.loyalty.selectors import membership_bonus_rules
from smileloop.membership.enums import MembershipStatus, WalletShareMode
from smileloop.membership.selectors import family_bindings_of, own_membership, wallet_share_allowed
from smileloop.membership.services import membership_evaluate
from smileloop.visits.enums import TENDER_METHODS, PaymentMethod

TOPUP_METHODS = [m for m in PaymentMethod.values if m not in TENDER_METHODS]
# What may pay money into a wallet: not insurance, which pays for care given (medical insurance may not fund a prepaid
# balance at all), nor a prepaid value a balance is bought with.
WALLET_TOPUP_METHODS = [m for m in TOPUP_METHODS if m != PaymentMethod.INSURANCE]


def _customer_lock(customer: Customer) -> frozenset[int]:
    """The customer's row first, as a bill takes it (docs/architecture.md, "Locks, in one order"): the top-up then
    re-evaluates the tier under it, after its ledger postings, without ever waiting on a bill the other way round.
    Returns what customers_lock does (the erased ids)."""
    return customers_lock(customer.pk)


def _is_amount(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def wallet_split(amount: int, principal: int, bonus: int) -> tuple[int, int]:
    """(principal part, bonus part) of a spend of `amount` from balances `principal` and `bonus`
    (amount ≤ principal + bonus): proportional, rounded to the fen, exactly adding up to `amount`."""
    total = principal + bonus
    if amount <= 0 or total <= 0:
        return 0, 0
    p = (2 * amount * principal + total) // (2 * total)  # nearest fen, halves up
    p = min(p, principal)
    b = amount - p
    if b > bonus:
        p, b = p + (b - bonus), bonus
    return p, b


def membership_topup_bonus(*, customer: Customer, amount_fen: int,
                           at: dt.datetime | None = None) -> tuple[int, int] | None:
    """(threshold, bonus) in fen of the top-up bonus rules of the customer's own membership in force — its tier's,
    else its plan's (membership's "top-up bonus rules, read by the wallet") — the highest threshold reached, (0, 0)
    when none is; None when neither has rules, and the chain's TopupBonusRule apply."""
    own = membership_bonus_rules(customer, at=now_or(at))
    if own is None:
        return None
    reached = [r for r in own[2] if r["min_topup_fen"] <= amount_fen]
    best = max(reached, key=lambda r: r["min_topup_fen"], default=None)
    return (best["min_topup_fen"], best["bonus_fen"]) if best else (0, 0)


def topup_bonus_rule_for(*, chain_id: int, amount_fen: int) -> TopupBonusRule | None:
    """The highest active threshold the top-up reaches (rules do not add up)."""
    return (TopupBonusRule.objects.filter(chain_id=chain_id, is_active=True, min_topup_fen__lte=amount_fen)
            .order_by("-min_topup_fen").first())


@transaction.atomic
def wallet_topup(*, customer: Customer, amount_fen: int, method: str, key: str, actor: Staff | None = None,
                 clinic: Clinic | None = None, at: dt.datetime | None = None) -> Topup:
    """Top up the customer's wallet: principal to WALLET_PRINCIPAL (from CASH_IN) and the bonus to WALLET_BONUS (from
    PROMOTION), both recorded on one Topup. The bonus is that of the member's own tier or plan when it has top-up
    bonus rules (`membership_topup_bonus`: they override the chain's; never expiring), else of the best matching
    TopupBonusRule. Idempotent on `key`.
    The tier is re-evaluated at once (`membership_evaluate`): a stored-value plan's tier is reached by topping up,
    and the next bill must already be priced with it."""
    key = key_check(key)
    locked = _customer_lock(customer)  # first: a concurrent twin with this key then finds the top-up this one recorded
    existing = Topup.objects.filter(chain_id=customer.chain_id, key=key).first()
    if existing:
        if (existing.customer_id, existing.amount_fen, existing.method) != (customer.id, amount_fen, method):
            raise Conflict(f"idempotency key {key!r} was already used for another top-up",
                           code="idempotency_key_reused", field="key")
        return existing
    customers_refuse_erased(customer.pk, field="customer_id", locked=locked)
    errors = []
    if not _is_amount(amount_fen):
        errors.append(FieldError("amount_fen", "must be a whole number of fen > 0", str(amount_fen)))
    if method not in WALLET_TOPUP_METHODS:
        errors.append(FieldError("method", f"must be one of {', '.join(WALLET_TOPUP_METHODS)}", str(method)))
    if clinic is not None and clinic.chain_id != customer.chain_id:
        errors.append(FieldError("clinic", "is not a clinic of this chain", str(clinic.id)))
    if errors:
        raise ValidationFailed(errors)
    at = now_or(at)
    chain_id = customer.chain_id
    override = membership_topup_bonus(customer=customer, amount_fen=amount_fen, at=at)
    rule = topup_bonus_rule_for(chain_id=chain_id, amount_fen=amount_fen) if override is None else None
    if rule is not None:
        stored_periods_check(rule, ["validity_months"], label=str(rule), kind="top-up bonus rule ")
        if rule.bonus_exceeds_minimum:  # saved before the save refused it: refused here too, never paid
            minimum, bonus = yuan_grouped(rule.min_topup_fen), yuan_grouped(rule.bonus_fen)
            raise BonusRuleInvalid(f"the top-up bonus rule {rule} that this top-up reaches gives ¥{bonus}, more than "
                                   f"the minimum top-up ¥{minimum} it rewards; correct or deactivate it in the loyalty "
                                   "settings first", name=str(rule), minimum=minimum, bonus=bonus)
    if override is not None:
        min_fen, bonus = override
    else:
        min_fen, bonus = (rule.min_topup_fen, rule.bonus_fen) if rule is not None else (0, 0)
    principal_tx = ledger_post(
        chain_id=chain_id, key=f"topup:{key}:principal", reason=EntryReason.TOPUP, actor=actor, at=at,
        source=f"topup:{key}"[:100], memo=TOPUP_VIA % {"method": method},
        postings=[Posting(account_for(chain_id=chain_id, kind=AccountKind.WALLET_PRINCIPAL, customer=customer),
                          amount_fen, terms=LotTerms(earned_at=at, available_at=at)),
                  Posting(system_account(chain_id=chain_id, kind=AccountKind.CASH_IN), -amount_fen)])
    bonus_tx = None
    if bonus:
        expires = (day_end(add_months(at, rule.validity_months)) if rule is not None and rule.validity_months
                   else None)
        bonus_tx = ledger_post(
            chain_id=chain_id, key=f"topup:{key}:bonus", reason=EntryReason.TOPUP_BONUS, actor=actor, at=at,
            source=f"topup:{key}"[:100], memo=TOPUP_BONUS % {"min_fen": min_fen, "bonus_fen": bonus},
            postings=[Posting(account_for(chain_id=chain_id, kind=AccountKind.WALLET_BONUS, customer=customer), bonus,
                              terms=LotTerms(earned_at=at, available_at=at, expires_at=expires)),
                      Posting(system_account(chain_id=chain_id, kind=AccountKind.PROMOTION), -bonus)])
    topup = Topup.objects.create(chain_id=chain_id, key=key, customer=customer, clinic=clinic, method=method,
                                 amount_fen=amount_fen, bonus_fen=bonus, bonus_rule=rule,
                                 principal_transaction=principal_tx, bonus_transaction=bonus_tx, actor=actor,
                                 created_at=at)
    membership_evaluate(customer=customer, actor=actor, as_of=at)
    return topup


@transaction.atomic
def wallet_topup_refund(*, topup: Topup, amount_fen: int | None = None, key: str,
                        actor: Staff | None = None) -> TopupRefund:
    """Refund (part of) a top-up's principal — all that is left of it when `amount_fen` is None — and forfeit the
    same share of its bonus. Cumulative: after refunds totalling R of principal A, R/A of the bonus is forfeited
    (ledger_reverse(upto=R/A), so rounding never drifts). Refused, changing nothing, when the wallet no longer
    holds that much principal (`principal_spent`) or the bonus share was spent (`bonus_spent`). The tier is
    re-evaluated on the top-ups left (a tier that allows it is downgraded)."""
    key = key_check(key)
    _customer_lock(topup.customer)  # first: a concurrent twin with this key then finds the refund this one recorded
    existing = TopupRefund.objects.filter(chain_id=topup.chain_id, key=key).first()
    if existing:
        if existing.topup_id != topup.id or (amount_fen is not None and amount_fen != existing.amount_fen):
            raise Conflict(f"idempotency key {key!r} was already used for another refund",
                           code="idempotency_key_reused", field="key")
        return existing
    # The top-up's own row only: joined FOR UPDATE, the customer's row was taken FOR UPDATE too, which blocks the
    # commit-time foreign-key check of a concurrent spend that created the customer's bonus account while this refund
    # waited for the wallet that spend held: a deadlock (PostgreSQL test in tests/test_money_concurrency.py).
    topup = Topup.objects.select_for_update(of=("self",)).select_related("customer").get(pk=topup.pk)
    refundable = topup.amount_fen - topup.refunded_fen
    amount = refundable if amount_fen is None else amount_fen
    if refundable == 0:
        raise Conflict("This top-up was already refunded in full", code="already_refunded", field="amount_fen")
    if not _is_amount(amount) or amount > refundable:
        raise ValidationFailed([FieldError("amount_fen", f"must be between 1 and {refundable} fen (the principal "
                                           "not yet refunded)", str(amount))])
    principal = account_for(chain_id=topup.chain_id, kind=AccountKind.WALLET_PRINCIPAL, customer=topup.customer_id)
    # Every account the two reversals post to, locked at once in id order (as a spend locks principal and bonus):
    # the principal alone first, then the bonus when reversing it, took them against the id order whenever the bonus
    # account is the older one, while a spend takes both in id order.
    accounts_lock([principal.id, *Entry.objects.filter(
        transaction_id__in=[topup.principal_transaction_id, topup.bonus_transaction_id]).values_list("account_id",
                                                                                                     flat=True)])
    left = available_balance(principal)
    if amount > left:
        raise PrincipalSpent(f"Only {left} fen of principal is left in the wallet (the rest was spent or "
                             f"transferred); at most {min(left, refundable)} fen can be refunded", field="amount_fen")
    share = Fraction(topup.refunded_fen + amount, topup.amount_fen)
    principal_tx = ledger_reverse(original=topup.principal_transaction, key=f"topup_refund:{key}:principal",
                                  upto=share, reason=EntryReason.REFUND, actor=actor,
                                  memo=TOPUP_REFUND % {"topup": topup.id})
    bonus_tx, forfeited = None, 0
    if topup.bonus_transaction_id:
        try:
            bonus_tx = ledger_reverse(original=topup.bonus_transaction, key=f"topup_refund:{key}:bonus", upto=share,
                                      reason=EntryReason.CLAWBACK, actor=actor,
                                      memo=BONUS_FORFEITED % {"topup": topup.id})
        except InsufficientBalance:
            raise BonusSpent("The bonus share of this top-up was already spent or expired, so its principal cannot "
                             "be refunded without a manual adjustment", field="amount_fen")
        if bonus_tx is not None:
            forfeited = -sum(e.amount for e in bonus_tx.entries.all() if e.account_id != _promotion_id(topup))
    Topup.objects.filter(pk=topup.pk).update(refunded_fen=F("refunded_fen") + amount,
                                             bonus_forfeited_fen=F("bonus_forfeited_fen") + forfeited)
    refund = TopupRefund.objects.create(chain_id=topup.chain_id, key=key, topup=topup, amount_fen=amount,
                                        bonus_forfeited_fen=forfeited, principal_transaction=principal_tx,
                                        bonus_transaction=bonus_tx, actor=actor, created_at=principal_tx.created_at)
    membership_evaluate(customer=topup.customer, actor=actor, as_of=principal_tx.created_at)
    return refund


def _promotion_id(topup: Topup) -> int:
    return system_account(chain_id=topup.chain_id, kind=AccountKind.PROMOTION).id


def _holder_bound(holder: Customer, member: Customer) -> bool:
    membership = own_membership(holder)
    if membership is None or membership.status != MembershipStatus.ACTIVE:
        return False
    return family_bindings_of(membership).filter(member_id=member.pk).exists()


def _share_mode(holder: Customer, payer: Customer, *, per_use_consent: bool, consent_token: str,
                reader: Scope | None) -> str:
    """How this family use is consented, or ConsentMissing (code consent_missing), naming the two as `reader` may
    see them (`name_for`: a holder of another clinic is 张*)."""
    if wallet_share_allowed(holder, payer) == WalletShareMode.STANDING:
        return ShareMode.STANDING
    if per_use_consent or consent_token:
        if not _holder_bound(holder, payer):
            raise ConsentMissing(f"{name_for(reader, payer)} is not a family member bound to "
                                 f"{name_for(reader, holder)}'s card, so the wallet cannot be shared", field="holder_id")
        return ShareMode.PER_USE
    raise ConsentMissing(f"{name_for(reader, holder)} has not given standing consent for {name_for(reader, payer)} "
                         "to use the wallet: record the holder's consent for this use", field="per_use_consent")


def _wallet_accounts(customer: Customer, accounts: dict[str, Account] | None = None) -> tuple[Account, Account]:
    if accounts is None or AccountKind.WALLET_PRINCIPAL not in accounts or AccountKind.WALLET_BONUS not in accounts:
        accounts = accounts_for(chain_id=customer.chain_id, customer=customer,
                                kinds=[AccountKind.WALLET_PRINCIPAL, AccountKind.WALLET_BONUS])
    # Not locked here: ledger_post_many locks every account of the bill at once, in id order (the one lock order
    # of a bill, docs/architecture.md), and re-checks the balance under that lock.
    return accounts[AccountKind.WALLET_PRINCIPAL], accounts[AccountKind.WALLET_BONUS]


@transaction.atomic
def wallet_spend(*, payer: Customer, holder: Customer | None = None, amount_fen: int, key: str, source: str,
                 actor: Staff | None = None, per_use_consent: bool = False,
                 consent_token: str = "", reader: Scope | None = None) -> list[LedgerTransaction]:
    """Pay `amount_fen` of a bill from the holder's wallet (the payer's own when holder is None), principal and
    bonus in proportion (`wallet_split`), against SALES — one ledger transaction (ledger key
    `wallet_spend:{key}`), returned in a list. A family member paying from the holder's wallet needs the
    holder's standing consent, or `per_use_consent=True` / a `consent_token` for this use (recorded with the
    actor and time); otherwise ConsentMissing and nothing changes. A refund is ledger_reverse of the
    transaction (the proportional parts come back to the lots they came from). `reader`: the staff member's scope,
    through which a refusal names the holder and the payer (masked, 张*, outside it or with no reader).
    The payer's row is locked before the key is looked up, as a bill locks it: a copy sent at the same moment waits
    for the first and returns its spend, instead of recording the family use a second time (an IntegrityError)."""
    key = key_check(key)
    holder = holder or payer
    if holder.pk != payer.pk:  # an erasure of the holder in progress waited out before the payer's row (checkout_pay)
        customers_erasures_wait(Customer.objects.filter(pk=holder.pk).values("pk"))
    locked = _customer_lock(payer)
    replay = LedgerTransaction.objects.filter(chain_id=holder.chain_id, idempotency_key=f"wallet_spend:{key}").first()
    if replay:
        _replay_check([replay], amount_fen, key, "spend", debited=holder, payer=payer)
        return [replay]
    # an erased record's wallet (its value forfeited by the erasure) is spent by nobody
    customers_refuse_erased(payer.pk, field="customer_id", locked=locked)
    if holder.pk != payer.pk:
        customers_refuse_erased(holder.pk, field="holder_id")
    spend = wallet_spend_request(payer=payer, holder=holder, amount_fen=amount_fen, key=key, source=source,
                                 actor=actor, per_use_consent=per_use_consent, consent_token=consent_token,
                                 reader=reader)
    tx = ledger_post_many([spend.request])[0]
    spend.recorded(tx)
    return [tx]


@dataclass
class WalletSpend:
    """A checked wallet spend, not yet posted: post `request` (ledger_post_many), then call `recorded(tx)`."""

    request: PostRequest
    payer: Customer
    holder: Customer
    amount_fen: int
    mode: str | None  # the family share mode, None for the holder's own spend
    consent_token: str
    source: str
    actor: Staff | None

    def recorded(self, tx: LedgerTransaction) -> None:
        """After posting: a family member's use of the holder's wallet is recorded with its consent."""
        if self.mode:
            WalletShareUse.objects.create(chain_id=self.holder.chain_id, holder=self.holder, payer=self.payer,
                                          transaction=tx, amount_fen=self.amount_fen, mode=self.mode,
                                          consent_token=self.consent_token[:100], source=self.source[:100],
                                          consented_at=tx.created_at, recorded_by=self.actor)


def wallet_spend_request(*, payer: Customer, holder: Customer | None = None, amount_fen: int, key: str, source: str,
                         actor: Staff | None = None, per_use_consent: bool = False, consent_token: str = "",
                         accounts: dict[str, Account] | None = None, at: dt.datetime | None = None,
                         reader: Scope | None = None) -> WalletSpend:
    """`wallet_spend` checked (amount, family consent, stored value available) and split into principal and
    bonus, but not posted (the ledger locks the accounts and re-checks the balance when it posts): checkout
    posts it with the bill's other movements. `accounts`: the holder's WALLET_PRINCIPAL and WALLET_BONUS and the chain's SALES account when
    the caller holds them (ledger `accounts_for`). `at`: the moment of the spend (default: now). `reader`: as for
    `wallet_spend` (checkout prices with the holder's consent and pays later: a consent withdrawn in between is
    refused here, to the cashier, who may be of another clinic than the holder)."""
    key = key_check(key)
    holder = holder or payer
    if not _is_amount(amount_fen):
        raise ValidationFailed([FieldError("amount_fen", "must be a whole number of fen > 0", str(amount_fen))])
    mode = None
    if holder.pk != payer.pk:
        if holder.chain_id != payer.chain_id:
            raise NotFamily("The wallet holder belongs to another chain", field="holder_id")
        mode = _share_mode(holder, payer, per_use_consent=per_use_consent, consent_token=consent_token,
                           reader=reader)
        accounts = None
    principal, bonus = _wallet_accounts(holder, accounts)
    left = available_balances([principal, bonus], at=at)
    p_left, b_left = left[principal.id], left[bonus.id]
    if amount_fen > p_left + b_left:
        raise InsufficientWallet(f"Not enough stored value: {p_left + b_left} fen available, {amount_fen} fen "
                                 "needed", field="amount_fen")
    p, b = wallet_split(amount_fen, p_left, b_left)
    postings = ([Posting(principal, -p)] if p else []) + ([Posting(bonus, -b)] if b else [])
    sales = (accounts or {}).get(AccountKind.SALES) or system_account(chain_id=holder.chain_id, kind=AccountKind.SALES)
    postings.append(Posting(sales, amount_fen))
    request = PostRequest(chain_id=holder.chain_id, key=f"wallet_spend:{key}", reason=EntryReason.SPEND, actor=actor,
                          source=source[:100], postings=postings, at=at,
                          memo=(SPEND_PARTS_PAID_BY % {"principal_fen": p, "bonus_fen": b, "payer": payer.id} if mode
                                else SPEND_PARTS % {"principal_fen": p, "bonus_fen": b}),
                          # a concurrent spend can take the balance between the check above and the lock
                          refusal=InsufficientWallet, refusal_field="amount_fen", refusal_label="stored value")
    return WalletSpend(request, payer, holder, amount_fen, mode, consent_token, source, actor)


_WALLET_KINDS = (AccountKind.WALLET_PRINCIPAL, AccountKind.WALLET_BONUS)


@transaction.atomic
def _replay_check(replay: list[LedgerTransaction], amount_fen, key: str, what: str, *, debited: Customer,
                  credited: Customer | None = None, payer: Customer | None = None) -> None:
    """A replay of a spend or transfer key returns the first result only for the same request (as a top-up's
    does): the same amount, taken from the same wallet (and for a transfer given to the same one), paid by the
    same person. Another request under the key would be answered as done while nothing of it happened — the
    wrong patient's wallet shown as having paid. A record merged since counts as its survivor."""
    moved = sum(transaction_size(tx) for tx in replay)
    entries = Entry.objects.filter(transaction__in=replay, account__kind__in=_WALLET_KINDS)
    debits = {_survivor_id(c) for c in entries.filter(amount__lt=0).values_list("account__customer_id", flat=True)}
    credits = {_survivor_id(c) for c in entries.filter(amount__gt=0).values_list("account__customer_id", flat=True)}
    same = moved == amount_fen and debits == {_survivor_id(debited.pk)}
    if credited is not None:
        same = same and credits == {_survivor_id(credited.pk)}
    if same and payer is not None:
        # a family member's spend from the holder's wallet names its payer; the holder's own spend names none
        payers = {_survivor_id(c) for c in WalletShareUse.objects.filter(transaction__in=replay)
                  .values_list("payer_id", flat=True)}
        same = payers == ({_survivor_id(payer.pk)} if payer.pk != debited.pk else set())
    if not same:
        raise Conflict(f"idempotency key {key!r} was already used for another {what}", code="idempotency_key_reused",
                       field="key")


def _survivor_id(customer_id: int | None) -> int | None:
    """The record a customer id now lives on: itself, or the survivor its merges lead to."""
    seen = set()
    while customer_id is not None and customer_id not in seen:
        seen.add(customer_id)
        nxt = Customer.objects.filter(pk=customer_id).values_list("merged_into_id", flat=True).first()
        if nxt is None:
            return customer_id
        customer_id = nxt
    return customer_id


@transaction.atomic
def wallet_transfer(*, from_customer: Customer, to_customer: Customer, amount_fen: int, key: str,
                    actor: Staff | None, per_use_consent: bool = False,
                    consent_token: str = "", reader: Scope | None = None) -> list[LedgerTransaction]:
    """Move stored value between a card holder and a family member bound to the card (either way). Needs the
    holder's wallet-share consent for that member (standing, or `per_use_consent` / `consent_token` now).
    Principal and bonus move in proportion (`wallet_split`) through ledger_transfer, so every lot keeps its
    dates (a bonus keeps its expiry). Idempotent on `key`. A refusal names the two through `reader` (as
    `wallet_spend`).
    One transaction, the two customers' rows locked (id order) before the key is looked up: a copy sent at the
    same moment waits and returns the first transfer (it recorded the family use twice: an IntegrityError), and a
    bonus part refused after the principal moved leaves nothing moved. The four wallet accounts are then locked at
    once in id order (as a bill locks its accounts), not pair by pair."""
    key = key_check(key)
    locked = customers_lock(from_customer.pk, to_customer.pk)
    keys = [f"wallet_transfer:{key}:principal", f"wallet_transfer:{key}:bonus"]
    replay = list(LedgerTransaction.objects.filter(chain_id=from_customer.chain_id, idempotency_key__in=keys)
                  .order_by("id"))
    if replay:
        _replay_check(replay, amount_fen, key, "transfer", debited=from_customer, credited=to_customer)
        return replay
    customers_refuse_erased(from_customer.pk, field="customer_id", locked=locked)
    customers_refuse_erased(to_customer.pk, field="to_customer_id", locked=locked)
    if not _is_amount(amount_fen):
        raise ValidationFailed([FieldError("amount_fen", "must be a whole number of fen > 0", str(amount_fen))])
    if from_customer.pk == to_customer.pk or from_customer.chain_id != to_customer.chain_id:
        raise NotFamily("Choose another member of the same family", field="to_customer_id")
    if _holder_bound(from_customer, to_customer):
        holder, member = from_customer, to_customer
    elif _holder_bound(to_customer, from_customer):
        holder, member = to_customer, from_customer
    else:
        raise NotFamily(f"{name_for(reader, from_customer)} and {name_for(reader, to_customer)} are not holder and "
                        "bound member of one family card", field="to_customer_id")
    mode = wallet_share_allowed(holder, member)
    # Only a standing consent covers a transfer by itself; a consent "for each use" asks again now (as a spend).
    if mode != WalletShareMode.STANDING and not (per_use_consent or consent_token):
        raise ConsentMissing(f"{name_for(reader, holder)} has not consented to share the wallet with "
                             f"{name_for(reader, member)}: record the consent for this transfer",
                             field="per_use_consent")
    src_principal, src_bonus = _wallet_accounts(from_customer)
    dst_principal, dst_bonus = _wallet_accounts(to_customer)
    accounts_lock([src_principal.id, src_bonus.id, dst_principal.id, dst_bonus.id])
    p_left, b_left = available_balance(src_principal), available_balance(src_bonus)
    if amount_fen > p_left + b_left:
        raise InsufficientWallet(f"Not enough stored value: {p_left + b_left} fen available, {amount_fen} fen "
                                 "needed", field="amount_fen")
    p, b = wallet_split(amount_fen, p_left, b_left)
    txs = []
    for part, src, dst, k in ((p, src_principal, dst_principal, keys[0]), (b, src_bonus, dst_bonus, keys[1])):
        if part:
            txs.append(ledger_transfer(from_account=src, to_account=dst, amount=part, key=k, actor=actor,
                                       source=f"wallet_transfer:{key}"[:100],
                                       memo=FAMILY_TRANSFER % {"from_customer": from_customer.id,
                                                                     "to_customer": to_customer.id}))
    used = ShareMode.STANDING if mode == WalletShareMode.STANDING and not (per_use_consent or consent_token) \
        else ShareMode.PER_USE
    WalletShareUse.objects.create(chain_id=holder.chain_id, holder=holder, payer=member, transaction=txs[0],
                                  amount_fen=amount_fen, mode=used, consent_token=consent_token[:100],
                                  source="transfer", consented_at=txs[0].created_at, recorded_by=actor)
    return txs
