"""What an operator relies on from the worker: every nightly job may run twice, late or out of order, at the same
moment as another copy of itself, or stop half-way, and the books come out as after one clean run; a background
import whose worker dies says so and can be run again, and is never imported twice; on Redis a task enqueued after
a commit reaches a real consumer and a rollback enqueues nothing. (test_jobs.py covers the registry and the
commands, imports/tests/test_background.py the page's normal background flow.)"""

import datetime as dt
import hashlib
import io
import json
import socket
import threading
import time
import uuid

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection, models, transaction
from django.urls import reverse
from django.utils import timezone

from smileloop.core.jobs import enqueue_on_commit, job_run, jobs_all, jobs_register
from smileloop.core.testing import writers_run
from smileloop.customers.models import Customer, Interaction
from smileloop.imports.enums import BatchStatus
from smileloop.imports.models import ImportBatch
from smileloop.imports.services import batches

SCHEDULED = [job for job in jobs_all() if job.schedule is not None]


def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers are exercised on PostgreSQL only (SQLite has one writer)")


# --- the state of the whole database, to compare runs ----------------------------------------------------------


def _tables() -> list[type[models.Model]]:
    return [m for m in apps.get_models() if m._meta.managed and not m._meta.proxy]


# When a run last looked, recorded by every run whether or not it found anything: not a change of the data.
RUN_STAMPS = {("tagging.KeywordScanState", "scanned_at")}


def _rows_digest() -> dict[str, tuple[int, str]]:
    """Every table's row count and a digest of all its rows: equal digests mean nothing was written (or rewritten
    with another value, a timestamp included)."""
    digest = {}
    for model in _tables():
        columns = ", ".join(connection.ops.quote_name(f.column) for f in model._meta.concrete_fields
                            if (model._meta.label, f.name) not in RUN_STAMPS)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {columns} FROM {connection.ops.quote_name(model._meta.db_table)}")
            rows = sorted(repr(row) for row in cursor.fetchall())
        digest[model._meta.label] = (len(rows), hashlib.sha1("\n".join(rows).encode()).hexdigest()[:12])
    return digest


def _figures() -> dict[str, tuple]:
    """Every table's row count, the sum of each integer column that is not a key, and how many rows have each value
    of each short text column (statuses, kinds): what two databases given the same work agree on whatever ids and
    clock times they drew."""
    figures = {}
    for model in _tables():
        queryset = model._default_manager.using("default").all()
        sums = [f.name for f in model._meta.concrete_fields
                if isinstance(f, models.IntegerField) and not isinstance(f, models.AutoField) and not f.is_relation
                and not f.primary_key]
        choices = [f.name for f in model._meta.concrete_fields if getattr(f, "choices", None) and not f.is_relation]
        total = queryset.aggregate(**{f"s_{name}": models.Sum(name) for name in sums}) if sums else {}
        grouped = tuple((name, tuple(sorted(queryset.order_by().values_list(name).annotate(n=models.Count("pk")),
                                            key=repr)))
                        for name in sorted(choices))
        figures[model._meta.label] = (queryset.count(), tuple(sorted(total.items())), grouped)
    return figures


def _changed(before: dict, after: dict) -> dict:
    return {name: (before[name], after[name]) for name in before if before[name] != after[name]}


# --- a chain with something for every nightly job to do ----------------------------------------------------------


