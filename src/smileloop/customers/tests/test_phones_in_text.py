"""Numbers in free text (PIPL): a relative's mobile the import kept in the notes, or one staff typed into a note, is
masked on the 360 page like the phone fields for a role that may not see phones, and shown to one that may; the
stored text is never rewritten."""

import pytest
from django.urls import reverse

from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.customers.enums import InteractionKind
from smileloop.customers.models import Customer, Interaction
from smileloop.customers.normalize import phone_likes_masked, phones_masked
from smileloop.customers.services import interaction_add
from smileloop.imports.services import customers_import
from smileloop.imports.tests.files import csv_write

pytestmark = pytest.mark.django_db

NOTE = "妈妈说改打 139-1111-2222，订单 20230105，金额 1380.00 元"


@pytest.fixture
def doctor_a(chain, clinic_a):
    return StaffFactory(chain=chain, role=Role.DOCTOR, name="李医生", clinics=[clinic_a], user__username="doctor_a")


@pytest.fixture
def child(tmp_path, chain, clinic_a, director_a):
    """A child imported by the director with only a parent's number (家长手机号), which the import keeps in the
    notes; and a note a staff member typed with the number again."""
    path = csv_write(tmp_path / "c.csv", [["姓名", "手机号", "家长手机号"], ["王小明", "", "13911112222"]])
    customers_import(path=path, chain=chain, actor=director_a, default_clinic=clinic_a)
    child = Customer.objects.get(name="王小明")
    interaction_add(customer=child, kind=InteractionKind.NOTE, text=NOTE, author=director_a, clinic=clinic_a)
    return child


def _page(client, staff, customer) -> str:
    client.force_login(staff.user)
    response = client.get(reverse("customers:detail", args=[customer.id]))
    assert response.status_code == 200
    return response.content.decode()


def test_a_doctor_sees_the_parents_number_masked_and_the_stored_texts_stay_as_written(client, child, doctor_a):
    # when
    page = _page(client, doctor_a, child)

    # then the notes and the timeline show the number masked, the date and the amount as written
    assert "13911112222" not in page and "139-1111-2222" not in page
    assert '<dd data-testid="profile-notes">家长手机号：139****2222</dd>' in page
    assert "妈妈说改打 139****2222，订单 20230105，金额 1380.00 元" in page
    # and what is stored is not rewritten
    child.refresh_from_db()
    assert child.notes == "家长手机号：13911112222"
    assert Interaction.objects.get(customer=child, kind=InteractionKind.NOTE).text == NOTE


def test_the_number_is_shown_in_full_only_to_the_roles_that_may_see_phones(client, chain, clinic_a, child):
    # given a reader of each clinic role
    shown = {}
    for role in (Role.FRONT_DESK, Role.CONSULTANT, Role.CLINIC_DIRECTOR, Role.DOCTOR, Role.ASSISTANT):
        staff = StaffFactory(chain=chain, role=role, clinics=[clinic_a], user__username=f"reader_{role}")

        # when
        page = _page(client, staff, child)

        # then
        shown[role] = ("13911112222" in page and NOTE in page, "139****2222" in page)
    assert shown == {Role.FRONT_DESK: (True, False), Role.CONSULTANT: (True, False),
                     Role.CLINIC_DIRECTOR: (True, False), Role.DOCTOR: (False, True), Role.ASSISTANT: (False, True)}


@pytest.mark.parametrize(("text", "shown"), [
    ("13911112222", "139****2222"),
    ("13800138000(妈妈)", "138****8000(妈妈)"),
    ("爸爸 138 0013 8000；奶奶 +86 139-1111-2222", "爸爸 138****8000；奶奶 139****2222"),
    ("0086 13911112222 / 8613911112222", "139****2222 / 139****2222"),
    ("１３９１１１１２２２２", "139****2222"),  # typed with a Chinese keyboard's full-width digits
    ("139\u200b1111\u200b2222", "139****2222"),  # pasted from a chat with zero-width spaces
])
def test_a_mobile_in_a_text_is_masked_as_the_phone_fields_are(text, shown):
    assert phones_masked(text) == shown


@pytest.mark.parametrize("other", [
    "复诊 20230105",  # a date
    "订单号 12345678",  # an order number of 8 digits
    "实收 13800.50 元，欠 1,380,013.80",  # amounts
    "身份证 110101199003071234",  # an ID number holds no mobile to mask
    "单号 201912311391111222233",  # nor does a long order number
    "12911112222",  # 12x is no mobile range
    "座机 021-62881234",  # a landline: not a mobile
])
def test_numbers_that_are_not_mobiles_are_left_beside_a_masked_one(other):
    assert phones_masked(f"{other}；家长 13911112222") == f"{other}；家长 139****2222"


@pytest.mark.parametrize(("cell", "shown"), [
    ("139123456789", "139*****6789"),  # a digit too many
    ("1391234567", "139***4567"),  # a digit too few
    ("139 1234 56789", "139*****6789"),  # with the separators a mobile may have
    ("12911112222", "129****2222"),  # 12x: no mobile range, but 11 digits from a 1 all the same
    ("13911112222 / 8613911112222", "139****2222 / 139****2222"),  # mobiles as phones_masked masks them
])
def test_an_import_cell_that_is_nearly_a_mobile_is_masked_as_one(cell, shown):
    assert phone_likes_masked(cell) == shown


@pytest.mark.parametrize("other", [
    "1990-01-05", "19900105", "2980.00", "110101199003071234", "021-62881234", "订单号 12345678", "201912311391111222233",
])
def test_an_import_cell_that_is_no_mobile_is_shown_as_it_is(other):
    assert phone_likes_masked(other) == other
