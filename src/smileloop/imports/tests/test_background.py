"""A large file is checked and imported by the background worker; the page shows its progress, then the result.

INLINE_MAX_BYTES is lowered so that small test files take the background path. The jobs the page enqueues are
recorded (`queued`) and run by the test, as the worker would; one transactional test lets them run through Huey
(immediate mode in the tests) when the request commits, as in production."""

import csv
import datetime as dt
import io
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from smileloop.customers.models import Customer
from smileloop.imports.enums import BatchStatus
from smileloop.imports.models import ImportBatch
from smileloop.imports.services import batches
from smileloop.imports.services.batches import batch_progress, progress_path

CSV = "姓名,手机号,性别\n张三,13800138000,男\n李四,12345,女\n王五,13900139000,\n".encode()


@pytest.fixture
def queued(monkeypatch):
    """The jobs enqueued, as (function, kwargs), instead of Huey (whose task wrapper closes the test's connection)."""
    jobs = []
    monkeypatch.setattr(batches, "enqueue_on_commit", lambda fn, **kwargs: jobs.append((fn, kwargs)))
    return jobs


def _work(jobs) -> None:
    """The worker: run what is queued."""
    while jobs:
        fn, kwargs = jobs.pop(0)
        fn(**kwargs)


@pytest.fixture(autouse=True)
def background(settings, tmp_path, monkeypatch):
    settings.SMILELOOP_IMPORT_DIR = tmp_path / "imports"
    monkeypatch.setattr(batches, "INLINE_MAX_BYTES", {".csv": 8, ".xlsx": 8})
    yield
    translation.activate(settings.LANGUAGE_CODE)  # a request in Chinese leaves the thread's language behind


def _upload(client, content=CSV, name="患者.csv"):
    return client.post(reverse("imports:upload"), {"kind": "customers", "file": SimpleUploadedFile(name, content)})


def _htmx_get(client, url):
    return client.get(url, HTTP_HX_REQUEST="true")


def test_a_large_file_is_checked_in_the_background_and_the_page_polls_until_the_preview(client, director_a, queued):
    # given
    client.force_login(director_a.user)

    # when the file is uploaded (the job is queued, not yet run)
    response = _upload(client)
    batch = ImportBatch.objects.get()

    # then the page shows a progress block that polls, and no preview yet
    assert (response.status_code, batch.status) == (302, BatchStatus.CHECKING)
    assert queued == [(batches.batch_check, {"batch_id": str(batch.id), "queued_at": batch.queued_at.isoformat()})]
    page = client.get(response.url).content.decode()
    progress_url = reverse("imports:progress", kwargs={"batch_id": batch.id})
    assert f'hx-get="{progress_url}"' in page and 'hx-trigger="every 1s"' in page
    assert "Checking the file in the background" in page and 'id="count-created"' not in page
    poll = _htmx_get(client, progress_url)
    assert poll.status_code == 200 and "0 rows read" in poll.content.decode()

    # when the worker runs the job
    _work(queued)

    # then the batch holds the dry run, the progress file is gone, and the next poll reloads the page
    batch.refresh_from_db()
    assert batch.status == BatchStatus.PREVIEWED
    assert (batch.report["rows"], batch.report["created"], batch.report["error_count"]) == (3, 2, 1)
    assert not progress_path(batch).exists()
    poll = _htmx_get(client, progress_url)
    assert (poll.status_code, poll["HX-Refresh"]) == (204, "true")
    page = client.get(response.url).content.decode()
    assert '<dd id="count-created">2</dd>' in page and "hx-trigger" not in page
    assert Customer.objects.count() == 0


