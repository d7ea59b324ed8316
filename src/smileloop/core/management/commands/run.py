"""`smileloop run JOB [--today YYYY-MM-DD]`: run one listed job now and print its counts;
`smileloop run --list` lists the jobs (config/schedules.py)."""

import argparse
import datetime as dt
import json

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from smileloop.core.bounds import CLOCK_SKEW, EARLIEST_RECORD_DATE
from smileloop.core.jobs import JobUnknown, job_get, job_run, jobs_all


def _date(value: str) -> dt.date:
    """The --today value. An argparse type error, so a bad value is a usage error (exit 2) naming the option,
    not a traceback. A day after tomorrow is refused: jobs such as the expiries act on it for good."""
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a date like 2026-03-02, not {value[:40]!r}")
    latest = timezone.localdate() + CLOCK_SKEW
    if day < EARLIEST_RECORD_DATE:
        raise argparse.ArgumentTypeError(f"{day} is before {EARLIEST_RECORD_DATE}")
    if day > latest:
        raise argparse.ArgumentTypeError(f"{day} is in the future (latest {latest}); a job run ahead of time "
                                         f"would expire and close things early")
    return day


def _when(job) -> str:
    return job.schedule or "by hand"


class Command(BaseCommand):
    help = "Run one background job synchronously (see --list); jobs are idempotent, so a re-run is harmless."

    def add_arguments(self, parser):
        parser.add_argument("job", nargs="?", help="job name, e.g. followups.daily")
        parser.add_argument("--today", type=_date, help="the chain-local date to run for (back-fill, tests): "
                                                        "YYYY-MM-DD, from 1980-01-01 to tomorrow")
        parser.add_argument("--list", action="store_true", help="list the jobs and exit")

    def handle(self, *args, job=None, today=None, list=False, **options):
        if list or not job:
            if not list:
                self.stderr.write("name a job to run; the jobs are:")
            width = max(len(j.name) for j in jobs_all())
            when_width = max(len(_when(j)) for j in jobs_all())
            for j in jobs_all():
                self.stdout.write(f"{j.name:<{width}}  {_when(j):<{when_width}}  {j.description}")
            if not list:
                raise CommandError("no job named")
            return
        try:
            spec = job_get(job)
        except JobUnknown as exc:
            raise CommandError(f"unknown job {exc.name[:60]!r}; valid jobs: {', '.join(exc.valid)}")
        if today is not None and spec.argument == "none":
            raise CommandError(f"--today: job {spec.name} takes no date; it always runs for now")
        try:
            counts = job_run(spec, today=today)
        except ImportError as exc:
            raise CommandError(f"job {spec.name}: cannot load {spec.path}: {exc}")
        except Exception as exc:  # the traceback is in the log (smileloop.jobs)
            raise CommandError(f"job {spec.name} failed: {exc.__class__.__name__}: {exc}")
        self.stdout.write(f"{spec.name}: {json.dumps(counts, ensure_ascii=False, sort_keys=True, default=str)}")
