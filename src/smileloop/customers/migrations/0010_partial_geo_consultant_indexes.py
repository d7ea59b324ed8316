# The geo and owning-consultant indexes hold only the people who have coordinates / a consultant.

import django.db.models.deletion
from django.db import migrations, models

from smileloop.core.migration_ops import FieldIndexDrop


class Migration(migrations.Migration):

    dependencies = [
        ('clinics', '0001_initial'),
        ('customers', '0009_covered_fk_indexes'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='customer',
            name='customer_geo',
        ),
        FieldIndexDrop(
            model_name='customer',
            name='consultant',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='customers', to='clinics.staff', verbose_name='consultant'),
        ),
        migrations.AddIndex(
            model_name='customer',
            index=models.Index(condition=models.Q(('latitude__isnull', False)), fields=['chain', 'latitude', 'longitude'], name='customer_geo'),
        ),
        migrations.AddIndex(
            model_name='customer',
            index=models.Index(condition=models.Q(('consultant__isnull', False)), fields=['consultant'], name='customer_consultant'),
        ),
    ]
