"""`smileloop worker`: the Huey consumer that runs enqueued tasks and the scheduled jobs.

A thin wrapper over djhuey's run_huey with this project's defaults (settings.HUEY["consumer"]: one
worker thread on the embedded SQLite queue, which allows one writer; two threads on Redis). Any
run_huey option can still be given, e.g. `smileloop worker --workers 4`.

Every worker also schedules the jobs of config/schedules.py, so two workers on one queue (Redis workers on two
machines) would run each nightly job twice; the jobs are safe to repeat, but the work doubles. `--no-periodic`
makes a worker run enqueued tasks only: start every worker but one with it.
"""

import argparse

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


def _worker_count(text: str) -> int:
    """A --workers value: a whole number from 1 to 64 (0 used to mean the default, a negative one went to huey)."""
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 64, not {text[:40]!r}")
    return int(text)


class Command(BaseCommand):
    help = "Run the background-job consumer (Huey): enqueued tasks and the jobs of config/schedules.py."

    def add_arguments(self, parser):
        parser.add_argument("-w", "--workers", type=_worker_count,
                            help="worker count, 1 to 64 (default from settings.HUEY)")
        parser.add_argument("-k", "--worker-type", choices=["thread", "process", "greenlet"],
                            help="worker type (default thread)")
        parser.add_argument("-n", "--no-periodic", action="store_true",
                            help="run enqueued tasks only, not the scheduled jobs (for every worker on a queue but one)")

    def handle(self, *args, workers=None, worker_type=None, no_periodic=False, **options):
        defaults = settings.HUEY.get("consumer", {}) if isinstance(settings.HUEY, dict) else {}
        kwargs = {"workers": workers or defaults.get("workers", 1),
                  "worker_type": worker_type or defaults.get("worker_type", "thread")}
        scheduled = "scheduled jobs off (--no-periodic)" if no_periodic else f"{len(_periodic())} scheduled job(s)"
        if no_periodic:
            kwargs["periodic"] = False
        self.stdout.write(f"smileloop worker: {kwargs['workers']} {kwargs['worker_type']} worker(s); {scheduled}")
        call_command("run_huey", **kwargs)


def _periodic():
    from smileloop.core.jobs import jobs_all

    return [job.name for job in jobs_all() if job.schedule is not None]
