from django.db import migrations

import smileloop.core.indexes
from smileloop.core.migration_ops import IndexCover


class Migration(migrations.Migration):
    """customer_last_visit covers lifetime spend and merged_into on SQLite too (as trailing key columns)."""

    dependencies = [
        ('customers', '0010_partial_geo_consultant_indexes'),
    ]

    operations = [
        IndexCover(
            model_name='customer',
            index=smileloop.core.indexes.CoveringIndex(fields=['chain', 'last_visit_at'], include=('id', 'lifetime_spend_fen', 'merged_into'), name='customer_last_visit'),
        ),
    ]
