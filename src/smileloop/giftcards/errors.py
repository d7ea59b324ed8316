"""Typed gift-card and voucher errors with stable codes (422: the code or the bill is wrong for the card).
A refused operation changes nothing."""

from smileloop.core.errors import Conflict, DomainError
from smileloop.ledger.services import InsufficientBalance


class GiftCardError(DomainError):
    status = 422


class WrongCode(GiftCardError):
    code = "wrong_code"


class Expired(GiftCardError):
    code = "expired"


class ExcludedItem(GiftCardError):
    code = "excluded_item"


class AlreadyUsed(GiftCardError):
    code = "already_used"


class LimitReached(Conflict):
    code = "limit_reached"


class NotFriendCardBenefit(GiftCardError):
    code = "not_friend_card_benefit"


__all__ = ["AlreadyUsed", "ExcludedItem", "Expired", "GiftCardError", "InsufficientBalance", "LimitReached",
           "NotFriendCardBenefit", "WrongCode"]
