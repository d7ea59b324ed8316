"""Who reaches the Django admin, and how a chain admin manages a member of staff's login there.

The admin has no login form of its own: an anonymous visitor goes to ours (/login/, with the lockout and its audit),
a logged-in member of staff whose role does not administer the chain gets a 403 in the staff layout, in their
language. A chain admin sets a staff member's password, deactivates a leaver's login (sessions and API tokens stop at
once) and reactivates it, always with a reason in the audit log, within their own chain and never on themselves."""

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from smileloop.clinics import services
from smileloop.clinics.enums import Role
from smileloop.clinics.models import Staff
from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory, StaffFactory
from smileloop.core.errors import PermissionDenied
from smileloop.core.models import AuditEvent

pytestmark = pytest.mark.django_db
PASSWORD = "Smile-loop-2026!"


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
def hq_client(hq):
    client = Client()
    client.force_login(hq.user)
    return client


@pytest.fixture
def doctor(chain, clinic_a):
    return services.staff_create(chain=chain, username="doc", name="张医生", role=Role.DOCTOR, clinics=[clinic_a],
                                 password=PASSWORD)


@pytest.fixture
def outsider():
    other = ChainFactory(name="乙连锁")
    return services.staff_create(chain=other, username="doc_b", name="乙医生", role=Role.DOCTOR,
                                 clinics=[ClinicFactory(chain=other)], password=PASSWORD)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def staff_url(name, staff):
    return reverse(f"admin:clinics_staff_{name}", args=[staff.pk])


def api_status(token) -> int:
    return Client().get("/api/customers", headers={"Authorization": f"Bearer {token}"}).status_code


# --- who reaches the admin -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("page", ["/admin/", "/admin/clinics/clinic/"])
def test_an_anonymous_visitor_is_sent_to_our_login_page_never_the_admins(client, page):
    response = client.get(page, follow=True)
    assert response.redirect_chain[-1] == (f"/login/?next={page}", 302)
    assert response.status_code == 200
    assert [t.name for t in response.templates][0] == "registration/login.html"


