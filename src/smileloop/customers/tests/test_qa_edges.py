"""QA edges of the staff workspace's customer pages and services: consents and registrations that meet an erased
record, text with control characters, a number kept as another person's phone identity."""

import pytest
from django.urls import reverse
from django.utils import timezone

from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.errors import Conflict, ValidationFailed
from smileloop.customers.enums import IdentityKind
from smileloop.customers.models import Consent, Customer, HouseholdMember, Identity
from smileloop.customers.services import customer_register, customer_update, customer_upsert, identity_add
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
    # then it is a form error on the decision (it was a 500), and no consent was recorded
    assert response.status_code == 422
    assert response.context["consent_form"].errors == {"granted": ["This patient's personal information was erased"]}
    assert Consent.objects.count() == 0


def test_registering_someone_with_an_erased_relative_names_the_relative_and_writes_nothing(
        client, front_desk_a, clinic_a, zhang_san):
    # given a patient whose personal information was erased, still found by their customer number
    _erase(zhang_san)
    client.force_login(front_desk_a.user)
    # when a child without a phone is registered as having come with them
    response = client.post(reverse("customers:create"), {
        "name": "小明", "gender": "U", "home_clinic": clinic_a.id, "relative": str(zhang_san.id),
        "relation": "parent"})
    # then the "came with" field says why (it was an error on the empty mobile field), and nobody was created
    assert response.status_code == 422
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
    response = client.post(reverse("customers:create"), {"name": "\x07\x07", "gender": "U",
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
