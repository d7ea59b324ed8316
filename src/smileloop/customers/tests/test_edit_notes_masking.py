"""The edit form's notes (PIPL): a role that may edit a patient but may not see phones (member operations) sees the
mobiles in the notes masked, as on the 360 page, and saving the form never writes the masks over the numbers they
stand for (CustomerForm.clean_notes, `notes_unmasked`)."""

import pytest
from django.urls import reverse
from django.utils import translation
from hypothesis import given, settings
from hypothesis import strategies as st

from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.customers.forms import NOTES_MASK_AMBIGUOUS, NOTES_MASK_UNKNOWN
from smileloop.customers.models import Interaction
from smileloop.customers.normalize import notes_unmasked, phone_mask, phones_masked
from smileloop.customers.tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

NOTES = "妈妈 139-1111-2222；\n爸爸 +86 138 0013 8000，复诊 20230105"
SHOWN = "妈妈 139****2222；\n爸爸 138****8000，复诊 20230105"


@pytest.fixture
def patient(chain, clinic_a):
    return CustomerFactory(chain=chain, name="王小明", mobile="+8613700137000", home_clinic=clinic_a, notes=NOTES)


@pytest.fixture
def member_ops(chain):
    return StaffFactory(chain=chain, role=Role.MEMBER_OPS, name="会员运营小陈", user__username="member_ops")


def _post(client, staff, patient, notes, language="en"):
    client.force_login(staff.user)
    return client.post(reverse("customers:edit", args=[patient.id]), {
        "name": patient.name, "mobile": phone_mask(patient.mobile), "gender": patient.gender,
        "home_clinic": patient.home_clinic_id, "community": "静安花园", "notes": notes}, HTTP_ACCEPT_LANGUAGE=language)


def _refusal(message, mask) -> str:
    """The form's message for `mask`, as the Chinese page says it."""
    with translation.override("zh-hans"):
        return str(message) % {"mask": mask}


def _stored(patient) -> tuple[str, str]:
    patient.refresh_from_db()
    return patient.notes, patient.community


def test_member_operations_see_the_numbers_in_the_notes_masked_on_the_edit_form(client, patient, member_ops):
    # when
    client.force_login(member_ops.user)
    response = client.get(reverse("customers:edit", args=[patient.id]))

    # then the notes box holds the masked text, no number in full
    assert response.status_code == 200
    assert f">\n{SHOWN}</textarea>" in response.text
    assert "1111" not in response.text and "0013" not in response.text


def test_saving_the_masked_notes_unchanged_keeps_the_numbers(client, patient, member_ops):
    # when the form is saved as shown (with another change), the browser sending the lines back with CRLF
    response = _post(client, member_ops, patient, SHOWN.replace("\n", "\r\n"))

    # then the notes stay as stored
    assert response.status_code == 302
    assert _stored(patient) == (NOTES, "静安花园")


def test_text_added_before_and_after_the_masked_numbers_keeps_the_numbers(client, patient, member_ops):
    # when member operations add text around the masked numbers
    response = _post(client, member_ops, patient, f"金卡会员。{SHOWN}。周六上午方便")

    # then each mask is written back as the number it stood for, as it was written
    assert response.status_code == 302
    assert _stored(patient) == (f"金卡会员。{NOTES}。周六上午方便", "静安花园")


def test_a_masked_number_moved_or_deleted_is_saved_as_edited(client, patient, member_ops):
    # when one masked number is deleted and the other one moved
    response = _post(client, member_ops, patient, "爸爸 138****8000（常用）")

    # then the number kept is restored, and the deleted one is gone as the edit says
    assert response.status_code == 302
    assert _stored(patient) == ("爸爸 +86 138 0013 8000（常用）", "静安花园")


@pytest.mark.parametrize(("notes", "mask"), [
    ("妈妈 139****2223；爸爸 138****8000", "139****2223"),  # a digit of a mask changed
    ("妈妈 139****222；爸爸 138****8000", "139****222"),  # a digit of a mask deleted
    ("妈妈 ****2222；爸爸 138****8000", "****2222"),  # the head of a mask deleted
    ("妈妈 139***2222；爸爸 138****8000", "139***2222"),  # a '*' of a mask deleted (its number was lost)
    ("妈妈 139***12222；爸爸 138****8000", "139***12222"),  # a '*' typed over with a digit (the same)
    ("妈妈 139****2222；爸爸 138****8000；舅舅 135****1234", "135****1234"),  # a mask of no stored number
])
def test_a_mask_that_stands_for_no_stored_number_is_refused_and_nothing_is_written(client, patient, member_ops,
                                                                                    notes, mask):
    # when
    response = _post(client, member_ops, patient, notes, language="zh-hans")

    # then the form says which mask, in Chinese, and nothing is written
    assert response.status_code == 422
    assert len(response.context["form"].errors["notes"]) == 1
    assert _refusal(NOTES_MASK_UNKNOWN, mask) in response.text
    assert "备注中的掩码号码" in _refusal(NOTES_MASK_UNKNOWN, mask)
    assert "139-1111-2222" not in response.text and "0013 8000" not in response.text
    assert _stored(patient) == (NOTES, "")
    assert not Interaction.objects.filter(customer=patient).exists()


