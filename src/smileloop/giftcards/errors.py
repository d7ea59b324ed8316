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


class OtherCustomers(GiftCardError):
    """A voucher issued to one customer, offered on another's bill (not `already_used`: it may well be unused)."""

    code = "other_customers"


class GiverNotHolder(GiftCardError):
    """The member who gave a friends-and-family card tried to register as its holder (it would never expire)."""

    code = "giver_not_holder"


class LimitReached(Conflict):
    code = "limit_reached"


class NotFriendCardBenefit(GiftCardError):
    code = "not_friend_card_benefit"


__all__ = ["AlreadyUsed", "ExcludedItem", "Expired", "GiftCardError", "GiverNotHolder", "InsufficientBalance",
           "LimitReached", "NotFriendCardBenefit", "OtherCustomers", "WrongCode"]
