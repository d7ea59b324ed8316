"""A chain admin sets their own chain up in the Django admin, without hand-given Django permissions: they see and edit
their chain's configuration only (another chain's rows are a 404, its names appear in no choice or filter), a new
row is theirs whatever is posted, patients' records stay on the staff pages, and a new member of staff (with a
working login) is one form. Other roles do not open the admin; a superuser keeps everything."""

import pytest
from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse

from smileloop.clinics import services as clinic_services
from smileloop.clinics.enums import Role
from smileloop.clinics.models import Staff
from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory, StaffFactory
from smileloop.core.admin_scope import ChainScoped
from smileloop.core.models import AuditEvent
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.giftcards.models import VoucherCampaign
from smileloop.giftcards.tests.factories import ProgrammeFactory
from smileloop.membership.tests.factories import PlanFactory, TierFactory
from smileloop.visits.models import ServiceItem
from smileloop.visits.tests.factories import ServiceItemFactory

pytestmark = pytest.mark.django_db
PASSWORD = "Smile-loop-2026!"


@pytest.fixture
def hq(chain):
    """Chain A's admin, made the way every chain admin is made."""
    return clinic_services.staff_create(chain=chain, username="hq_a", name="总部甲", role=Role.CHAIN_ADMIN,
                                        password=PASSWORD)


@pytest.fixture
def hq_client(client, hq):
    client.force_login(hq.user)
    return client


@pytest.fixture
def a(chain, clinic_a):
    return {"clinic": clinic_a, "item": ServiceItemFactory(chain=chain, code="A-CL1", name="甲洁牙"),
            "plan": PlanFactory(chain=chain, name="甲会员计划"),
            "programme": ProgrammeFactory(chain=chain, code="a-card", name="甲亲友卡")}


@pytest.fixture
def b():
    other = ChainFactory(name="乙连锁")
    plan = PlanFactory(chain=other, name="乙会员计划")
    return {"chain": other, "clinic": ClinicFactory(chain=other, code="B01", name="乙门诊"),
            "item": ServiceItemFactory(chain=other, code="B-CL1", name="乙洁牙"), "plan": plan,
            "tier": TierFactory(plan=plan, name="乙金卡"),
            "programme": ProgrammeFactory(chain=other, code="b-card", name="乙亲友卡")}


def _change(name, obj):
    return reverse(f"admin:{name}_change", args=[obj.pk])


