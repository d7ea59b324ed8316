"""The same new-customer form sent twice at once, on PostgreSQL (two connections): the second send waits for the
first's claim of the form's key and leads to the patient it made; a walk-in without a phone was registered twice.
And one phone-less name sent from two desks at once (two forms, two keys): the second waits for the first's lock on
the name and is shown the warning naming her (services.customer_register's namesake check was a read: both
registered). SQLite serialises writers, so this runs on PostgreSQL only."""

import threading
import time

import pytest
from django.test import Client
from django.urls import reverse

from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import StaffFactory
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


def _desk_sends(staff, data):
    def send():
        client = Client()
        client.force_login(staff.user)
        response = client.post(reverse("customers:create") + "?send=1", data)
        return response.status_code, response.get("Location")
    return send


def test_one_phone_less_name_sent_from_two_desks_at_once_registers_one_and_names_her_to_the_other(
        front_desk_a, chain, clinic_a, monkeypatch):
    # given two desks of clinic A, each with a new-customer form of its own (two keys) for the same walk-in, the first
    # of which holds its transaction open once she is inserted
    other = StaffFactory(chain=chain, role=Role.FRONT_DESK, name="前台小李", clinics=[clinic_a],
                         user__username="frontdesk_a2")
    reached = threading.Event()
    monkeypatch.setattr(services, "customer_ingest", paused(services.customer_ingest, reached, hold=1.0))
    walk_in = {"name": "陈小雨", "gender": "F", "home_clinic": clinic_a.id}
    # when the second desk sends hers meanwhile
    out = race(_desk_sends(front_desk_a, {**walk_in, "key": "k-desk-1"}),
               _desk_sends(other, {**walk_in, "key": "k-desk-2"}), reached, atomic=False)
    # then the second waited for the first: one 陈小雨, and the second desk is shown the warning naming her
    assert "first_error" not in out and "then_error" not in out
    [patient] = Customer.objects.all()
    assert out["first"] == (302, reverse("customers:detail", args=[patient.id]))
    status, location = out["then"]
    assert status == 302 and location.startswith(reverse("customers:create") + "?warned=")


def test_a_registration_with_a_phone_does_not_wait_for_a_walk_in_of_the_same_name(front_desk_a, clinic_a,
                                                                                   monkeypatch):
    # given a phone-less 陈小雨 being registered, her transaction held open (holding the name's lock) for 3 seconds
    reached = threading.Event()
    monkeypatch.setattr(services, "customer_ingest", paused(services.customer_ingest, reached, hold=3.0))
    walk_in = {"name": "陈小雨", "gender": "F", "home_clinic": clinic_a.id}
    took = {}

    def with_phone():
        started = time.monotonic()
        result = _desk_sends(front_desk_a, {**walk_in, "mobile": "13912345678", "key": "k-phone"})()
        took["seconds"] = time.monotonic() - started
        return result

    # when a 陈小雨 with a phone is registered meanwhile
    out = race(_desk_sends(front_desk_a, {**walk_in, "key": "k-walk-in"}), with_phone, reached, atomic=False)
    # then she did not wait for the walk-in's commit: two patients
    assert "first_error" not in out and "then_error" not in out
    assert out["then"][0] == 302 and took["seconds"] < 2.0
    assert Customer.objects.filter(name="陈小雨").count() == 2
