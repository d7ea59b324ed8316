"""No two clinics of a chain share a name (case, spaces and full width folded: Clinic.name_key, filled and
de-duplicated by 0007). A migration of its own: PostgreSQL adds the constraint after 0007's updates committed."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("clinics", "0007_clinic_name_key"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="clinic",
            constraint=models.UniqueConstraint(fields=("chain", "name_key"), name="clinic_unique_name",
                                               violation_error_message="Another clinic of this chain has this name."),
        ),
    ]