def _form_data(response) -> dict:
    """What the change page would post back unchanged: its form's and inline formsets' current values."""
    data, page_forms = {}, [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({management.add_prefix(name): management[name].value() for name in management.fields})
        page_forms.extend(inline.formset.forms)
    for form in page_forms:
        for field in form:
            value = field.value()
            if isinstance(field.field, forms.BooleanField):
                if value:
                    data[field.html_name] = "on"
            elif value is not None:
                data[field.html_name] = value
    return data


def test_a_chain_admin_lists_only_their_chains_configuration(hq_client, hq, a, b):
    assert not hq.user.has_perm("clinics.view_clinic")  # the role is enough: no Django permission was given
    for name, key in (("clinics_clinic", "clinic"), ("visits_serviceitem", "item"),
                      ("membership_membershipplan", "plan"), ("giftcards_giftcardprogramme", "programme")):
        response = hq_client.get(reverse(f"admin:{name}_changelist"))
        assert response.status_code == 200, name
        assert list(response.context["cl"].result_list) == [a[key]], name
        assert b[key].name not in response.content.decode()


def test_a_chain_admin_edits_their_chains_clinic_item_plan_and_programme(hq_client, a):
    for name, key, field, value in (("clinics_clinic", "clinic", "name", "静安新门诊"),
                                    ("visits_serviceitem", "item", "list_price_fen", 32000),
                                    ("membership_membershipplan", "plan", "name", "甲会员计划二"),
                                    ("giftcards_giftcardprogramme", "programme", "face_value_fen", 80000)):
        url = _change(name, a[key])
        page = hq_client.get(url)
        assert page.status_code == 200, name
        response = hq_client.post(url, {**_form_data(page), field: value})
        assert response.status_code == 302, (name, response.context and response.context["adminform"].form.errors)
        a[key].refresh_from_db()
        assert getattr(a[key], field) == value


def test_another_chains_objects_are_not_found(hq_client, b):
    for name, key in (("clinics_clinic", "clinic"), ("visits_serviceitem", "item"),
                      ("membership_membershipplan", "plan"), ("membership_tier", "tier"),
                      ("giftcards_giftcardprogramme", "programme"), ("clinics_chain", "chain")):
        obj = b[key]
        assert hq_client.get(_change(name, obj)).status_code == 404, name
        assert hq_client.post(_change(name, obj), {"name": "改掉"}).status_code == 404, name
        assert hq_client.get(reverse(f"admin:{name}_history", args=[obj.pk])).status_code == 404, name
        obj.refresh_from_db()
        assert obj.name != "改掉"


def test_a_new_row_belongs_to_the_admins_chain_whatever_is_posted(hq_client, chain, b):
    # given: the add form does not offer a chain
    page = hq_client.get(reverse("admin:visits_serviceitem_add"))
    assert page.context["adminform"].form.fields["chain"].widget.is_hidden
    assert "乙连锁" not in page.content.decode()
    # when: another chain's id is posted anyway
    response = hq_client.post(reverse("admin:visits_serviceitem_add"), {
        "chain": b["chain"].pk, "code": "NEW1", "name": "新项目", "category": "exam", "list_price_fen": 100,
        "is_active": "on"})
    # then
    assert response.status_code == 302
    assert ServiceItem.objects.get(code="NEW1").chain_id == chain.pk


def test_choices_offer_only_the_admins_chain(hq_client, chain, a, b):
    tier_form = hq_client.get(reverse("admin:membership_tier_add")).context["adminform"].form
    assert list(tier_form.fields["plan"].queryset) == [a["plan"]]
    staff_form = hq_client.get(reverse("admin:clinics_staff_add")).context["adminform"].form
    assert list(staff_form.fields["clinics"].queryset) == [a["clinic"]]
    # a catalogue item of another chain, typed into the raw-id box, is refused and nothing is saved
    response = hq_client.post(reverse("admin:giftcards_vouchercampaign_add"), {
        "code": "b-item", "name": "乙项目券", "item": b["item"].pk, "value_kind": "whole_line", "price_paid_fen": 0,
        "face_value_fen": 0, "valid_days": 30, "is_active": "on"})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["item"]
    assert not VoucherCampaign.objects.filter(code="b-item").exists()


def test_list_filters_name_no_other_chain(hq_client, chain, a, b, clinic_a):
    StaffFactory(chain=b["chain"], role=Role.DOCTOR, clinics=[b["clinic"]], name="乙医生")
    TierFactory(plan=a["plan"], name="甲金卡")
    for name in ("clinics_staff", "membership_tier", "clinics_clinic"):
        html = hq_client.get(reverse(f"admin:{name}_changelist")).content.decode()
        assert "乙" not in html, name
    assert "甲会员计划" in hq_client.get(reverse("admin:membership_tier_changelist")).content.decode()


def test_patients_records_stay_on_the_staff_pages(hq_client, chain, hq):
    customer = CustomerFactory(chain=chain, name="张三", mobile="+8613912345678")
    assert hq_client.get(reverse("admin:customers_customer_changelist")).status_code == 403
    assert hq_client.get(_change("customers_customer", customer)).status_code == 404
    for name in ("visits_order", "membership_membership", "loyalty_topup", "followups_followuptask",
                 "surveys_survey", "tagging_customertag", "auth_user", "core_idempotencyrecord"):
        assert hq_client.get(reverse(f"admin:{name}_changelist")).status_code == 403, name
    index = hq_client.get(reverse("admin:index")).content.decode()
    assert "张三" not in index and reverse("admin:customers_customer_changelist") not in index
    assert reverse("admin:clinics_clinic_changelist") in index


def test_the_audit_log_shows_the_admins_chain_read_only(hq_client, hq, b):
    outsider = StaffFactory(chain=b["chain"], role=Role.CLINIC_DIRECTOR, clinics=[b["clinic"]])
    own = AuditEvent.objects.create(actor=hq.user, action="customer.phone_reveal", object_type="customer",
                                    object_id="1", reason="回访")
    AuditEvent.objects.create(actor=outsider.user, action="customer.phone_reveal", object_type="customer",
                              object_id="2", reason="乙回访")
    response = hq_client.get(reverse("admin:core_auditevent_changelist"))
    assert list(response.context["cl"].result_list) == [own]
    assert hq_client.post(_change("core_auditevent", own), {"reason": "改"}).status_code == 403


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.CLINIC_DIRECTOR, Role.MEMBER_OPS, Role.MARKETING])
def test_other_roles_do_not_open_the_admin(client, chain, clinic_a, role):
    staff = clinic_services.staff_create(chain=chain, username="someone", name="某人", role=role,
                                         clinics=[clinic_a], password=PASSWORD)
    assert not staff.user.is_staff
    client.force_login(staff.user)
    response = client.get(reverse("admin:clinics_clinic_changelist"), follow=True)
    assert response.status_code == 403  # our page, not a second login form (clinics.views.admin_login)
    # even a login left with is_staff by hand gets nothing: the role decides
    get_user_model().objects.filter(pk=staff.user_id).update(is_staff=True)
    assert client.get(reverse("admin:clinics_clinic_changelist")).status_code == 403
    assert reverse("admin:clinics_clinic_changelist") not in client.get(reverse("admin:index")).content.decode()


