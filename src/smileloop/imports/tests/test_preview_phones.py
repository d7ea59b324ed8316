"""The import preview shows a relative's number the import keeps in the notes masked to an importer whose role may
not see phones (member operations), as it masks the phone column; in full to one that may (a clinic director)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.imports.models import ImportBatch

pytestmark = pytest.mark.django_db

CSV = "姓名,手机号,家长手机号\n张三,13800138000,\n王小明,,13911112222\n".encode()


@pytest.fixture(autouse=True)
def import_dir(settings, tmp_path):
    settings.SMILELOOP_IMPORT_DIR = tmp_path / "imports"


def _preview(client, staff, content: bytes = CSV) -> str:
    client.force_login(staff.user)
    response = client.post(reverse("imports:upload"), {"kind": "customers",
                                                       "file": SimpleUploadedFile("c.csv", content)})
    assert response.status_code == 302
    return client.get(response.url).content.decode()


def test_the_preview_masks_a_relatives_number_in_the_notes_only_for_an_importer_who_may_not_see_phones(
        client, chain, director_a):
    # given an importer of each kind
    member_ops = StaffFactory(chain=chain, role=Role.MEMBER_OPS, user__username="memberops")

    # when each previews the same file
    masked, full = _preview(client, member_ops), _preview(client, director_a)

    # then member operations see the number masked, the director in full; the phone column is masked for both
    assert "13911112222" not in masked and "<td>家长手机号：139****2222</td>" in masked
    assert "<td>家长手机号：13911112222</td>" in full
    assert "<td>张三</td><td>138****8000</td>" in masked and "<td>张三</td><td>138****8000</td>" in full
    # and the stored report keeps the file's value
    assert [b.report["preview"][1]["values"]["notes"] for b in ImportBatch.objects.all()] == ["家长手机号：13911112222"] * 2


def test_the_preview_masks_a_rejected_phone_that_is_nearly_a_mobile_for_an_importer_who_may_not_see_phones(
        client, chain, director_a):
    # given a file whose phone cell has a digit too many (its row refused)
    member_ops = StaffFactory(chain=chain, role=Role.MEMBER_OPS, user__username="memberops")
    content = "姓名,手机号\n李四,139123456789\n".encode()

    # when each previews it
    masked, full = _preview(client, member_ops, content), _preview(client, director_a, content)

    # then member operations see it masked in the errors, the director in full
    assert "139123456789" not in masked and "139*****6789" in masked
    assert "139123456789" in full
