"""One's own password change (/account/password/, services.staff_password_change) and the temporary password a chain
admin sets, which must be replaced before anything else (clinics.middleware.PasswordChangeRequiredMiddleware)."""

import pytest
from django.core.cache import cache
from django.test import Client, override_settings

from smileloop.clinics import services
from smileloop.clinics.enums import Role
from smileloop.clinics.models import Staff
from smileloop.core.errors import ValidationFailed
from smileloop.core.models import AuditEvent

pytestmark = pytest.mark.django_db
PASSWORD = "Smile-loop-2026!"
NEW = "Brush-twice-2026"
URL = "/account/password/"


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def hq(chain):
    return services.staff_create(chain=chain, username="hq_a", name="总部甲", role=Role.CHAIN_ADMIN,
                                 password=PASSWORD)


@pytest.fixture
def doctor(chain, clinic_a):
    return services.staff_create(chain=chain, username="doc", name="张医生", role=Role.DOCTOR, clinics=[clinic_a],
                                 password=PASSWORD)


def browser(staff) -> Client:
    client = Client()
    assert client.post("/login/", {"username": staff.user.username, "password": PASSWORD},
                       REMOTE_ADDR="203.0.113.7").status_code == 302
    return client


def change(client, old=PASSWORD, new=NEW, again=None, next_url="", **extra):
    return client.post(URL, {"old_password": old, "new_password1": new, "new_password2": again or new,
                             "next": next_url}, REMOTE_ADDR="203.0.113.7", **extra)


def test_a_member_of_staff_changes_their_password_stays_logged_in_and_other_browsers_end(doctor):
    here, elsewhere = browser(doctor), browser(doctor)
    assert here.get(URL).status_code == 200
    response = change(here, next_url="/customers/")
    assert response.status_code == 302 and response.url == "/customers/"
    doctor.user.refresh_from_db()
    assert doctor.user.check_password(NEW) and not doctor.user.check_password(PASSWORD)
    assert here.get("/customers/").status_code == 200
    assert elsewhere.get("/customers/").status_code == 302  # opened with the old password: logged out
    event = AuditEvent.objects.get(action="staff.password_change")
    assert (event.actor_id, event.object_type, event.object_id) == (doctor.user_id, "staff", str(doctor.pk))
    assert NEW not in str(event.detail) and PASSWORD not in str(event.detail)


