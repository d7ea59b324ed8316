"""External identities (WeChat openid / unionid, WeCom external_userid, Douyin id) are personal information (PIPL):
masked for every role on the 360 page and in the API, revealed only as phones are (the permission, a reason, an audit
row). A PMS / POS patient id stays visible: it is the chain's own chart number staff look the record up by."""

import pytest
from django.urls import reverse
from django.utils import translation

from smileloop.clinics.enums import Role
from smileloop.clinics.services import token_create
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.core.models import AuditEvent
from smileloop.customers.normalize import identity_mask
from smileloop.customers.tests.factories import CustomerFactory, IdentityFactory

pytestmark = pytest.mark.django_db

OPENID = "oAbCdEfGhIjKlMnOpQrStUvWxYz01"
UNIONID = "uZyXwVuTsRqPoNmLkJiHgFeDcBa98"
WECOM = "wmQ1w2E3r4T5y6U7i8O9p0"


@pytest.fixture
def patient(chain, clinic_a):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a, name="张三", mobile="+8613800138000")
    IdentityFactory(customer=customer, chain=chain, kind="wechat_openid", external_id=OPENID)
    IdentityFactory(customer=customer, chain=chain, kind="wechat_unionid", external_id=UNIONID)
    IdentityFactory(customer=customer, chain=chain, kind="wecom_external_userid", external_id=WECOM)
    IdentityFactory(customer=customer, chain=chain, kind="douyin_openid", external_id="dy42")
    IdentityFactory(customer=customer, chain=chain, kind="pms", external_id="P-100234")
    return customer


def _shown(html: str) -> list[str]:
    return [part.split("</span>", 1)[0] for part in html.split('data-testid="identity">')[1:]]


@pytest.mark.parametrize("value, masked", [
    (OPENID, "oAbC****Yz01"),  # long: 4 + 4 shown
    ("wm12345678", "w****78"),  # a third shown at most
    ("abcdef", "a****f"),
    ("dy42", "****2"),
    ("ab", "****"),
    ("", ""),
])
def test_an_identity_is_masked_to_a_third_at_most_with_a_middle_that_tells_no_length(value, masked):
    assert identity_mask("wechat_openid", value) == masked


def test_a_pms_id_is_shown_and_a_phone_identity_is_masked_as_the_phone():
    assert identity_mask("pms", "P-100234") == "P-100234"
    assert identity_mask("phone", "+8613912345678") == "139****5678"


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.DOCTOR, Role.CLINIC_DIRECTOR, Role.MEMBER_OPS,
                                  Role.CHAIN_ADMIN])
def test_the_360_page_masks_every_identity_but_the_pms_id_for_every_role(client, chain, clinic_a, patient, role):
    # given
    staff = StaffFactory(chain=chain, role=role, clinics=[clinic_a])
    client.force_login(staff.user)
    # when
    html = client.get(reverse("customers:detail", args=[patient.id])).text
    # then
    for value in (OPENID, UNIONID, WECOM, "dy42"):
        assert value not in html
    assert sorted(_shown(html)) == sorted(["oAbC****Yz01", "uZyX****Ba98", "wmQ****O9p0", "****2", "P-100234"])
    assert not AuditEvent.objects.exists()


def test_a_role_that_may_reveal_phones_reveals_the_identities_with_a_reason_and_an_audit_row(
        client, front_desk_a, patient):
    # given
    client.force_login(front_desk_a.user)
    page = client.get(reverse("customers:detail", args=[patient.id])).text
    assert reverse("customers:identities_reveal", args=[patient.id]) in page
    # when
    response = client.post(reverse("customers:identities_reveal", args=[patient.id]), {"reason": "核对企微好友"},
                           headers={"HX-Request": "true"})
    # then the card alone, in full, and one audit row naming who, whose, why and how many of each kind
    assert response.status_code == 200 and "<html" not in response.text
    assert sorted(_shown(response.text)) == sorted([OPENID, UNIONID, WECOM, "dy42", "P-100234"])
    assert "13800138000" not in response.text
    event = AuditEvent.objects.get()
    assert (event.action, event.object_id, event.reason, event.actor_id, event.clinic_id) == (
        "identity.reveal", str(patient.id), "核对企微好友", front_desk_a.user_id, patient.home_clinic_id)
    # (the PMS id was shown all along: it is not counted as revealed)
    assert event.detail == {"identities": 4, "kinds": {"douyin_openid": 1, "wechat_openid": 1,
                                                       "wechat_unionid": 1, "wecom_external_userid": 1}}
    assert OPENID not in str(event.detail)


def test_the_audit_log_names_an_identity_reveals_kinds_in_the_readers_language(client, front_desk_a, patient):
    from smileloop.clinics.audit_views import _detail_text
    from smileloop.core.audit import audit_record

    audit_record(actor=front_desk_a.user, action="identity.reveal", object_type="customer", object_id=patient.id,
                 reason="核对", detail={"identities": 2, "kinds": {"wechat_openid": 1, "wecom_external_userid": 1}})
    event = AuditEvent.objects.get()
    with translation.override("zh-hans"):
        text = _detail_text(event.detail)
    assert "wechat_openid" not in text and "kinds" not in text and "identities" not in text, text
    with translation.override("en"):
        english = _detail_text(event.detail)
    # (PostgreSQL's jsonb keeps the detail's keys in its own order)
    assert sorted(english.split("; ")) == ["By kind: WeChat openid=1, WeCom external_userid=1", "Identities: 2"], english


