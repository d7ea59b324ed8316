"""Background jobs on Huey: the periodic-job registry, running one job by hand, and after-commit enqueueing.

Every periodic job is a plain function listed once in `config/schedules.py` (the setting JOB_SCHEDULES
names the list) as a `Job`: a name ("followups.daily"), the dotted path of the function, a huey
crontab read in the chain's local time, and a description. Paths are resolved only when a job runs,
so an app that is missing or broken fails its own job and nothing else; core never imports the apps.

At start-up (core's AppConfig.ready) `jobs_register` turns each listed job into a huey periodic task,
so the consumer (`smileloop worker`) runs them on schedule, with retries after a delay. `smileloop run
JOB` runs one synchronously through the same `job_run`. Jobs are idempotent: a second run for the same
day changes nothing, so a retry, an overlap or a hand-run next to the schedule is harmless.

Job functions take `today` (a `datetime.date`, the chain-local date the run is for; None = today) and
return a dict of counts. Older daily services that take `as_of` (a datetime) or `chain_id` are called
through the same adapter: `Job.argument="as_of"` passes the start of `today` in the chain's time zone
(now, when `today` is None). An int result is reported as {"count": n}, a dataclass as its fields.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
import weakref
import zoneinfo
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

logger = logging.getLogger("smileloop.jobs")

CALL_TASK_NAME = "smileloop.call"


@dataclasses.dataclass(frozen=True)
class Job:
    """One periodic (or, with schedule None, hand-run only) job."""

    name: str  # "<app>.<what>", unique; what `smileloop run` takes
    path: str  # dotted path of a plain function: fn(*, today=None) -> dict (see `argument`)
    schedule: str | None  # crontab "minute hour day month day-of-week", chain-local time; None: by hand only
    description: str
    argument: str = "today"  # "today": fn(today=date); "as_of": fn(as_of=datetime); "none": fn()
    retries: int = 2  # huey retries a failed run …
    retry_delay: int = 600  # … after this many seconds


    def crontab(self) -> Callable[[dt.datetime], bool]:
        """The schedule as a huey crontab (strict: a malformed schedule fails at start-up, loudly)."""
        from huey import crontab

        minute, hour, day, month, day_of_week = self.schedule.split()
        return crontab(minute=minute, hour=hour, day=day, month=month, day_of_week=day_of_week, strict=True)


class JobUnknown(LookupError):
    def __init__(self, name: str, valid: list[str]):
        self.name, self.valid = name, valid
        super().__init__(f"unknown job {name!r}; valid jobs: {', '.join(valid)}")


def jobs_all() -> list[Job]:
    """The listed jobs (config/schedules.py, named by settings.JOB_SCHEDULES)."""
    jobs = list(import_string(settings.JOB_SCHEDULES))
    names = [job.name for job in jobs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"jobs listed twice in {settings.JOB_SCHEDULES}: {', '.join(duplicates)}")
    return jobs


def job_get(name: str) -> Job:
    jobs = jobs_all()
    for job in jobs:
        if job.name == name:
            return job
    raise JobUnknown(name, [job.name for job in jobs])


def job_resolve(job: Job) -> Callable[..., Any]:
    """The job's function; ImportError if the path does not name a callable."""
    func = import_string(job.path)
    if not callable(func):
        raise ImportError(f"{job.path} is not callable")
    return func


def local_today(tz_name: str | None = None) -> dt.date:
    """Today's date in a chain's time zone (the default time zone when not given)."""
    tz = zoneinfo.ZoneInfo(tz_name) if tz_name else timezone.get_default_timezone()
    return timezone.now().astimezone(tz).date()


def chain_today(chain, today: dt.date | None = None) -> dt.date:
    """`today` if given (tests, back-fill), else today's date in the chain's own time zone."""
    return today or local_today(getattr(chain, "time_zone", None))


def day_start(day: dt.date, tz_name: str | None = None) -> dt.datetime:
    """Midnight at the start of `day` in a chain's time zone, as an aware datetime."""
    tz = zoneinfo.ZoneInfo(tz_name) if tz_name else timezone.get_default_timezone()
    return dt.datetime.combine(day, dt.time.min, tzinfo=tz)


def _counts(value: Any) -> dict:
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, int):
        return {"count": value}
    return {"result": value}


