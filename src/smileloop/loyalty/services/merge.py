"""Customer merge hook: when both records are covered by the same package purchase, the duplicate person's
cover and grants fold into the survivor's (uses move onto the survivor's grant), so one person never holds a
purchase's entitlements twice. Everything else moves with the generic foreign-key move; ledger accounts are
merged by the ledger's own hook."""

from smileloop.customers.models import Customer
from smileloop.loyalty.models import EntitlementGrant, EntitlementUse, PackageCover


def loyalty_merge_hook(*, survivor: Customer, merged: Customer) -> None:
    shared = set(PackageCover.objects.filter(customer=survivor).values_list("purchase_id", flat=True)) & set(
        PackageCover.objects.filter(customer=merged).values_list("purchase_id", flat=True))
    if not shared:
        return
    kept = {(g.purchase_id, g.entitlement_id, g.label): g.id
            for g in EntitlementGrant.objects.filter(customer=survivor, purchase_id__in=shared)}
    for grant in EntitlementGrant.objects.filter(customer=merged, purchase_id__in=shared):
        target = kept.get((grant.purchase_id, grant.entitlement_id, grant.label))
        if target is None:
            continue  # the generic move re-points it to the survivor
        EntitlementUse.objects.filter(grant=grant).update(grant_id=target)
        grant.delete()
    PackageCover.objects.filter(customer=merged, purchase_id__in=shared).delete()
