"""Concurrent upserts of one person on PostgreSQL end as one person (run only on PostgreSQL)."""

import pytest
from django.db import connection

from smileloop.core.testing import writers_run
from smileloop.customers.models import Customer
from smileloop.customers.services import customer_upsert

pytestmark = pytest.mark.django_db(transaction=True)


def test_eight_concurrent_upserts_of_one_phone_make_one_person(chain):
    if connection.vendor != "postgresql":
        pytest.skip("row locks and concurrent writers are exercised on PostgreSQL only")
    # given eight writers released at once
    def writer(i):
        customer, created = customer_upsert(chain=chain.id, data={"name": "并发", "mobile": "13800138000",
                                                                  "community": f"小区{i}"})
        return [(customer.id, created)]

    # when
    results, errors = writers_run(writer, 8)
    # then
    assert errors == []
    assert Customer.objects.count() == 1
    assert {cid for cid, _ in results} == {Customer.objects.get().id}
    assert sum(created for _, created in results) == 1