def _busy_chain(today: dt.date, *, retention: bool = True):
    """The demo's programmes and retention data on a small seeded chain (a few seconds), then some of everything
    made overdue, as after a week with the worker down: lots, cards, memberships and packages past their end, an
    idempotency record and an upload a month old."""
    from django.contrib.auth import get_user_model

    from smileloop.core.models import IdempotencyRecord
    from smileloop.demo import services as demo
    from smileloop.giftcards.enums import VoucherStatus
    from smileloop.giftcards.models import GiftCard, Voucher
    from smileloop.ledger.models import Lot
    from smileloop.loyalty.models import PackagePurchase
    from smileloop.membership.enums import MembershipStatus
    from smileloop.membership.models import Membership

    chain = demo.chain_seed(customers=60, clinics=2, years=1, seed=7, chain_name="夜间任务连锁", today=today,
                            orders_per_customer=2).chain
    demo._programmes_load(chain=chain, at=demo._demo_moment(today), points_orders=20)
    if retention:  # tags, segments, stages, follow-ups and surveys (most of the few seconds)
        demo.retention_demo_load(chain=chain, today=today)
    week_ago = timezone.now() - dt.timedelta(days=7)
    lots = Lot.objects.filter(account__chain=chain, remaining__gt=0).order_by("id").values_list("id", flat=True)
    Lot.objects.filter(id__in=list(lots[:6])).update(expires_at=week_ago)
    cards = GiftCard.objects.filter(chain=chain).order_by("id").values_list("id", flat=True)
    GiftCard.objects.filter(id__in=list(cards[:2])).update(expires_at=week_ago)
    vouchers = Voucher.objects.filter(chain=chain, status=VoucherStatus.ISSUED).order_by("id").values_list("id", flat=True)
    Voucher.objects.filter(id__in=list(vouchers[:2])).update(expires_at=week_ago)
    members = Membership.objects.filter(chain=chain, status=MembershipStatus.ACTIVE).order_by("id")
    ids = list(members.values_list("id", flat=True)[:4])
    Membership.objects.filter(id__in=ids[:2]).update(expires_at=week_ago)
    Membership.objects.filter(id__in=ids[2:]).update(expires_at=timezone.now() + dt.timedelta(days=6, hours=20))
    purchases = PackagePurchase.objects.filter(chain=chain).order_by("id").values_list("id", flat=True)
    PackagePurchase.objects.filter(id__in=list(purchases[:2])).update(
        period_start=week_ago - dt.timedelta(days=30), period_end=week_ago)
    user = get_user_model().objects.create(username="poster")
    record = IdempotencyRecord.objects.create(user=user, key="k", operation="op", request_hash="x", status_code=201,
                                              response={})
    IdempotencyRecord.objects.filter(pk=record.pk).update(created_at=timezone.now() - dt.timedelta(days=30))
    # a lead who registered long ago and never came (lost), one who registered today (a new-lead task)
    from smileloop.customers.services import customer_upsert
    from smileloop.surveys.models import Survey

    gone, _ = customer_upsert(chain=chain, data={"name": "久未到店", "mobile": "13100131000"})
    Customer.objects.filter(pk=gone.pk).update(created_at=timezone.now() - dt.timedelta(days=900))
    customer_upsert(chain=chain, data={"name": "新客", "mobile": "13100131001"}, source="form")
    # the unanswered surveys of the last days' visits were never made (the worker was down)
    recent = timezone.now() - dt.timedelta(days=3)
    Survey.objects.filter(chain=chain, created_at__gte=recent, answered_at__isnull=True).delete()
    # nor were today's open follow-up tasks (a survey's complaint task is opened by the survey, not the run)
    from smileloop.followups.enums import TaskStatus
    from smileloop.followups.models import FollowupTask

    complaints = Survey.objects.filter(complaint_task_id__isnull=False).values_list("complaint_task_id", flat=True)
    FollowupTask.objects.filter(chain=chain, status=TaskStatus.OPEN, due_at__date__gte=today).exclude(
        id__in=list(complaints)).delete()
    old = ImportBatch.objects.create(chain=chain, kind="customers", original_name="old.csv", extension=".csv")
    ImportBatch.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=31))
    return chain


def _run(job, day):
    return job_run(job) if job.argument == "none" else job_run(job, today=day)


def _did_something(counts: dict) -> bool:
    return any(isinstance(v, int) and not isinstance(v, bool) and v > 0 and k not in ("chains", "tags", "kept_days")
               for k, v in counts.items())


# --- every nightly job: twice, and out of order --------------------------------------------------------------------