def test_two_numbers_masked_alike_are_restored_in_order_and_a_copy_of_one_is_refused(client, chain, clinic_a,
                                                                                      member_ops):
    # given two different numbers whose masks are the same (139 1111 2222 and 139 3333 2222)
    notes = "妈妈 13911112222；奶奶 13933332222"
    patient = CustomerFactory(chain=chain, name="王小红", mobile="+8613700137001", home_clinic=clinic_a, notes=notes)

    # when text is added, both masks kept: they are restored in their order
    response = _post(client, member_ops, patient, "妈妈 139****2222；奶奶 139****2222；已加微信")
    assert response.status_code == 302
    assert _stored(patient) == (f"{notes}；已加微信", "静安花园")

    # when one mask is deleted, which number it was cannot be told: refused, nothing written
    response = _post(client, member_ops, patient, "奶奶 139****2222", language="zh-hans")
    assert response.status_code == 422
    assert len(response.context["form"].errors["notes"]) == 1
    assert _refusal(NOTES_MASK_AMBIGUOUS, "139****2222") in response.text
    assert "掩码相同" in _refusal(NOTES_MASK_AMBIGUOUS, "139****2222")
    assert _stored(patient) == (f"{notes}；已加微信", "静安花园")


def test_a_mask_copied_of_a_number_stored_once_is_that_number(client, patient, member_ops):
    # when a masked number is copied into a second sentence
    response = _post(client, member_ops, patient, f"{SHOWN}。有事先打 139****2222")

    # then both stand for the one number it can be
    assert response.status_code == 302
    assert _stored(patient) == (f"{NOTES}。有事先打 139-1111-2222", "静安花园")


def test_a_mask_already_stored_as_text_stays_as_it_is(client, chain, clinic_a, member_ops):
    # given notes holding a masked number as text (copied from a masked page) beside a real one
    patient = CustomerFactory(chain=chain, name="王小刚", mobile="+8613700137002", home_clinic=clinic_a,
                              notes="旧号 136****6000；新号 13911112222")

    # when text is added
    response = _post(client, member_ops, patient, "旧号 136****6000；新号 139****2222；已核实")

    # then the stored mask stays a mask and the number is restored
    assert response.status_code == 302
    assert _stored(patient) == ("旧号 136****6000；新号 13911112222；已核实", "静安花园")


def test_a_short_product_of_numbers_typed_in_the_notes_is_no_mask(client, patient, member_ops):
    # when text with a '*' between numbers (a size, a count) is added: too short to be what is left of a mask
    response = _post(client, member_ops, patient, f"{SHOWN}。牙套 12*34*56")

    # then it is saved as typed, the numbers kept
    assert response.status_code == 302
    assert _stored(patient) == (f"{NOTES}。牙套 12*34*56", "静安花园")


def test_a_role_that_may_see_phones_sees_and_saves_the_notes_as_stored(client, patient, front_desk_a):
    # when the front desk opens the form
    client.force_login(front_desk_a.user)
    response = client.get(reverse("customers:edit", args=[patient.id]))

    # then the notes are shown in full
    assert f">\n{NOTES}</textarea>" in response.text

    # and what they save is stored as typed, a mask included (they typed it)
    response = _post(client, front_desk_a, patient, "妈妈 139****2222")
    assert response.status_code == 302
    assert _stored(patient) == ("妈妈 139****2222", "静安花园")


# Notes as staff and the import write them: words, and mobiles in the ways they are typed (some masked alike).
_words = st.text(alphabet="妈爸家长电话备注复诊，；：（） \n", min_size=1, max_size=6)
_mobiles = st.builds(lambda prefix, head, middle, sep: f"{prefix}{head}{sep}{middle}{sep}2222",
                     st.sampled_from(["", "+86 ", "0086"]), st.sampled_from(["139", "138"]),
                     st.sampled_from(["1111", "3333"]), st.sampled_from(["", " ", "-"]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_words, _mobiles), min_size=1, max_size=4), _words, _words)
def test_any_notes_shown_masked_and_saved_with_text_around_them_keep_every_number(pieces, before, after):
    # given stored notes and the masked text the form showed
    stored = "".join(words + mobile for words, mobile in pieces)
    shown = phones_masked(stored)
    assert "1111" not in shown and "3333" not in shown

    # when text is added before and after it (as the form strips it)
    saved = notes_unmasked(f"{before}。{shown}。{after}".strip(), stored)

    # then every number is back as it was written
    assert saved == f"{before}。{stored}。{after}".strip()


# --- the API: the same rule for a caller who read the notes masked ------------------------------------------------

def _api(client, staff, path, body=None, key="notes-1"):
    import json

    from smileloop.clinics.services import token_create

    headers = {"Authorization": f"Bearer {token_create(username=staff.user.username)}"}
    if body is None:
        return client.get(path, headers=headers)
    return client.post(path, data=json.dumps(body), content_type="application/json",
                       headers={**headers, "Idempotency-Key": key})


def test_an_api_upsert_of_the_notes_as_read_masked_keeps_the_numbers(client, patient, member_ops):
    # given member operations read the patient through the API: notes masked
    read = _api(client, member_ops, f"/api/customers/{patient.id}").json()
    assert read["notes"] == SHOWN

    # when it sends them back with a line added, by the patient's phone
    response = _api(client, member_ops, "/api/customers/upsert", {
        "name": patient.name, "mobile": "137 0013 7000", "notes": read["notes"] + "\n已约周五"})

    # then the numbers are stored as they were, the line added
    assert response.status_code == 200, response.content
    assert _stored(patient)[0] == NOTES + "\n已约周五"


def test_an_api_upsert_whose_mask_stands_for_no_stored_number_is_refused_and_writes_nothing(client, patient,
                                                                                           member_ops):
    response = _api(client, member_ops, "/api/customers/upsert", {
        "name": patient.name, "mobile": "137 0013 7000", "community": "新小区",
        "notes": SHOWN.replace("139****2222", "139****2223")})

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.notes"
    assert "139****2223" in response.json()["errors"][0]["message"]
    assert _stored(patient) == (NOTES, "")
