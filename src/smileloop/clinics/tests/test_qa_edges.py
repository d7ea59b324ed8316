"""Edges of the clinics app found in QA: clinic configuration in the admin, naming a clinic or staff member by id or
code in the API, tokens and usernames, the audit log's filters and scope, and the access of a staff member whose
role or clinics change."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from smileloop.clinics import services
from smileloop.clinics.api import clinic_for_filter, clinic_for_write, staff_for_input
from smileloop.clinics.enums import ROLE_PERMISSIONS, Perm, Role
from smileloop.clinics.models import ApiToken, Clinic
from smileloop.clinics.selectors import audit_event_list, scope_for_staff
from smileloop.clinics.tests.factories import ClinicFactory
from smileloop.core.audit import audit_record
from smileloop.core.errors import PermissionDenied, ValidationFailed
from smileloop.core.models import AuditEvent
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.visits.tests.factories import ServiceItemFactory

pytestmark = pytest.mark.django_db
PASSWORD = "Smile-loop-2026!"


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


def _staff(chain, username, role, clinics=()):
    return services.staff_create(chain=chain, username=username, name=username, role=role, clinics=list(clinics),
                                 password=PASSWORD)


def _api(key, path="/api/customers"):
    return Client().get(path, HTTP_AUTHORIZATION=f"Bearer {key}")


def _names(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {item["name"] for item in response.json()["items"]}


# --- clinic configuration in the admin ----------------------------------------------------------------------------

def _clinic_data(clinic, **changes) -> dict:
    data = {"chain": clinic.chain_id, "code": clinic.code, "name": clinic.name, "city": clinic.city,
            "address": clinic.address, "latitude": "", "longitude": "", "opening_hours": "{}", "phone": "",
            "is_active": "on"}
    return {**data, **changes}


def test_a_code_another_service_item_has_is_refused_on_its_change_page_not_a_500(admin_client, chain):
    # the same read-only chain on every FixedOnChange admin (core.admin): checked for them all in one place
    taken = ServiceItemFactory(chain=chain, code="CL01")
    item = ServiceItemFactory(chain=chain, code="CL02", name="洁牙", category="cleaning", list_price_fen=30000)
    response = admin_client.post(reverse("admin:visits_serviceitem_change", args=[item.pk]), {
        "code": taken.code, "name": item.name, "category": item.category, "list_price_fen": "30000",
        "is_active": "on"})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["code"] == [
        "Service item with this Chain and Code already exists."]
    item.refresh_from_db()
    assert item.code == "CL02"


def test_a_code_another_clinic_has_is_refused_on_the_change_page_not_a_500(admin_client, clinic_a, clinic_b):
    # the chain is read-only on the change page, so Django's check of the (chain, code) constraint skipped it and
    # the save was an IntegrityError
    response = admin_client.post(reverse("admin:clinics_clinic_change", args=[clinic_b.pk]),
                                 _clinic_data(clinic_b, code=clinic_a.code, name="改名"))
    assert response.status_code == 200
    # (the form's own check, clinics.admin.ClinicForm._code_check, which also folds case and full width)
    assert response.context["adminform"].form.errors["code"] == [
        f"Clinic “{clinic_a.name}” of this chain has the code “{clinic_a.code}”: codes are told apart without case or "
        "full width (imports find clinics by them). Give this clinic a code of its own."]
    chinese = admin_client.post(reverse("admin:clinics_clinic_change", args=[clinic_b.pk]),
                                _clinic_data(clinic_b, code=clinic_a.code), HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert chinese.context["adminform"].form.errors["code"] == [
        f"本连锁的门诊“{clinic_a.name}”已使用编码“{clinic_a.code}”：编码不区分大小写和全角半角（导入按编码查找门诊）。请为此门诊另设编码。"]
    clinic_b.refresh_from_db()
    assert (clinic_b.code, clinic_b.name) == ("SH02", "浦东门诊")


def test_a_clinic_keeps_its_own_code_and_another_chains_code_is_free(admin_client, clinic_a):
    other = ClinicFactory(code="SH09")
    ClinicFactory(chain=other.chain, code="SH01")
    response = admin_client.post(reverse("admin:clinics_clinic_change", args=[clinic_a.pk]),
                                 _clinic_data(clinic_a, name="静安旗舰门诊"))
    assert response.status_code == 302
    clinic_a.refresh_from_db()
    assert (clinic_a.code, clinic_a.name) == ("SH01", "静安旗舰门诊")


@pytest.mark.parametrize(("field", "value"), [
    ("latitude", "90.000001"), ("latitude", "-91"), ("latitude", "200"),
    ("longitude", "180.5"), ("longitude", "-181"), ("longitude", "500"),
])
def test_a_coordinate_off_the_globe_is_refused_on_its_field_and_changes_nothing(admin_client, clinic_a, field,
                                                                                value):
    response = admin_client.post(reverse("admin:clinics_clinic_change", args=[clinic_a.pk]),
                                 _clinic_data(clinic_a, **{field: value}))
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == [field]
    clinic_a.refresh_from_db()
    assert (clinic_a.latitude, clinic_a.longitude) == (None, None)


def test_coordinates_at_the_limits_are_kept(admin_client, clinic_a):
    response = admin_client.post(reverse("admin:clinics_clinic_change", args=[clinic_a.pk]),
                                 _clinic_data(clinic_a, latitude="-90", longitude="180"))
    assert response.status_code == 302
    clinic_a.refresh_from_db()
    assert (clinic_a.latitude, clinic_a.longitude) == (-90, 180)


# --- a clinic or staff member named in the API -----------------------------------------------------------------

def test_a_clinic_code_that_is_another_clinics_id_names_the_clinic_with_that_code(chain, clinic_a):
    # a chain numbering its clinics: clinic_b's code is clinic_a's id. "12" was whichever had the lower id.
    clinic_b = ClinicFactory(chain=chain, code=str(clinic_a.pk), name="二号门诊")
    hq = scope_for_staff(_staff(chain, "hq", Role.CHAIN_ADMIN))
    assert clinic_for_write(scope=hq, value=str(clinic_a.pk)) == clinic_b
    assert clinic_for_write(scope=hq, value=f" {clinic_a.pk} ") == clinic_b
    assert clinic_for_filter(scope=hq, value=str(clinic_a.pk)) == clinic_b
    # a JSON number is an id
    assert clinic_for_write(scope=hq, value=clinic_a.pk) == clinic_a
    # without a clinic of that code, the text is still an id
    assert clinic_for_write(scope=hq, value=str(clinic_b.pk)) == clinic_b
    assert clinic_for_write(scope=hq, value=clinic_a.code) == clinic_a
    # and the customers API's clinic filter lists the code's clinic's patients
    CustomerFactory(chain=chain, home_clinic=clinic_a, name="甲患者")
    CustomerFactory(chain=chain, home_clinic=clinic_b, name="乙患者")
    key = services.token_create(username="hq")
    assert _names(_api(key, f"/api/customers?clinic={clinic_b.code}")) == {"乙患者"}


def test_a_clinic_staff_member_naming_another_clinics_code_is_refused_not_given_their_own(chain, clinic_a):
    # resolved among their own clinics alone, the code of clinic_b (= clinic_a's id) named clinic_a
    clinic_b = ClinicFactory(chain=chain, code=str(clinic_a.pk))
    desk = scope_for_staff(_staff(chain, "fd", Role.FRONT_DESK, [clinic_a]))
    with pytest.raises(PermissionDenied) as refused:
        clinic_for_write(scope=desk, value=clinic_b.code)
    assert refused.value.field == "clinic"
    assert clinic_for_write(scope=desk, value=clinic_a.pk) == clinic_a
    with pytest.raises(ValidationFailed):
        clinic_for_write(scope=desk, value="NOPE")


def test_a_username_that_is_another_staff_members_id_names_that_username(chain, clinic_a):
    doctor = _staff(chain, "doc", Role.DOCTOR, [clinic_a])
    numbered = _staff(chain, str(doctor.pk), Role.DOCTOR, [clinic_a])
    scope = scope_for_staff(doctor)
    assert staff_for_input(scope=scope, value=str(doctor.pk), field="doctor") == numbered
    assert staff_for_input(scope=scope, value=doctor.pk, field="doctor") == doctor


# --- tokens and usernames ------------------------------------------------------------------------------------

def test_no_token_is_made_for_a_login_switched_off_in_the_user_admin(chain, clinic_a):
    doctor = _staff(chain, "doc", Role.DOCTOR, [clinic_a])
    get_user_model().objects.filter(pk=doctor.user_id).update(is_active=False)
    with pytest.raises(CommandError, match="No active staff member with username 'doc'"):
        call_command("token", "create", "--user", "doc", stdout=StringIO())
    assert not ApiToken.objects.exists() and not AuditEvent.objects.exists()


def test_a_second_token_is_a_second_key_and_revoking_one_leaves_the_other(chain, clinic_a, chain_admin):
    _staff(chain, "doc", Role.DOCTOR, [clinic_a])
    first, second = services.token_create(username="doc"), services.token_create(username="doc")
    assert first != second and ApiToken.objects.count() == 2
    services.api_tokens_revoke(tokens=ApiToken.objects.filter(prefix=first[:10]), actor=chain_admin.user)
    assert _api(first).status_code == 401
    assert _api(second).status_code == 200


@pytest.mark.parametrize("header", ["Token {key}", "{key}", "Bearer {key} extra", "Basic {key}", "Bearer"])
def test_a_token_in_another_header_format_is_a_401_in_the_api_error_shape(chain, clinic_a, header):
    _staff(chain, "doc", Role.DOCTOR, [clinic_a])
    key = services.token_create(username="doc")
    response = Client().get("/api/customers", HTTP_AUTHORIZATION=header.format(key=key))
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


def test_a_username_differing_only_in_case_is_refused_by_the_service_too(chain, clinic_a):
    # the admin's add form refused it, staff_create did not; the lockout counts the two as one username
    _staff(chain, "alice", Role.DOCTOR, [clinic_a])
    with pytest.raises(ValidationFailed) as refused:
        _staff(chain, "Alice", Role.DOCTOR, [clinic_a])
    assert refused.value.errors[0].field == "username"
    assert list(get_user_model().objects.values_list("username", flat=True)) == ["alice"]


def test_failures_under_case_variants_of_a_username_lock_it(chain, clinic_a):
    _staff(chain, "alice", Role.DOCTOR, [clinic_a])
    for n, name in enumerate(["Alice", "ALICE", " alice", "alicE", "aLice"]):
        Client().post("/login/", {"username": name, "password": "wrong"}, REMOTE_ADDR=f"198.51.100.{n}")
    response = Client().post("/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="198.51.100.99")
    assert response.status_code == 429


# --- who sees what when the role or clinics change -----------------------------------------------------------

def test_a_token_and_a_session_follow_a_move_to_another_clinic_and_a_role_change_at_once(admin_client, chain,
                                                                                        clinic_a, clinic_b):
    desk = _staff(chain, "fd", Role.FRONT_DESK, [clinic_a])
    key = services.token_create(username="fd")
    browser = Client()
    browser.force_login(desk.user)
    a, b = CustomerFactory(chain=chain, home_clinic=clinic_a, name="甲患者"), \
        CustomerFactory(chain=chain, home_clinic=clinic_b, name="乙患者")
    assert _names(_api(key)) == {"甲患者"}
    url = reverse("admin:clinics_staff_change", args=[desk.pk])
    # moved from clinic A to clinic B
    assert admin_client.post(url, {"name": "fd", "role": Role.FRONT_DESK, "clinics": [clinic_b.pk]}).status_code == 302
    assert _names(_api(key)) == {"乙患者"}
    assert _api(key, f"/api/customers/{a.pk}").status_code == 404
    assert browser.get(f"/customers/{a.pk}/").status_code == 404
    assert browser.get(f"/customers/{b.pk}/").status_code == 200
    # made a doctor: no customer edits through the token
    assert admin_client.post(url, {"name": "fd", "role": Role.DOCTOR, "clinics": [clinic_b.pk]}).status_code == 302
    response = Client().post("/api/customers/upsert", {"name": "新患者", "mobile": "13900000000"},
                             content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}",
                             HTTP_IDEMPOTENCY_KEY="qa-1")
    assert response.status_code == 403
    # made marketing (a chain role): the whole chain
    assert admin_client.post(url, {"name": "fd", "role": Role.MARKETING, "clinics": [clinic_b.pk]}).status_code == 302
    assert _names(_api(key)) == {"甲患者", "乙患者"}


def test_a_clinic_role_left_without_clinics_sees_nobody_not_everybody(chain, clinic_a, clinic_b):
    desk = _staff(chain, "fd", Role.FRONT_DESK, [clinic_a])
    key = services.token_create(username="fd")
    CustomerFactory(chain=chain, home_clinic=clinic_a, name="甲患者")
    CustomerFactory(chain=chain, home_clinic=clinic_b, name="乙患者")
    assert _names(_api(key)) == {"甲患者"}
    desk.clinics.clear()
    assert _names(_api(key)) == set()
    browser = Client()
    browser.force_login(desk.user)
    page = browser.get("/customers/")
    assert page.status_code == 200 and "甲患者" not in page.content.decode() and "乙患者" not in page.content.decode()


# --- the audit log ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("query", [{"date_to": "9999-12-31"}, {"date_from": "0001-01-01"},
                                   {"date_from": "9999-12-31"}, {"date_to": "0001-01-02"}])
def test_a_date_off_the_calendars_end_is_an_error_on_its_field_not_a_500(client, director_a, query):
    # the day after 9999-12-31, or midnight of 0001-01-01 in Shanghai in UTC, overflowed
    client.force_login(director_a.user)
    audit_record(actor=director_a.user, action="phone.reveal", object_type="customer", object_id=1, reason="回访")
    page = client.get("/audit/", query)
    assert page.status_code == 200
    assert list(page.context["form"].errors) == list(query) and page.context["rows"] == []
    export = client.post("/audit/export/", {**query, "reason": "检查"})
    assert export.status_code == 422
    assert AuditEvent.objects.filter(action="audit.export").count() == 0


def test_a_director_does_not_read_a_chain_roles_events_through_a_clinic_left_on_their_profile(
        chain, clinic_a, clinic_b, director_a):
    # a front desk promoted to member operations keeps their clinics (ignored by their scope): they are not the
    # director's staff, and their reveals of other clinics' patients and chain-wide exports are not the director's
    ops = _staff(chain, "ops", Role.MEMBER_OPS, [clinic_a])
    audit_record(actor=ops.user, action="phone.reveal", object_type="customer", object_id=7, reason="回访",
                 clinic_id=clinic_b.pk)
    audit_record(actor=ops.user, action="customer.export", object_type="customer", object_id="", reason="全连锁")
    own = audit_record(actor=ops.user, action="phone.reveal", object_type="customer", object_id=8, reason="回访",
                       clinic_id=clinic_a.pk)
    assert list(audit_event_list(scope_for_staff(director_a))) == [own]
    # nor is the director offered them as one of their staff
    browser = Client()
    browser.force_login(director_a.user)
    page = browser.get("/audit/", {"actor": ops.pk})
    assert "actor" in page.context["form"].errors and page.context["rows"] == []


def test_audit_rows_are_neither_changed_nor_deleted_in_the_admin(admin_client, director_a):
    event = audit_record(actor=director_a.user, action="phone.reveal", object_type="customer", object_id=1,
                         reason="回访")
    assert admin_client.post(reverse("admin:core_auditevent_delete", args=[event.pk]),
                             {"post": "yes"}).status_code == 403
    assert admin_client.post(reverse("admin:core_auditevent_change", args=[event.pk]),
                             {"reason": "改过"}).status_code == 403
    admin_client.post(reverse("admin:core_auditevent_changelist"),
                      {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"})
    event.refresh_from_db()
    assert event.reason == "回访"


# --- login -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example",
                                    "http:///evil.example", "javascript:alert(1)"])
def test_a_login_never_goes_on_to_another_site(chain, clinic_a, target):
    _staff(chain, "doc", Role.DOCTOR, [clinic_a])
    response = Client().post(f"/login/?next={target}", {"username": "doc", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/customers/"


def test_a_logout_by_get_is_refused_and_keeps_the_session(chain, clinic_a):
    doctor = _staff(chain, "doc", Role.DOCTOR, [clinic_a])
    browser = Client()
    browser.force_login(doctor.user)
    assert browser.get("/logout/").status_code == 405
    assert "_auth_user_id" in browser.session
    assert Clinic.objects.count() == 1


def test_login_unlock_lifts_a_lockout_at_the_colleagues_own_desk_pc_too(chain, clinic_a):
    # wrong passwords at a browser she logs in from lock that browser for her (clinics.lockout's trusted browsers);
    # `login_unlock` cleared the username's and the address's counters only, so her own PC stayed locked
    _staff(chain, "zhang", Role.FRONT_DESK, [clinic_a])
    desk = Client()
    assert desk.post("/login/", {"username": "zhang", "password": PASSWORD}).status_code == 302
    desk.post("/logout/")
    for _ in range(5):
        response = desk.post("/login/", {"username": "zhang", "password": "wrong"})
    assert response.status_code == 429
    call_command("login_unlock", "zhang", stdout=StringIO(), stderr=StringIO())
    response = desk.post("/login/", {"username": "zhang", "password": PASSWORD})
    assert response.status_code == 302 and "_auth_user_id" in desk.session
    # and the browser counts afresh: four wrong passwords after the unlock lock nothing
    desk.post("/logout/")
    for _ in range(4):
        desk.post("/login/", {"username": "zhang", "password": "wrong"})
    assert desk.post("/login/", {"username": "zhang", "password": PASSWORD}).status_code == 302


# --- every role: the pages and the API do what the permission table says -----------------------------------------

@pytest.mark.parametrize("role", Role.values)
def test_each_role_is_refused_exactly_what_its_permissions_lack(chain, clinic_a, role):
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王患者")
    staff = _staff(chain, "who", role, [clinic_a])
    may = ROLE_PERMISSIONS[role]
    browser = Client()
    browser.force_login(staff.user)
    key = services.token_create(username="who")
    checks = {
        Perm.CUSTOMER_EXPORT: browser.post("/customers/export/", {"reason": "核对"}),
        Perm.PHONE_VIEW: browser.post(f"/customers/{patient.pk}/phone/reveal/", {"reason": "回访"}),
        Perm.CUSTOMER_MERGE: browser.post("/customers/merge/", {}),
        Perm.CUSTOMER_PRIVACY: browser.get("/audit/"),
        Perm.IMPORT: browser.get(reverse("imports:upload")),
        Perm.CUSTOMER_EDIT: Client().post(
            "/api/customers/upsert", {"name": "新患者", "mobile": "13900000009"}, content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_IDEMPOTENCY_KEY="qa-role"),
    }
    refused = {permission for permission, response in checks.items() if response.status_code == 403}
    assert refused == {permission for permission in checks if permission not in may}
    assert all(response.status_code < 500 for response in checks.values())
    # a reveal or export done wrote who, what and why; a refused one wrote nothing
    for permission, action, reason in ((Perm.PHONE_VIEW, "phone.reveal", "回访"),
                                       (Perm.CUSTOMER_EXPORT, "customer.export", "核对")):
        written = list(AuditEvent.objects.filter(action=action).values_list("actor_id", "reason"))
        assert written == ([(staff.user_id, reason)] if permission in may else [])


def test_the_last_chain_administrator_cannot_be_given_another_role(admin_client, chain, clinic_a):
    boss = _staff(chain, "boss", Role.CHAIN_ADMIN)
    url = reverse("admin:clinics_staff_change", args=[boss.pk])
    # the only chain administrator made marketing: nobody would be left to set the chain up
    refused = admin_client.post(url, {"name": "boss", "role": Role.MARKETING, "clinics": []})
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors["role"] == [
        "This is the chain's last chain administrator: make another member of staff chain administrator first."]
    boss.refresh_from_db()
    assert boss.role == Role.CHAIN_ADMIN
    # with a second one (a switched-off one does not count), the first may change role
    gone = _staff(chain, "gone", Role.CHAIN_ADMIN)
    gone.user.is_active = False
    gone.user.save(update_fields=["is_active"])
    assert admin_client.post(url, {"name": "boss", "role": Role.MARKETING, "clinics": []}).status_code == 200
    _staff(chain, "boss2", Role.CHAIN_ADMIN)
    assert admin_client.post(url, {"name": "boss", "role": Role.MARKETING, "clinics": []}).status_code == 302
    boss.refresh_from_db()
    assert boss.role == Role.MARKETING
