"""Checkout's typed errors. Gift-card/voucher errors (wrong_code, expired, excluded_item, already_used) come
from smileloop.giftcards.errors, insufficient_balance from the ledger, consent_missing from loyalty."""

from smileloop.core.errors import Conflict, DomainError


class CheckoutError(DomainError):
    status = 422


class PriceChanged(Conflict):
    code = "price_changed"


class PaymentsMismatch(CheckoutError):
    code = "payments_mismatch"


class ConsentMissing(CheckoutError):
    code = "consent_missing"


class ClawbackExceedsRefund(CheckoutError):
    """A refund would give back less cash than the points the bill earned and the member already spent are
    worth (refund clawback policy, checkout.services): refused, nothing changed."""

    code = "clawback_exceeds_refund"
