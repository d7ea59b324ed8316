"""Keyword hits of a patient merged before customer_merge moved hidden foreign keys stayed on the tombstone: the
survivor's keyword windows ("said 种牙 twice in 30 days") missed those days. Move them along `merged_into`, folding a
day both records have into the survivor's row (the unique (customer, tag, day)), as the merge hook does now."""

from django.db import migrations

IDS_KEPT = 20  # tagging.keywords.KEYWORD_IDS_KEPT when this was written (migrations stay self-contained)


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
    KeywordHit = apps.get_model("tagging", "KeywordHit")
    cache: dict = {}
    tombstones = KeywordHit.objects.filter(customer__merged_into__isnull=False).values_list("customer_id", flat=True)
    for customer_id in sorted(set(tombstones)):
        survivor = survivor_of(Customer, cache, customer_id)
        kept = {(h.tag_id, h.day): h for h in KeywordHit.objects.filter(customer_id=survivor)}
        for hit in KeywordHit.objects.filter(customer_id=customer_id).order_by("id"):
            mine = kept.get((hit.tag_id, hit.day))
            if mine is None:
                KeywordHit.objects.filter(pk=hit.pk).update(customer_id=survivor)
                continue
            counts = dict(mine.counts)
            for keyword, n in hit.counts.items():
                counts[keyword] = counts.get(keyword, 0) + n
            mine.hits += hit.hits
            mine.counts = counts
            mine.interaction_ids = (list(mine.interaction_ids) + list(hit.interaction_ids))[:IDS_KEPT]
            KeywordHit.objects.filter(pk=mine.pk).update(hits=mine.hits, counts=mine.counts,
                                                         interaction_ids=mine.interaction_ids)
            hit.delete()


class Migration(migrations.Migration):
    dependencies = [("tagging", "0002_verbose_names"), ("customers", "0019_verbose_names")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
