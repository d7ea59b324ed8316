"""A person's erasure reaches the import batches: their rows leave the stored reports, and a waiting file that holds
their number is withdrawn (imports.services.erasure)."""

import datetime as dt
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.models import AuditEvent
from smileloop.customers.privacy import customer_erase
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.imports.enums import BatchStatus
from smileloop.imports.models import ImportBatch
from smileloop.imports.services.batches import batch_confirm, batch_path, batch_upload
from smileloop.imports.tests.files import xlsx_write

pytestmark = pytest.mark.django_db

ROWS = [
    ["姓名", "手机号", "生日"],
    ["张三丰", "13800138000", "1980-05-06"],  # the patient: merged into them
    ["李四", "13900139000", ""],
    ["张小宝", "13800138000(爸爸)", ""],  # the patient's number as a relative's, kept in the child's notes
    ["孙八", "13800138000/1234", ""],  # an error quoting the patient's number
]


@pytest.fixture(autouse=True)
def import_dir(settings, tmp_path):
    settings.SMILELOOP_IMPORT_DIR = tmp_path / "imports"


@pytest.fixture
def patient(chain, clinic_a):
    return CustomerFactory(chain=chain, home_clinic=clinic_a, name="张三丰", mobile="+8613800138000",
                           birthday=dt.date(1980, 5, 6))


def _csv(rows) -> bytes:
    return "\n".join(",".join(cell for cell in row) for row in rows).encode()


def _upload(director, content: bytes, name="患者.csv"):
    return batch_upload(staff=director, kind="customers", upload=SimpleUploadedFile(name, content))


def _erase(director, patient, capture):
    with capture(execute=True):
        customer_erase(scope=scope_for_staff(director), customer=patient, actor=director, reason="本人书面申请")


def test_the_erased_persons_rows_leave_a_waiting_batchs_report_and_its_file_is_withdrawn(
        patient, director_a, django_capture_on_commit_callbacks):
    # given a checked file waiting for confirmation, and another one that does not hold the patient
    batch = _upload(director_a, _csv(ROWS))
    other = _upload(director_a, _csv([ROWS[0], ["李四", "13900139000", ""]]), name="别的.csv")
    before = batch.report
    assert [e["outcome"] for e in before["preview"]] == ["merge", "create", "create", "invalid"]
    assert "13800138000" in json.dumps(before, ensure_ascii=False)
    # when
    _erase(director_a, patient, django_capture_on_commit_callbacks)
    # then the patient's row is an empty "erased" row, the others keep their values, less the patient's number
    batch.refresh_from_db()
    report = batch.report
    assert report["preview"][0] == {"row": 2, "values": {}, "outcome": "erased"}
    assert report["preview"][1] == before["preview"][1]
    assert "13800138000" not in json.dumps(report, ensure_ascii=False) and "张三丰" not in json.dumps(report)
    assert report["errors"] == [{**before["errors"][0], "value": "***/1234"}]
    assert (report["rows"], report["created"], report["merged"], report["skipped"]) == (4, 2, 1, 1)
    # and the file is gone, the batch failed with the reason: nobody imports the patient again from it
    assert batch.status == BatchStatus.FAILED and "erased" in batch.error
    assert not batch_path(batch).exists()
    other.refresh_from_db()
    assert other.status == BatchStatus.PREVIEWED and batch_path(other).exists()
    detail = AuditEvent.objects.get(action="customer.erase").detail
    assert (detail["import_reports"], detail["import_files_withdrawn"]) == (1, 1)


def test_a_written_batchs_report_loses_the_persons_row_and_keeps_its_status(patient, director_a,
                                                                            django_capture_on_commit_callbacks):
    # given a written import whose preview holds the patient (merged into them by phone)
    batch = _upload(director_a, _csv(ROWS[:3]))
    with django_capture_on_commit_callbacks(execute=True):
        batch_confirm(batch=batch, staff=director_a)
    batch.refresh_from_db()
    assert batch.status == BatchStatus.WRITTEN and not batch_path(batch).exists()
    # when
    _erase(director_a, patient, django_capture_on_commit_callbacks)
    # then
    batch.refresh_from_db()
    assert batch.status == BatchStatus.WRITTEN and batch.error == ""
    assert [e["outcome"] for e in batch.report["preview"]] == ["erased", "create"]


