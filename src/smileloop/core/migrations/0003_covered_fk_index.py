# Drops foreign-key indexes that a composite index already leads with (and indexes mostly-NULL keys only
# where set); FieldIndexDrop leaves the constraints alone, so no table is re-checked.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from smileloop.core.migration_ops import FieldIndexDrop


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0002_idempotency_created_index'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        FieldIndexDrop(
            model_name='idempotencyrecord',
            name='user',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
    ]
