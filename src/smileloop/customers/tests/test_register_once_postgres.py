"""The same new-customer form sent twice at once, on PostgreSQL (two connections): the second send waits for the
first's claim of the form's key and leads to the patient it made; a walk-in without a phone was registered twice.
SQLite serialises writers, so this runs on PostgreSQL only."""

import threading

import pytest
from django.test import Client
from django.urls import reverse

from smileloop.core.testing import paused, postgresql_only, race
from smileloop.customers import services
from smileloop.customers.models import Customer

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]


def test_a_walk_in_form_sent_twice_at_once_makes_one_patient(front_desk_a, clinic_a, monkeypatch):
    # given a walk-in without a phone, whose first send holds its transaction open once the patient is registered
    reached = threading.Event()
    monkeypatch.setattr(services, "customer_register", paused(services.customer_register, reached, hold=1.0))
    data = {"name": "王小宝", "gender": "M", "birthday": "2019-05-01", "home_clinic": clinic_a.id, "key": "k-race"}

    def send():
        client = Client()
        client.force_login(front_desk_a.user)
        response = client.post(reverse("customers:create"), data)
        return response.status_code, response.get("Location")

    # when the same form is sent again meanwhile
    out = race(send, send, reached, atomic=False)
    # then one patient, and both sends lead to them
    assert "first_error" not in out and "then_error" not in out
    [patient] = Customer.objects.all()
    assert out["first"] == out["then"] == (302, reverse("customers:detail", args=[patient.id]))
