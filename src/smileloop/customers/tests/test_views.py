"""Staff pages for the patient pool: search, the 360 page, forms, phone reveal, merge, and the clinic boundary."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.core.models import AuditEvent
from smileloop.customers.enums import ConsentPurpose, Stage
from smileloop.customers.models import Consent, Customer, CustomerMerge, HouseholdMember, Interaction
from smileloop.customers.services import customer_merge
from smileloop.customers.tests.factories import CustomerFactory, IdentityFactory
from smileloop.visits import services as visit_services

pytestmark = pytest.mark.django_db


def login(client, staff):
    client.force_login(staff.user)
    return client


# --- list ----------------------------------------------------------------------------------------------


def test_list_finds_a_patient_by_pinyin_initials(client, chain_admin, zhang_san, li_si):
    # given
    login(client, chain_admin)
    # when
    response = client.get(reverse("customers:list"), {"q": "zs"})
    # then
    assert response.status_code == 200
    assert list(response.context["customers"]) == [zhang_san]
    assert "138****8000" in response.text
    assert "13800138000" not in response.text


def test_list_finds_by_full_pinyin_and_phone_tail(client, chain_admin, zhang_san, li_si):
    login(client, chain_admin)
    assert list(client.get(reverse("customers:list"), {"q": "lisi"}).context["customers"]) == [li_si]
    assert list(client.get(reverse("customers:list"), {"q": "9000"}).context["customers"]) == [li_si]


def test_list_filters_by_clinic_stage_and_source(client, chain_admin, clinic_b, zhang_san, li_si):
    login(client, chain_admin)
    url = reverse("customers:list")
    assert list(client.get(url, {"clinic": clinic_b.id}).context["customers"]) == [li_si]
    assert list(client.get(url, {"stage": Stage.TREATED}).context["customers"]) == [zhang_san]
    assert list(client.get(url, {"source": "referral"}).context["customers"]) == [li_si]


def test_clinic_staff_sees_only_their_clinics_in_list_and_filter(client, front_desk_a, clinic_b, zhang_san, li_si):
    # given
    login(client, front_desk_a)
    # when
    response = client.get(reverse("customers:list"), {"clinic": clinic_b.id})
    # then: the foreign clinic is not a choice, so the filter is ignored and the scope still applies
    assert list(response.context["customers"]) == [zhang_san]
    assert "浦东门诊" not in response.text


def test_htmx_search_returns_only_the_results_fragment(client, chain_admin, zhang_san):
    login(client, chain_admin)
    response = client.get(reverse("customers:list"), {"q": "zs"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="customer-results"')
    assert "<html" not in response.text
    assert "张三" in response.text


def test_list_pages_without_counting(client, chain_admin, chain, clinic_a):
    # given: 30 customers, page size 25
    CustomerFactory.create_batch(30, chain=chain, home_clinic=clinic_a)
    login(client, chain_admin)
    # when
    first = client.get(reverse("customers:list"))
    second = client.get(reverse("customers:list"), {"page": 2})
    # then
    assert len(first.context["customers"]) == 25 and first.context["next_page"] == 2
    assert len(second.context["customers"]) == 5 and second.context["next_page"] is None
    assert second.context["previous_page"] == 1


def test_list_page_runs_a_fixed_number_of_queries(client, front_desk_a, chain, clinic_a,
                                                  django_assert_num_queries):
    # given: many customers with consultants and clinics (select_related, not one query per row)
    consultant = StaffFactory(chain=chain, role=Role.CONSULTANT, clinics=[clinic_a])
    CustomerFactory.create_batch(20, chain=chain, home_clinic=clinic_a, consultant=consultant)
    login(client, front_desk_a)
    # when / then: session, user with staff, staff clinics, clinic filter choices, tag filter choices, customers (on
    # SQLite their ids, then their rows: customer_page)
    with django_assert_num_queries(7 if connection.vendor == "sqlite" else 6):
        response = client.get(reverse("customers:list"))
    assert len(response.context["customers"]) == 20


def test_anonymous_user_is_sent_to_login(client):
    response = client.get(reverse("customers:list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_login_without_staff_profile_is_forbidden(client, django_user_model):
    user = django_user_model.objects.create_user(username="nobody", password="x-pass-1234")
    client.force_login(user)
    assert client.get(reverse("customers:list")).status_code == 403


# --- the 360 page ----------------------------------------------------------------------------------------


@pytest.fixture
def rich_customer(chain, clinic_a, catalogue, zhang_san, director_a):
    now = timezone.now()
    visit_services.appointment_upsert(customer=zhang_san, clinic=clinic_a, start_at=now - dt.timedelta(days=3),
                                      end_at=now - dt.timedelta(days=3, hours=-1), status="completed",
                                      service_code="CL01")
    visit_services.order_record(customer=zhang_san, clinic=clinic_a, ordered_at=now - dt.timedelta(days=3),
                                lines=[{"item_code": "CL01", "quantity": 1}],
                                payments=[{"method": "wechat_pay", "amount_fen": 30000}])
    visit_services.plan_record(customer=zhang_san, clinic=clinic_a, title="种植修复方案",
                               steps=[{"seq": 1, "item_code": "EX01", "status": "done"},
                                      {"seq": 2, "item_code": "IM01", "tooth": "36", "status": "planned"}])
    visit_services.procedure_record(customer=zhang_san, clinic=clinic_a, item_code="EX01",
                                    performed_on=now.date(), tooth="36")
    IdentityFactory(customer=zhang_san, kind="wechat_openid", external_id="oOPENID-zs")
    return zhang_san


def test_360_page_shows_profile_orders_plans_and_masked_phone(client, director_a, rich_customer):
    # given
    login(client, director_a)
    # when
    response = client.get(reverse("customers:detail", args=[rich_customer.id]))
    # then
    assert response.status_code == 200
    text = response.text
    for expected in ("张三", "138****8000", "洁牙", "¥300.00", "种植修复方案", "50%", "o****zs",
                     "Personal data processing", "Marketing by WeChat", "Douyin", "Reveal"):
        assert expected in text, expected
    assert "13800138000" not in text


def test_360_page_hides_health_data_from_roles_without_health_permission(client, front_desk_a, rich_customer):
    login(client, front_desk_a)
    response = client.get(reverse("customers:detail", args=[rich_customer.id]))
    assert response.status_code == 200
    assert "种植修复方案" not in response.text
    assert "洁牙" in response.text  # orders stay visible


def test_clinic_a_staff_gets_404_for_a_clinic_b_patient(client, front_desk_a, li_si):
    # given
    login(client, front_desk_a)
    # when / then
    assert client.get(reverse("customers:detail", args=[li_si.id])).status_code == 404
    assert client.get(reverse("customers:edit", args=[li_si.id])).status_code == 404
    response = client.post(reverse("customers:phone_reveal", args=[li_si.id]), {"reason": "call"})
    assert response.status_code == 404
    assert client.post(reverse("customers:note_add", args=[li_si.id]), {"text": "x"}).status_code == 404
    assert not AuditEvent.objects.exists()
    assert not Interaction.objects.filter(customer=li_si, kind="note").exists()


def test_ids_that_name_no_patient_are_404_however_odd(client, chain, chain_admin, li_si):
    login(client, chain_admin)
    for customer_id in (0, 10**30, 2**63, li_si.id + 1000):
        assert client.get(reverse("customers:detail", args=[customer_id])).status_code == 404
    other_chain = CustomerFactory(home_clinic=None)  # a chain of its own
    assert client.get(reverse("customers:detail", args=[other_chain.id])).status_code == 404
    twin = CustomerFactory(chain=chain, name=li_si.name, home_clinic=li_si.home_clinic)
    customer_merge(scope=scope_for_staff(chain_admin), survivor=li_si, merged=twin, actor=chain_admin, reason="重复")
    # a merged-away record leads to the one it became (customers/tests/test_workspace_fixes.py)
    merged = client.get(reverse("customers:detail", args=[twin.id]))
    assert (merged.status_code, merged["Location"]) == (302, reverse("customers:detail", args=[li_si.id]))
    assert client.get(reverse("customers:detail", args=[li_si.id])).status_code == 200


def test_reveal_shows_the_full_number_and_writes_an_audit_event(client, front_desk_a, zhang_san):
    # given
    login(client, front_desk_a)
    # when
    response = client.post(reverse("customers:phone_reveal", args=[zhang_san.id]), {"reason": "confirm booking"},
                           headers={"HX-Request": "true"})
    # then
    assert response.status_code == 200
    assert "13800138000" in response.text
    assert "<html" not in response.text
    event = AuditEvent.objects.get()
    assert (event.action, event.object_id, event.reason, event.actor_id) == (
        "phone.reveal", str(zhang_san.id), "confirm booking", front_desk_a.user_id)


def test_behind_the_proxy_a_reveal_audits_the_staff_members_address_not_the_proxys(client, front_desk_a, zhang_san,
                                                                                      settings):
    # production runs behind one proxy (TRUSTED_PROXY_COUNT): REMOTE_ADDR is the proxy on every request
    settings.TRUSTED_PROXY_COUNT = 1
    login(client, front_desk_a)
    client.post(reverse("customers:phone_reveal", args=[zhang_san.id]), {"reason": "confirm booking"},
                REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9, 10.1.2.3")
    assert AuditEvent.objects.get().ip_address == "10.1.2.3"


def test_reveal_shows_the_other_numbers_on_file_too_and_the_audit_row_counts_them(client, front_desk_a, zhang_san):
    # given a landline kept from an import and the mobile itself as phone identities (masked on the page)
    from smileloop.customers.services import identity_add

    identity_add(customer=zhang_san, kind="phone", external_id="+862161234567")
    identity_add(customer=zhang_san, kind="phone", external_id=zhang_san.mobile)
    login(client, front_desk_a)
    page = client.get(reverse("customers:detail", args=[zhang_san.id])).text
    assert "61234567" not in page.replace(" ", "") and "4567" in page
    # when
    response = client.post(reverse("customers:phone_reveal", args=[zhang_san.id]), {"reason": "call back"},
                           headers={"HX-Request": "true"})
    # then the mobile, and the landline once (not the mobile twice), are shown and counted in the audit row
    others = response.text.split('data-testid="other-phones">', 1)[1].split("</span></span>", 1)[0]
    assert "13800138000" in response.text.replace(" ", "")
    assert "61234567" in others.replace(" ", "") and "13800138000" not in others.replace(" ", "")
    assert AuditEvent.objects.get().detail == {"numbers": 2}


def test_reveal_without_a_reason_is_refused_and_not_audited(client, front_desk_a, zhang_san):
    login(client, front_desk_a)
    response = client.post(reverse("customers:phone_reveal", args=[zhang_san.id]), {"reason": " "},
                           headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert "13800138000" not in response.text
    assert not AuditEvent.objects.exists()


def test_roles_without_phone_permission_get_no_button_and_403(client, chain, clinic_a, zhang_san):
    # given
    doctor = StaffFactory(chain=chain, role=Role.DOCTOR, clinics=[clinic_a])
    login(client, doctor)
    # when
    page = client.get(reverse("customers:detail", args=[zhang_san.id]))
    response = client.post(reverse("customers:phone_reveal", args=[zhang_san.id]), {"reason": "curious"})
    # then
    assert "phone/reveal" not in page.text
    assert response.status_code == 403
    assert not AuditEvent.objects.exists()


def test_consent_is_recorded_and_the_fragment_shows_it(client, front_desk_a, zhang_san):
    login(client, front_desk_a)
    response = client.post(reverse("customers:consent_add", args=[zhang_san.id]),
                           {"purpose": ConsentPurpose.MARKETING_SMS, "granted": "1", "source": "paper",
                            "evidence": "form 17"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    consent = Consent.objects.get(customer=zhang_san)
    assert (consent.purpose, consent.granted, consent.source, consent.evidence) == (
        "marketing_sms", True, "paper", "form 17")
    assert "form 17" in response.text and 'id="consents"' in response.text


def test_a_consent_given_through_a_channel_names_the_channel(client, front_desk_a, zhang_san):
    from smileloop.customers.services import consent_record

    consent_record(customer=zhang_san, purpose=ConsentPurpose.MARKETING_SMS, granted=True, source="douyin")
    login(client, front_desk_a)
    html = client.get(reverse("customers:detail", args=[zhang_san.id]), HTTP_ACCEPT_LANGUAGE="zh-hans").text
    meta = html[html.index('class="muted small consent-meta"'):]
    meta = meta[:meta.index("</span>")]
    assert "抖音" in meta and "douyin" not in meta


def test_invalid_consent_writes_nothing(client, front_desk_a, zhang_san):
    login(client, front_desk_a)
    response = client.post(reverse("customers:consent_add", args=[zhang_san.id]),
                           {"purpose": "telepathy", "granted": "1", "source": "paper"}, headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert not Consent.objects.exists()


def test_note_is_added_to_the_timeline(client, director_a, zhang_san):
    login(client, director_a)
    response = client.post(reverse("customers:note_add", args=[zhang_san.id]), {"text": "想下周洗牙"},
                           headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "想下周洗牙" in response.text
    note = Interaction.objects.get(customer=zhang_san, kind="note")
    assert (note.text, note.author_id) == ("想下周洗牙", director_a.id)


def test_family_member_is_linked_by_phone(client, front_desk_a, chain, clinic_a, zhang_san):
    # given
    child = CustomerFactory(chain=chain, name="张小明", mobile="+8613700137000", home_clinic=clinic_a)
    login(client, front_desk_a)
    # when
    response = client.post(reverse("customers:family_add", args=[zhang_san.id]),
                           {"member": "137 0013 7000", "relation": "child"}, headers={"HX-Request": "true"})
    # then
    assert response.status_code == 200
    assert HouseholdMember.objects.get(customer=child).relation == "child"
    assert "张小明" in response.text


def test_family_member_outside_the_scope_is_not_found(client, front_desk_a, zhang_san, li_si):
    login(client, front_desk_a)
    response = client.post(reverse("customers:family_add", args=[zhang_san.id]),
                           {"member": "13900139000", "relation": "spouse"}, headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert not HouseholdMember.objects.exists()


def test_the_family_section_names_no_relative_of_another_clinic(client, front_desk_a, chain, clinic_a, li_si):
    # given a household headed by 李四 of clinic B (linked by a chain role), with his son in clinic A
    from smileloop.customers.services import household_member_add

    son = CustomerFactory(chain=chain, name="李小明", home_clinic=clinic_a)
    household_member_add(head=li_si, member=son, relation="child")
    login(client, front_desk_a)
    # when clinic A's front desk opens the son's 360 page
    html = client.get(reverse("customers:detail", args=[son.id])).text
    # then the head of clinic B is neither named (the household's name included) nor linked
    assert "李四" not in html and "李*家" in html
    assert reverse("customers:detail", args=[li_si.id]) not in html


# --- the stage on the 360 page: read-only, plus "mark as lost" -------------------------------------------


def test_360_page_shows_the_stage_since_its_last_change_and_the_mark_lost_action(client, front_desk_a, zhang_san):
    # given
    Customer.objects.filter(pk=zhang_san.pk).update(
        stage_changed_at=dt.datetime(2026, 3, 1, 20, 0, tzinfo=dt.UTC))  # 2026-03-02 04:00 in Shanghai
    login(client, front_desk_a)
    # when
    response = client.get(reverse("customers:detail", args=[zhang_san.id]))
    # then
    stage = response.text.split('id="stage"', 1)[1].split("</details>", 1)[0]
    assert 'data-testid="stage">Treated</span>' in stage
    assert "since 2026-03-02" in stage
    assert reverse("customers:mark_lost", args=[zhang_san.id]) in stage


def test_360_page_does_not_date_a_patients_stage_from_the_day_they_were_created(client, front_desk_a, zhang_san):
    # given a treated patient whose stage change was never recorded (imported, or older data)
    Customer.objects.filter(pk=zhang_san.pk).update(stage="treated", stage_changed_at=None,
                                                    created_at=dt.datetime(2020, 5, 1, tzinfo=dt.UTC))
    lead = Customer.objects.create(chain=zhang_san.chain, name="李四", home_clinic=zhang_san.home_clinic)
    Customer.objects.filter(pk=lead.pk).update(created_at=dt.datetime(2026, 4, 1, 4, 0, tzinfo=dt.UTC))
    login(client, front_desk_a)
    # when
    patient_page = client.get(reverse("customers:detail", args=[zhang_san.id])).text
    lead_page = client.get(reverse("customers:detail", args=[lead.id])).text
    # then "since" is left out rather than wrong; a lead has been one since it was created
    assert 'data-testid="stage-since"' not in patient_page and "since 2020-05-01" not in patient_page
    assert "since 2026-04-01" in lead_page.split('id="stage"', 1)[1].split("</details>", 1)[0]


def test_marking_lost_from_the_360_page_writes_the_event_and_redirects(client, front_desk_a, zhang_san):
    login(client, front_desk_a)
    response = client.post(reverse("customers:mark_lost", args=[zhang_san.id]), {"reason": "搬家到北京"},
                           headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("customers:detail", args=[zhang_san.id]) + "#timeline"
    zhang_san.refresh_from_db()
    assert zhang_san.stage == "lost"
    event = Interaction.objects.get(customer=zhang_san, data__has_key="stage_to")
    assert (event.author_id, event.data["cause"]) == (front_desk_a.id, "marked lost by 前台小王: 搬家到北京")
    page = client.get(reverse("customers:detail", args=[zhang_san.id]))
    assert "marked lost by 前台小王: 搬家到北京" in page.text
    assert reverse("customers:mark_lost", args=[zhang_san.id]) not in page.text  # already lost: no action


def test_marking_lost_without_a_reason_shows_the_error_and_changes_nothing(client, front_desk_a, zhang_san):
    login(client, front_desk_a)
    response = client.post(reverse("customers:mark_lost", args=[zhang_san.id]), {"reason": "  "},
                           headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert response.text.lstrip().startswith('<div id="stage"')
    assert "This field is required." in response.text
    zhang_san.refresh_from_db()
    assert zhang_san.stage == "treated"
    assert not Interaction.objects.filter(customer=zhang_san).exists()


def test_marking_an_already_lost_patient_again_is_refused(client, front_desk_a, chain, clinic_a):
    gone = CustomerFactory(chain=chain, home_clinic=clinic_a, stage=Stage.LOST)
    login(client, front_desk_a)
    response = client.post(reverse("customers:mark_lost", args=[gone.id]), {"reason": "again"},
                           headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert "This patient is already marked lost." in response.text
    assert not Interaction.objects.filter(customer=gone).exists()


def test_marking_lost_a_patient_of_another_clinic_is_404(client, front_desk_a, li_si):
    login(client, front_desk_a)
    response = client.post(reverse("customers:mark_lost", args=[li_si.id]), {"reason": "搬家"})
    assert response.status_code == 404
    li_si.refresh_from_db()
    assert li_si.stage == "lead"
    assert not Interaction.objects.filter(customer=li_si).exists()


def test_a_role_without_customer_edit_gets_no_mark_lost_action_and_403(client, chain, clinic_a, zhang_san):
    doctor = StaffFactory(chain=chain, role=Role.DOCTOR, clinics=[clinic_a])
    login(client, doctor)
    page = client.get(reverse("customers:detail", args=[zhang_san.id]))
    assert page.status_code == 200
    assert reverse("customers:mark_lost", args=[zhang_san.id]) not in page.text
    response = client.post(reverse("customers:mark_lost", args=[zhang_san.id]), {"reason": "搬家"})
    assert response.status_code == 403
    zhang_san.refresh_from_db()
    assert zhang_san.stage == "treated"


# --- create and edit -------------------------------------------------------------------------------------


def test_create_makes_a_customer_and_redirects_to_the_360_page(client, front_desk_a, clinic_a):
    login(client, front_desk_a)
    response = client.post(reverse("customers:create"), {
        "name": "王五", "mobile": "139 1234 5678", "gender": "F", "birthday": "1990-01-05",
        "home_clinic": clinic_a.id, "source": "douyin", "key": "k1"})
    customer = Customer.objects.get(name="王五")
    assert response.status_code == 302
    assert response["Location"] == reverse("customers:detail", args=[customer.id])
    assert (customer.mobile, customer.gender, customer.home_clinic_id, customer.first_touch_channel) == (
        "+8613912345678", "F", clinic_a.id, "douyin")
    assert (customer.stage, customer.stage_reached) == (Stage.LEAD, Stage.LEAD)


def test_the_new_customer_form_preselects_the_only_clinic_of_a_clinic_member(client, front_desk_a, clinic_a,
                                                                           chain_admin):
    login(client, front_desk_a)
    assert client.get(reverse("customers:create")).context["form"]["home_clinic"].value() == clinic_a.id
    login(client, chain_admin)  # chain-wide: no guess
    assert client.get(reverse("customers:create")).context["form"]["home_clinic"].value() is None


def test_create_shows_field_messages_and_writes_nothing(client, front_desk_a):
    login(client, front_desk_a)
    response = client.post(reverse("customers:create"), {
        "name": "", "mobile": "12345", "gender": "M", "birthday": "2999-01-01", "key": "k1"})
    assert response.status_code == 422
    errors = response.context["form"].errors
    assert errors["name"] == ["This field is required."]
    assert errors["mobile"] == ["Enter a valid mobile number, for example 138 0013 8000."]
    assert errors["birthday"] == ["The birthday cannot be in the future."]
    assert errors["home_clinic"] == ["This field is required."]
    assert "Enter a valid mobile number" in response.text
    assert not Customer.objects.exists()


def test_create_with_an_existing_phone_links_to_the_person_instead_of_duplicating(client, front_desk_a, clinic_a,
                                                                                   zhang_san):
    login(client, front_desk_a)
    response = client.post(reverse("customers:create"), {
        "name": "张三丰", "mobile": "138-0013-8000", "gender": "U", "home_clinic": clinic_a.id, "key": "k1"},
        follow=True)
    assert response.redirect_chain[0][0].startswith(reverse("customers:create") + "?warned=")  # a page of its own
    assert response.context["existing"] == zhang_san
    assert reverse("customers:detail", args=[zhang_san.id]) in response.text
    assert Customer.objects.count() == 1
    zhang_san.refresh_from_db()
    assert zhang_san.name == "张三"


def test_create_with_a_phone_of_another_clinic_does_not_reveal_them(client, front_desk_a, clinic_a, li_si):
    login(client, front_desk_a)
    response = client.post(reverse("customers:create"), {
        "name": "李四", "mobile": "13900139000", "gender": "U", "home_clinic": clinic_a.id, "key": "k1"},
        follow=True)
    assert response.redirect_chain[0][0].startswith(reverse("customers:create") + "?warned=")
    assert response.context["existing"] is None
    assert "This mobile number belongs to a customer of another clinic" in response.text
    assert reverse("customers:detail", args=[li_si.id]) not in response.text
    assert Customer.objects.count() == 1


def test_edit_saves_changes(client, front_desk_a, clinic_a, zhang_san):
    login(client, front_desk_a)
    response = client.post(reverse("customers:edit", args=[zhang_san.id]), {
        "name": "张三", "mobile": "13800138000", "gender": "M", "home_clinic": clinic_a.id, "community": "静安花园"})
    assert response.status_code == 302
    zhang_san.refresh_from_db()
    assert (zhang_san.stage, zhang_san.community, zhang_san.gender) == ("treated", "静安花园", "M")


@pytest.mark.parametrize("url_name", ["customers:create", "customers:edit"])
def test_the_customer_form_has_no_stage_field(client, front_desk_a, zhang_san, url_name):
    login(client, front_desk_a)
    response = client.get(reverse(url_name, args=[zhang_san.id] if url_name == "customers:edit" else []))
    assert response.status_code == 200
    assert "stage" not in response.context["form"].fields
    assert 'name="stage"' not in response.text
    assert 'data-testid="stage-note"' in response.text


def test_a_stage_posted_to_the_edit_form_is_ignored(client, front_desk_a, clinic_a, zhang_san):
    # given a treated patient
    login(client, front_desk_a)
    # when a hand-made POST still carries a stage
    response = client.post(reverse("customers:edit", args=[zhang_san.id]), {
        "name": "张三", "mobile": "13800138000", "gender": "M", "home_clinic": clinic_a.id, "stage": "lost",
        "community": "静安花园"})
    # then the other fields are saved and the stage is not
    assert response.status_code == 302
    zhang_san.refresh_from_db()
    assert (zhang_san.stage, zhang_san.stage_prev, zhang_san.community) == ("treated", "", "静安花园")
    assert not Interaction.objects.filter(customer=zhang_san, data__has_key="stage_to").exists()


def test_a_stage_posted_to_the_create_form_still_makes_a_lead(client, front_desk_a, clinic_a):
    login(client, front_desk_a)
    response = client.post(reverse("customers:create"), {
        "name": "王五", "mobile": "13912345678", "gender": "F", "home_clinic": clinic_a.id, "stage": "member",
        "key": "k1"})
    assert response.status_code == 302
    customer = Customer.objects.get(name="王五")
    assert (customer.stage, customer.stage_reached) == (Stage.LEAD, Stage.LEAD)


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.MEMBER_OPS])
def test_the_edit_form_shows_the_phone_masked_and_writes_no_reveal(client, chain, clinic_a, zhang_san, role):
    # given a role that may edit customers (member operations may not even reveal phones)
    staff = StaffFactory(chain=chain, role=role, clinics=[clinic_a] if role == Role.FRONT_DESK else [])
    login(client, staff)
    # when they open the edit form
    response = client.get(reverse("customers:edit", args=[zhang_san.id]))
    # then the number is masked there as everywhere else: the form is no way round the audited reveal
    assert response.status_code == 200
    assert "138****8000" in response.text
    assert "13800138000" not in response.text
    assert not AuditEvent.objects.filter(action="phone.reveal").exists()


def test_saving_the_edit_form_with_the_masked_phone_keeps_the_number(client, front_desk_a, clinic_a, zhang_san):
    # given the edit form as shown (the phone masked)
    login(client, front_desk_a)
    # when it is saved with another change and the mask sent back
    response = client.post(reverse("customers:edit", args=[zhang_san.id]), {
        "name": "张三", "mobile": "138****8000", "gender": "M", "home_clinic": clinic_a.id, "community": "静安花园"})
    # then the number is kept and the change saved
    assert response.status_code == 302
    zhang_san.refresh_from_db()
    assert (zhang_san.mobile, zhang_san.community) == ("+8613800138000", "静安花园")


def test_edit_refuses_a_phone_of_another_customer(client, chain_admin, clinic_a, zhang_san, li_si):
    login(client, chain_admin)
    response = client.post(reverse("customers:edit", args=[zhang_san.id]), {
        "name": "张三", "mobile": "13900139000", "gender": "U", "home_clinic": clinic_a.id})
    assert response.status_code == 422
    assert "mobile" in response.context["form"].errors
    zhang_san.refresh_from_db()
    assert zhang_san.mobile == "+8613800138000"


# --- duplicates and merge --------------------------------------------------------------------------------


def test_merge_candidates_list_groups_with_reason(client, director_a, twins):
    login(client, director_a)
    response = client.get(reverse("customers:merge_candidates"))
    assert response.status_code == 200
    assert "Same name and birthday" in response.text
    assert response.text.count("赵六") == 2


def test_the_duplicates_page_lists_one_kind_of_evidence_per_tab(client, director_a, twins):
    login(client, director_a)
    # the twins share a name and a birthday: listed under "all" and under their own kind …
    for reason in ("", "same_name_birthday", "no-such-kind"):
        response = client.get(reverse("customers:merge_candidates"), {"reason": reason})
        assert response.status_code == 200 and response.text.count("赵六") == 2, reason
    # … and not under another kind, whose tab is the current one
    response = client.get(reverse("customers:merge_candidates"), {"reason": "same_identity"})
    assert "赵六" not in response.text and "No likely duplicates found." in response.text
    assert ('<a class="btn btn-sm btn-primary" href="/customers/duplicates/?reason=same_identity" '
            'aria-current="page">') in response.text


def test_the_family_tab_names_the_family_with_a_head_of_another_clinic_masked(client, director_a, chain, clinic_a,
                                                                              clinic_b):
    from smileloop.customers.services import household_member_add

    # given two families, each with a phone-less child entered twice; the second is headed by a clinic-B patient
    for head_name, head_clinic, child_name in (("周敏", clinic_a, "李小宝"), ("吴建国", clinic_b, "吴小妹")):
        head = CustomerFactory(chain=chain, name=head_name, home_clinic=head_clinic)
        for _ in range(2):
            household_member_add(head=head, relation="child",
                                 member=CustomerFactory(chain=chain, name=child_name, mobile=None, home_clinic=clinic_a))
    login(client, director_a)

    response = client.get(reverse("customers:merge_candidates"), {"reason": "same_name_family"})

    assert response.status_code == 200 and response.text.count("李小宝") == 2 and response.text.count("吴小妹") == 2
    families = re.findall(r'data-testid="merge-family">([^<]*)<', response.text)
    assert families == ["周敏家", "吴**家"] and "吴建国" not in response.text


def test_merge_moves_everything_to_the_survivor_and_audits(client, director_a, twins):
    # given
    first, second = twins
    login(client, director_a)
    # when
    response = client.post(reverse("customers:merge"), {
        "customers": f"{first.id},{second.id}", "survivor": second.id, "reason": "same person"})
    # then
    assert response.status_code == 302
    assert response["Location"] == reverse("customers:detail", args=[second.id])
    first.refresh_from_db()
    assert first.merged_into_id == second.id
    assert CustomerMerge.objects.get().reason == "same person"
    assert AuditEvent.objects.filter(action="customer.merge").count() == 1


def test_behind_the_proxy_a_merge_audits_the_staff_members_address(client, director_a, twins, settings):
    # production runs behind one proxy (TRUSTED_PROXY_COUNT): REMOTE_ADDR is the proxy on every request
    settings.TRUSTED_PROXY_COUNT = 1
    first, second = twins
    login(client, director_a)
    client.post(reverse("customers:merge"), {"customers": f"{first.id},{second.id}", "survivor": second.id,
                                             "reason": "same person"},
                REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9, 10.1.2.3")
    assert AuditEvent.objects.get(action="customer.merge").ip_address == "10.1.2.3"


def test_merge_needs_a_reason(client, director_a, twins):
    first, second = twins
    login(client, director_a)
    response = client.post(reverse("customers:merge"), {
        "customers": f"{first.id},{second.id}", "survivor": second.id, "reason": ""})
    # the duplicates page again, the reason's absence named beside the group (test_workspace_fixes.py)
    assert response.status_code == 422
    assert "Reason for merging: This field is required." in response.text
    assert not CustomerMerge.objects.exists()


def test_merge_is_forbidden_without_the_permission(client, front_desk_a, twins):
    first, second = twins
    login(client, front_desk_a)
    page = client.get(reverse("customers:merge_candidates"))
    response = client.post(reverse("customers:merge"), {
        "customers": f"{first.id},{second.id}", "survivor": second.id, "reason": "same"})
    assert 'name="survivor"' not in page.text
    assert response.status_code == 403
    first.refresh_from_db()
    assert first.merged_into_id is None
    assert not CustomerMerge.objects.exists()


def test_merge_of_a_record_outside_the_scope_is_404(client, director_a, twins, li_si):
    first, _second = twins
    login(client, director_a)
    response = client.post(reverse("customers:merge"), {
        "customers": f"{first.id},{li_si.id}", "survivor": first.id, "reason": "same"})
    assert response.status_code == 404
    li_si.refresh_from_db()
    assert li_si.merged_into_id is None


def test_export_writes_a_csv_of_the_scope_and_an_audit_row(client, director_a, zhang_san, li_si):
    # given a clinic director of clinic A
    login(client, director_a)
    # when
    response = client.post(reverse("customers:export"), {"reason": "quarterly review", "q": ""})
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    # then only clinic A's patient is exported, with the full phone (the role may see phones)
    lines = body.strip().splitlines()
    assert lines[0].startswith("ID,Name,Mobile,Gender")
    assert len(lines) == 2 and "张三" in lines[1] and "13800138000" in lines[1]
    event = AuditEvent.objects.get(action="customer.export")
    assert event.reason == "quarterly review" and event.actor_id == director_a.user_id


def test_the_export_speaks_the_readers_language_in_the_chains_time(client, director_a, chain, clinic_a):
    import csv
    import datetime as dt

    from django.utils import timezone, translation

    visit = dt.datetime(2026, 3, 2, 1, 30, tzinfo=dt.UTC)  # 09:30 in Shanghai
    CustomerFactory(chain=chain, home_clinic=clinic_a, name="王芳", gender="F", stage="treated",
                    first_touch_channel="douyin", first_visit_at=visit, last_visit_at=visit, visit_count=1)
    login(client, director_a)
    with translation.override("zh-hans"):
        body = b"".join(client.post(reverse("customers:export"), {"reason": "r"},
                                    HTTP_ACCEPT_LANGUAGE="zh-hans").streaming_content).decode("utf-8-sig")
    header, row = list(csv.reader(body.splitlines()))
    assert header[:6] == ["ID", "姓名", "手机号", "性别", "生日", "所属门诊"]
    record = dict(zip(header, row, strict=True))
    assert (record["性别"], record["阶段"], record["来源渠道"]) == ("女", "已治疗", "抖音")
    assert record["首次到店"] == record["最近到店"] == "2026-03-02 09:30"
    assert timezone.get_current_timezone_name() == "Asia/Shanghai"


def test_export_needs_the_permission_and_a_reason(client, front_desk_a, director_a, zhang_san):
    login(client, front_desk_a)
    assert client.post(reverse("customers:export"), {"reason": "x"}).status_code == 403
    login(client, director_a)
    assert client.post(reverse("customers:export"), {"reason": " "}).status_code == 422
    assert AuditEvent.objects.count() == 0


def test_an_export_reason_with_a_nul_character_is_refused_not_a_server_error(client, director_a, zhang_san):
    # PostgreSQL cannot store a NUL in the audit row (a 500); the reason is refused as a form field refuses it
    login(client, director_a)
    response = client.post(reverse("customers:export"), {"reason": "核对\x00名单"})
    assert response.status_code == 422
    assert "Null characters are not allowed." in response.content.decode()
    assert AuditEvent.objects.count() == 0


def test_an_export_reason_longer_than_its_box_is_refused_not_a_server_error(client, director_a, zhang_san):
    # the box takes 200 characters; the audit row 500 (PostgreSQL refuses more: a 500), SQLite took 10,000
    login(client, director_a)
    response = client.post(reverse("customers:export"), {"reason": "核" * 10_000})
    assert response.status_code == 422
    assert "at most 200 characters" in response.content.decode()
    assert AuditEvent.objects.count() == 0


def test_an_export_whose_filter_cannot_be_applied_is_refused_not_widened_to_the_whole_scope(
        client, director_a, clinic_b, zhang_san):
    # given: a director of clinic A asks for clinic B's patients only (a stale page: B is not theirs), or for a tag,
    # stage or source that does not exist
    login(client, director_a)
    for bad in ({"clinic": clinic_b.id}, {"clinic": "a\x00b"}, {"tag": "999999"}, {"stage": "no-such-stage"},
                {"source": "no-such-source"}):
        response = client.post(reverse("customers:export"), {"reason": "核对名单", **bad})
        # then: refused with the reason (the list page shows "All" for such a filter; an export of every patient
        # as if they matched it is a bulk disclosure nobody asked for), and nothing is audited as exported
        assert response.status_code == 422, bad
        assert not response.streaming and response.content.decode().strip(), bad
    assert AuditEvent.objects.count() == 0


def test_export_neutralises_spreadsheet_formulas(client, director_a, chain, clinic_a):
    CustomerFactory(chain=chain, home_clinic=clinic_a, name="=HYPERLINK(1)", community="+1")
    login(client, director_a)
    body = b"".join(client.post(reverse("customers:export"), {"reason": "r"}).streaming_content).decode("utf-8-sig")
    assert "'=HYPERLINK(1)" in body and "'+1" in body


def test_the_360_page_of_a_child_without_a_phone_names_the_relative_to_call_masked(client, chain, clinic_a,
                                                                                 clinic_b, front_desk_a):
    from smileloop.customers.services import household_member_add

    # given a child of clinic A without a phone, the father at clinic A, the mother (head) at clinic B
    child = CustomerFactory(chain=chain, name="李小宝", home_clinic=clinic_a, mobile=None)
    mother = CustomerFactory(chain=chain, name="周敏", home_clinic=clinic_b, mobile="+8613900139009")
    father = CustomerFactory(chain=chain, name="李强", home_clinic=clinic_a, mobile="+8613700137007")
    household_member_add(head=mother, member=child, relation="child")
    household_member_add(head=mother, member=father, relation="spouse")
    # when
    html = login(client, front_desk_a).get(reverse("customers:detail", args=[child.id])).content.decode()
    # then the father, in the clinic's scope, is offered with his masked number and a link; the mother is not
    via = html[html.index('data-testid="contact-via"'):]
    via = via[:via.index("</span></span>")]
    assert "李强" in via and "137****7007" in via and reverse("customers:detail", args=[father.id]) in via
    assert "周敏" not in via and "13700137007" not in html
    # and a patient with a phone of their own shows none
    assert 'data-testid="contact-via"' not in client.get(reverse("customers:detail", args=[father.id])).text


@pytest.mark.parametrize("url_name, field_id", [("mark_lost", "id_lost_reason"), ("phone_reveal", "id_reveal_reason")])
def test_a_refused_reason_is_announced_and_tied_to_its_field(client, front_desk_a, zhang_san, url_name, field_id):
    login(client, front_desk_a)
    response = client.post(reverse(f"customers:{url_name}", args=[zhang_san.id]), {"reason": "  "},
                           headers={"HX-Request": "true"})
    html = response.text
    field = html[html.index(f'id="{field_id}"'):]
    field = field[:field.index(">")]
    assert 'aria-invalid="true"' in field and f'aria-describedby="{field_id}_error"' in field
    assert re.search(rf'<div id="{field_id}_error" role="alert">\s*<p class="field-error">', html)