def job_run(job: Job | str, *, today: dt.date | None = None) -> dict:
    """Run one job synchronously and return its counts (logged with the time taken). Errors propagate, so
    huey retries the periodic task and `smileloop run` reports them."""
    if isinstance(job, str):
        job = job_get(job)
    func = job_resolve(job)
    kwargs: dict[str, Any] = {}
    if job.argument == "today":
        kwargs["today"] = today
    elif job.argument == "as_of":
        kwargs["as_of"] = timezone.now() if today is None else day_start(today)
    started = time.perf_counter()
    logger.info("job %s started%s", job.name, f" for {today}" if today else "")
    try:
        counts = _counts(func(**kwargs))
    except Exception:
        logger.exception("job %s failed after %.2f s", job.name, time.perf_counter() - started)
        raise
    seconds = time.perf_counter() - started
    logger.info("job %s done in %.2f s: %s", job.name, seconds, counts)
    return counts


# --- huey -------------------------------------------------------------------------------------------------


def huey_from_config(config: dict):
    """A Huey instance from a settings.HUEY-style dict, built the way huey.contrib.djhuey builds it (used
    by the tests to check the production settings block against real storage)."""
    from huey.utils import load_class

    config = dict(config)
    name = config.pop("name", "huey")
    backend = load_class(config.pop("huey_class", "huey.RedisHuey"))
    config.pop("consumer", None)
    config.update(config.pop("connection", {}))
    return backend(name, **config)


def _local_time(check: Callable[[dt.datetime], bool], huey_utc: bool) -> Callable[[dt.datetime], bool]:
    """Huey hands the scheduler a naive UTC time (utc=True); crontabs here are meant in chain-local time."""
    if not huey_utc:
        return check
    tz = timezone.get_default_timezone()

    def in_local_time(stamp: dt.datetime) -> bool:
        return check(stamp.replace(tzinfo=dt.UTC).astimezone(tz).replace(tzinfo=None))

    return in_local_time


def _periodic(job: Job) -> Callable[[], dict]:
    def run() -> dict:
        from django.db import close_old_connections

        close_old_connections()
        try:
            return job_run(job)
        finally:
            close_old_connections()

    run.__name__ = run.__qualname__ = "job_" + job.name.replace(".", "_")
    return run


# Tasks registered per Huey instance (the project's one, or a test's own).
_registered: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _call(path: str, kwargs: dict) -> Any:
    """The generic task behind enqueue_on_commit for a plain function: import it by path and call it."""
    from django.db import close_old_connections

    close_old_connections()
    try:
        return import_string(path)(**kwargs)
    finally:
        close_old_connections()


def jobs_register(huey=None) -> dict[str, Any]:
    """Register every scheduled job as a huey periodic task (and the generic call task) on `huey` (the
    project's queue by default). Idempotent: a second call registers nothing twice."""
    if huey is None:
        from huey.contrib.djhuey import HUEY as huey
    registered = _registered.setdefault(huey, {})
    if CALL_TASK_NAME not in registered:
        registered[CALL_TASK_NAME] = huey.task(name=CALL_TASK_NAME, retries=2, retry_delay=60)(_call)
    for job in jobs_all():
        key = "job." + job.name
        if job.schedule is None or key in registered:
            continue
        registered[key] = huey.periodic_task(_local_time(job.crontab(), huey.utc), name=key, retries=job.retries,
                                             retry_delay=job.retry_delay)(_periodic(job))
    return dict(registered)


def enqueue_on_commit(task: Callable[..., Any], /, **kwargs) -> None:
    """Enqueue `task(**kwargs)` once the current transaction commits; a rollback enqueues nothing.

    `task` is a huey task (a function decorated with huey's @task/@db_task) or a plain module-level
    function, which runs through one generic task that imports it by its dotted path. kwargs must be
    picklable (ids and plain values, never model instances). Outside a transaction it enqueues at once.
    With Huey in immediate mode (the tests) the task runs in-process when the commit happens; in a
    pytest-django test wrap the write in `django_capture_on_commit_callbacks(execute=True)`."""
    from huey.api import TaskWrapper

    if isinstance(task, TaskWrapper):
        transaction.on_commit(lambda: task(**kwargs))
        return
    path = f"{task.__module__}.{task.__qualname__}"
    if "<" in path:
        raise ValueError(f"{path} is not a module-level function; a background task must be importable")
    call = jobs_register()[CALL_TASK_NAME]
    transaction.on_commit(lambda: call(path, kwargs))
