"""Checkout: price a bill (`checkout_price`, no writes), pay it (`checkout_pay`, one transaction), refund it
(`checkout_refund`). The arithmetic lives in `pricing` (pure; its docstring states the order of application
and the rounding, see also docs/adr/0004-checkout-rounding.md).

Pay records the order (visits.order_record: member discount + entitlements as the line discount; payments:
the cash methods given, and "wallet", "gift_card", "voucher" and "points" for what those tenders paid),
posts every ledger movement (gift cards and vouchers to SALES, points
redeemed, wallet spent, entitlements used), earns points on what was paid in money and stored value, links
all of it to the order in a Settlement, and re-evaluates membership. Idempotent on `key`.

Refund: a refund of R fen is split over the tenders in proportion to what each has not yet given back
(largest remainder; the last refund gives back exactly what is left), and each movement is reversed
cumulatively (`ledger_reverse(upto=refunded so far / paid by it)`) so repeated partial refunds never drift.
Entitlement uses of refunded units are given back. What went back is recorded by method (refund.refund_split): one
visits.Refund per payment method, the money over the bill's money methods in proportion to what each has left, each
tender under its own method, a clawback withheld under `points` (checkout/README.md).

Refund clawback (computed by loyalty's `points_clawback_plan`, posted by `points_clawback_post`, the policy package
cancellations follow too): after a refund the bill has given back a share s of itself, so round_half_up(earned × s)
of the points it earned are due back in total, less what earlier refunds of the bill settled: the points taken back
(the ledger's reversals of the earn) and those settled in money (their "earn" tenders' `shortfall_points`). They are
taken back from the points account as far as it holds them once the refund's own tenders are back (a merged
member's: the survivor's; the bill's own lots first, even while pending, then other spendable lots): points the bill
redeemed, returned by this refund, pay for earned points already spent before any money is withheld.
Points already spent are converted into money at the chain's redeem rate (loyalty.points_redeem_terms:
fen = ceil(points × 100 / points_per_yuan)) and withheld from this refund's cash part, shown in the refund
breakdown as a "clawback" tender "points already spent, withheld from the refund: X.XX" (the cash tender is the cash part minus it, so the
tenders still add up to the refund). If the cash part is smaller than that, the refund is refused with
`clawback_exceeds_refund` and nothing changes. The order still records the lines as refunded in full: the
withheld money pays for points the member already enjoyed.

Pay re-prices the bill inside its transaction under the customer's row lock (a different result is
`price_changed`) rather than trusting a fingerprint: a fingerprint that covers everything a price depends
on (item rows, tier and family/friend links, card/voucher status, balances, lots, entitlements, redeem terms,
consents) reads as many rows as pricing does, so pricing is made cheap instead: one catalogue query, one
entitlement query for all lines, one member-discount lookup per price.
"""

from smileloop.checkout.services.pay import REUSE_SECONDS, checkout_pay
from smileloop.checkout.services.price import PricedBill, checkout_price
from smileloop.checkout.services.refund import checkout_refund
from smileloop.core.errors import DomainError

__all__ = ["REUSE_SECONDS", "DomainError", "PricedBill", "checkout_pay", "checkout_price", "checkout_refund"]
