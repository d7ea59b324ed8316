"""QA edges of the staff workspace's customer pages and services: consents and registrations that meet an erased
record, text with control characters, a number kept as another person's phone identity."""

import json

import pytest
from django import forms
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.services import token_create
from smileloop.clinics.tests.factories import ClinicFactory, StaffFactory
from smileloop.core.errors import Conflict, ValidationFailed
from smileloop.customers.enums import IdentityKind
from smileloop.customers.forms import customer_ids_parse
from smileloop.customers.models import Consent, Customer, HouseholdMember, Identity, Interaction
from smileloop.customers.privacy import customer_erase
from smileloop.customers.services import (
    consent_record,
    customer_merge,
    customer_register,
    customer_update,
    customer_upsert,
    identity_add,
)
from smileloop.customers.tests.factories import CustomerFactory


def _erase(customer) -> None:
    Customer.objects.filter(pk=customer.pk).update(erased_at=timezone.now())


def test_a_consent_given_on_the_page_of_a_record_erased_meanwhile_is_refused_and_writes_nothing(
        client, front_desk_a, zhang_san):
    # given a patient's page opened before a director erased the patient
    _erase(zhang_san)
    client.force_login(front_desk_a.user)
    # when the front desk records a marketing consent from that page
    response = client.post(reverse("customers:consent_add", args=[zhang_san.id]),
                           {"purpose": "marketing_sms", "granted": "1", "source": "paper"})
    # then it is refused, said above the consents (it was a 500, then a form error its page did not show), and no
    # consent was recorded
    assert response.status_code == 422
    assert response.context["consent_error"] == "This patient's personal information was erased"
    assert 'data-testid="consent-error"' in response.text
    assert Consent.objects.count() == 0


def test_registering_someone_with_an_erased_relative_names_the_relative_and_writes_nothing(
        client, front_desk_a, clinic_a, zhang_san):
    # given a patient whose personal information was erased, still found by their customer number
    _erase(zhang_san)
    client.force_login(front_desk_a.user)
    # when a child without a phone is registered as having come with them
    response = client.post(reverse("customers:create"), {
        "name": "小明", "gender": "U", "home_clinic": clinic_a.id, "relative": str(zhang_san.id), "key": "k1",
        "relation": "parent"}, follow=True)
    # then the "came with" field says why (it was an error on the empty mobile field), on a page of its own (a GET:
    # views.customer_create), and nobody was created
    assert response.redirect_chain[0][0].startswith(reverse("customers:create") + "?warned=")
    assert response.context["form"].errors == {"relative": ["This patient's personal information was erased"]}
    assert list(Customer.objects.values_list("pk", flat=True)) == [zhang_san.pk]
    assert HouseholdMember.objects.count() == 0


@pytest.mark.parametrize(("field", "value"), [
    ("name", "\x07\x07"), ("name", "张\x1b[31m三"), ("address", "南京路\x00 1号"), ("community", "静安\x7f"),
    ("campaign", "双十一\x08"), ("notes", "对麻药\x0c过敏"),
])
def test_text_with_control_characters_is_refused_naming_the_field_and_writes_nothing(chain, field, value):
    # when a person is sent with a bell, an escape or a NUL in one of their texts
    data = {"name": "王五", "mobile": "13800138001", field: value}
    with pytest.raises(ValidationFailed) as raised:
        customer_upsert(chain=chain, data=data)
    # then that field is named, and nothing was written
    assert [(e.field, e.message) for e in raised.value.errors] == [(field, "must not contain control characters")]
    assert Customer.objects.count() == 0


def test_notes_keep_their_line_breaks_and_tabs(chain):
    customer, _created = customer_upsert(chain=chain, data={"name": "王五", "notes": "对麻药过敏\r\n\t青霉素"})

    assert customer.notes == "对麻药过敏\r\n\t青霉素"


