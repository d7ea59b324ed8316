"""Background jobs: the schedule list, `smileloop run`, after-commit enqueueing, the purge job and the
production queue settings against real SQLite and Redis storage."""

import datetime as dt
import io
import re
import socket
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone
from huey import MemoryHuey

from config.settings import base
from smileloop.core import jobs
from smileloop.core.jobs import Job, enqueue_on_commit, huey_from_config, job_resolve, job_run, jobs_all
from smileloop.core.models import IdempotencyRecord
from smileloop.core.tasks import idempotency_purge_job, statistics_job

CALLS: list = []


def record_call(*, value):
    CALLS.append(value)
    return {"recorded": value}


def failing_job(*, today=None):
    raise RuntimeError("boom")


def ping_job():
    CALLS.append("ping")
    return {"pinged": 1}


def as_of_job(*, as_of):
    return {"as_of": as_of.isoformat()}


def add(a, b):
    return a + b


TEST_JOBS = [
    Job("test.ping", "smileloop.core.tests.test_jobs.ping_job", "0 3 * * *", "pings", argument="none"),
    Job("test.fails", "smileloop.core.tests.test_jobs.failing_job", "20 2 * * *", "always fails",
        retries=1, retry_delay=30),
    Job("test.as_of", "smileloop.core.tests.test_jobs.as_of_job", None, "takes as_of", argument="as_of"),
    Job("test.missing", "smileloop.nowhere.tasks.nothing_job", "0 5 * * *", "not written yet"),
]


@pytest.fixture(autouse=True)
def calls():
    CALLS.clear()
    yield CALLS
    CALLS.clear()


# --- the schedule ---------------------------------------------------------------------------------------


def test_every_listed_job_has_a_unique_name_and_a_valid_crontab():
    listed = jobs_all()
    assert len({job.name for job in listed}) == len(listed)
    for job in listed:
        if job.schedule is not None:
            assert callable(job.crontab())
    assert {"followups.daily", "lifecycle.stages", "core.idempotency_purge", "ledger.expire"} <= {
        job.name for job in listed}


@pytest.mark.parametrize("job", jobs_all(), ids=lambda job: job.name)
def test_every_listed_path_resolves_to_a_callable(job):
    assert callable(job_resolve(job))


def test_jobs_run_on_their_crontab_in_chain_local_time():
    huey = MemoryHuey("test-schedule", utc=True)
    from django.test import override_settings

    with override_settings(JOB_SCHEDULES="smileloop.core.tests.test_jobs.TEST_JOBS"):
        registered = jobs.jobs_register(huey)
    # then: 02:20 in Shanghai is 18:20 UTC the day before; the hand-run job is not scheduled
    assert [t.name for t in huey.read_periodic(dt.datetime(2026, 3, 1, 18, 20))] == ["job.test.fails"]
    assert huey.read_periodic(dt.datetime(2026, 3, 2, 2, 20)) == []
    assert "job.test.as_of" not in registered
    assert sorted(t.name for t in huey._registry.periodic_tasks) == ["job.test.fails", "job.test.missing",
                                                                    "job.test.ping"]


def test_a_failing_periodic_job_is_retried_later_and_does_not_stop_the_others(db, calls):
    huey = MemoryHuey("test-retry", utc=True)
    from django.test import override_settings

    with override_settings(JOB_SCHEDULES="smileloop.core.tests.test_jobs.TEST_JOBS"):
        registered = jobs.jobs_register(huey)
        assert jobs.jobs_register(huey) == registered  # registering twice changes nothing
        # when: each job runs as its own task
        huey.execute(registered["job.test.fails"].s())
        huey.execute(registered["job.test.missing"].s())
        result = huey.execute(registered["job.test.ping"].s())
    # then: the failures are scheduled for a retry after their delay; the other job ran
    retries = sorted(huey.scheduled(), key=lambda t: t.name)
    assert [(t.name, t.retries) for t in retries] == [("job.test.fails", 0), ("job.test.missing", 1)]
    assert retries[0].eta > dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=20)
    assert (result, calls) == ({"pinged": 1}, ["ping"])


# --- running by hand -------------------------------------------------------------------------------------


