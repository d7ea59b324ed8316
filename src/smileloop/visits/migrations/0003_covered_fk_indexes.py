# Drops foreign-key indexes that a composite index already leads with (and indexes mostly-NULL keys only
# where set); FieldIndexDrop leaves the constraints alone, so no table is re-checked.

import django.db.models.deletion
from django.db import migrations, models

from smileloop.core.migration_ops import FieldIndexDrop


class Migration(migrations.Migration):

    dependencies = [
        ('clinics', '0001_initial'),
        ('customers', '0009_covered_fk_indexes'),
        ('visits', '0002_order_spend_covering_index'),
    ]

    operations = [
        FieldIndexDrop(
            model_name='serviceitem',
            name='chain',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='service_items', to='clinics.chain'),
        ),
        FieldIndexDrop(
            model_name='appointment',
            name='chain',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='clinics.chain'),
        ),
        FieldIndexDrop(
            model_name='appointment',
            name='clinic',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='appointments', to='clinics.clinic'),
        ),
        FieldIndexDrop(
            model_name='appointment',
            name='customer',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='appointments', to='customers.customer'),
        ),
        FieldIndexDrop(
            model_name='order',
            name='chain',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='clinics.chain'),
        ),
        FieldIndexDrop(
            model_name='order',
            name='clinic',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='orders', to='clinics.clinic'),
        ),
        FieldIndexDrop(
            model_name='order',
            name='customer',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='orders', to='customers.customer'),
        ),
        FieldIndexDrop(
            model_name='planstep',
            name='plan',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='steps', to='visits.treatmentplan'),
        ),
        FieldIndexDrop(
            model_name='procedure',
            name='chain',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='clinics.chain'),
        ),
        FieldIndexDrop(
            model_name='procedure',
            name='customer',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='procedures', to='customers.customer'),
        ),
        FieldIndexDrop(
            model_name='procedure',
            name='plan_step',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='visits.planstep'),
        ),
        FieldIndexDrop(
            model_name='refund',
            name='order',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='refunds', to='visits.order'),
        ),
        FieldIndexDrop(
            model_name='treatmentplan',
            name='chain',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='clinics.chain'),
        ),
        migrations.AddIndex(
            model_name='procedure',
            index=models.Index(condition=models.Q(('plan_step__isnull', False)), fields=['plan_step'], name='procedure_plan_step'),
        ),
    ]
