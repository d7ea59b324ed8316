"""The import page in a real browser (Debian's Chromium): a large file is checked, then imported, by the worker
while the page polls its progress and shows the result by itself when the job is done.

The jobs the page enqueues are recorded and run by the test, as the worker would run them, at the moment the test
chooses: so the page is seen waiting, then seen to notice the end (htmx polling, then HX-Refresh)."""

import threading

import pytest
from django.core.signals import request_finished, request_started

from smileloop.customers.models import Customer
from smileloop.imports.enums import BatchStatus
from smileloop.imports.models import ImportBatch
from smileloop.imports.services import batches

# The browser fixture, the login helper, and the browser mark with its Chromium check.
from tests.test_browser import browser_page, login_as_chain_admin, pytestmark  # noqa: F401

CSV = "姓名,手机号,性别\n张三,13800138000,男\n李四,12345,女\n王五,13900139000,女\n"


@pytest.fixture
def worker(monkeypatch, settings, tmp_path):
    settings.SMILELOOP_IMPORT_DIR = tmp_path / "imports"
    monkeypatch.setattr(batches, "INLINE_MAX_BYTES", {".csv": 8, ".xlsx": 8})  # every file goes to the worker
    jobs = []
    monkeypatch.setattr(batches, "enqueue_on_commit", lambda fn, **kwargs: jobs.append((fn, kwargs)))

    # On SQLite the live server's threads and this test share one in-memory connection (Django hands it over), and
    # SQLite refuses a write to a table that another thread's statement is still reading ("database table is locked")
    # where a file database would wait for it. The page polls the batch all along, so a job runs only between the
    # server's requests, and requests wait while it runs: as the worker would wait on a real database's lock.
    gate = threading.Condition()
    state = {"requests": 0, "job": False}

    def started(**_):
        with gate:
            gate.wait_for(lambda: not state["job"], timeout=30)
            state["requests"] += 1

    def finished(**_):
        with gate:
            state["requests"] = max(0, state["requests"] - 1)
            gate.notify_all()

    request_started.connect(started, weak=False)
    request_finished.connect(finished, weak=False)

    def run() -> int:
        done = 0
        while jobs:
            fn, kwargs = jobs.pop(0)
            with gate:
                assert gate.wait_for(lambda: state["requests"] == 0, timeout=30), "the server never fell idle"
                state["job"] = True
            try:
                fn(**kwargs)
            finally:
                with gate:
                    state["job"] = False
                    gate.notify_all()
            done += 1
        return done

    yield run
    request_started.disconnect(started)
    request_finished.disconnect(finished)


def test_a_large_file_is_checked_and_imported_in_the_background_while_the_page_follows(
        live_server, browser_page, transactional_db, chain_admin, worker, tmp_path):  # noqa: F811
    page = browser_page
    upload = tmp_path / "患者.csv"
    upload.write_text(CSV, encoding="utf-8")
    login_as_chain_admin(page, live_server)

    # when: the file is uploaded
    page.goto(f"{live_server.url}/imports/")
    page.set_input_files("#id_file", str(upload))
    page.click("form.card button[type=submit]")

    # then: the page waits for the check, polling
    page.wait_for_selector("text=Checking the file in the background")
    assert page.locator("#count-created").count() == 0

    # when: the worker checks it, the page shows the preview by itself
    assert worker() == 1
    page.wait_for_selector("#count-created", timeout=10_000)
    assert page.locator("#count-created").inner_text() == "2"
    assert page.locator("#count-errors").inner_text() == "1"

    # when: importing the valid rows (htmx swaps in the progress block)
    page.check("#id_skip_invalid")
    page.click("#import-result button[type=submit]")
    page.wait_for_selector("text=Importing in the background")
    batch = ImportBatch.objects.get()
    assert batch.status == BatchStatus.IMPORTING and Customer.objects.count() == 0

    # then: once the worker has imported it, the page shows the result by itself
    assert worker() == 1
    page.wait_for_selector("text=Written.", timeout=10_000)
    assert sorted(Customer.objects.values_list("name", flat=True)) == ["张三", "王五"]
    assert page.locator("#count-created").inner_text() == "2"
