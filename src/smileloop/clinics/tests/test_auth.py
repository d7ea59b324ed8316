"""The login backend loads the staff profile with the user: one query for both on every staff page."""

from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from smileloop.clinics.auth import StaffModelBackend
from smileloop.clinics.tests.factories import UserFactory


def test_a_staff_page_reads_user_and_staff_in_one_query(client, front_desk_a):
    client.force_login(front_desk_a.user)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("customers:list"))
    assert response.status_code == 200
    users = [q["sql"] for q in queries.captured_queries if 'FROM "auth_user"' in q["sql"]]
    staff = [q["sql"] for q in queries.captured_queries if 'FROM "clinics_staff"' in q["sql"]]
    assert len(users) == 1 and '"clinics_staff"' in users[0]
    assert staff == []


def test_a_login_without_staff_profile_and_an_inactive_login(db, front_desk_a):
    backend = StaffModelBackend()
    plain = UserFactory()
    assert backend.get_user(plain.pk) == plain
    assert getattr(backend.get_user(plain.pk), "staff", None) is None
    assert backend.get_user(front_desk_a.user.pk).staff == front_desk_a
    get_user_model().objects.filter(pk=front_desk_a.user.pk).update(is_active=False)
    assert backend.get_user(front_desk_a.user.pk) is None
    assert backend.get_user(10**9) is None


def test_logging_in_through_the_form_uses_it(client, front_desk_a):
    response = client.post(reverse("login"), {"username": front_desk_a.user.username, "password": "pass-1234"})
    assert response.status_code == 302
    assert client.session["_auth_user_backend"] == "smileloop.clinics.auth.StaffModelBackend"