def test_an_identity_reveal_without_a_reason_is_refused_and_not_audited(client, front_desk_a, patient):
    client.force_login(front_desk_a.user)
    response = client.post(reverse("customers:identities_reveal", args=[patient.id]), {"reason": "  "},
                           headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert OPENID not in response.text and 'aria-invalid="true"' in response.text
    assert not AuditEvent.objects.exists()


def test_a_role_that_may_not_reveal_phones_gets_no_reveal_and_a_403(client, chain, clinic_a, patient):
    doctor = StaffFactory(chain=chain, role=Role.DOCTOR, clinics=[clinic_a])
    client.force_login(doctor.user)
    page = client.get(reverse("customers:detail", args=[patient.id])).text
    response = client.post(reverse("customers:identities_reveal", args=[patient.id]), {"reason": "curious"})
    assert "identities/reveal" not in page
    assert response.status_code == 403 and OPENID not in response.text
    assert not AuditEvent.objects.exists()


def test_an_identity_reveal_of_a_patient_outside_the_scope_is_a_404(client, chain, clinic_b, front_desk_a):
    other = CustomerFactory(chain=chain, home_clinic=clinic_b)
    IdentityFactory(customer=other, chain=chain, kind="wechat_openid", external_id=OPENID)
    client.force_login(front_desk_a.user)
    response = client.post(reverse("customers:identities_reveal", args=[other.id]), {"reason": "call"})
    assert response.status_code == 404
    assert not AuditEvent.objects.exists()


def test_only_phone_and_pms_identities_offer_no_identity_reveal(client, chain, clinic_a, front_desk_a):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a, mobile="+8613800138000")
    IdentityFactory(customer=customer, chain=chain, kind="pms", external_id="P-1")
    client.force_login(front_desk_a.user)
    page = client.get(reverse("customers:detail", args=[customer.id])).text
    assert "identities/reveal" not in page and "P-1" in page


# --- the API: as the page --------------------------------------------------------------------------------------


def _api_get(client, customer_id: int, token: str, **params):
    return client.get(f"/api/customers/{customer_id}", params, headers={"Authorization": f"Bearer {token}"})


def _identities(body: dict) -> dict:
    return {i["kind"]: i["external_id"] for i in body["identities"]}


def test_the_api_masks_identities_for_a_token_of_a_role_without_the_reveal_and_refuses_its_reveal(
        client, chain, clinic_a, patient):
    # given a doctor's token (customer.view, no customer.phone_view)
    doctor = StaffFactory(chain=chain, role=Role.DOCTOR, clinics=[clinic_a])
    token = token_create(username=doctor.user.username)
    # when
    body = _api_get(client, patient.id, token).json()
    refused = _api_get(client, patient.id, token, reveal_identities="true", reason="curious")
    # then
    assert _identities(body) == {"wechat_openid": "oAbC****Yz01", "wechat_unionid": "uZyX****Ba98",
                                 "wecom_external_userid": "wmQ****O9p0", "douyin_openid": "****2",
                                 "pms": "P-100234"}
    assert refused.status_code == 403 and OPENID not in refused.text
    assert not AuditEvent.objects.exclude(action="api_token.create").exists()


def test_the_api_reveals_identities_to_a_role_that_may_reveal_phones_with_a_reason_and_an_audit_row(
        client, front_desk_a, patient):
    token = token_create(username=front_desk_a.user.username)
    masked = _api_get(client, patient.id, token).json()
    without_reason = _api_get(client, patient.id, token, reveal_identities="true")
    revealed = _api_get(client, patient.id, token, reveal_identities="true", reason="企微核对").json()
    assert _identities(masked)["wechat_openid"] == "oAbC****Yz01"
    assert without_reason.status_code == 422 and OPENID not in without_reason.text
    assert _identities(revealed) == {"wechat_openid": OPENID, "wechat_unionid": UNIONID,
                                     "wecom_external_userid": WECOM, "douyin_openid": "dy42", "pms": "P-100234"}
    assert revealed["mobile"] == "138****8000" and not revealed["mobile_revealed"]  # the phone is its own reveal
    event = AuditEvent.objects.get(action="identity.reveal")
    assert (event.reason, event.object_id) == ("企微核对", str(patient.id))


def test_the_api_upsert_and_identity_answers_mask_an_identity_too(client, chain, clinic_a, front_desk_a):
    # given a person known by their openid
    token = token_create(username=front_desk_a.user.username)
    headers = {"Authorization": f"Bearer {token}"}
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王五", mobile="+8613912345678")
    IdentityFactory(customer=customer, chain=chain, kind="wechat_openid", external_id=OPENID)
    # when a caller who knows only the phone upserts, and attaches a unionid
    upsert = client.post("/api/customers/upsert", {"name": "王五", "mobile": "13912345678"},
                         content_type="application/json", headers={**headers, "Idempotency-Key": "u1"})
    added = client.post(f"/api/customers/{customer.id}/identities",
                        {"kind": "wechat_unionid", "external_id": UNIONID}, content_type="application/json",
                        headers={**headers, "Idempotency-Key": "i1"})
    # then the openid is not handed to whoever knows the phone
    assert upsert.status_code == 200, upsert.content
    assert OPENID not in upsert.text and _identities(upsert.json()["customer"])["wechat_openid"] == "oAbC****Yz01"
    assert added.status_code == 201 and added.json()["external_id"] == "uZyX****Ba98"
