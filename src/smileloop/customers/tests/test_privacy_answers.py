"""Erasure and the stored API answers that the person's customer object does not give away: refusals (409, 422) that
quote their phone, identity or name, and answers holding only an identity (customers.privacy._stored_values_scrub)."""

import json

import pytest

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.services import token_create
from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory, StaffFactory
from smileloop.core.models import AuditEvent, IdempotencyRecord
from smileloop.customers.enums import Relation
from smileloop.customers.privacy import customer_erase
from smileloop.customers.services import household_relative_add
from smileloop.customers.tests.factories import CustomerFactory, IdentityFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient(chain, clinic_a):
    person = CustomerFactory(chain=chain, home_clinic=clinic_a, name="张三丰", mobile="+8613800138000")
    IdentityFactory(customer=person, kind="wechat_openid", external_id="oWX-zhangsanfeng")
    return person


@pytest.fixture
def api(client, director_a):
    token = token_create(username=director_a.user.username)

    def post(path, body, key):
        return client.post(path, data=json.dumps(body), content_type="application/json",
                           headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})

    return post


def _erase(director_a, patient):
    customer_erase(scope=scope_for_staff(director_a), customer=patient, actor=director_a, reason="本人书面申请")


def _stored(key: str) -> str:
    record = IdempotencyRecord.objects.get(key=key)
    return record.response if isinstance(record.response, str) else json.dumps(record.response, ensure_ascii=False)


def test_a_stored_refusal_quoting_the_erased_persons_phone_loses_it(api, patient, chain, clinic_a, director_a):
    # given a refused identity_add (409, stored for replay) that quotes the patient's phone
    other = CustomerFactory(chain=chain, home_clinic=clinic_a, name="李四", mobile="+8613900139000")
    refused = api(f"/api/customers/{other.pk}/identities", {"kind": "phone", "external_id": "13800138000"}, "id-1")
    assert refused.status_code == 409 and "8613800138000" in refused.content.decode()
    # when
    _erase(director_a, patient)
    # then the replay is the same refusal without the number
    replay = api(f"/api/customers/{other.pk}/identities", {"kind": "phone", "external_id": "13800138000"}, "id-1")
    assert replay["Idempotent-Replayed"] == "true" and replay.status_code == 409
    assert "13800138000" not in replay.content.decode() and "13800138000" not in _stored("id-1")
    assert replay.json()["code"] == refused.json()["code"]
    assert AuditEvent.objects.get(action="customer.erase").detail["api_answers"] == 1


def test_an_answer_holding_only_the_erased_persons_identity_loses_it(api, patient, director_a):
    # given identity_add's answer {"kind", "external_id", "app_id"}: no customer object, no name
    added = api(f"/api/customers/{patient.pk}/identities", {"kind": "douyin_openid", "external_id": "dy-zsf-8899"},
                "id-2")
    assert added.status_code == 201
    # when
    _erase(director_a, patient)
    # then
    assert "dy-zsf-8899" not in _stored("id-2")
    assert json.loads(_stored("id-2"))["kind"] == "douyin_openid"


def _refused_family_add(api, chain, clinic_a, patient, key):
    """A 409 naming the patient: both already head a household of their own."""
    child = CustomerFactory(chain=chain, home_clinic=clinic_a, name="张小宝", mobile=None)
    household_relative_add(customer=patient, relative=child, relation=Relation.CHILD)
    other = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王五", mobile="+8613700137000")
    other_child = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王小宝", mobile=None)
    household_relative_add(customer=other, relative=other_child, relation=Relation.CHILD)
    refused = api(f"/api/customers/{other.pk}/family", {"relative_id": patient.pk, "relation": "spouse"}, key)
    assert refused.status_code == 409 and "张三丰" in refused.json()["message"]
    return refused


def test_a_stored_refusal_naming_the_erased_person_loses_the_name_when_no_one_else_bears_it(api, patient, chain,
                                                                                           clinic_a, director_a):
    # given
    refused = _refused_family_add(api, chain, clinic_a, patient, "fam-1")
    # when
    _erase(director_a, patient)
    # then
    text = _stored("fam-1")
    assert "张三丰" not in text and f"已注销客户 #{patient.pk}" in text
    assert json.loads(text)["code"] == refused.json()["code"]


def test_a_refusal_naming_a_name_another_live_patient_bears_is_left_as_it_is(api, patient, chain, clinic_a,
                                                                            director_a):
    # given a refusal naming 张三丰, and another 张三丰 in the chain: the refusal may be about either
    _refused_family_add(api, chain, clinic_a, patient, "fam-2")
    CustomerFactory(chain=chain, home_clinic=clinic_a, name="张三丰", mobile="+8615800158000")
    before = _stored("fam-2")
    # when
    _erase(director_a, patient)
    # then (the documented limit: kept until the key's 7 days are over)
    assert _stored("fam-2") == before


def test_another_chains_stored_answers_are_not_searched(client, patient, director_a):
    # given another chain, whose own patient has the same number, and a refusal quoting it stored for its staff
    other_chain = ChainFactory(name="别家连锁")
    clinic = ClinicFactory(chain=other_chain, code="BJ01", name="朝阳门诊")
    stranger = StaffFactory(chain=other_chain, role=Role.CHAIN_ADMIN, clinics=[], user__username="other_admin")
    CustomerFactory(chain=other_chain, home_clinic=clinic, name="赵七", mobile="+8613800138000")
    someone = CustomerFactory(chain=other_chain, home_clinic=clinic, name="钱八", mobile="+8613600136000")
    token = token_create(username=stranger.user.username)
    refused = client.post(f"/api/customers/{someone.pk}/identities",
                          data=json.dumps({"kind": "phone", "external_id": "13800138000"}),
                          content_type="application/json",
                          headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "other-1"})
    assert refused.status_code == 409
    before = _stored("other-1")
    # when
    _erase(director_a, patient)
    # then
    assert _stored("other-1") == before and "8613800138000" in before