def test_a_switched_off_chain_admin_gets_nothing(client, hq, a):
    Staff.objects.filter(pk=hq.pk).update(is_active=False)
    client.force_login(hq.user)
    assert client.get(_change("clinics_clinic", a["clinic"])).status_code == 404


def test_a_superuser_keeps_every_chain(admin_client, a, b):
    response = admin_client.get(reverse("admin:clinics_clinic_changelist"))
    assert set(response.context["cl"].result_list) == {a["clinic"], b["clinic"]}
    assert "乙连锁" in response.content.decode()  # the chain filter
    assert admin_client.get(_change("membership_tier", b["tier"])).status_code == 200
    assert admin_client.get(reverse("admin:customers_customer_changelist")).status_code == 200


def _staff_post(chain, **changes):
    data = {"chain": chain.pk, "username": "newdoc", "name": "新医生", "role": Role.DOCTOR, "clinics": [],
            "password1": PASSWORD, "password2": PASSWORD}
    data.update(changes)
    return data


def test_adding_a_member_of_staff_makes_a_working_login_in_the_admins_chain(hq_client, client, chain, clinic_a, b):
    # when: the chain admin adds a doctor in one form, posting another chain and a superuser flag for good measure
    response = hq_client.post(reverse("admin:clinics_staff_add"), _staff_post(
        b["chain"], clinics=[clinic_a.pk], is_superuser="on", is_staff="on"))
    # then
    assert response.status_code == 302
    staff = Staff.objects.get(user__username="newdoc")
    assert (staff.chain_id, staff.role, staff.name, list(staff.clinics.all())) == (
        chain.pk, Role.DOCTOR, "新医生", [clinic_a])
    assert not staff.user.is_superuser and not staff.user.is_staff
    client.logout()
    login = client.post(reverse("login"), {"username": "newdoc", "password": PASSWORD})
    assert login.status_code == 302 and client.session.get("_auth_user_id") == str(staff.user_id)


@pytest.mark.parametrize(("changes", "field"), [
    ({"clinics": []}, "clinics"),  # a clinic role needs a clinic
    ({"password2": "Another-pass-99"}, "password2"),
    ({"password1": "123", "password2": "123"}, "password1"),
    ({"username": "hq_a"}, "username"),
    ({"username": "bad name!"}, "username"),
])
def test_a_member_of_staff_is_refused_with_the_field_named(hq_client, chain, clinic_a, changes, field):
    before = Staff.objects.count()
    response = hq_client.post(reverse("admin:clinics_staff_add"),
                              _staff_post(chain, **{"clinics": [clinic_a.pk], **changes}))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors[field]
    assert Staff.objects.count() == before


def test_a_chain_admin_cannot_take_over_an_existing_login(hq_client, chain, clinic_a):
    root = get_user_model().objects.create_superuser("root", password=PASSWORD)
    response = hq_client.post(reverse("admin:clinics_staff_add"), _staff_post(
        chain, clinics=[clinic_a.pk], user=root.pk, username="", password1="", password2=""))
    assert response.status_code == 200
    assert "user" not in response.context["adminform"].form.fields
    assert response.context["adminform"].form.errors["username"]
    assert not Staff.objects.filter(user=root).exists()


def test_the_operator_gives_an_existing_login_a_profile(admin_client, chain, clinic_a):
    login = get_user_model().objects.create_user("existing", password=PASSWORD)
    response = admin_client.post(reverse("admin:clinics_staff_add"), _staff_post(
        chain, clinics=[clinic_a.pk], user=login.pk, username="", password1="", password2="",
        role=Role.CHAIN_ADMIN))
    assert response.status_code == 302
    login.refresh_from_db()
    assert login.staff.role == Role.CHAIN_ADMIN and login.is_staff and login.check_password(PASSWORD)


def test_a_clinic_of_another_chain_cannot_be_assigned(hq_client, chain, b):
    response = hq_client.post(reverse("admin:clinics_staff_add"), _staff_post(chain, clinics=[b["clinic"].pk]))
    assert response.status_code == 200 and response.context["adminform"].form.errors["clinics"]
    assert not Staff.objects.filter(user__username="newdoc").exists()


