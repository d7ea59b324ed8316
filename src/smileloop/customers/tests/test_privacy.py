"""A person's PIPL rights: erasure of their personal information (customers.privacy) and their data copy
(customers.data_copy), as services and on the 360 page's Privacy card. Hooks of the higher apps are tested in the
cross-app flow, tests/test_privacy_flow.py."""

import datetime as dt
import io
import json
from decimal import Decimal

import openpyxl
import pytest
from django.urls import reverse

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from smileloop.core.models import AuditEvent
from smileloop.customers.enums import ConsentPurpose, InteractionKind, Relation, Stage
from smileloop.customers.models import (
    Consent,
    Customer,
    CustomerMerge,
    CustomerSearchKey,
    Household,
    HouseholdMember,
    Identity,
    Interaction,
)
from smileloop.customers.privacy import MARKETING_PURPOSES, customer_erase
from smileloop.customers.selectors import consent_current, customer_list
from smileloop.customers.services import (
    consent_record,
    customer_merge,
    customer_stage_advance,
    customer_update,
    customer_upsert,
    household_relative_add,
    identity_add,
    interaction_add,
)
from smileloop.customers.tests.factories import CustomerFactory, IdentityFactory

pytestmark = pytest.mark.django_db

PERSONAL = {"name": "张三", "mobile": "+8613800138000", "birthday": dt.date(1980, 5, 6), "address": "上海市静安区南京西路1号",
            "community": "静安花园", "latitude": Decimal("31.230000"), "longitude": Decimal("121.470000"),
            "notes": "怕疼，喜欢下午来", "gender": "M"}


@pytest.fixture
def patient(chain, clinic_a, director_a):
    """张三 of clinic A with everything personal on file: identities, consents, notes on the timeline, a stage change
    with a staff member's reason, a child in his household and an older record of him merged in."""
    person = CustomerFactory(chain=chain, home_clinic=clinic_a, stage=Stage.LEAD, **PERSONAL)
    IdentityFactory(customer=person, kind="wechat_openid", external_id="oWX-zhangsan")
    IdentityFactory(customer=person, kind="phone", external_id="+8602161234567")
    consent_record(customer=person, purpose=ConsentPurpose.MARKETING_SMS, granted=True, source="form")
    consent_record(customer=person, purpose=ConsentPurpose.HEALTH_DATA, granted=True, source="form")
    interaction_add(customer=person, kind=InteractionKind.NOTE, text="他说女儿在复旦读书", author=director_a)
    interaction_add(customer=person, kind=InteractionKind.CHAT, text="我下周三下午有空")
    customer_stage_advance(customer=person, to=Stage.LOST, cause="marked lost by 院长老李: 搬去北京")
    child = CustomerFactory(chain=chain, home_clinic=clinic_a, name="张小三", mobile=None)
    household_relative_add(customer=person, relative=child, relation=Relation.CHILD)
    old = CustomerFactory(chain=chain, home_clinic=clinic_a, name="张三", mobile="+8615900159000",
                          address="旧地址 武康路2号", birthday=dt.date(1980, 5, 6))
    customer_merge(scope=scope_for_staff(director_a), survivor=person, merged=old, reason="同一人，张三本人确认")
    person.refresh_from_db()
    return person


def _erase(scope, customer, **kwargs):
    return customer_erase(scope=scope, customer=customer, actor=kwargs.pop("actor", None),
                          reason=kwargs.pop("reason", "本人书面申请 2026-12-01"), **kwargs)


# --- the service -----------------------------------------------------------------------------------------


def test_erase_replaces_every_personal_field_and_keeps_the_anonymous_record(patient, director_scope, director_a):
    # when
    erased = _erase(director_scope, patient, actor=director_a)
    # then
    row = Customer.objects.get(pk=patient.pk)
    assert erased.pk == row.pk
    assert row.name == f"已注销客户 #{patient.pk}"
    assert (row.mobile, row.mobile_tail, row.birthday, row.address, row.community, row.latitude, row.longitude,
            row.notes, row.gender) == (None, "", None, "", "", None, None, "", "U")
    assert row.erased_at is not None
    assert row.home_clinic_id == patient.home_clinic_id and row.stage == patient.stage  # the record stays


def test_erase_removes_identities_search_keys_and_the_household(patient, director_scope):
    head_household = Household.objects.get(head=patient)
    # when
    _erase(director_scope, patient)
    # then: no way left to find or link him; the household he headed is dissolved, his child stays a patient
    assert not Identity.objects.filter(customer=patient).exists()
    assert not CustomerSearchKey.objects.filter(customer=patient).exists()
    assert not HouseholdMember.objects.filter(household=head_household.pk).exists()
    assert not Household.objects.filter(pk=head_household.pk).exists()
    assert Customer.objects.filter(name="张小三").exists()