def test_a_workbook_holding_the_persons_number_with_spaces_is_withdrawn(patient, director_a, tmp_path,
                                                                        django_capture_on_commit_callbacks):
    # given a workbook, beyond its preview rows, with the patient's number written 138 0013 8000
    rows = [["姓名", "手机号"], *[[f"客户{i}", f"1370000{i:04d}"] for i in range(30)], ["张三丰", "138 0013 8000"]]
    batch = _upload(director_a, xlsx_write(tmp_path / "p.xlsx", rows).read_bytes(), name="p.xlsx")
    assert batch.status == BatchStatus.PREVIEWED
    # when
    _erase(director_a, patient, django_capture_on_commit_callbacks)
    # then
    batch.refresh_from_db()
    assert batch.status == BatchStatus.FAILED and not batch_path(batch).exists()


@pytest.mark.parametrize("kind", ["workbook named .csv", "UTF-16 text", "full-width digits"])
def test_a_file_the_import_reads_is_searched_as_the_import_reads_it(patient, director_a, tmp_path, kind,
                                                                    django_capture_on_commit_callbacks):
    # given a waiting file holding the patient's number in a form the import reads but its bytes do not show plainly
    rows = [["姓名", "手机号"], ["李四", "13900139000"], ["张三丰", "13800138000"]]
    if kind == "workbook named .csv":
        content = xlsx_write(tmp_path / "p.xlsx", rows).read_bytes()
    elif kind == "UTF-16 text":
        content = "\r\n".join("\t".join(row) for row in rows).encode("utf-16")
    else:
        rows[2][1] = "１３８００１３８０００"
        content = _csv(rows)
    batch = _upload(director_a, content, name="患者.csv")
    assert batch.status == BatchStatus.PREVIEWED, batch.error
    # when
    _erase(director_a, patient, django_capture_on_commit_callbacks)
    # then the file is withdrawn, as a plain CSV holding the number is
    batch.refresh_from_db()
    assert batch.status == BatchStatus.FAILED and not batch_path(batch).exists()


def test_a_phone_less_row_is_theirs_by_name_and_birthday_and_a_name_alone_is_not(patient, director_a, chain,
                                                                               clinic_a,
                                                                               django_capture_on_commit_callbacks):
    # given a phone-less row with the patient's name and birthday, and one with their name only
    batch = _upload(director_a, _csv([ROWS[0], ["张三丰", "", "1980-05-06"], ["张三丰", "", "1990-01-01"]]))
    # when
    _erase(director_a, patient, django_capture_on_commit_callbacks)
    # then
    batch.refresh_from_db()
    preview = batch.report["preview"]
    assert preview[0]["outcome"] == "erased"
    assert preview[1]["values"]["name"] == "张三丰" and preview[1]["values"]["birthday"] == "1990-01-01"
    assert batch.status == BatchStatus.PREVIEWED  # the file holds no number of theirs


def test_the_page_of_a_written_import_shows_an_erased_row_as_such(client, patient, director_a,
                                                                   django_capture_on_commit_callbacks):
    batch = _upload(director_a, _csv(ROWS[:3]))
    with django_capture_on_commit_callbacks(execute=True):
        batch_confirm(batch=batch, staff=director_a)
    _erase(director_a, patient, django_capture_on_commit_callbacks)
    client.force_login(director_a.user)
    page = client.get(reverse("imports:preview", kwargs={"batch_id": batch.id})).content.decode()
    assert "Erased since (personal information removed)" in page and "张三丰" not in page and "李四" in page


def test_the_page_of_a_withdrawn_file_says_why(client, patient, director_a, django_capture_on_commit_callbacks):
    batch = _upload(director_a, _csv(ROWS[:3]))
    _erase(director_a, patient, django_capture_on_commit_callbacks)
    client.force_login(director_a.user)
    page = client.get(reverse("imports:preview", kwargs={"batch_id": batch.id})).content.decode()
    assert "personal information erased, so the file was deleted" in page
    assert ImportBatch.objects.get(pk=batch.pk).status == BatchStatus.FAILED
