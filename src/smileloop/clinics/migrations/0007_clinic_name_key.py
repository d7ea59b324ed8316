"""Clinic.name_key (clinic_name_key of the name) for the per-chain unique name of 0008.

Clinics of one chain that already share a name (made before the admin refused it, or by a script) are told apart
here instead of failing the deploy: the oldest keeps its name, each later one gets its code appended
("静安门诊" → "静安门诊 (SH02)", the code being unique in the chain), and every rename is printed. Nothing else
changes (the records keep pointing at the same clinic ids); a chain admin may rename them afterwards."""

import re
import unicodedata

from django.db import migrations, models


def _key(name: str) -> str:  # clinics.models.clinic_name_key as of this migration
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", name or "")).lower()[:255]


def name_keys_fill(apps, schema_editor):
    Clinic = apps.get_model("clinics", "Clinic")
    taken: dict[int, set[str]] = {}
    for clinic in Clinic.objects.order_by("chain_id", "id").only("id", "chain_id", "code", "name"):
        keys = taken.setdefault(clinic.chain_id, set())
        name = clinic.name
        if _key(name) in keys:
            suffix = f" ({clinic.code})"
            name = clinic.name[:100 - len(suffix)] + suffix
            n = 2
            while _key(name) in keys:  # a clinic already called "静安门诊 (SH02)": the id decides
                suffix = f" ({clinic.code}-{clinic.id}{'' if n == 2 else f'-{n}'})"
                name = clinic.name[:100 - len(suffix)] + suffix
                n += 1
            print(f"\n  clinics.0007: clinic {clinic.id} of chain {clinic.chain_id} renamed from {clinic.name!r} to "
                  f"{name!r}: another clinic of the chain has its name")
        keys.add(_key(name))
        Clinic.objects.filter(pk=clinic.pk).update(name=name, name_key=_key(name))


class Migration(migrations.Migration):

    dependencies = [
        ("clinics", "0006_verbose_names"),
    ]

    operations = [
        migrations.AddField(
            model_name="clinic",
            name="name_key",
            field=models.CharField(default="", editable=False, max_length=255, verbose_name="name key"),
        ),
        migrations.RunPython(name_keys_fill, migrations.RunPython.noop, elidable=False),
        migrations.AlterField(
            model_name="clinic",
            name="opening_hours",
            field=models.JSONField(
                blank=True, default=dict, verbose_name="opening hours",
                help_text='Weekday → ["opening", "closing"], e.g. {"mon": ["09:00", "18:00"], "fri": ["18:00", '
                          '"02:00"]}: a closing time before the opening time closes the next day (a late-night '
                          'clinic).'),
        ),
    ]