def test_a_name_of_only_control_characters_is_refused_on_the_new_customer_form(client, front_desk_a, clinic_a):
    client.force_login(front_desk_a.user)
    # when the front desk's form is posted with a name of two bell characters (it showed as a nameless patient)
    response = client.post(reverse("customers:create"), {"name": "\x07\x07", "gender": "U", "key": "k1",
                                                         "home_clinic": clinic_a.id})
    # then the name is refused in words, and nobody was created
    assert response.status_code == 422
    assert response.context["form"].errors == {
        "name": ["Remove the invisible control characters (a bell, an escape …) from this text."]}
    assert Customer.objects.count() == 0


def test_an_identity_with_a_control_character_is_refused_not_stored_beside_the_real_one(chain, zhang_san):
    with pytest.raises(ValidationFailed) as raised:
        identity_add(customer=zhang_san, kind=IdentityKind.WECHAT_OPENID, external_id="oABC123\x1b")

    assert [(e.field, e.message) for e in raised.value.errors] == [
        ("external_id", "must not contain control characters")]
    assert Identity.objects.count() == 0


def test_editing_in_a_number_kept_as_another_customers_phone_identity_is_refused_and_changes_nothing(
        chain, clinic_a, zhang_san):
    # given a patient whose old number (or landline) is kept as a phone identity
    other = CustomerFactory(chain=chain, home_clinic=clinic_a, mobile="+8613900139111")
    Identity.objects.create(chain=chain, customer=other, kind=IdentityKind.PHONE, external_id="+8613700137000")
    # when another patient's record is edited to that number
    with pytest.raises(ValidationFailed) as raised:
        customer_update(customer=zhang_san, data={"mobile": "137 0013 7000"})
    # then it is refused as another customer's number (an upsert of it finds that patient), and nothing changed
    assert [(e.field, e.message) for e in raised.value.errors] == [
        ("mobile", "belongs to another customer; merge them instead")]
    assert Customer.objects.get(pk=zhang_san.pk).mobile == "+8613800138000"


def test_a_number_kept_as_the_patients_own_phone_identity_may_become_their_mobile(chain, zhang_san):
    Identity.objects.create(chain=chain, customer=zhang_san, kind=IdentityKind.PHONE, external_id="+8613700137000")

    customer_update(customer=zhang_san, data={"mobile": "13700137000"})

    assert Customer.objects.get(pk=zhang_san.pk).mobile == "+8613700137000"


def test_registering_a_number_that_is_someones_already_is_refused_and_leaves_their_record_as_it_was(
        chain, clinic_a, front_desk_a, zhang_san):
    # given a patient registered at one desk a moment ago (the other desk's form had checked the number before)
    scope = scope_for_staff(front_desk_a)
    # when the other desk's registration of the same number with another name and a consent arrives
    with pytest.raises(Conflict) as raised:
        customer_register(scope=scope, data={"name": "张叁", "mobile": "138 0013 8000", "gender": "F",
                                             "home_clinic": clinic_a},
                          consents=[{"purpose": "marketing_sms", "granted": True, "source": "paper"}],
                          actor=front_desk_a)
    # then it is refused on the mobile, and the patient's record is not overwritten nor given the consent
    assert (raised.value.code, raised.value.field) == ("customer_exists", "mobile")
    assert Customer.objects.values_list("name", "gender").get() == ("张三", "U")
    assert Consent.objects.count() == 0


# --- clinics and consultants named by the API ----------------------------------------------------------------


def test_a_home_clinic_or_consultant_named_by_text_is_a_code_or_username_before_an_id(client, chain, clinic_a,
                                                                                      chain_admin):
    # given a chain numbering its clinics and staff: a clinic coded with the id of clinic A, a consultant whose job
    # number is the id of another staff member
    coded = ClinicFactory(chain=chain, code=str(clinic_a.id), name="二号门诊")
    other = StaffFactory(chain=chain, clinics=[clinic_a], role=Role.CONSULTANT)
    numbered = StaffFactory(chain=chain, clinics=[clinic_a], role=Role.CONSULTANT, user__username=str(other.id))
    token = token_create(username=chain_admin.user.username)

    def upsert(mobile, **fields):
        response = client.post("/api/customers/upsert", data=json.dumps({"name": "张三", "mobile": mobile, **fields}),
                               content_type="application/json",
                               headers={"Authorization": f"Bearer {token}", "Idempotency-Key": mobile})
        assert response.status_code == 201, response.content
        return Customer.objects.get(pk=response.json()["customer"]["id"])

    # when the POS names them as text, and as JSON numbers
    as_text = upsert("13800138001", home_clinic=str(clinic_a.id), consultant=str(other.id))
    as_numbers = upsert("13800138002", home_clinic=clinic_a.id, consultant=other.id)
    # then text is the code or username (it went to clinic A and the other consultant), numbers the ids
    assert (as_text.home_clinic_id, as_text.consultant_id) == (coded.id, numbered.id)
    assert (as_numbers.home_clinic_id, as_numbers.consultant_id) == (clinic_a.id, other.id)


