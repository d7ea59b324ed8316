"""The memos loyalty writes on its ledger transactions: English templates (what `ledger check`, the API and
exports read), registered with `ledger.memos` so the 360 page shows them in the reader's language. Those that
name a family member by customer id are shown through a template of their own (`SHOWN`) where the person is one
argument: "#12" to a reader whose scope holds them, 张* to another (PIPL)."""

from django.utils.translation import gettext_noop

TOPUP_VIA = gettext_noop("top-up via %(method)s")
TOPUP_BONUS = gettext_noop("bonus: top up ≥ %(min_fen)s fen, get %(bonus_fen)s fen")
TOPUP_REFUND = gettext_noop("refund of top-up #%(topup)s")
BONUS_FORFEITED = gettext_noop("bonus forfeited: refund of top-up #%(topup)s")
SPEND_PARTS = gettext_noop("principal %(principal_fen)s + bonus %(bonus_fen)s")
SPEND_PARTS_PAID_BY = gettext_noop("principal %(principal_fen)s + bonus %(bonus_fen)s; paid by #%(payer)s")
FAMILY_TRANSFER = gettext_noop("family transfer #%(from_customer)s → #%(to_customer)s")
# As pages show the two memos that name a family member (`ledger.memos` people: "#12" or 张*).
SPEND_PARTS_PAID_BY_SHOWN = gettext_noop("principal %(principal_fen)s + bonus %(bonus_fen)s; paid by %(payer)s")
FAMILY_TRANSFER_SHOWN = gettext_noop("family transfer %(from_customer)s → %(to_customer)s")
TIER_MULTIPLIER = gettext_noop("×%(multiplier)s tier multiplier")
POINTS_OFF = gettext_noop("%(off_fen)s fen off a bill")
# As pages show the two memos that state amounts in fen: the label gives yuan, so the unit shown is ¥.
TOPUP_BONUS_SHOWN = gettext_noop("bonus: top up ≥ ¥%(min_fen)s, get ¥%(bonus_fen)s")
POINTS_OFF_SHOWN = gettext_noop("¥%(off_fen)s off a bill")
SHOWN = {SPEND_PARTS_PAID_BY: SPEND_PARTS_PAID_BY_SHOWN, FAMILY_TRANSFER: FAMILY_TRANSFER_SHOWN,
         TOPUP_BONUS: TOPUP_BONUS_SHOWN, POINTS_OFF: POINTS_OFF_SHOWN}


def memos_register() -> None:
    from smileloop.ledger.memos import fen_label, memo_templates_register
    from smileloop.visits.enums import PaymentMethod

    # the longer of two templates that share a beginning first: the first match is the one shown
    memo_templates_register(TOPUP_VIA, TOPUP_BONUS, BONUS_FORFEITED, TOPUP_REFUND, SPEND_PARTS_PAID_BY, SPEND_PARTS,
                            FAMILY_TRANSFER, TIER_MULTIPLIER, POINTS_OFF,
                            labels={"method": lambda code: PaymentMethod(code).label, "min_fen": fen_label,
                                    "bonus_fen": fen_label, "principal_fen": fen_label, "off_fen": fen_label},
                            shown=SHOWN, people=("payer", "from_customer", "to_customer"))