def test_every_nightly_job_run_again_the_same_day_or_for_yesterday_after_today_changes_nothing(db, settings, tmp_path):
    # given a chain with overdue work for every job
    settings.SMILELOOP_IMPORT_DIR = tmp_path / "imports"
    today = timezone.localdate()
    _busy_chain(today)

    # when each job runs for today (in the schedule's order, as the worker runs them), then at once again for today
    # and for yesterday (a late retry, an overlap, a back-fill or hand-run after the night's run)
    first, repeated = {}, {}
    for job in SCHEDULED:
        first[job.name] = _run(job, today)
        done = _rows_digest()
        for day in (today, today - dt.timedelta(days=1)):
            counts = _run(job, day)
            changed = _changed(done, _rows_digest())
            if changed:
                repeated[f"{job.name} for {day}"] = (counts, sorted(changed))

    # then each first run did the overdue work (so the re-runs had something they could have repeated) …
    idle = {"core.statistics"} if connection.vendor == "postgresql" else set()  # autovacuum analyzes there
    assert [name for name, counts in first.items() if not _did_something(counts) and name not in idle] == [], first
    # … and the runs after it wrote nothing
    assert repeated == {}


# --- the same job twice at the same moment (two workers; PostgreSQL) -------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_copies_of_each_nightly_job_at_the_same_moment_do_the_work_once_without_errors(settings, tmp_path):
    _postgresql_only()
    # given overdue work for every job
    settings.SMILELOOP_IMPORT_DIR = tmp_path / "imports"
    today = timezone.localdate()
    _busy_chain(today)
    problems = {}
    for job in SCHEDULED:
        # what one run would leave (run, looked at, rolled back)
        with transaction.atomic():
            _run(job, today)
            expected = _figures()
            transaction.set_rollback(True)

        # when two workers start the job at the same moment
        def worker(i, job=job):
            return [_run(job, today)]

        results, errors = writers_run(worker, 2)

        # then neither failed, and the database holds what one run leaves
        changed = _changed(expected, _figures())
        if errors or changed:
            problems[job.name] = {"errors": [repr(e)[:300] for e in errors], "changed": changed, "counts": results}
    assert problems == {}


# --- a job that stops half-way ---------------------------------------------------------------------------------------


def test_a_ledger_expiry_that_crashes_half_way_leaves_whole_accounts_and_the_next_run_finishes(db, monkeypatch):
    # given overdue lots in several accounts
    from smileloop.ledger import services as ledger

    today = timezone.localdate()
    _busy_chain(today, retention=False)
    with transaction.atomic():
        counts = job_run("ledger.expire", today=today)
        expected = _figures()
        transaction.set_rollback(True)
    assert counts["lots_expired"] >= 2

    # when the job dies on its second account's posting (the worker's process killed, the database gone)
    real_post = ledger.ledger_post
    posted = []

    def dies_on_the_second(**kwargs):
        if posted:
            raise ConnectionError("server closed the connection unexpectedly")
        posted.append(1)
        return real_post(**kwargs)

    monkeypatch.setattr(ledger, "ledger_post", dies_on_the_second)
    with pytest.raises(ConnectionError):
        job_run("ledger.expire", today=today)
    monkeypatch.undo()

    # then what was written balances (every account equals its entries and lots)
    out = io.StringIO()
    call_command("ledger", "check", stdout=out)
    assert "OK" in out.getvalue()
    # and the next run finishes the work: the books are as after one clean run
    job_run("ledger.expire", today=today)
    assert _changed(expected, _figures()) == {}


def _membership_reminders():
    from smileloop.membership.models import MembershipReminder

    return MembershipReminder.objects


def _module(path):
    def resolve():
        from django.utils.module_loading import import_module

        return import_module(path)
    return resolve


# (job, what holds the call, the call, which call dies, whether the job needs the retention data)
CRASHES = [
    ("giftcards.expire", _module("smileloop.giftcards.services"), "_event", 2, True),
    ("membership.expire", _membership_reminders, "bulk_create", 2, False),
    ("followups.daily", _module("smileloop.followups.tasks"), "followups_generate", 1, True),
]


