"""The import preview shows a relative's number the import keeps in the notes masked to an importer whose role may
not see phones (member operations), as it masks the phone column; in full to one that may (a clinic director), as the
360 page shows notes. The file's rejected cells (errors, warnings) are masked for every role, as the phone column and
the 360 page's phone are: a role that may see phones gets them in full by the errors CSV, an audited export (PIPL:
every access to unmasked data is audited). Before, a director saw them in full on the page, and nothing was
recorded."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.core.models import AuditEvent
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


def test_the_preview_masks_a_rejected_phone_that_is_nearly_a_mobile_for_every_importer(client, chain, director_a):
    # given a file whose phone cell has a digit too many (its row refused)
    member_ops = StaffFactory(chain=chain, role=Role.MEMBER_OPS, user__username="memberops")
    content = "姓名,手机号\n李四,139123456789\n".encode()

    # when each previews it
    masked, director = _preview(client, member_ops, content), _preview(client, director_a, content)

    # then both see it masked in the errors, as the phone column
    assert "139123456789" not in masked and "139*****6789" in masked
    assert "139123456789" not in director and "139*****6789" in director


def test_a_role_that_may_see_phones_sees_the_rejected_phones_masked_and_gets_them_in_full_by_an_audited_download(
        client, chain, director_a):
    # given a file with a rejected phone cell (a digit short)
    content = "姓名,手机号\n李四,1391234567\n".encode()

    # when a clinic director, whose role may see phones, previews it
    page = _preview(client, director_a, content)

    # then the rejected cell is masked on the page, as the phone column and the 360 page's phone are, and viewing it
    # writes no audit row
    assert "1391234567" not in page and "139***4567" in page
    assert not AuditEvent.objects.exists()
    # and the page offers the download of the errors (few as they are), saying it shows them in full and is audited
    batch = ImportBatch.objects.get()
    assert 'id="phones-masked"' in page and reverse("imports:errors_csv", args=[batch.id]) in page
    response = client.post(reverse("imports:errors_csv", args=[batch.id]))
    assert "1391234567" in b"".join(response.streaming_content).decode("utf-8-sig")
    assert AuditEvent.objects.get().action == "import.errors_export"


def test_a_role_that_may_not_see_phones_is_offered_no_download_of_a_few_errors(client, chain):
    # given member operations, whose download would be masked like the page
    member_ops = StaffFactory(chain=chain, role=Role.MEMBER_OPS, user__username="memberops")

    # when they preview a file of one error
    page = _preview(client, member_ops, "姓名,手机号\n李四,1391234567\n".encode())

    # then the page lists it, and offers no download and no note of full numbers
    assert "139***4567" in page and 'id="phones-masked"' not in page and "errors-csv" not in page
