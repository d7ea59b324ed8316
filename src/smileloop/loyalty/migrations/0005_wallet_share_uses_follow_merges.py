"""Family-wallet uses of patients merged before customer_merge moved hidden foreign keys stayed on the tombstones.
Re-point holder and payer along `merged_into`."""

from django.db import migrations


def forwards(apps, schema_editor):
    Customer = apps.get_model("customers", "Customer")
    WalletShareUse = apps.get_model("loyalty", "WalletShareUse")
    cache: dict = {}

    def survivor(customer_id: int) -> int:
        current, seen = customer_id, []
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

    for field in ("holder", "payer"):
        ids = WalletShareUse.objects.filter(**{f"{field}__merged_into__isnull": False}).values_list(
            f"{field}_id", flat=True)
        for customer_id in sorted(set(ids)):
            WalletShareUse.objects.filter(**{f"{field}_id": customer_id}).update(
                **{f"{field}_id": survivor(customer_id)})


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0004_verbose_names"), ("customers", "0019_verbose_names")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