def test_a_logged_in_front_desk_gets_our_403_in_their_language(client, front_desk_a):
    client.force_login(front_desk_a.user)
    # English
    response = client.get("/admin/", follow=True)
    page = response.content.decode()
    assert response.status_code == 403
    assert "clinics/admin_forbidden.html" in [t.name for t in response.templates]
    assert "The admin is for chain administrators" in page and 'href="/"' in page
    assert 'type="password"' not in page  # no second login form
    # Chinese, for a front desk whose browser asks for it
    page = client.get("/admin/", follow=True, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "后台仅供连锁管理员使用" in page and "返回工作台" in page
    assert logged_in(client)  # not logged out either


def test_the_admins_login_url_takes_no_password(client, hq):
    # when: the chain admin's right password is posted to the Django admin's login URL
    response = client.post(reverse("admin:login") + "?next=/admin/clinics/clinic/",
                           {"username": "hq_a", "password": PASSWORD}, REMOTE_ADDR="203.0.113.7")
    # then: nobody is logged in; the browser goes to our login page, which comes back to the admin page
    assert response.status_code == 302 and response["Location"] == "/login/?next=/admin/clinics/clinic/"
    assert not logged_in(client)
    # and our login page does log them in and sends them there
    response = client.post("/login/?next=/admin/clinics/clinic/", {"username": "hq_a", "password": PASSWORD,
                                                                  "next": "/admin/clinics/clinic/"})
    assert response.status_code == 302 and response["Location"] == "/admin/clinics/clinic/"
    assert client.get("/admin/clinics/clinic/").status_code == 200


def test_a_chain_admin_on_the_admins_login_url_goes_on_to_the_page_asked_for_on_this_site_only(hq_client):
    response = hq_client.get(reverse("admin:login") + "?next=/admin/clinics/clinic/")
    assert response.status_code == 302 and response["Location"] == "/admin/clinics/clinic/"
    response = hq_client.get(reverse("admin:login") + "?next=https://evil.example/")
    assert response.status_code == 302 and response["Location"] == reverse("admin:index")
    assert hq_client.get("/admin/").status_code == 200


# --- a member of staff's login --------------------------------------------------------------------------------------

def test_deactivating_a_leaver_ends_their_session_and_api_tokens_at_once(hq_client, hq, doctor):
    # given: the doctor is logged in and an integration uses their token
    doctor_browser = Client()
    doctor_browser.force_login(doctor.user)
    assert doctor_browser.get("/customers/").status_code == 200
    token = services.token_create(username="doc")
    assert api_status(token) == 200
    # when: the chain admin deactivates the login, saying why
    response = hq_client.post(staff_url("deactivate", doctor), {"reason": "离职"}, REMOTE_ADDR="203.0.113.7")
    # then
    assert response.status_code == 302 and response["Location"] == staff_url("change", doctor)
    doctor.refresh_from_db()
    doctor.user.refresh_from_db()
    assert not doctor.is_active and not doctor.user.is_active
    response = doctor_browser.get("/customers/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert api_status(token) == 401
    assert not Client().post("/login/", {"username": "doc", "password": PASSWORD}).has_header("Location")
    event = AuditEvent.objects.get(action="staff.deactivate")
    assert (event.actor_id, event.object_type, event.object_id, event.reason, event.ip_address) == (
        hq.user_id, "staff", str(doctor.pk), "离职", "203.0.113.7")
    assert event.detail == {"username": "doc", "name": "张医生", "chain_id": doctor.chain_id}
    # the change page says so and offers the way back
    page = hq_client.get(staff_url("change", doctor)).content.decode()
    assert "Deactivated" in page and staff_url("reactivate", doctor) in page


def test_reactivating_gives_the_login_and_its_tokens_back_but_not_the_old_sessions(hq_client, hq, doctor):
    token = services.token_create(username="doc")
    left_logged_in = Client()
    left_logged_in.force_login(doctor.user)
    colleague = Client()
    colleague.force_login(hq.user)
    services.staff_deactivate(staff=doctor, actor=hq.user, reason="离职")
    assert api_status(token) == 401
    response = hq_client.post(staff_url("reactivate", doctor), {"reason": "返聘"})
    assert response.status_code == 302
    assert api_status(token) == 200
    # the browser left logged in before the deactivation must log in again; other people's sessions are untouched
    response = left_logged_in.get("/customers/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert colleague.get("/customers/").status_code == 200
    browser = Client()
    assert browser.post("/login/", {"username": "doc", "password": PASSWORD}).status_code == 302
    assert logged_in(browser)
    event = AuditEvent.objects.get(action="staff.reactivate")
    assert (event.actor_id, event.object_id, event.reason) == (hq.user_id, str(doctor.pk), "返聘")


def test_a_deactivated_chain_admin_loses_the_admin_and_regains_it(hq_client, chain):
    colleague = services.staff_create(chain=chain, username="hq_a2", name="总部乙", role=Role.CHAIN_ADMIN,
                                      password=PASSWORD)
    assert hq_client.post(staff_url("deactivate", colleague), {"reason": "调岗"}).status_code == 302
    colleague.user.refresh_from_db()
    assert not colleague.user.is_staff and not colleague.user.is_active
    assert hq_client.post(staff_url("reactivate", colleague), {"reason": "回来了"}).status_code == 302
    colleague.user.refresh_from_db()
    assert colleague.user.is_staff and colleague.user.is_active


@pytest.mark.parametrize("action", ["deactivate", "reactivate"])
def test_no_reason_no_change(hq_client, hq, doctor, action):
    if action == "reactivate":
        services.staff_deactivate(staff=doctor, actor=hq.user, reason="离职")
    before = (doctor.is_active, AuditEvent.objects.count())
    response = hq_client.post(staff_url(action, doctor), {"reason": "   "})
    assert response.status_code == 200
    assert response.context["form"].errors["reason"]
    doctor.refresh_from_db()
    assert (doctor.is_active, AuditEvent.objects.count()) == before


def test_a_chain_admin_cannot_deactivate_themselves(hq_client, hq):
    assert hq_client.get(staff_url("deactivate", hq)).status_code == 403
    assert hq_client.post(staff_url("deactivate", hq), {"reason": "误操作"}).status_code == 403
    hq.refresh_from_db()
    assert hq.is_active and not AuditEvent.objects.filter(action="staff.deactivate").exists()
    assert staff_url("deactivate", hq) not in hq_client.get(staff_url("change", hq)).content.decode()
    with pytest.raises(PermissionDenied):
        services.staff_deactivate(staff=hq, actor=hq.user, reason="误操作")


def test_a_chain_admin_never_touches_another_chains_staff(hq_client, outsider):
    for name in ("deactivate", "reactivate", "password"):
        assert hq_client.get(staff_url(name, outsider)).status_code == 404
    assert hq_client.post(staff_url("deactivate", outsider), {"reason": "x"}).status_code == 404
    assert hq_client.post(staff_url("password", outsider), {
        "password1": "Taken-over-2026", "password2": "Taken-over-2026", "reason": "x"}).status_code == 404
    outsider.user.refresh_from_db()
    assert outsider.user.is_active and outsider.user.check_password(PASSWORD)
    assert not AuditEvent.objects.filter(object_type="staff").exists()


def test_a_chain_admin_cannot_deactivate_the_operator(hq_client, chain):
    root = get_user_model().objects.create_superuser("root", password=PASSWORD)
    profile = StaffFactory(chain=chain, user=root, role=Role.CHAIN_ADMIN, name="运维")
    assert hq_client.post(staff_url("deactivate", profile), {"reason": "x"}).status_code == 403
    root.refresh_from_db()
    assert root.is_active


def test_the_change_form_no_longer_switches_the_login_silently(hq_client, doctor):
    page = hq_client.get(staff_url("change", doctor))
    assert "is_active" not in page.context["adminform"].form.fields
    assert staff_url("deactivate", doctor) in page.content.decode()
    hq_client.post(staff_url("change", doctor), {"name": "张医生", "role": Role.DOCTOR,
                                                 "clinics": [c.pk for c in doctor.clinics.all()], "is_active": ""})
    doctor.refresh_from_db()
    assert doctor.is_active


def test_a_new_password_is_validated_audited_and_ends_the_old_sessions(hq_client, hq, doctor):
    doctor_browser = Client()
    doctor_browser.force_login(doctor.user)
    url = staff_url("password", doctor)
    # refused: too short and common, and without a reason; nothing changes
    response = hq_client.post(url, {"password1": "123", "password2": "123", "reason": ""})
    form = response.context["form"]
    assert response.status_code == 200 and form.errors["password2"] and form.errors["reason"]
    # when
    response = hq_client.post(url, {"password1": "Temp-pass-2026", "password2": "Temp-pass-2026",
                                    "reason": "忘记密码，电话核实本人"})
    # then
    assert response.status_code == 302
    doctor.user.refresh_from_db()
    assert doctor.user.check_password("Temp-pass-2026")
    assert doctor_browser.get("/customers/").status_code == 302  # logged out where they were
    event = AuditEvent.objects.get(object_type="staff")
    assert (event.action, event.actor_id, event.object_id, event.reason) == (
        "staff.password_set", hq.user_id, str(doctor.pk), "忘记密码，电话核实本人")
    assert "Temp-pass-2026" not in str(event.detail)
    assert Staff.objects.get(pk=hq.pk).user.is_active and logged_in(hq_client)


def test_a_chain_admin_setting_their_own_password_stays_logged_in(hq_client, hq):
    response = hq_client.post(staff_url("password", hq), {"password1": "Own-new-2026", "password2": "Own-new-2026",
                                                          "reason": "定期更换"})
    assert response.status_code == 302
    assert hq_client.get("/admin/").status_code == 200


def test_a_login_already_in_that_state_is_left_alone(hq_client, doctor):
    response = hq_client.post(staff_url("reactivate", doctor), {"reason": "再启用"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 200
    assert "此登录账号已是启用状态。" in response.content.decode()
    assert not AuditEvent.objects.filter(object_type="staff").exists()


def test_revoking_tokens_in_the_admin_cuts_them_off_and_is_audited_once_per_token(hq_client, hq, doctor):
    from smileloop.clinics.models import ApiToken

    live = services.token_create(username="doc", name="POS")
    services.token_create(username="doc", name="old")
    old = ApiToken.objects.get(name="old")
    services.api_tokens_revoke(tokens=ApiToken.objects.filter(pk=old.pk), actor=hq.user)
    AuditEvent.objects.all().delete()
    response = hq_client.post(reverse("admin:clinics_apitoken_changelist"), {
        "action": "revoke", "_selected_action": [str(t.pk) for t in ApiToken.objects.all()]}, REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 302
    assert api_status(live) == 401
    # one event, for the token this revoked (the one revoked already is not revoked again)
    [event] = AuditEvent.objects.filter(action="api_token.revoke")
    pos = ApiToken.objects.get(name="POS")
    assert (event.actor_id, event.object_type, event.object_id, event.ip_address) == (
        hq.user_id, "api_token", str(pos.pk), "203.0.113.9")
    assert event.detail == {"prefix": pos.prefix, "name": "POS", "staff_id": doctor.pk, "username": "doc"}


# --- who granted which role and clinics (PIPL: least privilege on the record) ------------------------------------

def test_adding_a_member_of_staff_records_their_role_and_clinics(hq_client, hq, clinic_a, clinic_b):
    response = hq_client.post(reverse("admin:clinics_staff_add"), {
        "chain": hq.chain_id, "username": "new_fd", "name": "新前台", "role": Role.FRONT_DESK,
        "clinics": [clinic_a.pk, clinic_b.pk], "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 302
    staff = Staff.objects.get(user__username="new_fd")
    event = AuditEvent.objects.get(action="staff.create")
    assert (event.actor_id, event.object_id) == (hq.user_id, str(staff.pk))
    assert event.detail["role_to"] == Role.FRONT_DESK and event.detail["username"] == "new_fd"
    assert event.detail["clinics_added"] == ", ".join(sorted([clinic_a.code, clinic_b.code]))
    # the set-up commands and the seed add staff without an admin: nothing is claimed on anyone's behalf
    services.staff_create(chain=hq.chain, username="seeded", name="种子", role=Role.DOCTOR)
    assert AuditEvent.objects.filter(action="staff.create").count() == 1


def test_a_role_or_clinic_change_is_audited_with_both_sides_and_a_plain_save_is_not(hq_client, hq, doctor, clinic_a,
                                                                                    clinic_b):
    url = staff_url("change", doctor)
    assert hq_client.post(url, {"name": "张医生", "role": Role.DOCTOR, "clinics": [clinic_a.pk]}).status_code == 302
    assert not AuditEvent.objects.filter(action="staff.access_change").exists()  # nothing granted or taken
    assert hq_client.post(url, {"name": "张医生", "role": Role.CLINIC_DIRECTOR,
                                "clinics": [clinic_b.pk]}).status_code == 302
    event = AuditEvent.objects.get(action="staff.access_change")
    assert event.actor_id == hq.user_id and event.object_id == str(doctor.pk)
    assert event.detail == {"username": "doc", "name": "张医生", "chain_id": doctor.chain_id,
                                 "role_from": Role.DOCTOR, "role_to": Role.CLINIC_DIRECTOR,
                                 "clinics_added": clinic_b.code, "clinics_removed": clinic_a.code}
    # the audit page names the roles, not their codes
    page = hq_client.get(reverse("clinics:audit_log"), {"action": "staff.access_change"})
    shown = page.content.decode()  # in the detail's stored key order (jsonb's on PostgreSQL)
    assert "Role before: Doctor" in shown and "Role after: Clinic director" in shown


def test_two_admins_adding_one_username_at_once_is_a_field_error_not_a_500(chain, monkeypatch):
    from django.contrib.auth import get_user_model

    from smileloop.core.errors import ValidationFailed

    # the look-up ran before the other admin's insert committed: the unique index has the last word
    get_user_model().objects.create(username="race")
    monkeypatch.setattr(get_user_model().objects.__class__, "filter",
                        lambda self, **kw: get_user_model().objects.none())
    with pytest.raises(ValidationFailed) as refused:
        services.staff_create(chain=chain, username="race", name="后到", role=Role.DOCTOR)
    assert refused.value.errors[0].field == "username"
    assert Staff.objects.filter(name="后到").count() == 0
