from django.db import models
from django.utils.translation import gettext_lazy as _


class Unit(models.TextChoices):
    POINTS = "points", _("Points")
    FEN = "fen", _("Fen")


class AccountKind(models.TextChoices):
    # Holder accounts: what a customer (or a code's bearer) holds. Never negative; tracked in lots.
    POINTS = "points", _("Points")
    WALLET_PRINCIPAL = "wallet_principal", _("Stored value (principal)")
    WALLET_BONUS = "wallet_bonus", _("Stored value (bonus)")
    GIFT_CARD = "gift_card", _("Gift card")
    VOUCHER = "voucher", _("Voucher")
    # System accounts, one per chain: the other side of every movement. Their balances are the
    # negatives of what holders gained from them, so every unit's grand total is always zero.
    POINTS_ISSUED = "points_issued", _("Points issued (expense)")
    POINTS_REDEEMED = "points_redeemed", _("Points redeemed")
    POINTS_EXPIRED = "points_expired", _("Points expired")
    CASH_IN = "cash_in", _("Money received")
    PROMOTION = "promotion", _("Promotion expense")
    SALES = "sales", _("Value used in bills")
    BREAKAGE = "breakage", _("Expired value")
    REFUND_OUT = "refund_out", _("Money refunded")


HOLDER_KINDS = frozenset({AccountKind.POINTS, AccountKind.WALLET_PRINCIPAL, AccountKind.WALLET_BONUS,
                          AccountKind.GIFT_CARD, AccountKind.VOUCHER})
SYSTEM_KINDS = frozenset(set(AccountKind.values) - set(HOLDER_KINDS))
POINT_KINDS = frozenset({AccountKind.POINTS, AccountKind.POINTS_ISSUED, AccountKind.POINTS_REDEEMED,
                         AccountKind.POINTS_EXPIRED})


def unit_of(kind: str) -> str:
    return Unit.POINTS if kind in POINT_KINDS else Unit.FEN


def expiry_account_kind(kind: str) -> str:
    return AccountKind.POINTS_EXPIRED if kind == AccountKind.POINTS else AccountKind.BREAKAGE


class EntryReason(models.TextChoices):
    EARN = "earn", _("Earned")
    REDEEM = "redeem", _("Redeemed")
    EXPIRE = "expire", _("Expired")
    TOPUP = "topup", _("Top-up")
    TOPUP_BONUS = "topup_bonus", _("Top-up bonus")
    SPEND = "spend", _("Spent")
    REFUND = "refund", _("Refund")
    CLAWBACK = "clawback", _("Clawed back")
    TRANSFER = "transfer", _("Transfer")
    ISSUE = "issue", _("Issued")
    REVERSAL = "reversal", _("Reversal")
    MERGE = "merge", _("Customer merge")
    ADJUST = "adjust", _("Adjustment")
