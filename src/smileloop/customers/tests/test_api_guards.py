"""What the customer API refuses or hides, found by driving it like an integration that sends mistakes: phone
numbers in identities (masked like the mobile, and matched to the person whose mobile they are), messages that
would name another clinic's patient, a consultant of another clinic, fields that cannot be cleared or are too long."""

import pytest

from smileloop.clinics.enums import Role
from smileloop.clinics.services import token_create
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.core.models import AuditEvent
from smileloop.customers.models import Customer, Identity
from smileloop.customers.tests.factories import CustomerFactory, IdentityFactory
from smileloop.customers.tests.test_api import UPSERT, get, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def token_a(front_desk_a):
    return token_create(username=front_desk_a.user.username)


def test_a_phone_identity_is_masked_like_the_mobile_unless_revealed(client, chain, clinic_a, token_a):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a, mobile="+8613800138000")
    IdentityFactory(customer=customer, chain=chain, kind="phone", external_id="+8613912345678")
    IdentityFactory(customer=customer, chain=chain, kind="wechat_openid", external_id="o-abc")
    shown = get(client, f"/api/customers/{customer.id}", token=token_a).json()["identities"]
    assert sorted((i["kind"], i["external_id"]) for i in shown) == [("phone", "139****5678"),
                                                                     ("wechat_openid", "****c")]
    assert not AuditEvent.objects.exclude(action="api_token.create").exists()
    revealed = get(client, f"/api/customers/{customer.id}", token=token_a, reveal_phone="true", reason="回访")
    assert ("phone", "+8613912345678") in [(i["kind"], i["external_id"]) for i in revealed.json()["identities"]]
    assert AuditEvent.objects.filter(action="phone.reveal").count() == 1


def test_an_upsert_by_a_phone_identity_finds_the_person_whose_mobile_it_is(client, chain, clinic_a, token_a):
    existing = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王五", mobile="+8613912345678")
    response = post(client, UPSERT, {"name": "王五", "identities": [{"kind": "phone", "external_id": "139 1234 5678"}]},
                    token=token_a)
    assert response.status_code == 200, response.content
    assert response.json()["customer"]["id"] == existing.id
    assert Customer.objects.count() == 1


def test_adding_another_persons_mobile_as_a_phone_identity_is_a_conflict(client, chain, clinic_a, clinic_b,
                                                                          token_a):
    mine = CustomerFactory(chain=chain, home_clinic=clinic_a)
    CustomerFactory(chain=chain, home_clinic=clinic_b, mobile="+8613846153166")
    response = post(client, f"/api/customers/{mine.id}/identities", {"kind": "phone", "external_id": "13846153166"},
                    token=token_a)
    assert (response.status_code, response.json()["code"]) == (409, "identity_conflict")
    assert not Identity.objects.filter(customer=mine).exists()


def test_a_single_identity_error_names_the_requests_own_field(client, chain, clinic_a, token_a):
    mine = CustomerFactory(chain=chain, home_clinic=clinic_a)
    response = post(client, f"/api/customers/{mine.id}/identities", {"kind": "phone", "external_id": "abc"},
                    token=token_a)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.external_id"]


def test_a_conflict_between_two_people_names_neither_record(client, chain, clinic_a, clinic_b, token_a):
    CustomerFactory(chain=chain, home_clinic=clinic_a, mobile="+8613912345678")
    other = CustomerFactory(chain=chain, home_clinic=clinic_b)
    IdentityFactory(customer=other, chain=chain, kind="wechat_openid", external_id="o-other")
    response = post(client, UPSERT, {"name": "x", "mobile": "13912345678",
                                     "identities": [{"kind": "wechat_openid", "external_id": "o-other"}]},
                    token=token_a)
    assert response.status_code == 409
    assert "#" not in response.json()["message"] and str(other.id) not in response.text


def test_front_desk_may_not_name_a_consultant_of_another_clinic(client, chain, clinic_a, clinic_b, token_a):
    StaffFactory(chain=chain, role=Role.CONSULTANT, clinics=[clinic_b], user__username="consultant_b")
    StaffFactory(chain=chain, role=Role.CONSULTANT, clinics=[clinic_a], user__username="consultant_a")
    refused = post(client, UPSERT, {"name": "新人", "mobile": "13912340000", "consultant": "consultant_b"},
                   token=token_a, key="k1")
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["field"] == "body.consultant"
    assert not Customer.objects.exists()
    allowed = post(client, UPSERT, {"name": "新人", "mobile": "13912340000", "consultant": "consultant_a"},
                   token=token_a, key="k2")
    assert allowed.status_code == 201


def test_front_desk_may_not_clear_a_home_clinic_but_a_chain_admin_may(client, chain, clinic_a, token_a,
                                                                      chain_admin):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a, mobile="+8613912345678")
    refused = post(client, UPSERT, {"name": customer.name, "mobile": "13912345678", "home_clinic": None},
                   token=token_a, key="k1")
    assert (refused.status_code, refused.json()["errors"][0]["field"]) == (403, "body.home_clinic")
    cleared = post(client, UPSERT, {"name": customer.name, "mobile": "13912345678", "home_clinic": None},
                   token=token_create(username=chain_admin.user.username), key="k2")
    assert cleared.status_code == 200
    customer.refresh_from_db()
    assert customer.home_clinic_id is None


def test_a_campaign_longer_than_its_column_is_422_not_cut(client, clinic_a, token_a):
    response = post(client, UPSERT, {"name": "张三", "mobile": "13800138000", "campaign": "c" * 101}, token=token_a)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.campaign"]
    assert not Customer.objects.exists()


def test_numbers_in_the_notes_are_masked_for_a_role_that_may_not_see_phones(client, chain, clinic_a, token_a,
                                                                            marketing):
    """As on the 360 page: a relative's number typed into the notes is a phone number, shown in full to a role that
    may see phones (the front desk) and masked to one that may not (marketing); the notes stored are unchanged."""
    notes = "妈妈 13911112222，订单 20230105"
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a, notes=notes)
    masked = get(client, f"/api/customers/{customer.id}", token=token_create(username=marketing.user.username))
    assert masked.json()["notes"] == "妈妈 139****2222，订单 20230105"
    assert get(client, f"/api/customers/{customer.id}", token=token_a).json()["notes"] == notes
    customer.refresh_from_db()
    assert customer.notes == notes