@pytest.mark.parametrize(("old", "new", "again", "field"), [
    ("wrong-password", NEW, NEW, "old_password"),
    (PASSWORD, NEW, "Brush-twice-2027", "new_password2"),
    (PASSWORD, "123456", "123456", "new_password1"),  # Django's validators: too short, too common, numeric
    (PASSWORD, PASSWORD, PASSWORD, "new_password1"),  # no change is no change
    (PASSWORD, "", "", "new_password1"),
])
def test_a_refused_change_names_the_field_and_changes_nothing(doctor, old, new, again, field):
    client = browser(doctor)
    response = change(client, old=old, new=new, again=again, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 422
    assert response.context["form"].errors[field]
    doctor.user.refresh_from_db()
    assert doctor.user.check_password(PASSWORD)
    assert not AuditEvent.objects.filter(action="staff.password_change").exists()
    assert client.get("/customers/").status_code == 200  # still logged in


def test_the_refusals_are_in_chinese_by_default(doctor):
    response = change(browser(doctor), old="wrong-password", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "当前密码不正确" in response.content.decode()


@override_settings(LOGIN_FAILURE_LIMIT=3)
def test_guessing_the_current_password_at_an_open_session_counts_as_failed_logins_and_locks(doctor):
    """An unlocked desk PC is no place to guess a colleague's password: a wrong current password counts toward the
    lockout like a wrong login, and once locked even the right one is refused (and the lockout is audited)."""
    client = browser(doctor)
    for _ in range(3):
        assert change(client, old="guess-1234").status_code == 422
    response = change(client, old=PASSWORD)
    assert response.status_code == 422 and response.context["form"].errors["old_password"]
    doctor.user.refresh_from_db()
    assert doctor.user.check_password(PASSWORD)
    assert AuditEvent.objects.filter(action="login.lockout").count() == 1
    # the guesses counted for this browser (it is trusted for doc: clinics.lockout), so its login is locked too
    client.post("/logout/")
    assert client.post("/login/", {"username": "doc", "password": PASSWORD},
                       REMOTE_ADDR="203.0.113.7").status_code == 429


def test_the_service_refuses_a_wrong_current_password_with_a_field_error(doctor):
    with pytest.raises(ValidationFailed) as refused:
        services.staff_password_change(user=doctor.user, old_password="nope", new_password=NEW)
    assert [e.field for e in refused.value.errors] == ["old_password"]


def test_anonymous_visitors_are_sent_to_log_in():
    response = Client().get(URL)
    assert response.status_code == 302 and response.url.startswith("/login/?next=/account/password/")


def test_every_staff_page_links_to_the_password_change(doctor):
    page = browser(doctor).get("/customers/").content.decode()
    assert 'href="/account/password/"' in page


# --- a temporary password: set by a chain admin, replaced before anything else -------------------------------------

def admin_sets_password(hq, doctor, password="Temp-pass-2026"):
    admin = Client()
    admin.force_login(hq.user)
    response = admin.post(f"/admin/clinics/staff/{doctor.pk}/password/",
                          {"password1": password, "password2": password, "reason": "忘记密码"})
    assert response.status_code == 302
    return password


def test_after_an_admin_reset_every_page_leads_to_the_password_change_until_it_is_done(hq, doctor):
    temporary = admin_sets_password(hq, doctor)
    assert Staff.objects.get(pk=doctor.pk).password_change_required
    client = Client()
    assert client.post("/login/", {"username": "doc", "password": temporary}).status_code == 302
    # every page, a write included, is the password change, coming back to the page asked for
    response = client.get("/customers/?q=zs")
    assert response.status_code == 302 and response.url == "/account/password/?next=/customers/%3Fq%3Dzs"
    assert client.post("/customers/new/", {"name": "张三"}).url.startswith("/account/password/")
    response = client.get("/customers/", headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/followups/"})
    assert response.status_code == 204
    assert response["HX-Redirect"] == "/account/password/?next=http%3A//testserver/followups/"
    page = client.get(URL, {"next": "/customers/"})
    assert page.status_code == 200 and page.context["required"]
    assert page.context["nav_items"] == []  # every entry would lead back here
    assert 'data-testid="password-change-required"' in page.content.decode()
    # the language switch and logging out still work
    assert client.post("/i18n/setlang/", {"language": "en", "next": URL}).status_code == 302
    # done: back to the page asked for, and free to go anywhere
    response = change(client, old=temporary, next_url="/customers/")
    assert response.status_code == 302 and response.url == "/customers/"
    assert not Staff.objects.get(pk=doctor.pk).password_change_required
    assert client.get("/customers/").status_code == 200
    assert client.post("/logout/").status_code == 302


def test_a_temporary_password_leaves_the_api_alone(hq, doctor):
    key = services.token_create(username="doc")
    admin_sets_password(hq, doctor)
    response = Client().get("/api/customers", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200


def test_a_chain_admin_setting_their_own_password_is_not_asked_to_change_it(hq):
    admin = Client()
    admin.force_login(hq.user)
    response = admin.post(f"/admin/clinics/staff/{hq.pk}/password/",
                          {"password1": "Own-new-2026", "password2": "Own-new-2026", "reason": "定期更换"})
    assert response.status_code == 302
    assert not Staff.objects.get(pk=hq.pk).password_change_required
    assert admin.get("/customers/").status_code == 200


def test_a_first_password_from_the_admins_add_form_is_temporary(hq, chain, clinic_a):
    admin = Client()
    admin.force_login(hq.user)
    response = admin.post("/admin/clinics/staff/add/", {
        "chain": chain.pk, "username": "newdesk", "name": "新前台", "role": Role.FRONT_DESK, "clinics": [clinic_a.pk],
        "password1": "First-pass-2026", "password2": "First-pass-2026"})
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    assert Staff.objects.get(user__username="newdesk").password_change_required
    # the seed's and the command line's staff are not asked
    assert not Staff.objects.get(pk=hq.pk).password_change_required


def test_the_operator_without_a_staff_profile_changes_their_password_too(django_user_model):
    operator = django_user_model.objects.create_superuser("operator", password=PASSWORD)
    client = Client()
    client.force_login(operator)
    assert client.get(URL).status_code == 200
    response = change(client, next_url="/admin/")
    assert response.status_code == 302 and response.url == "/admin/"
    operator.refresh_from_db()
    assert operator.check_password(NEW)
    event = AuditEvent.objects.get(action="staff.password_change")
    assert (event.object_type, event.object_id, event.actor_id) == ("user", str(operator.pk), operator.pk)
