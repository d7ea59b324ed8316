"""Search keys of people whose surname character has readings it does not have as a surname.

The keys took every reading of a name's first character, so 王 (wang, yu) was found by "yu" and 邓 (deng, shan)
by "shan", drowning 于 and 单. pinyin_keys now reads a surname by customers.normalize.SURNAME_READINGS or its usual
reading; this rebuilds the keys of exactly the people whose keys that changes, a batch of ids at a time."""

from django.db import migrations

BATCH = 5000


def _rebuild(apps, schema_editor):
    from pypinyin import Style, pinyin

    from smileloop.customers.normalize import pinyin_keys, surname_readings, to_halfwidth

    Customer = apps.get_model("customers", "Customer")
    SearchKey = apps.get_model("customers", "CustomerSearchKey")
    changed: dict[str, bool] = {}

    def readings_changed(first: str) -> bool:
        if first not in changed:
            old = [r for r in pinyin(first, style=Style.NORMAL, heteronym=True)[0] if r.isascii()]
            changed[first] = old[:8] != surname_readings(first)[:8]
        return changed[first]

    last = 0
    while True:
        batch = list(Customer.objects.filter(pk__gt=last).order_by("pk")
                     .values_list("pk", "chain_id", "home_clinic_id", "name")[:BATCH])
        if not batch:
            break
        last = batch[-1][0]
        stale = [row for row in batch if (name := to_halfwidth(row[3] or "").strip()) and readings_changed(name[0])]
        # only people who have keys (a merged-away record has none, and gets none)
        keyed = set(SearchKey.objects.filter(customer_id__in=[row[0] for row in stale])
                    .values_list("customer_id", flat=True).distinct())
        stale = [row for row in stale if row[0] in keyed]
        if not stale:
            continue
        SearchKey.objects.filter(customer_id__in=keyed).delete()
        keys = []
        for pk, chain_id, home_clinic_id, name in stale:
            initials, full = pinyin_keys(name)
            keys += [SearchKey(customer_id=pk, chain_id=chain_id, home_clinic_id=home_clinic_id, kind=kind,
                               value=value[:64])
                     for kind, values in (("i", initials), ("p", full)) for value in values]
        SearchKey.objects.bulk_create(keys, batch_size=1000)


class Migration(migrations.Migration):

    dependencies = [
        ("customers", "0017_channel_xiaohongshu"),
    ]

    operations = [
        migrations.RunPython(_rebuild, migrations.RunPython.noop),
    ]
