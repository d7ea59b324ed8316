"""`smileloop worker`: the Huey consumer that runs enqueued tasks and the scheduled jobs.

A thin wrapper over djhuey's run_huey with this project's defaults (settings.HUEY["consumer"]: one
worker thread on the embedded SQLite queue, which allows one writer; two threads on Redis). Any
run_huey option can still be given, e.g. `smileloop worker --workers 4`.
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

    def handle(self, *args, workers=None, worker_type=None, **options):
        defaults = settings.HUEY.get("consumer", {}) if isinstance(settings.HUEY, dict) else {}
        kwargs = {"workers": workers or defaults.get("workers", 1),
                  "worker_type": worker_type or defaults.get("worker_type", "thread")}
        self.stdout.write(f"smileloop worker: {kwargs['workers']} {kwargs['worker_type']} worker(s); "
                          f"{len([k for k in _periodic()])} scheduled job(s)")
        call_command("run_huey", **kwargs)


def _periodic():
    from smileloop.core.jobs import jobs_all

    return [job.name for job in jobs_all() if job.schedule is not None]
