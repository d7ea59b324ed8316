"""The follow-up take-overs and reassignments audited before AuditEvent.clinic_id existed get their task's clinic, so
that its director's audit log shows them whoever acted. One set-based UPDATE."""

from django.db import migrations
from django.db.models import IntegerField, OuterRef, Subquery
from django.db.models.functions import Cast


def backfill(apps, schema_editor):
    AuditEvent = apps.get_model("core", "AuditEvent")
    FollowupTask = apps.get_model("followups", "FollowupTask")
    clinic = FollowupTask.objects.filter(pk=Cast(OuterRef("object_id"), IntegerField())).values("clinic_id")[:1]
    (AuditEvent.objects.filter(object_type="followup_task", clinic_id__isnull=True, actor__isnull=False,
                               object_id__regex=r"^[0-9]{1,18}$")
     .update(clinic_id=Subquery(clinic)))


class Migration(migrations.Migration):

    dependencies = [
        ("followups", "0005_verbose_names"),
        ("core", "0006_auditevent_clinic"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True)]
