# The audit log page filters by staff member and shows the newest first: one index on (actor, created_at), which
# also serves every look-up by actor alone, so the foreign key's own index goes (FieldIndexDrop: no constraint
# re-check).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from smileloop.core.migration_ops import FieldIndexDrop, IndexAnalyze


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0004_verbose_names'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name='auditevent',
            index=models.Index(fields=['actor', 'created_at'], name='audit_actor_created'),
        ),
        FieldIndexDrop(
            model_name='auditevent',
            name='actor',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        IndexAnalyze('audit_actor_created'),
    ]