@pytest.mark.parametrize(("name", "holder", "call", "nth", "retention"), CRASHES, ids=[c[0] for c in CRASHES])
def test_a_job_that_dies_half_way_leaves_no_half_written_unit_and_the_next_run_finishes(
        db, settings, tmp_path, monkeypatch, name, holder, call, nth, retention):
    # given overdue work, and what one clean run leaves (run, looked at, rolled back)
    settings.SMILELOOP_IMPORT_DIR = tmp_path / "imports"
    today = timezone.localdate()
    _busy_chain(today, retention=retention)
    with transaction.atomic():
        assert _did_something(job_run(name, today=today))
        expected = _figures()
        transaction.set_rollback(True)

    # when the worker dies at the nth call of one step (its connection lost)
    target = holder()
    real = getattr(target, call)
    calls = []

    def dies(*args, **kwargs):
        calls.append(1)
        if len(calls) == nth:
            raise ConnectionError("server closed the connection unexpectedly")
        return real(*args, **kwargs)

    monkeypatch.setattr(target, call, dies)
    with pytest.raises(ConnectionError):
        job_run(name, today=today)
    monkeypatch.undo()

    # then the books still balance, and the next run leaves what one clean run leaves
    out = io.StringIO()
    call_command("ledger", "check", stdout=out)
    assert "OK" in out.getvalue()
    job_run(name, today=today)
    assert _changed(expected, _figures()) == {}


# --- a background import whose worker dies or is delivered twice -----------------------------------------------------


CSV = "姓名,手机号,性别\n张三,13800138000,男\n李四,13700137000,女\n王五,13900139000,\n".encode()


@pytest.fixture
def queued(settings, tmp_path, monkeypatch):
    """Large-file mode (every file goes to the worker) with the enqueued jobs recorded, for the test to run."""
    settings.SMILELOOP_IMPORT_DIR = tmp_path / "imports"
    monkeypatch.setattr(batches, "INLINE_MAX_BYTES", {".csv": 8, ".xlsx": 8})
    jobs = []
    monkeypatch.setattr(batches, "enqueue_on_commit", lambda fn, **kwargs: jobs.append((fn, kwargs)))
    return jobs


def _work(jobs) -> None:
    while jobs:
        fn, kwargs = jobs.pop(0)
        fn(**kwargs)


def _confirmed(director, jobs, content=CSV):
    """A large file uploaded, checked by the worker and confirmed: its import job is waiting in `jobs`."""
    batch = batches.batch_upload(staff=director, kind="customers", upload=SimpleUploadedFile("患者.csv", content))
    _work(jobs)
    batch.refresh_from_db()
    assert batch.status == BatchStatus.PREVIEWED, batch.error
    batches.batch_confirm(batch=batch, staff=director, skip_invalid=True)
    assert len(jobs) == 1 and jobs[0][0] is batches.batch_write
    return batch


def test_an_import_job_delivered_again_while_the_first_runs_does_nothing(director_a, queued, monkeypatch):
    # given a confirmed import, and its job taken by a worker
    batch = _confirmed(director_a, queued)
    fn, kwargs = queued.pop()
    second = {}

    class SecondDelivery(batches._ProgressWriter):
        """When the first worker reports its first rows, a second worker runs the same job (a re-delivery)."""

        def __call__(self, n):
            super().__call__(n)
            if not second:
                second["before"] = _rows_digest()
                fn(**kwargs)
                second["after"] = _rows_digest()

    monkeypatch.setattr(batches, "_ProgressWriter", SecondDelivery)

    # when
    fn(**kwargs)

    # then the second delivery wrote nothing, and the first imported the file once
    assert second and _changed(second["before"], second["after"]) == {}
    batch.refresh_from_db()
    assert batch.status == BatchStatus.WRITTEN and batch.report["created"] == 3
    assert sorted(Customer.objects.values_list("name", flat=True)) == ["张三", "李四", "王五"]


@pytest.mark.django_db(transaction=True)
def test_two_workers_taking_one_import_job_at_once_import_it_once(director_a, queued):
    _postgresql_only()
    # given a confirmed import
    batch = _confirmed(director_a, queued)
    fn, kwargs = queued.pop()

    # when two workers run its job at the same moment
    def worker(i):
        fn(**kwargs)
        return []

    _, errors = writers_run(worker, 2)

    # then it was imported once, and the page shows it written
    batch.refresh_from_db()
    assert errors == []
    assert (batch.status, batch.error, batch.report["created"]) == (BatchStatus.WRITTEN, "", 3)
    assert Customer.objects.count() == 3
    timeline = Interaction.objects.filter(customer__chain=director_a.chain).count()
    assert timeline == 3, "one timeline entry per imported patient"