# --- notes on an erased record ---------------------------------------------------------------------------------


def test_an_erased_record_takes_no_new_note_and_offers_no_note_box(client, chain, clinic_a, director_a):
    person = CustomerFactory(chain=chain, home_clinic=clinic_a, name="张三")
    customer_erase(scope=scope_for_staff(director_a), customer=person, actor=director_a, reason="本人要求删除")
    before = Interaction.objects.filter(customer=person).count()
    client.force_login(director_a.user)
    # when a page opened before the erasure sends a note naming the person again
    response = client.post(reverse("customers:note_add", args=[person.id]), {"text": "张三说下周来"},
                           headers={"HX-Request": "true"})
    # then it is refused on the note box and nothing is written
    assert response.status_code == 422
    assert "This patient&#x27;s personal information was erased" in response.text
    assert Interaction.objects.filter(customer=person).count() == before
    # and the 360 page offers no note box for the record
    page = client.get(reverse("customers:detail", args=[person.id]))
    assert page.status_code == 200 and "note-form" not in page.text


# --- consent evidence, merge reasons and groups ----------------------------------------------------------------


def test_a_consents_evidence_too_long_or_with_control_characters_is_refused_not_cut(chain, clinic_a):
    person = CustomerFactory(chain=chain, home_clinic=clinic_a)
    for evidence, message in (("纸质同意书" + "页" * 300, "is longer than 255 characters"),
                              ("纸质同意书\x1b[2J", "must not contain control characters")):
        with pytest.raises(ValidationFailed) as refused:
            consent_record(customer=person, purpose="marketing_sms", granted=True, source="paper", evidence=evidence)
        assert [(e.field, e.message) for e in refused.value.errors] == [("evidence", message)]
    assert not Consent.objects.filter(customer=person).exists()


def test_an_upserts_consent_evidence_is_named_by_its_place_in_the_list(chain, clinic_a, chain_admin):
    token = token_create(username=chain_admin.user.username)
    body = {"name": "张三", "mobile": "13800138009", "consents": [
        {"purpose": "marketing_sms", "granted": True, "source": "api"},
        {"purpose": "marketing_wechat", "granted": True, "source": "api", "evidence": "小程序\x07勾选"}]}
    response = Client().post("/api/customers/upsert", data=json.dumps(body), content_type="application/json",
                             headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "consents"})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.consents[1].evidence"]
    assert not Customer.objects.filter(mobile="+8613800138009").exists()


def test_a_merge_reason_with_control_characters_is_refused_and_a_group_is_at_most_twenty(chain, clinic_a,
                                                                                        chain_admin):
    keep, twin = (CustomerFactory(chain=chain, home_clinic=clinic_a, name="张三") for _ in range(2))
    with pytest.raises(ValidationFailed) as refused:
        customer_merge(scope=scope_for_staff(chain_admin), survivor=keep, merged=twin, reason="同一人\x08\x08")
    assert [e.field for e in refused.value.errors] == ["reason"]
    twin.refresh_from_db()
    assert twin.merged_into_id is None
    assert len(customer_ids_parse(",".join(str(n) for n in range(1, 21)))) == 20
    with pytest.raises(forms.ValidationError) as too_many:
        customer_ids_parse(",".join(str(n) for n in range(1, 22)))
    assert too_many.value.code == "too_many"
