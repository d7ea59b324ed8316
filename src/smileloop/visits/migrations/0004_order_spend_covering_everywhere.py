from django.db import migrations

import smileloop.core.indexes
from smileloop.core.migration_ops import IndexCover


class Migration(migrations.Migration):
    """order_customer_spend covers amount and refund on SQLite too (as trailing key columns)."""

    dependencies = [
        ('visits', '0003_covered_fk_indexes'),
    ]

    operations = [
        IndexCover(
            model_name='order',
            index=smileloop.core.indexes.CoveringIndex(fields=['customer', '-ordered_at'], include=('amount_fen', 'refunded_fen'), name='order_customer_spend'),
        ),
    ]