def test_erasing_a_family_member_takes_them_out_and_the_head_keeps_a_masked_note(chain, clinic_a, director_scope):
    head = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王大明")
    spouse = CustomerFactory(chain=chain, home_clinic=clinic_a, name="李小红")
    child = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王小明")
    household_relative_add(customer=head, relative=spouse, relation=Relation.SPOUSE)
    household_relative_add(customer=head, relative=child, relation=Relation.CHILD)
    # when the spouse is erased
    _erase(director_scope, spouse)
    # then the family is the head and the child; the head's timeline never names her
    assert set(HouseholdMember.objects.values_list("customer_id", flat=True)) == {head.pk, child.pk}
    assert not Interaction.objects.filter(customer=head, text__contains="李小红").exists()
    assert Interaction.objects.filter(customer=head, text__startswith="family member removed: 已*").exists()


def test_erase_withdraws_every_marketing_consent_by_appending_rows(patient, director_scope, director_a):
    before = list(Consent.objects.filter(customer=patient).values_list("pk", "granted"))
    # when
    _erase(director_scope, patient, actor=director_a)
    # then: the old rows are untouched, one withdrawal per marketing purpose is appended
    assert list(Consent.objects.filter(pk__in=[pk for pk, _g in before]).values_list("pk", "granted")) == before
    current = consent_current(patient)
    assert {p: (current[p].granted, current[p].source, current[p].recorded_by_id) for p in MARKETING_PURPOSES} == {
        p: (False, "erasure", director_a.pk) for p in MARKETING_PURPOSES}
    assert current[ConsentPurpose.HEALTH_DATA].granted is True  # the kept medical records' basis


def test_erase_blanks_the_timeline_keeps_stage_changes_and_says_who_erased(patient, director_scope, director_a):
    # when
    _erase(director_scope, patient, actor=director_a)
    # then nothing anyone wrote is left; a stage change keeps its stages, not its cause
    entries = list(Interaction.objects.filter(customer=patient).order_by("id"))
    texts = " ".join(e.text for e in entries)
    for written in ("女儿", "周三", "北京", "张三", "同一人"):
        assert written not in texts
    stage = next(e for e in entries if e.data.get("stage_to") == Stage.LOST)
    assert stage.data == {"stage_from": Stage.LEAD, "stage_to": Stage.LOST}
    assert stage.text == "stage lead → lost: "
    last = entries[-1]
    assert (last.kind, last.text, last.author_id) == (InteractionKind.SYSTEM,
                                                      "personal information erased by 院长老李", director_a.pk)


def test_erase_also_erases_the_records_merged_into_the_patient(patient, director_scope):
    old = Customer.objects.get(merged_into=patient)
    # when
    _erase(director_scope, patient)
    # then the older record holds none of his details, and the merge keeps no snapshot or reason
    old.refresh_from_db()
    assert (old.name, old.address, old.birthday, old.mobile) == (f"已注销客户 #{old.pk}", "", None, None)
    assert list(CustomerMerge.objects.filter(survivor=patient).values_list("merged_snapshot", "reason")) == [({}, "")]


def test_an_erased_patient_is_found_by_no_name_pinyin_or_phone_search(patient, admin_scope):
    # when
    _erase(admin_scope, patient)
    # then
    for q in ("张三", "zs", "zhangsan", "8000", "13800138000", "+8602161234567", "15900159000"):
        assert patient not in list(customer_list(admin_scope, q=q)), q


def test_an_upsert_with_the_erased_phone_creates_a_new_person(patient, chain, admin_scope):
    _erase(admin_scope, patient)
    # when the person comes back with the same phone and WeChat openid
    customer, created = customer_upsert(chain=chain, data={"name": "张三", "mobile": "13800138000"},
                                        identities=[{"kind": "wechat_openid", "external_id": "oWX-zhangsan"}])
    # then a new record, and the anonymous one stays anonymous
    assert created and customer.pk != patient.pk
    patient.refresh_from_db()
    assert patient.mobile is None and patient.name.startswith("已注销客户")


def test_an_erased_record_is_never_edited_or_linked_again(patient, admin_scope):
    _erase(admin_scope, patient)
    patient.refresh_from_db()
    with pytest.raises(Conflict) as refused:
        customer_update(customer=patient, data={"name": "张三"})
    assert refused.value.code == "erased"
    with pytest.raises(Conflict):
        identity_add(customer=patient, kind="wechat_openid", external_id="oWX-zhangsan")
    assert Customer.objects.get(pk=patient.pk).name.startswith("已注销客户")


