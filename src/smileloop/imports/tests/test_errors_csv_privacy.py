"""The import's errors CSV is an export of patients' data (PIPL): every download writes an audit row (who, which
file, how many rows, when, why), and the mobiles in its values and problems are masked for an uploader whose role may
not see phones (member operations), as the preview page masks them; a role that may gets them in full."""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.core.models import AuditEvent
from smileloop.imports.models import ImportBatch

pytestmark = pytest.mark.django_db

# Three rows in error: a phone cell with a bad second number, a birthday in the future, a mobile with a letter.
CSV = ("姓名,手机号,生日\n张三,13800138000/12345,\n李四,13900139000,2999-01-01\n王五,1391111222x,\n").encode()


@pytest.fixture(autouse=True)
def import_dir(settings, tmp_path):
    settings.SMILELOOP_IMPORT_DIR = tmp_path / "imports"


@pytest.fixture
def member_ops(chain):
    return StaffFactory(chain=chain, role=Role.MEMBER_OPS, name="会员运营小陈", user__username="memberops")


def _uploaded(client, staff) -> ImportBatch:
    client.force_login(staff.user)
    response = client.post(reverse("imports:upload"), {"kind": "customers", "file": SimpleUploadedFile("患者.csv", CSV)})
    assert response.status_code == 302
    return ImportBatch.objects.get(uploaded_by=staff)


def _download(client, batch) -> list[list[str]]:
    response = client.post(reverse("imports:errors_csv", args=[batch.id]))
    assert response.status_code == 200
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))


def test_member_operations_get_the_errors_csv_with_the_mobiles_masked_and_the_download_audited(client, member_ops):
    # given a check of a file with three rows in error, uploaded by member operations
    batch = _uploaded(client, member_ops)

    # when they download its errors
    rows = _download(client, batch)

    # then the mobiles are masked, the one a digit short too (a typo of a mobile is a mobile all the same), the other
    # values as in the file
    assert [row[:3] for row in rows[1:]] == [["2", "手机号", "138****8000/12345"], ["3", "生日", "2999-01-01"],
                                            ["4", "手机号", "139***1222x"]]
    assert "13800138000" not in str(rows)
    # and the download is in the audit log: who, what (the file, its rows), when, why
    event = AuditEvent.objects.get(action="import.errors_export")
    assert (event.actor_id, event.object_type, event.object_id, event.detail) == (
        member_ops.user_id, "chain", str(member_ops.chain_id), {"file": "患者.csv", "rows": 3})
    assert event.reason == "Rejected rows of an import, downloaded to correct the file"
    assert event.created_at is not None


def test_a_role_that_may_see_phones_gets_the_errors_csv_in_full_and_the_download_is_audited(client, director_a):
    # given
    batch = _uploaded(client, director_a)

    # when
    rows = _download(client, batch)

    # then
    assert rows[1][:3] == ["2", "手机号", "13800138000/12345"]
    event = AuditEvent.objects.get(action="import.errors_export")
    assert (event.actor_id, event.detail["rows"]) == (director_a.user_id, 3)


def test_every_download_writes_its_own_audit_row(client, member_ops):
    # given
    batch = _uploaded(client, member_ops)

    # when the errors are downloaded twice
    _download(client, batch)
    _download(client, batch)

    # then
    assert AuditEvent.objects.filter(action="import.errors_export", actor=member_ops.user).count() == 2


def test_another_staff_members_batch_is_a_404_and_writes_no_audit_row(client, chain, member_ops, director_a):
    # given a batch of the director's
    batch = _uploaded(client, director_a)

    # when member operations ask for its errors
    client.force_login(member_ops.user)
    response = client.post(reverse("imports:errors_csv", args=[batch.id]))

    # then nothing is exported nor audited
    assert response.status_code == 404
    assert not AuditEvent.objects.filter(action="import.errors_export").exists()


def test_the_errors_csv_is_a_post_and_a_get_writes_nothing(client, member_ops):
    # given
    batch = _uploaded(client, member_ops)

    # when the download is asked for by a GET (a link, an image another site embeds)
    response = client.get(reverse("imports:errors_csv", args=[batch.id]))

    # then it is refused, and nothing is audited
    assert response.status_code == 405
    assert not AuditEvent.objects.filter(action="import.errors_export").exists()


def test_the_audit_row_counts_the_csvs_error_rows_a_row_of_several_errors_and_a_cell_of_two_lines_included(
        client, director_a):
    # given a file of 210 errors: 207 rows of one, one row of three, one of them a cell of two lines (a CSV of 212
    # lines with its header, or 213 counted as lines of text)
    lines = ["姓名,手机号,生日,性别"] + [f"患者{i},,2999-01-0{1 + i % 9}," for i in range(207)]
    lines.append('张三,12345,2999-02-01,"男\n女"')
    client.force_login(director_a.user)
    response = client.post(reverse("imports:upload"), {"kind": "customers",
                                                       "file": SimpleUploadedFile("多错.csv", "\n".join(lines).encode())})
    batch = ImportBatch.objects.get(pk=response.url.rstrip("/").split("/")[-1])
    assert batch.report["error_count"] == 210

    # when the errors are downloaded
    rows = _download(client, batch)

    # then the CSV holds 210 error rows after its header, and the audit row says 210
    assert rows[0] == ["Row", "Column", "Value", "Problem"] and len(rows) - 1 == 210
    assert ["209", "性别", "男\n女"] in [row[:3] for row in rows]
    assert AuditEvent.objects.get(action="import.errors_export").detail == {"file": "多错.csv", "rows": 210}
