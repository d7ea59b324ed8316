"""Clinic.code_key (clinics.models.clinic_name_key of the code) for the per-chain unique code of 0010, case and full
width folded: the import finds clinics by code so, and "sh01" beside "SH01" sent rows to whichever was read last.

Clinics of one chain whose codes already differ only so (made before the admin refused it) are told apart here
instead of failing the deploy: the oldest keeps its code, each later one gets its id appended ("sh01" → "sh01-4"),
and every change is printed. Nothing else changes (records point at clinic ids)."""

import re
import unicodedata

from django.db import migrations, models


def _key(value: str) -> str:  # clinics.models.clinic_name_key as of this migration
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", value or "")).lower()[:64]


def code_keys_fill(apps, schema_editor):
    Clinic = apps.get_model("clinics", "Clinic")
    taken: dict[int, set[str]] = {}
    for clinic in Clinic.objects.order_by("chain_id", "id").only("id", "chain_id", "code"):
        keys = taken.setdefault(clinic.chain_id, set())
        code = clinic.code
        n = 1
        while _key(code) in keys:  # "sh01-4", then "sh01-4-2" should that be taken too
            suffix = f"-{clinic.id}" + ("" if n == 1 else f"-{n}")
            code = clinic.code[:32 - len(suffix)] + suffix
            n += 1
        if code != clinic.code:
            print(f"\n  clinics.0009: clinic {clinic.id} of chain {clinic.chain_id} re-coded from {clinic.code!r} to "
                  f"{code!r}: another clinic of the chain has its code but for case or full width")
        keys.add(_key(code))
        Clinic.objects.filter(pk=clinic.pk).update(code=code, code_key=_key(code))


class Migration(migrations.Migration):

    dependencies = [
        ("clinics", "0008_clinic_unique_name"),
    ]

    operations = [
        migrations.AddField(
            model_name="clinic",
            name="code_key",
            field=models.CharField(default="", editable=False, max_length=64, verbose_name="code key"),
        ),
        migrations.RunPython(code_keys_fill, migrations.RunPython.noop, elidable=False),
    ]