def test_a_role_change_opens_or_closes_the_admin(hq_client, chain, clinic_a):
    doctor = clinic_services.staff_create(chain=chain, username="doc", name="医生", role=Role.DOCTOR,
                                          clinics=[clinic_a], password=PASSWORD)
    url = _change("clinics_staff", doctor)
    data = _form_data(hq_client.get(url))
    assert hq_client.post(url, {**data, "role": Role.CHAIN_ADMIN}).status_code == 302
    doctor.user.refresh_from_db()
    assert doctor.user.is_staff
    assert hq_client.post(url, {**data, "role": Role.DOCTOR, "is_active": ""}).status_code == 302
    doctor.user.refresh_from_db()
    assert not doctor.user.is_staff


def test_a_chain_admin_cannot_touch_the_operators_account(hq_client, chain):
    root = get_user_model().objects.create_superuser("root", password=PASSWORD)
    profile = StaffFactory(chain=chain, user=root, role=Role.CHAIN_ADMIN, name="运维")
    assert hq_client.post(_change("clinics_staff", profile), {"name": "x", "role": Role.FRONT_DESK}).status_code == 403
    password_url = reverse("admin:clinics_staff_password", args=[profile.pk])
    assert hq_client.post(password_url, {"password1": "Taken-over-1", "password2": "Taken-over-1",
                                         "usable_password": "true"}).status_code == 403
    root.refresh_from_db()
    assert root.check_password(PASSWORD)


def test_a_chain_admin_sets_a_password_for_their_staff_only(hq_client, chain, clinic_a, b):
    doctor = clinic_services.staff_create(chain=chain, username="doc", name="医生", role=Role.DOCTOR,
                                          clinics=[clinic_a])
    response = hq_client.post(reverse("admin:clinics_staff_password", args=[doctor.pk]), {
        "password1": "New-pass-2026", "password2": "New-pass-2026", "reason": "忘记密码"})
    assert response.status_code == 302
    doctor.user.refresh_from_db()
    assert doctor.user.check_password("New-pass-2026")
    outsider = StaffFactory(chain=b["chain"], role=Role.DOCTOR, clinics=[b["clinic"]])
    assert hq_client.get(reverse("admin:clinics_staff_password", args=[outsider.pk])).status_code == 404


def test_a_tier_is_added_under_the_admins_plan_only(hq_client, a, b):
    tier_post = {"rank": 1, "name": "甲银卡", "discount_bp": 0, "family_slots": 0, "friend_discount_bp": 0,
                 "min_spend_fen": 0, "min_topup_fen": 0, "points_multiplier": "1.00", "benefits-TOTAL_FORMS": 0,
                 "benefits-INITIAL_FORMS": 0}
    refused = hq_client.post(reverse("admin:membership_tier_add"), {**tier_post, "plan": b["plan"].pk})
    assert refused.status_code == 200 and refused.context["adminform"].form.errors["plan"]
    assert not b["plan"].tiers.filter(name="甲银卡").exists()
    saved = hq_client.post(reverse("admin:membership_tier_add"), {**tier_post, "plan": a["plan"].pk})
    assert saved.status_code == 302, saved.context and saved.context["adminform"].form.errors
    assert a["plan"].tiers.filter(name="甲银卡").exists()


def test_every_model_admin_and_inline_is_chain_scoped():
    for model, model_admin in admin.site._registry.items():
        assert isinstance(model_admin, ChainScoped), model
        inlines = [inline(model, admin.site) for inline in model_admin.inlines]
        for scoped in (model_admin, *inlines):
            assert isinstance(scoped, ChainScoped), scoped
            if scoped.chain_admin_actions:
                path = scoped.resolved_chain_path()
                assert path is not None, scoped
                str(scoped.model._default_manager.filter(**{path: 1}).query)  # a real relation to the chain


def test_every_page_a_chain_admin_may_open_renders(hq_client, a, b):
    opened = []
    for model, model_admin in admin.site._registry.items():
        name = f"{model._meta.app_label}_{model._meta.model_name}"
        expected = 200 if model_admin.chain_admin_actions else 403
        response = hq_client.get(reverse(f"admin:{name}_changelist"))
        assert response.status_code == expected, name
        if "add" in model_admin.chain_admin_actions and response.status_code == 200:
            add = hq_client.get(reverse(f"admin:{name}_add"))
            assert add.status_code in (200, 403), name  # 403: the admin itself refuses adding (made elsewhere)
            assert "乙" not in add.content.decode(), name
        if expected == 200:
            opened.append(name)
    assert {"clinics_clinic", "clinics_staff", "visits_serviceitem", "membership_tier",
            "giftcards_vouchercampaign", "loyalty_package"} <= set(opened)