def test_an_import_whose_worker_crashes_half_way_says_so_and_runs_again_to_the_end(
        client, director_a, queued, monkeypatch, django_capture_on_commit_callbacks):
    # given a confirmed import of three rows, written one row per transaction
    from smileloop.imports.services import customers as customer_import

    monkeypatch.setattr(customer_import, "CHUNK_ROWS", 1)
    batch = _confirmed(director_a, queued)

    # when the worker's disk fills after two rows were written (the progress file cannot be written)
    real_write = batches._ProgressWriter.write
    calls = []

    def disk_full(self):
        calls.append(1)
        if len(calls) > 2:  # the file's first write, then one after each row
            raise OSError(28, "No space left on device")
        real_write(self)

    monkeypatch.setattr(batches._ProgressWriter, "write", disk_full)
    monkeypatch.setattr(batches, "_PROGRESS_EVERY", 0)
    _work(queued)
    monkeypatch.setattr(batches._ProgressWriter, "write", real_write)

    # then the page says it stopped (not "being imported" forever) and offers the import again
    batch.refresh_from_db()
    assert batch.status not in (BatchStatus.IMPORTING, BatchStatus.CHECKING, BatchStatus.WRITTEN)
    assert "unexpected error" in batch.error
    client.force_login(director_a.user)
    page = client.get(reverse("imports:preview", kwargs={"batch_id": batch.id})).content.decode()
    assert "unexpected error" in page and "hx-trigger" not in page and "Import now" in page
    assert not batches.progress_path(batch).exists()

    # when staff run it again
    response = client.post(reverse("imports:confirm", kwargs={"batch_id": batch.id}), {"skip_invalid": "on"})
    with django_capture_on_commit_callbacks(execute=True):
        _work(queued)

    # then it is written, each patient once (the two written before the crash are matched, not written again)
    batch.refresh_from_db()
    assert response.status_code in (200, 302) and batch.status == BatchStatus.WRITTEN
    assert sorted(Customer.objects.values_list("name", flat=True)) == ["张三", "李四", "王五"]
    assert (batch.report["created"], Interaction.objects.count()) == (1, 3)
    assert not batches.batch_path(batch).exists()


def test_an_import_whose_worker_was_killed_mid_run_is_shown_stopped_and_a_late_retry_of_its_job_does_nothing(
        client, director_a, queued):
    # given a confirmed import whose worker took the job, wrote progress, then was killed (nothing committed)
    batch = _confirmed(director_a, queued)
    fn, kwargs = queued.pop()
    five_minutes = batches.STALE_AFTER + dt.timedelta(seconds=5)
    batches.progress_path(batch).write_text(json.dumps(
        {"rows": 1, "updated_at": (timezone.now() - five_minutes).isoformat()}))
    ImportBatch.objects.filter(pk=batch.pk).update(queued_at=timezone.now() - five_minutes)
    client.force_login(director_a.user)

    # then the page says the worker stopped, stops polling and offers the import again
    page = client.get(reverse("imports:preview", kwargs={"batch_id": batch.id})).content.decode()
    assert "background worker" in page and "hx-trigger" not in page and "Import now" in page

    # when it is started again and the killed job's retry arrives late, then the new job runs
    client.post(reverse("imports:confirm", kwargs={"batch_id": batch.id}), {"skip_invalid": "on"})
    fn(**kwargs)
    assert Customer.objects.count() == 0
    _work(queued)

    # then it is written once
    batch.refresh_from_db()
    assert batch.status == BatchStatus.WRITTEN and Customer.objects.count() == 3


class _Disconnecting:
    """An upload whose client goes away after the first block (Django raises UnreadablePostError while reading)."""

    name = "患者.csv"

    def chunks(self):
        from django.http import UnreadablePostError

        yield CSV[:20]
        raise UnreadablePostError("connection reset by peer")


def test_an_upload_cut_off_half_way_leaves_no_half_file_and_no_batch(director_a, queued):
    from django.http import UnreadablePostError

    # when the upload's client disconnects in the middle of the file
    with pytest.raises(UnreadablePostError):
        batches.batch_upload(staff=director_a, kind="customers", upload=_Disconnecting())

    # then neither a batch nor a stored half file (patients' data nobody would ever purge) is left
    assert ImportBatch.objects.count() == 0
    folder = batches.import_dir()
    assert not folder.exists() or list(folder.iterdir()) == []