def test_job_run_passes_the_start_of_today_in_chain_time_as_as_of(settings):
    settings.JOB_SCHEDULES = "smileloop.core.tests.test_jobs.TEST_JOBS"
    assert job_run("test.as_of", today=dt.date(2026, 3, 2)) == {"as_of": "2026-03-02T00:00:00+08:00"}


def test_the_run_command_runs_a_job_for_a_given_day_and_prints_its_counts(db, capsys):
    user = get_user_model().objects.create(username="u1")
    old = IdempotencyRecord.objects.create(user=user, key="old", operation="op", request_hash="x",
                                           status_code=201, response={})
    IdempotencyRecord.objects.create(user=user, key="new", operation="op", request_hash="x", status_code=201,
                                     response={})
    IdempotencyRecord.objects.filter(pk=old.pk).update(created_at=dt.datetime(2026, 2, 20, tzinfo=dt.UTC))
    IdempotencyRecord.objects.exclude(pk=old.pk).update(created_at=dt.datetime(2026, 2, 28, tzinfo=dt.UTC))
    # when
    call_command("run", "core.idempotency_purge", "--today", "2026-03-02")
    # then
    assert capsys.readouterr().out.strip() == 'core.idempotency_purge: {"deleted": 1, "kept_days": 7}'
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]
    call_command("run", "core.idempotency_purge", "--today", "2026-03-02")
    assert '"deleted": 0' in capsys.readouterr().out  # idempotent


def test_the_run_command_lists_the_jobs(capsys):
    call_command("run", "--list")
    out = capsys.readouterr().out
    assert "followups.daily" in out and "30 2,8-20 * * *" in out and "lifecycle.derive" in out


def test_an_unknown_job_name_is_a_clear_error_listing_the_valid_ones():
    with pytest.raises(CommandError) as error:
        call_command("run", "followups.dayly")
    assert "unknown job 'followups.dayly'" in str(error.value)
    assert "followups.daily" in str(error.value) and "lifecycle.stages" in str(error.value)


def test_a_bad_date_and_a_failing_job_are_command_errors(settings):
    settings.JOB_SCHEDULES = "smileloop.core.tests.test_jobs.TEST_JOBS"
    with pytest.raises(CommandError, match="must be a date"):
        call_command("run", "test.ping", "--today", "02/03/2026")
    with pytest.raises(CommandError, match="job test.fails failed: RuntimeError: boom"):
        call_command("run", "test.fails")
    with pytest.raises(CommandError, match="cannot load smileloop.nowhere"):
        call_command("run", "test.missing")


# --- the purge job ---------------------------------------------------------------------------------------


def test_the_purge_keeps_a_week_of_idempotency_records_by_default(db):
    user = get_user_model().objects.create(username="u2")
    for key, day in (("a", 1), ("b", 7), ("c", 8)):
        record = IdempotencyRecord.objects.create(user=user, key=key, operation="op", request_hash="x",
                                                  status_code=200, response={})
        # created at noon, `day` days before 2026-03-10 (Shanghai)
        IdempotencyRecord.objects.filter(pk=record.pk).update(
            created_at=dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC) - dt.timedelta(days=day))
    assert idempotency_purge_job(today=dt.date(2026, 3, 10)) == {"deleted": 1, "kept_days": 7}
    assert sorted(IdempotencyRecord.objects.values_list("key", flat=True)) == ["a", "b"]
    assert idempotency_purge_job(today=dt.date(2026, 3, 10), keep_days=0)["deleted"] == 2


def test_the_statistics_job_analyzes_sqlite_and_leaves_postgresql_to_autovacuum(db):
    get_user_model().objects.create(username="u3")  # ANALYZE records nothing for an empty table
    result = statistics_job()
    assert result == {"analyzed": 1 if connection.vendor == "sqlite" else 0}
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'auth_user'")
            assert cursor.fetchone()[0] > 0
    assert "core.statistics" in {job.name for job in jobs_all()}


# --- after-commit enqueueing ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_enqueue_on_commit_waits_for_the_commit_and_a_rollback_enqueues_nothing(calls):
    with transaction.atomic():
        enqueue_on_commit(record_call, value=1)
        assert calls == []  # not before the commit
    assert calls == [1]
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_on_commit(record_call, value=2)
        raise RuntimeError("roll back")
    assert calls == [1]