def test_a_large_file_is_imported_in_the_background_with_a_percentage(client, director_a, queued):
    # given a checked file
    client.force_login(director_a.user)
    _upload(client)
    _work(queued)
    batch = ImportBatch.objects.get()
    confirm = reverse("imports:confirm", kwargs={"batch_id": batch.id})

    # when confirmed (queued, not yet run)
    response = client.post(confirm, {"skip_invalid": "on"}, HTTP_HX_REQUEST="true")
    batch.refresh_from_db()

    # then the htmx answer is the progress block, out of the rows the check counted
    assert batch.status == BatchStatus.IMPORTING
    assert queued == [(batches.batch_write, {"batch_id": str(batch.id), "queued_at": batch.queued_at.isoformat(),
                                             "staff_id": director_a.id, "skip_invalid": True})]
    fragment = response.content.decode()
    assert fragment.lstrip().startswith('<section id="import-result"') and "Importing in the background" in fragment
    progress_path(batch).write_text(json.dumps({"rows": 2, "started_at": timezone.now().isoformat(),
                                                "updated_at": timezone.now().isoformat()}))
    with CaptureQueriesContext(connection) as queries:
        poll = _htmx_get(client, reverse("imports:progress", kwargs={"batch_id": batch.id})).content.decode()
    assert '<progress max="100" value="66"' in poll and "2 of 3 rows (66%)" in poll
    # the poll, every second, leaves the stored report (up to 100,000 errors) unread: the database reads its figures
    whole_report = re.compile(r'(?<!\()"imports_importbatch"\."report"\s*(,|FROM)')  # not JSON_EXTRACT("…"."report", …)
    assert not [q["sql"] for q in queries if whole_report.search(q["sql"])]

    # and a second confirmation while it runs is refused
    again = client.post(confirm, {"skip_invalid": "on"})
    assert again.status_code == 409 and "still being checked or imported" in again.content.decode()

    # when the worker runs the job
    _work(queued)

    # then the valid rows are written once
    batch.refresh_from_db()
    assert batch.status == BatchStatus.WRITTEN and batch.written_at is not None
    assert sorted(Customer.objects.values_list("name", flat=True)) == ["张三", "王五"]
    assert not progress_path(batch).exists()


def test_the_job_writes_progress_that_the_page_reads(director_a, tmp_path):
    # given a batch and the job's progress writer
    batch = ImportBatch.objects.create(chain=director_a.chain, kind="customers", original_name="x.csv",
                                       extension=".csv", uploaded_by=director_a, status=BatchStatus.CHECKING,
                                       queued_at=timezone.now())
    batches.import_dir().mkdir(parents=True, exist_ok=True)
    writer = batches._ProgressWriter(batch)

    # when rows are reported (the writer rewrites the file at most every half second)
    writer.last = 0.0
    writer(5000)
    writer(5000)

    # then the page's reading counts what was written, and the run is not stale
    progress = batch_progress(batch)
    assert progress.rows in (5000, 10000) and not progress.stale and progress.percent is None
    writer.write()
    assert batch_progress(batch).rows == 10000
    writer.remove()
    assert batch_progress(batch).rows == 0


def test_an_unreadable_large_file_fails_with_its_reason_on_the_page(client, director_a, queued):
    # given
    client.force_login(director_a.user)

    # when a file with no recognisable header is checked in the background
    response = _upload(client, content=b"foo,bar\n1,2\n3,4\n", name="x.csv")
    _work(queued)

    # then the batch failed, its stored file is gone, and the page says why (no preview, no import button)
    batch = ImportBatch.objects.get()
    assert batch.status == BatchStatus.FAILED
    assert "No recognisable header in the first 10 rows of x.csv" in batch.error
    assert not batches.batch_path(batch).exists()
    page = client.get(response.url).content.decode()
    assert "No recognisable header" in page and "Import now" not in page and "hx-trigger" not in page
    refused = client.post(reverse("imports:confirm", kwargs={"batch_id": batch.id}))
    assert refused.status_code == 409 and Customer.objects.count() == 0


def test_a_run_without_progress_for_minutes_is_shown_as_stopped_and_may_be_started_again(client, director_a, queued):
    # given an import queued ten minutes ago that never moved (no worker running)
    client.force_login(director_a.user)
    _upload(client)
    _work(queued)
    batch = ImportBatch.objects.get()
    client.post(reverse("imports:confirm", kwargs={"batch_id": batch.id}), {"skip_invalid": "on"})
    late = queued.pop()  # the worker never took it
    ImportBatch.objects.filter(pk=batch.pk).update(queued_at=timezone.now() - dt.timedelta(minutes=10))

    # then the page says the worker is not running, stops polling and offers the import again
    page = client.get(reverse("imports:preview", kwargs={"batch_id": batch.id})).content.decode()
    assert "background worker" in page and "hx-trigger" not in page and "Import now" in page
    # and so does its poll, with the choice to skip the invalid rows (the report's error count, read by the database)
    poll = _htmx_get(client, reverse("imports:progress", kwargs={"batch_id": batch.id})).content.decode()
    assert "background worker" in poll and "Import now" in poll and 'name="skip_invalid"' in poll

    # when it is started again, and the worker (back) runs the first job late, then the new one
    response = client.post(reverse("imports:confirm", kwargs={"batch_id": batch.id}), {"skip_invalid": "on"})
    late[0](**late[1])
    batch.refresh_from_db()
    assert batch.status == BatchStatus.IMPORTING and Customer.objects.count() == 0  # the stale job did nothing
    _work(queued)

    # then it is written
    batch.refresh_from_db()
    assert response.status_code == 302 and batch.status == BatchStatus.WRITTEN
    assert Customer.objects.count() == 2


