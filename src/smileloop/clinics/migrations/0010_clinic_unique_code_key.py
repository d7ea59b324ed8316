"""No two clinics of a chain share a code but for case or full width (Clinic.code_key, filled and de-duplicated by
0009). A migration of its own: PostgreSQL adds the constraint after 0009's updates committed."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("clinics", "0009_clinic_code_key"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="clinic",
            constraint=models.UniqueConstraint(fields=("chain", "code_key"), name="clinic_unique_code_key",
                                               violation_error_message="Another clinic of this chain has this code."),
        ),
    ]