@pytest.mark.django_db(transaction=True)
def test_enqueue_on_commit_takes_a_huey_task_too(calls):
    from huey.contrib.djhuey import HUEY

    task = HUEY.task(name="test.record_task")(record_call)
    with transaction.atomic():
        enqueue_on_commit(task, value=3)
        assert calls == []
    assert calls == [3]


def test_a_nested_function_cannot_be_enqueued(db):
    def local(**kwargs):
        pass

    with pytest.raises(ValueError, match="module-level"):
        enqueue_on_commit(local)


# --- the production queue settings against real storage ------------------------------------------------


def _enqueue_and_execute(huey):
    task = huey.task(name="test.add")(add)
    task(2, 3)  # not immediate: enqueued, not run
    assert huey.pending_count() == 1
    assert huey.execute(huey.dequeue()) == 5
    assert huey.pending_count() == 0


def test_the_sqlite_settings_block_makes_a_working_queue(tmp_path):
    config = base.huey_settings("", tmp_path)
    assert config["huey_class"] == "huey.SqliteHuey" and config["consumer"]["workers"] == 1
    huey = huey_from_config(config)
    assert huey.storage.filename == str(tmp_path / "huey.sqlite3")
    _enqueue_and_execute(huey)


def _redis_reachable() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.3).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _redis_reachable(), reason="no Redis at 127.0.0.1:6379")
def test_the_redis_settings_block_makes_a_working_queue():
    config = base.huey_settings("redis://127.0.0.1:6379/15", None)
    config["name"] = f"smileloop-test-{uuid.uuid4().hex[:8]}"
    huey = huey_from_config(config)
    try:
        _enqueue_and_execute(huey)
    finally:
        huey.flush()


def test_chain_today_uses_the_chains_time_zone(chain):
    assert jobs.chain_today(chain, dt.date(2026, 1, 1)) == dt.date(2026, 1, 1)
    shanghai = timezone.now().astimezone(dt.timezone(dt.timedelta(hours=8))).date()
    assert jobs.chain_today(chain) == shanghai


@pytest.mark.parametrize("value", ["2026-13-45", "0000-01-01", "0001-01-01", "1979-12-31", "9999-12-31",
                                   "today+2"])
def test_a_bad_or_out_of_range_today_is_a_usage_error_and_runs_nothing(settings, capsys, value):
    settings.JOB_SCHEDULES = "smileloop.core.tests.test_jobs.TEST_JOBS"
    if value == "today+2":  # a future day: the expiry jobs would expire lots early, for good
        value = (timezone.localdate() + dt.timedelta(days=2)).isoformat()
    # when / then
    with pytest.raises(CommandError, match="argument --today: "):
        call_command("run", "test.as_of", "--today", value)
    assert capsys.readouterr().out == ""  # the job did not run


def test_today_from_1980_to_tomorrow_runs_the_job(settings, capsys):
    settings.JOB_SCHEDULES = "smileloop.core.tests.test_jobs.TEST_JOBS"
    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    for day in ("1980-01-01", tomorrow.isoformat()):
        call_command("run", "test.as_of", "--today", day)
    out = capsys.readouterr().out
    assert '"as_of": "1980-01-01T00:00:00+08:00"' in out and f'"as_of": "{tomorrow}T00:00:00+08:00"' in out


def test_today_for_a_job_that_takes_no_date_is_refused_rather_than_ignored(settings, calls):
    settings.JOB_SCHEDULES = "smileloop.core.tests.test_jobs.TEST_JOBS"
    with pytest.raises(CommandError, match="^--today: job test.ping takes no date; it always runs for now$"):
        call_command("run", "test.ping", "--today", "2026-03-02")
    assert calls == []


def test_a_bad_today_on_the_command_line_exits_2_with_one_line_and_no_traceback(settings, capsys):
    # given
    from smileloop.core.management.commands.run import Command

    settings.JOB_SCHEDULES = "smileloop.core.tests.test_jobs.TEST_JOBS"
    # when
    with pytest.raises(SystemExit) as exit_:
        Command().run_from_argv(["smileloop", "run", "test.ping", "--today", "2026-13-45"])
    # then
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "smileloop run: error: argument --today: must be a date like 2026-03-02, not '2026-13-45'" in err
    assert "Traceback" not in err