def test_a_job_for_a_batch_no_longer_waiting_does_nothing(director_a):
    # given a batch already previewed (a job delivered twice)
    batch = ImportBatch.objects.create(chain=director_a.chain, kind="customers", original_name="x.csv",
                                       extension=".csv", uploaded_by=director_a, status=BatchStatus.PREVIEWED,
                                       report={"rows": 1})

    # when
    batches.batch_check(batch_id=str(batch.id), queued_at=timezone.now().isoformat())
    batches.batch_write(batch_id=str(batch.id), queued_at=timezone.now().isoformat(), staff_id=director_a.id)

    # then
    batch.refresh_from_db()
    assert (batch.status, batch.report) == (BatchStatus.PREVIEWED, {"rows": 1})


def test_the_page_lists_the_first_errors_and_the_csv_has_them_all(client, director_a, settings, monkeypatch):
    # given a small file (checked in the request) with 250 invalid rows, one of them a formula
    monkeypatch.setattr(batches, "INLINE_MAX_BYTES", {".csv": 10 ** 9, ".xlsx": 10 ** 9})
    client.force_login(director_a.user)
    rows = ["姓名,手机号"] + [f"患者{i},12{i:03d}" for i in range(249)] + ["公式,=HYPERLINK(\"x\")"]
    _upload(client, content="\n".join(rows).encode())
    batch = ImportBatch.objects.get()

    # when
    page = client.get(reverse("imports:preview", kwargs={"batch_id": batch.id})).content.decode()
    download = client.post(reverse("imports:errors_csv", kwargs={"batch_id": batch.id}))

    # then the page lists 200 and says how many more, with the link
    listed = page.split('id="errors"')[1].split("</table>")[0]
    assert listed.count("<td>手机号</td>") == 200
    assert "… and 50 more errors." in page and reverse("imports:errors_csv", kwargs={"batch_id": batch.id}) in page
    # and the CSV has every error, the formula neutralised
    text = b"".join(download.streaming_content).decode("utf-8-sig")
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == ["Row", "Column", "Value", "Problem"] and len(lines) == 251
    assert lines[1][:3] == ["2", "手机号", "12000"]
    assert lines[-1][:3] == ["251", "手机号", "'=HYPERLINK(\"x\")"]


def test_another_staff_members_progress_and_errors_are_not_found(client, director_a, chain_admin):
    # given a batch of director_a
    batch = ImportBatch.objects.create(chain=director_a.chain, kind="customers", original_name="x.csv",
                                       extension=".csv", uploaded_by=director_a, status=BatchStatus.CHECKING,
                                       queued_at=timezone.now(), report={"errors": [{"row": 2, "value": "x"}]})
    client.force_login(chain_admin.user)

    # then
    assert _htmx_get(client, reverse("imports:progress", kwargs={"batch_id": batch.id})).status_code == 404
    assert client.post(reverse("imports:errors_csv", kwargs={"batch_id": batch.id})).status_code == 404


