import smileloop.core.indexes
from django.db import migrations

from smileloop.core.migration_ops import IndexAnalyze


class Migration(migrations.Migration):
    """Name and phone-tail indexes that also answer the duplicate groups (merge candidates) as ordered walks."""

    dependencies = [
        ('clinics', '0001_initial'),
        ('customers', '0011_customer_last_visit_covering_everywhere'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='customer',
            name='customer_mobile_tail',
        ),
        migrations.RemoveIndex(
            model_name='customer',
            name='customer_name',
        ),
        migrations.AddIndex(
            model_name='customer',
            index=smileloop.core.indexes.CoveringIndex(fields=['chain', 'mobile_tail', 'name'], include=('merged_into', 'home_clinic', 'consultant'), name='customer_mobile_tail'),
        ),
        migrations.AddIndex(
            model_name='customer',
            index=smileloop.core.indexes.CoveringIndex(fields=['chain', 'name', 'birthday'], include=('id', 'merged_into', 'home_clinic', 'consultant'), name='customer_name'),
        ),
        IndexAnalyze('customer_mobile_tail', 'customer_name'),
    ]