def test_every_listed_job_accepts_what_its_argument_passes():
    # a job whose function does not take the argument it is given fails on every run (core.statistics did)
    import inspect

    passed = {"today": {"today"}, "as_of": {"as_of"}, "none": set()}
    for job in jobs_all():
        parameters = inspect.signature(job_resolve(job)).parameters
        assert passed[job.argument] <= set(parameters), job.name
        required = {name for name, p in parameters.items() if p.default is inspect.Parameter.empty
                    and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        assert required <= passed[job.argument], job.name


def test_the_job_list_lines_up_its_descriptions(capsys):
    call_command("run", "--list")
    lines = capsys.readouterr().out.splitlines()
    starts = {line.index(job.description) for job, line in zip(jobs_all(), lines, strict=True)}
    assert len(starts) == 1


@pytest.mark.parametrize("value", ["0", "-1", "abc", "65", "99999999999999999999"])
def test_the_worker_refuses_a_worker_count_it_cannot_honour_before_starting(monkeypatch, value):
    # given: the consumer is not really started
    from smileloop.core.management.commands import worker

    started = []
    monkeypatch.setattr(worker, "call_command", lambda *args, **kwargs: started.append(kwargs))
    # when / then
    with pytest.raises(CommandError, match="argument -w/--workers: must be a whole number from 1 to 64"):
        call_command("worker", "--workers", value)
    assert started == []


def test_the_worker_passes_its_worker_count_to_the_consumer(monkeypatch):
    from smileloop.core.management.commands import worker

    started = []
    monkeypatch.setattr(worker, "call_command", lambda *args, **kwargs: started.append((args, kwargs)))
    call_command("worker", "--workers", "3", stdout=io.StringIO())
    assert started == [(("run_huey",), {"workers": 3, "worker_type": "thread"})]


@pytest.mark.parametrize("argv, periodic", [([], True), (["--no-periodic"], False), (["-n"], False)])
def test_no_periodic_starts_a_consumer_that_runs_tasks_but_schedules_no_job(monkeypatch, argv, periodic):
    # given: the real command chain (worker → run_huey → the consumer huey builds), stopped before its loop
    from huey.consumer import Consumer

    built = []
    monkeypatch.setattr(Consumer, "run", lambda self: built.append(self))
    out = io.StringIO()
    # when
    call_command("worker", *argv, stdout=out)
    # then: the consumer's scheduler enqueues the periodic jobs, or not, and the first line says which
    (consumer,) = built
    assert consumer.periodic is periodic and consumer._create_scheduler().periodic is periodic
    assert ("scheduled jobs off" in out.getvalue()) is not periodic


def test_a_very_long_unknown_job_name_is_not_echoed_in_full():
    with pytest.raises(CommandError) as error:
        call_command("run", "x" * 5000)
    assert str(error.value).startswith(f"unknown job '{'x' * 60}'; valid jobs: ")


def test_the_worker_writes_each_log_line_once_with_its_time(capfd):
    # given logging as Django sets it up from the settings, and the consumer's logger as `run_huey` prepares it
    import logging
    import logging.config

    from django.conf import settings
    from huey.consumer_options import ConsumerConfig

    logging.config.dictConfig(settings.LOGGING)
    logger = logging.getLogger("huey")
    added = []
    if not logger.handlers:  # run_huey gives the "huey" logger a handler of its own only when it has none
        ConsumerConfig(workers=1).setup_logger(logger)
        added = list(logger.handlers)
    try:
        # when the consumer logs a task
        logger.info("Executing smileloop.call: 1")
        logging.getLogger("smileloop.jobs").info("job followups.daily done")
        err = capfd.readouterr().err
    finally:
        for handler in added:
            logger.removeHandler(handler)
    # then the worker's log has the line once (it was twice: the consumer's handler, then the root's), and the
    # project's own lines say when
    assert err.count("Executing smileloop.call: 1") == 1
    assert re.search(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\] INFO smileloop\.jobs: job followups\.daily done$", err, re.M)
