"""The audit events about a patient written before AuditEvent.clinic_id existed get their patient's home clinic, so
that a clinic director's audit log shows them too. One set-based UPDATE."""

from django.db import migrations
from django.db.models import IntegerField, OuterRef, Subquery
from django.db.models.functions import Cast


def backfill(apps, schema_editor):
    AuditEvent = apps.get_model("core", "AuditEvent")
    Customer = apps.get_model("customers", "Customer")
    home = Customer.objects.filter(pk=Cast(OuterRef("object_id"), IntegerField())).values("home_clinic_id")[:1]
    (AuditEvent.objects.filter(object_type="customer", clinic_id__isnull=True, actor__isnull=False,
                               object_id__regex=r"^[0-9]{1,18}$")
     .update(clinic_id=Subquery(home)))


class Migration(migrations.Migration):

    dependencies = [
        ("customers", "0020_customer_erased_at"),
        ("core", "0006_auditevent_clinic"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True)]