def test_the_nightly_purge_deletes_a_month_old_file_no_batch_names_and_keeps_a_fresh_one(director_a, queued):
    # given what a killed upload (stored file, no batch) and a killed progress write (its temporary copy) left a month
    # ago, an upload being stored right now, and a waiting batch's file of last month
    import os

    folder = batches.import_dir()
    folder.mkdir(parents=True)
    month_ago = (timezone.now() - dt.timedelta(days=31)).timestamp()
    killed = [folder / f"{uuid.uuid4()}.csv", folder / f"{uuid.uuid4()}.progress.json.tmp"]
    storing = folder / f"{uuid.uuid4()}.xlsx"
    foreign = folder / "operator-notes.csv"  # not a name the app gives: a folder shared by mistake keeps it
    waiting = ImportBatch.objects.create(chain=director_a.chain, kind="customers", original_name="w.csv",
                                         extension=".csv", uploaded_by=director_a)
    for path in (*killed, storing, foreign, batches.batch_path(waiting)):
        path.write_bytes(CSV)
    for path in (*killed, foreign, batches.batch_path(waiting)):
        os.utime(path, (month_ago, month_ago))

    # when the nightly purge runs (twice: a re-run is harmless)
    counts = [job_run("imports.purge"), job_run("imports.purge")]

    # then the strays are gone; the fresh upload and the file a batch still names stay
    assert counts == [{"count": 0}, {"count": 0}]
    assert sorted(folder.iterdir()) == sorted([storing, foreign, batches.batch_path(waiting)])


# --- Redis: after-commit enqueueing reaches a real consumer -----------------------------------------------------------


RECEIVED: list = []
ARRIVED = threading.Event()


def redis_task(*, value):
    RECEIVED.append(value)
    ARRIVED.set()


def _redis_reachable() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.3).close()
        return True
    except OSError:
        return False


@pytest.fixture
def redis_huey(monkeypatch):
    """The project's queue on Redis (its own name: its own keys, db 14), registered like the real one."""
    if not _redis_reachable():
        pytest.skip("no Redis at 127.0.0.1:6379")
    from huey.contrib import djhuey

    from config.settings import base
    from smileloop.core.jobs import huey_from_config

    config = base.huey_settings("redis://127.0.0.1:6379/14", None)
    config["name"] = f"smileloop-jobs-qa-{uuid.uuid4().hex[:8]}"
    huey = huey_from_config(config)
    monkeypatch.setattr(djhuey, "HUEY", huey)
    jobs_register(huey)
    RECEIVED.clear()
    ARRIVED.clear()
    yield huey
    huey.flush()


def _consume(huey, *, seconds: float) -> None:
    """A real huey worker (the consumer's Worker) taking tasks from Redis until one arrived or time is up."""
    from huey.consumer import Worker

    stop = threading.Event()
    worker = Worker(huey, stop, default_delay=0.05, max_delay=0.2, backoff=1.15)
    deadline = time.monotonic() + seconds

    def loop():
        while not stop.is_set() and time.monotonic() < deadline and not ARRIVED.is_set():
            worker.loop()

    thread = threading.Thread(target=loop)
    thread.start()
    ARRIVED.wait(seconds)
    stop.set()
    thread.join(5)


@pytest.mark.django_db(transaction=True)
def test_on_redis_a_task_enqueued_in_a_transaction_reaches_the_consumer_after_the_commit_only(redis_huey):
    # when a task is enqueued inside a transaction
    with transaction.atomic():
        enqueue_on_commit(redis_task, value="committed")
        assert redis_huey.pending_count() == 0  # not before the commit
    # then after the commit it waits in Redis, and a real worker takes it and runs it
    assert redis_huey.pending_count() == 1
    _consume(redis_huey, seconds=10)
    assert RECEIVED == ["committed"] and redis_huey.pending_count() == 0


@pytest.mark.django_db(transaction=True)
def test_on_redis_a_rolled_back_transaction_enqueues_nothing(redis_huey):
    # when the transaction that enqueued a task rolls back
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_on_commit(redis_task, value="rolled back")
        raise RuntimeError("the write failed")
    # then Redis holds nothing and a worker runs nothing
    assert redis_huey.pending_count() == 0
    _consume(redis_huey, seconds=1)
    assert RECEIVED == []