def test_an_erased_record_is_never_merged_linked_to_a_family_or_given_a_marketing_consent(patient, chain, clinic_a,
                                                                                          admin_scope):
    other = CustomerFactory(chain=chain, home_clinic=clinic_a, name="张三", mobile="+8613700137000")
    _erase(admin_scope, patient)
    patient.refresh_from_db()
    counts = (Consent.objects.count(), HouseholdMember.objects.count(), CustomerMerge.objects.count())
    for refused in (
        lambda: customer_merge(scope=admin_scope, survivor=other, merged=patient),
        lambda: customer_merge(scope=admin_scope, survivor=patient, merged=other),
        lambda: household_relative_add(customer=other, relative=patient, relation=Relation.SPOUSE),
        lambda: consent_record(customer=patient, purpose=ConsentPurpose.MARKETING_SMS, granted=True, source="form"),
    ):
        with pytest.raises(Conflict) as error:
            refused()
        assert error.value.code == "erased"
    assert (Consent.objects.count(), HouseholdMember.objects.count(), CustomerMerge.objects.count()) == counts
    assert Customer.objects.get(pk=other.pk).merged_into_id is None


def test_erase_writes_one_audit_row_with_who_and_why_and_none_of_the_erased_values(patient, director_scope,
                                                                                   director_a):
    # when
    _erase(director_scope, patient, actor=director_a, reason="本人书面申请 2026-12-01", ip_address="10.0.0.9")
    # then
    event = AuditEvent.objects.get(action="customer.erase")
    assert (event.actor_id, event.object_id, event.reason, event.ip_address) == (
        director_a.user_id, str(patient.pk), "本人书面申请 2026-12-01", "10.0.0.9")
    # openid, landline, and the old record's mobile the merge kept as a phone identity
    assert event.detail["identities"] == 3 and event.detail["household"] == "dissolved"
    assert event.detail["merged_records"] == 1 and event.detail["forfeited"] == []
    dumped = str(event.detail)
    for value in ("张三", "13800138000", "8000", "南京西路", "1980", "oWX"):
        assert value not in dumped


def test_erase_is_idempotent(patient, director_scope):
    first = _erase(director_scope, patient)
    counts = (Consent.objects.count(), Interaction.objects.count(), AuditEvent.objects.count())
    # when
    again = _erase(director_scope, patient)
    # then nothing more is written and the same record comes back
    assert again.pk == first.pk and again.erased_at == first.erased_at
    assert (Consent.objects.count(), Interaction.objects.count(), AuditEvent.objects.count()) == counts


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.CONSULTANT, Role.DOCTOR, Role.MEMBER_OPS, Role.MARKETING])
def test_only_directors_and_chain_admins_may_erase(patient, chain, clinic_a, role):
    staff = StaffFactory(chain=chain, role=role, clinics=[clinic_a])
    with pytest.raises(PermissionDenied):
        _erase(scope_for_staff(staff), patient)
    assert Customer.objects.get(pk=patient.pk).name == "张三"


def test_erase_refused_without_a_reason_or_outside_the_scope_changes_nothing(patient, chain, clinic_b):
    other_director = StaffFactory(chain=chain, role=Role.CLINIC_DIRECTOR, clinics=[clinic_b])
    counts = (Consent.objects.count(), Interaction.objects.count(), Identity.objects.count(),
              AuditEvent.objects.count())
    with pytest.raises(NotFound):
        _erase(scope_for_staff(other_director), patient)
    with pytest.raises(ValidationFailed):
        _erase(scope_for_staff(StaffFactory(chain=chain, role=Role.CHAIN_ADMIN)), patient, reason="   ")
    row = Customer.objects.get(pk=patient.pk)
    assert (row.name, row.mobile, row.erased_at) == ("张三", "+8613800138000", None)
    assert (Consent.objects.count(), Interaction.objects.count(), Identity.objects.count(),
            AuditEvent.objects.count()) == counts


# --- the page ----------------------------------------------------------------------------------------------


def login(client, staff):
    client.force_login(staff.user)
    return client


def test_the_privacy_card_is_shown_only_to_staff_who_may_use_it(client, patient, front_desk_a, director_a):
    url = reverse("customers:detail", args=[patient.pk])
    assert 'id="privacy"' not in login(client, front_desk_a).get(url).text
    page = login(client, director_a).get(url).text
    assert 'id="privacy"' in page and reverse("customers:erase", args=[patient.pk]) in page


