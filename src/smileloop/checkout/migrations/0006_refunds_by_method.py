"""Checkout refunds written before refunds were recorded by method: one visits.Refund for the whole refund, under the
bill's first money method, though wallet, points, gift cards and vouchers gave part of it back. Split each into one
Refund per method, as checkout_refund now records them (services/refund.py, `refund_split`):

- each tender's part is exact: the refund's RefundMovement rows say what every movement gave back;
- the clawback withheld is exact (the breakdown's "clawback" tender) and goes under `points`;
- the money given back (`cash_fen`) is split over the bill's money methods by the same rule as new refunds (in
  proportion to what each has left, the settlement's refunds taken in the order they were made). A bill paid by one
  money method (most) is exact; for several, the till's actual split was never recorded, and the rule gives each
  method exactly what it paid once the bill is refunded in full.

The order, its lines, the customer's figures and the ledger are untouched: only how the refunded amount is
attributed. A refund whose rows do not add up (hand-edited) is left as it was. The split functions are repeated
here (not imported) so that later changes to the service cannot change what this migration did."""

from django.db import migrations

ROLE_METHOD = {"giftcard": "gift_card", "voucher": "voucher", "points": "points", "wallet": "wallet"}
TENDER_METHODS = ("wallet", "gift_card", "voucher", "points")


def allocate(amount: int, weights: list[int]) -> list[int]:
    """checkout.pricing.allocate: floors, then one fen each to the largest remainders (ties: the earlier index)."""
    total = sum(weights)
    if amount == 0 or total == 0:
        return [0] * len(weights)
    parts = [amount * w // total for w in weights]
    for i in sorted(range(len(weights)), key=lambda i: (-(amount * weights[i] % total), i))[:amount - sum(parts)]:
        parts[i] += 1
    return parts


def money_split(money_fen: int, paid: dict, refunded: dict) -> dict:
    left = [max(0, fen - refunded.get(m, 0)) for m, fen in paid.items()]
    shares = allocate(min(money_fen, sum(left)), left)
    if money_fen > sum(left):
        shares = [a + b for a, b in zip(shares, allocate(money_fen - sum(left), list(paid.values())), strict=True)]
    return dict(zip(paid, shares, strict=True))


def lines_split(amounts: dict, by_method: list) -> list:
    ids = sorted(amounts)
    left = [amounts[i] for i in ids]
    out = []
    for n, (method, fen) in enumerate(by_method):
        shares = list(left) if n == len(by_method) - 1 else allocate(fen, left)
        left = [a - b for a, b in zip(left, shares, strict=True)]
        out.append((method, {i: share for i, share in zip(ids, shares, strict=True) if share}))
    return out


def split_one(apps, rs, money_refunded: dict) -> None:
    Payment = apps.get_model("visits", "Payment")
    Refund = apps.get_model("visits", "Refund")
    RefundLine = apps.get_model("visits", "RefundLine")
    RefundMovement = apps.get_model("checkout", "RefundMovement")
    refund = rs.refund
    paid: dict = {}
    for method, fen in Payment.objects.filter(order_id=refund.order_id).order_by("id").values_list("method",
                                                                                                 "amount_fen"):
        paid[method] = paid.get(method, 0) + fen
    parts = dict.fromkeys(paid, 0)
    for role, fen in RefundMovement.objects.filter(refund_id=rs.pk, amount_fen__gt=0).values_list("movement__role",
                                                                                                 "amount_fen"):
        parts[ROLE_METHOD[role]] = parts.get(ROLE_METHOD[role], 0) + fen
    withheld = sum(int(t.get("amount_fen", 0)) for t in rs.breakdown.get("tenders", []) if t.get("kind") == "clawback")
    if withheld:
        parts["points"] = parts.get("points", 0) + withheld
    money = {m: fen for m, fen in paid.items() if m not in TENDER_METHODS}
    if rs.cash_fen and not money:
        parts["other"] = parts.get("other", 0) + rs.cash_fen
    elif rs.cash_fen:
        for method, fen in money_split(rs.cash_fen, money, money_refunded).items():
            parts[method] += fen
            money_refunded[method] = money_refunded.get(method, 0) + fen
    by_method = [(m, fen) for m, fen in parts.items() if fen]
    lines: dict = {}
    for line_id, fen in RefundLine.objects.filter(refund_id=refund.pk).values_list("order_line_id", "amount_fen"):
        lines[line_id] = lines.get(line_id, 0) + fen
    if sum(fen for _, fen in by_method) != refund.amount_fen or sum(lines.values()) != refund.amount_fen:
        return  # does not add up: left as it was
    rows = []
    for n, (method, per_line) in enumerate(lines_split(lines, by_method)):
        fen = sum(per_line.values())
        if n == 0:
            row = refund
            Refund.objects.filter(pk=row.pk).update(method=method, amount_fen=fen)
            RefundLine.objects.filter(refund_id=row.pk).delete()
        else:
            row = Refund.objects.create(order_id=refund.order_id, amount_fen=fen, method=method, reason=refund.reason,
                                        refunded_at=refund.refunded_at, actor_id=refund.actor_id)
        RefundLine.objects.bulk_create([RefundLine(refund_id=row.pk, order_line_id=k, amount_fen=v)
                                        for k, v in per_line.items()])
        rows.append(row)
    rs.order_refunds.set(rows)
    rs.breakdown = {**rs.breakdown, "by_method": [{"method": m, "amount_fen": fen} for m, fen in by_method]}
    rs.save(update_fields=["breakdown"])


def forwards(apps, schema_editor):
    RefundSettlement = apps.get_model("checkout", "RefundSettlement")
    money_refunded: dict = {}  # per settlement: {money method: given back by the refunds split so far}
    for rs in list(RefundSettlement.objects.filter(refund__isnull=False, order_refunds__isnull=True)
                   .select_related("refund").order_by("settlement_id", "created_at", "id")):
        split_one(apps, rs, money_refunded.setdefault(rs.settlement_id, {}))


class Migration(migrations.Migration):
    dependencies = [("checkout", "0005_refund_settlement_order_refunds"), ("visits", "0008_payment_method_tenders")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop, elidable=False)]
