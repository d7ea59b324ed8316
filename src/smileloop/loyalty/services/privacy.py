"""What loyalty still owes a person whose personal information is to be erased (customers.privacy): the refund of a
service package they bought and hold, still in force. Cancelling it (`package_cancel`) refunds its bill; an
erasure that went ahead first would leave that money with an anonymous record nobody can ask for, so it is refused
(409 `erase_obligations`) until staff cancel the package or the patient gives the refund up on purpose."""

from django.utils import timezone

from smileloop.core.money import fen_to_yuan
from smileloop.customers.models import Customer
from smileloop.loyalty.enums import PurchaseStatus, RefundRule
from smileloop.loyalty.models import PackagePurchase
from smileloop.loyalty.selectors import package_cancel_quote

# The rule a cancellation applies unless staff choose another (`package_cancel`): the clinics' usual terms.
OWED_RULE = RefundRule.LIST_PRICE


def packages_erase_obligations(customer: Customer) -> list:
    """One obligation per package purchase the person holds that is still in force and whose cancellation would
    refund something now (`package_cancel_quote` under the default rule: the price less what was used at list
    price, never more than is left to refund of its bill). A package used up, or sold without a bill here whose
    rule gives nothing, owes nothing. A person holds a handful of packages at most: a few queries each."""
    from smileloop.customers.privacy import Obligation

    purchases = (PackagePurchase.objects.filter(holder=customer, status=PurchaseStatus.ACTIVE,
                                                period_end__gt=timezone.now())
                 .select_related("package", "order").order_by("id"))
    owed = []
    for purchase in purchases:
        amount = package_cancel_quote(purchase).by_rule[OWED_RULE]
        if amount > 0:
            owed.append(Obligation("package", f"package {purchase.package.name} (purchase {purchase.pk}): "
                                              f"¥{fen_to_yuan(amount)} refunded on cancelling it", amount))
    return owed