def test_the_erase_page_refuses_a_role_without_the_permission(client, patient, front_desk_a):
    login(client, front_desk_a)
    response = client.post(reverse("customers:erase", args=[patient.pk]),
                           {"erase-reason": "x", "erase-confirm": "张三"})
    assert response.status_code == 403
    assert Customer.objects.get(pk=patient.pk).erased_at is None


def test_another_clinics_director_gets_a_404(client, patient, chain, clinic_b):
    other = StaffFactory(chain=chain, role=Role.CLINIC_DIRECTOR, clinics=[clinic_b])
    login(client, other)
    assert client.post(reverse("customers:erase", args=[patient.pk]),
                       {"erase-reason": "x", "erase-confirm": "张三"}).status_code == 404
    assert client.post(reverse("customers:data_copy", args=[patient.pk]), {"copy-reason": "x"}).status_code == 404
    assert Customer.objects.get(pk=patient.pk).erased_at is None
    assert not AuditEvent.objects.filter(action__in=["customer.erase", "customer.data_export"]).exists()


def test_the_erase_form_wants_the_patients_name_or_phone_tail(client, patient, director_a):
    login(client, director_a)
    url = reverse("customers:erase", args=[patient.pk])
    # a wrong name: refused in place, nothing erased
    response = client.post(url, {"erase-reason": "本人申请", "erase-confirm": "李四"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert "This is not the name or phone tail of this patient." in response.text
    assert Customer.objects.get(pk=patient.pk).erased_at is None
    # no reason: refused
    assert client.post(url, {"erase-reason": "", "erase-confirm": "张三"}).status_code == 422
    assert Customer.objects.get(pk=patient.pk).erased_at is None
    # the phone tail: erased, and the page says so and offers no edit
    response = client.post(url, {"erase-reason": "本人申请", "erase-confirm": "8000"})
    assert response.status_code == 302 and response.url == reverse("customers:detail", args=[patient.pk])
    assert Customer.objects.get(pk=patient.pk).erased_at is not None
    page = client.get(reverse("customers:detail", args=[patient.pk])).text
    assert 'data-testid="erased-badge"' in page and reverse("customers:edit", args=[patient.pk]) not in page
    assert "张三" not in page


def test_linking_an_erased_record_as_a_relative_says_why_it_is_refused(client, patient, chain, clinic_a, director_a,
                                                                       director_scope):
    other = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王芳")
    _erase(director_scope, patient)
    login(client, director_a)
    response = client.post(reverse("customers:family_add", args=[other.pk]),
                           {"member": f"#{patient.pk}", "relation": Relation.SPOUSE}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 422
    assert "This patient&#x27;s personal information was erased" in response.text
    assert not HouseholdMember.objects.filter(customer=other).exists()


def test_an_erased_records_edit_page_leads_back_to_its_360_page(client, patient, director_a, director_scope):
    _erase(director_scope, patient)
    login(client, director_a)
    response = client.get(reverse("customers:edit", args=[patient.pk]))
    assert response.status_code == 302 and response.url == reverse("customers:detail", args=[patient.pk])


# --- the data copy -------------------------------------------------------------------------------------------


def _sheets(content: bytes) -> dict[str, list[list]]:
    book = openpyxl.load_workbook(io.BytesIO(content))
    return {ws.title: [list(row) for row in ws.iter_rows(values_only=True)] for ws in book.worksheets}


def test_the_data_copy_holds_the_profile_identities_consents_timeline_and_family(client, patient, director_a):
    login(client, director_a)
    # when
    response = client.post(reverse("customers:data_copy", args=[patient.pk]), {"copy-reason": "本人申请查阅"},
                           HTTP_ACCEPT_LANGUAGE="en")
    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    assert f"customer-{patient.pk}-data-" in response["Content-Disposition"]
    sheets = _sheets(response.content)
    profile = {row[0]: row[1] for row in sheets["Profile"][1:]}
    assert (profile["name"], profile["mobile"], profile["address"]) == ("张三", "+8613800138000", PERSONAL["address"])
    assert any("oWX-zhangsan" in row for row in sheets["Identities"])
    assert sum(1 for row in sheets["Consents"][1:]) == 2
    assert any("他说女儿在复旦读书" in row for row in sheets["Timeline"])
    assert [row[1] for row in sheets["Family"][1:]] == ["this person", "张**"]


def test_the_data_copy_is_audited_as_an_export_and_needs_a_reason_and_the_permission(client, patient, director_a,
                                                                                     front_desk_a):
    url = reverse("customers:data_copy", args=[patient.pk])
    login(client, front_desk_a)
    assert client.post(url, {"copy-reason": "x"}).status_code == 403
    login(client, director_a)
    assert client.post(url, {"copy-reason": " "}).status_code == 422
    assert not AuditEvent.objects.filter(action="customer.data_export").exists()
    # when
    client.post(url, {"copy-reason": "本人申请查阅"}, REMOTE_ADDR="10.0.0.7")
    # then
    event = AuditEvent.objects.get(action="customer.data_export")
    assert (event.actor_id, event.object_id, event.reason, event.ip_address) == (
        director_a.user_id, str(patient.pk), "本人申请查阅", "10.0.0.7")
    assert event.detail["sheets"]["Profile"] == 21


def test_the_data_copy_keeps_a_formula_as_text(client, chain, clinic_a, director_a):
    person = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王五", address="=HYPERLINK(\"http://x\")")
    login(client, director_a)
    sheets = _sheets(client.post(reverse("customers:data_copy", args=[person.pk]), {"copy-reason": "r"},
                                 HTTP_ACCEPT_LANGUAGE="en").content)
    profile = {row[0]: row[1] for row in sheets["Profile"][1:]}
    assert profile["address"] == "=HYPERLINK(\"http://x\")"  # the text as written, a string cell


# --- the API ---------------------------------------------------------------------------------------------------


def _api_erase(client, customer, staff, body, key="erase-1"):
    from smileloop.clinics.services import token_create

    token = token_create(username=staff.user.username)
    return client.post(f"/api/customers/{customer.pk}/erase", data=json.dumps(body), content_type="application/json",
                       headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})


def test_the_api_erases_with_an_idempotency_key_and_replays_the_answer(client, patient, director_a):
    # when
    first = _api_erase(client, patient, director_a, {"reason": "本人书面申请"})
    replay = _api_erase(client, patient, director_a, {"reason": "本人书面申请"})
    # then
    assert first.status_code == replay.status_code == 200
    assert first.json()["name"] == f"已注销客户 #{patient.pk}" and replay.json() == first.json()
    assert replay["Idempotent-Replayed"] == "true"
    assert AuditEvent.objects.filter(action="customer.erase").count() == 1


def test_the_api_refuses_a_role_without_the_permission_and_another_clinics_patient(client, patient, chain, clinic_b,
                                                                                   front_desk_a):
    assert _api_erase(client, patient, front_desk_a, {"reason": "x"}).status_code == 403
    other = StaffFactory(chain=chain, role=Role.CLINIC_DIRECTOR, clinics=[clinic_b])
    assert _api_erase(client, patient, other, {"reason": "x"}, key="erase-2").status_code == 404
    assert Customer.objects.get(pk=patient.pk).erased_at is None



def test_a_replayed_upsert_answers_the_anonymous_record_after_the_erasure(client, patient, chain, clinic_a,
                                                                          director_a, director_scope):
    # given two upserts through the API, one of the patient (its answer stored for replay) and one of another 张三
    from smileloop.clinics.services import token_create

    token = token_create(username=director_a.user.username)

    def upsert(body, key):
        return client.post("/api/customers/upsert", data=json.dumps(body), content_type="application/json",
                           headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})

    mine = {"name": "张三", "mobile": "13800138000", "notes": "怕疼，喜欢下午来"}
    other = {"name": "张三", "mobile": "13900139000", "address": "北京市朝阳区1号", "home_clinic": clinic_a.code}
    first = upsert(mine, "upsert-mine").json()["customer"]
    assert (first["id"], first["address"], first["birthday"]) == (patient.pk, PERSONAL["address"], "1980-05-06")
    theirs = upsert(other, "upsert-other").json()
    # when
    _erase(director_scope, patient)
    # then a retry of the patient's upsert answers the anonymous record; the other 张三's answer is theirs still
    replay = upsert(mine, "upsert-mine")
    assert replay["Idempotent-Replayed"] == "true"
    text = replay.content.decode()
    for value in ("张三", "1980-05-06", "南京西路", "静安花园", "怕疼", "oWX-zhangsan", "8000"):
        assert value not in text and json.dumps(value)[1:-1] not in text
    assert replay.json()["customer"]["name"] == f"已注销客户 #{patient.pk}"
    assert upsert(other, "upsert-other").json() == theirs
    assert AuditEvent.objects.get(action="customer.erase").detail["api_answers"] == 1
