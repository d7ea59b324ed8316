# Drops foreign-key indexes that a composite index already leads with (and indexes mostly-NULL keys only
# where set); FieldIndexDrop leaves the constraints alone, so no table is re-checked.

import django.db.models.deletion
from django.db import migrations, models

from smileloop.core.migration_ops import FieldIndexDrop


class Migration(migrations.Migration):

    dependencies = [
        ('clinics', '0001_initial'),
        ('customers', '0008_customer_name_covering'),
    ]

    operations = [
        FieldIndexDrop(
            model_name='consent',
            name='customer',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='consents', to='customers.customer'),
        ),
        FieldIndexDrop(
            model_name='consent',
            name='recorded_by',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='clinics.staff'),
        ),
        FieldIndexDrop(
            model_name='customer',
            name='merged_into',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='customers.customer'),
        ),
        FieldIndexDrop(
            model_name='identity',
            name='chain',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='clinics.chain'),
        ),
        FieldIndexDrop(
            model_name='interaction',
            name='customer',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='interactions', to='customers.customer'),
        ),
        migrations.AddIndex(
            model_name='consent',
            index=models.Index(condition=models.Q(('recorded_by__isnull', False)), fields=['recorded_by'], name='consent_recorded_by'),
        ),
        migrations.AddIndex(
            model_name='customer',
            index=models.Index(condition=models.Q(('merged_into__isnull', False)), fields=['merged_into'], name='customer_merged_into'),
        ),
    ]