def test_the_progress_block_is_in_chinese_for_chinese_staff(client, director_a, queued):
    # given a file queued for its check
    client.force_login(director_a.user)
    response = _upload(client)

    # when the page is read in Chinese
    page = client.get(response.url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()

    # then
    assert "正在后台检查文件" in page and "已读取 0 行" in page


@pytest.mark.django_db(transaction=True)
def test_through_huey_the_jobs_run_when_the_request_commits(client, director_a):
    # given (Huey in immediate mode: a job enqueued after commit runs at the commit, as the worker would run it)
    client.force_login(director_a.user)

    # when a large file is uploaded, then confirmed
    response = _upload(client)
    batch = ImportBatch.objects.get()
    checked = batch.status
    client.post(reverse("imports:confirm", kwargs={"batch_id": batch.id}), {"skip_invalid": "on"})
    batch.refresh_from_db()

    # then the check had run by the time the page was shown, and the import by the end of the confirmation
    assert (response.status_code, checked, batch.status) == (302, BatchStatus.PREVIEWED, BatchStatus.WRITTEN)
    assert sorted(Customer.objects.values_list("name", flat=True)) == ["张三", "王五"]


def test_an_import_the_pool_changed_under_goes_back_to_its_preview_with_the_reason(client, director_a, queued,
                                                                                    monkeypatch):
    # given a checked file whose import meets a concurrent change of the pool
    from smileloop.imports.errors import ImportConflict

    client.force_login(director_a.user)
    _upload(client)
    _work(queued)
    batch = ImportBatch.objects.get()
    client.post(reverse("imports:confirm", kwargs={"batch_id": batch.id}), {"skip_invalid": "on"})

    def clash(*args, **kwargs):
        raise ImportConflict("The patient pool changed during the import; run it again")

    monkeypatch.setattr(batches, "customers_import", clash)

    # when the worker runs it
    _work(queued)

    # then nothing is written, the preview says why and offers the import again
    batch.refresh_from_db()
    assert (batch.status, Customer.objects.count()) == (BatchStatus.PREVIEWED, 0)
    page = client.get(reverse("imports:preview", kwargs={"batch_id": batch.id})).content.decode()
    assert "The patient pool changed during the import" in page and "Import now" in page


def test_many_errors_are_summed_up_by_column_and_problem_commonest_first(client, director_a, monkeypatch):
    # given a file checked in the request whose phone column is wrong in 30 rows and birthday in 25
    monkeypatch.setattr(batches, "INLINE_MAX_BYTES", {".csv": 10 ** 9, ".xlsx": 10 ** 9})
    client.force_login(director_a.user)
    rows = ["姓名,手机号,出生日期"] + [f"患者{i},12{i:03d},{'1990-13-01' if i < 25 else '1990-01-01'}" for i in range(30)]
    _upload(client, content="\n".join(rows).encode())
    batch = ImportBatch.objects.get()

    # when
    page = client.get(reverse("imports:preview", kwargs={"batch_id": batch.id})).content.decode()

    # then the summary lists each problem once with its count, the commonest first
    summary = page.split('id="error-kinds"')[1].split("</table>")[0]
    assert summary.index("<td>手机号</td><td>is not a valid phone number</td><td class=\"num\">30</td>") < \
        summary.index("<td>出生日期</td><td>is not a real calendar date</td><td class=\"num\">25</td>")


def test_the_nightly_purge_deletes_uploads_older_than_30_days_with_their_batches(director_a):
    # given an upload of 31 days ago and one of yesterday, each with its stored file
    from smileloop.core.jobs import job_run

    batches.import_dir().mkdir(parents=True, exist_ok=True)
    old, recent = (ImportBatch.objects.create(chain=director_a.chain, kind="customers", original_name=f"{name}.csv",
                                              extension=".csv", uploaded_by=director_a) for name in ("old", "recent"))
    for batch in (old, recent):
        batches.batch_path(batch).write_bytes(CSV)
    ImportBatch.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=31))
    ImportBatch.objects.filter(pk=recent.pk).update(created_at=timezone.now() - dt.timedelta(days=1))

    # when the scheduled job runs
    counts = job_run("imports.purge")

    # then only the old one is gone, file and batch
    assert counts == {"count": 1}
    assert list(ImportBatch.objects.values_list("original_name", flat=True)) == ["recent.csv"]
    assert not batches.batch_path(old).exists() and batches.batch_path(recent).exists()


def test_an_imported_file_is_deleted_once_written(client, director_a, monkeypatch, django_capture_on_commit_callbacks):
    # given a file checked in the request
    monkeypatch.setattr(batches, "INLINE_MAX_BYTES", {".csv": 10 ** 9, ".xlsx": 10 ** 9})
    client.force_login(director_a.user)
    _upload(client)
    batch = ImportBatch.objects.get()
    confirm = reverse("imports:confirm", kwargs={"batch_id": batch.id})

    # when it is refused (invalid rows), the file stays for a second try; when written, it goes
    with django_capture_on_commit_callbacks(execute=True):
        client.post(confirm)
    assert batches.batch_path(batch).exists()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(confirm, {"skip_invalid": "on"})
    batch.refresh_from_db()
    assert batch.status == BatchStatus.WRITTEN and not batches.batch_path(batch).exists()


def test_a_background_check_writes_its_message_in_the_uploaders_language(client, director_a, queued):
    # given an unreadable large file uploaded from a page in Chinese
    client.force_login(director_a.user)
    client.post(reverse("imports:upload"), {"kind": "customers", "file": SimpleUploadedFile("x.csv", b"foo,bar\n1,2\n")},
                HTTP_ACCEPT_LANGUAGE="zh-hans")
    batch = ImportBatch.objects.get()

    # when the worker, whose own language is another, checks it
    with translation.override("en"):
        _work(queued)

    # then the reason is in Chinese, as the uploader reads it
    batch.refresh_from_db()
    assert (batch.language, batch.status) == ("zh-hans", BatchStatus.FAILED)
    assert batch.error == "x.csv 的前 10 行中没有可识别的表头（应包含 姓名/name、手机号/phone 等列）"
