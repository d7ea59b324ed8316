"""Settlements of a patient merged before customer_merge moved hidden foreign keys stayed on the tombstone: the
survivor's bill could not be found or refunded. Re-point them along `merged_into` (set-based per tombstone)."""

from django.db import migrations


def survivor_of(Customer, cache: dict, customer_id: int) -> int:
    seen = []
    current = customer_id
    while current not in cache:
        seen.append(current)
        nxt = Customer.objects.filter(pk=current).values_list("merged_into_id", flat=True).first()
        if nxt is None:
            cache[current] = current
            break
        current = nxt
    for cid in seen:
        cache[cid] = cache[current]
    return cache[customer_id]


def forwards(apps, schema_editor):
    Customer = apps.get_model("customers", "Customer")
    Settlement = apps.get_model("checkout", "Settlement")
    cache: dict = {}
    tombstones = Settlement.objects.filter(customer__merged_into__isnull=False).values_list("customer_id", flat=True)
    for customer_id in sorted(set(tombstones)):
        Settlement.objects.filter(customer_id=customer_id).update(
            customer_id=survivor_of(Customer, cache, customer_id))


class Migration(migrations.Migration):
    dependencies = [("checkout", "0002_settlement_request_hash"), ("customers", "0019_verbose_names")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
