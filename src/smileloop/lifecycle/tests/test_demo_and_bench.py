import datetime as dt

from django.utils import timezone

from smileloop.customers.models import Customer
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.lifecycle.bench import lifecycle_bench
from smileloop.lifecycle.demo import demo_load


def test_demo_load_derives_stages_from_bulk_loaded_facts_and_is_idempotent(chain, clinic_a):
    long_ago = timezone.now() - dt.timedelta(days=500)
    visited = CustomerFactory(chain=chain, home_clinic=clinic_a, visit_count=3, lifetime_spend_fen=90000,
                              last_visit_at=long_ago, first_visit_at=long_ago)
    first = demo_load(chain=chain, today=timezone.localdate())
    second = demo_load(chain=chain, today=timezone.localdate())
    assert first["events"] == 1 and second["events"] == 0
    assert Customer.objects.values_list("stage", "stage_reached").get(pk=visited.pk) == ("dormant", "treated")


def test_the_bench_times_derive_and_the_job_and_leaves_the_data_as_it_was(chain, clinic_a):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a, stage="treated", lifetime_spend_fen=100)
    result = lifecycle_bench(chain=chain)
    assert result["customers"] == 1
    assert result["derive_counts"]["events"] == 1 and result["derive_again_counts"]["events"] == 0
    assert {"derive_s", "derive_again_s", "stages_job_s"} <= set(result)
    customer.refresh_from_db()
    assert (customer.stage, customer.stage_reached) == ("treated", "treated")
